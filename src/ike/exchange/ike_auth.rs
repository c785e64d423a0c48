//! IKE_AUTH (RFC 7296 1.2): prove identities (2.15, by PSK or certificate: `ike::auth`) and
//! create the first
//! child SA, with traffic selector narrowing on the responder (2.9).

use std::net::IpAddr;

use crate::ike::auth::certs::ENCODING_X509_SIGNATURE;
use crate::ike::auth::{
    identity_text, psk_auth, signature, signed_octets, verify_psk_auth, AuthRefusal, LocalAuth,
    MethodName, RemoteAuth,
};
use crate::ike::codec::CertPayload;
use crate::ike::codec::{
    AuthMethod, AuthPayload, Codec, ExchangeType, IdPayload, NotifyPayload, NotifyType, Payload,
    PayloadList, TsPayload,
};
use crate::ike::codec::{SaPayload, TrafficSelector};
use crate::ike::endpoint::{Ctx, Output};
use crate::ike::negotiate::esp_sa_payload;
use crate::ike::policy::Mode;
use crate::ike::refusal::{Failure, Refusal};
use crate::ike::sa::{Active, DownReason, IkeSa, Role, Task};

/// The initiator's IKE_AUTH in flight: the first child SA it proposed, if any.
pub(crate) struct Initiator {
    pub child: Option<ChildOffer>,
}

/// A child SA we proposed in IKE_AUTH and wait to hear about.
pub(crate) struct ChildOffer {
    pub policy: usize,
    pub inbound_spi: u32,
    pub offer: SaPayload,
    pub ts_i: Vec<TrafficSelector>,
    pub ts_r: Vec<TrafficSelector>,
}

use super::child::{read_child_answer, NewChild};
use super::eap::AuthenticatedUser;

/// Notifies that fail only the child SA in IKE_AUTH, not the IKE SA (RFC 7296 1.2).
const CHILD_ERRORS: [NotifyType; 6] = [
    NotifyType::NO_PROPOSAL_CHOSEN,
    NotifyType::TS_UNACCEPTABLE,
    NotifyType::SINGLE_PAIR_REQUIRED,
    NotifyType::INTERNAL_ADDRESS_FAILURE,
    NotifyType::FAILED_CP_REQUIRED,
    NotifyType::INVALID_SELECTORS,
];

fn notify(kind: NotifyType) -> Payload {
    Payload::Notify(NotifyPayload::new(kind, Vec::new()))
}

impl IkeSa {
    /// Our ID payload, CERT payloads and AUTH (RFC 7296 2.15): we sign (or MAC, with the
    /// PSK) our own IKE_SA_INIT message, the peer's nonce and our ID under our SK_p — the
    /// mirror of [`IkeSa::verify_peer`]. Our whole chain goes every time, asked for or not
    /// (iOS and macOS send no CERTREQ).
    pub(super) fn own_auth(&self) -> Result<(IdPayload, Vec<Payload>, AuthPayload), String> {
        let k = self.keys.as_ref().ok_or("IKE SA has no keys")?;
        let (algs, keys) = (k.algs, &k.keys);
        let (signed, nonce, sk_p) = match self.role {
            Role::Initiator => (&self.init_request, &self.nr, &keys.sk_pi),
            Role::Responder => (&self.init_response, &self.ni, &keys.sk_pr),
        };
        let id = IdPayload::new(self.peer.local_id.clone());
        let id_body = id.get_encoding();
        match &self.peer.local_auth {
            LocalAuth::Psk(psk) => {
                let data = psk_auth(algs.prf, psk, signed, nonce, sk_p, &id_body).to_vec();
                let auth = AuthPayload {
                    method: AuthMethod::SHARED_KEY_MIC,
                    data,
                };
                Ok((id, Vec::new(), auth))
            }
            LocalAuth::Certificate(cert) => {
                let octets = signed_octets(algs.prf, signed, nonce, sk_p, &id_body);
                let auth = cert.key.sign(self.peer_hashes, &octets)?;
                let certs = cert
                    .chain
                    .iter()
                    .map(|c| {
                        Payload::Cert(CertPayload {
                            encoding: ENCODING_X509_SIGNATURE,
                            data: c.clone(),
                        })
                    })
                    .collect();
                Ok((id, certs, auth))
            }
        }
    }

