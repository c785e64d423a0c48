//! The exchanges of RFC 7296, one file each, as `impl IkeSa` blocks:
//! `ike_sa_init.rs` (1.2, keys), `ike_auth.rs` (1.2, PSK 2.15, first child SA),
//! `create_child_sa.rs` (1.3: new child, child rekey, IKE SA rekey, and the collision step of
//! crossing rekeys, 2.8.1/2.8.2), `child.rs` (child SA keys and install, 2.17),
//! `informational.rs` (1.4 delete, 1.4 liveness), `config.rs` (a responder's peer chosen by
//! IDi, the configuration payload and address leases, 3.15).
//!
//! Each file holds its initiator task (`Initiator`, `ChildInitiator`, `IkeRekeyInitiator`:
//! what the request's response needs, owned by the SA's initiating window as
//! [`Active`](super::sa::Active)), the `start_*` that builds and sends it, the
//! `handle_*_response` that consumes it, and the responder's `answer_*`.
//! This file routes a received message to them after the message-ID checks of 2.3: a
//! response to the task in the window, a request to the responder side.

mod child;
pub(crate) mod config;
pub(crate) mod create_child_sa;
pub(crate) mod eap;
pub(crate) mod ike_auth;
pub(crate) mod ike_sa_init;
mod informational;

use std::net::SocketAddr;

use super::codec::{
    check_critical, decode_chain, ExchangeType, Header, Message, NotifyPayload, NotifyType,
    Payload, PayloadList, ProtocolId,
};
use super::crypto::cipher::OpenError;
use super::endpoint::{ChildMoved, Ctx, Output};
use super::fragment::Added;
use super::sa::send_to;
use super::sa::{Active, IkeSa, State, Task};

impl IkeSa {
    /// One received datagram for this SA (routing by SPI and address is done).
    pub(crate) fn handle_message(
        &mut self,
        ctx: &mut Ctx<'_>,
        header: Header,
        data: &[u8],
        local: SocketAddr,
        remote: SocketAddr,
    ) {
        if header.flags.response {
            self.handle_response(ctx, header, data, local, remote);
        } else {
            self.handle_request(ctx, header, data, local, remote);
        }
        self.run_queue(ctx);
    }

    /// After a message authenticated (it decrypted and verified) and is new (in the
    /// window): with NAT-T in use, its addresses are the ones to talk to from now on
    /// (RFC 7296 2.23): the initiator's float to the NAT-T port as well as a NAT's rebind.
    /// Children follow: the kernel's outbound SA takes the new port, or (the peer's address
    /// changed, which the kernel cannot update in place) the child is rekeyed.
    pub(crate) fn follow(&mut self, ctx: &mut Ctx<'_>, local: SocketAddr, remote: SocketAddr) {
        let moved = local != self.local || remote != self.remote;
        if !moved || !(self.nat.in_use() || self.floated_without_nat(local, remote)) {
            return;
        }
        let from = self.remote;
        self.local = local;
        self.remote = remote;
        // Before IKE_AUTH completes there is nothing to move but the SA itself.
        let (true, Some(encap)) = (self.is_established(), self.encap()) else {
            return;
        };
        let mut moved = Vec::new();
        let mut rekey = Vec::new();
        for c in &mut self.children {
            if c.remote == remote.ip() && c.local == local.ip() {
                c.encap = Some(encap);
                moved.push(ChildMoved {
                    child: c.id,
                    outbound_spi: c.outbound_spi,
                    local: c.local,
                    remote: c.remote,
                    encap,
                });
            } else {
                rekey.push(c.id);
            }
        }
        ctx.out.push_back(Output::PeerMoved {
            ike: self.id,
            peer: self.peer.name.clone(),
            local,
            from,
            to: remote,
            children: moved,
        });
        for id in rekey {
            self.queue_task(ctx, Task::RekeyChild(id));
        }
    }

