//! The YAML configuration in the engine's terms: built by the configuration itself
//! ([`PeerConfig::engine_policy`]); this name stays for the daemon's call sites.

use crate::config::PeerConfig;
use crate::ike::PeerPolicy;

/// `nat_t_port`: `local.nat_t_port`, where IKE SAs with this peer float (RFC 7296 2.23).
pub fn peer_policy(p: &PeerConfig, nat_t_port: u16) -> PeerPolicy {
    let mut policy = p.engine_policy();
    policy.nat.local_port = nat_t_port;
    policy
}
