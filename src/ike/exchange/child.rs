//! Child SA keys (RFC 7296 2.17) and the install command for the daemon.

use crate::ike::codec::{
    NotifyPayload, NotifyType, Payload, PayloadList, Proposal as WireProposal, ProtocolId,
    SaPayload, TrafficSelector, TsPayload,
};
use crate::ike::crypto::ChildKeys;
use crate::ike::endpoint::{ChildId, ChildInstall, Ctx, Output};
use crate::ike::negotiate::{
    accepted, choose, esp_algs, esp_sa_payload, esp_spi, narrow, within, EspAlgs,
};
use crate::ike::policy::Mode;
use crate::ike::refusal::Refusal;
use crate::ike::sa::{ChildSa, ChildState, IkeSa};

/// The negotiated facts of a new child SA.
pub(crate) struct NewChild {
    pub policy: usize,
    pub inbound_spi: u32,
    pub outbound_spi: u32,
    pub algs: EspAlgs,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    pub mode: Mode,
}

impl IkeSa {
    /// Derives the child's keys from SK_d and the exchange's nonces, records the child and
    /// asks the daemon to install it. `we_initiated`: we sent the request of the exchange
    /// that created it (the key order of 2.17 follows the exchange, not the IKE SA).
    /// `pfs`: the exchange's DH shared secret (CREATE_CHILD_SA with PFS); `replaces`: the
    /// child this one rekeys.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_child(
        &mut self,
        ctx: &mut Ctx<'_>,
        c: NewChild,
        we_initiated: bool,
        pfs: Option<&[u8]>,
        ni: &[u8],
        nr: &[u8],
        replaces: Option<ChildId>,
    ) -> Result<ChildId, String> {
        let Some(k) = self.keys.as_ref() else {
            return Err("IKE SA has no keys".into());
        };
        let (algs, keys) = (k.algs, &k.keys);
        let integ_len = c.algs.integ.map_or(0, |i| i.key_len());
        let k = ChildKeys::derive(
            algs.prf,
            &keys.sk_d,
            pfs,
            ni,
            nr,
            c.algs.encr.key_len(),
            integ_len,
        )
        .map_err(|e| format!("child key derivation failed: {e}"))?;
        let (inbound, outbound) = if we_initiated {
            ((k.encr_r, k.integ_r), (k.encr_i, k.integ_i))
        } else {
            ((k.encr_i, k.integ_i), (k.encr_r, k.integ_r))
        };
        // The responder of a child rekey switches outbound traffic to the new SA only when
        // the initiator deletes the old pair (as strongSwan does): until the initiator has
        // processed our response it cannot decrypt the new SA (RFC 7296 2.8).
        let defer_outbound = !we_initiated && replaces.is_some();
        let policy = &self.peer.children[c.policy];
        let id = ctx.next_child_id();
        ctx.out
            .push_back(Output::InstallChild(Box::new(ChildInstall {
                ike: self.id,
                child: id,
                peer: self.peer.name.clone(),
                child_name: policy.name.clone(),
                local: self.local.ip(),
                remote: self.remote.ip(),
                inbound_spi: c.inbound_spi,
                outbound_spi: c.outbound_spi,
                encr: c.algs.encr,
                integ: c.algs.integ,
                esn: c.algs.esn,
                inbound_encr_key: inbound.0,
                inbound_integ_key: inbound.1,
                outbound_encr_key: outbound.0,
                outbound_integ_key: outbound.1,
                local_ts: c.local_ts.clone(),
                remote_ts: c.remote_ts.clone(),
                mode: c.mode,
                lifetime: policy.lifetime,
                lifetime_bytes: policy.lifetime_bytes,
                replay_window: policy.replay_window,
                replaces,
                defer_outbound,
                encap: self.encap(),
            })));
        let child = ChildSa {
            id,
            policy: c.policy,
            inbound_spi: c.inbound_spi,
            outbound_spi: c.outbound_spi,
            algs: c.algs,
            local_ts: c.local_ts,
            remote_ts: c.remote_ts,
            mode: c.mode,
            created: ctx.now,
            state: ChildState::Installed,
            replaces,
            outbound_pending: defer_outbound,
            hard_expired: false,
            local: self.local.ip(),
            remote: self.remote.ip(),
            encap: self.encap(),
        };
        ctx.children.added(self.id, &child);
        self.children.push(child);
        Ok(id)
    }
}

/// The responder's choice for a child SA request, in IKE_AUTH or CREATE_CHILD_SA.
pub(crate) struct ChildChoice {
    pub policy: usize,
    /// The chosen proposal; its SPI is still the peer's (our outbound SPI).
    pub chosen: WireProposal,
    pub algs: EspAlgs,
    pub outbound_spi: u32,
    /// Narrowed selectors (RFC 7296 2.9): TSi is the initiator's side, our remote side.
    pub ts_i: Vec<TrafficSelector>,
    pub ts_r: Vec<TrafficSelector>,
    pub mode: Mode,
}

