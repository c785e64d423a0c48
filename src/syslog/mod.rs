//! Syslog notices (`%CRYPTO-5-SESSION_STATUS`) to the local syslog socket and to remote
//! receivers over UDP (RFC 5426) and TCP with octet-counting framing (RFC 6587 3.4.1).
//!
//! The `syslog` crate formats each message (RFC 3164 header: priority, timestamp, host,
//! `vpnd[pid]:`). Its transports are not used: its TCP sends no framing and, once the
//! receiver restarts, fails every later send with ECONNREFUSED (../shared/CRATES.md). So each
//! destination here has one owner task ([`sink`]) holding a bounded queue: a message leaves
//! the queue only once the transport took it, a TCP connection is re-established (with
//! back-off) after the receiver restarts, and what was queued meanwhile is sent then. A full
//! queue is reported as an error with its count, never dropped silently.

mod sink;

use std::net::SocketAddr;
use std::path::PathBuf;

use syslog::{Formatter3164, LogFormat, Severity};
use tokio::sync::mpsc;
use tracing::error;

use crate::config::{SyslogConfig, SyslogTransport};
pub use sink::Destination;

/// How many messages wait per destination while it is unreachable.
pub const QUEUE_LIMIT: usize = 10_000;

/// Where the local syslog daemon listens.
pub const DEV_LOG: &str = "/dev/log";

/// The daemon's handle: formats a notice once per header kind and hands it to every
/// destination's task.
pub struct Syslog {
    local: Formatter3164,
    remote: Formatter3164,
    sinks: Vec<(Destination, mpsc::Sender<Vec<u8>>)>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Syslog {
    /// Starts one task per destination of `config` (needs a tokio runtime).
    pub fn start(config: &SyslogConfig) -> Syslog {
        let mut dests = Vec::new();
        if config.local {
            dests.push(Destination::Local(PathBuf::from(DEV_LOG)));
        }
        for s in &config.servers {
            let addr = SocketAddr::new(s.address, s.port);
            dests.push(match s.transport {
                SyslogTransport::Udp => Destination::Udp(addr),
                SyslogTransport::Tcp => Destination::Tcp(addr),
            });
        }
        Syslog::with_destinations(config.facility.code(), dests)
    }

    /// Starts one task per destination; `facility` is the RFC 5424 facility number.
    pub fn with_destinations(facility: u8, dests: Vec<Destination>) -> Syslog {
        let facility = facility_of(facility);
        let remote = Formatter3164 {
            facility,
            process: "vpnd".into(),
            pid: std::process::id(),
            ..Formatter3164::default()
        };
        // The local daemon adds the host name itself.
        let local = Formatter3164 {
            hostname: None,
            ..remote.clone()
        };
        let mut tasks = Vec::new();
        let sinks = dests
            .into_iter()
            .map(|d| {
                let (tx, rx) = mpsc::channel(QUEUE_LIMIT);
                tasks.push(tokio::spawn(sink::run(d.clone(), rx)));
                (d, tx)
            })
            .collect();
        Syslog {
            local,
            remote,
            sinks,
            tasks,
        }
    }

    /// Sends `text` at severity notice (IOS's level 5) to every destination.
    pub fn notice(&self, text: &str) {
        let (mut local, mut remote) = (Vec::new(), Vec::new());
        let _ = self.local.format(&mut local, Severity::LOG_NOTICE, text);
        let _ = self.remote.format(&mut remote, Severity::LOG_NOTICE, text);
        for (d, tx) in &self.sinks {
            let msg = match d {
                Destination::Local(_) => local.clone(),
                _ => remote.clone(),
            };
            if let Err(e) = tx.try_send(msg) {
                error!(destination = %d, "syslog notice NOT queued ({e}): {text}");
            }
        }
    }
}

impl Syslog {
    /// At daemon stop: every destination gets up to `grace` to send what it holds.
    pub async fn shutdown(self, grace: std::time::Duration) {
        drop(self.sinks);
        let all = futures::future::join_all(self.tasks);
        if tokio::time::timeout(grace, all).await.is_err() {
            error!("syslog: notices still unsent at stop after {grace:?}");
        }
    }
}

/// The `syslog` crate's facility for an RFC 5424 facility number.
fn facility_of(code: u8) -> syslog::Facility {
    use syslog::Facility::*;
    match code {
        0 => LOG_KERN,
        1 => LOG_USER,
        2 => LOG_MAIL,
        3 => LOG_DAEMON,
        4 => LOG_AUTH,
        5 => LOG_SYSLOG,
        6 => LOG_LPR,
        7 => LOG_NEWS,
        8 => LOG_UUCP,
        9 => LOG_CRON,
        10 => LOG_AUTHPRIV,
        11 => LOG_FTP,
        16 => LOG_LOCAL0,
        17 => LOG_LOCAL1,
        18 => LOG_LOCAL2,
        19 => LOG_LOCAL3,
        20 => LOG_LOCAL4,
        21 => LOG_LOCAL5,
        22 => LOG_LOCAL6,
        _ => LOG_LOCAL7,
    }
}

#[cfg(test)]
mod tests;