    /// The initiator moved to our NAT-T port with no NAT between us: same addresses, new
    /// ports. RFC 7296 2.23 lets an initiator use 4500 regardless of NAT (strongSwan does),
    /// and 2.11 wants each response sent where its request came from.
    fn floated_without_nat(&self, local: SocketAddr, remote: SocketAddr) -> bool {
        self.role == super::sa::Role::Responder
            && local.ip() == self.local.ip()
            && remote.ip() == self.remote.ip()
            && local.port() == self.peer.nat.local_port
            && local.port() != self.local.port()
    }

    /// Opens a protected message: an SK payload at once, an SKF payload (RFC 7383 2.6) into
    /// the reassembly of its direction after its own ICV verified. `Ok(None)`: a fragment
    /// was kept or dropped (and counted), and there is nothing to act on yet.
    fn open_protected(
        &mut self,
        ctx: &mut Ctx<'_>,
        data: &[u8],
        msg: &Message,
        response: bool,
    ) -> Result<Option<Vec<Payload>>, OpenError> {
        let Some(skf) = msg.payloads.skf() else {
            return self.open(data, msg).map(Some);
        };
        if !self.frag.on {
            // Not negotiated (2.3): a peer that sends them anyway is not followed.
            ctx.frag_stats.dropped_invalid += 1;
            return Ok(None);
        }
        let Some(keys) = &self.keys else {
            return Err(OpenError::NotEncrypted);
        };
        let plain = match keys.inb.open_fragment(data, skf) {
            Ok(p) => p,
            Err(e) => {
                ctx.frag_stats.dropped_icv += 1;
                return Err(e.into());
            }
        };
        let set = if response {
            &mut self.frag.responses
        } else {
            &mut self.frag.requests
        };
        match set.add(ctx.now, msg.header.message_id, skf, plain, ctx.frag_stats) {
            Added::Pending => Ok(None),
            Added::Complete(first, bytes) => Ok(Some(decode_chain(first, &bytes)?)),
        }
    }

