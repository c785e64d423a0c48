//! The daemon's configuration: `/etc/vpnd/vpnd.yaml`.
//!
//! Two layers: `file` holds the YAML as written (with source locations), `validate` turns
//! it into the typed [`Config`] below, applying defaults and checking everything it can
//! before the daemon touches the kernel. Loading is all or nothing: [`Config::load`]
//! returns either a whole, valid configuration or a [`ConfigError`] listing every problem
//! found, each as `file:line:column: field: what is wrong`. A configuration that loads can
//! still carry [`Config::warnings`] (things that work but are probably wrong, or that depend
//! on the host): `vpnd --check` prints them and the daemon logs them at start.
//!
//! What validation checks, beyond the types:
//! - every duration is bounded (see the `MAX_*` constants), so no timer can overflow;
//! - pre-shared keys: at least [`MIN_PSK`] bytes (a warning below [`GOOD_PSK`]); a `psk_file`
//!   must be a regular file of at most [`MAX_PSK_FILE`] bytes that other users cannot read
//!   (a warning when its group can);
//! - no two peers with the same address, port and front-door VRF;
//! - what the daemon's start would otherwise trip over: the control socket path (length,
//!   not an existing non-socket, a directory that can be made), the control groups (in
//!   /etc/group), the accounting journal's path; local addresses that this host does not
//!   have are a warning (they may come up before the daemon starts).
//!
//! ```no_run
//! let cfg = vpnd::config::Config::load("/etc/vpnd/vpnd.yaml")?;
//! for peer in &cfg.peers {
//!     println!("{} -> {:?}", peer.name, peer.remote);
//! }
//! # Ok::<(), vpnd::config::ConfigError>(())
//! ```

mod diff;
mod engine;
mod file;
pub mod parse;
mod validate;

pub use diff::{ConfigDiff, PeerChange};
pub use validate::{
    DEFAULT_MAX_CLIENTS, GOOD_PSK, MAX_CHILD_KILOBYTES, MAX_DEAD_TIME, MAX_DPD, MAX_LIFETIME,
    MAX_MAX_CLIENTS, MAX_PSK_FILE, MAX_RADIUS_TIMEOUT, MAX_RETRANSMIT_TIMEOUT, MAX_UPDATE_PERIODIC,
    MIN_LIFETIME, MIN_PSK,
};

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::ike::codec::Identity;
use crate::ike::proposal::{DhGroup, Proposal};

/// Where the daemon reads its configuration unless told otherwise.
pub const DEFAULT_PATH: &str = "/etc/vpnd/vpnd.yaml";

/// The whole, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Addresses and ports IKE uses, and kernel SA tagging.
    pub local: LocalConfig,
    /// The vpnctl control socket.
    pub control: ControlConfig,
    /// The OpenMetrics endpoint; `None` (the default): off.
    pub metrics: Option<MetricsConfig>,
    /// Daemon log verbosity.
    pub log: LogConfig,
    /// Syslog output (local and remote).
    pub syslog: SyslogConfig,
    /// RADIUS servers and server groups.
    pub radius: RadiusConfig,
    /// Accounting method lists and the on-disk journal.
    pub accounting: AccountingConfig,
    /// Linux VRFs: name → routing table. A route-based peer's `ivrf` (vpnd creates the VRF
    /// device when missing and puts the peer's XFRM interface in it) or `fvrf` (the VRF
    /// that holds the uplink: it must exist; IKE's sockets are bound to it).
    pub vrfs: BTreeMap<String, u32>,
    /// The IKE peers, in file order.
    pub peers: Vec<PeerConfig>,
    /// `pools:` (IOS `ip local pool`, `ipv6 local pool`): named IPv4 or IPv6 ranges client
    /// addresses come from.
    pub pools: Vec<crate::ike::AddressPool>,
    /// `dos:`: the responder's bounds on half-open IKE SAs (RFC 7296 2.6), the engine's
    /// own type.
    pub dos: crate::ike::DosConfig,
    /// What loaded but deserves a look, in file order (a location of line 0 means the
    /// whole file, e.g. "no peers"). `vpnd --check` prints them; the daemon logs them.
    pub warnings: Vec<Problem>,
}

