//! INFORMATIONAL (RFC 7296 1.4, 1.5): deleting the IKE SA or child SAs, and the liveness
//! check (an empty request; 2.4).

use crate::ike::codec::{DeletePayload, ExchangeType, Payload, PayloadList, ProtocolId};
use crate::ike::endpoint::{ChildId, Ctx};
use crate::ike::sa::{Active, ChildState, DownReason, IkeSa, State, Task};

impl IkeSa {
    /// Deletes this IKE SA with the peer (clear crypto session, shutdown). Before the SA is
    /// established there is nobody to tell: it just ends.
    pub(crate) fn request_delete(&mut self, ctx: &mut Ctx<'_>) {
        match self.state {
            State::Established(_) | State::Replaced(_) => self.queue_task(ctx, Task::DeleteIke),
            State::Deleting { .. } | State::Dead => {}
            _ => self.die(ctx, DownReason::LocalDelete),
        }
    }

    /// Deletes child SAs with the peer (the kernel expired them, or an operator asked).
    pub(crate) fn delete_children(&mut self, ctx: &mut Ctx<'_>, ids: Vec<ChildId>) {
        let ids: Vec<ChildId> = ids
            .into_iter()
            .filter(|id| self.children.iter().any(|c| c.id == *id))
            .collect();
        if !ids.is_empty() {
            self.queue_task(ctx, Task::DeleteChildren(ids));
        }
    }

    pub(crate) fn start_delete_ike(&mut self, ctx: &mut Ctx<'_>) {
        self.state = State::Deleting {
            rekeyed_to: self.rekeyed_to(),
        };
        let d = Payload::Delete(DeletePayload {
            protocol: ProtocolId::IKE,
            spis: Vec::new(),
        });
        self.start_request(ctx, ExchangeType::INFORMATIONAL, Active::DeleteIke, vec![d]);
    }

    pub(crate) fn start_delete_children(&mut self, ctx: &mut Ctx<'_>, ids: Vec<ChildId>) {
        // We name our inbound SPIs: the ones the peer sends to (RFC 7296 3.11).
        let spis: Vec<Vec<u8>> = self
            .children
            .iter()
            .filter(|c| ids.contains(&c.id))
            .map(|c| c.inbound_spi.to_be_bytes().to_vec())
            .collect();
        if spis.is_empty() {
            self.run_queue(ctx); // gone meanwhile: on with the next task
            return;
        }
        let d = Payload::Delete(DeletePayload {
            protocol: ProtocolId::ESP,
            spis,
        });
        self.start_request(
            ctx,
            ExchangeType::INFORMATIONAL,
            Active::DeleteChildren(ids),
            vec![d],
        );
    }

    pub(crate) fn start_liveness(&mut self, ctx: &mut Ctx<'_>) {
        self.start_request(
            ctx,
            ExchangeType::INFORMATIONAL,
            Active::Liveness,
            Vec::new(),
        );
    }

    pub(crate) fn handle_delete_ike_response(&mut self, ctx: &mut Ctx<'_>) {
        self.die(ctx, DownReason::LocalDelete);
    }

    pub(crate) fn handle_delete_children_response(&mut self, ctx: &mut Ctx<'_>, ids: &[ChildId]) {
        self.remove_children(ctx, ids);
    }

    fn remove_children(&mut self, ctx: &mut Ctx<'_>, ids: &[ChildId]) {
        let (gone, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.children)
            .into_iter()
            .partition(|c| ids.contains(&c.id));
        self.children = keep;
        for c in &gone {
            // A successor waiting to send: it takes over before its predecessor leaves.
            for n in self.children.iter_mut().filter(|n| {
                n.replaces == Some(c.id) && n.outbound_pending && n.state != ChildState::Redundant
            }) {
                n.outbound_pending = false;
                ctx.out
                    .push_back(crate::ike::endpoint::Output::ActivateOutbound {
                        ike: self.id,
                        child: n.id,
                    });
            }
            ctx.remove_child(self, c);
        }
    }

    /// A request from the peer: Delete of the IKE SA or of children, or a liveness check.
    pub(crate) fn answer_informational(
        &mut self,
        ctx: &mut Ctx<'_>,
        message_id: u32,
        inner: Vec<Payload>,
    ) {
        if inner.deletes().any(|d| d.protocol == ProtocolId::IKE) {
            // The peer moved on to the successor of a crossing rekey (it won, or never saw
            // the collision): that one takes the children before this SA goes (2.8.2).
            let crossing = match self.active() {
                Some(Active::RekeyIke(t)) => t.crossing.as_ref().map(|x| x.sa),
                _ => None,
            };
            if let Some(id) = crossing {
                self.adopt_standby(ctx, id);
            }
            // 1.4.1: answer with an empty INFORMATIONAL, then the SA and its children are gone.
            self.respond_encrypted(ctx, ExchangeType::INFORMATIONAL, message_id, &[]);
            self.die(ctx, DownReason::PeerDelete);
            return;
        }
        // The peer names its inbound SPIs, which are our outbound ones; we answer with the
        // inbound SPIs of the same pairs (1.4.1).
        let theirs: Vec<u32> = inner
            .deletes()
            .filter(|d| d.protocol == ProtocolId::ESP)
            .flat_map(|d| d.spis.iter())
            .filter_map(|s| {
                <[u8; 4]>::try_from(s.as_slice())
                    .ok()
                    .map(u32::from_be_bytes)
            })
            .collect();
        let ids: Vec<ChildId> = self
            .children
            .iter()
            .filter(|c| theirs.contains(&c.outbound_spi))
            .map(|c| c.id)
            .collect();
        let ours: Vec<Vec<u8>> = self
            .children
            .iter()
            .filter(|c| ids.contains(&c.id))
            .map(|c| c.inbound_spi.to_be_bytes().to_vec())
            .collect();
        let reply = if ours.is_empty() {
            Vec::new()
        } else {
            vec![Payload::Delete(DeletePayload {
                protocol: ProtocolId::ESP,
                spis: ours,
            })]
        };
        self.respond_encrypted(ctx, ExchangeType::INFORMATIONAL, message_id, &reply);
        self.remove_children(ctx, &ids);
    }
}
