//! IKE_AUTH (RFC 7296 1.2): prove identities with the PSK (2.15) and create the first
//! child SA, with traffic selector narrowing on the responder (2.9).

use std::net::IpAddr;

use crate::ike::codec::{
    AuthMethod, AuthPayload, Codec, ExchangeType, IdPayload, NotifyPayload, NotifyType, Payload,
    PayloadList, TsPayload,
};
use crate::ike::codec::{SaPayload, TrafficSelector};
use crate::ike::crypto::auth::{psk_auth, verify_psk_auth};
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
    /// Our ID payload and PSK AUTH (RFC 7296 2.15): we sign our own IKE_SA_INIT message, the
    /// peer's nonce and our ID with our SK_p — the mirror of [`IkeSa::verify_peer`].
    pub(super) fn own_auth(&self) -> Option<(IdPayload, AuthPayload)> {
        let k = self.keys.as_ref()?;
        let (algs, keys) = (k.algs, &k.keys);
        let (signed, nonce, sk_p) = match self.role {
            Role::Initiator => (&self.init_request, &self.nr, &keys.sk_pi),
            Role::Responder => (&self.init_response, &self.ni, &keys.sk_pr),
        };
        let id = IdPayload::new(self.peer.local_id.clone());
        let data = psk_auth(
            algs.prf,
            &self.peer.psk,
            signed,
            nonce,
            sk_p,
            &id.get_encoding(),
        )
        .to_vec();
        Some((
            id,
            AuthPayload {
                method: AuthMethod::SHARED_KEY_MIC,
                data,
            },
        ))
    }

    /// Checks the peer's identity against the configuration and its PSK AUTH (RFC 7296
    /// 2.15): the peer signed its own IKE_SA_INIT message, our nonce and its ID with its
    /// SK_p (the initiator's SK_pi, the responder's SK_pr).
    fn verify_peer(&self, id: &IdPayload, auth: &AuthPayload) -> Result<(), Refusal> {
        let Some(k) = self.keys.as_ref() else {
            return Err(Refusal::AuthFailed("IKE SA has no keys".into()));
        };
        let (algs, keys) = (k.algs, &k.keys);
        if self
            .peer
            .remote_id
            .as_ref()
            .is_some_and(|want| *want != id.identity)
        {
            return Err(Refusal::AuthFailed(format!(
                "peer identity {:?} is not the configured {:?}",
                id.identity, self.peer.remote_id
            )));
        }
        let (signed, nonce, sk_p) = match self.role {
            Role::Initiator => (&self.init_response, &self.ni, &keys.sk_pr),
            Role::Responder => (&self.init_request, &self.nr, &keys.sk_pi),
        };
        let ok = auth.method == AuthMethod::SHARED_KEY_MIC
            && verify_psk_auth(
                algs.prf,
                &self.peer.psk,
                signed,
                nonce,
                sk_p,
                &id.get_encoding(),
                &auth.data,
            )
            .is_ok();
        if ok {
            Ok(())
        } else {
            Err(Refusal::AuthFailed(format!(
                "AUTH from {:?} does not verify with the PSK (wrong PSK?)",
                id.identity
            )))
        }
    }

    /// Initiator: IDi, AUTH and the first child's SA and TS, under SK.
    pub(crate) fn start_ike_auth(&mut self, ctx: &mut Ctx<'_>) {
        let Some((idi, auth)) = self.own_auth() else {
            return;
        };
        let mut inner = vec![Payload::IdI(idi)];
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
            inner.push(Payload::Cp(super::config::address_request()));
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
        if let Err(r) = self.verify_peer(idr, auth) {
            self.die(ctx, DownReason::NegotiationFailed(r.into()));
            return;
        }
        let rekey_at = self.establish(ctx.now);
        self.remote_id = Some(idr.identity.clone());
        if self.peer.remote_access.request_address {
            self.virtual_ip = inner.cp().and_then(super::config::replied_address);
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
            {
                let id = idi.identity.clone();
                if let Err(r) = self.select_peer(ctx, &id) {
                    refuse(self, ctx, r);
                    return;
                }
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
        // The AUTH, with the key of the peer entry chosen above.
        if let Err(r) = self.verify_peer(idi, auth) {
            refuse(self, ctx, r);
            return;
        }
        let Some((idr, my_auth)) = self.own_auth() else {
            return;
        };
        let reply = vec![Payload::IdR(idr), Payload::Auth(my_auth)];
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
