//! The daemon's end of the control socket. Each client connection is a task that parses
//! request lines and hands each command to the daemon's main task (the one owner of the
//! session table) with a reply channel; a client that sends garbage gets an error line and
//! is disconnected, and nothing else notices.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use super::proto::{parse_request, Command, Response, MAX_REQUEST};

/// A command for the main task and where its answer goes.
pub struct Request {
    pub command: Command,
    pub reply: oneshot::Sender<Response>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("control socket {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("control socket group '{0}' does not exist in /etc/group")]
    NoGroup(String),
}

/// The gid of a group name, from /etc/group (no NSS: a daemon's socket group is local).
fn gid_of(name: &str) -> Option<u32> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then(|| f.nth(1)?.parse().ok())?
    })
}

/// Binds the socket (replacing a stale one), sets its mode and group, and serves it.
pub fn spawn(
    path: &Path,
    mode: u32,
    group: Option<&str>,
    to_main: mpsc::Sender<Request>,
) -> Result<(), ServerError> {
    let io = |source| ServerError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        _ => {}
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    if let Some(g) = group {
        let gid = gid_of(g).ok_or_else(|| ServerError::NoGroup(g.to_string()))?;
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(io)?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io)?;
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(serve(stream, to_main.clone()));
                }
                Err(e) => warn!("control socket accept: {e}"),
            }
        }
    });
    Ok(())
}

async fn serve(stream: UnixStream, to_main: mpsc::Sender<Request>) {
    let (r, mut w) = stream.into_split();
    // A connection carries at most 16 maximal requests: vpnctl sends one; a client that
    // streams without end is cut off instead of growing our buffer.
    let mut lines = BufReader::new(r.take(MAX_REQUEST as u64 * 16));
    let mut line = Vec::new();
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let trimmed = line.strip_suffix(b"\n").unwrap_or(&line);
        let (response, close) = match parse_request(trimmed) {
            Ok(command) => {
                let (tx, rx) = oneshot::channel();
                if to_main.send(Request { command, reply: tx }).await.is_err() {
                    return; // the daemon is stopping
                }
                (
                    rx.await
                        .unwrap_or_else(|_| Response::error("the daemon is stopping")),
                    false,
                )
            }
            Err(e) => {
                debug!("control client sent a bad request: {e}");
                (Response::error(e.to_string()), true)
            }
        };
        let mut out = serde_json::to_vec(&response).unwrap_or_default();
        out.push(b'\n');
        if w.write_all(&out).await.is_err() || close {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::proto::{request_line, Body};
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn garbage_gets_an_error_and_a_hangup_while_good_clients_are_served() {
        let dir = std::env::temp_dir().join(format!("vpnd-ctl-test-{}", std::process::id()));
        let path = dir.join("vpnd.sock");
        let (tx, mut rx) = mpsc::channel::<Request>(4);
        spawn(&path, 0o660, None, tx).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o660
        );
        // Stand-in for the daemon's main task: answers every command.
        tokio::spawn(async move {
            while let Some(r) = rx.recv().await {
                let _ = r.reply.send(Response::ok(Body::Cleared { cleared: 7 }));
            }
        });

        let mut bad = UnixStream::connect(&path).await.unwrap();
        bad.write_all(b"hello daemon\n").await.unwrap();
        let mut answer = String::new();
        // Reading to the end only ends if the server hung up.
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            bad.read_to_string(&mut answer),
        )
        .await
        .expect("the server must disconnect a client that sent garbage")
        .unwrap();
        let r: Response = serde_json::from_str(answer.trim_end()).unwrap();
        assert!(!r.ok);
        assert!(r.error.unwrap().starts_with("not a request: "));

        // Another client, after the bad one, is served as usual, twice on one connection.
        let good = UnixStream::connect(&path).await.unwrap();
        let (r, mut w) = good.into_split();
        let mut lines = BufReader::new(r).lines();
        for _ in 0..2 {
            w.write_all(
                request_line(Command::ClearSessions {
                    filter: Default::default(),
                })
                .as_bytes(),
            )
            .await
            .unwrap();
            let line = lines.next_line().await.unwrap().unwrap();
            let r: Response = serde_json::from_str(&line).unwrap();
            assert_eq!(r.body, Some(Body::Cleared { cleared: 7 }));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
