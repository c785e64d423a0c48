//! Choosing proposals (RFC 7296 2.7, 3.3) and narrowing traffic selectors (2.9).

use super::codec::{
    DhGroupId, EncrId, EsnId, IntegId, PrfId, ProtocolId, TrafficSelector, Transform, TransformType,
};
use super::codec::{Proposal as WireProposal, SaPayload};
use super::crypto::{DhGroup, Encr, Integ, Prf};
use super::proposal::Proposal;

/// The transforms an IKE SA runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IkeAlgs {
    pub encr: Encr,
    pub integ: Option<Integ>,
    pub prf: Prf,
    pub dh: DhGroup,
}

/// The transforms a child SA runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EspAlgs {
    pub encr: Encr,
    pub integ: Option<Integ>,
    pub esn: bool,
    pub dh: Option<DhGroup>,
}

/// Our IKE proposals as an SA payload (numbered from 1, RFC 7296 3.3.1). `spi` is empty in
/// IKE_SA_INIT and the new SPI when rekeying the IKE SA.
pub fn ike_sa_payload(props: &[Proposal], spi: &[u8]) -> SaPayload {
    let proposals = props
        .iter()
        .enumerate()
        .map(|(n, p)| {
            let mut t: Vec<Transform> = p.encr.iter().map(|e| e.transform()).collect();
            t.extend(p.prf.iter().map(|x| Transform::prf(x.id())));
            t.extend(p.integ.iter().map(|x| Transform::integ(x.id())));
            t.extend(p.groups.iter().map(|g| Transform::dh(g.id())));
            WireProposal {
                number: n as u8 + 1,
                protocol: ProtocolId::IKE,
                spi: spi.to_vec(),
                transforms: t,
            }
        })
        .collect();
    SaPayload { proposals }
}

/// Our ESP proposals for a child SA. DH transforms are only for CREATE_CHILD_SA (never in
/// IKE_AUTH, RFC 7296 1.2): then a proposal's own groups, else the child's `pfs` group.
pub fn esp_sa_payload(
    props: &[Proposal],
    spi: u32,
    create_child: bool,
    pfs: Option<DhGroup>,
) -> SaPayload {
    let proposals = props
        .iter()
        .enumerate()
        .map(|(n, p)| {
            let mut t: Vec<Transform> = p.encr.iter().map(|e| e.transform()).collect();
            t.extend(p.integ.iter().map(|x| Transform::integ(x.id())));
            let groups: Vec<DhGroup> = if p.groups.is_empty() {
                pfs.into_iter().collect()
            } else {
                p.groups.clone()
            };
            if create_child {
                t.extend(groups.iter().map(|g| Transform::dh(g.id())));
            }
            t.extend(
                p.esn
                    .iter()
                    .map(|e| Transform::esn(if *e { EsnId::ESN } else { EsnId::NO_ESN })),
            );
            WireProposal {
                number: n as u8 + 1,
                protocol: ProtocolId::ESP,
                spi: spi.to_be_bytes().to_vec(),
                transforms: t,
            }
        })
        .collect();
    SaPayload { proposals }
}

/// True if `t` is one of the transforms in `ours` (same type, ID and key length).
fn offered(ours: &[Transform], t: &Transform) -> bool {
    ours.iter()
        .any(|o| o.kind == t.kind && o.id == t.id && o.key_length() == t.key_length())
}

/// Picks, for each transform type, the peer's first transform we also offer.
fn pick(
    peer: &WireProposal,
    ours: &WireProposal,
    kind: TransformType,
) -> Option<Option<Transform>> {
    let ours_of: Vec<Transform> = ours
        .transforms
        .iter()
        .filter(|t| t.kind == kind)
        .cloned()
        .collect();
    let peers_of: Vec<&Transform> = peer.transforms.iter().filter(|t| t.kind == kind).collect();
    match (ours_of.is_empty(), peers_of.is_empty()) {
        (true, true) => Some(None),
        // RFC 7296 3.3.3: a type we don't use must not be required; a type we need must match.
        (true, false) => peers_of.iter().any(|t| t.id == 0).then_some(None),
        (false, true) => None,
        (false, false) => peers_of
            .into_iter()
            .find(|t| !t.has_unknown_attributes() && offered(&ours_of, t))
            .cloned()
            .map(Some),
    }
}

/// Responder side: the first of the peer's proposals (in the peer's order) that one of ours
/// accepts, reduced to one transform per type, keeping the peer's proposal number.
pub fn choose(peer: &SaPayload, ours: &SaPayload, protocol: ProtocolId) -> Option<WireProposal> {
    let kinds = [
        TransformType::ENCR,
        TransformType::PRF,
        TransformType::INTEG,
        TransformType::DH,
        TransformType::ESN,
    ];
    for p in peer.proposals.iter().filter(|p| p.protocol == protocol) {
        for o in &ours.proposals {
            let mut chosen = Vec::new();
            let ok = kinds.iter().all(|k| match pick(p, o, *k) {
                Some(Some(t)) => {
                    chosen.push(t);
                    true
                }
                Some(None) => true,
                None => false,
            });
            if ok {
                return Some(WireProposal {
                    number: p.number,
                    protocol,
                    spi: p.spi.clone(),
                    transforms: chosen,
                });
            }
        }
    }
    None
}