    /// Checks the peer's identity and AUTH, and counts the outcome.
    fn authenticate_peer(
        &self,
        ctx: &mut Ctx<'_>,
        id: &IdPayload,
        auth: &AuthPayload,
        inner: &[Payload],
    ) -> Result<(), Refusal> {
        match self.verify_peer(ctx.unix_time, id, auth, inner) {
            Ok(()) => {
                ctx.auth_stats.succeeded += 1;
                Ok(())
            }
            Err(r) => {
                ctx.auth_stats.count(&r);
                Err(Refusal::AuthFailed(r))
            }
        }
    }

    /// Checks the peer's identity against the configuration and its AUTH (RFC 7296 2.15):
    /// the peer signed (or MACed) its own IKE_SA_INIT message, our nonce and its ID with its
    /// SK_p (the initiator's SK_pi, the responder's SK_pr). With certificates, the first
    /// CERT payload is the peer's (3.6), checked against the trust point at `unix_time`.
    fn verify_peer(
        &self,
        unix_time: Option<u64>,
        id: &IdPayload,
        auth: &AuthPayload,
        inner: &[Payload],
    ) -> Result<(), AuthRefusal> {
        let Some(k) = self.keys.as_ref() else {
            return Err("IKE SA has no keys".into());
        };
        let (algs, keys) = (k.algs, &k.keys);
        if let Some(want) = self.peer.remote_id.as_ref() {
            if *want != id.identity {
                return Err(AuthRefusal::WrongIdentity {
                    got: identity_text(&id.identity),
                    want: identity_text(want),
                });
            }
        }
        let (signed, nonce, sk_p) = match self.role {
            Role::Initiator => (&self.init_response, &self.ni, &keys.sk_pr),
            Role::Responder => (&self.init_request, &self.nr, &keys.sk_pi),
        };
        let id_body = id.get_encoding();
        match &self.peer.remote_auth {
            RemoteAuth::Psk(psk) => {
                if auth.method != AuthMethod::SHARED_KEY_MIC {
                    return Err(AuthRefusal::WrongMethod {
                        id: identity_text(&id.identity),
                        got: MethodName(auth.method).to_string(),
                        want: "PSK",
                    });
                }
                verify_psk_auth(algs.prf, psk, signed, nonce, sk_p, &id_body, &auth.data).map_err(
                    |_| AuthRefusal::PskMismatch {
                        id: identity_text(&id.identity),
                    },
                )
            }
            RemoteAuth::Certificate(tp) => {
                if auth.method == AuthMethod::SHARED_KEY_MIC {
                    return Err(AuthRefusal::WrongMethod {
                        id: identity_text(&id.identity),
                        got: MethodName(auth.method).to_string(),
                        want: "a certificate",
                    });
                }
                let certs: Vec<&[u8]> = inner
                    .iter()
                    .filter_map(|p| match p {
                        Payload::Cert(c) if c.encoding == ENCODING_X509_SIGNATURE => {
                            Some(c.data.as_slice())
                        }
                        _ => None,
                    })
                    .collect();
                if certs.is_empty() {
                    return Err(AuthRefusal::NoCertificate {
                        id: identity_text(&id.identity),
                    });
                }
                let unix = unix_time.ok_or(AuthRefusal::NoTimeOfDay)?;
                let peer = tp.verify(&certs, &id.identity, unix)?;
                let octets = signed_octets(algs.prf, signed, nonce, sk_p, &id_body);
                signature::verify(&peer.public, auth, &octets).map_err(|e| match e {
                    signature::VerifyError::Bad => AuthRefusal::BadSignature {
                        subject: peer.subject.clone(),
                        method: MethodName(auth.method).to_string(),
                    },
                    signature::VerifyError::Unsupported(why) => {
                        AuthRefusal::UnsupportedSignature(why)
                    }
                })
            }
            // EAP is the initiator's method (2.16): a responder never proves itself with it.
            RemoteAuth::Eap(_) => Err(AuthRefusal::WrongMethod {
                id: identity_text(&id.identity),
                got: MethodName(auth.method).to_string(),
                want: "EAP (only from an initiator)",
            }),
        }
    }

