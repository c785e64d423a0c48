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
    /// IKE fragmentation (RFC 7383).
    pub frag: super::fragment::FragPolicy,
    /// A responder's template for remote-access clients (IOS `crypto isakmp profile`).
    pub remote_access: RemoteAccess,
}

/// What a remote-access profile adds to a peer: which identities it is for, and what its
/// clients are given through the configuration payload (RFC 7296 3.15).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoteAccess {
    /// Identities this entry is for (`match identity`), beside or instead of `remote_id`.
    pub identity: Option<IdPattern>,
    /// The pool client IPv4 addresses come from (`ip local pool`); None: none given.
    pub pool: Option<String>,
    /// The pool client IPv6 addresses come from (`ipv6 local pool`); None: none given.
    pub pool6: Option<String>,
    /// DNS servers handed out (INTERNAL_IP4_DNS / INTERNAL_IP6_DNS), when asked for.
    pub dns: Vec<IpAddr>,
    /// As an initiator: ask the responder for an address (strongSwan's `vips = 0.0.0.0`).
    /// The engine's tests and load generators use it; vpnd itself is no client yet.
    pub request_address: bool,
    /// With `request_address`: an IPv6 address too (a dual-stack client).
    pub request_ipv6: bool,
}

/// An identity pattern: `*` stands for any run of characters (`*@cclient`,
/// `*.example.com`, `*`), matched against the identity's text (FQDN, user@FQDN, address).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdPattern(String);

impl IdPattern {
    pub fn new(pattern: &str) -> IdPattern {
        IdPattern(pattern.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// How specific the pattern is (its literal characters): the most specific match wins.
    pub fn specificity(&self) -> usize {
        self.0.chars().filter(|c| *c != '*').count()
    }

    pub fn matches(&self, id: &Identity) -> bool {
        let text = match id {
            Identity::Fqdn(s) | Identity::UserFqdn(s) => s.clone(),
            Identity::Ipv4(a) => a.to_string(),
            Identity::Ipv6(a) => a.to_string(),
            Identity::KeyId(_) | Identity::Other { .. } => return self.0 == "*",
        };
        glob(self.0.as_bytes(), text.as_bytes())
    }
}

/// `*` matches any run of bytes; everything else itself, ASCII case-insensitively (DNS
/// names are, RFC 4343). Iterative with one backtrack point: linear in practice, never
/// exponential on a hostile identity.
fn glob(p: &[u8], t: &[u8]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi].eq_ignore_ascii_case(&t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

/// Where the EAP identity (RADIUS User-Name) comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EapIdentity {
    /// The client's IDi, sent to RADIUS as its EAP-Response/Identity (strongSwan's default
    /// without `eap_id`, and its eap-radius without `eap_start`): works with clients that have
    /// no Identity method (Debian's strongSwan without eap-identity NAKs the request).
    #[default]
    IkeId,
    /// An EAP-Request/Identity of ours (RFC 3748 5.1; strongSwan's `eap_id = %any`), for
    /// clients whose IDi is not the user (Windows sends its address).
    Request,
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
    /// Whether the peer's authenticated-to-be identity fits this entry, and how closely:
    /// None if not; else higher for an exact `remote_id` than for a pattern, and for a
    /// longer pattern than a shorter one; 0 for an entry that takes any identity.
    pub fn identity_fit(&self, id: &Identity) -> Option<usize> {
        if let Some(want) = &self.remote_id {
            return (want == id).then_some(usize::MAX);
        }
        match &self.remote_access.identity {
            Some(p) => p.matches(id).then(|| 1 + p.specificity()),
            None => Some(0),
        }
    }

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

impl PeerPolicy {
    /// Why SAs negotiated under `self` cannot carry on under `new`: the fields that went
    /// into the IKE SA and its children (proposals, identities, keys, addresses, selectors).
    /// Empty: the running SAs just follow `new` (timers, liveness, retransmits and child
    /// lifetimes apply from their next use; a rekey negotiates what `new` says).
    /// One line per field: a field added to [`PeerPolicy`] that the peer negotiates goes
    /// here too.
    pub fn renegotiation_reasons(&self, new: &PeerPolicy) -> Vec<&'static str> {
        let mut why = Vec::new();
        let mut check = |field, differs: bool| {
            if differs && !why.contains(&field) {
                why.push(field)
            }
        };
        check("address", self.remote != new.remote);
        check("port", self.remote_port != new.remote_port);
        check("local_id", self.local_id != new.local_id);
        check("remote_id", self.remote_id != new.remote_id);
        if let Some(f) = self.local_auth.changed(&new.local_auth) {
            check(f, true);
        }
        if let Some(f) = self.remote_auth.changed(&new.remote_auth) {
            check(f, true);
        }
        check("ike.proposals", self.ike_proposals != new.ike_proposals);
        check("ike.encap", self.nat.encap != new.nat.encap);
        check("nat_t_port", self.nat.local_port != new.nat.local_port);
        // Which clients the profile is for. Where their addresses come from is not here: a
        // connected client keeps its lease, the next one gets the new pool (issue 14).
        check(
            "remote_access",
            self.remote_access.identity != new.remote_access.identity,
        );
        // Children point into `children` by index: same names, same order.
        check(
            "children",
            self.children.len() != new.children.len()
                || self
                    .children
                    .iter()
                    .zip(&new.children)
                    .any(|(a, b)| a.name != b.name),
        );
        for (a, b) in self.children.iter().zip(&new.children) {
            check("children.local_ts", a.local_ts != b.local_ts);
            check("children.remote_ts", a.remote_ts != b.remote_ts);
            check("children.mode", a.mode != b.mode);
            check("children.esp", a.esp != b.esp);
            check("children.pfs", a.pfs != b.pfs);
        }
        why
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_patterns() {
        let p = IdPattern::new("*@cclient");
        assert!(p.matches(&Identity::UserFqdn("joe@cclient".into())));
        assert!(p.matches(&Identity::UserFqdn("JOE@CClient".into())));
        assert!(!p.matches(&Identity::UserFqdn("joe@cclient.evil".into())));
        assert!(!p.matches(&Identity::UserFqdn("joe@other".into())));
        assert!(IdPattern::new("*").matches(&Identity::KeyId(vec![1])));
        assert!(IdPattern::new("a*b*c").matches(&Identity::Fqdn("aXXbYYc".into())));
        assert!(!IdPattern::new("a*b*c").matches(&Identity::Fqdn("aXXbYY".into())));
        assert!(IdPattern::new("198.51.100.*").matches(&Identity::Ipv4([198, 51, 100, 7].into())));
        // A hostile identity costs linear-ish time, not exponential.
        let long = "a".repeat(5000);
        assert!(!IdPattern::new("*a*a*a*a*a*a*a*b").matches(&Identity::Fqdn(long)));
        assert!(IdPattern::new("*@cclient").specificity() > IdPattern::new("*").specificity());
    }
}