/// Initiator side: the responder's single proposal must be one we offered (RFC 7296 2.7).
pub fn accepted(reply: &SaPayload, ours: &SaPayload) -> Option<WireProposal> {
    let [p] = reply.proposals.as_slice() else {
        return None;
    };
    let o = ours
        .proposals
        .iter()
        .find(|o| o.number == p.number && o.protocol == p.protocol)?;
    let kinds = [
        TransformType::ENCR,
        TransformType::PRF,
        TransformType::INTEG,
        TransformType::DH,
        TransformType::ESN,
    ];
    for k in kinds {
        let got: Vec<&Transform> = p.transforms.iter().filter(|t| t.kind == k).collect();
        let want = o.transforms.iter().any(|t| t.kind == k);
        match got.as_slice() {
            [] if !want || k == TransformType::DH && p.protocol == ProtocolId::ESP => {}
            [t] if want && offered(&o.transforms, t) => {}
            _ => return None,
        }
    }
    Some(p.clone())
}

fn first(p: &WireProposal, kind: TransformType) -> Option<&Transform> {
    p.transforms.iter().find(|t| t.kind == kind)
}

/// The encryption and integrity transforms of a chosen proposal: an AEAD without integrity,
/// or CBC with it (RFC 5282 section 8).
fn ciphers(p: &WireProposal) -> Option<(Encr, Option<Integ>)> {
    let e = first(p, TransformType::ENCR)?;
    let encr = Encr::from_transform(EncrId(e.id), e.key_length())?;
    let integ = match first(p, TransformType::INTEG) {
        Some(t) if t.id != 0 => Some(Integ::from_id(IntegId(t.id))?),
        _ => None,
    };
    (encr.is_aead() == integ.is_none()).then_some((encr, integ))
}

pub fn ike_algs(p: &WireProposal) -> Option<IkeAlgs> {
    let (encr, integ) = ciphers(p)?;
    Some(IkeAlgs {
        encr,
        integ,
        prf: Prf::from_id(PrfId(first(p, TransformType::PRF)?.id))?,
        dh: DhGroup::from_id(DhGroupId(first(p, TransformType::DH)?.id))?,
    })
}

pub fn esp_algs(p: &WireProposal) -> Option<EspAlgs> {
    let (encr, integ) = ciphers(p)?;
    let dh = match first(p, TransformType::DH) {
        Some(t) if t.id != 0 => Some(DhGroup::from_id(DhGroupId(t.id))?),
        _ => None,
    };
    Some(EspAlgs {
        encr,
        integ,
        esn: first(p, TransformType::ESN).is_some_and(|t| t.id == 1),
        dh,
    })
}

/// The SPI of an ESP proposal (4 bytes, RFC 7296 3.3.1).
pub fn esp_spi(p: &WireProposal) -> Option<u32> {
    Some(u32::from_be_bytes(p.spi.as_slice().try_into().ok()?))
}

fn max_ip(a: std::net::IpAddr, b: std::net::IpAddr) -> std::net::IpAddr {
    if a >= b {
        a
    } else {
        b
    }
}

fn min_ip(a: std::net::IpAddr, b: std::net::IpAddr) -> std::net::IpAddr {
    if a <= b {
        a
    } else {
        b
    }
}

/// The intersection of two selectors, or None when it is empty.
pub fn intersect(a: &TrafficSelector, b: &TrafficSelector) -> Option<TrafficSelector> {
    if a.start_addr().is_ipv4() != b.start_addr().is_ipv4() {
        return None;
    }
    let proto = match (a.ip_protocol, b.ip_protocol) {
        (0, p) | (p, 0) => p,
        (p, q) if p == q => p,
        _ => return None,
    };
    let (sp, ep) = (a.start_port.max(b.start_port), a.end_port.min(b.end_port));
    let (sa, ea) = (
        max_ip(a.start_addr(), b.start_addr()),
        min_ip(a.end_addr(), b.end_addr()),
    );
    if sp > ep || sa > ea {
        return None;
    }
    TrafficSelector::new(proto, sp, ep, sa, ea)
}

/// Narrows what the peer proposed to what policy allows (RFC 7296 2.9): every non-empty
/// intersection, in the peer's order. Empty result: answer TS_UNACCEPTABLE.
pub fn narrow(proposed: &[TrafficSelector], allowed: &[TrafficSelector]) -> Vec<TrafficSelector> {
    let mut out: Vec<TrafficSelector> = Vec::new();
    for p in proposed {
        for a in allowed {
            if let Some(i) = intersect(p, a) {
                if !out.contains(&i) {
                    out.push(i);
                }
            }
        }
    }
    out
}

