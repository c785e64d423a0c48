//! Plain data describing SAs, policies and what the kernel reports about them.
//!
//! Everything here is validated before it reaches the kernel (see [`SaSpec::validate`]),
//! so a caller mistake comes back as [`crate::Error::Invalid`] naming the field, not as a
//! bare `EINVAL` from netlink.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::error::Error;

/// IP protocol number of ESP (RFC 4303).
pub const IPPROTO_ESP: u8 = 50;

/// Kernel value meaning "no limit" for lifetimes (`XFRM_INF` in `xfrm.h`).
pub const XFRM_INF: u64 = u64::MAX;

/// Which SAs and policies belong to vpnd.
///
/// The kernel has no owner field, so vpnd tags what it installs: every SA and every policy
/// template carries a reqid inside `reqid_base..reqid_base + reqid_span`. Template-less
/// policies (bypass, block) are ours when their priority lies in `priority_band`. strongSwan
/// allocates reqids from 1 upward and Libreswan from 16384, so the default band
/// (0x7670_0000, "vp") never meets a foreign daemon's SAs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub reqid_base: u32,
    pub reqid_span: u32,
    pub priority_band: (u32, u32),
}

impl Default for Owner {
    fn default() -> Self {
        Owner {
            reqid_base: 0x7670_0000,
            reqid_span: 0x0010_0000,
            priority_band: (0x7670_0000, 0x7680_0000),
        }
    }
}

impl Owner {
    pub fn owns_reqid(&self, reqid: u32) -> bool {
        reqid.wrapping_sub(self.reqid_base) < self.reqid_span
    }
    pub fn owns_priority(&self, priority: u32) -> bool {
        (self.priority_band.0..self.priority_band.1).contains(&priority)
    }
    /// The n-th reqid of vpnd's band (wraps inside the band).
    pub fn reqid(&self, n: u32) -> u32 {
        self.reqid_base + n % self.reqid_span
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Transport,
    Tunnel,
}

impl Mode {
    pub(crate) fn to_kernel(self) -> u8 {
        match self {
            Mode::Transport => 0, // XFRM_MODE_TRANSPORT
            Mode::Tunnel => 1,    // XFRM_MODE_TUNNEL
        }
    }
    pub(crate) fn from_kernel(v: u8) -> Option<Mode> {
        match v {
            0 => Some(Mode::Transport),
            1 => Some(Mode::Tunnel),
            _ => None,
        }
    }
}

/// Policy direction (`XFRM_POLICY_IN/OUT/FWD`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dir {
    In,
    Out,
    Fwd,
}

impl Dir {
    pub(crate) fn to_kernel(self) -> u8 {
        match self {
            Dir::In => 0,
            Dir::Out => 1,
            Dir::Fwd => 2,
        }
    }
    pub(crate) fn from_kernel(v: u8) -> Option<Dir> {
        match v {
            0 => Some(Dir::In),
            1 => Some(Dir::Out),
            2 => Some(Dir::Fwd),
            _ => None,
        }
    }
}

impl fmt::Display for Dir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dir::In => "in",
            Dir::Out => "out",
            Dir::Fwd => "fwd",
        })
    }
}

/// A mark and mask (`XFRMA_MARK`), used to bind SAs and policies to marked traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Mark {
    pub value: u32,
    pub mask: u32,
}

/// What identifies one SA in the kernel: destination, SPI and protocol (plus the source,
/// which the kernel needs for deletes, and the mark when the SA has one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct SaId {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// SPI in host order (the packet crate swaps it on the wire).
    pub spi: u32,
    pub proto: u8,
    pub mark: Option<Mark>,
}

impl SaId {
    pub fn esp(src: IpAddr, dst: IpAddr, spi: u32) -> SaId {
        SaId {
            src,
            dst,
            spi,
            proto: IPPROTO_ESP,
            mark: None,
        }
    }
}

impl fmt::Display for SaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = if self.proto == IPPROTO_ESP {
            "esp".to_string()
        } else {
            format!("proto {}", self.proto)
        };
        write!(
            f,
            "{} SA {}->{} spi 0x{:08x}",
            proto, self.src, self.dst, self.spi
        )?;
        if let Some(m) = self.mark {
            write!(f, " mark 0x{:x}/0x{:x}", m.value, m.mask)?;
        }
        Ok(())
    }
}