impl Config {
    /// Reads and validates `path`. Every problem is reported, with line and column.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map(Zeroizing::new)
            .map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        Config::from_str(&text, path)
    }

    /// Parses and validates `text`; `path` names the file in messages, and relative
    /// `psk_file` paths are taken relative to its directory.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str, path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let raw: file::FileConfig = serde_saphyr::from_str(text).map_err(|e| {
            use serde_saphyr::MessageFormatter;
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            let message = serde_saphyr::DefaultMessageFormatter
                .format_message(e.without_snippet())
                .into_owned();
            ConfigError::Syntax(Problem {
                file: path.to_path_buf(),
                line,
                column,
                field: String::new(),
                message,
            })
        })?;
        validate::validate(raw, path)
    }

    /// The peer's front-door VRF when it is a real one (named in `vrfs`; validation allows
    /// that only for route-based peers), not a label.
    pub fn front_vrf<'a>(&'a self, p: &'a PeerConfig) -> Option<&'a str> {
        p.fvrf.as_deref().filter(|v| self.vrfs.contains_key(*v))
    }

    /// Every real front-door VRF, once.
    pub fn front_vrfs(&self) -> std::collections::BTreeSet<&str> {
        self.peers
            .iter()
            .filter_map(|p| self.front_vrf(p))
            .collect()
    }

    /// The peer called `name`.
    pub fn peer(&self, name: &str) -> Option<&PeerConfig> {
        self.peers.iter().find(|p| p.name == name)
    }
}

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, as given to [`Config::load`] / [`Config::from_str`].
    pub file: PathBuf,
    /// 1-based line; 0 if the parser could not tell.
    pub line: u64,
    /// 1-based column; 0 if the parser could not tell.
    pub column: u64,
    /// The key path, e.g. `peers[0].description`; empty for YAML syntax errors.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.field, self.message)
        }
    }
}

/// Why a configuration was refused. Nothing of it was loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file itself could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Not valid YAML, a value of the wrong type, or an unknown key (the parser stops at
    /// the first).
    #[error("{0}")]
    Syntax(Problem),
    /// Well-formed YAML that does not make a valid configuration: every problem found,
    /// in file order.
    #[error("{}", display_problems(.0))]
    Invalid(Vec<Problem>),
}

fn display_problems(p: &[Problem]) -> String {
    p.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

impl ConfigError {
    /// The located problems (empty for [`ConfigError::Read`]).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Syntax(p) => std::slice::from_ref(p),
            ConfigError::Invalid(v) => v,
        }
    }
}

/// A secret (pre-shared key, RADIUS shared secret): wiped from memory when dropped and
/// never shown by `Debug`.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(Zeroizing::new(bytes))
    }
    /// The secret bytes, for the code that needs them (PSK AUTH, RADIUS authenticators).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl PartialEq for Secret {
    /// Length and content, without an early exit on the first differing byte.
    fn eq(&self, other: &Secret) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(other.0.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}
impl Eq for Secret {}

/// `local:`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalConfig {
    /// Addresses IKE binds to; empty means all addresses.
    pub addresses: Vec<IpAddr>,
    /// IKE port [500].
    pub port: u16,
    /// NAT-T (UDP-encapsulated) port [4500].
    pub nat_t_port: u16,
    /// RADIUS NAS-IP-Address [first of `addresses`]; `None`: the daemon uses the source
    /// address of its RADIUS socket.
    pub nas_ip: Option<IpAddr>,
    /// First reqid of the band vpnd tags its kernel SAs with [0x76700000].
    pub reqid_base: u32,
}

/// `control:`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlConfig {
    /// Unix socket path [/run/vpnd/vpnd.sock].
    pub socket: PathBuf,
    /// Members of this group may use the read-only commands (`show ...`); `None`: only
    /// root, the daemon's own user and `admin_group` may.
    pub group: Option<String>,
    /// Members of this group may use every command, including the ones that change the
    /// daemon (`clear`, `debug`, a future reload); `None`: only root and the daemon's user.
    pub admin_group: Option<String>,
    /// Socket permission bits [0o666 when a group is set, else 0o660]. vpnd does not chown
    /// the socket (that needs CAP_CHOWN, which the unit does not grant): it stays vpnd's,
    /// and every connection is authorized from the client's kernel-reported credentials
    /// (SO_PEERCRED, SO_PEERGROUPS), so with groups the file must let everyone connect.
    pub mode: u32,
    /// At most this many clients at once [64]; more get "too many control clients". Root
    /// and the daemon's own user have a few more slots beyond it.
    pub max_clients: usize,
}

