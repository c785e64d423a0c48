//! From the file layer to the typed [`Config`]: defaults, cross-references and every
//! check that can be made before the daemon starts. Problems are collected, not returned
//! at the first; a value that failed is replaced by a placeholder so later checks still
//! run, and the result is discarded when anything failed.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde_saphyr::Location;

use crate::ike::auth::{LocalCert, TrustPoint};
use crate::ike::codec::Identity;
use crate::ike::proposal::{Proposal, ProposalKind};
use crate::ike::DosConfig;

use super::file::{self, ReverseRouteFile, Str, S};
use super::parse::{self, IdSpec};
use super::*;

/// Default IKE proposals: AEAD first, then CBC+HMAC for peers without GCM.
pub const DEFAULT_IKE_PROPOSALS: &[&str] =
    &["aes256gcm16-prfsha256-x25519", "aes256-sha256-modp2048"];
/// Default ESP proposals.
pub const DEFAULT_ESP_PROPOSALS: &[&str] = &["aes256gcm16", "aes128gcm16", "aes256-sha256"];
/// The shortest IKE or child SA lifetime accepted.
pub const MIN_LIFETIME: Duration = Duration::from_secs(60);
/// The largest anti-replay window the kernel takes (XFRMA_REPLAY_ESN_MAX, in packets).
pub const MAX_REPLAY_WINDOW: u32 = 4096;
/// Longest description (IOS `crypto isakmp peer … description`).
pub const MAX_DESCRIPTION: usize = 80;
/// The longest IKE or child SA lifetime accepted: 30 days, IOS's largest IPsec SA lifetime
/// (`set security-association lifetime seconds` 120-2592000). Every duration has a bound,
/// so no timer (an `Instant` plus a lifetime) can overflow.
pub const MAX_LIFETIME: Duration = Duration::from_secs(30 * 86400);
/// The longest liveness (DPD) interval: an hour (IOS `crypto ikev2 dpd` 10-3600 s).
pub const MAX_DPD: Duration = Duration::from_secs(3600);
/// The longest NAT keepalive interval: NATs drop UDP mappings after tens of seconds to a
/// few minutes (RFC 3948 2.3 leaves it to configuration); an hour keeps nothing alive.
pub const MAX_NAT_KEEPALIVE: Duration = Duration::from_secs(3600);
/// The longest first retransmission timeout (the schedule caps every wait at 60 s anyway).
pub const MAX_RETRANSMIT_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest RADIUS reply timeout.
pub const MAX_RADIUS_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest RADIUS dead time: a day (IOS `radius-server deadtime` 1-1440 minutes).
pub const MAX_DEAD_TIME: Duration = Duration::from_secs(1440 * 60);
/// A peer's `start`, with where it was written.
fn start_of(p: &file::PeerFile) -> Option<(StartAction, Location)> {
    p.start.as_ref().map(|s| (s.value, s.referenced))
}

/// The longest Interim-Update interval (IOS `aaa accounting update periodic` 1-71582 min).
pub const MAX_UPDATE_PERIODIC: Duration = Duration::from_secs(71_582 * 60);
/// The largest child SA volume lifetime, in kilobytes (IOS's `lifetime kilobytes` maximum,
/// 2^32 - 1; the kernel counts bytes in 64 bits, so the product cannot overflow).
pub const MAX_CHILD_KILOBYTES: u64 = u32::MAX as u64;
/// Pre-shared keys shorter than this are refused: one captured IKE_AUTH lets anyone try
/// keys offline, and 7 printable characters fall in hours. (strongSwan has no minimum and
/// IOS takes 1 character; vpnd refuses what is certainly unsafe.)
pub const MIN_PSK: usize = 8;
/// Pre-shared keys shorter than this get a warning: 20 random printable characters carry
/// about 128 bits; a memorable phrase that short carries far less.
pub const GOOD_PSK: usize = 20;
/// Certificate, key and CRL files are read up to this size (a CRL of a big CA is large).
const MAX_PEM_FILE: usize = 4 << 20;

/// A `psk_file` holds one key: at most this many bytes are read.
pub const MAX_PSK_FILE: usize = 4096;
/// `control.max_clients` when not set.
pub const DEFAULT_MAX_CLIENTS: usize = 64;
/// The largest `control.max_clients` (the unit's default of 1,024 descriptors also serves
/// the IKE sockets, netlink, RADIUS and the journal).
pub const MAX_MAX_CLIENTS: usize = 512;
/// A Unix socket path has at most this many bytes (`sun_path` is 108 with the NUL).
const MAX_SOCKET_PATH: usize = 107;
/// Where the shipped unit (systemd/vpnd.service: ProtectSystem=strict, PrivateTmp=yes) lets
/// vpnd write: its RuntimeDirectory and StateDirectory.
const UNIT_WRITABLE: [&str; 2] = ["/run/vpnd", "/var/lib/vpnd"];

/// The warning for a path the shipped unit would not let vpnd create (or, in /tmp, would
/// hide from vpnctl), `None` if it is inside one of [`UNIT_WRITABLE`].
fn outside_the_unit(p: &Path) -> Option<String> {
    if UNIT_WRITABLE.iter().any(|d| p.starts_with(d)) {
        return None;
    }
    Some(format!(
        "{} is outside /run/vpnd and /var/lib/vpnd, the only directories the shipped unit \
         lets vpnd write (ProtectSystem=strict; its /tmp is private): under it, the start \
         fails (or vpnctl cannot see the socket) unless ReadWritePaths= adds the directory",
        p.display()
    ))
}

struct Ctx {
    file: PathBuf,
    dir: PathBuf,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
    /// Each valid peer's address, port and fvrf, its name and the address's location: two
    /// peers with the same three are refused (the second could never be told apart).
    peer_addrs: Vec<(PeerAddress, u16, Option<String>, String, Location)>,
    /// XFRM interfaces by name with their if_id: peers may share one, two may not share
    /// an if_id (the kernel would send one's traffic through the other's SAs).
    interfaces: HashMap<String, u32>,
    /// The names in `vrfs` (parsed before the peers).
    vrf_names: Vec<String>,
    /// The names in `pools:` (and whether each is IPv6), for peers' `pool`/`ipv6_pool`.
    pool_names: Vec<(String, bool)>,
}

/// A name the kernel takes for an interface: IFNAMSIZ is 16 with the NUL; no '/', ':' or
/// whitespace, not "." or "..".
fn interface_name(v: &str) -> bool {
    let bad = |c: char| c == '/' || c == ':' || c.is_whitespace() || c.is_control();
    !(v.is_empty() || v.len() > 15 || v == "." || v == ".." || v.chars().any(bad))
}

fn id_of(ip: IpAddr) -> Identity {
    match ip {
        IpAddr::V4(a) => Identity::Ipv4(a),
        IpAddr::V6(a) => Identity::Ipv6(a),
    }
}

fn family(net: &IpNet) -> &'static str {
    match net {
        IpNet::V4(_) => "IPv4",
        IpNet::V6(_) => "IPv6",
    }
}

pub(super) fn validate(raw: file::FileConfig, path: &Path) -> Result<Config, ConfigError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut cx = Ctx {
        file: path.to_path_buf(),
        dir,
        problems: Vec::new(),
        warnings: Vec::new(),
        peer_addrs: Vec::new(),
        interfaces: HashMap::new(),
        vrf_names: Vec::new(),
        pool_names: Vec::new(),
    };
    let journal_loc = raw
        .accounting
        .as_ref()
        .and_then(|a| a.value.journal.as_ref().map(|j| j.referenced));
    let local = cx.local(raw.local.map(|s| s.value).unwrap_or_default());
    let control = cx.control(raw.control.map(|s| s.value).unwrap_or_default());
    let metrics = raw.metrics.and_then(|m| cx.metrics(m, &control.socket));
    let log = LogConfig {
        level: raw.log.and_then(|l| l.value.level).unwrap_or_default(),
    };
    let syslog = cx.syslog(raw.syslog.map(|s| s.value).unwrap_or_default());
    let radius = cx.radius(raw.radius.map(|s| s.value).unwrap_or_default());
    let accounting = cx.accounting(raw.accounting.map(|s| s.value).unwrap_or_default(), &radius);
    let builtin = IkeConfig {
        proposals: DEFAULT_IKE_PROPOSALS
            .iter()
            .map(|p| Proposal::parse(p, ProposalKind::Ike).expect("built-in proposal"))
            .collect(),
        lifetime: Duration::from_secs(24 * 3600),
        dpd: Some(Duration::from_secs(30)),
        retransmit: RetransmitConfig {
            timeout: Duration::from_secs(2),
            base: 1.8,
            tries: 5,
        },
        encap: false,
        nat_keepalive: Some(Duration::from_secs(20)),
        fragmentation: true,
        fragment_size: crate::ike::fragment::DEFAULT_FRAGMENT_SIZE,
        allow_legacy: false,
    };
    let ike_defaults = cx.ike(raw.ike_defaults.as_ref(), "ike_defaults", &builtin);
    let vrfs = cx.vrfs(raw.vrfs.as_ref());
    let dos = cx.dos(raw.dos.map(|s| s.value).unwrap_or_default());
    let pools = cx.pools(raw.pools.as_ref());
    let trustpoints = cx.trustpoints(raw.trustpoints);
    let mut peers = Vec::new();
    let mut names: HashMap<String, u64> = HashMap::new();
    for (i, p) in raw.peers.into_iter().enumerate() {
        if let Some(peer) = cx.peer(
            i,
            p,
            &local,
            &accounting,
            &radius,
            &ike_defaults,
            &trustpoints,
            &mut names,
        ) {
            peers.push(peer);
        }
    }
    if peers.is_empty() && cx.problems.is_empty() {
        cx.warn_file(
            "peers",
            "no peers: vpnd will start and negotiate nothing (only its control socket runs)",
        );
    }
    if peers.iter().any(|p| p.accounting.is_some()) {
        cx.journal_path(&accounting.journal, journal_loc);
    }
    if cx.problems.is_empty() {
        let mut warnings = cx.warnings;
        warnings.sort_by_key(|p| (p.line, p.column));
        Ok(Config {
            local,
            control,
            metrics,
            log,
            syslog,
            radius,
            accounting,
            vrfs,
            peers,
            pools,
            dos,
            warnings,
        })
    } else {
        let mut problems = cx.problems;
        problems.sort_by_key(|p| (p.line, p.column));
        Err(ConfigError::Invalid(problems))
    }
}

/// Upper bounds of `dos:`: beyond them a value is a typo, not a policy.
const MAX_DOS_COUNT: u32 = 1_000_000;
const MAX_HALF_OPEN_TIMEOUT: Duration = Duration::from_secs(600);
const MAX_COOKIE_SECRET_LIFETIME: Duration = Duration::from_secs(24 * 3600);