/// Traffic selector as the kernel understands it: one source prefix, one destination
/// prefix, an IP protocol (0 = any) and optional single ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Selector {
    pub src: IpNet,
    pub dst: IpNet,
    pub proto: u8,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
}

impl Selector {
    pub fn new(src: IpNet, dst: IpNet) -> Selector {
        Selector {
            src,
            dst,
            proto: 0,
            sport: None,
            dport: None,
        }
    }

    pub(crate) fn validate(&self, what: &'static str) -> Result<(), Error> {
        if self.src.addr().is_ipv4() != self.dst.addr().is_ipv4() {
            return Err(Error::invalid(
                what,
                format!(
                    "source {} and destination {} are of different families",
                    self.src, self.dst
                ),
            ));
        }
        if (self.sport.is_some() || self.dport.is_some())
            && !matches!(self.proto, 6 | 17 | 132 | 136)
        {
            return Err(Error::invalid(
                what,
                format!(
                    "ports need a port-carrying protocol (tcp, udp, sctp, udplite), not {}",
                    self.proto
                ),
            ));
        }
        Ok(())
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.src, self.dst)?;
        if self.proto != 0 {
            write!(f, " proto {}", self.proto)?;
        }
        if let Some(p) = self.sport {
            write!(f, " sport {p}")?;
        }
        if let Some(p) = self.dport {
            write!(f, " dport {p}")?;
        }
        Ok(())
    }
}

/// Key material; zeroed when dropped, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(pub Zeroizing<Vec<u8>>);

impl Key {
    pub fn new(bytes: Vec<u8>) -> Key {
        Key(Zeroizing::new(bytes))
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({} bytes)", self.0.len())
    }
}

/// Integrity algorithms for CBC SAs, truncated as RFC 4868 specifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Integ {
    /// HMAC-SHA1-96 (RFC 2404), 20-byte key: legacy, for Windows' default proposal only.
    HmacSha1_96,
    /// HMAC-SHA2-256-128 (RFC 4868), 32-byte key.
    HmacSha256_128,
    /// HMAC-SHA2-384-192, 48-byte key.
    HmacSha384_192,
    /// HMAC-SHA2-512-256, 64-byte key.
    HmacSha512_256,
}

impl Integ {
    pub fn kernel_name(self) -> &'static str {
        match self {
            Integ::HmacSha1_96 => "hmac(sha1)",
            Integ::HmacSha256_128 => "hmac(sha256)",
            Integ::HmacSha384_192 => "hmac(sha384)",
            Integ::HmacSha512_256 => "hmac(sha512)",
        }
    }
    pub fn key_len(self) -> usize {
        match self {
            Integ::HmacSha1_96 => 20,
            Integ::HmacSha256_128 => 32,
            Integ::HmacSha384_192 => 48,
            Integ::HmacSha512_256 => 64,
        }
    }
    pub fn trunc_bits(self) -> u32 {
        match self {
            Integ::HmacSha1_96 => 96,
            Integ::HmacSha256_128 => 128,
            Integ::HmacSha384_192 => 192,
            Integ::HmacSha512_256 => 256,
        }
    }
}

/// The ciphers vpnd negotiates for ESP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Algorithms {
    /// AES-GCM with a 16-byte ICV (RFC 4106). `key` is the AES key followed by the 4-byte
    /// salt, as IKEv2 derives it (RFC 4106 section 8.1): 20 or 36 bytes.
    AesGcm16 { key: Key },
    /// AES-CBC (RFC 3602) with an HMAC-SHA2 integrity algorithm.
    AesCbc {
        key: Key,
        integ: Integ,
        integ_key: Key,
    },
}

