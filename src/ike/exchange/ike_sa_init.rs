//! IKE_SA_INIT (RFC 7296 1.2): negotiate the IKE SA's algorithms, exchange KE and nonces,
//! derive SKEYSEED and the SK_* keys (2.14). COOKIE and INVALID_KE_PAYLOAD retries (2.6, 1.2).

use std::net::SocketAddr;

use crate::ike::auth::certs::ENCODING_X509_SIGNATURE;
use crate::ike::auth::{signature, RemoteAuth, SigHashes};
use crate::ike::codec::{
    CertPayload, ExchangeType, Flags, Header, KePayload, Message, NoncePayload, NotifyPayload,
    NotifyType, Payload, PayloadList, ProtocolId, SaPayload,
};
use crate::ike::crypto::{DhGroup, DhPrivateKey, IkeKeys, IkeSuite};
use crate::ike::endpoint::Ctx;
use crate::ike::nat;
use crate::ike::negotiate::{accepted, choose, ike_algs, ike_sa_payload};
use crate::ike::refusal::{Failure, Refusal};
use crate::ike::sa::{Active, DownReason, IkeSa, SaKeys, State};

/// The initiator's IKE_SA_INIT in flight: what its response needs.
pub(crate) struct Initiator {
    pub dh: DhPrivateKey,
    pub ni: Vec<u8>,
    pub offer: SaPayload,
    /// Echoed in a retry after INVALID_KE_PAYLOAD (2.6: the cookie goes with every retry).
    pub cookie: Option<Vec<u8>>,
    /// COOKIE answers taken so far: a responder that never accepts ours is given up on.
    pub cookie_retries: u8,
}

/// COOKIE answers to one IKE_SA_INIT before giving up (strongSwan's ike_init allows 5).
const MAX_COOKIE_RETRIES: u8 = 5;

/// An unencrypted error response to an IKE_SA_INIT request; we keep no state (2.6).
fn refuse(ctx: &mut Ctx<'_>, local: SocketAddr, remote: SocketAddr, req: &Header, r: &Refusal) {
    answer_notify(ctx, local, remote, req, r.notify(), r.notify_data());
}

fn answer_notify(
    ctx: &mut Ctx<'_>,
    local: SocketAddr,
    remote: SocketAddr,
    req: &Header,
    kind: NotifyType,
    data: Vec<u8>,
) {
    let msg = Message {
        header: Header {
            spi_i: req.spi_i,
            spi_r: 0,
            exchange: ExchangeType::IKE_SA_INIT,
            flags: Flags {
                initiator: false,
                version: false,
                response: true,
            },
            message_id: 0,
        },
        payloads: vec![Payload::Notify(NotifyPayload::new(kind, data))],
    };
    if let Ok(bytes) = msg.encode() {
        ctx.transmit(local, remote, bytes);
    }
}

/// The peer's SIGNATURE_HASH_ALGORITHMS (RFC 7427 4), none if it sent none.
fn peer_hashes(p: &[Payload]) -> SigHashes {
    p.find_notify(NotifyType::SIGNATURE_HASH_ALGORITHMS)
        .map(|n| SigHashes::from_notify(&n.data))
        .unwrap_or_default()
}

