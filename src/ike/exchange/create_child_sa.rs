//! CREATE_CHILD_SA (RFC 7296 1.3): new child SAs, child SA rekey (1.3.3, with PFS when
//! configured) and IKE SA rekey (1.3.2, keys per 2.18).
//!
//! Make before break: a rekeyed child's successor is installed before the old pair is
//! deleted, so no packet is dropped; an IKE SA's children move to its successor, and the
//! old IKE SA is deleted without touching them.
//!
//! Crossing rekeys (both ends rekey the same SA at once, 2.8.1 and 2.8.2): both exchanges
//! complete, and the SA made by the exchange holding the lowest of the four nonces is
//! redundant: the end that started that exchange deletes it. The old SA is deleted by the
//! winner, as after any rekey. Other collisions are refused with TEMPORARY_FAILURE and
//! retried (2.25): a rekey of a child we are closing, a child exchange while we rekey the
//! IKE SA, an IKE SA rekey while one of our child exchanges is in flight (as strongSwan).

use crate::ike::codec::{
    KePayload, NoncePayload, NotifyPayload, NotifyType, Payload, PayloadList, ProtocolId,
    SaPayload, TrafficSelector, TsPayload,
};
use crate::ike::crypto::{DhPrivateKey, IkeKeys, IkeSuite, SharedSecret};
use crate::ike::endpoint::{ChildId, Ctx, IkeSaId, Output};
use crate::ike::negotiate::{accepted, choose, esp_sa_payload, ike_algs, ike_sa_payload};
use crate::ike::policy::Mode;
use crate::ike::sa::{
    half_open_timeout, retry_delay, Active, ChildSa, ChildState, IkeSa, Replaced, Role, SaKeys,
    Standby, State, Task,
};

use super::child::{read_child_answer, NewChild};
use crate::ike::refusal::Refusal;

/// Our CREATE_CHILD_SA for a new child or a child rekey (1.3.1, 1.3.3), in flight: what
/// its response needs.
pub(crate) struct ChildInitiator {
    pub policy: usize,
    pub replaces: Option<ChildId>,
    pub inbound_spi: u32,
    pub offer: SaPayload,
    pub ni: Vec<u8>,
    pub dh: Option<DhPrivateKey>,
    pub ts_i: Vec<TrafficSelector>,
    pub ts_r: Vec<TrafficSelector>,
    /// The peer's rekey of the same child, answered while ours was in flight (2.8.1).
    pub crossing: Option<Crossing<ChildId>>,
}

/// Our CREATE_CHILD_SA rekeying the IKE SA (1.3.2), in flight: what its response needs.
pub(crate) struct IkeRekeyInitiator {
    pub new_spi: u64,
    pub offer: SaPayload,
    pub ni: Vec<u8>,
    pub dh: DhPrivateKey,
    /// The peer's rekey of this IKE SA, answered while ours was in flight (2.8.2): its
    /// successor waits in `State::Standby`.
    pub crossing: Option<Crossing<IkeSaId>>,
}

/// The other exchange of two crossing rekeys: the SA it made, and its nonces.
pub(crate) struct Crossing<Id> {
    pub sa: Id,
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
}

impl ChildInitiator {
    /// The collision step (2.8.1): the peer's rekey of the child we are rekeying was
    /// answered while ours is in flight. Which pair stays is decided with our response.
    fn collide(&mut self, theirs: Crossing<ChildId>) {
        self.crossing = Some(theirs);
    }
}

impl IkeRekeyInitiator {
    /// The collision step (2.8.2): the peer's successor waits in `State::Standby` until
    /// our response decides.
    fn collide(&mut self, theirs: Crossing<IkeSaId>) {
        self.crossing = Some(theirs);
    }
}

impl<Id> Crossing<Id> {
    /// RFC 7296 2.8.1: of two crossing rekeys, the exchange holding the lowest of the four
    /// nonces made the redundant SA. True if that is ours (`ni`, `nr`: our exchange's).
    fn we_lose(&self, ni: &[u8], nr: &[u8]) -> bool {
        ni.min(nr) < self.ni.as_slice().min(self.nr.as_slice())
    }
}

