//! Remote access on the responder: the peer entry chosen again by the initiator's identity
//! in IKE_AUTH (a profile, IOS `match identity group`), and the configuration payload
//! answered from its pool (RFC 7296 3.15, 3.15.4). Called from `ike_auth.rs`.

use std::net::{IpAddr, Ipv4Addr};

use crate::ike::codec::{
    CfgType, CpAttribute, CpPayload, Identity, NotifyType, Payload, PayloadList,
};
use crate::ike::endpoint::Ctx;
use crate::ike::pool::{AddressRequest, LeaseError};
use crate::ike::refusal::Refusal;
use crate::ike::sa::IkeSa;

/// INTERNAL_IP4_NETMASK answered with a leased address: the client's own host (its
/// selectors narrow to it, RFC 7296 2.9).
const HOST_MASK: [u8; 4] = [255, 255, 255, 255];

/// What the configuration payload step decided for the IKE_AUTH answer.
#[derive(Default)]
pub(crate) struct CpAnswer {
    /// CFG_REPLY, after AUTH.
    pub reply: Option<CpPayload>,
    /// The child SA of IKE_AUTH is refused with this (the IKE SA still comes up, 3.15.4).
    pub child_error: Option<NotifyType>,
}

impl IkeSa {
    /// Responder, before the AUTH check: the peer entry for this IDi among those that take
    /// the peer's address (IKE_SA_INIT could pick only by address). The closest identity
    /// fit wins, then the closest address; the entry chosen so far wins ties. strongSwan
    /// re-selects its peer config the same way; the IKE SA's algorithms stay as
    /// IKE_SA_INIT negotiated them.
    pub(crate) fn select_peer(&mut self, ctx: &Ctx<'_>, id: &Identity) -> Result<(), Refusal> {
        let from = self.first_remote.ip();
        let rank = |p: &crate::ike::policy::PeerPolicy| {
            p.identity_fit(id).map(|f| (f, p.remote.specificity()))
        };
        let mut best = rank(&self.peer).map(|r| (r, self.peer.clone()));
        for p in ctx.peers.iter().filter(|p| p.remote.matches(from)) {
            if let Some(r) = rank(p) {
                if best.as_ref().map_or(true, |(b, _)| r > *b) {
                    best = Some((r, p.clone()));
                }
            }
        }
        match best {
            Some((_, p)) => {
                self.peer = p;
                Ok(())
            }
            // As a wrong identity for one peer (typed, counted): what the entry chosen by
            // address wants, escaped.
            None => Err(Refusal::AuthFailed(
                crate::ike::auth::AuthRefusal::WrongIdentity {
                    got: crate::ike::auth::identity_text(id),
                    want: match (&self.peer.remote_id, &self.peer.remote_access.identity) {
                        (Some(w), _) => crate::ike::auth::identity_text(w),
                        (None, Some(p)) => crate::escape::peer_text(p.as_str()),
                        (None, None) => "any".into(),
                    },
                },
            )),
        }
    }