impl Algorithms {
    pub(crate) fn validate(&self) -> Result<(), Error> {
        match self {
            Algorithms::AesGcm16 { key } => {
                if !matches!(key.len(), 20 | 28 | 36) {
                    return Err(Error::invalid(
                        "algorithm",
                        format!(
                            "AES-GCM key with salt must be 20, 28 or 36 bytes, got {}",
                            key.len()
                        ),
                    ));
                }
            }
            Algorithms::AesCbc {
                key,
                integ,
                integ_key,
            } => {
                if !matches!(key.len(), 16 | 24 | 32) {
                    return Err(Error::invalid(
                        "algorithm",
                        format!("AES-CBC key must be 16, 24 or 32 bytes, got {}", key.len()),
                    ));
                }
                if integ_key.len() != integ.key_len() {
                    return Err(Error::invalid(
                        "algorithm",
                        format!(
                            "{} key must be {} bytes, got {}",
                            integ.kernel_name(),
                            integ.key_len(),
                            integ_key.len()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// A short name in the style of strongSwan proposals, for logs.
    pub fn name(&self) -> String {
        match self {
            Algorithms::AesGcm16 { key } => format!("aes{}gcm16", (key.len() - 4) * 8),
            Algorithms::AesCbc { key, integ, .. } => {
                let i = match integ {
                    Integ::HmacSha1_96 => "sha1",
                    Integ::HmacSha256_128 => "sha256",
                    Integ::HmacSha384_192 => "sha384",
                    Integ::HmacSha512_256 => "sha512",
                };
                format!("aes{}-{}", key.len() * 8, i)
            }
        }
    }
}

/// Soft and hard limits; `None` is "no limit". The soft limit makes the kernel send a soft
/// EXPIRE (vpnd rekeys), the hard one deletes the SA and sends a hard EXPIRE.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Lifetime {
    pub soft_seconds: Option<u64>,
    pub hard_seconds: Option<u64>,
    pub soft_bytes: Option<u64>,
    pub hard_bytes: Option<u64>,
    pub soft_packets: Option<u64>,
    pub hard_packets: Option<u64>,
}

impl Lifetime {
    fn validate(&self) -> Result<(), Error> {
        let pairs = [
            ("seconds", self.soft_seconds, self.hard_seconds),
            ("bytes", self.soft_bytes, self.hard_bytes),
            ("packets", self.soft_packets, self.hard_packets),
        ];
        for (what, soft, hard) in pairs {
            if let (Some(s), Some(h)) = (soft, hard) {
                if s > h {
                    return Err(Error::invalid(
                        "lifetime",
                        format!("soft {what} limit {s} is above the hard limit {h}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// UDP encapsulation of ESP for NAT traversal (RFC 3948), `UDP_ENCAP_ESPINUDP`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct UdpEncap {
    pub sport: u16,
    pub dport: u16,
}

/// Everything needed to install one ESP SA.
#[derive(Clone, Debug)]
pub struct SaSpec {
    pub id: SaId,
    pub reqid: u32,
    pub mode: Mode,
    /// Selector stored in the SA; tunnel-mode SAs normally leave it open (`None`).
    pub selector: Option<Selector>,
    pub algorithms: Algorithms,
    /// Extended sequence numbers (RFC 4303 section 2.2.1).
    pub esn: bool,
    /// Anti-replay window in packets; 0 disables replay protection.
    pub replay_window: u32,
    pub encap: Option<UdpEncap>,
    pub if_id: Option<u32>,
    pub lifetime: Lifetime,
}

impl SaSpec {
    /// Checks everything the kernel would otherwise reject with a bare errno.
    pub fn validate(&self, owner: &Owner) -> Result<(), Error> {
        let id = &self.id;
        if id.src.is_ipv4() != id.dst.is_ipv4() {
            return Err(Error::invalid(
                "sa",
                format!("{id}: source and destination are of different families"),
            ));
        }
        if id.spi < 256 {
            return Err(Error::invalid(
                "sa",
                format!("{id}: SPI values below 256 are reserved (RFC 4303 section 2.1)"),
            ));
        }
        if id.proto != IPPROTO_ESP {
            return Err(Error::invalid("sa", format!("{id}: only ESP is supported")));
        }
        if !owner.owns_reqid(self.reqid) {
            return Err(Error::invalid(
                "sa",
                format!(
                    "{id}: reqid {:#x} is outside vpnd's band {:#x}+{:#x}",
                    self.reqid, owner.reqid_base, owner.reqid_span
                ),
            ));
        }
        if self.esn && self.replay_window == 0 {
            return Err(Error::invalid(
                "sa",
                format!("{id}: ESN needs a replay window above 0"),
            ));
        }
        if let Some(sel) = &self.selector {
            sel.validate("sa selector")?;
        }
        if self.encap.is_some_and(|e| e.sport == 0 || e.dport == 0) {
            return Err(Error::invalid(
                "sa",
                format!("{id}: UDP encapsulation ports must not be 0"),
            ));
        }
        self.algorithms.validate()?;
        self.lifetime.validate()
    }
}

/// A template: which SA (by endpoints, protocol, mode and reqid) a policy requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Template {
    /// Tunnel endpoints; for transport mode these may be left as the selector's hosts.
    pub src: IpAddr,
    pub dst: IpAddr,
    pub mode: Mode,
    pub reqid: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Block,
}

/// One kernel policy (SPD entry).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicySpec {
    pub selector: Selector,
    pub dir: Dir,
    pub action: Action,
    pub priority: u32,
    pub templates: Vec<Template>,
    pub mark: Option<Mark>,
    pub if_id: Option<u32>,
}

impl PolicySpec {
    pub fn validate(&self, owner: &Owner) -> Result<(), Error> {
        self.selector.validate("policy selector")?;
        if self.templates.is_empty() && !owner.owns_priority(self.priority) {
            return Err(Error::invalid(
                "policy",
                format!(
                    "{} {}: a policy without templates must use a priority in vpnd's band {}..{}",
                    self.dir, self.selector, owner.priority_band.0, owner.priority_band.1
                ),
            ));
        }
        for t in &self.templates {
            if !owner.owns_reqid(t.reqid) {
                return Err(Error::invalid(
                    "policy",
                    format!(
                        "{} {}: template reqid {:#x} is outside vpnd's band",
                        self.dir, self.selector, t.reqid
                    ),
                ));
            }
            if t.src.is_ipv4() != t.dst.is_ipv4() {
                return Err(Error::invalid(
                    "policy",
                    format!(
                        "{} {}: template endpoints {} and {} are of different families",
                        self.dir, self.selector, t.src, t.dst
                    ),
                ));
            }
        }
        Ok(())
    }

    /// What identifies this policy for deletes.
    pub fn key(&self) -> PolicyKey {
        PolicyKey {
            selector: self.selector,
            dir: self.dir,
            mark: self.mark,
            if_id: self.if_id,
        }
    }
}

/// Selector, direction, mark and if_id: the kernel's lookup key for a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct PolicyKey {
    pub selector: Selector,
    pub dir: Dir,
    pub mark: Option<Mark>,
    pub if_id: Option<u32>,
}

impl fmt::Display for PolicyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "policy {} {}", self.dir, self.selector)
    }
}

/// One SA as seen in a counters dump.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SaCounters {
    pub id: SaId,
    pub reqid: u32,
    pub mode: Option<Mode>,
    /// Bytes and packets through the SA (for inbound SAs: decrypted; outbound: encrypted).
    pub bytes: u64,
    pub packets: u64,
    /// Unix time the SA was added, and of its first use (0 = never used).
    pub add_time: u64,
    pub use_time: u64,
    /// Packets dropped by the replay check and by integrity (ICV) failures.
    pub replay_dropped: u32,
    pub integrity_failed: u32,
    pub replay_window: u32,
    /// Highest outbound / inbound sequence number (low 32 bits; high bits with ESN).
    pub oseq: u64,
    pub seq: u64,
    pub lifetime: Lifetime,
    pub esn: bool,
    pub encap: Option<UdpEncap>,
    pub if_id: Option<u32>,
}

impl SaCounters {
    /// A reading with only its identity and usage set (the rest zero): what session
    /// bookkeeping, its tests and the benchmarks' synthetic dumps need.
    pub fn usage(id: SaId, bytes: u64, packets: u64) -> SaCounters {
        SaCounters {
            id,
            reqid: 0,
            mode: None,
            bytes,
            packets,
            add_time: 0,
            use_time: 0,
            replay_dropped: 0,
            integrity_failed: 0,
            replay_window: 0,
            oseq: 0,
            seq: 0,
            lifetime: Lifetime::default(),
            esn: false,
            encap: None,
            if_id: None,
        }
    }
}

/// One policy as seen in a dump.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyInfo {
    pub key: PolicyKey,
    pub action: Action,
    pub priority: u32,
    pub index: u32,
    pub templates: Vec<Template>,
    /// Unix time the policy was added and last used.
    pub add_time: u64,
    pub use_time: u64,
}

impl PolicyInfo {
    pub fn is_owned_by(&self, owner: &Owner) -> bool {
        if self.templates.is_empty() {
            owner.owns_priority(self.priority)
        } else {
            self.templates.iter().all(|t| owner.owns_reqid(t.reqid))
        }
    }
}