impl Ctx {
    /// `dos:`; every key not given is strongSwan's default ([`DosConfig::default`]).
    fn dos(&mut self, f: file::DosFile) -> DosConfig {
        let d = DosConfig::default();
        let count = |cx: &mut Ctx, v: &Option<S<u32>>, field: &str, default: u32, min: u32| match v
        {
            None => default,
            Some(n) if n.value < min || n.value > MAX_DOS_COUNT => {
                cx.err(
                    n.referenced,
                    format!("dos.{field}"),
                    format!("must be {min} to {MAX_DOS_COUNT}"),
                );
                default
            }
            Some(n) => n.value,
        };
        let cfg = DosConfig {
            cookie_threshold: count(
                self,
                &f.cookie_threshold,
                "cookie_threshold",
                d.cookie_threshold,
                0,
            ),
            block_threshold: count(
                self,
                &f.block_threshold,
                "block_threshold",
                d.block_threshold,
                0,
            ),
            half_open_limit: count(
                self,
                &f.half_open_limit,
                "half_open_limit",
                d.half_open_limit,
                0,
            ),
            cookie_secret_uses: count(
                self,
                &f.cookie_secret_uses,
                "cookie_secret_uses",
                d.cookie_secret_uses,
                1,
            ),
            half_open_timeout: self.positive_duration(
                f.half_open_timeout.as_ref(),
                "dos.half_open_timeout",
                d.half_open_timeout,
                MAX_HALF_OPEN_TIMEOUT,
            ),
            cookie_secret_lifetime: self.positive_duration(
                f.cookie_secret_lifetime.as_ref(),
                "dos.cookie_secret_lifetime",
                d.cookie_secret_lifetime,
                MAX_COOKIE_SECRET_LIFETIME,
            ),
        };
        // Without cookies a source address is not proven, so anyone can spoof a real
        // peer's address and use up its half-open share (strongSwan warns the same).
        if let (Some(b), true) = (&f.block_threshold, cfg.cookie_threshold == 0) {
            if b.value > 0 {
                self.warn(
                    b.referenced,
                    "dos.block_threshold",
                    "with cookie_threshold 0 source addresses are unproven: a spoofed flood \
                     can block a real peer's address",
                );
            }
        }
        if let Some(l) = &f.half_open_limit {
            if l.value > 0 && (cfg.cookie_threshold == 0 || cfg.cookie_threshold >= l.value) {
                self.warn(
                    l.referenced,
                    "dos.half_open_limit",
                    "reached before cookie_threshold: a spoofed flood fills it and real \
                     initiators are dropped instead of asked for a COOKIE",
                );
            }
        }
        cfg
    }