    /// Initiator: IDi, AUTH and the first child's SA and TS, under SK.
    pub(crate) fn start_ike_auth(&mut self, ctx: &mut Ctx<'_>) {
        let (idi, certs, auth) = match self.own_auth() {
            Ok(x) => x,
            Err(why) => {
                self.die(ctx, DownReason::NegotiationFailed(Failure::Local(why)));
                return;
            }
        };
        // 1.2: IDi, [CERT,] [CERTREQ,] [IDr,] AUTH, SA, TSi, TSr.
        let mut inner = vec![Payload::IdI(idi)];
        inner.extend(certs);
        if let RemoteAuth::Certificate(tp) = &self.peer.remote_auth {
            inner.push(Payload::CertReq(CertPayload {
                encoding: ENCODING_X509_SIGNATURE,
                data: tp.certreq_data().to_vec(),
            }));
        }
        // Only when no other IKE SA with the peer is up (3.16): the peer deletes every other
        // one it has with us on seeing it.
        if self.peer.initial_contact && !ctx.identities.any(&self.peer.name) {
            inner.push(notify(NotifyType::INITIAL_CONTACT));
        }
        if let Some(r) = &self.peer.remote_id {
            inner.push(Payload::IdR(IdPayload::new(r.clone())));
        }
        inner.push(Payload::Auth(auth));
        if self.peer.remote_access.request_address {
            inner.push(Payload::Cp(super::config::address_request(
                self.peer.remote_access.request_ipv6,
            )));
        }
        let child = match self.peer.children.first() {
            Some(policy) => {
                let Ok(inbound_spi) = ctx.random_esp_spi() else {
                    self.die(
                        ctx,
                        DownReason::NegotiationFailed(Failure::Local(
                            "random source failed".into(),
                        )),
                    );
                    return;
                };
                Some(ChildOffer {
                    policy: 0,
                    inbound_spi,
                    offer: esp_sa_payload(&policy.esp, inbound_spi, false, None),
                    ts_i: policy.local_ts.clone(),
                    ts_r: policy.remote_ts.clone(),
                })
            }
            None => None,
        };
        if let Some(c) = &child {
            if self.peer.children[c.policy].mode == Mode::Transport {
                inner.push(notify(NotifyType::USE_TRANSPORT_MODE));
            }
            inner.push(Payload::Sa(c.offer.clone()));
            inner.push(Payload::TsI(TsPayload::from_selectors(
                c.ts_i.iter().copied(),
            )));
            inner.push(Payload::TsR(TsPayload::from_selectors(
                c.ts_r.iter().copied(),
            )));
        }
        let task = Active::IkeAuth(Initiator { child });
        self.start_request(ctx, ExchangeType::IKE_AUTH, task, inner);
    }

