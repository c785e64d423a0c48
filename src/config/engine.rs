//! A peer's configuration in the engine's terms ([`PeerConfig::engine_policy`]).

use zeroize::Zeroizing;

use super::{
    LocalAuthConfig, Mode as ConfigMode, PeerAddress, PeerConfig, RemoteAuthConfig, TsSpec,
};
use crate::ike::auth::{LocalAuth, RemoteAuth};
use crate::ike::codec::TrafficSelector;
use crate::ike::{ChildPolicy, Mode, PeerPolicy, RemoteMatch, Retransmit};

fn ts(t: &TsSpec) -> TrafficSelector {
    TrafficSelector::new(
        t.proto,
        t.ports.0,
        t.ports.1,
        t.net.network(),
        t.net.broadcast(),
    )
    .expect("one prefix has one family")
}

impl PeerConfig {
    /// The engine's policy for this peer: the configuration builds it, so the daemon keeps
    /// no translation of its own.
    pub fn engine_policy(&self) -> PeerPolicy {
        let p = self;
        PeerPolicy {
            name: p.name.clone(),
            remote: match p.remote {
                PeerAddress::Single(a) => RemoteMatch::Single(a),
                PeerAddress::Prefix(n) => RemoteMatch::Prefix(n),
                PeerAddress::Any => RemoteMatch::Any,
            },
            remote_port: p.port,
            initial_contact: true,
            nat: crate::ike::NatPolicy {
                encap: p.ike.encap,
                keepalive: p.ike.nat_keepalive,
                // The daemon sets our port from `local.nat_t_port` (daemon/peers.rs).
                ..Default::default()
            },
            frag: crate::ike::FragPolicy {
                enabled: p.ike.fragmentation,
                size: p.ike.fragment_size,
            },
            local_id: p.local_id.clone(),
            remote_id: p.remote_id.clone(),
            remote_access: p.remote_access.clone(),
            local_auth: match &p.auth.local {
                LocalAuthConfig::Psk(k) => LocalAuth::Psk(Zeroizing::new(k.expose().to_vec())),
                LocalAuthConfig::Certificate { cert, .. } => LocalAuth::Certificate(cert.clone()),
            },
            remote_auth: match &p.auth.remote {
                RemoteAuthConfig::Psk(k) => RemoteAuth::Psk(Zeroizing::new(k.expose().to_vec())),
                RemoteAuthConfig::Certificate(tp) => RemoteAuth::Certificate(tp.clone()),
                RemoteAuthConfig::Eap(id) => RemoteAuth::Eap(*id),
            },
            ike_proposals: p.ike.proposals.clone(),
            ike_lifetime: p.ike.lifetime,
            dpd: p.ike.dpd,
            // The file counts retransmissions; the engine counts sends.
            retransmit: Retransmit {
                timeout: p.ike.retransmit.timeout,
                base: p.ike.retransmit.base,
                tries: p.ike.retransmit.tries + 1,
            },
            children: p
                .children
                .iter()
                .map(|c| ChildPolicy {
                    name: c.name.clone(),
                    local_ts: c.local_ts.iter().map(ts).collect(),
                    remote_ts: c.remote_ts.iter().map(ts).collect(),
                    mode: match c.mode {
                        ConfigMode::Tunnel => Mode::Tunnel,
                        ConfigMode::Transport => Mode::Transport,
                    },
                    esp: c.esp.clone(),
                    pfs: c.pfs,
                    lifetime: std::time::Duration::from_secs(c.lifetime_seconds),
                    lifetime_bytes: c.lifetime_kilobytes.map(|k| k * 1024),
                    replay_window: c.replay_window,
                })
                .collect(),
        }
    }
}
