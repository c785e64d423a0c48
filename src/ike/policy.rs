//! What the engine is told about each peer: the engine's own view of the configuration, so
//! the protocol core stays testable without YAML (the daemon converts `crate::config`).

use std::net::IpAddr;
use std::time::Duration;

use super::auth::{LocalAuth, RemoteAuth};
use super::codec::{Identity, TrafficSelector};
use super::proposal::{DhGroup, Proposal};
use ipnet::IpNet;

/// Which remote addresses a peer entry accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteMatch {
    Single(IpAddr),
    Prefix(IpNet),
    Any,
}

impl RemoteMatch {
    pub fn matches(&self, ip: IpAddr) -> bool {
        match self {
            RemoteMatch::Single(a) => *a == ip,
            RemoteMatch::Prefix(n) => n.contains(&ip),
            RemoteMatch::Any => true,
        }
    }
    /// How specific the match is, so the most specific peer entry wins.
    pub fn specificity(&self) -> u8 {
        match self {
            RemoteMatch::Single(_) => 200,
            RemoteMatch::Prefix(n) => n.prefix_len(),
            RemoteMatch::Any => 0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    Tunnel,
    Transport,
}

/// Retransmission of requests (RFC 7296 2.4): `timeout * base^n`, `tries` sends in all.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Retransmit {
    pub timeout: Duration,
    pub base: f64,
    pub tries: u32,
}

impl Default for Retransmit {
    fn default() -> Self {
        Retransmit {
            timeout: Duration::from_secs(2),
            base: 1.8,
            tries: 5,
        }
    }
}

impl Retransmit {
    /// Delay before retransmission number `n` (0 = after the first send), capped at 60 s.
    pub fn delay(&self, n: u32) -> Duration {
        let d = self.timeout.as_secs_f64() * self.base.powi(n as i32);
        Duration::from_secs_f64(d.min(60.0))
    }
}

#[derive(Clone, Debug)]
pub struct ChildPolicy {
    pub name: String,
    /// Our side's selectors (TSi when we initiate, TSr when we respond).
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    pub mode: Mode,
    pub esp: Vec<Proposal>,
    /// DH group for CREATE_CHILD_SA (PFS); never used in IKE_AUTH (RFC 7296 1.2).
    pub pfs: Option<DhGroup>,
    pub lifetime: Duration,
    pub lifetime_bytes: Option<u64>,
    pub replay_window: u32,
}

#[derive(Clone)]
pub struct PeerPolicy {
    pub name: String,
    pub remote: RemoteMatch,
    pub remote_port: u16,
    pub local_id: Identity,
    /// None: accept any identity the peer proves (with the PSK, or that its certificate
    /// names).
    pub remote_id: Option<Identity>,
    /// How we prove `local_id`, and how the peer must prove its identity (RFC 7296 2.15).
    pub local_auth: LocalAuth,
    pub remote_auth: RemoteAuth,
    pub ike_proposals: Vec<Proposal>,
    pub ike_lifetime: Duration,
    pub dpd: Option<Duration>,
    pub retransmit: Retransmit,
    pub children: Vec<ChildPolicy>,
    /// Send INITIAL_CONTACT in IKE_AUTH (RFC 7296 2.4): the peer then drops IKE SAs it
    /// still holds for us from before a restart. Off only for load generators.
    pub initial_contact: bool,
    /// NAT traversal (RFC 7296 2.23, RFC 3948).
    pub nat: NatPolicy,
}

/// NAT traversal settings of a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatPolicy {
    /// Encapsulate in UDP even without a NAT, and fake our NAT-D so the peer does too
    /// (strongSwan's `encap = yes`).
    pub encap: bool,
    /// NAT keepalive interval when a NAT is in front of us (RFC 3948 2.3); None: off.
    pub keepalive: Option<Duration>,
    /// Our NAT-T port (`local.nat_t_port`): where the IKE SA floats to.
    pub local_port: u16,
    /// The peer's NAT-T port (4500, RFC 3948 2.2).
    pub remote_port: u16,
}

impl Default for NatPolicy {
    fn default() -> Self {
        NatPolicy {
            encap: false,
            keepalive: Some(Duration::from_secs(20)),
            local_port: 4500,
            remote_port: 4500,
        }
    }
}

impl PeerPolicy {
    /// Whether either side signs: then IKE_SA_INIT announces our hashes (RFC 7427 4).
    pub fn uses_signatures(&self) -> bool {
        self.local_auth.is_certificate() || self.remote_auth.is_certificate()
    }
}

impl std::fmt::Debug for PeerPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerPolicy")
            .field("name", &self.name)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}
