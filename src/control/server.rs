//! The daemon's end of the control socket. Each client connection is a task that parses
//! request lines and hands each command to the daemon's main task (the one owner of the
//! session table) with a reply channel; a client that sends garbage gets an error line and
//! is disconnected, and nothing else notices.
//!
//! What a client cannot do to the daemon:
//! - **exhaust its descriptors or spin it**: at most `control.max_clients` connections are
//!   served (root and the daemon's own user get [`Limits::privileged_reserve`] more); above
//!   that a client is answered "too many control clients" and closed at once. An `accept`
//!   that fails (EMFILE, ENFILE, ENOBUFS...) is retried after a back-off of 10 ms doubling
//!   to 1 s (reset by a success), never in a busy loop, and logged at most once a minute
//!   with the number of failures since the last line.
//! - **sit on a connection**: a request line must be complete within
//!   [`Limits::idle_timeout`] of the connection opening or of the previous answer; bytes
//!   trickled in do not extend it.
//! - **grow its memory**: a request line holds at most [`MAX_REQUEST`] bytes; all
//!   connections together hold at most [`FREE_PER_CLIENT`] bytes each plus a shared
//!   [`Limits::buffer_budget`]; a connection that needs more than the budget has left is
//!   answered and closed.
//! - **stall anyone by not reading**: an answer must be written within
//!   [`Limits::write_timeout`], or the connection is dropped. The main task only hands the
//!   answer over a channel and never waits on a client.
//!
//! Who may do what is decided per connection from the client's credentials as the kernel
//! recorded them at `connect` (SO_PEERCRED for the user, SO_PEERGROUPS for every group,
//! supplementary ones included): root and the daemon's own user may use every command,
//! members of `control.admin_group` too, members of `control.group` the read-only commands
//! (`show ...`); everyone else is answered with the groups they would need and closed. The
//! socket file itself is not chowned (that needs CAP_CHOWN, which the unit does not grant);
//! with a group configured it is mode 0666 and the credentials are the access control.

use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::OwnedReadHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use super::proto::{parse_request, Command, RequestError, Response, MAX_REQUEST};
use crate::config::{local_group_gid, ControlConfig};

/// A command for the main task and where its answer goes.
pub struct Request {
    pub command: Command,
    pub reply: oneshot::Sender<Response>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("control socket {}: {what}: {error}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        error: std::io::Error,
    },
    #[error("control socket {}: exists and is not a socket; vpnd replaces only a stale socket", .0.display())]
    NotASocket(PathBuf),
    #[error("control socket group '{0}' does not exist in /etc/group")]
    NoGroup(String),
}

/// Each connection may hold this many request bytes without drawing on the shared budget
/// (vpnctl's requests are a few hundred bytes).
pub const FREE_PER_CLIENT: usize = 4096;
const ACCEPT_BACKOFF_FIRST: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// While accepts keep failing, a reminder at most this often.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(60);
/// A refused client's connection stays open this long at most, for its request to arrive:
/// closing before it is sent would make the client's write fail, and an old vpnctl would
/// then report a broken pipe instead of the refusal.
const REFUSE_LINGER: Duration = Duration::from_secs(1);

/// The server's limits; [`Limits::from_config`] for the daemon, shorter ones for tests.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once (`control.max_clients`).
    pub max_clients: usize,
    /// Extra connections for root and the daemon's own user, so that a group member who
    /// opens `max_clients` connections does not lock the administrator out.
    pub privileged_reserve: usize,
    /// A request line must be complete this long after the connection opened or the last
    /// answer went out [10 s].
    pub idle_timeout: Duration,
    /// An answer must be written within this [10 s].
    pub write_timeout: Duration,
    /// Request bytes beyond [`FREE_PER_CLIENT`] that all connections may hold together
    /// [1 MiB].
    pub buffer_budget: usize,
}

impl Limits {
    pub fn from_config(c: &ControlConfig) -> Limits {
        Limits {
            max_clients: c.max_clients,
            privileged_reserve: 8,
            idle_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            buffer_budget: 1 << 20,
        }
    }
}

