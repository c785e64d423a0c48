//! The EAP relay (RFC 3579): each `Output::EapRequest` of the engine becomes an
//! Access-Request to the peer's RADIUS group, and its answer goes back to the engine with
//! `Endpoint::eap_answer`. Requests run as tokio tasks (the daemon loop never waits for
//! RADIUS); their answers come back on one channel to the loop, which alone owns each
//! conversation's State attribute (RFC 2865 5.24) and applies them in order.
//!
//! The RADIUS server down: the client's Access-Request fails after the transport's
//! retransmits and failover, the engine refuses that client with AUTHENTICATION_FAILED,
//! and nothing else is touched (other IKE SAs never wait on RADIUS).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use anyhow::{Context, Result};
use tokio::sync::mpsc;
use tracing::{info, warn};
use vpnd_radius::{AccessAnswer, AccessRequest, ClientConfig, Group, ServerSpec};

use crate::config::Config;
use crate::escape::peer_text;
use crate::ike::{AuthenticatedUser, EapAnswer, EapRelay, IkeSaId};

/// An Access-Request's outcome, back to the loop.
pub(super) struct Answered {
    pub ike: IkeSaId,
    pub identity: String,
    pub result: Result<(String, AccessAnswer), vpnd_radius::Error>,
}

/// One client's conversation: the State to echo.
#[derive(Default)]
struct Conversation {
    state: Option<Vec<u8>>,
}

pub(super) struct Relay {
    /// Per peer name, its group's client (shared by the peers of one group).
    groups: HashMap<String, Group>,
    /// Per group name, its client.
    by_group: HashMap<String, Group>,
    nas_ip: Option<IpAddr>,
    conversations: HashMap<IkeSaId, Conversation>,
    tx: mpsc::UnboundedSender<Answered>,
}

/// The authentication groups a configuration asks for, checked before a reload changes
/// anything: each group's servers (on their authentication port) and each EAP peer's group.
pub(super) struct Plan {
    groups: BTreeMap<String, Vec<ServerSpec>>,
    peers: HashMap<String, String>,
    client: ClientConfig,
}

impl Plan {
    pub fn of(config: &Config) -> Result<Plan> {
        let mut groups = BTreeMap::new();
        let mut peers = HashMap::new();
        for p in &config.peers {
            let Some(name) = &p.auth_group else { continue };
            if !groups.contains_key(name) {
                let servers = crate::accounting::server_specs(config, name, |s| s.auth_port)?;
                if servers.is_empty() {
                    anyhow::bail!("RADIUS authentication group {name} has no server");
                }
                crate::accounting::check_servers(name, &servers)?;
                groups.insert(name.clone(), servers);
            }
            peers.insert(p.name.clone(), name.clone());
        }
        Ok(Plan {
            groups,
            peers,
            client: ClientConfig {
                timeout: config.radius.timeout,
                retransmit: config.radius.retransmit,
                dead_time: config.radius.dead_time,
                ..ClientConfig::default()
            },
        })
    }
}