    fn handle_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        header: Header,
        data: &[u8],
        local: SocketAddr,
        remote: SocketAddr,
    ) {
        let Some(o) = &self.outstanding else {
            return; // late or duplicate response: nothing waits for it
        };
        if header.message_id != o.message_id || header.exchange != o.exchange {
            return;
        }
        let msg = match Message::decode(data) {
            Ok(m) => m,
            Err(e) => {
                ctx.failed(
                    self,
                    &format!("dropped malformed {:?} response: {e}", header.exchange),
                );
                return;
            }
        };
        if matches!(o.task, Active::IkeSaInit(_)) {
            let Some(Active::IkeSaInit(task)) = self.outstanding.take().map(|o| o.task) else {
                return;
            };
            self.last_heard = ctx.now;
            self.handle_ike_sa_init_response(ctx, task, header, msg, data);
            return;
        }
        // Only a response that decrypts and verifies counts (RFC 7296 2.21.2): anything
        // else is dropped and the request keeps being retransmitted.
        let inner = match self.open_protected(ctx, data, &msg, true) {
            Ok(Some(p)) => p,
            Ok(None) => return, // a fragment kept (or dropped): the rest is to come
            Err(OpenError::Decode(e)) => {
                ctx.failed(
                    self,
                    &format!(
                        "authenticated {:?} response has a malformed payload: {e}",
                        header.exchange
                    ),
                );
                return;
            }
            Err(_) => return,
        };
        // The response goes to the task that sent the request, which leaves the window.
        let Some(o) = self.outstanding.take() else {
            return;
        };
        self.last_heard = ctx.now;
        if self.nat.remote {
            self.follow(ctx, local, remote);
        }
        match o.task {
            Active::IkeSaInit(_) => {}
            Active::IkeAuth(t) => self.handle_ike_auth_response(ctx, t, inner),
            Active::DeleteIke => self.handle_delete_ike_response(ctx),
            Active::DeleteChildren(ids) => self.handle_delete_children_response(ctx, &ids),
            // Liveness: hearing back is all we wanted (last_heard is updated).
            Active::Liveness => {}
            Active::CreateChild(t) => self.handle_create_child_response(ctx, t, inner),
            Active::RekeyIke(t) => self.handle_rekey_ike_response(ctx, t, inner),
        }
    }

    fn handle_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        header: Header,
        data: &[u8],
        local: SocketAddr,
        remote: SocketAddr,
    ) {
        // A retransmitted request gets the cached response (RFC 7296 2.1), to the port it
        // came from (a NAT may have rebound it) but only at the peer's address: a NATed SA
        // takes datagrams from anywhere, and a replayed request must not aim us elsewhere.
        if let Some((id, resp)) = &self.last_response {
            if header.message_id == *id && remote.ip() == self.remote.ip() {
                // RFC 7383 2.6.1: a fragmented request retransmitted is answered once per
                // set, on its fragment 1, or each of its fragments would resend ours.
                if !is_later_fragment(data) {
                    let resp = resp.clone();
                    send_to(ctx, self.local, remote, &resp);
                }
                return;
            }
        }
        if header.message_id != self.expected_request_id
            || header.exchange == ExchangeType::IKE_SA_INIT
        {
            return; // outside the window (2.3): drop silently
        }
        let msg = match Message::decode(data) {
            Ok(m) => m,
            Err(e) => {
                ctx.failed(
                    self,
                    &format!("dropped malformed {:?} request: {e}", header.exchange),
                );
                return;
            }
        };
        let inner = match self.open_protected(ctx, data, &msg, false) {
            Ok(Some(p)) => p,
            Ok(None) => return, // a fragment kept (or dropped): the rest is to come
            Err(OpenError::Decode(e)) => {
                // Authenticated but malformed: tell the peer (2.21.2).
                let n = Payload::Notify(NotifyPayload::new(e.notify(), e.notify_data()));
                self.respond_encrypted(ctx, header.exchange, header.message_id, &[n]);
                ctx.failed(
                    self,
                    &format!("peer sent a malformed {:?} payload: {e}", header.exchange),
                );
                return;
            }
            Err(_) => return, // bad ICV or not encrypted: drop (2.21.2)
        };
        if let Err(e) = check_critical(&inner) {
            let n = Payload::Notify(NotifyPayload::new(e.notify(), e.notify_data()));
            self.respond_encrypted(ctx, header.exchange, header.message_id, &[n]);
            return;
        }
        self.last_heard = ctx.now;
        // The responder follows the initiator's float to the NAT-T port (it may itself be
        // the NATed one, so any NAT-T use counts; or there is no NAT at all and the
        // initiator floated anyway), and either end follows a NATed peer.
        let floated = self.nat.in_use() || self.floated_without_nat(local, remote);
        if self.nat.remote || (floated && self.established.is_none()) {
            self.follow(ctx, local, remote);
        }
        // A request other than its Delete on a standby successor: the peer uses it, so it
        // won the rekey collision or never saw one (RFC 7296 2.8.2).
        if !inner.deletes().any(|d| d.protocol == ProtocolId::IKE) {
            self.take_over(ctx);
        }
        match header.exchange {
            ExchangeType::IKE_AUTH if matches!(self.state, State::InitAnswered { .. }) => {
                self.answer_ike_auth(ctx, header.message_id, inner)
            }
            ExchangeType::INFORMATIONAL => self.answer_informational(ctx, header.message_id, inner),
            ExchangeType::CREATE_CHILD_SA if matches!(self.state, State::Established(_)) => {
                self.answer_create_child_sa(ctx, header.message_id, inner)
            }
            ExchangeType::CREATE_CHILD_SA => {
                // Being deleted or rekeyed away: no new SAs here (2.8.2, 1.3).
                let n = Payload::Notify(NotifyPayload::new(
                    NotifyType::TEMPORARY_FAILURE,
                    Vec::new(),
                ));
                self.respond_encrypted(ctx, header.exchange, header.message_id, &[n]);
            }
            other => ctx.failed(
                self,
                &format!("unexpected {other:?} request in this state: dropped"),
            ),
        }
    }
}

/// An Encrypted Fragment message other than fragment 1 (RFC 7383 2.6.1).
fn is_later_fragment(data: &[u8]) -> bool {
    Message::decode(data)
        .ok()
        .and_then(|m| m.payloads.skf().map(|f| f.number != 1))
        .unwrap_or(false)
}