/// What the server did, for `show`-style diagnostics and for tests.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections being served now.
    pub clients: AtomicUsize,
    /// Request bytes held now, all connections together.
    pub buffered: AtomicUsize,
    /// The most request bytes ever held at once.
    pub peak_buffered: AtomicUsize,
    /// Of `buffered`, the part above each connection's [`FREE_PER_CLIENT`].
    budget_used: AtomicUsize,
    /// Refused connections still open (each at most [`REFUSE_LINGER`]).
    refusing: AtomicUsize,
    /// `accept` calls that failed.
    pub accept_errors: AtomicU64,
    /// Log lines written about failed accepts (at most one a minute).
    pub accept_error_logs: AtomicU64,
    /// Clients answered "too many control clients".
    pub refused_busy: AtomicU64,
    /// Clients refused for their credentials (a whole connection, or one command).
    pub refused_access: AtomicU64,
    /// Connections closed for not completing a request in time.
    pub closed_idle: AtomicU64,
    /// Connections dropped for not reading their answer in time.
    pub closed_write_timeout: AtomicU64,
    /// Connections closed because the shared buffer budget was spent.
    pub closed_over_budget: AtomicU64,
}

/// A running control server.
#[derive(Clone)]
pub struct Server {
    pub stats: Arc<Stats>,
}

/// Who may use the socket: the configured groups, resolved once at start.
#[derive(Debug, Clone)]
pub struct Access {
    /// `control.group`: read-only commands.
    pub read: Option<(String, u32)>,
    /// `control.admin_group`: every command.
    pub admin: Option<(String, u32)>,
    /// The daemon's own effective uid (may do everything, as root may).
    pub own_uid: u32,
}

/// A client's credentials as the kernel recorded them when it connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCred {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (SO_PEERGROUPS).
    pub groups: Vec<u32>,
}

/// What a client may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    None,
    /// Read-only commands.
    Read,
    /// Every command.
    Admin,
}

impl Access {
    pub fn from_config(c: &ControlConfig) -> Result<Access, ServerError> {
        let resolve = |g: &Option<String>| -> Result<Option<(String, u32)>, ServerError> {
            g.as_ref()
                .map(|g| {
                    local_group_gid(g)
                        .map(|gid| (g.clone(), gid))
                        .ok_or_else(|| ServerError::NoGroup(g.clone()))
                })
                .transpose()
        };
        Ok(Access {
            read: resolve(&c.group)?,
            admin: resolve(&c.admin_group)?,
            // SAFETY: geteuid cannot fail.
            own_uid: unsafe { libc::geteuid() },
        })
    }

    /// Whether the client is root or runs as the daemon's own user.
    pub fn privileged(&self, c: &PeerCred) -> bool {
        c.uid == 0 || c.uid == self.own_uid
    }

    pub fn level(&self, c: &PeerCred) -> Level {
        let member = |g: &Option<(String, u32)>| {
            g.as_ref()
                .is_some_and(|(_, gid)| c.gid == *gid || c.groups.contains(gid))
        };
        if self.privileged(c) || member(&self.admin) {
            Level::Admin
        } else if member(&self.read) {
            Level::Read
        } else {
            Level::None
        }
    }

    /// The answer to a client that may do nothing.
    pub fn refusal(&self, c: &PeerCred) -> String {
        match (&self.read, &self.admin) {
            (None, None) => format!(
                "access refused: uid {} may not use vpnd's control socket (only root may; \
                 no control.group or control.admin_group is configured)",
                c.uid
            ),
            (r, a) => {
                let mut needs = Vec::new();
                if let Some((g, _)) = r {
                    needs.push(format!("group {g} (show commands)"));
                }
                if let Some((g, _)) = a {
                    needs.push(format!("group {g} (every command)"));
                }
                format!(
                    "access refused: uid {} is not a member of {}",
                    c.uid,
                    needs.join(" or ")
                )
            }
        }
    }

    /// Whether a client at `level` may run `command`; the refusal names the group needed.
    pub fn check(&self, level: Level, command: &Command) -> Result<(), String> {
        let need = if command.changes_state() {
            Level::Admin
        } else {
            Level::Read
        };
        if level >= need {
            return Ok(());
        }
        let group = match need {
            Level::Admin => &self.admin,
            _ => &self.read,
        };
        Err(match group {
            Some((g, _)) => format!("{} needs membership of group {g}", command.name()),
            None => format!(
                "{} is for root only (no control.{} is configured)",
                command.name(),
                if need == Level::Admin {
                    "admin_group"
                } else {
                    "group"
                }
            ),
        })
    }
}

