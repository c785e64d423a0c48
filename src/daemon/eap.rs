//! The EAP relay (RFC 3579): each `Output::EapRequest` of the engine becomes an
//! Access-Request to the peer's RADIUS group, and its answer goes back to the engine with
//! `Endpoint::eap_answer`. Requests run as tokio tasks (the daemon loop never waits for
//! RADIUS); their answers come back on one channel to the loop, which alone owns each
//! conversation's State attribute (RFC 2865 5.24) and applies them in order.
//!
//! The RADIUS server down: the client's Access-Request fails after the transport's
//! retransmits and failover, the engine refuses that client with AUTHENTICATION_FAILED,
//! and nothing else is touched (other IKE SAs never wait on RADIUS).

use std::collections::HashMap;
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
    nas_ip: Option<IpAddr>,
    conversations: HashMap<IkeSaId, Conversation>,
    tx: mpsc::UnboundedSender<Answered>,
}

impl Relay {
    /// The relay for every peer with `auth: {remote: eap-radius}`; None if there is none.
    pub fn start(config: &Config) -> Result<Option<(Relay, mpsc::UnboundedReceiver<Answered>)>> {
        let client = ClientConfig {
            timeout: config.radius.timeout,
            retransmit: config.radius.retransmit,
            dead_time: config.radius.dead_time,
            ..ClientConfig::default()
        };
        let mut by_group: HashMap<String, Group> = HashMap::new();
        let mut groups = HashMap::new();
        for p in &config.peers {
            let Some(name) = &p.auth_group else { continue };
            let g = match by_group.get(name) {
                Some(g) => g.clone(),
                None => {
                    let servers = config
                        .radius
                        .group_servers(name)
                        .with_context(|| format!("no RADIUS group {name}"))?
                        .into_iter()
                        .map(|s| ServerSpec {
                            name: s.name.clone(),
                            addr: std::net::SocketAddr::new(s.address, s.auth_port),
                            secret: s.key.expose().to_vec(),
                        })
                        .collect();
                    let g = Group::new(servers, client.clone())
                        .with_context(|| format!("RADIUS authentication group {name}"))?;
                    by_group.insert(name.clone(), g.clone());
                    g
                }
            };
            groups.insert(p.name.clone(), g);
        }
        if groups.is_empty() {
            return Ok(None);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let nas_ip = config
            .local
            .nas_ip
            .or_else(|| config.local.addresses.first().copied());
        Ok(Some((
            Relay {
                groups,
                nas_ip,
                conversations: HashMap::new(),
                tx,
            },
            rx,
        )))
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
        if r.first {
            self.conversations.insert(r.ike, Conversation::default());
        }
        let state = self.conversations.entry(r.ike).or_default().state.clone();
        let request = AccessRequest {
            user_name: r.identity.clone(),
            eap_message: r.eap,
            state,
            nas_ip: self.nas_ip.or(Some(r.local.ip())),
            nas_identifier: Some("vpnd".into()),
            // The low bits of the IKE SA's id, as strongSwan sends its IKE SA's unique id.
            nas_port: Some(r.ike as u32),
            called_station_id: Some(format!("{}[{}]", r.local.ip(), r.local.port())),
            calling_station_id: Some(format!("{}[{}]", r.remote.ip(), r.remote.port())),
        };
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