    fn err(&mut self, loc: Location, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.clone(),
            line: loc.line(),
            column: loc.column(),
            field: field.into(),
            message: message.into(),
        });
    }

    /// An error about the file as a whole, or a default value (no location to give).
    fn err_file(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.clone(),
            line: 0,
            column: 0,
            field: field.into(),
            message: message.into(),
        });
    }

    fn warn(&mut self, loc: Location, field: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Problem {
            file: self.file.clone(),
            line: loc.line(),
            column: loc.column(),
            field: field.into(),
            message: message.into(),
        });
    }

    fn warn_file(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Problem {
            file: self.file.clone(),
            line: 0,
            column: 0,
            field: field.into(),
            message: message.into(),
        });
    }

    /// Whether `d` is at most `max`, reporting it at `s` when not.
    fn at_most(&mut self, s: &Str, field: &str, d: Duration, max: Duration) -> bool {
        if d <= max {
            return true;
        }
        self.err(
            s.referenced,
            field,
            format!(
                "{} s is too long (at most {} s, {})",
                d.as_secs(),
                max.as_secs(),
                human(max)
            ),
        );
        false
    }

    /// A duration between 1 s and `max`; 0 is refused.
    fn positive_duration(
        &mut self,
        s: Option<&Str>,
        field: &str,
        default: Duration,
        max: Duration,
    ) -> Duration {
        let Some(s) = s else {
            return default;
        };
        let Some(d) = self.parse(s, field, parse::duration) else {
            return default;
        };
        if d.is_zero() {
            self.err(s.referenced, field, "must be at least 1 s");
            default
        } else if self.at_most(s, field, d, max) {
            d
        } else {
            default
        }
    }

    /// A duration of at most `max` where 0 means "off" (`None`); `Err(())` when invalid.
    fn optional_duration(
        &mut self,
        s: &Str,
        field: &str,
        max: Duration,
    ) -> Result<Option<Duration>, ()> {
        let d = self.parse(s, field, parse::duration).ok_or(())?;
        if d.is_zero() {
            Ok(None)
        } else if self.at_most(s, field, d, max) {
            Ok(Some(d))
        } else {
            Err(())
        }
    }

    /// Parses a spanned string, reporting a failure at its location.
    fn parse<T>(
        &mut self,
        s: &Str,
        field: impl Into<String>,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match f(&s.value) {
            Ok(v) => Some(v),
            Err(m) => {
                self.err(s.referenced, field, m);
                None
            }
        }
    }

    fn port(&mut self, p: Option<&S<u16>>, field: &str, default: u16) -> u16 {
        match p {
            None => default,
            Some(p) if p.value == 0 => {
                self.err(p.referenced, field, "port 0 is not a usable port");
                default
            }
            Some(p) => p.value,
        }
    }

    fn duration(&mut self, s: Option<&Str>, field: &str, default: Duration) -> Duration {
        match s {
            None => default,
            Some(s) => self.parse(s, field, parse::duration).unwrap_or(default),
        }
    }

    fn lifetime(&mut self, s: Option<&Str>, field: &str, default: Duration) -> Duration {
        let d = self.duration(s, field, default);
        if let Some(s) = s {
            if !self.at_most(s, field, d, MAX_LIFETIME) {
                return default;
            }
            if d < MIN_LIFETIME {
                self.err(
                    s.referenced,
                    field,
                    format!(
                        "{} s is too short a lifetime (at least {} s)",
                        d.as_secs(),
                        MIN_LIFETIME.as_secs()
                    ),
                );
                return default;
            }
        }
        d
    }

    /// A short name, label or VRF: non-empty, printable, at most `max` characters.
    fn label(&mut self, s: Option<&Str>, field: &str, max: usize) -> Option<String> {
        let s = s?;
        let v = s.value.trim();
        if v.is_empty() {
            self.err(s.referenced, field, "empty (leave the key out instead)");
        } else if v.chars().any(char::is_control) {
            self.err(s.referenced, field, "contains control characters");
        } else if v.chars().count() > max {
            self.err(
                s.referenced,
                field,
                format!("{} characters, at most {max}", v.chars().count()),
            );
        } else {
            return Some(v.to_string());
        }
        None
    }

    /// A name vpnctl can take as an argument: letters, digits, `.`, `-`, `_`.
    fn name(&mut self, s: &Str, field: &str) -> Option<String> {
        let v = s.value.trim();
        if v.is_empty() || v.len() > 64 {
            self.err(s.referenced, field, "must be 1 to 64 characters");
            return None;
        }
        if !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        {
            self.err(
                s.referenced,
                field,
                format!("'{v}': use only letters, digits, '.', '-' and '_'"),
            );
            return None;
        }
        Some(v.to_string())
    }

    fn absolute_path(&mut self, s: Option<&Str>, field: &str, default: &str) -> PathBuf {
        let Some(s) = s else {
            return PathBuf::from(default);
        };
        let p = PathBuf::from(s.value.trim());
        if !p.is_absolute() {
            self.err(
                s.referenced,
                field,
                format!("'{}': must be an absolute path", s.value.trim()),
            );
            return PathBuf::from(default);
        }
        p
    }

    fn local(&mut self, f: file::LocalFile) -> LocalConfig {
        let mut addresses = Vec::new();
        // Binding IKE to an address this host lacks fails at start; it may be added before
        // then (or `--check` may run elsewhere), so it is a warning.
        let host = host_addresses();
        if let Some(list) = &f.addresses {
            for (i, a) in list.value.iter().enumerate() {
                let field = format!("local.addresses[{i}]");
                if a.value.trim().eq_ignore_ascii_case("all") {
                    if list.value.len() > 1 {
                        self.err(
                            a.referenced,
                            field,
                            "'all' cannot be combined with addresses",
                        );
                    }
                    continue;
                }
                if let Some(ip) = self.parse(a, &field, parse::ip) {
                    if addresses.contains(&ip) {
                        self.err(a.referenced, field, format!("{ip} is listed twice"));
                    } else {
                        if host
                            .as_ref()
                            .is_some_and(|h| !h.contains(&ip.to_canonical()))
                        {
                            self.warn(
                                a.referenced,
                                &field,
                                format!(
                                    "{ip} is not an address of this host now: binding IKE to \
                                     it fails at start unless it is configured by then"
                                ),
                            );
                        }
                        addresses.push(ip);
                    }
                }
            }
        }
        let port = self.port(f.port.as_ref(), "local.port", 500);
        let nat_t_port = self.port(f.nat_t_port.as_ref(), "local.nat_t_port", 4500);
        if port == nat_t_port {
            if let Some(p) = f.nat_t_port.as_ref().or(f.port.as_ref()) {
                self.err(
                    p.referenced,
                    "local.nat_t_port",
                    "must differ from local.port",
                );
            }
        }
        let nas_ip = match &f.nas_ip {
            Some(s) => self.parse(s, "local.nas_ip", parse::ip),
            None => addresses.first().copied(),
        };
        let reqid_base = match &f.reqid_base {
            None => 0x7670_0000,
            Some(s) => match self.parse(s, "local.reqid_base", parse::u32_number) {
                Some(0) => {
                    self.err(
                        s.referenced,
                        "local.reqid_base",
                        "0 is not usable (reqid 0 means 'any' to the kernel)",
                    );
                    0x7670_0000
                }
                Some(v) => v,
                None => 0x7670_0000,
            },
        };
        LocalConfig {
            addresses,
            port,
            nat_t_port,
            nas_ip,
            reqid_base,
        }
    }

    /// `control:`. Access is decided per connection from the client's credentials
    /// (src/control/server.rs): root and the daemon's own user may do everything, members
    /// of `admin_group` too, members of `group` only the read-only commands. The socket is
    /// not chowned (that would need CAP_CHOWN), so with a group its mode must let every
    /// user connect (0666); the credentials, not the file mode, keep the others out. That
    /// is why a mode "wider than 0660" is accepted: the execute and special bits are refused
    /// (meaningless on a socket), the owner must keep rw, and world bits without a group
    /// are only a warning (those users connect and are refused).
    fn control(&mut self, f: file::ControlFile) -> ControlConfig {
        let socket = self.absolute_path(f.socket.as_ref(), "control.socket", "/run/vpnd/vpnd.sock");
        if let Some(s) = &f.socket {
            self.socket_path(&socket, s, "control.socket");
        }
        let group = self.local_group(f.group.as_ref(), "control.group");
        let admin_group = self.local_group(f.admin_group.as_ref(), "control.admin_group");
        if let (Some(g), Some(a), Some(s)) = (&group, &admin_group, &f.admin_group) {
            if g == a {
                self.warn(
                    s.referenced,
                    "control.admin_group",
                    format!(
                        "the same group as control.group: every member of '{g}' may clear \
                         sessions and change debugging"
                    ),
                );
            }
        }
        let grouped = f.group.is_some() || f.admin_group.is_some();
        let default_mode = if grouped { 0o666 } else { 0o660 };
        let mode = match &f.mode {
            None => default_mode,
            Some(s) => match self.parse(s, "control.mode", parse::mode) {
                None => default_mode,
                Some(m) => {
                    self.socket_mode(m, s, grouped);
                    m
                }
            },
        };
        let max_clients = match &f.max_clients {
            None => DEFAULT_MAX_CLIENTS,
            Some(m) if m.value == 0 || m.value > MAX_MAX_CLIENTS as u64 => {
                self.err(
                    m.referenced,
                    "control.max_clients",
                    format!("must be 1 to {MAX_MAX_CLIENTS}"),
                );
                DEFAULT_MAX_CLIENTS
            }
            Some(m) => m.value as usize,
        };
        ControlConfig {
            socket,
            group,
            admin_group,
            mode,
            max_clients,
        }
    }

    /// `metrics: { listen: ADDRESS:PORT | /absolute/socket/path }`: off when absent.
    /// Served without authentication, so an address other hosts can reach is a warning.
    fn metrics(&mut self, m: S<file::MetricsFile>, control: &Path) -> Option<MetricsConfig> {
        let field = "metrics.listen";
        let Some(s) = m.value.listen else {
            self.err(
                m.referenced,
                field,
                "missing: an address and port (127.0.0.1:9469) or a Unix socket path",
            );
            return None;
        };
        let v = s.value.trim();
        if v.starts_with('/') {
            let path = PathBuf::from(v);
            if path == control {
                self.err(
                    s.referenced,
                    field,
                    "the control socket's path: use another",
                );
                return None;
            }
            self.socket_path(&path, &s, field);
            return Some(MetricsConfig {
                listen: MetricsListen::Unix(path),
            });
        }
        let addr = self.parse(&s, field, |v| {
            v.trim().parse::<std::net::SocketAddr>().map_err(|_| {
                format!(
                    "'{v}': not an address and port (127.0.0.1:9469, [::1]:9469) nor an \
                     absolute Unix socket path"
                )
            })
        })?;
        if !addr.ip().is_loopback() {
            self.warn(
                s.referenced,
                field,
                format!(
                    "{addr}: the metrics (peer names, addresses, user names) are served \
                     without authentication to every host that reaches this address"
                ),
            );
        }
        Some(MetricsConfig {
            listen: MetricsListen::Tcp(addr),
        })
    }

    /// A group name that exists in /etc/group (the daemon resolves it there at start).
    fn local_group(&mut self, s: Option<&Str>, field: &str) -> Option<String> {
        let name = self.label(s, field, 32)?;
        if local_group_gid(&name).is_none() {
            self.err(
                s?.referenced,
                field,
                format!("no group '{name}' in /etc/group (create it with groupadd first)"),
            );
            return None;
        }
        Some(name)
    }

    /// What would make binding the control socket fail at start.
    fn socket_path(&mut self, socket: &Path, s: &Str, field: &str) {
        use std::os::unix::fs::FileTypeExt;
        let len = socket.as_os_str().len();
        if len > MAX_SOCKET_PATH {
            self.err(
                s.referenced,
                field,
                format!("{len} bytes long; a Unix socket path is at most {MAX_SOCKET_PATH}"),
            );
            return;
        }
        match std::fs::symlink_metadata(socket) {
            Ok(m) if !m.file_type().is_socket() => self.err(
                s.referenced,
                field,
                format!(
                    "{} exists and is not a socket (vpnd replaces only a stale socket)",
                    socket.display()
                ),
            ),
            _ => {
                if let Some(dir) = socket.parent() {
                    if let Err(m) = creatable_dir(dir) {
                        self.err(s.referenced, field, m);
                        return;
                    }
                }
                if let Some(m) = outside_the_unit(socket) {
                    self.warn(s.referenced, field, m);
                }
            }
        }
    }

    fn socket_mode(&mut self, mode: u32, s: &Str, grouped: bool) {
        let field = "control.mode";
        if mode & !0o666 != 0 {
            self.err(
                s.referenced,
                field,
                format!(
                    "{mode:04o}: execute and special bits mean nothing on a socket \
                     (use read/write bits only, e.g. 0660)"
                ),
            );
        } else if mode & 0o600 != 0o600 {
            self.err(
                s.referenced,
                field,
                format!(
                    "{mode:04o}: the owner (vpnd's own user) needs read and write: under the \
                     unit, it has no CAP_DAC_OVERRIDE and could not connect"
                ),
            );
        } else if grouped && mode & 0o006 != 0o006 {
            self.err(
                s.referenced,
                field,
                format!(
                    "{mode:04o}: with control.group or control.admin_group the socket must be \
                     0666 (or leave mode out): vpnd does not chown it, and checks each \
                     client's user and groups itself"
                ),
            );
        } else if !grouped && mode & 0o006 != 0 {
            self.warn(
                s.referenced,
                field,
                format!(
                    "{mode:04o}: every user may connect, and is refused unless root (no \
                     control.group or control.admin_group is set); 0660 keeps them out"
                ),
            );
        }
    }

    /// The accounting journal (and its sessions file) must be files vpnd can create.
    fn journal_path(&mut self, journal: &Path, loc: Option<Location>) {
        let sessions = PathBuf::from(format!("{}.sessions", journal.display()));
        for p in [journal, sessions.as_path()] {
            let problem = match std::fs::metadata(p) {
                Ok(m) if m.is_dir() => Some(format!("{} is a directory", p.display())),
                Ok(m) if !m.is_file() => {
                    Some(format!("{} exists and is not a regular file", p.display()))
                }
                _ => p.parent().and_then(|d| creatable_dir(d).err()),
            };
            if let Some(m) = problem {
                match loc {
                    Some(l) => self.err(l, "accounting.journal", m),
                    None => self.err_file("accounting.journal", m),
                }
                return;
            }
        }
        if let Some(m) = outside_the_unit(journal) {
            match loc {
                Some(l) => self.warn(l, "accounting.journal", m),
                None => self.warn_file("accounting.journal", m),
            }
        }
    }

    fn syslog(&mut self, f: file::SyslogFile) -> SyslogConfig {
        let mut servers = Vec::new();
        for (i, s) in f.servers.iter().enumerate() {
            let field = format!("syslog.servers[{i}]");
            let address = match &s.value.address {
                None => {
                    self.err(s.referenced, format!("{field}.address"), "required");
                    None
                }
                Some(a) => self.parse(a, format!("{field}.address"), parse::ip),
            };
            let port = self.port(s.value.port.as_ref(), &format!("{field}.port"), 514);
            if let Some(address) = address {
                servers.push(SyslogServer {
                    address,
                    port,
                    transport: s.value.transport.unwrap_or_default(),
                });
            }
        }
        SyslogConfig {
            local: f.local.unwrap_or(true),
            facility: f.facility.unwrap_or_default(),
            servers,
            timezone: f.timezone.unwrap_or_default(),
        }
    }

    fn radius(&mut self, f: file::RadiusFile) -> RadiusConfig {
        let mut servers: Vec<RadiusServer> = Vec::new();
        let mut seen: HashMap<String, u64> = HashMap::new();
        for (i, s) in f.servers.into_iter().enumerate() {
            let field = format!("radius.servers[{i}]");
            let loc = s.referenced;
            let s = s.value;
            let address = match &s.address {
                None => {
                    self.err(loc, format!("{field}.address"), "required");
                    None
                }
                Some(a) => self.parse(a, format!("{field}.address"), parse::ip),
            };
            let name = match (&s.name, &s.address) {
                (Some(n), _) => self
                    .name(n, &format!("{field}.name"))
                    .map(|v| (v, n.referenced)),
                (None, Some(a)) => Some((a.value.trim().to_string(), a.referenced)),
                (None, None) => None,
            };
            if let Some((n, nloc)) = &name {
                if let Some(first) = seen.get(n) {
                    self.err(
                        *nloc,
                        format!("{field}.name"),
                        format!("duplicate server name '{n}' (first on line {first})"),
                    );
                } else {
                    seen.insert(n.clone(), nloc.line());
                }
            }
            let auth_port = self.port(s.auth_port.as_ref(), &format!("{field}.auth_port"), 1812);
            let acct_port = self.port(s.acct_port.as_ref(), &format!("{field}.acct_port"), 1813);
            let key = match s.key {
                None => {
                    self.err(
                        loc,
                        format!("{field}.key"),
                        "required (the RADIUS shared secret)",
                    );
                    None
                }
                Some(k) if k.value.is_empty() => {
                    self.err(k.referenced, format!("{field}.key"), "must not be empty");
                    None
                }
                Some(k) => Some(Secret::new(k.value.into_bytes())),
            };
            if let (Some(address), Some((name, _)), Some(key)) = (address, name, key) {
                servers.push(RadiusServer {
                    name,
                    address,
                    auth_port,
                    acct_port,
                    key,
                });
            }
        }
        let timeout = self.positive_duration(
            f.timeout.as_ref(),
            "radius.timeout",
            Duration::from_secs(5),
            MAX_RADIUS_TIMEOUT,
        );
        let retransmit = f.retransmit.as_ref().map_or(3, |r| r.value);
        if let Some(r) = &f.retransmit {
            if r.value > 100 {
                self.err(r.referenced, "radius.retransmit", "at most 100");
            }
        }
        let dead_time = match &f.dead_time {
            None => Duration::from_secs(60),
            Some(s) => self
                .optional_duration(s, "radius.dead_time", MAX_DEAD_TIME)
                .map_or(Duration::from_secs(60), Option::unwrap_or_default),
        };
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (gname, members) in &f.groups {
            let field = format!("radius.groups.{gname}");
            if gname.trim().is_empty() {
                self.err(members.referenced, "radius.groups", "empty group name");
                continue;
            }
            if members.value.is_empty() {
                self.err(
                    members.referenced,
                    &field,
                    "a group needs at least one server",
                );
            }
            let mut list: Vec<String> = Vec::new();
            for (j, m) in members.value.iter().enumerate() {
                let mname = m.value.trim();
                let mfield = format!("{field}[{j}]");
                if !seen.contains_key(mname) {
                    let known: Vec<&str> = seen.keys().map(String::as_str).collect();
                    self.err(
                        m.referenced,
                        mfield,
                        format!(
                            "no RADIUS server named '{mname}' in radius.servers{}",
                            if known.is_empty() {
                                String::new()
                            } else {
                                let mut k = known;
                                k.sort_unstable();
                                format!(" (defined: {})", k.join(", "))
                            }
                        ),
                    );
                } else if list.iter().any(|x| x == mname) {
                    self.err(m.referenced, mfield, format!("'{mname}' is listed twice"));
                } else {
                    list.push(mname.to_string());
                }
            }
            groups.insert(gname.clone(), list);
        }
        if !groups.contains_key("radius") && !servers.is_empty() {
            groups.insert(
                "radius".to_string(),
                servers.iter().map(|s| s.name.clone()).collect(),
            );
        }
        RadiusConfig {
            servers,
            timeout,
            retransmit,
            dead_time,
            vsa_send_accounting: f.vsa_send_accounting.unwrap_or(false),
            groups,
        }
    }

    fn accounting(&mut self, f: file::AccountingFile, radius: &RadiusConfig) -> AccountingConfig {
        let update_periodic = match &f.update_periodic {
            None => None,
            Some(s) => self
                .optional_duration(s, "accounting.update_periodic", MAX_UPDATE_PERIODIC)
                .unwrap_or(None),
        };
        let journal = self.absolute_path(
            f.journal.as_ref(),
            "accounting.journal",
            "/var/lib/vpnd/accounting.journal",
        );
        let outbox_limit = f.outbox_limit.as_ref().map_or(100_000, |o| o.value);
        if let Some(o) = &f.outbox_limit {
            if o.value == 0 {
                self.err(
                    o.referenced,
                    "accounting.outbox_limit",
                    "must be at least 1",
                );
            }
        }
        let mut lists = BTreeMap::new();
        for (name, l) in f.lists {
            let field = format!("accounting.lists.{name}");
            let loc = l.referenced;
            let l = l.value;
            let mode = l.mode.unwrap_or_else(|| {
                self.err(
                    loc,
                    format!("{field}.mode"),
                    "required: start-stop or stop-only",
                );
                AccountingMode::StartStop
            });
            let mut groups = Vec::new();
            match &l.groups {
                None => self.err(loc, format!("{field}.groups"), "required (e.g. [radius])"),
                Some(g) if g.value.is_empty() => self.err(
                    g.referenced,
                    format!("{field}.groups"),
                    "at least one group",
                ),
                Some(g) => {
                    for (j, gname) in g.value.iter().enumerate() {
                        let gn = gname.value.trim();
                        let gfield = format!("{field}.groups[{j}]");
                        if radius.groups.contains_key(gn) {
                            groups.push(gn.to_string());
                        } else if gn == "radius" {
                            self.err(
                                gname.referenced,
                                gfield,
                                "group 'radius' means all RADIUS servers, but radius.servers \
                                 defines none",
                            );
                        } else {
                            let known: Vec<&str> =
                                radius.groups.keys().map(String::as_str).collect();
                            self.err(
                                gname.referenced,
                                gfield,
                                format!(
                                    "no RADIUS group '{gn}' in radius.groups (defined: {})",
                                    if known.is_empty() {
                                        "none".to_string()
                                    } else {
                                        known.join(", ")
                                    }
                                ),
                            );
                        }
                    }
                }
            }
            lists.insert(
                name,
                AccountingList {
                    mode,
                    broadcast: l.broadcast.unwrap_or(false),
                    groups,
                },
            );
        }
        AccountingConfig {
            update_periodic,
            journal,
            outbox_limit,
            lists,
            when_full: f.when_full.unwrap_or_default(),
        }
    }

    fn proposals(
        &mut self,
        list: Option<&S<Vec<Str>>>,
        field: &str,
        kind: ProposalKind,
        default: &[Proposal],
        allow_legacy: bool,
    ) -> Vec<Proposal> {
        let Some(list) = list else {
            return default.to_vec();
        };
        if list.value.is_empty() {
            self.err(list.referenced, field, "at least one proposal");
            return default.to_vec();
        }
        let mut out = Vec::new();
        for (i, p) in list.value.iter().enumerate() {
            match Proposal::parse(p.value.trim(), kind) {
                Ok(v) if !allow_legacy && !v.legacy().is_empty() => self.err(
                    p.referenced,
                    format!("{field}[{i}]"),
                    format!(
                        "{} is legacy (what Windows' built-in client proposes by default): set \
                         ike.allow_legacy: true for this peer, or better have Windows propose \
                         DH group 14 and AES-256 (registry value NegotiateDH2048_AES256 = 1 or \
                         2, see vpnd.yaml(5))",
                        v.legacy().join(" and ")
                    ),
                ),
                Ok(v) => out.push(v),
                Err(e) => self.err(p.referenced, format!("{field}[{i}]"), e.to_string()),
            }
        }
        if out.is_empty() {
            default.to_vec()
        } else {
            out
        }
    }

    /// `ike:` of a peer or `ike_defaults:`; each key not given comes from `fallback`.
    fn ike(
        &mut self,
        f: Option<&S<file::IkeFile>>,
        field: &str,
        fallback: &IkeConfig,
    ) -> IkeConfig {
        let Some(f) = f else {
            return fallback.clone();
        };
        let f = &f.value;
        let allow_legacy = f
            .allow_legacy
            .as_ref()
            .map_or(fallback.allow_legacy, |b| b.value);
        let proposals = self.proposals(
            f.proposals.as_ref(),
            &format!("{field}.proposals"),
            ProposalKind::Ike,
            &fallback.proposals,
            allow_legacy,
        );
        let lifetime = self.lifetime(
            f.lifetime.as_ref(),
            &format!("{field}.lifetime"),
            fallback.lifetime,
        );
        let dpd = match &f.dpd {
            None => fallback.dpd,
            Some(s) => self
                .optional_duration(s, &format!("{field}.dpd"), MAX_DPD)
                .unwrap_or(fallback.dpd),
        };
        let mut retransmit = fallback.retransmit;
        if let Some(r) = &f.retransmit {
            let r = &r.value;
            let rf = format!("{field}.retransmit");
            if let Some(t) = &r.timeout {
                retransmit.timeout = self.positive_duration(
                    Some(t),
                    &format!("{rf}.timeout"),
                    retransmit.timeout,
                    MAX_RETRANSMIT_TIMEOUT,
                );
            }
            if let Some(b) = &r.base {
                if !(1.0..=10.0).contains(&b.value) {
                    self.err(
                        b.referenced,
                        format!("{rf}.base"),
                        "must be between 1.0 and 10.0",
                    );
                } else {
                    retransmit.base = b.value;
                }
            }
            if let Some(t) = &r.tries {
                if t.value > 20 {
                    self.err(t.referenced, format!("{rf}.tries"), "at most 20");
                } else {
                    retransmit.tries = t.value;
                }
            }
        }
        let encap = f.encap.as_ref().map_or(fallback.encap, |e| e.value);
        let nat_keepalive = match &f.nat_keepalive {
            None => fallback.nat_keepalive,
            Some(s) => self
                .optional_duration(s, &format!("{field}.nat_keepalive"), MAX_NAT_KEEPALIVE)
                .unwrap_or(fallback.nat_keepalive),
        };
        let fragmentation = f
            .fragmentation
            .as_ref()
            .map_or(fallback.fragmentation, |e| e.value);
        let mut fragment_size = fallback.fragment_size;
        if let Some(n) = &f.fragment_size {
            let min = crate::ike::fragment::MIN_FRAGMENT_SIZE;
            match u16::try_from(n.value) {
                Ok(v) if v >= min => fragment_size = v,
                _ => self.err(
                    n.referenced,
                    format!("{field}.fragment_size"),
                    format!("must be between {min} and 65535 (bytes of IP datagram)"),
                ),
            }
        }
        IkeConfig {
            proposals,
            lifetime,
            dpd,
            retransmit,
            encap,
            nat_keepalive,
            fragmentation,
            fragment_size,
            allow_legacy,
        }
    }

    // Each is one section a peer refers to; a struct of them would only rename them.
    #[allow(clippy::too_many_arguments)]
    fn peer(
        &mut self,
        i: usize,
        p: S<file::PeerFile>,
        local: &LocalConfig,
        accounting: &AccountingConfig,
        radius: &RadiusConfig,
        ike_defaults: &IkeConfig,
        trustpoints: &HashMap<String, Arc<TrustPoint>>,
        names: &mut HashMap<String, u64>,
    ) -> Option<PeerConfig> {
        let field = format!("peers[{i}]");
        let ploc = p.referenced;
        let p = p.value;
        let f = |k: &str| format!("{field}.{k}");

        let name = match &p.name {
            None => {
                self.err(ploc, f("name"), "required");
                None
            }
            Some(n) => self.name(n, &f("name")).and_then(|v| {
                if let Some(first) = names.get(&v) {
                    self.err(
                        n.referenced,
                        f("name"),
                        format!("duplicate peer name '{v}' (first on line {first})"),
                    );
                    None
                } else {
                    names.insert(v.clone(), n.referenced.line());
                    Some(v)
                }
            }),
        };
        let remote = match &p.address {
            None => {
                self.err(
                    ploc,
                    f("address"),
                    "required (an address, a prefix or 'any')",
                );
                None
            }
            Some(a) => self.parse(a, f("address"), parse::peer_address),
        };
        let port = self.port(p.port.as_ref(), &f("port"), 500);
        let description = p.description.as_ref().and_then(|d| {
            let n = d.value.chars().count();
            if n > MAX_DESCRIPTION {
                self.err(
                    d.referenced,
                    f("description"),
                    format!("{n} characters, at most {MAX_DESCRIPTION}"),
                );
                None
            } else if d.value.chars().any(char::is_control) {
                self.err(
                    d.referenced,
                    f("description"),
                    "contains control characters",
                );
                None
            } else {
                Some(d.value.clone())
            }
        });
        let start = p.start.as_ref().map_or(StartAction::Respond, |s| s.value);
        if let (Some(s), Some(r)) = (&p.start, remote) {
            if s.value != StartAction::Respond && !matches!(r, PeerAddress::Single(_)) {
                self.err(
                    s.referenced,
                    f("start"),
                    "initiate and on-demand need a single peer address, not 'any' or a prefix \
                     (use start: respond)",
                );
            }
        }
        let unprotected = p
            .unprotected
            .as_ref()
            .map_or(Unprotected::Drop, |u| u.value);
        let reverse_route = p
            .reverse_route
            .as_ref()
            .and_then(|r| self.reverse_route(r, &f("reverse_route")));
        let interface = self.xfrm_interface(p.interface.as_ref(), p.if_id.as_ref(), &f);

        // Identities.
        let peer_family = match remote {
            Some(PeerAddress::Single(a)) => Some(a.is_ipv4()),
            Some(PeerAddress::Prefix(n)) => Some(matches!(n, IpNet::V4(_))),
            _ => None,
        };
        let local_addr = local
            .addresses
            .iter()
            .find(|a| peer_family.is_none_or(|v4| a.is_ipv4() == v4))
            .or(local.addresses.first())
            .copied();
        // How each side authenticates (RFC 7296 2.15): psk or pubkey (strongSwan's words);
        // the peer may also use EAP through RADIUS (2.16).
        let method = |cx: &mut Self, s: Option<&Str>, key: &str| -> Option<Method> {
            match s.map(|s| (s, s.value.trim())) {
                None | Some((_, "psk")) => Some(Method::Psk),
                Some((_, "pubkey")) => Some(Method::Pubkey),
                Some((_, "eap-radius")) if key == "remote" => Some(Method::Eap),
                Some((s, other)) => {
                    let allowed = if key == "remote" {
                        "psk, pubkey or eap-radius"
                    } else {
                        "psk or pubkey"
                    };
                    cx.err(
                        s.referenced,
                        f(&format!("auth.{key}")),
                        format!("{other:?}: {allowed}"),
                    );
                    None
                }
            }
        };
        let a = p.auth.as_ref().map(|a| &a.value);
        let local_method = method(self, a.and_then(|a| a.local.as_ref()), "local");
        let remote_method = method(self, a.and_then(|a| a.remote.as_ref()), "remote");
        let local_pubkey = local_method.map(|m| m == Method::Pubkey);
        let remote_pubkey = remote_method.map(|m| m == Method::Pubkey);
        let uses_psk = local_method == Some(Method::Psk) || remote_method == Some(Method::Psk);
        if !uses_psk {
            for (s, key) in [(&p.psk, "psk"), (&p.psk_file, "psk_file")] {
                if let Some(s) = s {
                    self.err(
                        s.referenced,
                        f(key),
                        "no side authenticates with psk (auth:)",
                    );
                }
            }
        }
        // The pre-shared key, when a side uses it.
        let psk = if !uses_psk {
            None
        } else {
            match (&p.psk, &p.psk_file) {
                (Some(_), Some(pf)) => {
                    self.err(
                        pf.referenced,
                        f("psk_file"),
                        "give psk or psk_file, not both",
                    );
                    None
                }
                (None, None) => {
                    self.err(ploc, f("psk"), "required: psk or psk_file");
                    None
                }
                (Some(k), None) => {
                    if k.value.is_empty() {
                        self.err(k.referenced, f("psk"), "must not be empty");
                        None
                    } else {
                        Some(Secret::new(k.value.clone().into_bytes()))
                    }
                }
                (None, Some(pf)) => self.psk_file(pf, &f("psk_file")),
            }
        };
        let psk = psk.and_then(|k| {
            let (at, key) = match (&p.psk, &p.psk_file) {
                (Some(s), _) => (s.referenced, "psk"),
                (None, Some(s)) => (s.referenced, "psk_file"),
                (None, None) => (ploc, "psk"),
            };
            self.psk_strength(k, at, &f(key))
        });

        let local_cert = match local_pubkey {
            Some(true) => self.local_cert(&p, ploc, &f),
            _ => {
                for (s, key) in [
                    (&p.certificate, "certificate"),
                    (&p.private_key, "private_key"),
                ] {
                    if let Some(s) = s {
                        self.err(s.referenced, f(key), "only with auth: { local: pubkey }");
                    }
                }
                None
            }
        };
        let trustpoint = match (remote_pubkey, &p.trustpoint) {
            // A bad auth.remote is reported already.
            (None, _) => None,
            (Some(true), None) => {
                self.err(
                    ploc,
                    f("trustpoint"),
                    "required with auth: { remote: pubkey }",
                );
                None
            }
            (Some(true), Some(t)) => match trustpoints.get(t.value.trim()) {
                Some(tp) => Some(tp.clone()),
                None => {
                    self.err(
                        t.referenced,
                        f("trustpoint"),
                        format!("no trustpoint named {:?} in trustpoints", t.value),
                    );
                    None
                }
            },
            (_, Some(t)) => {
                self.err(
                    t.referenced,
                    f("trustpoint"),
                    "only with auth: { remote: pubkey }",
                );
                None
            }
            (_, None) => None,
        };
        let (eap_identity, auth_group) = self.peer_auth(
            p.auth.as_ref(),
            &f("auth"),
            radius,
            start_of(&p),
            remote_method == Some(Method::Eap),
        );

        let auth = (|| {
            let local = match local_pubkey? {
                true => {
                    let (certificate, cert) = local_cert.clone()?;
                    LocalAuthConfig::Certificate { certificate, cert }
                }
                false => LocalAuthConfig::Psk(psk.clone()?),
            };
            let remote = match remote_method? {
                Method::Pubkey => RemoteAuthConfig::Certificate(trustpoint?),
                Method::Psk => RemoteAuthConfig::Psk(psk.clone()?),
                Method::Eap => RemoteAuthConfig::Eap(eap_identity?),
            };
            Some(PeerAuth { local, remote })
        })();

        let local_id = match &p.local_id {
            Some(s) => match self.parse(s, f("local_id"), parse::identity) {
                Some(IdSpec::Id(id)) => Some(id),
                Some(IdSpec::Any) => {
                    self.err(s.referenced, f("local_id"), "%any is only for remote_id");
                    None
                }
                None => None,
            },
            // With a certificate, its subject DN (as strongSwan does).
            None if local_cert.is_some() => local_cert.as_ref().map(|(_, c)| c.subject_identity()),
            None => match local_addr {
                Some(a) => Some(id_of(a)),
                None => {
                    self.err(
                        ploc,
                        f("local_id"),
                        "required when local.addresses is not set (there is no local \
                         address to use as the identity)",
                    );
                    None
                }
            },
        };
        // A `*` makes remote_id a pattern (a remote-access profile's `match identity`).
        let id_pattern = p
            .remote_id
            .as_ref()
            .filter(|s| s.value.contains('*'))
            .and_then(|s| {
                let v = s.value.trim();
                if v.chars().any(char::is_control) || v.len() > 255 {
                    self.err(
                        s.referenced,
                        f("remote_id"),
                        "a pattern of at most 255 printable characters",
                    );
                    None
                } else {
                    Some(crate::ike::IdPattern::new(v))
                }
            });
        let remote_id = match p.remote_id.as_ref().filter(|s| !s.value.contains('*')) {
            Some(s) => match self.parse(s, f("remote_id"), parse::identity) {
                Some(IdSpec::Id(id)) => Some(id),
                _ => None,
            },
            None if id_pattern.is_some() => None,
            // A certificate names its holder: any identity it names is taken.
            None if remote_pubkey == Some(true) => None,
            None => match remote {
                Some(PeerAddress::Single(a)) => Some(id_of(a)),
                _ => None,
            },
        };
        let pool = self.pool_ref(p.pool.as_ref(), &f("pool"), false);
        let pool6 = self.pool_ref(p.ipv6_pool.as_ref(), &f("ipv6_pool"), true);
        let mut dns = Vec::new();
        if let Some(d) = &p.dns {
            for (j, s) in d.value.iter().enumerate() {
                if let Some(a) = self.parse(s, format!("{field}.dns[{j}]"), parse::ip) {
                    dns.push(a);
                }
            }
        }

        let fvrf = self.label(p.fvrf.as_ref(), &f("fvrf"), 32);
        let ivrf = self.label(p.ivrf.as_ref(), &f("ivrf"), 32);
        if let (Some(_), Some(v), Some(at)) = (&interface, &ivrf, &p.ivrf) {
            if !self.vrf_names.contains(v) {
                self.err(
                    at.referenced,
                    f("ivrf"),
                    format!(
                        "route-based peers' inside VRF must be in vrfs (vrfs: {{ {v}: TABLE }}): \
                         vpnd puts the XFRM interface in it"
                    ),
                );
            }
        }
        // A route-based peer's reverse routes go in its inside VRF's table.
        if let (Some(_), Some(_), Some(r)) = (&interface, &ivrf, &p.reverse_route) {
            if let ReverseRouteFile::With(file::ReverseRouteOptions { table: Some(t), .. }) =
                &r.value
            {
                self.warn(
                    t.referenced,
                    format!("{}.table", f("reverse_route")),
                    "not used: a route-based peer's reverse routes go in its ivrf's table",
                );
            }
        }
        // A front-door VRF listed in `vrfs` is real: IKE's sockets are bound to it and the
        // XFRM interface's link is that VRF, so the kernel routes the ESP packets in its
        // table. Policy-based ESP is routed in the table of the traffic it protects, which
        // a front-door VRF cannot change: only route-based peers may have one.
        if let (None, Some(v), Some(at)) = (&interface, &fvrf, &p.fvrf) {
            if self.vrf_names.contains(v) {
                self.err(
                    at.referenced,
                    f("fvrf"),
                    format!(
                        "the front-door VRF {v} needs a route-based peer (interface and \
                         if_id): the kernel routes policy-based ESP in the table of the \
                         traffic it protects, not in a VRF"
                    ),
                );
            }
        }
        // Entries for many clients (any address or a prefix) that name the identities
        // they take are told apart in IKE_AUTH (the profile chosen by IDi), not by address.
        let by_identity = (remote_id.is_some() || id_pattern.is_some())
            && !matches!(remote, Some(PeerAddress::Single(_)));
        if let (Some(r), Some(a), false) = (remote, &p.address, by_identity) {
            self.unique_address(r, port, &fvrf, name.as_deref(), a.referenced, &f("address"));
        }
        let group = self.label(p.group.as_ref(), &f("group"), 64);
        let accounting_list = p.accounting.as_ref().and_then(|a| {
            let n = a.value.trim();
            if accounting.lists.contains_key(n) {
                Some(n.to_string())
            } else {
                let known: Vec<&str> = accounting.lists.keys().map(String::as_str).collect();
                self.err(
                    a.referenced,
                    f("accounting"),
                    format!(
                        "no accounting list '{n}' in accounting.lists (defined: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
                None
            }
        });
        let ike = self.ike(p.ike.as_ref(), &f("ike"), ike_defaults);

        let mut children = Vec::new();
        match &p.children {
            None => self.err(ploc, f("children"), "at least one child SA is required"),
            Some(c) if c.value.is_empty() => self.err(
                c.referenced,
                f("children"),
                "at least one child SA is required",
            ),
            Some(c) => {
                let mut cnames: HashMap<String, u64> = HashMap::new();
                for (j, ch) in c.value.iter().enumerate() {
                    if let Some(child) = self.child(
                        &format!("{field}.children[{j}]"),
                        ch,
                        remote,
                        local,
                        &mut cnames,
                        ike.allow_legacy,
                    ) {
                        children.push(child);
                    }
                }
            }
        }

        Some(PeerConfig {
            name: name?,
            remote: remote?,
            port,
            description,
            local_id: local_id?,
            remote_id,
            auth: auth?,
            auth_group,
            start,
            unprotected,
            reverse_route,
            interface,
            fvrf,
            ivrf,
            group,
            accounting: accounting_list,
            ike,
            children,
            remote_access: crate::ike::RemoteAccess {
                identity: id_pattern,
                pool,
                pool6,
                dns,
                request_address: false,
                request_ipv6: false,
            },
        })
    }

    /// A peer's `pool` (IPv4) or `ipv6_pool`: a pool of `pools:` of that family.
    fn pool_ref(&mut self, s: Option<&Str>, field: &str, v6: bool) -> Option<String> {
        let s = s?;
        let n = s.value.trim();
        let fam = if v6 { "IPv6" } else { "IPv4" };
        match self.pool_names.iter().find(|(x, _)| x == n) {
            Some((_, is_v6)) if *is_v6 == v6 => Some(n.to_string()),
            Some(_) => {
                let other = if v6 { "pool" } else { "ipv6_pool" };
                self.err(
                    s.referenced,
                    field,
                    format!("pool '{n}' is not an {fam} pool (name it in {other})"),
                );
                None
            }
            None => {
                let known: Vec<&str> = self
                    .pool_names
                    .iter()
                    .filter(|(_, x)| *x == v6)
                    .map(|(n, _)| n.as_str())
                    .collect();
                self.err(
                    s.referenced,
                    field,
                    format!(
                        "no {fam} pool '{n}' in pools (defined: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
                None
            }
        }
    }

    /// `pools:` (IOS `ip local pool NAME BEGIN END`, `ipv6 local pool`): IPv4 or IPv6
    /// ranges, both ends included, or a prefix (all its addresses but the first, IPv6's
    /// subnet-router anycast, RFC 4291 2.6.1; for IPv4 also not the broadcast address);
    /// none overlapping another.
    fn pools(
        &mut self,
        v: Option<&S<BTreeMap<String, S<file::PoolFile>>>>,
    ) -> Vec<crate::ike::AddressPool> {
        use crate::ike::pool::{Family, MAX_POOL6_PREFIX, MAX_POOL_SIZE};
        let mut out: Vec<crate::ike::AddressPool> = Vec::new();
        let Some(v) = v else { return out };
        let num = |a: IpAddr| match a {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        };
        for (name, p) in &v.value {
            let field = format!("pools.{name}");
            if name.is_empty()
                || name.len() > 64
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                self.err(
                    p.referenced,
                    &field,
                    "a pool name is 1 to 64 letters, digits, '-', '_' or '.'",
                );
                continue;
            }
            let range = match (&p.value.prefix, &p.value.begin, &p.value.end) {
                (Some(pre), None, None) => {
                    let Some(net) = self.parse(pre, format!("{field}.prefix"), parse::prefix)
                    else {
                        continue;
                    };
                    let (min_len, max) = match net {
                        IpNet::V4(_) => (12, 30),
                        IpNet::V6(_) => (MAX_POOL6_PREFIX, 126),
                    };
                    if net.prefix_len() < min_len || net.prefix_len() > max {
                        self.err(
                            pre.referenced,
                            format!("{field}.prefix"),
                            format!(
                                "a pool prefix is /{min_len} to /{max} (at most {} addresses)",
                                if min_len == 12 { "2^20" } else { "2^64" }
                            ),
                        );
                        continue;
                    }
                    // IPv4 leaves out the network and broadcast addresses too.
                    let (first, last) = (num(net.network()) + 1, num(net.broadcast()));
                    let (first, last) = match net {
                        IpNet::V4(_) => (
                            IpAddr::V4((first as u32).into()),
                            IpAddr::V4((last as u32 - 1).into()),
                        ),
                        IpNet::V6(_) => (IpAddr::V6(first.into()), IpAddr::V6(last.into())),
                    };
                    (first, last, pre.referenced)
                }
                (Some(pre), _, _) => {
                    self.err(
                        pre.referenced,
                        format!("{field}.prefix"),
                        "either prefix or begin and end, not both",
                    );
                    continue;
                }
                (None, b, e) => {
                    let end_of = |cx: &mut Ctx, s: &Option<Str>, key: &str| match s {
                        None => {
                            cx.err(
                                p.referenced,
                                format!("{field}.{key}"),
                                "required (an IPv4 or IPv6 address), or a prefix instead",
                            );
                            None
                        }
                        Some(s) => cx
                            .parse(s, format!("{field}.{key}"), parse::ip)
                            .map(|a| (a, s.referenced)),
                    };
                    let (Some((begin, _)), Some((end, at))) =
                        (end_of(self, b, "begin"), end_of(self, e, "end"))
                    else {
                        continue;
                    };
                    if begin.is_ipv4() != end.is_ipv4() {
                        self.err(
                            at,
                            format!("{field}.end"),
                            format!("{end} and begin {begin} are of different families"),
                        );
                        continue;
                    }
                    (begin, end, at)
                }
            };
            let (begin, end, at) = range;
            let (b, e) = (num(begin), num(end));
            if b > e {
                self.err(
                    at,
                    format!("{field}.end"),
                    format!("{end} is before begin {begin}"),
                );
                continue;
            }
            let too_big = match Family::of(begin) {
                Family::Ipv4 => e - b >= u128::from(MAX_POOL_SIZE),
                Family::Ipv6 => e - b > u128::from(u64::MAX),
            };
            if too_big {
                self.err(
                    at,
                    format!("{field}.end"),
                    format!(
                        "{} addresses, at most {}",
                        e - b + 1,
                        match Family::of(begin) {
                            Family::Ipv4 => format!("{MAX_POOL_SIZE} in an IPv4 pool"),
                            Family::Ipv6 => "2^64 (a /64) in an IPv6 pool".into(),
                        }
                    ),
                );
                continue;
            }
            if let Some(o) = out.iter().find(|o| {
                o.first.is_ipv4() == begin.is_ipv4() && num(o.first) <= e && b <= num(o.last)
            }) {
                self.err(
                    p.referenced,
                    &field,
                    format!("overlaps pool '{}' ({} - {})", o.name, o.first, o.last),
                );
                continue;
            }
            out.push(crate::ike::AddressPool {
                name: name.clone(),
                first: begin,
                last: end,
            });
        }
        self.pool_names = out
            .iter()
            .map(|p| (p.name.clone(), p.first.is_ipv6()))
            .collect();
        out
    }

    /// `auth:` of a peer, EAP's part: it needs a RADIUS group with servers, and a peer that
    /// only responds (EAP is the client's method, RFC 7296 2.16: the initiator uses it).
    /// `eap`: `remote: eap-radius`. The EAP identity's source and the group, with EAP.
    fn peer_auth(
        &mut self,
        a: Option<&S<file::AuthFile>>,
        field: &str,
        radius: &RadiusConfig,
        start: Option<(StartAction, Location)>,
        eap: bool,
    ) -> (Option<crate::ike::EapIdentity>, Option<String>) {
        let Some(a) = a else {
            return (None, None);
        };
        if !eap {
            if let Some(g) = &a.value.radius_group {
                self.err(
                    g.referenced,
                    format!("{field}.radius_group"),
                    "only with remote: eap-radius",
                );
            }
            if let Some(e) = &a.value.eap_identity {
                self.err(
                    e.referenced,
                    format!("{field}.eap_identity"),
                    "only with remote: eap-radius",
                );
            }
            return (None, None);
        }
        let at = a
            .value
            .remote
            .as_ref()
            .map_or(a.referenced, |r| r.referenced);
        if let Some((s, sloc)) = start {
            if s != StartAction::Respond {
                self.err(
                    sloc,
                    field.replace(".auth", ".start"),
                    "a peer authenticated with EAP only responds (the client initiates)",
                );
            }
        }
        let (name, gloc) = match &a.value.radius_group {
            Some(g) => (g.value.trim().to_string(), g.referenced),
            None => ("radius".to_string(), at),
        };
        match radius.group_servers(&name) {
            Some(servers) if !servers.is_empty() => {}
            _ => {
                let known: Vec<&str> = radius.groups.keys().map(String::as_str).collect();
                self.err(
                    gloc,
                    format!("{field}.radius_group"),
                    format!(
                        "no RADIUS server group '{name}' with servers in radius.groups (defined: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
        }
        let identity = match a.value.eap_identity.as_ref().map(|e| e.value) {
            None | Some(file::EapIdentityFile::IkeId) => crate::ike::EapIdentity::IkeId,
            Some(file::EapIdentityFile::Request) => crate::ike::EapIdentity::Request,
        };
        (Some(identity), Some(name))
    }

    /// `trustpoints`: each a name, CA files and CRL files (PEM; a CRL may be DER).
    fn trustpoints(
        &mut self,
        raw: Vec<S<file::TrustPointFile>>,
    ) -> HashMap<String, Arc<TrustPoint>> {
        let mut out = HashMap::new();
        for (i, t) in raw.into_iter().enumerate() {
            let field = format!("trustpoints[{i}]");
            let (tloc, t) = (t.referenced, t.value);
            let f = |k: &str| format!("{field}.{k}");
            let name = match &t.name {
                None => {
                    self.err(tloc, f("name"), "required");
                    None
                }
                Some(n) => self.name(n, &f("name")),
            };
            let mut cas = Vec::new();
            match &t.cas {
                None => self.err(tloc, f("cas"), "required: the CA certificate files"),
                Some(list) if list.value.is_empty() => {
                    self.err(list.referenced, f("cas"), "must not be empty")
                }
                Some(list) => {
                    for (j, c) in list.value.iter().enumerate() {
                        let field = f(&format!("cas[{j}]"));
                        if let Some(bytes) = self.pem_file(c, &field, false) {
                            match crate::ike::auth::certs::pem_certificates(&bytes) {
                                Ok(v) => {
                                    for der in &v {
                                        self.cert_dates(c.referenced, &field, der);
                                    }
                                    cas.extend(v)
                                }
                                Err(e) => self.err(c.referenced, field, e),
                            }
                        }
                    }
                }
            }
            let mut crls = Vec::new();
            for (j, c) in t.crls.iter().flat_map(|l| l.value.iter()).enumerate() {
                let field = f(&format!("crls[{j}]"));
                if let Some(bytes) = self.pem_file(c, &field, false) {
                    match crate::ike::auth::certs::pem_crls(&bytes) {
                        Ok(v) => crls.extend(v),
                        Err(e) => self.err(c.referenced, field, e),
                    }
                }
            }
            let Some(name) = name else { continue };
            if cas.is_empty() {
                continue;
            }
            if out.contains_key(&name) {
                self.err(tloc, f("name"), format!("trustpoint {name:?} given twice"));
                continue;
            }
            match TrustPoint::new(&name, &cas, &crls) {
                Ok(tp) => {
                    out.insert(name, Arc::new(tp));
                }
                Err(e) => self.err(tloc, field.clone(), e),
            }
        }
        out
    }

    /// A peer's `certificate` and `private_key`: read, parsed, and checked to belong
    /// together; an expired (or not yet valid) certificate is a warning, not an error, so
    /// a renewal can be staged.
    fn local_cert(
        &mut self,
        p: &file::PeerFile,
        ploc: Location,
        f: &dyn Fn(&str) -> String,
    ) -> Option<(PathBuf, Arc<LocalCert>)> {
        let (Some(c), Some(k)) = (&p.certificate, &p.private_key) else {
            if p.certificate.is_none() {
                self.err(
                    ploc,
                    f("certificate"),
                    "required with auth: { local: pubkey }",
                );
            }
            if p.private_key.is_none() {
                self.err(
                    ploc,
                    f("private_key"),
                    "required with auth: { local: pubkey }",
                );
            }
            return None;
        };
        let chain = self.pem_file(c, &f("certificate"), false).and_then(|b| {
            crate::ike::auth::certs::pem_certificates(&b)
                .map_err(|e| self.err(c.referenced, f("certificate"), e))
                .ok()
        });
        let key = self.pem_file(k, &f("private_key"), true).and_then(|b| {
            crate::ike::auth::SigningKey::from_pem(&b)
                .map_err(|e| self.err(k.referenced, f("private_key"), e))
                .ok()
        });
        let (chain, key) = (chain?, key?);
        self.cert_dates(c.referenced, &f("certificate"), &chain[0]);
        match LocalCert::new(chain, key) {
            Ok(cert) => Some((self.path_of(c), Arc::new(cert))),
            Err(e) => {
                self.err(k.referenced, f("private_key"), e);
                None
            }
        }
    }

    /// Warns about a certificate outside its validity now (the daemon's clock).
    fn cert_dates(&mut self, at: Location, field: &str, der: &[u8]) {
        use x509_parser::prelude::{FromDer, X509Certificate};
        let Ok((_, c)) = X509Certificate::from_der(der) else {
            return;
        };
        let v = c.validity();
        if !v.is_valid() {
            self.warn(
                at,
                field,
                format!(
                    "certificate of {} is not valid now (valid from {} to {})",
                    c.subject(),
                    v.not_before,
                    v.not_after
                ),
            );
        }
    }

    fn path_of(&self, s: &Str) -> PathBuf {
        let raw = PathBuf::from(s.value.trim());
        if raw.is_absolute() {
            raw
        } else {
            self.dir.join(raw)
        }
    }

    /// Reads a certificate, key or CRL file (relative to the configuration's directory):
    /// non-blocking, a regular file of at most [`MAX_PEM_FILE`] bytes; a `secret` one (a
    /// private key) must not be readable or writable by other users.
    fn pem_file(&mut self, s: &Str, field: &str, secret: bool) -> Option<Vec<u8>> {
        match read_guarded(&self.path_of(s), MAX_PEM_FILE, secret) {
            Ok((b, ..)) => Some(b.to_vec()),
            Err(m) => {
                self.err(s.referenced, field, m);
                None
            }
        }
    }

    /// `vrfs`: VRF device names (interface names) with a table of their own.
    fn vrfs(&mut self, v: Option<&S<BTreeMap<String, S<u32>>>>) -> BTreeMap<String, u32> {
        let mut out = BTreeMap::new();
        let Some(v) = v else { return out };
        let mut tables: HashMap<u32, String> = HashMap::new();
        for (name, table) in &v.value {
            let field = format!("vrfs.{name}");
            if !interface_name(name) {
                self.err(
                    table.referenced,
                    &field,
                    "not an interface name (1 to 15 characters, no '/', ':' or spaces)",
                );
                continue;
            }
            // 0 unspecified, 253 default, 254 main, 255 local: the kernel's own.
            if matches!(table.value, 0 | 253..=255) {
                self.err(
                    table.referenced,
                    &field,
                    format!(
                        "table {} is the kernel's; give the VRF a table of its own",
                        table.value
                    ),
                );
                continue;
            }
            if let Some(other) = tables.get(&table.value) {
                self.err(
                    table.referenced,
                    &field,
                    format!("table {} is VRF {other}'s already", table.value),
                );
                continue;
            }
            tables.insert(table.value, name.clone());
            out.insert(name.clone(), table.value);
        }
        self.vrf_names = out.keys().cloned().collect();
        out
    }

    /// `interface` and `if_id` (route-based): both or neither; an interface name the kernel
    /// takes; one if_id per interface and one interface per if_id.
    fn xfrm_interface(
        &mut self,
        name: Option<&Str>,
        if_id: Option<&S<u32>>,
        f: &dyn Fn(&str) -> String,
    ) -> Option<XfrmInterface> {
        let (name, if_id) = match (name, if_id) {
            (None, None) => return None,
            (None, Some(i)) => {
                self.err(
                    i.referenced,
                    f("if_id"),
                    "needs interface (the XFRM interface of this if_id)",
                );
                return None;
            }
            (Some(n), None) => {
                self.err(
                    n.referenced,
                    f("if_id"),
                    "required with interface: the XFRM interface's if_id (a number, not 0)",
                );
                return None;
            }
            (Some(n), Some(i)) => (n, i),
        };
        let v = name.value.trim();
        if !interface_name(v) {
            self.err(
                name.referenced,
                f("interface"),
                "not an interface name (1 to 15 characters, no '/', ':' or spaces)",
            );
            return None;
        }
        if if_id.value == 0 {
            self.err(
                if_id.referenced,
                f("if_id"),
                "0 means no interface to the kernel: use 1 or more",
            );
            return None;
        }
        if let Some(&had) = self.interfaces.get(v) {
            if had != if_id.value {
                self.err(
                    if_id.referenced,
                    f("if_id"),
                    format!("interface {v} has if_id {had} already (one if_id per interface)"),
                );
                return None;
            }
        } else if let Some((other, _)) = self.interfaces.iter().find(|(_, &i)| i == if_id.value) {
            self.err(
                if_id.referenced,
                f("if_id"),
                format!(
                    "if_id {} is interface {other}'s (one interface per if_id)",
                    if_id.value
                ),
            );
            return None;
        } else {
            self.interfaces.insert(v.to_string(), if_id.value);
        }
        Some(XfrmInterface {
            name: v.to_string(),
            if_id: if_id.value,
        })
    }

    /// `reverse_route`: tables 0 (unspecified) and 255 (local) are not for routes of ours.
    fn reverse_route(&mut self, r: &S<ReverseRouteFile>, field: &str) -> Option<ReverseRoute> {
        let defaults = ReverseRoute {
            table: MAIN_TABLE,
            metric: 0,
            remote_peer: false,
        };
        match &r.value {
            ReverseRouteFile::Flag(false) => None,
            ReverseRouteFile::Flag(true) => Some(defaults),
            ReverseRouteFile::With(o) => {
                let table = match &o.table {
                    Some(t) if t.value == 0 || t.value == 255 => {
                        self.err(
                            t.referenced,
                            format!("{field}.table"),
                            format!(
                                "table {} is reserved (use 254 for main, or a table of its own)",
                                t.value
                            ),
                        );
                        MAIN_TABLE
                    }
                    Some(t) => t.value,
                    None => MAIN_TABLE,
                };
                Some(ReverseRoute {
                    table,
                    metric: o.metric.as_ref().map_or(0, |m| m.value),
                    remote_peer: o.remote_peer.as_ref().is_some_and(|b| b.value),
                })
            }
        }
    }

    /// A key of at least [`MIN_PSK`] bytes; a warning below [`GOOD_PSK`].
    fn psk_strength(&mut self, k: Secret, at: Location, field: &str) -> Option<Secret> {
        let n = k.expose().len();
        if n < MIN_PSK {
            self.err(
                at,
                field,
                format!(
                    "{n} bytes is too short a pre-shared key (at least {MIN_PSK}; one captured \
                     IKE_AUTH lets anyone try keys offline)"
                ),
            );
            return None;
        }
        if n < GOOD_PSK {
            self.warn(
                at,
                field,
                format!(
                    "{n} bytes: a pre-shared key of {GOOD_PSK} or more random characters is safer"
                ),
            );
        }
        Some(k)
    }

    /// Two peers with the same address, port and front-door VRF cannot be told apart (the
    /// responder picks a peer by address): the second is refused, naming the first.
    fn unique_address(
        &mut self,
        remote: PeerAddress,
        port: u16,
        fvrf: &Option<String>,
        name: Option<&str>,
        at: Location,
        field: &str,
    ) {
        let key = match remote {
            PeerAddress::Single(a) => PeerAddress::Single(a.to_canonical()),
            PeerAddress::Prefix(n) => PeerAddress::Prefix(n.trunc()),
            PeerAddress::Any => PeerAddress::Any,
        };
        let first = self
            .peer_addrs
            .iter()
            .find(|(k, p, v, _, _)| *k == key && *p == port && v == fvrf)
            .map(|(_, _, _, n, l)| (n.clone(), *l));
        if let Some((first_name, l)) = first {
            let shown = match remote {
                PeerAddress::Single(a) => a.to_string(),
                PeerAddress::Prefix(n) => n.to_string(),
                PeerAddress::Any => "any".into(),
            };
            let vrf = fvrf
                .as_deref()
                .map_or(String::new(), |v| format!(" in fvrf {v}"));
            self.err(
                at,
                field,
                format!(
                    "peer address {shown} port {port}{vrf} is also peer '{first_name}''s (at \
                     {}:{}:{}): a peer's address, port and fvrf must be unique",
                    self.file.display(),
                    l.line(),
                    l.column()
                ),
            );
        } else {
            self.peer_addrs
                .push((key, port, fvrf.clone(), name.unwrap_or("?").to_string(), at));
        }
    }

    /// Reads a key file without trusting it: opened non-blocking (a FIFO or a device never
    /// hangs the check), it must be a regular file that other users can neither read nor
    /// write, of at most [`MAX_PSK_FILE`] bytes; a warning when its group can read it.
    fn psk_file(&mut self, pf: &Str, field: &str) -> Option<Secret> {
        let raw = PathBuf::from(pf.value.trim());
        let path = if raw.is_absolute() {
            raw
        } else {
            self.dir.join(raw)
        };
        let read = || {
            read_guarded(&path, MAX_PSK_FILE, true).map_err(|m| {
                if m.ends_with("is not a regular file") {
                    format!("{m} (a key file holds the key and nothing else)")
                } else if m.contains("is longer than") {
                    format!("{m}: not a key file")
                } else {
                    m
                }
            })
        };
        match read() {
            Err(m) => {
                self.err(pf.referenced, field, m);
                None
            }
            Ok((bytes, mode, uid, gid)) => {
                // Checked as root, read at start by the unit's user: say so now.
                if let Some(user) = local_user_ids(UNIT_USER) {
                    if !unit_user_can_read(user, uid, gid, mode) {
                        self.warn(
                            pf.referenced,
                            field,
                            format!(
                                "{} (uid {uid}, mode {mode:04o}) cannot be read by the user \
                                 '{UNIT_USER}' the unit runs vpnd as: chown {UNIT_USER}: it",
                                path.display()
                            ),
                        );
                    }
                }
                if mode & 0o040 != 0 {
                    self.warn(
                        pf.referenced,
                        field,
                        format!(
                            "{} is readable by its group (mode {mode:04o}): chmod g-r it \
                             unless the group is meant to know the key",
                            path.display()
                        ),
                    );
                }
                let mut end = bytes.len();
                while end > 0 && matches!(bytes[end - 1], b'\n' | b'\r') {
                    end -= 1;
                }
                if end == 0 {
                    self.err(pf.referenced, field, format!("{} is empty", path.display()));
                    None
                } else {
                    Some(Secret::new(bytes[..end].to_vec()))
                }
            }
        }
    }

    fn ts_list(&mut self, list: &S<Vec<Str>>, field: &str) -> Vec<(TsSpec, Location)> {
        if list.value.is_empty() {
            self.err(list.referenced, field, "at least one traffic selector");
        }
        list.value
            .iter()
            .enumerate()
            .filter_map(|(k, s)| {
                self.parse(s, format!("{field}[{k}]"), parse::ts)
                    .map(|t| (t, s.referenced))
            })
            .collect()
    }

    fn child(
        &mut self,
        field: &str,
        ch: &S<file::ChildFile>,
        remote: Option<PeerAddress>,
        local: &LocalConfig,
        names: &mut HashMap<String, u64>,
        allow_legacy: bool,
    ) -> Option<ChildConfig> {
        let cloc = ch.referenced;
        let c = &ch.value;
        let f = |k: &str| format!("{field}.{k}");
        let name = match &c.name {
            None => {
                self.err(cloc, f("name"), "required");
                None
            }
            Some(n) => self.name(n, &f("name")).and_then(|v| {
                if let Some(first) = names.get(&v) {
                    self.err(
                        n.referenced,
                        f("name"),
                        format!("duplicate child name '{v}' in this peer (first on line {first})"),
                    );
                    None
                } else {
                    names.insert(v.clone(), n.referenced.line());
                    Some(v)
                }
            }),
        };
        let mode = c.mode.as_ref().map_or(Mode::Tunnel, |m| m.value);

        // Traffic selectors. In transport mode they default to the hosts themselves.
        let mut local_ts = match &c.local_ts {
            Some(l) => self.ts_list(l, &f("local_ts")),
            None => {
                let family = match remote {
                    Some(PeerAddress::Single(a)) => Some(a.is_ipv4()),
                    _ => None,
                };
                let own = local
                    .addresses
                    .iter()
                    .find(|a| family.is_none_or(|v4| a.is_ipv4() == v4));
                match (mode, own) {
                    (Mode::Transport, Some(a)) => vec![(host_ts(*a), cloc)],
                    (Mode::Transport, None) => {
                        self.err(
                            cloc,
                            f("local_ts"),
                            "required (transport mode takes it from local.addresses, which \
                             lists no address of the peer's family)",
                        );
                        vec![]
                    }
                    (Mode::Tunnel, _) => {
                        self.err(cloc, f("local_ts"), "required in tunnel mode");
                        vec![]
                    }
                }
            }
        };
        let mut remote_ts = match &c.remote_ts {
            Some(l) => self.ts_list(l, &f("remote_ts")),
            None => match (mode, remote) {
                (Mode::Transport, Some(PeerAddress::Single(a))) => vec![(host_ts(a), cloc)],
                (Mode::Transport, _) => {
                    self.err(
                        cloc,
                        f("remote_ts"),
                        "required (transport mode takes it from a single peer address)",
                    );
                    vec![]
                }
                (Mode::Tunnel, _) => {
                    self.err(cloc, f("remote_ts"), "required in tunnel mode");
                    vec![]
                }
            },
        };
        match mode {
            Mode::Tunnel => {
                // Each side must have a selector of every family the other side has.
                let fams = |v: &[(TsSpec, Location)]| -> Vec<&'static str> {
                    v.iter().map(|(t, _)| family(&t.net)).collect()
                };
                let (lf, rf) = (fams(&local_ts), fams(&remote_ts));
                if !local_ts.is_empty() && !remote_ts.is_empty() {
                    for (k, (t, loc)) in local_ts.iter().enumerate() {
                        if !rf.contains(&family(&t.net)) {
                            self.err(
                                *loc,
                                format!("{}[{k}]", f("local_ts")),
                                format!(
                                    "{t} is {} but remote_ts has no {} selector",
                                    family(&t.net),
                                    family(&t.net)
                                ),
                            );
                        }
                    }
                    for (k, (t, loc)) in remote_ts.iter().enumerate() {
                        if !lf.contains(&family(&t.net)) {
                            self.err(
                                *loc,
                                format!("{}[{k}]", f("remote_ts")),
                                format!(
                                    "{t} is {} but local_ts has no {} selector",
                                    family(&t.net),
                                    family(&t.net)
                                ),
                            );
                        }
                    }
                }
            }
            Mode::Transport => {
                if !local.addresses.is_empty() {
                    for (k, (t, loc)) in local_ts.iter().enumerate() {
                        if !local
                            .addresses
                            .iter()
                            .any(|a| host_ts(*a).net.contains(&t.net))
                        {
                            self.err(
                                *loc,
                                format!("{}[{k}]", f("local_ts")),
                                format!(
                                    "transport mode protects only this host: {} is not one \
                                     of local.addresses",
                                    t.net
                                ),
                            );
                        }
                    }
                }
                let peer_net = match remote {
                    Some(PeerAddress::Single(a)) => Some(IpNet::from(a)),
                    Some(PeerAddress::Prefix(n)) => Some(n),
                    _ => None,
                };
                if let Some(pn) = peer_net {
                    for (k, (t, loc)) in remote_ts.iter().enumerate() {
                        if !pn.contains(&t.net) {
                            self.err(
                                *loc,
                                format!("{}[{k}]", f("remote_ts")),
                                format!(
                                    "transport mode protects only the peer itself: {} is not \
                                     within the peer address {pn}",
                                    t.net
                                ),
                            );
                        }
                    }
                }
            }
        }

        let default_esp: Vec<Proposal> = DEFAULT_ESP_PROPOSALS
            .iter()
            .map(|p| Proposal::parse(p, ProposalKind::Esp).expect("built-in proposal"))
            .collect();
        let esp = self.proposals(
            c.esp.as_ref(),
            &f("esp"),
            ProposalKind::Esp,
            &default_esp,
            allow_legacy,
        );
        let pfs = c
            .pfs
            .as_ref()
            .and_then(|s| self.parse(s, f("pfs"), parse::pfs))
            .flatten();
        if let (Some(_), Some(s)) = (pfs, &c.pfs) {
            if esp.iter().any(|p| !p.groups.is_empty()) {
                self.err(
                    s.referenced,
                    f("pfs"),
                    "the esp proposals already name a DH group; give the group in one place",
                );
            }
        }
        let (lifetime_seconds, lifetime_kilobytes) = match &c.lifetime {
            None => (3600, None),
            Some(l) => {
                let secs = self
                    .lifetime(
                        l.value.seconds.as_ref(),
                        &f("lifetime.seconds"),
                        Duration::from_secs(3600),
                    )
                    .as_secs();
                let kb = l.value.kilobytes.as_ref().and_then(|k| {
                    if k.value == 0 {
                        self.err(
                            k.referenced,
                            f("lifetime.kilobytes"),
                            "must be at least 1 (leave it out for no volume limit)",
                        );
                        None
                    } else if k.value > MAX_CHILD_KILOBYTES {
                        self.err(
                            k.referenced,
                            f("lifetime.kilobytes"),
                            format!("at most {MAX_CHILD_KILOBYTES} (about 4 TiB)"),
                        );
                        None
                    } else {
                        Some(k.value)
                    }
                });
                (secs, kb)
            }
        };
        let replay_window = c.replay_window.as_ref().map_or(64, |r| r.value);
        if let Some(r) = &c.replay_window {
            if r.value > MAX_REPLAY_WINDOW {
                self.err(
                    r.referenced,
                    f("replay_window"),
                    format!("at most {MAX_REPLAY_WINDOW} packets"),
                );
            }
        }
        Some(ChildConfig {
            name: name?,
            local_ts: local_ts.drain(..).map(|(t, _)| t).collect(),
            remote_ts: remote_ts.drain(..).map(|(t, _)| t).collect(),
            mode,
            esp,
            pfs,
            lifetime_seconds,
            lifetime_kilobytes,
            replay_window,
        })
    }
}

/// A duration in its largest whole unit, as the file may write it.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".into(),
        s if s % 86400 == 0 => format!("{}d", s / 86400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Whether `dir` exists as a directory or could be created: its nearest existing ancestor
/// must be a directory. (Permissions are not judged: `--check` may run as another user.)
/// Whether `user` (uid, gid) may read a file of `uid`:`gid` with `mode` (no ACLs, no
/// supplementary groups: the unit's user has only its own group).
pub(super) fn unit_user_can_read(user: (u32, u32), uid: u32, gid: u32, mode: u32) -> bool {
    (user.0 == uid && mode & 0o400 != 0) || (user.1 == gid && mode & 0o040 != 0)
}

fn creatable_dir(dir: &Path) -> Result<(), String> {
    let mut p = dir;
    loop {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => {
                return Err(format!(
                    "{} is not a directory, so {} cannot be created",
                    p.display(),
                    dir.display()
                ))
            }
            Err(_) => match p.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => p = parent,
                _ => return Ok(()),
            },
        }
    }
}

/// This host's addresses now (getifaddrs); `None` if they cannot be listed.
fn host_addresses() -> Option<Vec<IpAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list freed below and only read until then.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return None;
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned; `ifa_addr` may be null,
        // and points to a sockaddr_in / sockaddr_in6 when its family says so.
        unsafe {
            let sa = (*cur).ifa_addr;
            if !sa.is_null() {
                match i32::from((*sa).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(sa as *const libc::sockaddr_in);
                        out.push(IpAddr::from(sin.sin_addr.s_addr.to_ne_bytes()));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(sa as *const libc::sockaddr_in6);
                        out.push(IpAddr::from(sin6.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            cur = (*cur).ifa_next;
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Some(out)
}

fn host_ts(a: IpAddr) -> TsSpec {
    TsSpec {
        net: IpNet::from(a),
        proto: 0,
        ports: (0, 65535),
    }
}

/// A side's authentication method in `auth:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Psk,
    Pubkey,
    Eap,
}

/// A file's bytes with its mode, uid and gid, read without blocking on a FIFO or taking a
/// terminal (O_NONBLOCK, O_NOCTTY): a regular file of at most `max` bytes; a `secret` one
/// (a key) must be neither readable nor writable by other users. Errors are whole messages.
/// A file's bytes, mode, uid and gid.
type GuardedFile = (zeroize::Zeroizing<Vec<u8>>, u32, u32, u32);

fn read_guarded(path: &Path, max: usize, secret: bool) -> Result<GuardedFile, String> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    let mode = meta.mode() & 0o7777;
    if secret && mode & 0o006 != 0 {
        return Err(format!(
            "{} is {} by every user (mode {mode:04o}): chmod o-rw it",
            path.display(),
            if mode & 0o004 != 0 {
                "readable"
            } else {
                "writable"
            }
        ));
    }
    let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(max.min(64 * 1024) + 1));
    (&mut file)
        .take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() > max {
        return Err(format!("{} is longer than {max} bytes", path.display()));
    }
    Ok((bytes, mode, meta.uid(), meta.gid()))
}
