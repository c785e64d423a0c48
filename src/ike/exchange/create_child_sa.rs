//! CREATE_CHILD_SA (RFC 7296 1.3): new child SAs, child SA rekey (1.3.3, with PFS when
//! configured) and IKE SA rekey (1.3.2, keys per 2.18).
//!
//! Make before break: a rekeyed child's successor is installed before the old pair is
//! deleted, so no packet is dropped; an IKE SA's children move to its successor, and the
//! old IKE SA is deleted without touching them.

use crate::ike::codec::{
    KePayload, NoncePayload, NotifyPayload, NotifyType, Payload, PayloadList, ProtocolId,
    SaPayload, TrafficSelector, TsPayload,
};
use crate::ike::crypto::{DhPrivateKey, IkeKeys, IkeSuite, SharedSecret};
use crate::ike::endpoint::{ChildId, Ctx, Output};
use crate::ike::negotiate::{accepted, choose, dh_group, esp_sa_payload, ike_algs, ike_sa_payload};
use crate::ike::policy::Mode;
use crate::ike::sa::{ChildSa, IkeSa, Purpose, Role, Task};

use super::child::{read_child_answer, NewChild};

/// What the initiator of a child exchange keeps until the response.
pub(crate) struct ChildPending {
    pub policy: usize,
    pub replaces: Option<ChildId>,
    pub inbound_spi: u32,
    pub offer: SaPayload,
    pub ni: Vec<u8>,
    pub dh: Option<DhPrivateKey>,
    pub ts_i: Vec<TrafficSelector>,
    pub ts_r: Vec<TrafficSelector>,
}

