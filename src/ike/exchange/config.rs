//! Remote access on the responder: the peer entry chosen again by the initiator's identity
//! in IKE_AUTH (a profile, IOS `match identity group`), and the configuration payload
//! answered from its pool (RFC 7296 3.15, 3.15.4). Called from `ike_auth.rs`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::ike::codec::{
    CfgType, CpAttribute, CpPayload, Identity, NotifyType, Payload, PayloadList,
};
use crate::ike::endpoint::Ctx;
use crate::ike::pool::{AddressRequest, Family, LeaseError};
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
                if best.as_ref().is_none_or(|(b, _)| r > *b) {
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

    /// Where this client's address of `family` comes from: what the authentication step
    /// said (RADIUS Framed-IP-Address or Framed-Pool), else the profile's pool of that
    /// family. Err: RADIUS named a pool that is not configured (RFC 2869 5.23).
    fn address_source(
        &self,
        ctx: &Ctx<'_>,
        family: Family,
    ) -> Result<Option<AddressRequest>, String> {
        for r in &self.address_requests {
            match r {
                AddressRequest::Fixed(a) if Family::of(*a) == family => return Ok(Some(r.clone())),
                AddressRequest::Pool(n) => match ctx.pools.family_of(n) {
                    None => return Err(n.clone()),
                    Some(f) if f == family => return Ok(Some(r.clone())),
                    Some(_) => {}
                },
                AddressRequest::Fixed(_) => {}
            }
        }
        let ra = &self.peer.remote_access;
        Ok(match family {
            Family::Ipv4 => ra.pool.clone(),
            Family::Ipv6 => ra.pool6.clone(),
        }
        .map(AddressRequest::Pool))
    }

    /// Responder: answers the client's CFG_REQUEST (3.15.4) from the profile's pools (or
    /// what the authentication step asked for), one address per family asked for (a
    /// dual-stack client asks for both, 3.15.1). `initial_contact`: the peer's other IKE SAs
    /// are about to go, so its old addresses may be taken over at once.
    pub(crate) fn answer_cp(
        &mut self,
        ctx: &mut Ctx<'_>,
        inner: &[Payload],
        initial_contact: bool,
    ) -> CpAnswer {
        let refuse = |sa: &IkeSa, ctx: &mut Ctx<'_>, why: &str| {
            ctx.failed(
                sa,
                &format!("{why}; child SA refused with INTERNAL_ADDRESS_FAILURE"),
            );
            CpAnswer {
                reply: None,
                child_error: Some(NotifyType::INTERNAL_ADDRESS_FAILURE),
            }
        };
        let mut sources = Vec::new();
        for f in [Family::Ipv4, Family::Ipv6] {
            match self.address_source(ctx, f) {
                Ok(s) => sources.push((f, s)),
                Err(name) => {
                    ctx.pools.count_unknown();
                    let name = crate::escape::peer_text(&name);
                    let who = self.remote_id.as_ref().map(crate::ike::auth::identity_text);
                    return refuse(
                        self,
                        ctx,
                        &format!(
                            "RADIUS named address pool '{name}' (Framed-Pool) for {}, and no such pool is configured",
                            who.as_deref().unwrap_or("the client")
                        ),
                    );
                }
            }
        }
        let gives = sources.iter().any(|(_, s)| s.is_some());
        let cp = inner.cp().filter(|c| c.cfg_type == CfgType::REQUEST);
        let Some(cp) = cp else {
            // No request: fine for a site-to-site peer; a client of a pool must ask.
            if gives && inner.sa().is_some() {
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
        let asked: Vec<(Family, Option<AddressRequest>)> = sources
            .into_iter()
            .filter(|(f, _)| {
                asks(match f {
                    Family::Ipv4 => CpPayload::INTERNAL_IP4_ADDRESS,
                    Family::Ipv6 => CpPayload::INTERNAL_IP6_ADDRESS,
                })
            })
            .collect();
        let mut attributes = Vec::new();
        let mut failures = Vec::new();
        if !asked.is_empty() && gives && asked.iter().all(|(_, s)| s.is_none()) {
            // It asks only for a family the profile has no pool of.
            let fams: Vec<&str> = asked.iter().map(|(f, _)| family_name(*f)).collect();
            return refuse(
                self,
                ctx,
                &format!(
                    "the client asks for an {} address only, and the profile has no pool of it",
                    fams.join(" and ")
                ),
            );
        }
        let id = self.remote_id.clone();
        for (family, request) in asked {
            // Nothing to give in this family: that part of the request is ignored (3.15.4).
            let (Some(request), Some(id)) = (request, id.as_ref()) else {
                continue;
            };
            let stale = if initial_contact {
                ctx.identities.with(&self.peer.name, id)
            } else {
                Vec::new()
            };
            match ctx.pools.lease(self.id, id, &request, &stale) {
                Ok(IpAddr::V4(a)) => {
                    self.virtual_ip = Some(a);
                    attributes.push(attr(CpPayload::INTERNAL_IP4_ADDRESS, &a.octets()));
                    if asks(CpPayload::INTERNAL_IP4_NETMASK) {
                        attributes.push(attr(CpPayload::INTERNAL_IP4_NETMASK, &HOST_MASK));
                    }
                }
                Ok(IpAddr::V6(a)) => {
                    self.virtual_ip6 = Some(a);
                    // The address and its prefix length (3.15.1): the client's own host.
                    let mut v = a.octets().to_vec();
                    v.push(128);
                    attributes.push(attr(CpPayload::INTERNAL_IP6_ADDRESS, &v));
                }
                Err(e) => {
                    let what = match &e {
                        LeaseError::Exhausted(_) | LeaseError::UnknownPool(_) => e.to_string(),
                        LeaseError::Taken(_) => format!("{e} (asked for by authentication)"),
                    };
                    // IPv4 says "no address", as before IPv6 pools (logs are matched on it).
                    let fam = match family {
                        Family::Ipv4 => "",
                        Family::Ipv6 => "IPv6 ",
                    };
                    failures.push(format!("{what}: no {fam}address for {id:?}"));
                }
            }
        }
        if !failures.is_empty() {
            if self.virtual_ip.is_none() && self.virtual_ip6.is_none() {
                return refuse(self, ctx, &failures.join("; "));
            }
            // A dual-stack client gets the family that worked (as strongSwan does); the
            // other is logged and counted, its selectors narrowed away.
            ctx.failed(
                self,
                &format!(
                    "{}; the client gets the other family only",
                    failures.join("; ")
                ),
            );
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

    /// The leased addresses as the selectors the peer's side of a child may have (2.9);
    /// empty without a lease.
    pub(crate) fn virtual_ip_ts(&self) -> Vec<crate::ike::codec::TrafficSelector> {
        let v4 = self.virtual_ip.map(IpAddr::V4);
        let v6 = self.virtual_ip6.map(IpAddr::V6);
        [v4, v6]
            .into_iter()
            .flatten()
            .filter_map(|a| crate::ike::codec::TrafficSelector::new(0, 0, 65535, a, a))
            .collect()
    }
}

fn family_name(f: Family) -> &'static str {
    match f {
        Family::Ipv4 => "IPv4",
        Family::Ipv6 => "IPv6",
    }
}

fn attr(kind: u16, value: &[u8]) -> CpAttribute {
    CpAttribute {
        kind,
        value: value.to_vec(),
    }
}

/// An initiator's CFG_REQUEST for an IPv4 address and DNS servers (3.15.4's example), and
/// with `ipv6` an IPv6 address and DNS servers too (a dual-stack client).
pub(crate) fn address_request(ipv6: bool) -> CpPayload {
    let mut attributes = vec![
        attr(CpPayload::INTERNAL_IP4_ADDRESS, &[]),
        attr(CpPayload::INTERNAL_IP4_DNS, &[]),
    ];
    if ipv6 {
        attributes.push(attr(CpPayload::INTERNAL_IP6_ADDRESS, &[]));
        attributes.push(attr(CpPayload::INTERNAL_IP6_DNS, &[]));
    }
    CpPayload {
        cfg_type: CfgType::REQUEST,
        attributes,
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

/// The IPv6 address a CFG_REPLY gives (address and prefix length, 3.15.1).
pub(crate) fn replied_address6(cp: &CpPayload) -> Option<Ipv6Addr> {
    if cp.cfg_type != CfgType::REPLY {
        return None;
    }
    let a = cp
        .attributes
        .iter()
        .find(|a| a.kind == CpPayload::INTERNAL_IP6_ADDRESS)?;
    let o: [u8; 16] = a.value.get(..16)?.try_into().ok()?;
    Some(Ipv6Addr::from(o))
}