impl IkeSa {
    /// Initiator: sends IKE_SA_INIT. `group` overrides the first proposal's DH group after
    /// INVALID_KE_PAYLOAD; `cookie` is echoed after a COOKIE notify.
    pub(crate) fn start_ike_sa_init(
        &mut self,
        ctx: &mut Ctx<'_>,
        group: Option<DhGroup>,
        cookie: Option<Vec<u8>>,
    ) {
        let offer = ike_sa_payload(&self.peer.ike_proposals, &[]);
        let Some(group) = group.or_else(|| {
            self.peer
                .ike_proposals
                .first()
                .and_then(|p| p.groups.first())
                .copied()
        }) else {
            self.die(
                ctx,
                DownReason::NegotiationFailed(Failure::Local("no IKE proposal configured".into())),
            );
            return;
        };
        let (dh, ke) = match ctx.generate(group) {
            Ok(x) => x,
            Err(e) => {
                self.die(
                    ctx,
                    DownReason::NegotiationFailed(Failure::Local(format!(
                        "DH key generation failed: {e}"
                    ))),
                );
                return;
            }
        };
        let Ok(ni) = ctx.random_bytes(self.nonce_len()) else {
            self.die(
                ctx,
                DownReason::NegotiationFailed(Failure::Local("random source failed".into())),
            );
            return;
        };
        let mut payloads = Vec::new();
        if let Some(c) = &cookie {
            payloads.push(Payload::Notify(NotifyPayload::new(
                NotifyType::COOKIE,
                c.clone(),
            )));
        }
        payloads.push(Payload::Sa(offer.clone()));
        payloads.push(Payload::Ke(KePayload {
            group: group.id(),
            data: ke,
        }));
        payloads.push(Payload::Nonce(NoncePayload { data: ni.clone() }));
        if self.peer.uses_signatures() {
            payloads.push(Payload::Notify(NotifyPayload::new(
                NotifyType::SIGNATURE_HASH_ALGORITHMS,
                signature::hashes_notify_data(),
            )));
        }
        // 2.23: always offered; the response's tell whether to float.
        let fake = self.peer.nat.encap;
        payloads.extend(nat::notifies(self.spi_i, 0, self.local, self.remote, fake));
        if self.peer.frag.enabled {
            // RFC 7383 2.3: we can send and take fragments; the response says if the peer can.
            payloads.push(Payload::Notify(NotifyPayload::new(
                NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
                Vec::new(),
            )));
        }
        let msg = Message {
            header: self.header(ExchangeType::IKE_SA_INIT, false, 0),
            payloads,
        };
        let Ok(bytes) = msg.encode() else {
            self.die(
                ctx,
                DownReason::NegotiationFailed(Failure::Local(
                    "could not encode IKE_SA_INIT".into(),
                )),
            );
            return;
        };
        self.init_request = bytes.clone();
        self.state = State::Connecting;
        self.next_message_id = 1;
        let task = Active::IkeSaInit(Initiator {
            dh,
            ni,
            offer,
            cookie,
            cookie_retries: 0,
        });
        self.send_request(ctx, 0, vec![bytes], ExchangeType::IKE_SA_INIT, task);
    }

    /// Responder: answers a new IKE_SA_INIT. Returns false when no state should be kept
    /// (the request was refused with a notify, or dropped).
    pub(crate) fn answer_ike_sa_init(
        &mut self,
        ctx: &mut Ctx<'_>,
        header: Header,
        data: &[u8],
    ) -> bool {
        let (local, remote, name) = (self.local, self.remote, self.peer.name.clone());
        let msg = match Message::decode(data) {
            Ok(m) => m,
            Err(e) => {
                ctx.notice(Some(&name), remote, format!("malformed IKE_SA_INIT: {e}"));
                answer_notify(ctx, local, remote, &header, e.notify(), e.notify_data());
                return false;
            }
        };
        if header.message_id != 0 {
            return false;
        }
        if let Err(e) = msg.check_critical() {
            answer_notify(ctx, local, remote, &header, e.notify(), e.notify_data());
            return false;
        }
        let p = &msg.payloads;
        let (Some(sa), Some(ke), Some(nonce)) = (p.sa(), p.ke(), p.nonce()) else {
            let r = Refusal::InvalidSyntax("IKE_SA_INIT without SA, KE or Nonce".into());
            ctx.notice(Some(&name), remote, r.to_string());
            refuse(ctx, local, remote, &header, &r);
            return false;
        };
        let ours = ike_sa_payload(&self.peer.ike_proposals, &[]);
        let Some((chosen, algs)) =
            choose(sa, &ours, ProtocolId::IKE).and_then(|c| ike_algs(&c).map(|a| (c, a)))
        else {
            let r = Refusal::NoProposalChosen(format!("peer offered {}", describe(sa)));
            ctx.notice(
                Some(&name),
                remote,
                // Lab scenario 52 looks for this text.
                format!(
                    "no acceptable IKE proposal: peer offered {}; answered {:?}",
                    describe(sa),
                    r.notify()
                ),
            );
            refuse(ctx, local, remote, &header, &r);
            return false;
        };
        if ke.group != algs.dh.id() {
            // 1.2: tell the initiator which group we want; it retries.
            refuse(
                ctx,
                local,
                remote,
                &header,
                &Refusal::InvalidKe { wanted: algs.dh },
            );
            return false;
        }
        let (dh, kr) = match ctx.generate(algs.dh) {
            Ok(x) => x,
            Err(_) => return false,
        };
        let shared = match dh.agree(&ke.data) {
            Ok(s) => s,
            Err(e) => {
                let r = Refusal::InvalidSyntax(format!("invalid KE value from peer: {e}"));
                ctx.notice(Some(&name), remote, r.to_string());
                refuse(ctx, local, remote, &header, &r);
                return false;
            }
        };
        let Ok(nr) = ctx.random_bytes(self.nonce_len()) else {
            return false;
        };
        // 2.23: the request's hashes use its own header SPIs (ours still zero).
        let forced = self.peer.nat.encap;
        let detected = nat::detect(p, self.spi_i, 0, local, remote, forced);
        let mut reply = Message {
            header: self.header(ExchangeType::IKE_SA_INIT, true, 0),
            payloads: vec![
                Payload::Sa(SaPayload {
                    proposals: vec![chosen],
                }),
                Payload::Ke(KePayload {
                    group: algs.dh.id(),
                    data: kr,
                }),
                Payload::Nonce(NoncePayload { data: nr.clone() }),
            ],
        };
        if let RemoteAuth::Certificate(tp) = &self.peer.remote_auth {
            // 3.7: which CAs we trust, so the peer picks a certificate they issued.
            reply.payloads.push(Payload::CertReq(CertPayload {
                encoding: ENCODING_X509_SIGNATURE,
                data: tp.certreq_data().to_vec(),
            }));
        }
        if self.peer.uses_signatures() {
            reply.payloads.push(Payload::Notify(NotifyPayload::new(
                NotifyType::SIGNATURE_HASH_ALGORITHMS,
                signature::hashes_notify_data(),
            )));
        }
        self.peer_hashes = peer_hashes(p);
        if let Some(n) = detected {
            // Only to a peer that does NAT-T itself (it sent NAT-D).
            self.nat = n;
            let (i, r) = (self.spi_i, self.spi_r);
            reply
                .payloads
                .extend(nat::notifies(i, r, local, remote, forced));
        }
        // RFC 7383 2.3: announced back only to an initiator that announced it.
        let frag_asked = p
            .find_notify(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED)
            .is_some();
        if self.peer.frag.enabled && frag_asked {
            self.frag.on = true;
            reply.payloads.push(Payload::Notify(NotifyPayload::new(
                NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
                Vec::new(),
            )));
        }
        let Ok(bytes) = reply.encode() else {
            return false;
        };
        self.ni = nonce.data.clone();
        self.nr = nr;
        if !self.set_keys(ctx, algs, shared.as_bytes()) {
            return false;
        }
        self.init_request = data.to_vec();
        self.init_response = bytes.clone();
        self.state = State::InitAnswered {
            until: ctx.now + ctx.half_open_timeout,
            eap: None,
        };
        self.respond(ctx, 0, vec![bytes]);
        true
    }

