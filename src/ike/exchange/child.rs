//! Child SA keys (RFC 7296 2.17) and the install command for the daemon.

use crate::ike::codec::TrafficSelector;
use crate::ike::crypto::ChildKeys;
use crate::ike::endpoint::{ChildId, ChildInstall, Ctx, Output};
use crate::ike::negotiate::EspAlgs;
use crate::ike::policy::Mode;
use crate::ike::sa::{ChildSa, IkeSa};

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
        let (Some(algs), Some(keys)) = (self.algs, self.keys.as_ref()) else {
            return Err("IKE SA has no keys".into());
        };
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
            })));
        self.children.push(ChildSa {
            id,
            policy: c.policy,
            inbound_spi: c.inbound_spi,
            outbound_spi: c.outbound_spi,
            algs: c.algs,
            local_ts: c.local_ts,
            remote_ts: c.remote_ts,
            mode: c.mode,
            created: ctx.now,
            rekeying: false,
        });
        Ok(id)
    }
}