/// The credentials of the process at the other end of `fd`, as of its `connect`.
pub fn peer_cred(fd: &impl AsRawFd) -> std::io::Result<PeerCred> {
    let fd = fd.as_raw_fd();
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes given.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: `groups` is valid for writes of `len` bytes.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = len as usize / std::mem::size_of::<libc::gid_t>();
        if r == 0 {
            groups.truncate(n);
            break;
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            // The kernel says how much room it needs.
            Some(libc::ERANGE) if n > groups.len() && n <= 65536 => groups.resize(n, 0),
            // A kernel before 4.13: the primary group only.
            Some(libc::ENOPROTOOPT) => {
                groups.clear();
                break;
            }
            _ => return Err(e),
        }
    }
    Ok(PeerCred {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
        groups,
    })
}

/// Binds the socket with the default limits and no group split (labtool's fake daemon).
/// The daemon uses [`start`].
pub fn spawn(
    path: &Path,
    mode: u32,
    group: Option<&str>,
    to_main: mpsc::Sender<Request>,
) -> Result<(), ServerError> {
    let mut c = ControlConfig::at(path);
    c.mode = mode;
    c.group = group.map(str::to_string);
    start(&c, to_main).map(|_| ())
}

/// Binds `config.socket` (replacing a stale socket, never another file), sets its mode and
/// serves it with the limits of [`Limits::from_config`].
pub fn start(
    config: &ControlConfig,
    to_main: mpsc::Sender<Request>,
) -> Result<Server, ServerError> {
    start_with(config, Limits::from_config(config), to_main)
}

/// [`start`] with explicit limits.
pub fn start_with(
    config: &ControlConfig,
    limits: Limits,
    to_main: mpsc::Sender<Request>,
) -> Result<Server, ServerError> {
    let path = config.socket.as_path();
    let io = |what: &'static str| {
        move |error| ServerError::Io {
            path: path.to_path_buf(),
            what,
            error,
        }
    };
    let access = Access::from_config(config)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("creating its directory"))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(io("removing the stale socket"))?
        }
        Ok(_) => return Err(ServerError::NotASocket(path.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("looking at the path")(e)),
    }
    let listener = UnixListener::bind(path).map_err(io("binding"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(config.mode))
        .map_err(io("setting its mode"))?;
    let stats = Arc::new(Stats::default());
    tokio::spawn(accept_loop(
        listener,
        Arc::new(access),
        limits,
        stats.clone(),
        to_main,
    ));
    Ok(Server { stats })
}