/// How long a replaced IKE SA waits for the peer's Delete before sending its own.
const RETIRE_AFTER: std::time::Duration = std::time::Duration::from_secs(90);

fn notify(kind: NotifyType, data: Vec<u8>) -> Payload {
    Payload::Notify(NotifyPayload::new(kind, data))
}

impl IkeSa {
    /// Starts a child SA for `policy`, replacing `replaces` when this is a rekey.
    pub(crate) fn start_create_child(
        &mut self,
        ctx: &mut Ctx<'_>,
        policy: usize,
        replaces: Option<ChildId>,
    ) {
        let Some(p) = self.peer.children.get(policy).cloned() else {
            return;
        };
        let old = replaces.and_then(|id| self.children.iter().find(|c| c.id == id).cloned());
        if replaces.is_some() && old.is_none() {
            return; // deleted meanwhile: nothing to rekey
        }
        // Without randomness nothing starts (the engine is stopping: Output::Fatal).
        let Ok(inbound_spi) = ctx.random_esp_spi() else {
            return;
        };
        // PFS: the child's `pfs` group, or the first group written in its ESP proposals;
        // the KE is for the first proposal's group (the responder asks for another with
        // INVALID_KE_PAYLOAD).
        let pfs = p
            .pfs
            .or_else(|| p.esp.first().and_then(|e| e.groups.first().copied()));
        let dh = match pfs.map(|g| ctx.generate(g)) {
            Some(Ok((k, pubv))) => Some((k, pubv)),
            Some(Err(e)) => {
                ctx.failed(self, &format!("DH key generation failed: {e}"));
                return;
            }
            None => None,
        };
        let Ok(ni) = ctx.random_bytes(self.nonce_len()) else {
            return;
        };
        let offer = esp_sa_payload(&p.esp, inbound_spi, true, p.pfs);
        let (ts_i, ts_r) = match &old {
            Some(c) => (c.local_ts.clone(), c.remote_ts.clone()),
            None => (p.local_ts.clone(), p.remote_ts.clone()),
        };
        let mut inner = Vec::new();
        if let Some(c) = &old {
            // The SPI of the SA being rekeyed, as we receive on it (1.3.3).
            inner.push(Payload::Notify(NotifyPayload {
                protocol: ProtocolId::ESP,
                spi: c.inbound_spi.to_be_bytes().to_vec(),
                kind: NotifyType::REKEY_SA,
                data: Vec::new(),
            }));
        }
        if p.mode == Mode::Transport {
            inner.push(notify(NotifyType::USE_TRANSPORT_MODE, Vec::new()));
        }
        inner.push(Payload::Sa(offer.clone()));
        inner.push(Payload::Nonce(NoncePayload { data: ni.clone() }));
        if let Some((k, pubv)) = &dh {
            inner.push(Payload::Ke(KePayload {
                group: k.group().id(),
                data: pubv.clone(),
            }));
        }
        inner.push(Payload::TsI(TsPayload::from_selectors(
            ts_i.iter().copied(),
        )));
        inner.push(Payload::TsR(TsPayload::from_selectors(
            ts_r.iter().copied(),
        )));
        if let Some(c) = self.children.iter_mut().find(|c| Some(c.id) == replaces) {
            c.state = ChildState::Rekeying;
        }
        let task = Active::CreateChild(ChildInitiator {
            policy,
            replaces,
            inbound_spi,
            offer,
            ni,
            dh: dh.map(|d| d.0),
            ts_i,
            ts_r,
            crossing: None,
        });
        self.start_request(
            ctx,
            crate::ike::codec::ExchangeType::CREATE_CHILD_SA,
            task,
            inner,
        );
    }