    /// Initiator: the IKE_AUTH response.
    pub(crate) fn handle_ike_auth_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        pending: Initiator,
        inner: Vec<Payload>,
    ) {
        if let Some(n) = inner
            .error_notify()
            .filter(|n| !CHILD_ERRORS.contains(&n.kind))
        {
            self.die(
                ctx,
                DownReason::NegotiationFailed(Failure::PeerRefused {
                    exchange: ExchangeType::IKE_AUTH,
                    notify: n.kind,
                }),
            );
            return;
        }
        let (Some(idr), Some(auth)) = (inner.id_r(), inner.auth()) else {
            self.die(
                ctx,
                DownReason::NegotiationFailed(
                    Refusal::InvalidSyntax("IKE_AUTH response without IDr or AUTH".into()).into(),
                ),
            );
            return;
        };
        if let Err(r) = self.authenticate_peer(ctx, idr, auth, &inner) {
            self.die(ctx, DownReason::NegotiationFailed(r.into()));
            return;
        }
        let rekey_at = self.establish(ctx.now);
        self.remote_id = Some(idr.identity.clone());
        if self.peer.remote_access.request_address {
            self.virtual_ip = inner.cp().and_then(super::config::replied_address);
            self.virtual_ip6 = inner.cp().and_then(super::config::replied_address6);
        }
        ctx.out.push_back(Output::IkeUp {
            ike: self.id,
            peer: self.peer.name.clone(),
            local: self.local,
            remote: self.remote,
            remote_id: self.remote_id.clone(),
            initiator: true,
            rekey_at,
            nat_t: self.nat.in_use(),
            virtual_ip: self.virtual_ip.map(IpAddr::V4),
            virtual_ip6: self.virtual_ip6,
            session_deadline: self.session_deadline,
            user: None,
        });
        let Some(offer) = pending.child else { return };
        let name = self.peer.children[offer.policy].name.clone();
        if let Some(n) = inner.error_notify() {
            ctx.failed(
                self,
                &format!("child SA {name} not created: peer answered {:?}", n.kind),
            );
            return;
        }
        match self.accept_child(&inner, &offer) {
            Ok(c) => {
                let (ni, nr) = (self.ni.clone(), self.nr.clone());
                if let Err(e) = self.add_child(ctx, c, true, None, &ni, &nr, None) {
                    ctx.failed(self, &e);
                }
                // Further children of this peer come with CREATE_CHILD_SA (1.3.1).
                for i in 1..self.peer.children.len() {
                    self.queue_task(ctx, Task::CreateChild(i));
                }
            }
            Err(why) => {
                // The peer installed something we refuse: don't leave it half up.
                ctx.failed(
                    self,
                    &format!("child SA {name}: {why}; deleting the IKE SA"),
                );
                self.request_delete(ctx);
            }
        }
    }

    /// Initiator: checks the responder's child SA answer against what we offered.
    fn accept_child(&self, inner: &[Payload], offer: &ChildOffer) -> Result<NewChild, String> {
        let a = read_child_answer(inner, &offer.offer, &offer.ts_i, &offer.ts_r)?;
        let want = self.peer.children[offer.policy].mode;
        if want != a.mode {
            return Err(format!(
                "peer answered {:?} mode, we asked for {want:?}",
                a.mode
            ));
        }
        Ok(NewChild {
            policy: offer.policy,
            inbound_spi: offer.inbound_spi,
            outbound_spi: a.outbound_spi,
            algs: a.algs,
            local_ts: a.ts_i,
            remote_ts: a.ts_r,
            mode: a.mode,
        })
    }

    /// Responder: verify the initiator, answer with IDr, AUTH and the child SA.
    pub(crate) fn answer_ike_auth(
        &mut self,
        ctx: &mut Ctx<'_>,
        message_id: u32,
        inner: Vec<Payload>,
    ) {
        let refuse = |sa: &mut IkeSa, ctx: &mut Ctx<'_>, r: Refusal| {
            let n = Payload::Notify(NotifyPayload::new(r.notify(), r.notify_data()));
            sa.respond_encrypted(ctx, ExchangeType::IKE_AUTH, message_id, &[n]);
            sa.die(ctx, DownReason::NegotiationFailed(r.into()));
        };
        // The first request names the client: its peer entry (profile) decides how it
        // authenticates (config.rs); the later rounds of an EAP conversation carry no IDi.
        let conversing = matches!(
            self.state,
            crate::ike::sa::State::InitAnswered { eap: Some(_), .. }
        );
        if let (Some(idi), false) = (inner.id_i(), conversing) {
            let id = idi.identity.clone();
            if let Err(r) = self.select_peer(ctx, &id) {
                // Counted with the other authentication refusals.
                if let Refusal::AuthFailed(a) = &r {
                    ctx.auth_stats.count(a);
                }
                refuse(self, ctx, r);
                return;
            }
        }
        // EAP (2.16): its own task, eap.rs.
        if self.eap_applies() {
            self.answer_ike_auth_eap(ctx, message_id, inner);
            return;
        }
        // Without IDi or AUTH there is nothing that authenticates: AUTHENTICATION_FAILED,
        // as for a bad AUTH (2.21.2).
        let (Some(idi), Some(auth)) = (inner.id_i(), inner.auth()) else {
            refuse(
                self,
                ctx,
                Refusal::AuthFailed("IKE_AUTH without IDi or AUTH".into()),
            );
            return;
        };
        if let Err(r) = self.authenticate_peer(ctx, idi, auth, &inner) {
            refuse(self, ctx, r);
            return;
        }
        let (idr, certs, my_auth) = match self.own_auth() {
            Ok(x) => x,
            Err(why) => {
                let n = notify(NotifyType::AUTHENTICATION_FAILED);
                self.respond_encrypted(ctx, ExchangeType::IKE_AUTH, message_id, &[n]);
                self.die(ctx, DownReason::NegotiationFailed(Failure::Local(why)));
                return;
            }
        };
        // 1.2: IDr, [CERT,] AUTH, then (establish_responder) CP, SA, TSi, TSr.
        let mut reply = vec![Payload::IdR(idr)];
        reply.extend(certs);
        reply.push(Payload::Auth(my_auth));
        let identity = idi.identity.clone();
        self.establish_responder(ctx, message_id, identity, &inner, reply, None);
    }

    /// Responder: the initiator is authenticated (by PSK, or EAP and the MSK): the SA is up,
    /// and the last IKE_AUTH response carries `reply` (our IDr and AUTH) and the child SA
    /// answer to `inner`, the request that proposed it (for EAP, the first).
    pub(super) fn establish_responder(
        &mut self,
        ctx: &mut Ctx<'_>,
        message_id: u32,
        identity: crate::ike::codec::Identity,
        inner: &[Payload],
        mut reply: Vec<Payload>,
        user: Option<AuthenticatedUser>,
    ) {
        let initial_contact = inner.find_notify(NotifyType::INITIAL_CONTACT).is_some();
        self.remote_id = Some(identity);
        // The client's address before the daemon hears of the SA (3.15.4, config.rs).
        let cp = self.answer_cp(ctx, inner, initial_contact);
        let rekey_at = self.establish(ctx.now);
        // RADIUS's Session-Timeout (RFC 2865 5.27) ends the session, rekeys or not; 0 is
        // none (as FreeRADIUS and strongSwan's eap-radius read it).
        self.session_deadline = user
            .as_ref()
            .and_then(|u| u.session_timeout)
            .filter(|s| *s > 0)
            .map(|s| ctx.now + std::time::Duration::from_secs(u64::from(s)));
        ctx.out.push_back(Output::IkeUp {
            ike: self.id,
            peer: self.peer.name.clone(),
            local: self.local,
            remote: self.remote,
            remote_id: self.remote_id.clone(),
            initiator: false,
            rekey_at,
            nat_t: self.nat.in_use(),
            virtual_ip: self.virtual_ip.map(IpAddr::V4),
            virtual_ip6: self.virtual_ip6,
            session_deadline: self.session_deadline,
            user,
        });
        reply.extend(cp.reply.map(Payload::Cp));
        if let (Some(n), Some(_)) = (cp.child_error, inner.sa()) {
            reply.push(notify(n));
        } else if inner.sa().is_some() {
            match self.answer_child(ctx, inner) {
                Ok((child, payloads)) => {
                    let (ni, nr) = (self.ni.clone(), self.nr.clone());
                    // Install before the response leaves, so the initiator's first
                    // packets find our inbound SA.
                    match self.add_child(ctx, child, false, None, &ni, &nr, None) {
                        Ok(_) => reply.extend(payloads),
                        Err(e) => {
                            ctx.failed(self, &e);
                            reply.push(notify(NotifyType::NO_PROPOSAL_CHOSEN));
                        }
                    }
                }
                Err(r) => {
                    ctx.failed(
                        self,
                        &format!("child SA refused: {r}; answered {:?}", r.notify()),
                    );
                    reply.push(Payload::Notify(NotifyPayload::new(
                        r.notify(),
                        r.notify_data(),
                    )));
                }
            }
        }
        self.respond_encrypted(ctx, ExchangeType::IKE_AUTH, message_id, &reply);
        // After the new child's install, so the flow's policies never lapse (the daemon
        // keeps them while any child of the flow is in).
        if initial_contact {
            if let Some(id) = self.remote_id.clone() {
                self.initial_contact(ctx, &id);
            }
        }
    }

    /// The peer says this IKE SA is the only one between us (INITIAL_CONTACT, RFC 7296 2.4,
    /// 3.16), as after a restart: every other IKE SA with the same authenticated identity is
    /// stale, and goes with its children, silently (the peer has no keys to read a Delete).
    fn initial_contact(&mut self, ctx: &mut Ctx<'_>, id: &crate::ike::codec::Identity) {
        for other in ctx.identities.with(&self.peer.name, id) {
            if other == self.id {
                continue;
            }
            if let Some(mut sa) = ctx.take_sa(other) {
                sa.die(ctx, DownReason::PeerRestarted);
                ctx.put_sa(sa);
            }
        }
    }

    /// Responder: chooses the child policy, ESP proposal and narrowed selectors.
    fn answer_child(
        &self,
        ctx: &mut Ctx<'_>,
        inner: &[Payload],
    ) -> Result<(NewChild, Vec<Payload>), Refusal> {
        let all: Vec<usize> = (0..self.peer.children.len()).collect();
        let choice = self.choose_child(inner, &all, false)?;
        let inbound_spi = ctx
            .random_esp_spi()
            .map_err(|e| Refusal::TemporaryFailure(e.to_string()))?;
        Ok((
            choice.new_child(inbound_spi),
            choice.answer(inbound_spi, Vec::new()),
        ))
    }
}