/// True if every selector of `got` lies within one of `offered` (initiator's check of the
/// responder's narrowing).
pub fn within(got: &[TrafficSelector], offered: &[TrafficSelector]) -> bool {
    !got.is_empty()
        && got
            .iter()
            .all(|g| offered.iter().any(|o| intersect(g, o).as_ref() == Some(g)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::proposal::ProposalKind;

    fn ts(a: &str, b: &str) -> TrafficSelector {
        TrafficSelector::new(0, 0, 65535, a.parse().unwrap(), b.parse().unwrap()).unwrap()
    }

    fn ike(s: &[&str]) -> Vec<Proposal> {
        s.iter()
            .map(|p| Proposal::parse(p, ProposalKind::Ike).unwrap())
            .collect()
    }

    #[test]
    fn responder_takes_the_initiators_first_acceptable_proposal() {
        let peer = ike_sa_payload(
            &ike(&["aes256-sha384-ecp384", "aes256gcm16-prfsha256-x25519"]),
            &[],
        );
        let ours = ike_sa_payload(
            &ike(&["aes128-sha256-modp2048", "aes256gcm16-prfsha256-x25519"]),
            &[],
        );
        let c = choose(&peer, &ours, ProtocolId::IKE).unwrap();
        assert_eq!(c.number, 2);
        let algs = ike_algs(&c).unwrap();
        assert_eq!(algs.encr, Encr::AesGcm16 { key_bits: 256 });
        assert_eq!(algs.integ, None);
        assert_eq!(algs.dh, DhGroup::from_id(DhGroupId::CURVE25519).unwrap());
        // and the initiator accepts it back
        assert!(accepted(&SaPayload { proposals: vec![c] }, &peer).is_some());
    }

    #[test]
    fn nothing_in_common_is_no_proposal() {
        let peer = ike_sa_payload(&ike(&["aes256-sha384-ecp384"]), &[]);
        let ours = ike_sa_payload(&ike(&["aes128-sha256-modp2048"]), &[]);
        assert!(choose(&peer, &ours, ProtocolId::IKE).is_none());
    }

    #[test]
    fn key_length_matters() {
        let peer = ike_sa_payload(&ike(&["aes128gcm16-prfsha256-x25519"]), &[]);
        let ours = ike_sa_payload(&ike(&["aes256gcm16-prfsha256-x25519"]), &[]);
        assert!(choose(&peer, &ours, ProtocolId::IKE).is_none());
    }

    #[test]
    fn initiator_rejects_a_reply_it_did_not_offer() {
        let offer = ike_sa_payload(&ike(&["aes256gcm16-prfsha256-x25519"]), &[]);
        let other = ike_sa_payload(&ike(&["aes128-sha256-modp2048"]), &[]);
        assert!(accepted(&other, &offer).is_none());
        let two = SaPayload {
            proposals: vec![offer.proposals[0].clone(), offer.proposals[0].clone()],
        };
        assert!(
            accepted(&two, &offer).is_none(),
            "a reply must carry exactly one proposal"
        );
    }

    #[test]
    fn esp_proposal_with_esn() {
        let p = vec![Proposal::parse("aes128-sha256-esn", ProposalKind::Esp).unwrap()];
        let peer = esp_sa_payload(&p, 0xc000_0001, false, None);
        let ours = esp_sa_payload(&p, 0xd000_0001, false, None);
        let c = choose(&peer, &ours, ProtocolId::ESP).unwrap();
        assert_eq!(
            esp_spi(&c),
            Some(0xc000_0001),
            "the chosen proposal carries the peer's SPI"
        );
        let a = esp_algs(&c).unwrap();
        assert!(a.esn);
        assert_eq!(
            a.integ,
            Some(Integ::from_id(IntegId::AUTH_HMAC_SHA2_256_128).unwrap())
        );
    }

    #[test]
    fn narrowing_follows_rfc7296_2_9() {
        let proposed = [ts("10.0.0.0", "10.0.255.255")];
        let allowed = [ts("10.0.1.0", "10.0.1.255"), ts("192.0.2.0", "192.0.2.255")];
        assert_eq!(
            narrow(&proposed, &allowed),
            vec![ts("10.0.1.0", "10.0.1.255")]
        );
        assert!(narrow(&[ts("172.16.0.0", "172.16.0.255")], &allowed).is_empty());
        let tcp = TrafficSelector::new(
            6,
            443,
            443,
            "10.0.1.5".parse().unwrap(),
            "10.0.1.5".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(narrow(&[tcp], &allowed), vec![tcp]);
        assert!(within(&[tcp], &allowed));
        assert!(!within(&[ts("10.0.0.0", "10.0.1.255")], &allowed));
    }
}