impl ControlConfig {
    /// The defaults of a `control:` section with only a socket path (as labtool uses).
    pub fn at(socket: impl Into<PathBuf>) -> ControlConfig {
        ControlConfig {
            socket: socket.into(),
            group: None,
            admin_group: None,
            mode: 0o660,
            max_clients: DEFAULT_MAX_CLIENTS,
        }
    }
}

/// `metrics:`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    pub listen: MetricsListen,
}

/// Where `GET /metrics` is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsListen {
    Tcp(std::net::SocketAddr),
    /// A Unix stream socket (mode 0660, root's: for a local scraper or a proxy).
    Unix(PathBuf),
}

impl fmt::Display for MetricsListen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricsListen::Tcp(a) => write!(f, "http://{a}/metrics"),
            MetricsListen::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// The gid of a group, from /etc/group (no NSS: the control groups of a daemon are local,
/// and the check must not wait on a directory server).
pub fn local_group_gid(name: &str) -> Option<u32> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then(|| f.nth(1)?.parse().ok())?
    })
}

/// The user the shipped unit runs vpnd as (`User=` in systemd/vpnd.service).
pub const UNIT_USER: &str = "vpnd";

/// The uid and primary gid of a user, from /etc/passwd (no NSS, as [`local_group_gid`]).
pub fn local_user_ids(name: &str) -> Option<(u32, u32)> {
    let users = std::fs::read_to_string("/etc/passwd").ok()?;
    users.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&name))
            .then(|| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))?
    })
}

/// `log:`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// Verbosity [info].
    pub level: LogLevel,
}

/// Log verbosity, as `tracing` levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// The name as written (and as `tracing_subscriber::EnvFilter` takes it).
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// `syslog:`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogConfig {
    /// Also log to the local syslog socket /dev/log [true].
    pub local: bool,
    /// Facility for every message [local4].
    pub facility: Facility,
    /// Remote receivers.
    pub servers: Vec<SyslogServer>,
    /// The zone of the RFC 3164 timestamps [local].
    pub timezone: SyslogTimezone,
}

/// Timestamps in local time (IOS `service timestamps log datetime localtime`) or UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogTimezone {
    #[default]
    Local,
    Utc,
}

/// Syslog facilities (RFC 5424 6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Facility {
    Kern,
    User,
    Mail,
    Daemon,
    Auth,
    Syslog,
    Lpr,
    News,
    Uucp,
    Cron,
    Authpriv,
    Ftp,
    Local0,
    Local1,
    Local2,
    Local3,
    #[default]
    Local4,
    Local5,
    Local6,
    Local7,
}

impl Facility {
    /// The facility number (RFC 5424 6.2.1); PRI = code * 8 + severity.
    pub fn code(self) -> u8 {
        match self {
            Facility::Kern => 0,
            Facility::User => 1,
            Facility::Mail => 2,
            Facility::Daemon => 3,
            Facility::Auth => 4,
            Facility::Syslog => 5,
            Facility::Lpr => 6,
            Facility::News => 7,
            Facility::Uucp => 8,
            Facility::Cron => 9,
            Facility::Authpriv => 10,
            Facility::Ftp => 11,
            Facility::Local0 => 16,
            Facility::Local1 => 17,
            Facility::Local2 => 18,
            Facility::Local3 => 19,
            Facility::Local4 => 20,
            Facility::Local5 => 21,
            Facility::Local6 => 22,
            Facility::Local7 => 23,
        }
    }
}

/// One remote syslog receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogServer {
    /// Receiver address.
    pub address: IpAddr,
    /// Receiver port [514].
    pub port: u16,
    /// UDP (RFC 5426) or TCP (RFC 6587) [udp].
    pub transport: SyslogTransport,
}

/// Transport to a remote syslog receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogTransport {
    #[default]
    Udp,
    Tcp,
}