    /// Initiator: the response to our child SA request.
    pub(crate) fn handle_create_child_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        p: ChildInitiator,
        inner: Vec<Payload>,
    ) {
        let name = self.peer.children[p.policy].name.clone();
        // Our rekey did not happen. The old pair stays in service, unless the peer's
        // crossing rekey replaced it (that one is the only successor now).
        let unmark = |sa: &mut IkeSa| {
            let state = match &p.crossing {
                Some(x) if sa.children.iter().any(|c| c.id == x.sa) => ChildState::Rekeyed,
                _ => ChildState::Installed,
            };
            if let Some(c) = sa.children.iter_mut().find(|c| Some(c.id) == p.replaces) {
                c.state = state;
            }
        };
        if let Some(n) = inner.error_notify() {
            unmark(self);
            if p.crossing.is_some() {
                return; // the peer refused ours but its own went through: resolved
            }
            let mut text = format!(
                "child SA {name} {}: peer answered {:?}",
                if p.replaces.is_some() {
                    "rekey"
                } else {
                    "creation"
                },
                n.kind
            );
            if n.kind == NotifyType::TEMPORARY_FAILURE {
                let task = match p.replaces {
                    Some(old) => Task::RekeyChild(old),
                    None => Task::CreateChild(p.policy),
                };
                let delay = retry_delay(ctx);
                self.delayed.push((ctx.now + delay, task));
                text += &format!("; trying again in {} s", delay.as_secs());
            }
            ctx.failed(self, &text);
            return;
        }
        let result = (|| -> Result<(NewChild, Option<SharedSecret>, Vec<u8>), String> {
            let a = read_child_answer(&inner, &p.offer, &p.ts_i, &p.ts_r)?;
            let nr = inner.nonce().ok_or("no nonce")?.data.clone();
            let shared = match (&p.dh, a.algs.dh) {
                (Some(k), Some(g)) if g == k.group() => {
                    let ke = inner
                        .ke()
                        .filter(|ke| ke.group == g.id())
                        .ok_or("no KE of the chosen group")?;
                    Some(k.agree(&ke.data).map_err(|e| format!("invalid KE: {e}"))?)
                }
                (None, None) => None,
                _ => return Err("PFS group mismatch".into()),
            };
            let child = NewChild {
                policy: p.policy,
                inbound_spi: p.inbound_spi,
                outbound_spi: a.outbound_spi,
                algs: a.algs,
                local_ts: a.ts_i,
                remote_ts: a.ts_r,
                mode: a.mode,
            };
            Ok((child, shared, nr))
        })();
        let (child, shared, nr) = match result {
            Ok(x) => x,
            Err(why) => {
                unmark(self);
                ctx.failed(self, &format!("child SA {name}: {why}"));
                return;
            }
        };
        let replaces = p.replaces;
        let pfs = shared.as_ref().map(|s| s.as_bytes());
        let new = match self.add_child(ctx, child, true, pfs, &p.ni, &nr, replaces) {
            Ok(id) => id,
            Err(e) => {
                unmark(self);
                ctx.failed(self, &e);
                return;
            }
        };
        let Some(old) = replaces else { return };
        // The peer's crossing rekey, if it is still there: one of the two new pairs goes.
        let theirs = p
            .crossing
            .as_ref()
            .filter(|x| self.children.iter().any(|c| c.id == x.sa));
        // Make before break: the successor is installed, now the old pair goes. When our
        // new pair lost, it goes instead, and the peer deletes the old one.
        let (redundant, delete) = match theirs {
            Some(x) if x.we_lose(&p.ni, &nr) => (Some(new), new),
            Some(x) => (Some(x.sa), old),
            None => (None, old),
        };
        for c in &mut self.children {
            if c.id == old {
                c.state = ChildState::Rekeyed;
            } else if Some(c.id) == redundant {
                c.state = ChildState::Redundant;
            }
        }
        if self.children.iter().any(|c| c.id == delete) {
            self.queue_task(ctx, Task::DeleteChildren(vec![delete]));
        }
    }

    /// Starts rekeying this IKE SA (1.3.2): same algorithms are offered as configured, the
    /// current DH group first.
    pub(crate) fn start_rekey_ike(&mut self, ctx: &mut Ctx<'_>) {
        let Some(algs) = self
            .keys
            .as_ref()
            .map(|k| k.algs)
            .filter(|_| self.rekeyed_to().is_none())
        else {
            // Already replaced (we answered the peer's rekey): nothing left to rekey.
            self.run_queue(ctx);
            return;
        };
        let Ok(new_spi) = ctx.fresh_ike_spi() else {
            return;
        };
        let offer = ike_sa_payload(&self.peer.ike_proposals, &new_spi.to_be_bytes());
        let (dh, ke) = match ctx.generate(algs.dh) {
            Ok(x) => x,
            Err(e) => {
                ctx.failed(self, &format!("DH key generation failed: {e}"));
                return;
            }
        };
        let Ok(ni) = ctx.random_bytes(self.nonce_len()) else {
            return;
        };
        let inner = vec![
            Payload::Sa(offer.clone()),
            Payload::Nonce(NoncePayload { data: ni.clone() }),
            Payload::Ke(KePayload {
                group: algs.dh.id(),
                data: ke,
            }),
        ];
        let task = Active::RekeyIke(IkeRekeyInitiator {
            new_spi,
            offer,
            ni,
            dh,
            crossing: None,
        });
        self.start_request(
            ctx,
            crate::ike::codec::ExchangeType::CREATE_CHILD_SA,
            task,
            inner,
        );
    }

    pub(crate) fn handle_rekey_ike_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        p: IkeRekeyInitiator,
        inner: Vec<Payload>,
    ) {
        if let Some(n) = inner.error_notify() {
            // The peer refused ours, but its crossing rekey went through: that one stays.
            if p.crossing.is_some_and(|x| self.adopt_standby(ctx, x.sa)) {
                return;
            }
            let mut text = format!("IKE SA rekey: peer answered {:?}", n.kind);
            if n.kind == NotifyType::TEMPORARY_FAILURE && self.rekeyed_to().is_none() {
                let delay = retry_delay(ctx);
                if let Some(l) = self.life_mut() {
                    l.rekey_at = Some(ctx.now + delay);
                    text += &format!("; trying again in {} s", delay.as_secs());
                }
            }
            ctx.failed(self, &text);
            return;
        }
        let result =
            (|| -> Result<(u64, crate::ike::negotiate::IkeAlgs, SharedSecret, Vec<u8>), String> {
                let sa = inner.sa().ok_or("no SA payload")?;
                let chosen =
                    accepted(sa, &p.offer).ok_or("peer chose an IKE proposal we did not offer")?;
                let algs = ike_algs(&chosen).ok_or("unsupported IKE transforms")?;
                let peer_spi = <[u8; 8]>::try_from(chosen.spi.as_slice())
                    .map(u64::from_be_bytes)
                    .map_err(|_| "invalid IKE SPI")?;
                let ke = inner
                    .ke()
                    .filter(|k| k.group == algs.dh.id() && algs.dh == p.dh.group())
                    .ok_or("no KE of the chosen group")?;
                let shared =
                    p.dh.agree(&ke.data)
                        .map_err(|e| format!("invalid KE: {e}"))?;
                let nr = inner.nonce().ok_or("no nonce")?.data.clone();
                Ok((peer_spi, algs, shared, nr))
            })();
        let (peer_spi, algs, shared, nr) = match result {
            Ok(x) => x,
            Err(why) => {
                ctx.failed(self, &format!("IKE SA rekey: {why}"));
                return;
            }
        };
        let Some(mut new) = self.build_successor(
            ctx,
            Role::Initiator,
            p.new_spi,
            peer_spi,
            algs,
            &shared,
            p.ni.clone(),
            nr.clone(),
        ) else {
            return;
        };
        // Crossing rekeys (2.8.2): if ours holds the lowest nonce, the peer's successor takes
        // the children. It may have already, when the peer used it or deleted this SA.
        let lost = self.rekeyed_to().is_some()
            || p.crossing
                .as_ref()
                .is_some_and(|x| x.we_lose(&p.ni, &nr) && self.adopt_standby(ctx, x.sa));
        if lost {
            // We made the redundant one, so we delete it; the winner deletes this SA.
            new.start_delete_ike(ctx);
            ctx.spawned.push(new);
            return;
        }
        if let Some(x) = &p.crossing {
            // The peer's successor lost: it waits for the peer's Delete.
            if let Some(mut theirs) = ctx.take_sa(x.sa) {
                if let State::Standby(s) = &mut theirs.state {
                    s.of = None;
                }
                ctx.put_sa(theirs);
            }
        }
        self.hand_over(ctx, &mut new);
        ctx.spawned.push(new);
        // The rekey initiator deletes the old SA (1.3.2); its children have moved.
        self.queue_task(ctx, Task::DeleteIke);
    }

    /// Builds the new IKE SA of a rekey (keys per 2.18), not yet in service: `hand_over`
    /// puts it there. `role`: our role in the rekey exchange, which is the new SA's role.
    #[allow(clippy::too_many_arguments)]
    fn build_successor(
        &self,
        ctx: &mut Ctx<'_>,
        role: Role,
        spi_i: u64,
        spi_r: u64,
        algs: crate::ike::negotiate::IkeAlgs,
        shared: &SharedSecret,
        ni: Vec<u8>,
        nr: Vec<u8>,
    ) -> Option<IkeSa> {
        let old_keys = &self.keys.as_ref()?.keys;
        let made = IkeSuite::new(algs.encr, algs.integ, algs.prf)
            .and_then(|suite| {
                IkeKeys::derive_rekey(old_keys, suite, shared.as_bytes(), &ni, &nr, spi_i, spi_r)
            })
            .and_then(|k| SaKeys::new(algs, k, role));
        let keys = match made {
            Ok(x) => x,
            Err(e) => {
                ctx.failed(self, &format!("IKE SA rekey key derivation failed: {e}"));
                return None;
            }
        };
        let id = if role == Role::Initiator {
            spi_i
        } else {
            spi_r
        };
        let mut new = IkeSa::new(
            id,
            role,
            spi_i,
            spi_r,
            self.local,
            self.remote,
            self.peer.clone(),
            ctx.now,
        );
        new.keys = Some(keys);
        new.ni = ni;
        new.nr = nr;
        new.remote_id = self.remote_id.clone();
        new.nat = self.nat;
        // RFC 7383 2.3 negotiates fragmentation in IKE_SA_INIT only: the successor keeps it.
        new.frag.on = self.frag.on;
        // Unannounced until it takes over: a collision's loser ends without an IkeDown.
        new.silent = true;
        Some(new)
    }

    /// Puts `new` in service in place of this IKE SA: it becomes established (and so
    /// schedules its own rekey), takes the children and their queued work, and the daemon
    /// hears of it. This SA then only waits for its Delete.
    pub(crate) fn hand_over(&mut self, ctx: &mut Ctx<'_>, new: &mut IkeSa) {
        // Through the same door as a fresh SA, so the successor rekeys in its turn (issue 9).
        let rekey_at = new.establish(ctx.now);
        new.silent = false;
        // The peer's address lease goes with the IKE SA (3.15.4): the successor is the session.
        ctx.pools.transfer(self.id, new.id);
        new.virtual_ip = self.virtual_ip;
        new.virtual_ip6 = self.virtual_ip6;
        // The session's end is the session's, not the SA's (RFC 2865 5.27).
        new.session_deadline = self.session_deadline;
        new.children = std::mem::take(&mut self.children);
        for c in &mut new.children {
            ctx.children.moved(c.id, new.id);
            if c.state == ChildState::Rekeying {
                c.state = ChildState::Installed;
            }
        }
        // Child work queued here (a rekey the kernel asked for meanwhile, a delete, a retry)
        // belongs to the children and moves with them.
        let (child_tasks, rest): (Vec<Task>, Vec<Task>) = self.queue.drain(..).partition(|t| {
            matches!(
                t,
                Task::RekeyChild(_) | Task::DeleteChildren(_) | Task::CreateChild(_)
            )
        });
        self.queue = rest.into();
        new.queue.extend(child_tasks);
        new.delayed.append(&mut self.delayed);
        // Should the peer never delete this SA, we do (strongSwan waits 90 s too).
        self.state = match self.state {
            State::Established(l) => State::Replaced(Replaced {
                by: new.id,
                retire_at: Some(ctx.now + RETIRE_AFTER),
                expires_at: l.expires_at,
            }),
            // Our Delete of it is out already: it ends as Rekeyed.
            State::Deleting { .. } => State::Deleting {
                rekeyed_to: Some(new.id),
            },
            _ => State::Replaced(Replaced {
                by: new.id,
                retire_at: Some(ctx.now + RETIRE_AFTER),
                expires_at: ctx.now + RETIRE_AFTER,
            }),
        };
        ctx.out.push_back(Output::IkeRekeyed {
            old: self.id,
            new: new.id,
            peer: self.peer.name.clone(),
            children: new.children.iter().map(|c| c.id).collect(),
            rekey_at,
        });
        new.run_queue(ctx);
    }

    /// Hands over to the standby successor `id` of a crossing rekey; false if it is gone
    /// or not ours.
    pub(crate) fn adopt_standby(&mut self, ctx: &mut Ctx<'_>, id: IkeSaId) -> bool {
        let Some(mut new) = ctx.take_sa(id) else {
            return false;
        };
        let ours = matches!(&new.state, State::Standby(s) if s.of == Some(self.id));
        if ours {
            self.hand_over(ctx, &mut new);
        }
        ctx.put_sa(new);
        ours
    }

    /// A standby successor the peer has started using: the peer won the collision (or never
    /// saw one), so this one takes over from the old SA at once.
    pub(crate) fn take_over(&mut self, ctx: &mut Ctx<'_>) {
        let State::Standby(Standby { of: Some(old), .. }) = self.state else {
            return;
        };
        if let Some(mut o) = ctx.take_sa(old) {
            if !o.is_dead() && o.rekeyed_to().is_none() {
                o.hand_over(ctx, self);
            }
            ctx.put_sa(o);
        }
    }

    /// Responder: a CREATE_CHILD_SA request (new child, child rekey, or IKE SA rekey).
    pub(crate) fn answer_create_child_sa(
        &mut self,
        ctx: &mut Ctx<'_>,
        message_id: u32,
        inner: Vec<Payload>,
    ) {
        let exchange = crate::ike::codec::ExchangeType::CREATE_CHILD_SA;
        let Some(sa) = inner.sa() else {
            self.respond_encrypted(
                ctx,
                exchange,
                message_id,
                &[notify(NotifyType::INVALID_SYNTAX, Vec::new())],
            );
            return;
        };
        let reply = if sa
            .proposals
            .first()
            .is_some_and(|p| p.protocol == ProtocolId::IKE)
        {
            self.answer_rekey_ike(ctx, &inner)
        } else {
            self.answer_new_child(ctx, &inner)
        };
        let payloads = reply.unwrap_or_else(|r| {
            ctx.failed(
                self,
                &format!("CREATE_CHILD_SA refused: {r}; answered {:?}", r.notify()),
            );
            vec![notify(r.notify(), r.notify_data())]
        });
        self.respond_encrypted(ctx, exchange, message_id, &payloads);
    }

    fn answer_rekey_ike(
        &mut self,
        ctx: &mut Ctx<'_>,
        inner: &[Payload],
    ) -> Result<Vec<Payload>, Refusal> {
        let no = |why: &str| Refusal::NoProposalChosen(why.into());
        let busy = |why: &str| Refusal::TemporaryFailure(why.into());
        if self.rekeyed_to().is_some() {
            return Err(busy("IKE SA already rekeyed"));
        }
        if matches!(self.active(), Some(Active::RekeyIke(t)) if t.crossing.is_some()) {
            return Err(busy("a second IKE SA rekey during a collision"));
        }
        // Children must not move while one of our exchanges about them is in flight (its
        // answer would land on the old SA); strongSwan refuses the same way.
        if matches!(
            self.active(),
            Some(Active::CreateChild(_) | Active::DeleteChildren(_))
        ) {
            return Err(busy("a child SA exchange of ours is in flight"));
        }
        let sa = inner.sa().ok_or_else(|| no("no SA"))?;
        let ours = ike_sa_payload(&self.peer.ike_proposals, &[]);
        let mut chosen =
            choose(sa, &ours, ProtocolId::IKE).ok_or_else(|| no("no acceptable IKE proposal"))?;
        let algs = ike_algs(&chosen).ok_or_else(|| no("unsupported IKE transforms"))?;
        let peer_spi = <[u8; 8]>::try_from(chosen.spi.as_slice())
            .map(u64::from_be_bytes)
            .map_err(|_| Refusal::InvalidSyntax("invalid IKE SPI".into()))?;
        let ke = inner
            .ke()
            .filter(|k| k.group == algs.dh.id())
            .ok_or(Refusal::InvalidKe { wanted: algs.dh })?;
        let (dh, kr) = ctx
            .generate(algs.dh)
            .map_err(|e| Refusal::TemporaryFailure(e.to_string()))?;
        let shared = dh
            .agree(&ke.data)
            .map_err(|e| Refusal::InvalidSyntax(format!("invalid KE: {e}")))?;
        let ni = inner
            .nonce()
            .ok_or_else(|| Refusal::InvalidSyntax("no nonce".into()))?
            .data
            .clone();
        let busy = |e: crate::ike::endpoint::Fatal| Refusal::TemporaryFailure(e.to_string());
        let nr = ctx.random_bytes(self.nonce_len()).map_err(busy)?;
        let our_spi = ctx.fresh_ike_spi().map_err(busy)?;
        chosen.spi = our_spi.to_be_bytes().to_vec();
        // Keys are derived with this response's nonce; the successor starts now, and the
        // peer deletes this SA once it has the response.
        let mut new = self
            .build_successor(
                ctx,
                Role::Responder,
                peer_spi,
                our_spi,
                algs,
                &shared,
                ni.clone(),
                nr.clone(),
            )
            .ok_or_else(|| no("key derivation failed"))?;
        let payloads = vec![
            Payload::Sa(SaPayload {
                proposals: vec![chosen],
            }),
            Payload::Nonce(NoncePayload { data: nr.clone() }),
            Payload::Ke(KePayload {
                group: algs.dh.id(),
                data: kr,
            }),
        ];
        let (of, until) = (self.id, ctx.now + half_open_timeout(&self.peer));
        match self.active_mut() {
            // Crossing rekeys (2.8.2): which successor stays is decided once our own
            // request is answered; until then the peer's waits, reachable by its SPIs.
            Some(Active::RekeyIke(t)) => {
                new.state = State::Standby(Standby {
                    of: Some(of),
                    until,
                });
                t.collide(Crossing { sa: new.id, ni, nr });
            }
            _ => self.hand_over(ctx, &mut new),
        }
        ctx.spawned.push(new);
        Ok(payloads)
    }

    /// A Delete for `id` is queued or in flight.
    fn deleting_child(&self, id: ChildId) -> bool {
        let named = |ids: &Vec<ChildId>| ids.contains(&id);
        matches!(self.active(), Some(Active::DeleteChildren(ids)) if named(ids))
            || self
                .queue
                .iter()
                .any(|t| matches!(t, Task::DeleteChildren(ids) if named(ids)))
    }

    fn answer_new_child(
        &mut self,
        ctx: &mut Ctx<'_>,
        inner: &[Payload],
    ) -> Result<Vec<Payload>, Refusal> {
        let busy = |why: &str| Refusal::TemporaryFailure(why.into());
        // Children are about to move to a new IKE SA (2.25.2), or have moved.
        if matches!(self.active(), Some(Active::RekeyIke(_))) {
            return Err(busy("we are rekeying the IKE SA"));
        }
        if self.rekeyed_to().is_some() {
            return Err(busy("the IKE SA is rekeyed"));
        }
        // REKEY_SA names the SA the peer receives on: our outbound SPI (1.3.3).
        let old: Option<ChildSa> = match inner.find_notify(NotifyType::REKEY_SA) {
            Some(n) => {
                let spi = <[u8; 4]>::try_from(n.spi.as_slice())
                    .map(u32::from_be_bytes)
                    .unwrap_or(0);
                let c = self
                    .children
                    .iter()
                    .find(|c| c.outbound_spi == spi)
                    .cloned();
                Some(c.ok_or(Refusal::ChildSaNotFound(spi))?)
            }
            None => None,
        };
        // Crossing rekeys of this child (2.8.1): answer as usual, decide with our response.
        let crossing = old.as_ref().is_some_and(|c| {
            c.state == ChildState::Rekeying
                && matches!(self.active(),
                    Some(Active::CreateChild(p)) if p.replaces == Some(c.id) && p.crossing.is_none())
        });
        if let Some(c) = &old {
            let fresh = c.state == ChildState::Installed && !self.deleting_child(c.id);
            if !fresh && !crossing {
                // Being closed, or already replaced by one of us (2.25).
                return Err(busy("that child SA is being rekeyed or deleted"));
            }
        }
        let candidates: Vec<usize> = match &old {
            Some(c) => vec![c.policy],
            None => (0..self.peer.children.len()).collect(),
        };
        let choice = self.choose_child(inner, &candidates, true)?;
        let (shared, reply_ke) = match choice.algs.dh {
            Some(g) => {
                let ke = inner
                    .ke()
                    .filter(|k| k.group == g.id())
                    .ok_or(Refusal::InvalidKe { wanted: g })?;
                let (k, pubv) = ctx
                    .generate(g)
                    .map_err(|e| Refusal::TemporaryFailure(e.to_string()))?;
                let s = k
                    .agree(&ke.data)
                    .map_err(|e| Refusal::InvalidSyntax(format!("invalid KE: {e}")))?;
                (
                    Some(s),
                    Some(Payload::Ke(KePayload {
                        group: g.id(),
                        data: pubv,
                    })),
                )
            }
            None => (None, None),
        };
        let ni = inner
            .nonce()
            .ok_or_else(|| Refusal::InvalidSyntax("no nonce".into()))?
            .data
            .clone();
        let busy = |e: crate::ike::endpoint::Fatal| Refusal::TemporaryFailure(e.to_string());
        let nr = ctx.random_bytes(self.nonce_len()).map_err(busy)?;
        let inbound_spi = ctx.random_esp_spi().map_err(busy)?;
        let id = self
            .add_child(
                ctx,
                choice.new_child(inbound_spi),
                false,
                shared.as_ref().map(|s| s.as_bytes()),
                &ni,
                &nr,
                old.as_ref().map(|c| c.id),
            )
            .map_err(Refusal::NoProposalChosen)?;
        if let Some(c) = &old {
            if crossing {
                if let Some(Active::CreateChild(p)) = self.active_mut() {
                    p.collide(Crossing {
                        sa: id,
                        ni,
                        nr: nr.clone(),
                    });
                }
            } else if let Some(c) = self.children.iter_mut().find(|x| x.id == c.id) {
                // Replaced by the peer's rekey: it waits for the peer's Delete.
                c.state = ChildState::Rekeyed;
            }
        }
        let mut extra = vec![Payload::Nonce(NoncePayload { data: nr })];
        extra.extend(reply_ke);
        Ok(choice.answer(inbound_spi, extra))
    }
}
