//! Syslog notices (`%CRYPTO-5-SESSION_STATUS`) to the local syslog socket and to remote
//! receivers over UDP (RFC 5426) and TCP with octet-counting framing (RFC 6587 3.4.1).
//!
//! [`header`] formats each message (RFC 3164 header: priority, timestamp, host,
//! `vpnd[pid]:`). The `syslog` crate's transports are not used: its TCP sends no framing and,
//! once the receiver restarts, fails every later send with ECONNREFUSED (../shared/CRATES.md);
//! nor its formatter (see [`header`] for why). So each
//! destination here has one owner task ([`sink`]) holding a bounded queue: a message leaves
//! the queue only once the transport took it, a TCP connection is re-established (with
//! back-off) after the receiver restarts, and what was queued meanwhile is sent then. A full
//! queue is reported as an error with its count, never dropped silently.

pub mod header;
mod sink;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::error;

use crate::config::{SyslogConfig, SyslogTimezone, SyslogTransport};
pub use sink::Destination;

/// How many messages wait per destination while it is unreachable.
pub const QUEUE_LIMIT: usize = 10_000;

/// Where the local syslog daemon listens.
pub const DEV_LOG: &str = "/dev/log";

/// The daemon's handle: formats a notice once per header kind and hands it to every
/// destination's task.
pub struct Syslog {
    facility: u8,
    utc: bool,
    hostname: String,
    /// `vpnd[pid]`.
    tag: String,
    sinks: Vec<(Destination, mpsc::Sender<Vec<u8>>)>,
    /// Per destination: notices its task holds (the channel's backlog comes on top).
    depths: Vec<Arc<AtomicUsize>>,
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
        let mut s = Syslog::with_destinations(config.facility.code(), dests);
        s.utc = config.timezone == SyslogTimezone::Utc;
        s
    }

    /// Starts one task per destination; `facility` is the RFC 5424 facility number.
    pub fn with_destinations(facility: u8, dests: Vec<Destination>) -> Syslog {
        let mut tasks = Vec::new();
        let mut depths = Vec::new();
        let sinks = dests
            .into_iter()
            .map(|d| {
                let (tx, rx) = mpsc::channel(QUEUE_LIMIT);
                let depth = Arc::new(AtomicUsize::new(0));
                tasks.push(tokio::spawn(sink::run(d.clone(), rx, depth.clone())));
                depths.push(depth);
                (d, tx)
            })
            .collect();
        Syslog {
            facility,
            utc: false,
            hostname: header::hostname(),
            tag: format!("vpnd[{}]", std::process::id()),
            sinks,
            depths,
            tasks,
        }
    }

    /// Notices waiting per destination (`unix:/dev/log`, `udp:…`, `tcp:…`), for metrics.
    pub fn queued(&self) -> Vec<(String, u64)> {
        self.sinks
            .iter()
            .zip(&self.depths)
            .map(|((d, tx), n)| {
                let backlog = tx.max_capacity() - tx.capacity();
                (d.to_string(), (n.load(Ordering::Relaxed) + backlog) as u64)
            })
            .collect()
    }

    /// Sends `text` at severity notice (IOS's level 5) to every destination.
    pub fn notice(&self, text: &str) {
        const NOTICE: u8 = 5;
        let now = crate::unix_now() as i64;
        let line =
            |host| header::format(self.facility, NOTICE, now, self.utc, host, &self.tag, text);
        // The local daemon adds the host name itself.
        let (local, remote) = (line(None), line(Some(self.hostname.as_str())));
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

#[cfg(test)]
mod tests;