    /// Responder: answers the client's CFG_REQUEST (3.15.4) from the profile's pool (or the
    /// address the authentication step asked for). `initial_contact`: the peer's other IKE
    /// SAs are about to go, so its old address may be taken over at once.
    pub(crate) fn answer_cp(
        &mut self,
        ctx: &mut Ctx<'_>,
        inner: &[Payload],
        initial_contact: bool,
    ) -> CpAnswer {
        let request = self.address_request.clone().or_else(|| {
            self.peer
                .remote_access
                .pool
                .clone()
                .map(AddressRequest::Pool)
        });
        let cp = inner.cp().filter(|c| c.cfg_type == CfgType::REQUEST);
        let Some(cp) = cp else {
            // No request: fine for a site-to-site peer; a client of a pool must ask.
            if request.is_some() && inner.sa().is_some() {
                ctx.failed(
                    self,
                    "the profile gives addresses but the client sent no CP(CFG_REQUEST): child SA refused with FAILED_CP_REQUIRED",
                );
                return CpAnswer {
                    reply: None,
                    child_error: Some(NotifyType::FAILED_CP_REQUIRED),
                };
            }
            return CpAnswer::default();
        };
        let asks = |kind: u16| cp.attributes.iter().any(|a| a.kind == kind);
        let mut attributes = Vec::new();
        if asks(CpPayload::INTERNAL_IP4_ADDRESS) {
            let Some(request) = request else {
                // Nothing to give: the request is ignored (3.15.4), the child goes on.
                return CpAnswer::default();
            };
            let Some(id) = self.remote_id.clone() else {
                return CpAnswer::default();
            };
            let stale = if initial_contact {
                ctx.identities.with(&self.peer.name, &id)
            } else {
                Vec::new()
            };
            match ctx.pools.lease(self.id, &id, &request, &stale) {
                Ok(a) => {
                    self.virtual_ip = Some(a);
                    attributes.push(attr(CpPayload::INTERNAL_IP4_ADDRESS, &a.octets()));
                    if asks(CpPayload::INTERNAL_IP4_NETMASK) {
                        attributes.push(attr(CpPayload::INTERNAL_IP4_NETMASK, &HOST_MASK));
                    }
                }
                Err(e) => {
                    let what = match &e {
                        LeaseError::Exhausted(_) | LeaseError::UnknownPool(_) => e.to_string(),
                        LeaseError::Taken(_) => format!("{e} (asked for by authentication)"),
                    };
                    ctx.failed(
                        self,
                        &format!(
                            "{what}: no address for {id:?}; child SA refused with INTERNAL_ADDRESS_FAILURE"
                        ),
                    );
                    return CpAnswer {
                        reply: None,
                        child_error: Some(NotifyType::INTERNAL_ADDRESS_FAILURE),
                    };
                }
            }
        } else if asks(CpPayload::INTERNAL_IP6_ADDRESS) && request.is_some() {
            ctx.failed(
                self,
                "the client asks for an IPv6 address only, and pools are IPv4: child SA refused with INTERNAL_ADDRESS_FAILURE",
            );
            return CpAnswer {
                reply: None,
                child_error: Some(NotifyType::INTERNAL_ADDRESS_FAILURE),
            };
        }
        for dns in &self.peer.remote_access.dns {
            match dns {
                IpAddr::V4(a) if asks(CpPayload::INTERNAL_IP4_DNS) => {
                    attributes.push(attr(CpPayload::INTERNAL_IP4_DNS, &a.octets()))
                }
                IpAddr::V6(a) if asks(CpPayload::INTERNAL_IP6_DNS) => {
                    attributes.push(attr(CpPayload::INTERNAL_IP6_DNS, &a.octets()))
                }
                _ => {}
            }
        }
        // APPLICATION_VERSION and attributes we do not know are not answered (3.15.1).
        CpAnswer {
            reply: (!attributes.is_empty()).then_some(CpPayload {
                cfg_type: CfgType::REPLY,
                attributes,
            }),
            child_error: None,
        }
    }

    /// The leased address as the one selector the peer's side of a child may have (2.9).
    pub(crate) fn virtual_ip_ts(&self) -> Option<crate::ike::codec::TrafficSelector> {
        let a = IpAddr::V4(self.virtual_ip?);
        crate::ike::codec::TrafficSelector::new(0, 0, 65535, a, a)
    }
}

fn attr(kind: u16, value: &[u8]) -> CpAttribute {
    CpAttribute {
        kind,
        value: value.to_vec(),
    }
}

/// An initiator's CFG_REQUEST for an IPv4 address and DNS servers (3.15.4's example).
pub(crate) fn address_request() -> CpPayload {
    CpPayload {
        cfg_type: CfgType::REQUEST,
        attributes: vec![
            attr(CpPayload::INTERNAL_IP4_ADDRESS, &[]),
            attr(CpPayload::INTERNAL_IP4_DNS, &[]),
        ],
    }
}

/// The address a CFG_REPLY gives (the initiator's view, for tests and tools).
pub(crate) fn replied_address(cp: &CpPayload) -> Option<Ipv4Addr> {
    if cp.cfg_type != CfgType::REPLY {
        return None;
    }
    let a = cp
        .attributes
        .iter()
        .find(|a| a.kind == CpPayload::INTERNAL_IP4_ADDRESS)?;
    let o: [u8; 4] = a.value.get(..4)?.try_into().ok()?;
    Some(Ipv4Addr::from(o))
}