impl Relay {
    /// The relay for the peers with `auth: {remote: eap-radius}` (none yet is fine: a
    /// reload may add some).
    pub fn start(config: &Config) -> Result<(Relay, mpsc::UnboundedReceiver<Answered>)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let nas_ip = config
            .local
            .nas_ip
            .or_else(|| config.local.addresses.first().copied());
        let mut relay = Relay {
            groups: HashMap::new(),
            by_group: HashMap::new(),
            nas_ip,
            conversations: HashMap::new(),
            tx,
        };
        relay.reconfigure(Plan::of(config)?)?;
        Ok((relay, rx))
    }

    /// A reload's groups: a group kept by name changes its servers in place (requests
    /// under way included, see `vpnd_radius::Group::reconfigure`); a conversation whose
    /// server left goes on with the next one, which rejects what it has no State for.
    pub fn reconfigure(&mut self, plan: Plan) -> Result<()> {
        let mut by_group = HashMap::new();
        for (name, servers) in plan.groups {
            let g = match self.by_group.get(&name) {
                Some(g) => {
                    g.reconfigure(servers, plan.client.clone())
                        .with_context(|| format!("RADIUS authentication group {name}"))?;
                    g.clone()
                }
                None => Group::new(servers, plan.client.clone())
                    .with_context(|| format!("RADIUS authentication group {name}"))?,
            };
            by_group.insert(name, g);
        }
        self.groups = plan
            .peers
            .into_iter()
            .filter_map(|(peer, g)| Some((peer, by_group.get(&g)?.clone())))
            .collect();
        self.by_group = by_group;
        Ok(())
    }

    /// Sends the client's EAP message to RADIUS; the answer arrives on the channel. A peer
    /// without a group (cannot happen: the configuration requires one) is answered at once
    /// with a failure.
    pub fn relay(&mut self, r: EapRelay) -> Option<EapAnswer> {
        let Some(group) = self.groups.get(&r.peer).cloned() else {
            return Some(EapAnswer::Failure {
                eap: Vec::new(),
                why: "no RADIUS group for this peer".into(),
            });
        };
        let request = self.request_for(&r);
        let tx = self.tx.clone();
        let (ike, identity) = (r.ike, r.identity);
        tokio::spawn(async move {
            let result = group.authenticate(&request).await;
            let _ = tx.send(Answered {
                ike,
                identity,
                result,
            });
        });
        None
    }

    /// The Access-Request for one EAP message: the conversation's State echoed, and the
    /// attributes strongSwan's eap-radius sends (NAS-Port-Type Virtual and Service-Type
    /// Framed are added by the encoder).
    fn request_for(&mut self, r: &EapRelay) -> AccessRequest {
        if r.first {
            self.conversations.insert(r.ike, Conversation::default());
        }
        let state = self.conversations.entry(r.ike).or_default().state.clone();
        AccessRequest {
            user_name: r.identity.clone(),
            eap_message: r.eap.clone(),
            state,
            nas_ip: self.nas_ip.or(Some(r.local.ip())),
            nas_identifier: Some("vpnd".into()),
            // The low bits of the IKE SA's id, as strongSwan sends its IKE SA's unique id.
            nas_port: Some(r.ike as u32),
            called_station_id: Some(format!("{}[{}]", r.local.ip(), r.local.port())),
            calling_station_id: Some(format!("{}[{}]", r.remote.ip(), r.remote.port())),
        }
    }

    /// An Access-Request's outcome, for the engine; the conversation's State kept.
    pub fn answered(&mut self, a: Answered) -> EapAnswer {
        let who = peer_text(&a.identity);
        match a.result {
            Ok((_, AccessAnswer::Challenge { eap_message, state })) => {
                if let Some(c) = self.conversations.get_mut(&a.ike) {
                    c.state = state;
                }
                EapAnswer::Request(eap_message)
            }
            Ok((server, AccessAnswer::Accept(acc))) => {
                self.conversations.remove(&a.ike);
                info!(target: super::logging::AAA, user = who, server, class = acc.class.len(), msk = acc.msk.is_some(), "AAA: RADIUS Access-Accept");
                // RFC 2865 5.1: a User-Name in the Accept is the one to account with.
                let identity = acc.user_name.clone().unwrap_or(a.identity);
                EapAnswer::Success {
                    eap: acc.eap_message.clone(),
                    msk: acc.msk.clone(),
                    user: AuthenticatedUser {
                        identity,
                        class: acc.class.clone(),
                        framed_ip: acc.framed_ip.map(IpAddr::V4),
                        framed_pools: acc.framed_pools.clone(),
                        session_timeout: acc.session_timeout,
                        server,
                    },
                }
            }
            Ok((server, AccessAnswer::Reject { eap_message })) => {
                self.conversations.remove(&a.ike);
                warn!(target: super::logging::AAA, user = who, server, "AAA: RADIUS Access-Reject");
                EapAnswer::Failure {
                    eap: eap_message,
                    why: format!("rejected by RADIUS server {server}"),
                }
            }
            Err(e) => {
                self.conversations.remove(&a.ike);
                warn!(target: super::logging::AAA, user = who, "AAA: EAP authentication failed: {e}");
                EapAnswer::Failure {
                    eap: Vec::new(),
                    why: e.to_string(),
                }
            }
        }
    }

    /// The IKE SA went: its conversation too (a late answer then finds none).
    pub fn forget(&mut self, ike: IkeSaId) {
        self.conversations.remove(&ike);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vpnd_radius::Accepted;

    fn relay() -> Relay {
        let (tx, _rx) = mpsc::unbounded_channel();
        Relay {
            groups: HashMap::new(),
            by_group: HashMap::new(),
            nas_ip: None,
            conversations: HashMap::new(),
            tx,
        }
    }

    fn message(first: bool) -> EapRelay {
        EapRelay {
            ike: 7,
            peer: "rw".into(),
            identity: "joe@cclient".into(),
            eap: vec![2, 1, 0, 5, 1],
            local: "192.0.2.1:4500".parse().unwrap(),
            remote: "198.51.100.2:4500".parse().unwrap(),
            first,
        }
    }

    #[test]
    fn the_state_of_a_challenge_is_echoed_and_forgotten_with_the_conversation() {
        let mut r = relay();
        let first = r.request_for(&message(true));
        assert_eq!(first.state, None);
        assert_eq!(first.user_name, "joe@cclient");
        assert_eq!(first.nas_ip, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(
            first.calling_station_id.as_deref(),
            Some("198.51.100.2[4500]")
        );
        let answer = r.answered(Answered {
            ike: 7,
            identity: "joe@cclient".into(),
            result: Ok((
                "r1".into(),
                AccessAnswer::Challenge {
                    eap_message: vec![1, 2, 0, 4],
                    state: Some(b"s1".to_vec()),
                },
            )),
        });
        assert_eq!(answer, EapAnswer::Request(vec![1, 2, 0, 4]));
        assert_eq!(r.request_for(&message(false)).state, Some(b"s1".to_vec()));
        // A new conversation of the same SA id starts without it.
        assert_eq!(r.request_for(&message(true)).state, None);
    }

    #[test]
    fn accept_carries_user_class_and_msk_and_failures_say_why() {
        let mut r = relay();
        r.request_for(&message(true));
        let acc = Accepted {
            eap_message: vec![3, 2, 0, 4],
            msk: Some(zeroize::Zeroizing::new(vec![9; 64])),
            class: vec![b"gold".to_vec()],
            user_name: None,
            framed_ip: None,
            framed_pools: vec!["gold".into()],
            session_timeout: Some(3600),
        };
        let a = r.answered(Answered {
            ike: 7,
            identity: "joe@cclient".into(),
            result: Ok(("r1".into(), AccessAnswer::Accept(Box::new(acc)))),
        });
        let EapAnswer::Success { msk, user, .. } = a else {
            panic!("{a:?}")
        };
        assert_eq!(msk.map(|m| m.len()), Some(64));
        assert_eq!(user.identity, "joe@cclient");
        assert_eq!(user.class, vec![b"gold".to_vec()]);
        assert_eq!(user.framed_pools, vec!["gold".to_string()]);
        assert_eq!(
            (user.server.as_str(), user.session_timeout),
            ("r1", Some(3600))
        );
        assert!(r.conversations.is_empty(), "done: its State is gone");
        let a = r.answered(Answered {
            ike: 8,
            identity: "joe".into(),
            result: Err(vpnd_radius::Error::Unanswered { attempts: vec![] }),
        });
        assert!(
            matches!(a, EapAnswer::Failure { why, .. } if why.contains("no RADIUS authentication server answered"))
        );
        // A peer without a group (cannot be configured) fails at once.
        assert!(matches!(
            r.relay(message(true)),
            Some(EapAnswer::Failure { .. })
        ));
    }

    fn config(auth: std::net::SocketAddr) -> Config {
        let yaml = format!(
            "local:\n  addresses: [192.0.2.1]\n\
             radius:\n  servers:\n    - {{ name: r1, address: {}, auth_port: {}, key: testing123 }}\n  timeout: 5s\n\
             peers:\n  - name: rw\n    address: 192.0.2.2\n    psk: secret-0123\n    auth: {{ remote: eap-radius }}\n\
             \x20   children:\n      - name: net\n        local_ts: [10.1.0.0/16]\n        remote_ts: [10.2.0.0/16]\n",
            auth.ip(),
            auth.port()
        );
        Config::from_str(&yaml, "/etc/vpnd/vpnd.yaml").unwrap_or_else(|e| panic!("{e}"))
    }

    /// An Access-Request's User-Name (attribute 1).
    async fn user_name(sock: &tokio::net::UdpSocket) -> Vec<u8> {
        let mut buf = [0u8; 4096];
        let (n, _) =
            tokio::time::timeout(std::time::Duration::from_secs(2), sock.recv_from(&mut buf))
                .await
                .expect("an Access-Request in time")
                .unwrap();
        assert_eq!(buf[0], 1, "Access-Request");
        let mut i = 20;
        while i + 2 <= n {
            let (t, l) = (buf[i], buf[i + 1] as usize);
            if t == 1 {
                return buf[i + 2..i + l].to_vec();
            }
            i += l;
        }
        panic!("no User-Name");
    }

    #[tokio::test]
    async fn a_reload_moves_an_access_request_under_way_to_the_new_server() {
        let s1 = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let s2 = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (mut r, _rx) = Relay::start(&config(s1.local_addr().unwrap())).unwrap();
        assert!(r.relay(message(true)).is_none(), "sent, answered later");
        assert_eq!(user_name(&s1).await, b"joe@cclient");
        // r1 moved (5 s timeout: without the switch nothing reaches s2 in 2 s).
        r.reconfigure(Plan::of(&config(s2.local_addr().unwrap())).unwrap())
            .unwrap();
        assert_eq!(user_name(&s2).await, b"joe@cclient");
        // A reload without EAP peers: the peer has no group, refused at once.
        let mut none = config(s2.local_addr().unwrap());
        none.peers[0].auth_group = None;
        r.reconfigure(Plan::of(&none).unwrap()).unwrap();
        assert!(matches!(
            r.relay(message(true)),
            Some(EapAnswer::Failure { .. })
        ));
    }
}