async fn accept_loop(
    listener: UnixListener,
    access: Arc<Access>,
    limits: Limits,
    stats: Arc<Stats>,
    to_main: mpsc::Sender<Request>,
) {
    let mut backoff = ACCEPT_BACKOFF_FIRST;
    // Failures since the last log line, and when that was: at most one line a minute.
    let mut unlogged: u64 = 0;
    let mut last_log: Option<tokio::time::Instant> = None;
    let mut failing = false;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                if failing {
                    debug!("control socket: accepting again");
                    failing = false;
                    backoff = ACCEPT_BACKOFF_FIRST;
                }
                admit(stream, &access, &limits, &stats, &to_main);
            }
            Err(e) => {
                failing = true;
                unlogged += 1;
                stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                let now = tokio::time::Instant::now();
                if last_log.is_none_or(|t| now - t >= ACCEPT_LOG_EVERY) {
                    last_log = Some(now);
                    stats.accept_error_logs.fetch_add(1, Ordering::Relaxed);
                    warn!(
                        failed = unlogged,
                        "control socket accept: {e}; retrying after a back-off of up to {} s \
                         (this is logged at most once a minute)",
                        ACCEPT_BACKOFF_MAX.as_secs()
                    );
                    unlogged = 0;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
}

/// Decides on a new connection without waiting on it: serve it, or answer and close.
fn admit(
    stream: UnixStream,
    access: &Arc<Access>,
    limits: &Limits,
    stats: &Arc<Stats>,
    to_main: &mpsc::Sender<Request>,
) {
    let cred = match peer_cred(&stream) {
        Ok(c) => c,
        Err(e) => {
            debug!("control client without credentials: {e}");
            return;
        }
    };
    let level = access.level(&cred);
    if level == Level::None {
        stats.refused_access.fetch_add(1, Ordering::Relaxed);
        debug!(uid = cred.uid, pid = cred.pid, "control client refused");
        refuse(stream, &access.refusal(&cred), stats, limits.max_clients);
        return;
    }
    let cap = if access.privileged(&cred) {
        limits.max_clients + limits.privileged_reserve
    } else {
        limits.max_clients
    };
    let now = stats.clients.load(Ordering::Relaxed);
    if now >= cap {
        stats.refused_busy.fetch_add(1, Ordering::Relaxed);
        debug!(
            uid = cred.uid,
            clients = now,
            "control client refused: too many"
        );
        refuse(
            stream,
            &format!("too many control clients ({now} connected); try again shortly"),
            stats,
            limits.max_clients,
        );
        return;
    }
    stats.clients.fetch_add(1, Ordering::Relaxed);
    let guard = ClientSlot(stats.clone());
    tokio::spawn(serve(
        stream,
        level,
        access.clone(),
        limits.clone(),
        to_main.clone(),
        guard,
    ));
}

/// One error line to a client we will not serve, then the connection is closed once the
/// client's request is in (at most [`REFUSE_LINGER`]). At most `linger_cap` refused
/// connections linger at once; beyond that (a flood) the line is written without waiting
/// (a fresh socket's send buffer is empty) and the connection closed at once.
fn refuse(stream: UnixStream, message: &str, stats: &Arc<Stats>, linger_cap: usize) {
    let mut line = serde_json::to_vec(&Response::error(message)).unwrap_or_default();
    line.push(b'\n');
    if stats.refusing.load(Ordering::Relaxed) >= linger_cap {
        use std::io::Write;
        if let Ok(mut s) = stream.into_std() {
            let _ = s.write(&line);
        }
        return;
    }
    stats.refusing.fetch_add(1, Ordering::Relaxed);
    let slot = Refusing(stats.clone());
    tokio::spawn(async move {
        let _slot = slot;
        let mut stream = stream;
        let _ = tokio::time::timeout(REFUSE_LINGER, async {
            stream.write_all(&line).await?;
            let mut buf = [0u8; 512];
            loop {
                let n = stream.read(&mut buf).await?;
                if n == 0 || buf[..n].contains(&b'\n') {
                    return Ok::<(), std::io::Error>(());
                }
            }
        })
        .await;
    });
}

/// Counts a refused connection while it lingers.
struct Refusing(Arc<Stats>);

impl Drop for Refusing {
    fn drop(&mut self) {
        self.0.refusing.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a served connection while it lives.
struct ClientSlot(Arc<Stats>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

enum LineError {
    Closed,
    TooLong,
    OverBudget,
}

/// A connection's request bytes, accounted in [`Stats`] (returned when dropped).
struct LineBuf {
    buf: Vec<u8>,
    stats: Arc<Stats>,
    budget: usize,
}

impl LineBuf {
    fn over_free(len: usize) -> usize {
        len.saturating_sub(FREE_PER_CLIENT)
    }

    /// Accounts the buffer going from `old` to `new` bytes; `false` if the shared budget
    /// cannot cover the growth (nothing is then accounted).
    fn account(&self, old: usize, new: usize) -> bool {
        let (was, will) = (Self::over_free(old), Self::over_free(new));
        if will > was {
            let extra = will - was;
            let used = self.stats.budget_used.fetch_add(extra, Ordering::Relaxed) + extra;
            if used > self.budget {
                self.stats.budget_used.fetch_sub(extra, Ordering::Relaxed);
                return false;
            }
        } else {
            self.stats
                .budget_used
                .fetch_sub(was - will, Ordering::Relaxed);
        }
        if new >= old {
            let total = self.stats.buffered.fetch_add(new - old, Ordering::Relaxed) + (new - old);
            self.stats.peak_buffered.fetch_max(total, Ordering::Relaxed);
        } else {
            self.stats.buffered.fetch_sub(old - new, Ordering::Relaxed);
        }
        true
    }

    /// The next complete line (without its newline), reading as needed.
    async fn next_line(&mut self, r: &mut OwnedReadHalf) -> Result<Vec<u8>, LineError> {
        let mut scanned = 0;
        loop {
            if let Some(i) = self.buf[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + i;
                let line = self.buf[..end].to_vec();
                let old = self.buf.len();
                self.buf.drain(..=end);
                self.account(old, self.buf.len());
                if self.buf.capacity() > FREE_PER_CLIENT {
                    self.buf.shrink_to(FREE_PER_CLIENT);
                }
                return Ok(line);
            }
            scanned = self.buf.len();
            if self.buf.len() > MAX_REQUEST {
                return Err(LineError::TooLong);
            }
            let mut chunk = [0u8; 2048];
            let want = chunk.len().min(MAX_REQUEST + 1 - self.buf.len());
            let n = match r.read(&mut chunk[..want]).await {
                Ok(0) | Err(_) => return Err(LineError::Closed),
                Ok(n) => n,
            };
            let old = self.buf.len();
            if !self.account(old, old + n) {
                return Err(LineError::OverBudget);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

impl Drop for LineBuf {
    fn drop(&mut self) {
        let len = self.buf.len();
        self.account(len, 0);
    }
}

async fn serve(
    stream: UnixStream,
    level: Level,
    access: Arc<Access>,
    limits: Limits,
    to_main: mpsc::Sender<Request>,
    slot: ClientSlot,
) {
    let stats = slot.0.clone();
    let (mut r, mut w) = stream.into_split();
    let mut lines = LineBuf {
        buf: Vec::new(),
        stats: stats.clone(),
        budget: limits.buffer_budget,
    };
    loop {
        let line = match tokio::time::timeout(limits.idle_timeout, lines.next_line(&mut r)).await {
            Err(_) => {
                stats.closed_idle.fetch_add(1, Ordering::Relaxed);
                debug!("control client closed: no complete request in time");
                let _ = write_line(
                    &mut w,
                    &Response::error("idle: no complete request in time"),
                    &limits,
                )
                .await;
                return;
            }
            Ok(Err(LineError::Closed)) => return,
            Ok(Err(LineError::TooLong)) => {
                let _ = write_line(
                    &mut w,
                    &Response::error(RequestError::TooLong.to_string()),
                    &limits,
                )
                .await;
                return;
            }
            Ok(Err(LineError::OverBudget)) => {
                stats.closed_over_budget.fetch_add(1, Ordering::Relaxed);
                debug!("control client closed: request buffer budget spent");
                let _ = write_line(
                    &mut w,
                    &Response::error("the control socket's request buffers are full; try again"),
                    &limits,
                )
                .await;
                return;
            }
            Ok(Ok(line)) => line,
        };
        let (response, close) = match parse_request(&line) {
            Ok(command) => match access.check(level, &command) {
                Err(refusal) => {
                    stats.refused_access.fetch_add(1, Ordering::Relaxed);
                    (Response::error(refusal), false)
                }
                Ok(()) => {
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
            },
            Err(e) => {
                debug!("control client sent a bad request: {e}");
                (Response::error(e.to_string()), true)
            }
        };
        drop(line);
        match write_line(&mut w, &response, &limits).await {
            Ok(()) if !close => {}
            Ok(()) => return,
            Err(timed_out) => {
                if timed_out {
                    stats.closed_write_timeout.fetch_add(1, Ordering::Relaxed);
                    debug!("control client dropped: it does not read its answers");
                }
                return;
            }
        }
    }
}

/// Writes one response line within the write timeout; `Err(true)` if it timed out.
async fn write_line(
    w: &mut tokio::net::unix::OwnedWriteHalf,
    response: &Response,
    limits: &Limits,
) -> Result<(), bool> {
    let mut out = serde_json::to_vec(response).unwrap_or_default();
    out.push(b'\n');
    match tokio::time::timeout(limits.write_timeout, w.write_all(&out)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(false),
        Err(_) => Err(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::proto::{request_line, Body, Filter};
    use tokio::io::{AsyncBufReadExt, BufReader};

    fn temp_socket(name: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("vpnd-ctl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (dir.join("vpnd.sock"), dir)
    }

    fn limits() -> Limits {
        Limits {
            max_clients: 64,
            privileged_reserve: 0,
            idle_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            buffer_budget: 1 << 20,
        }
    }

    /// Stand-in for the daemon's main task: `clear` answers 7, `show` answers `text`.
    fn answer(mut rx: mpsc::Receiver<Request>, text: String) {
        tokio::spawn(async move {
            while let Some(r) = rx.recv().await {
                let body = match r.command {
                    Command::ShowSessions { .. } => Body::Text { text: text.clone() },
                    _ => Body::Cleared { cleared: 7 },
                };
                let _ = r.reply.send(Response::ok(body));
            }
        });
    }

    fn clear() -> String {
        request_line(Command::ClearSessions {
            filter: Filter::default(),
        })
    }

    /// One request on a new connection, its one answer line.
    async fn ask(path: &Path, line: &str) -> Response {
        let mut s = UnixStream::connect(path).await.unwrap();
        s.write_all(line.as_bytes()).await.unwrap();
        let mut answer = String::new();
        BufReader::new(s).read_line(&mut answer).await.unwrap();
        serde_json::from_str(answer.trim_end())
            .unwrap_or_else(|e| panic!("not a response: {answer:?}: {e}"))
    }

    /// Reads until the server hangs up (or `within` passes: a panic).
    async fn read_to_hangup(s: &mut UnixStream, within: Duration) -> String {
        let mut all = Vec::new();
        tokio::time::timeout(within, s.read_to_end(&mut all))
            .await
            .expect("the server must hang up")
            .unwrap();
        String::from_utf8_lossy(&all).into_owned()
    }

    #[tokio::test]
    async fn garbage_gets_an_error_and_a_hangup_while_good_clients_are_served() {
        let (path, dir) = temp_socket("garbage");
        let (tx, rx) = mpsc::channel::<Request>(4);
        spawn(&path, 0o660, None, tx).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o660
        );
        answer(rx, String::new());

        let mut bad = UnixStream::connect(&path).await.unwrap();
        bad.write_all(b"hello daemon\n").await.unwrap();
        let answer = read_to_hangup(&mut bad, Duration::from_secs(5)).await;
        let r: Response = serde_json::from_str(answer.trim_end()).unwrap();
        assert!(!r.ok);
        assert!(r.error.unwrap().starts_with("not a request: "));

        // Another client, after the bad one, is served as usual, twice on one connection.
        let good = UnixStream::connect(&path).await.unwrap();
        let (r, mut w) = good.into_split();
        let mut lines = BufReader::new(r).lines();
        for _ in 0..2 {
            w.write_all(clear().as_bytes()).await.unwrap();
            let line = lines.next_line().await.unwrap().unwrap();
            let r: Response = serde_json::from_str(&line).unwrap();
            assert_eq!(r.body, Some(Body::Cleared { cleared: 7 }));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn only_a_stale_socket_is_replaced() {
        let (path, dir) = temp_socket("stale");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&path, b"precious").unwrap();
        let (tx, _rx) = mpsc::channel::<Request>(1);
        let e = start(&ControlConfig::at(&path), tx.clone()).err().unwrap();
        assert!(matches!(e, ServerError::NotASocket(_)), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
        std::fs::remove_file(&path).unwrap();
        // A socket left by a previous run is replaced.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        start(&ControlConfig::at(&path), tx).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn peer_credentials_are_the_clients() {
        let (path, dir) = temp_socket("cred");
        std::fs::create_dir_all(&dir).unwrap();
        let l = UnixListener::bind(&path).unwrap();
        let _c = UnixStream::connect(&path).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        let c = peer_cred(&s).unwrap();
        // SAFETY: plain getters.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        assert_eq!((c.uid, c.gid, c.pid), (uid, gid, std::process::id() as i32));
        let mut mine = vec![0 as libc::gid_t; 1024];
        // SAFETY: `mine` has room for 1024 groups.
        let n = unsafe { libc::getgroups(1024, mine.as_mut_ptr()) };
        mine.truncate(n as usize);
        let (mut a, mut b) = (c.groups.clone(), mine);
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn access_levels_and_refusals_name_the_group() {
        let access = Access {
            read: Some(("vpnread".into(), 1001)),
            admin: Some(("vpnadmin".into(), 1002)),
            own_uid: 0,
        };
        let cred = |uid, gid, groups: &[u32]| PeerCred {
            pid: 1,
            uid,
            gid,
            groups: groups.to_vec(),
        };
        assert_eq!(access.level(&cred(0, 0, &[])), Level::Admin, "root");
        assert_eq!(access.level(&cred(1000, 100, &[])), Level::None);
        assert_eq!(access.level(&cred(1000, 1001, &[])), Level::Read, "primary");
        assert_eq!(
            access.level(&cred(1000, 100, &[4, 1001])),
            Level::Read,
            "supplementary"
        );
        assert_eq!(access.level(&cred(1000, 100, &[1002])), Level::Admin);
        let daemon_user = Access {
            own_uid: 998,
            ..access.clone()
        };
        assert_eq!(daemon_user.level(&cred(998, 998, &[])), Level::Admin);

        let show = Command::ShowPeers {};
        let clear = Command::ClearSessions {
            filter: Filter::default(),
        };
        let debug = Command::Debug {
            aaa: false,
            on: true,
        };
        assert_eq!(access.check(Level::Read, &show), Ok(()));
        assert_eq!(
            access.check(Level::Read, &clear),
            Err("clear crypto session needs membership of group vpnadmin".into())
        );
        assert_eq!(
            access.check(Level::Read, &debug),
            Err("debug crypto isakmp needs membership of group vpnadmin".into())
        );
        assert_eq!(access.check(Level::Admin, &clear), Ok(()));
        assert_eq!(
            access.refusal(&cred(1000, 100, &[])),
            "access refused: uid 1000 is not a member of group vpnread (show commands) or \
             group vpnadmin (every command)"
        );
        // Without an admin group, changing commands are root's.
        let read_only = Access {
            admin: None,
            ..access.clone()
        };
        assert_eq!(
            read_only.check(Level::Read, &clear),
            Err(
                "clear crypto session is for root only (no control.admin_group is configured)"
                    .into()
            )
        );
        let none = Access {
            read: None,
            admin: None,
            own_uid: 0,
        };
        assert!(none
            .refusal(&cred(1000, 100, &[]))
            .contains("only root may"));
    }

    #[tokio::test]
    async fn above_max_clients_a_client_is_told_and_the_loop_does_not_spin() {
        let (path, dir) = temp_socket("cap");
        let (tx, rx) = mpsc::channel::<Request>(4);
        let l = Limits {
            max_clients: 4,
            privileged_reserve: 2,
            ..limits()
        };
        let server = start_with(&ControlConfig::at(&path), l, tx).unwrap();
        answer(rx, String::new());
        // This test runs as root or as the daemon's user: max_clients plus the reserve.
        let mut idle = Vec::new();
        for _ in 0..6 {
            idle.push(UnixStream::connect(&path).await.unwrap());
        }
        let stats = &server.stats;
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        while stats.clients.load(Ordering::Relaxed) < 6 {
            assert!(
                tokio::time::Instant::now() < until,
                "6 clients not admitted"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for _ in 0..3 {
            let r = ask(&path, &clear()).await;
            assert!(!r.ok);
            assert!(
                r.error
                    .as_deref()
                    .unwrap()
                    .starts_with("too many control clients (6 connected)"),
                "{r:?}"
            );
        }
        // A client slow to send its request still reads the refusal, not a reset.
        let mut slow = UnixStream::connect(&path).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        slow.write_all(clear().as_bytes()).await.unwrap();
        let answer = read_to_hangup(&mut slow, Duration::from_secs(5)).await;
        assert!(answer.contains("too many control clients"), "{answer}");
        assert_eq!(stats.refused_busy.load(Ordering::Relaxed), 4);
        assert_eq!(stats.accept_errors.load(Ordering::Relaxed), 0);
        assert_eq!(stats.clients.load(Ordering::Relaxed), 6);
        // One idle client leaves: the next one is served.
        drop(idle.pop());
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        while stats.clients.load(Ordering::Relaxed) > 5 {
            assert!(
                tokio::time::Instant::now() < until,
                "the slot was not freed"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            ask(&path, &clear()).await.body,
            Some(Body::Cleared { cleared: 7 })
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_client_trickling_bytes_is_closed_by_the_idle_timeout() {
        let (path, dir) = temp_socket("idle");
        let (tx, rx) = mpsc::channel::<Request>(4);
        let l = Limits {
            idle_timeout: Duration::from_millis(300),
            ..limits()
        };
        let server = start_with(&ControlConfig::at(&path), l, tx).unwrap();
        answer(rx, String::new());
        let s = UnixStream::connect(&path).await.unwrap();
        let (mut r, mut w) = s.into_split();
        let started = std::time::Instant::now();
        // One byte every 50 ms, never a newline: the deadline does not move.
        let trickle = tokio::spawn(async move {
            for _ in 0..100 {
                if w.write_all(b" ").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(3), r.read_to_end(&mut answer))
            .await
            .expect("a trickling client must be closed")
            .unwrap();
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(250), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
        let r: Response = serde_json::from_slice(answer.trim_ascii_end()).unwrap();
        assert!(r.error.unwrap().starts_with("idle"));
        assert_eq!(server.stats.closed_idle.load(Ordering::Relaxed), 1);
        trickle.abort();
        // A client that answers in time is unaffected.
        assert!(ask(&path, &clear()).await.ok);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn many_large_partial_lines_stay_within_the_buffer_budget() {
        let (path, dir) = temp_socket("budget");
        let (tx, rx) = mpsc::channel::<Request>(4);
        let budget = 64 * 1024;
        let l = Limits {
            buffer_budget: budget,
            ..limits()
        };
        let server = start_with(&ControlConfig::at(&path), l, tx).unwrap();
        answer(rx, String::new());
        let stats = server.stats.clone();
        // 40 clients x 60 KB of one unfinished line: 2.4 MB if it were all kept.
        let clients = 40;
        let mut conns = Vec::new();
        for _ in 0..clients {
            let mut s = UnixStream::connect(&path).await.unwrap();
            let junk = vec![b'x'; 60_000];
            // The kernel buffers what the server does not read yet.
            let _ = tokio::time::timeout(Duration::from_secs(2), s.write_all(&junk)).await;
            conns.push(s);
        }
        // Wait until the server has read what it is going to: nothing changes for 300 ms.
        let until = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut last = (usize::MAX, u64::MAX);
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = (
                stats.buffered.load(Ordering::Relaxed),
                stats.closed_over_budget.load(Ordering::Relaxed),
            );
            if now == last || tokio::time::Instant::now() > until {
                break;
            }
            last = now;
        }
        let peak = stats.peak_buffered.load(Ordering::Relaxed);
        let bound = clients * FREE_PER_CLIENT + budget;
        assert!(peak <= bound, "peak {peak} bytes > {bound}");
        assert!(stats.closed_over_budget.load(Ordering::Relaxed) > 0);
        // A normal client still gets in and is served (its request fits the free part).
        assert_eq!(
            ask(&path, &clear()).await.body,
            Some(Body::Cleared { cleared: 7 })
        );
        drop(conns);
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        while stats.buffered.load(Ordering::Relaxed) > 0
            || stats.clients.load(Ordering::Relaxed) > 0
        {
            assert!(tokio::time::Instant::now() < until, "buffers not returned");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(stats.budget_used.load(Ordering::Relaxed), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_client_that_never_reads_is_dropped_and_others_are_served() {
        let (path, dir) = temp_socket("noread");
        let (tx, rx) = mpsc::channel::<Request>(4);
        let l = Limits {
            write_timeout: Duration::from_millis(300),
            ..limits()
        };
        let server = start_with(&ControlConfig::at(&path), l, tx).unwrap();
        // Each show answer is 1 MB: more than a socket buffer holds.
        answer(rx, "x".repeat(1 << 20));
        let show = request_line(Command::ShowSessions {
            filter: Filter::default(),
            text: None,
        });
        let mut hog = UnixStream::connect(&path).await.unwrap();
        for _ in 0..20 {
            hog.write_all(show.as_bytes()).await.unwrap();
        }
        // Meanwhile another client is answered at once.
        let started = std::time::Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(2), ask(&path, &clear()))
            .await
            .expect("a client that does not read must not hold the others up");
        assert_eq!(r.body, Some(Body::Cleared { cleared: 7 }));
        assert!(started.elapsed() < Duration::from_secs(1));
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        while server.stats.closed_write_timeout.load(Ordering::Relaxed) == 0 {
            assert!(
                tokio::time::Instant::now() < until,
                "the hog was not dropped"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // And its connection is gone: reading finds the end after what was buffered.
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), hog.read_to_end(&mut rest))
            .await
            .expect("the hog's connection must be closed")
            .ok();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