/// `radius:`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RadiusConfig {
    /// Servers, in file order (`radius-server host`).
    pub servers: Vec<RadiusServer>,
    /// Wait for a reply before retransmitting [5s] (`radius-server timeout`).
    pub timeout: Duration,
    /// Retransmissions per server before trying the next [3] (`radius-server retransmit`).
    pub retransmit: u32,
    /// How long a server that did not answer is skipped [60s] (`radius-server deadtime`).
    pub dead_time: Duration,
    /// Send Cisco VSAs in accounting records [false] (`radius-server vsa send accounting`).
    pub vsa_send_accounting: bool,
    /// Server groups, name → server names, in order (`aaa group server radius`). Includes
    /// the implicit group `radius` (all servers) unless the file defines one by that name.
    pub groups: BTreeMap<String, Vec<String>>,
}

impl RadiusConfig {
    /// The servers of group `name`, in order; `None` if there is no such group.
    pub fn group_servers(&self, name: &str) -> Option<Vec<&RadiusServer>> {
        let names = self.groups.get(name)?;
        Some(
            names
                .iter()
                .filter_map(|n| self.servers.iter().find(|s| &s.name == n))
                .collect(),
        )
    }
}

/// One RADIUS server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RadiusServer {
    /// Name used in groups [the address as written].
    pub name: String,
    /// Server address.
    pub address: IpAddr,
    /// Access-Request port [1812].
    pub auth_port: u16,
    /// Accounting-Request port [1813].
    pub acct_port: u16,
    /// The shared secret.
    pub key: Secret,
}

/// `accounting:`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountingConfig {
    /// Interim-Update interval; `None`: no interim updates (`aaa accounting update periodic`).
    pub update_periodic: Option<Duration>,
    /// Where records wait until a server acknowledged them
    /// [/var/lib/vpnd/accounting.journal].
    pub journal: PathBuf,
    /// At most this many unacknowledged records are kept [100000].
    pub outbox_limit: u64,
    /// Method lists by name (`aaa accounting network NAME …`).
    pub lists: BTreeMap<String, AccountingList>,
    /// What happens to a new session while the outbox holds `outbox_limit` records [accept].
    pub when_full: WhenFull,
}

/// `accounting.when_full`: a new session while the accounting outbox is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WhenFull {
    /// The session is refused (no record can be kept for it: fail closed).
    Refuse,
    /// The session comes up; its records are dropped and counted (fail open).
    #[default]
    Accept,
}

/// One accounting method list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountingList {
    /// Which records are sent.
    pub mode: AccountingMode,
    /// Send to every group (true) or to the first that answers (false) [false].
    pub broadcast: bool,
    /// RADIUS server groups, in order; each exists in [`RadiusConfig::groups`].
    pub groups: Vec<String>,
}

/// `start-stop` or `stop-only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccountingMode {
    /// Start, interim and stop records.
    StartStop,
    /// Only stop records.
    StopOnly,
}

/// Where a peer may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAddress {
    /// One address; the only kind that can be initiated to.
    Single(IpAddr),
    /// Any address (respond only).
    Any,
    /// Any address in this prefix (respond only).
    Prefix(IpNet),
}

impl PeerAddress {
    /// Whether a request from `ip` may be for this peer.
    pub fn matches(&self, ip: IpAddr) -> bool {
        match self {
            PeerAddress::Single(a) => *a == ip,
            PeerAddress::Any => true,
            PeerAddress::Prefix(n) => n.contains(&ip),
        }
    }
}

/// What the daemon does with a peer at start and after `clear`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAction {
    /// Bring the SAs up at start and after a clear (static crypto map).
    Initiate,
    /// Wait for the peer (dynamic crypto map).
    #[default]
    Respond,
    /// Bring the SAs up when traffic needs them: the kernel's ACQUIRE from the standing
    /// policies (strongSwan's `start_action = trap`, an IOS crypto map without a session).
    #[serde(rename = "on-demand")]
    OnDemand,
}

/// What happens to a peer's protected traffic while it has no SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unprotected {
    /// Dropped (fail closed): the peer's policies stay in the kernel from start to stop,
    /// across restarts, clears and a peer that is down; with no SA the kernel drops the
    /// packet and asks vpnd for one (ACQUIRE), as an IOS crypto map does.
    #[default]
    Drop,
    /// Sent in clear: policies exist only while a child SA does.
    Pass,
}