/// What the initiator of an IKE SA rekey keeps until the response.
pub(crate) struct IkeRekeyPending {
    pub new_spi: u64,
    pub offer: SaPayload,
    pub ni: Vec<u8>,
    pub dh: DhPrivateKey,
}

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
        let inbound_spi = ctx.random_esp_spi();
        // PFS: the child's `pfs` group, or the first group written in its ESP proposals;
        // the KE is for the first proposal's group (the responder asks for another with
        // INVALID_KE_PAYLOAD).
        let pfs = p
            .pfs
            .or_else(|| p.esp.first().and_then(|e| e.groups.first().copied()));
        let dh = match pfs.map(|g| dh_group(g).generate(ctx.rng)) {
            Some(Ok((k, pubv))) => Some((k, pubv)),
            Some(Err(e)) => {
                ctx.failed(self, &format!("DH key generation failed: {e}"));
                return;
            }
            None => None,
        };
        let ni = ctx.random_bytes(self.nonce_len());
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
            c.rekeying = true;
        }
        self.pending_child = Some(ChildPending {
            policy,
            replaces,
            inbound_spi,
            offer,
            ni,
            dh: dh.map(|d| d.0),
            ts_i,
            ts_r,
        });
        self.start_request(
            ctx,
            crate::ike::codec::ExchangeType::CREATE_CHILD_SA,
            Purpose::CreateChild,
            inner,
        );
    }

    /// Initiator: the response to our child SA request.
    pub(crate) fn handle_create_child_response(&mut self, ctx: &mut Ctx<'_>, inner: Vec<Payload>) {
        let Some(p) = self.pending_child.take() else {
            return;
        };
        let name = self.peer.children[p.policy].name.clone();
        let unmark = |sa: &mut IkeSa| {
            if let Some(c) = sa.children.iter_mut().find(|c| Some(c.id) == p.replaces) {
                c.rekeying = false;
            }
        };
        if let Some(n) = inner.error_notify() {
            unmark(self);
            ctx.failed(
                self,
                &format!(
                    "child SA {name} {}: peer answered {:?}",
                    if p.replaces.is_some() {
                        "rekey"
                    } else {
                        "creation"
                    },
                    n.kind
                ),
            );
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
        match result {
            Ok((child, shared, nr)) => {
                let replaces = p.replaces;
                match self.add_child(
                    ctx,
                    child,
                    true,
                    shared.as_ref().map(|s| s.as_bytes()),
                    &p.ni,
                    &nr,
                    replaces,
                ) {
                    Ok(_) => {
                        if let Some(old) = replaces {
                            // Make before break: the successor is installed, now the old pair goes.
                            self.queue_task(ctx, Task::DeleteChildren(vec![old]));
                        }
                    }
                    Err(e) => {
                        unmark(self);
                        ctx.failed(self, &e);
                    }
                }
            }
            Err(why) => {
                unmark(self);
                ctx.failed(self, &format!("child SA {name}: {why}"));
            }
        }
    }

    /// Starts rekeying this IKE SA (1.3.2): same algorithms are offered as configured, the
    /// current DH group first.
    pub(crate) fn start_rekey_ike(&mut self, ctx: &mut Ctx<'_>) {
        let Some(algs) = self.algs else { return };
        let new_spi = ctx.random_u64();
        let offer = ike_sa_payload(&self.peer.ike_proposals, &new_spi.to_be_bytes());
        let (dh, ke) = match algs.dh.generate(ctx.rng) {
            Ok(x) => x,
            Err(e) => {
                ctx.failed(self, &format!("DH key generation failed: {e}"));
                return;
            }
        };
        let ni = ctx.random_bytes(self.nonce_len());
        let inner = vec![
            Payload::Sa(offer.clone()),
            Payload::Nonce(NoncePayload { data: ni.clone() }),
            Payload::Ke(KePayload {
                group: algs.dh.id(),
                data: ke,
            }),
        ];
        self.pending_ike_rekey = Some(IkeRekeyPending {
            new_spi,
            offer,
            ni,
            dh,
        });
        self.start_request(
            ctx,
            crate::ike::codec::ExchangeType::CREATE_CHILD_SA,
            Purpose::RekeyIke,
            inner,
        );
    }

    pub(crate) fn handle_rekey_ike_response(&mut self, ctx: &mut Ctx<'_>, inner: Vec<Payload>) {
        let Some(p) = self.pending_ike_rekey.take() else {
            return;
        };
        if let Some(n) = inner.error_notify() {
            ctx.failed(self, &format!("IKE SA rekey: peer answered {:?}", n.kind));
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
        match result {
            Ok((peer_spi, algs, shared, nr)) => self.spawn_successor(
                ctx,
                Role::Initiator,
                p.new_spi,
                peer_spi,
                algs,
                &shared,
                p.ni,
                nr,
            ),
            Err(why) => ctx.failed(self, &format!("IKE SA rekey: {why}")),
        }
    }

    /// Builds the new IKE SA after a rekey (2.18), moves the children to it, and retires
    /// this one. `role`: our role in the rekey exchange, which is the new SA's role.
    #[allow(clippy::too_many_arguments)]
    fn spawn_successor(
        &mut self,
        ctx: &mut Ctx<'_>,
        role: Role,
        spi_i: u64,
        spi_r: u64,
        algs: crate::ike::negotiate::IkeAlgs,
        shared: &SharedSecret,
        ni: Vec<u8>,
        nr: Vec<u8>,
    ) {
        let Some(old_keys) = self.keys.as_ref() else {
            return;
        };
        let keys = IkeSuite::new(algs.encr, algs.integ, algs.prf).and_then(|suite| {
            IkeKeys::derive_rekey(old_keys, suite, shared.as_bytes(), &ni, &nr, spi_i, spi_r)
        });
        let keys = match keys {
            Ok(k) => k,
            Err(e) => {
                ctx.failed(self, &format!("IKE SA rekey key derivation failed: {e}"));
                return;
            }
        };
        let Ok((out, inb)) = keys.ciphers(role == Role::Initiator) else {
            return;
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
        new.algs = Some(algs);
        new.keys = Some(keys);
        new.out_cipher = Some(out);
        new.in_cipher = Some(inb);
        new.ni = ni;
        new.nr = nr;
        new.remote_id = self.remote_id.clone();
        // Through the same door as a fresh SA, so the successor rekeys in its turn (issue 9).
        let rekey_at = new.establish(ctx.now);
        new.children = std::mem::take(&mut self.children);
        for c in &mut new.children {
            c.rekeying = false;
        }
        // Child work queued here (a rekey the kernel asked for meanwhile, a delete) belongs
        // to the children and moves with them.
        let (child_tasks, rest): (Vec<Task>, Vec<Task>) = self.queue.drain(..).partition(|t| {
            matches!(
                t,
                Task::RekeyChild(_) | Task::DeleteChildren(_) | Task::CreateChild(_)
            )
        });
        self.queue = rest.into();
        new.queue = child_tasks.into();
        self.rekeyed_to = Some(id);
        ctx.out.push_back(Output::IkeRekeyed {
            old: self.id,
            new: id,
            peer: self.peer.name.clone(),
            children: new.children.iter().map(|c| c.id).collect(),
            rekey_at,
        });
        new.run_queue(ctx);
        ctx.spawned.push(new);
        if role == Role::Initiator {
            // The rekey initiator deletes the old SA (1.3.2); its children have moved.
            self.queue_task(ctx, Task::DeleteIke);
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
        let payloads = reply.unwrap_or_else(|(kind, data, why)| {
            ctx.failed(
                self,
                &format!("CREATE_CHILD_SA refused: {why}; answered {kind:?}"),
            );
            vec![notify(kind, data)]
        });
        self.respond_encrypted(ctx, exchange, message_id, &payloads);
    }

    fn answer_rekey_ike(
        &mut self,
        ctx: &mut Ctx<'_>,
        inner: &[Payload],
    ) -> Result<Vec<Payload>, (NotifyType, Vec<u8>, String)> {
        let no = |why: &str| (NotifyType::NO_PROPOSAL_CHOSEN, Vec::new(), why.to_string());
        if self.pending_ike_rekey.is_some() || self.rekeyed_to.is_some() {
            // Simultaneous rekey (2.8.2): let the peer retry later.
            return Err((
                NotifyType::TEMPORARY_FAILURE,
                Vec::new(),
                "IKE SA rekey already in progress".into(),
            ));
        }
        let sa = inner.sa().ok_or_else(|| no("no SA"))?;
        let ours = ike_sa_payload(&self.peer.ike_proposals, &[]);
        let mut chosen =
            choose(sa, &ours, ProtocolId::IKE).ok_or_else(|| no("no acceptable IKE proposal"))?;
        let algs = ike_algs(&chosen).ok_or_else(|| no("unsupported IKE transforms"))?;
        let peer_spi = <[u8; 8]>::try_from(chosen.spi.as_slice())
            .map(u64::from_be_bytes)
            .map_err(|_| {
                (
                    NotifyType::INVALID_SYNTAX,
                    Vec::new(),
                    "invalid IKE SPI".to_string(),
                )
            })?;
        let ke = inner
            .ke()
            .filter(|k| k.group == algs.dh.id())
            .ok_or_else(|| {
                (
                    NotifyType::INVALID_KE_PAYLOAD,
                    algs.dh.id().0.to_be_bytes().to_vec(),
                    "KE of another group".to_string(),
                )
            })?;
        let (dh, kr) = algs
            .dh
            .generate(ctx.rng)
            .map_err(|e| (NotifyType::TEMPORARY_FAILURE, Vec::new(), e.to_string()))?;
        let shared = dh.agree(&ke.data).map_err(|e| {
            (
                NotifyType::INVALID_SYNTAX,
                Vec::new(),
                format!("invalid KE: {e}"),
            )
        })?;
        let ni = inner
            .nonce()
            .ok_or_else(|| {
                (
                    NotifyType::INVALID_SYNTAX,
                    Vec::new(),
                    "no nonce".to_string(),
                )
            })?
            .data
            .clone();
        let nr = ctx.random_bytes(self.nonce_len());
        let our_spi = ctx.random_u64();
        chosen.spi = our_spi.to_be_bytes().to_vec();
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
        // Keys are derived with this response's nonce; the successor starts now, and the
        // peer deletes this SA once it has the response.
        self.spawn_successor(
            ctx,
            Role::Responder,
            peer_spi,
            our_spi,
            algs,
            &shared,
            ni,
            nr,
        );
        Ok(payloads)
    }

    fn answer_new_child(
        &mut self,
        ctx: &mut Ctx<'_>,
        inner: &[Payload],
    ) -> Result<Vec<Payload>, (NotifyType, Vec<u8>, String)> {
        let fail = |kind: NotifyType, why: String| (kind, Vec::new(), why);
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
                Some(c.ok_or_else(|| {
                    fail(
                        NotifyType::CHILD_SA_NOT_FOUND,
                        format!("REKEY_SA for unknown SPI {spi:08x}"),
                    )
                })?)
            }
            None => None,
        };
        let candidates: Vec<usize> = match &old {
            Some(c) => vec![c.policy],
            None => (0..self.peer.children.len()).collect(),
        };
        let choice = self
            .choose_child(inner, &candidates, true)
            .map_err(|(k, why)| fail(k, why))?;
        let (shared, reply_ke) = match choice.algs.dh {
            Some(g) => {
                let ke = inner.ke().filter(|k| k.group == g.id()).ok_or((
                    NotifyType::INVALID_KE_PAYLOAD,
                    g.id().0.to_be_bytes().to_vec(),
                    "KE of another group".to_string(),
                ))?;
                let (k, pubv) = g
                    .generate(ctx.rng)
                    .map_err(|e| fail(NotifyType::TEMPORARY_FAILURE, e.to_string()))?;
                let s = k
                    .agree(&ke.data)
                    .map_err(|e| fail(NotifyType::INVALID_SYNTAX, format!("invalid KE: {e}")))?;
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
            .ok_or_else(|| fail(NotifyType::INVALID_SYNTAX, "no nonce".into()))?
            .data
            .clone();
        let nr = ctx.random_bytes(self.nonce_len());
        let inbound_spi = ctx.random_esp_spi();
        self.add_child(
            ctx,
            choice.new_child(inbound_spi),
            false,
            shared.as_ref().map(|s| s.as_bytes()),
            &ni,
            &nr,
            old.as_ref().map(|c| c.id),
        )
        .map_err(|e| fail(NotifyType::NO_PROPOSAL_CHOSEN, e))?;
        let mut extra = vec![Payload::Nonce(NoncePayload { data: nr })];
        extra.extend(reply_ke);
        Ok(choice.answer(inbound_spi, extra))
    }
}
