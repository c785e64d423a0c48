//! One destination's owner task: its transport and its queue.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket, UnixDatagram};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::QUEUE_LIMIT;

/// Where notices go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// The local syslog daemon's datagram socket (`/dev/log`).
    Local(PathBuf),
    Udp(SocketAddr),
    /// TCP with octet-counting framing (RFC 6587 3.4.1): `LEN SP MSG`.
    Tcp(SocketAddr),
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Local(p) => write!(f, "unix:{}", p.display()),
            Destination::Udp(a) => write!(f, "udp:{a}"),
            Destination::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// Retry delays while a destination refuses: doubling from the first to the last.
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);

enum Transport {
    Local(Option<UnixDatagram>, PathBuf),
    Udp(Option<UdpSocket>, SocketAddr),
    Tcp(Option<TcpStream>, SocketAddr),
}

impl Transport {
    fn new(d: Destination) -> Transport {
        match d {
            Destination::Local(p) => Transport::Local(None, p),
            Destination::Udp(a) => Transport::Udp(None, a),
            Destination::Tcp(a) => Transport::Tcp(None, a),
        }
    }

    /// Hands one message to the transport; an error leaves it queued.
    async fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        match self {
            // Unconnected sends: a syslog daemon that restarted binds a new socket at the
            // same path, which the next send reaches.
            Transport::Local(sock, path) => {
                if sock.is_none() {
                    *sock = Some(UnixDatagram::unbound()?);
                }
                sock.as_ref().unwrap().send_to(msg, &*path).await.map(drop)
            }
            Transport::Udp(sock, addr) => {
                if sock.is_none() {
                    let any: SocketAddr = if addr.is_ipv4() {
                        "0.0.0.0:0".parse().unwrap()
                    } else {
                        "[::]:0".parse().unwrap()
                    };
                    *sock = Some(UdpSocket::bind(any).await?);
                }
                sock.as_ref().unwrap().send_to(msg, *addr).await.map(drop)
            }
            Transport::Tcp(conn, addr) => {
                // A receiver that went away since the last send closed the connection: the
                // FIN is waiting to be read. Writing into it would lose this message.
                if let Some(c) = conn {
                    let mut probe = [0u8; 64];
                    match c.try_read(&mut probe) {
                        Ok(0) => *conn = None,
                        Err(e) if e.kind() != io::ErrorKind::WouldBlock => *conn = None,
                        _ => {}
                    }
                }
                if conn.is_none() {
                    let c = TcpStream::connect(*addr).await?;
                    info!(destination = %addr, "syslog: TCP connection established");
                    *conn = Some(c);
                }
                let mut frame = format!("{} ", msg.len()).into_bytes();
                frame.extend_from_slice(msg);
                let r = conn.as_mut().unwrap().write_all(&frame).await;
                if r.is_err() {
                    *conn = None;
                }
                r
            }
        }
    }

    /// Resolves when a TCP connection is closed by the receiver (its FIN, or an error);
    /// never for the datagram transports or while unconnected.
    async fn closed(&mut self) {
        match self {
            Transport::Tcp(Some(c), addr) => {
                let mut buf = [0u8; 512];
                loop {
                    if c.readable().await.is_err() {
                        break;
                    }
                    match c.try_read(&mut buf) {
                        Ok(0) => break,
                        Ok(_) => continue, // receivers send nothing; ignore it
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(_) => break,
                    }
                }
                warn!(destination = %addr, "syslog: the receiver closed the TCP connection");
                *self = Transport::Tcp(None, *addr);
            }
            _ => std::future::pending().await,
        }
    }
}

/// No local syslog daemon: nothing listens at /dev/log (absent, or a stale socket).
fn no_listener(dest: &Destination, e: &io::Error) -> bool {
    matches!(dest, Destination::Local(_))
        && matches!(
            e.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
        )
}

/// The task: messages in from the daemon, out to the transport, in order. `depth` tells
/// the metrics endpoint how many wait here.
pub(super) async fn run(
    dest: Destination,
    mut rx: mpsc::Receiver<Vec<u8>>,
    depth: Arc<AtomicUsize>,
) {
    let mut transport = Transport::new(dest.clone());
    let mut queue: VecDeque<Vec<u8>> = VecDeque::new();
    let mut retry = RETRY_FIRST;
    let mut failing = false;
    // No local syslog daemon since the start (a container, a minimal host): notices for
    // /dev/log are dropped, said once; each is in vpnd's own log too, and queueing them
    // would end in one "queue full" error per notice. Once one was delivered, a missing
    // socket is a syslogd restart, and notices wait for it as for any destination.
    let mut absent = false;
    let mut delivered = false;
    loop {
        while let Some(m) = queue.front() {
            match transport.send(m).await {
                Ok(()) => {
                    queue.pop_front();
                    if failing || absent {
                        info!(destination = %dest, queued = queue.len(), "syslog: destination reachable again");
                    }
                    failing = false;
                    absent = false;
                    delivered = true;
                    retry = RETRY_FIRST;
                }
                Err(e) if !delivered && no_listener(&dest, &e) => {
                    if !absent {
                        info!(destination = %dest, "syslog: no local syslog daemon ({e}); local notices are dropped until one listens (they are in vpnd's own log)");
                    }
                    absent = true;
                    queue.clear();
                }
                Err(e) => {
                    if !failing {
                        warn!(destination = %dest, queued = queue.len(), "syslog: cannot send, keeping notices queued: {e}");
                    }
                    failing = true;
                    break;
                }
            }
        }
        depth.store(queue.len(), Ordering::Relaxed);
        tokio::select! {
            m = rx.recv() => match m {
                Some(m) if queue.len() < QUEUE_LIMIT => {
                    queue.push_back(m);
                    depth.store(queue.len(), Ordering::Relaxed);
                }
                Some(m) => error!(
                    destination = %dest,
                    queued = queue.len(),
                    "syslog: queue full, notice NOT sent: {}",
                    String::from_utf8_lossy(&m)
                ),
                None => {
                    // The daemon is stopping: one last try for what is queued.
                    while let Some(m) = queue.pop_front() {
                        if let Err(e) = transport.send(&m).await {
                            error!(destination = %dest, lost = queue.len() + 1, "syslog: stopping with notices unsent: {e}");
                            return;
                        }
                    }
                    return;
                }
            },
            _ = tokio::time::sleep(retry), if failing => {
                retry = (retry * 2).min(RETRY_MAX);
            }
            _ = transport.closed() => {}
        }
    }
}