    /// Initiator: the IKE_SA_INIT response (or a COOKIE / INVALID_KE_PAYLOAD / error notify).
    pub(crate) fn handle_ike_sa_init_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        pending: Initiator,
        header: Header,
        msg: Message,
        data: &[u8],
    ) {
        let p = &msg.payloads;
        if let Some(c) = p.find_notify(NotifyType::COOKIE) {
            self.retry_with_cookie(ctx, pending, c.data.clone());
            return;
        }
        if let Some(n) = p.find_notify(NotifyType::INVALID_KE_PAYLOAD) {
            let wanted = n.data.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]));
            let ok = wanted
                .and_then(|n| DhGroup::from_id(crate::ike::codec::DhGroupId(n)))
                .filter(|g| self.peer.ike_proposals.iter().any(|p| p.groups.contains(g)));
            match ok {
                Some(g) if g != pending.dh.group() => {
                    self.start_ike_sa_init(ctx, Some(g), pending.cookie);
                }
                _ => self.state_fail(
                    ctx,
                    Refusal::NoProposalChosen(format!(
                        "peer wants DH group {wanted:?}, which we do not offer"
                    ))
                    .into(),
                ),
            }
            return;
        }
        if let Some(n) = p.error_notify() {
            self.state_fail(
                ctx,
                Failure::PeerRefused {
                    exchange: ExchangeType::IKE_SA_INIT,
                    notify: n.kind,
                },
            );
            return;
        }
        let (Some(sa), Some(ke), Some(nonce)) = (p.sa(), p.ke(), p.nonce()) else {
            self.state_fail(
                ctx,
                Refusal::InvalidSyntax("IKE_SA_INIT response without SA, KE or Nonce".into())
                    .into(),
            );
            return;
        };
        let Some(algs) = accepted(sa, &pending.offer).and_then(|c| ike_algs(&c)) else {
            self.state_fail(
                ctx,
                Refusal::NoProposalChosen(format!(
                    "peer chose a proposal we did not offer: {}",
                    describe(sa)
                ))
                .into(),
            );
            return;
        };
        if algs.dh != pending.dh.group() || ke.group != algs.dh.id() || header.spi_r == 0 {
            self.state_fail(
                ctx,
                Refusal::InvalidSyntax(
                    "peer's KE group or SPI does not match the chosen proposal".into(),
                )
                .into(),
            );
            return;
        }
        let shared = match pending.dh.agree(&ke.data) {
            Ok(s) => s,
            Err(e) => {
                self.state_fail(
                    ctx,
                    Refusal::InvalidSyntax(format!("invalid KE value from peer: {e}")).into(),
                );
                return;
            }
        };
        self.spi_r = header.spi_r;
        self.peer_hashes = peer_hashes(p);
        self.ni = pending.ni;
        self.nr = nonce.data.clone();
        if !self.set_keys(ctx, algs, shared.as_bytes()) {
            return;
        }
        self.init_response = data.to_vec();
        let forced = self.peer.nat.encap;
        if let Some(n) = nat::detect(p, self.spi_i, self.spi_r, self.local, self.remote, forced) {
            self.nat = n;
        }
        // RFC 7383 2.3: both ends announced it, so IKE_AUTH on may be fragmented.
        self.frag.on = self.peer.frag.enabled
            && p.find_notify(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED)
                .is_some();
        if self.nat.in_use() {
            // 2.23: IKE_AUTH and everything after go from our NAT-T port to the peer's,
            // with the non-ESP marker (RFC 3948 2.2), which the daemon's socket adds.
            self.local.set_port(self.peer.nat.local_port);
            self.remote.set_port(self.peer.nat.remote_port);
        }
        self.start_ike_auth(ctx);
    }

    /// 2.6: the same request again with the COOKIE as its first payload and "all other
    /// payloads unchanged": the responder's cookie covers our Ni and SPIi, so a fresh nonce
    /// would never match it.
    fn retry_with_cookie(&mut self, ctx: &mut Ctx<'_>, pending: Initiator, cookie: Vec<u8>) {
        if pending.cookie_retries >= MAX_COOKIE_RETRIES {
            self.state_fail(
                ctx,
                Failure::Local(format!(
                    "peer answered {MAX_COOKIE_RETRIES} COOKIEs and accepted none"
                )),
            );
            return;
        }
        let resent = Message::decode(&self.init_request).ok().and_then(|mut m| {
            m.payloads
                .retain(|p| !matches!(p, Payload::Notify(n) if n.kind == NotifyType::COOKIE));
            m.payloads.insert(
                0,
                Payload::Notify(NotifyPayload::new(NotifyType::COOKIE, cookie.clone())),
            );
            m.encode().ok()
        });
        let Some(bytes) = resent else {
            self.state_fail(ctx, Failure::Local("could not encode IKE_SA_INIT".into()));
            return;
        };
        self.init_request = bytes.clone();
        let task = Active::IkeSaInit(Initiator {
            cookie: Some(cookie),
            cookie_retries: pending.cookie_retries + 1,
            ..pending
        });
        self.send_request(ctx, 0, vec![bytes], ExchangeType::IKE_SA_INIT, task);
    }

    fn state_fail(&mut self, ctx: &mut Ctx<'_>, why: Failure) {
        self.die(ctx, DownReason::NegotiationFailed(why));
    }

    /// Derives SK_* (2.14) and sets up the SK payload ciphers.
    fn set_keys(
        &mut self,
        ctx: &mut Ctx<'_>,
        algs: crate::ike::negotiate::IkeAlgs,
        shared: &[u8],
    ) -> bool {
        let made = IkeSuite::new(algs.encr, algs.integ, algs.prf)
            .and_then(|suite| {
                IkeKeys::derive(suite, shared, &self.ni, &self.nr, self.spi_i, self.spi_r)
            })
            .and_then(|keys| SaKeys::new(algs, keys, self.role));
        match made {
            Ok(k) => {
                self.keys = Some(k);
                true
            }
            Err(e) => {
                self.die(
                    ctx,
                    DownReason::NegotiationFailed(Failure::Local(format!(
                        "key derivation failed: {e}"
                    ))),
                );
                false
            }
        }
    }
}

/// A short description of an SA payload's proposals for logs.
pub(crate) fn describe(sa: &SaPayload) -> String {
    sa.proposals
        .iter()
        .map(|p| {
            p.transforms
                .iter()
                .map(|t| {
                    format!(
                        "{:?}:{}{}",
                        t.kind,
                        t.id,
                        t.key_length().map(|k| format!("/{k}")).unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect::<Vec<_>>()
        .join(" | ")
}