impl ChildChoice {
    /// The answer's SA, TSi and TSr (and USE_TRANSPORT_MODE), with our inbound SPI; `extra`
    /// (Nr, KEr in CREATE_CHILD_SA) goes after the SA payload.
    pub(crate) fn answer(&self, inbound_spi: u32, extra: Vec<Payload>) -> Vec<Payload> {
        let mut chosen = self.chosen.clone();
        chosen.spi = inbound_spi.to_be_bytes().to_vec();
        let mut p = Vec::new();
        if self.mode == Mode::Transport {
            p.push(Payload::Notify(NotifyPayload::new(
                NotifyType::USE_TRANSPORT_MODE,
                Vec::new(),
            )));
        }
        p.push(Payload::Sa(SaPayload {
            proposals: vec![chosen],
        }));
        p.extend(extra);
        p.push(Payload::TsI(TsPayload::from_selectors(
            self.ts_i.iter().copied(),
        )));
        p.push(Payload::TsR(TsPayload::from_selectors(
            self.ts_r.iter().copied(),
        )));
        p
    }

    pub(crate) fn new_child(&self, inbound_spi: u32) -> NewChild {
        NewChild {
            policy: self.policy,
            inbound_spi,
            outbound_spi: self.outbound_spi,
            algs: self.algs,
            local_ts: self.ts_r.clone(),
            remote_ts: self.ts_i.clone(),
            mode: self.mode,
        }
    }
}

fn selectors(ts: Option<&TsPayload>) -> Vec<TrafficSelector> {
    ts.map(|t| t.ip_selectors().copied().collect())
        .unwrap_or_default()
}

impl IkeSa {
    /// Responder: the first of `candidates` (child policy indexes) whose selectors narrow
    /// the request to something non-empty, and its ESP proposal. `create_child`: DH
    /// transforms take part (CREATE_CHILD_SA; never in IKE_AUTH, RFC 7296 1.2).
    pub(crate) fn choose_child(
        &self,
        inner: &[Payload],
        candidates: &[usize],
        create_child: bool,
    ) -> Result<ChildChoice, Refusal> {
        let sa = inner
            .sa()
            .ok_or_else(|| Refusal::InvalidSyntax("no SA".into()))?;
        let (ts_i, ts_r) = (selectors(inner.ts_i()), selectors(inner.ts_r()));
        // The initiator's TSi is our remote side, its TSr our local side.
        let (policy, narrowed_i, narrowed_r) = candidates
            .iter()
            .find_map(|&i| {
                let p = self.peer.children.get(i)?;
                let (mut ni, nr) = (narrow(&ts_i, &p.remote_ts), narrow(&ts_r, &p.local_ts));
                // A client with a leased address gets exactly it as its side (2.9, 3.15.4).
                let vips = self.virtual_ip_ts();
                if !vips.is_empty() {
                    ni = narrow(&ni, &vips);
                }
                (!ni.is_empty() && !nr.is_empty()).then_some((i, ni, nr))
            })
            .ok_or_else(|| {
                Refusal::TsUnacceptable(format!(
                    "no child policy matches TSi {ts_i:?} TSr {ts_r:?}"
                ))
            })?;
        let p = &self.peer.children[policy];
        let ours = esp_sa_payload(&p.esp, 0, create_child, p.pfs);
        let chosen = choose(sa, &ours, ProtocolId::ESP).ok_or_else(|| {
            Refusal::NoProposalChosen(format!(
                "no acceptable ESP proposal: peer offered {}",
                super::ike_sa_init::describe(sa)
            ))
        })?;
        let algs = esp_algs(&chosen)
            .ok_or_else(|| Refusal::NoProposalChosen("unsupported ESP transforms".into()))?;
        let outbound_spi = esp_spi(&chosen)
            .filter(|s| *s >= 256)
            .ok_or_else(|| Refusal::InvalidSyntax("invalid ESP SPI".into()))?;
        let transport = inner.find_notify(NotifyType::USE_TRANSPORT_MODE).is_some()
            && p.mode == Mode::Transport;
        Ok(ChildChoice {
            policy,
            chosen,
            algs,
            outbound_spi,
            ts_i: narrowed_i,
            ts_r: narrowed_r,
            mode: if transport {
                Mode::Transport
            } else {
                Mode::Tunnel
            },
        })
    }
}

/// What the initiator reads from a child SA answer (IKE_AUTH or CREATE_CHILD_SA).
pub(crate) struct ChildAnswer {
    pub algs: EspAlgs,
    pub outbound_spi: u32,
    pub ts_i: Vec<TrafficSelector>,
    pub ts_r: Vec<TrafficSelector>,
    pub mode: Mode,
}

/// Initiator: the answer must pick one of our proposals (2.7) and narrow within our
/// selectors (2.9).
pub(crate) fn read_child_answer(
    inner: &[Payload],
    offer: &SaPayload,
    our_ts_i: &[TrafficSelector],
    our_ts_r: &[TrafficSelector],
) -> Result<ChildAnswer, String> {
    let sa = inner.sa().ok_or("no SA payload for the child")?;
    let chosen = accepted(sa, offer).ok_or("peer chose an ESP proposal we did not offer")?;
    let algs = esp_algs(&chosen).ok_or("unsupported ESP transforms")?;
    let outbound_spi = esp_spi(&chosen)
        .filter(|s| *s >= 256)
        .ok_or("invalid ESP SPI")?;
    let (ts_i, ts_r) = (selectors(inner.ts_i()), selectors(inner.ts_r()));
    if !within(&ts_i, our_ts_i) || !within(&ts_r, our_ts_r) {
        return Err("peer's traffic selectors are missing or not within ours".into());
    }
    let mode = if inner.find_notify(NotifyType::USE_TRANSPORT_MODE).is_some() {
        Mode::Transport
    } else {
        Mode::Tunnel
    };
    Ok(ChildAnswer {
        algs,
        outbound_spi,
        ts_i,
        ts_r,
        mode,
    })
}
