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
    // A daemon that refuses the connection (too many clients, no access) answers at once
    // and may close before the request is written: the answer is read all the same.
    let sent = stream.write_all(request_line(command).as_bytes());
    if let Err(e) = &sent {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(unreachable(sent.unwrap_err()));
        }
    }
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(unreachable)?;
    if line.is_empty() {
        if let Err(e) = sent {
            return Err(unreachable(e));
        }
    }
    decode(&line).map_err(|e| ClientError::BadResponse {
        path,
        detail: e.to_string(),
    })
}

/// A response line of any kind. `Response` flattens an untagged body, which serde decodes by
/// copying the line into an intermediate tree and trying each variant in turn (with 10,000
/// sessions that was most of vpnctl's time); here every body field is optional and the
/// one present picks the variant, in one pass.
pub fn decode(line: &str) -> Result<Response, serde_json::Error> {
    use super::proto::Body;
    use crate::session::model::{PeerView, SessionView};

    #[derive(serde::Deserialize)]
    struct Raw {
        v: u32,
        ok: bool,
        #[serde(default)]
        error: Option<String>,
        sessions: Option<Vec<SessionView>>,
        peers: Option<Vec<PeerView>>,
        cleared: Option<usize>,
        debug: Option<String>,
        text: Option<String>,
        accounting: Option<Box<crate::accounting::AccountingView>>,
        ike_stats: Option<Box<super::proto::IkeStatsView>>,
        pools: Option<Vec<crate::ike::PoolStats>>,
        #[serde(default)]
        unknown_pool_refused: u64,
        #[serde(default)]
        leases_outside_pools: u32,
        reload: Option<Box<super::proto::ReloadView>>,
    }
    let r: Raw = serde_json::from_str(line)?;
    let body = if let Some(sessions) = r.sessions {
        Some(Body::Sessions { sessions })
    } else if let Some(peers) = r.peers {
        Some(Body::Peers { peers })
    } else if let Some(cleared) = r.cleared {
        Some(Body::Cleared { cleared })
    } else if let Some(debug) = r.debug {
        Some(Body::Debug { debug })
    } else if let Some(text) = r.text {
        Some(Body::Text { text })
    } else if let Some(accounting) = r.accounting {
        Some(Body::Accounting { accounting })
    } else if let Some(ike_stats) = r.ike_stats {
        Some(Body::IkeStats { ike_stats })
    } else if let Some(pools) = r.pools {
        Some(Body::Pools {
            pools,
            unknown_pool_refused: r.unknown_pool_refused,
            leases_outside_pools: r.leases_outside_pools,
        })
    } else if let Some(reload) = r.reload {
        Some(Body::Reload { reload })
    } else {
        // As the derived decoder does: `Done {}` fits any object.
        Some(Body::Done {})
    };
    Ok(Response {
        v: r.v,
        ok: r.ok,
        error: r.error,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::proto::Body;

    /// A daemon that answers and hangs up before reading the request (a refusal): the
    /// answer reaches the caller, whether the request was written before the hang-up or
    /// the write failed with a broken pipe.
    #[test]
    fn a_refusal_sent_before_the_request_is_read_is_still_the_answer() {
        let dir = std::env::temp_dir().join(format!("vpnd-client-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let rounds = 20;
        let server = std::thread::spawn(move || {
            for i in 0..rounds {
                let (mut s, _) = listener.accept().unwrap();
                s.write_all(b"{\"v\":1,\"ok\":false,\"error\":\"too many control clients\"}\n")
                    .unwrap();
                if i % 2 == 0 {
                    // Let the request arrive first, half of the time, and leave it unread.
                    std::thread::sleep(Duration::from_millis(20));
                }
                drop(s);
            }
        });
        for _ in 0..rounds {
            let r = call(&path, Command::ShowPeers {}).unwrap();
            assert!(!r.ok);
            assert_eq!(r.error.as_deref(), Some("too many control clients"));
        }
        server.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The fast decoder agrees with serde's derived one on every kind of answer.
    #[test]
    fn decode_agrees_with_the_derived_decoder() {
        let lines = [
            r#"{"v":1,"ok":true,"sessions":[]}"#,
            r#"{"v":1,"ok":true,"peers":[{"name":"a","address":"192.0.2.2","port":500,"description":null,"flags":["PEER_POLICY"]}]}"#,
            r#"{"v":1,"ok":true,"cleared":2}"#,
            r#"{"v":1,"ok":true,"debug":"Crypto ISAKMP debugging is on"}"#,
            r#"{"v":1,"ok":true,"text":"Crypto session current status\n"}"#,
            r#"{"v":1,"ok":true}"#,
            r#"{"v":1,"ok":false,"error":"no such peer"}"#,
            r#"{"v":1,"ok":false,"error":"refused","reload":{"file":"/etc/vpnd/vpnd.yaml","applied":false,"problems":[{"file":"/etc/vpnd/vpnd.yaml","line":3,"column":7,"field":"peers[0].ike.dpd","message":"not a duration"}],"refused":[],"added":[],"removed":[],"renegotiated":[],"updated":[{"name":"a","fields":["description"]}],"live":[],"restart_needed":[],"warnings":[]}}"#,
        ];
        for l in lines {
            let derived: Response = serde_json::from_str(l).unwrap();
            assert_eq!(decode(l).unwrap(), derived, "{l}");
        }
        assert!(matches!(
            decode(r#"{"v":1,"ok":true,"cleared":3}"#).unwrap().body,
            Some(Body::Cleared { cleared: 3 })
        ));
        assert!(decode("not json").is_err());
    }
}