/// One IKE peer.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerConfig {
    /// Unique name, used by vpnctl and in logs.
    pub name: String,
    /// The peer's address, or what addresses may respond as this peer.
    pub remote: PeerAddress,
    /// The peer's IKE port [500].
    pub port: u16,
    /// Free text, at most 80 characters (`crypto isakmp peer … description`).
    pub description: Option<String>,
    /// Our IDi/IDr [the local address of the peer's family].
    pub local_id: Identity,
    /// The identity the peer must present; `None`: any [the peer's address].
    pub remote_id: Option<Identity>,
    /// How each side authenticates (`auth:`; PSK on both sides by default).
    pub auth: PeerAuth,
    /// With EAP: the RADIUS server group its Access-Requests go to (IOS `client
    /// authentication list`, a group of `aaa group server radius`) [radius].
    pub auth_group: Option<String>,
    /// Initiate, respond, or on demand.
    pub start: StartAction,
    /// Protected traffic while no SA exists: drop (default) or pass in clear. Only for a
    /// peer with a single address (the others' policies need the peer's address).
    pub unprotected: Unprotected,
    /// IOS `reverse-route`: routes to the remote traffic selectors while a child is up.
    pub reverse_route: Option<ReverseRoute>,
    /// Route-based: the XFRM interface whose if_id the peer's SAs and policies carry (the
    /// routing table decides what enters the tunnel); `None`: policy-based.
    pub interface: Option<XfrmInterface>,
    /// Front-door VRF name (shown in sessions and syslog).
    pub fvrf: Option<String>,
    /// Inside VRF name (vrf-id in accounting).
    pub ivrf: Option<String>,
    /// isakmp-group-id for accounting.
    pub group: Option<String>,
    /// Accounting method list; exists in [`AccountingConfig::lists`].
    pub accounting: Option<String>,
    /// IKE SA parameters (from `ike_defaults` where the peer does not say).
    pub ike: IkeConfig,
    /// Child SAs; at least one.
    pub children: Vec<ChildConfig>,
    /// A remote-access profile's identity pattern, pool and DNS servers (`remote_id` with a
    /// `*`, `pool`, `dns`).
    pub remote_access: crate::ike::RemoteAccess,
}

/// How we authenticate to a peer and how it must authenticate to us.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerAuth {
    pub local: LocalAuthConfig,
    pub remote: RemoteAuthConfig,
}

/// `auth.local`: the pre-shared key, or our certificate and private key.
#[derive(Debug, Clone)]
pub enum LocalAuthConfig {
    Psk(Secret),
    /// `pubkey`: `certificate` (PEM, the leaf first, then intermediates to send) and
    /// `private_key` (PEM: PKCS#8, SEC1 or PKCS#1), checked to belong together.
    Certificate {
        certificate: PathBuf,
        cert: Arc<crate::ike::auth::LocalCert>,
    },
}

/// `auth.remote`: the pre-shared key, a certificate checked against a trust point, or EAP
/// relayed to RADIUS (`eap-radius`, with where the EAP identity comes from).
#[derive(Debug, Clone)]
pub enum RemoteAuthConfig {
    Psk(Secret),
    Certificate(Arc<crate::ike::auth::TrustPoint>),
    Eap(crate::ike::EapIdentity),
}

impl PartialEq for LocalAuthConfig {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (LocalAuthConfig::Psk(a), LocalAuthConfig::Psk(b)) => a == b,
            (
                LocalAuthConfig::Certificate {
                    certificate: a,
                    cert: x,
                },
                LocalAuthConfig::Certificate {
                    certificate: b,
                    cert: y,
                },
            ) => a == b && x.chain == y.chain && x.key.public_bits() == y.key.public_bits(),
            _ => false,
        }
    }
}

impl PartialEq for RemoteAuthConfig {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (RemoteAuthConfig::Psk(a), RemoteAuthConfig::Psk(b)) => a == b,
            (RemoteAuthConfig::Certificate(a), RemoteAuthConfig::Certificate(b)) => {
                a.name == b.name && a.certreq_data() == b.certreq_data()
            }
            (RemoteAuthConfig::Eap(a), RemoteAuthConfig::Eap(b)) => a == b,
            _ => false,
        }
    }
}

