//! The YAML configuration in the engine's terms: built by the configuration itself
//! ([`PeerConfig::engine_policy`]); this name stays for the daemon's call sites.

use crate::config::PeerConfig;
use crate::ike::PeerPolicy;

pub fn peer_policy(p: &PeerConfig) -> PeerPolicy {
    p.engine_policy()
}
