//! vpnctl's end of the control socket: one request line, one response line.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::proto::{request_line, Command, Response};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// vpnctl exit code 3.
    #[error("cannot reach vpnd at {path}: {source}")]
    Unreachable {
        path: String,
        source: std::io::Error,
    },
    #[error("vpnd at {path} answered something that is not a response: {detail}")]
    BadResponse { path: String, detail: String },
}

/// Sends one command and waits (at most 30 s) for the daemon's answer.
pub fn call(socket: &Path, command: Command) -> Result<Response, ClientError> {
    let path = socket.display().to_string();
    let unreachable = |source| ClientError::Unreachable {
        path: path.clone(),
        source,
    };
    let mut stream = UnixStream::connect(socket).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(unreachable)?;
    stream
        .write_all(request_line(command).as_bytes())
        .map_err(unreachable)?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(unreachable)?;
    serde_json::from_str(&line).map_err(|e| ClientError::BadResponse {
        path,
        detail: e.to_string(),
    })
}