/// Routes vpnd installs for a peer's flows (IOS `reverse-route [remote-peer]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReverseRoute {
    /// Routing table [254, main].
    pub table: u32,
    /// Route metric (priority) [0]; a higher one loses to the operator's own routes.
    pub metric: u32,
    /// Also a host route to the peer's address (IOS `remote-peer`).
    pub remote_peer: bool,
}

/// An XFRM interface (`ip link add NAME type xfrm if_id N`), created by vpnd if missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XfrmInterface {
    pub name: String,
    pub if_id: u32,
}

/// The main routing table (RT_TABLE_MAIN).
pub const MAIN_TABLE: u32 = 254;

/// IKE SA parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct IkeConfig {
    /// Proposals in order of preference.
    pub proposals: Vec<Proposal>,
    /// IKE SA rekey time (hard); the daemon derives the soft time.
    pub lifetime: Duration,
    /// Liveness check interval; `None`: disabled.
    pub dpd: Option<Duration>,
    /// Request retransmission (RFC 7296 2.4).
    pub retransmit: RetransmitConfig,
    /// UDP-encapsulate (NAT-T) even without a NAT, as strongSwan's `encap = yes` [false].
    pub encap: bool,
    /// NAT keepalive interval while a NAT is in front of us [20s]; `None` (0): off.
    pub nat_keepalive: Option<Duration>,
    /// IKE fragmentation (RFC 7383) offered and used when the peer offers it too [true].
    pub fragmentation: bool,
    /// The largest IP datagram an IKE message makes before it is fragmented [1280].
    pub fragment_size: u16,
    /// Proposals (IKE, and the peer's children's ESP) may name SHA-1 and MODP 1024, which
    /// Windows' built-in client proposes by default [false].
    pub allow_legacy: bool,
}

/// Retransmission schedule: `timeout * base^n` for try n, `tries` retransmissions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetransmitConfig {
    /// First timeout [2s].
    pub timeout: Duration,
    /// Backoff factor [1.8].
    pub base: f64,
    /// Retransmissions before giving up [5].
    pub tries: u32,
}

/// One child SA (IPsec SA pair) of a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildConfig {
    /// Name, unique within the peer.
    pub name: String,
    /// Our side's traffic selectors.
    pub local_ts: Vec<TsSpec>,
    /// The peer's side's traffic selectors.
    pub remote_ts: Vec<TsSpec>,
    /// Tunnel or transport.
    pub mode: Mode,
    /// ESP proposals in order of preference.
    pub esp: Vec<Proposal>,
    /// DH group for CREATE_CHILD_SA (PFS); `None`: no PFS unless an ESP proposal names a
    /// group itself (the two are not combined: the file may set only one of them).
    pub pfs: Option<DhGroup>,
    /// Hard lifetime in seconds [3600] (`set security-association lifetime seconds`).
    pub lifetime_seconds: u64,
    /// Hard lifetime in kilobytes; `None`: unlimited
    /// (`set security-association lifetime kilobytes`).
    pub lifetime_kilobytes: Option<u64>,
    /// Anti-replay window in packets [64]; 0 disables.
    pub replay_window: u32,
}

/// IPsec mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Tunnel,
    Transport,
}

/// A traffic selector: a prefix, an IP protocol and a port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TsSpec {
    /// Addresses.
    pub net: IpNet,
    /// IP protocol number; 0: any.
    pub proto: u8,
    /// Inclusive port range; (0, 65535): any.
    pub ports: (u16, u16),
}

impl fmt::Display for TsSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.net)?;
        if self.proto != 0 {
            let name = match self.proto {
                1 => "icmp".to_string(),
                6 => "tcp".to_string(),
                17 => "udp".to_string(),
                58 => "icmpv6".to_string(),
                n => n.to_string(),
            };
            match self.ports {
                (0, 65535) => write!(f, "[{name}]")?,
                (a, b) if a == b => write!(f, "[{name}/{a}]")?,
                (a, b) => write!(f, "[{name}/{a}-{b}]")?,
            }
        }
        Ok(())
    }
}
