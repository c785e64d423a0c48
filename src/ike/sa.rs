//! One IKE SA: its keys, its two message-ID windows (RFC 7296 2.3), the retransmission of
//! its one outstanding request (2.1, 2.4), the cached last response, and its child SAs.
//!
//! Work is done by tasks, as strongSwan's task manager does: [`Task`] is a queued task not
//! yet started; once started it becomes an [`Active`] exchange, which owns everything its
//! response needs (DH key, nonce, offer, SPI) and sits in the initiating window
//! (`outstanding`): the response is handed to that task by value, so no pending state is
//! left behind in the SA. The responder side of each exchange is a function of the request.
//! [`State::Established`] holds the SA's deadlines ([`Life`]), made by `establish` for a
//! fresh SA and a rekey's successor alike; a rekey moves the old SA to [`State::Replaced`],
//! which holds its successor and its retirement deadline, so no field says "replaced" apart
//! from the state. The exchanges themselves live in `exchange/`, one
//! file each, as `impl IkeSa` blocks, with their initiator task types.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::auth::SigHashes;
use super::codec::{encode_chain, PayloadType, HEADER_LEN};
use super::codec::{ExchangeType, Flags, Header, Identity, Message, Payload, TrafficSelector};
use super::crypto::cipher::{OpenError, SkCipher};
use super::crypto::{CryptoError, IkeKeys};
use super::endpoint::{ChildId, Ctx, IkeSaId, Output};
use super::fragment::{datagram_overhead, Fragments};
use super::nat::{NatState, UdpEncap};
use super::negotiate::{EspAlgs, IkeAlgs};
use super::policy::{Mode, PeerPolicy};
use super::refusal::Failure;

/// Which end started this IKE SA (fixes SPI order and key directions for its lifetime).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Initiator,
    Responder,
}

/// Why an IKE SA ended: logged, shown by vpnctl, mapped to RADIUS Acct-Terminate-Cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownReason {
    /// We deleted it (clear crypto session, shutdown, config change).
    LocalDelete,
    /// The peer sent a Delete for the IKE SA.
    PeerDelete,
    /// No answer to our requests after every retransmission (liveness check or other).
    PeerUnreachable,
    /// IKE_SA_INIT or IKE_AUTH failed.
    NegotiationFailed(Failure),
    /// Replaced by a new IKE SA after a rekey.
    Rekeyed,
    /// A new IKE SA with the same peer identity came with INITIAL_CONTACT (RFC 7296 3.16):
    /// the peer restarted and holds this one no more, so it went without a Delete.
    PeerRestarted,
    /// Reached its lifetime without a successful rekey (the link was down, or the peer kept
    /// refusing): an IKE SA does not outlive it (RFC 7296 2.8).
    Expired,
    /// The session reached the Session-Timeout its RADIUS server gave (RFC 2865 5.27).
    SessionTimeout,
}

impl std::fmt::Display for DownReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DownReason::LocalDelete => f.write_str("deleted locally"),
            DownReason::PeerDelete => f.write_str("deleted by the peer"),
            DownReason::PeerUnreachable => f.write_str("peer unreachable"),
            DownReason::NegotiationFailed(why) => write!(f, "negotiation failed: {why}"),
            DownReason::Rekeyed => f.write_str("rekeyed"),
            DownReason::Expired => f.write_str("lifetime expired"),
            DownReason::SessionTimeout => f.write_str("session timeout (RADIUS)"),
            DownReason::PeerRestarted => f.write_str("peer restarted (INITIAL_CONTACT)"),
        }
    }
}

/// The state of the IKE SA itself. What an exchange in flight needs (our DH key, nonce,
/// offer…) is not here but in its task, which `outstanding` owns (see [`Active`]).
pub(crate) enum State {
    /// Initiator: IKE_SA_INIT or IKE_AUTH in flight.
    Connecting,
    /// Responder: IKE_SA_INIT answered, waiting for IKE_AUTH until `until` (the
    /// endpoint's half-open timeout, RFC 7296 2.6).
    InitAnswered {
        until: Instant,
        /// An EAP client's conversation (RFC 7296 2.16), once its first IKE_AUTH came.
        eap: Option<Box<super::exchange::eap::EapResponder>>,
    },
    Established(Life),
    /// Rekeyed: the successor has the children; this one answers the peer until the peer
    /// deletes it, or until we do (RFC 7296 1.3.2, 2.8).
    Replaced(Replaced),
    /// A successor born of a rekey collision (RFC 7296 2.8.2) that is not (or no longer)
    /// the winner: it answers the peer but starts nothing and owns no children.
    Standby(Standby),
    /// A Delete for the IKE SA is outstanding (or the SA is going away); `rekeyed_to`: it
    /// was replaced first, so it ends as Rekeyed.
    Deleting {
        rekeyed_to: Option<IkeSaId>,
    },
    Dead,
}

/// The deadlines of an established IKE SA, made in one place ([`IkeSa::establish`]) for a
/// fresh SA and a rekey's successor alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Life {
    /// When to rekey (RFC 7296 2.8); None while a rekey runs or once it is replaced.
    pub rekey_at: Option<Instant>,
    /// The lifetime's end: not rekeyed by then, it is deleted.
    pub expires_at: Instant,
}

/// An IKE SA a rekey replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Replaced {
    /// The successor, which owns the children now.
    pub by: IkeSaId,
    /// The peer did not delete it by then, so we do (strongSwan waits 90 s too); None once
    /// our Delete is queued.
    pub retire_at: Option<Instant>,
    /// Its lifetime still bounds it.
    pub expires_at: Instant,
}

/// A successor waiting for a crossing IKE SA rekey to be decided, or for the peer to delete
/// it once it lost.
pub(crate) struct Standby {
    /// The IKE SA it would replace, while undecided: it takes over the children if the peer
    /// starts using it or deletes the old SA. None once it lost.
    pub of: Option<IkeSaId>,
    /// When to stop waiting: an undecided one checks its old SA is still there, a loser is
    /// deleted by us after all (the peer should have, 2.8.2).
    pub until: Instant,
}

/// The keys of an IKE SA and its SK payload ciphers (RFC 7296 2.14, 2.18): all made at once,
/// by IKE_SA_INIT or by the rekey that created the SA, and never changed after.
pub(crate) struct SaKeys {
    pub algs: IkeAlgs,
    pub keys: IkeKeys,
    pub out: SkCipher,
    pub inb: SkCipher,
}

impl SaKeys {
    /// Sets up the SK payload ciphers for `keys` in our direction.
    pub fn new(algs: IkeAlgs, keys: IkeKeys, role: Role) -> Result<SaKeys, CryptoError> {
        let (out, inb) = keys.ciphers(role == Role::Initiator)?;
        Ok(SaKeys {
            algs,
            keys,
            out,
            inb,
        })
    }
}

/// The exchange we started and wait to hear about: the one task in the initiating window
/// (RFC 7296 2.3, window of 1). It owns what its response needs, so a response reaches the
/// task that sent the request and nothing else keeps a copy. Each lives with its exchange.
pub(crate) enum Active {
    IkeSaInit(super::exchange::ike_sa_init::Initiator),
    IkeAuth(super::exchange::ike_auth::Initiator),
    /// A new child SA or a child rekey.
    CreateChild(super::exchange::create_child_sa::ChildInitiator),
    RekeyIke(super::exchange::create_child_sa::IkeRekeyInitiator),
    DeleteIke,
    DeleteChildren(Vec<ChildId>),
    Liveness,
}

/// A child SA as the engine tracks it; the kernel holds the keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildSa {
    pub id: ChildId,
    /// Index of the child policy in the peer's configuration.
    pub policy: usize,
    pub inbound_spi: u32,
    pub outbound_spi: u32,
    pub algs: EspAlgs,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    pub mode: Mode,
    pub created: Instant,
    pub state: ChildState,
    /// The child this one rekeyed.
    pub replaces: Option<ChildId>,
    /// Our new outbound SA waits in the daemon until the old pair is deleted (we answered
    /// the rekey: the initiator may not have our new inbound SA's peer installed yet).
    pub outbound_pending: bool,
    /// The kernel hard-expired it: its removal says so (Session-Timeout).
    pub hard_expired: bool,
    /// The outer addresses and UDP encapsulation it was installed with: its removal names
    /// them even after the IKE SA followed the peer elsewhere (RFC 7296 2.23).
    pub local: IpAddr,
    pub remote: IpAddr,
    pub encap: Option<UdpEncap>,
}

/// Where a child SA is in its rekey (RFC 7296 2.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildState {
    Installed,
    /// Our CREATE_CHILD_SA rekeying it is in flight.
    Rekeying,
    /// A successor is installed (ours or the peer's); it waits for its Delete and is not
    /// rekeyed again.
    Rekeyed,
    /// The redundant pair of crossing rekeys (2.8.1): whoever started its exchange deletes
    /// it, and its deferred outbound SA is never activated.
    Redundant,
}

/// Our one request in flight (window size 1, RFC 7296 2.3).
pub(crate) struct Outstanding {
    pub message_id: u32,
    /// The request as sent: one datagram, or its set of fragments (RFC 7383), all of which
    /// a retransmission resends (2.6).
    pub datagrams: Vec<Vec<u8>>,
    pub sends: u32,
    pub next_retransmit: Instant,
    pub exchange: ExchangeType,
    pub task: Active,
}

impl Active {
    #[cfg(test)]
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Active::IkeSaInit(_) => "IkeSaInit",
            Active::IkeAuth(_) => "IkeAuth",
            Active::CreateChild(_) => "CreateChild",
            Active::RekeyIke(_) => "RekeyIke",
            Active::DeleteIke => "DeleteIke",
            Active::DeleteChildren(_) => "DeleteChildren",
            Active::Liveness => "Liveness",
        }
    }
}

/// Work queued behind the outstanding request: tasks not yet started, which hold no
/// exchange state (they build it when they start).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Task {
    DeleteIke,
    DeleteChildren(Vec<ChildId>),
    Liveness,
    /// Rekey a child SA (the kernel's soft expiry, or an operator).
    RekeyChild(ChildId),
    /// Another child of the peer's configuration (index), after IKE_AUTH created the first.
    CreateChild(usize),
    RekeyIke,
}

pub struct IkeSa {
    pub id: IkeSaId,
    pub role: Role,
    pub spi_i: u64,
    pub spi_r: u64,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub peer: Arc<PeerPolicy>,
    pub(crate) state: State,
    /// From IKE_SA_INIT on (or from birth, for a rekey's successor).
    pub(crate) keys: Option<SaKeys>,
    pub(crate) ni: Vec<u8>,
    pub(crate) nr: Vec<u8>,
    /// The IKE_SA_INIT request and response as sent: the signed octets of AUTH (2.15).
    pub(crate) init_request: Vec<u8>,
    pub(crate) init_response: Vec<u8>,
    pub remote_id: Option<Identity>,
    pub children: Vec<ChildSa>,
    // Initiating window.
    pub(crate) next_message_id: u32,
    /// Boxed: most of an SA's life nothing is in flight, and an idle SA should not carry
    /// the room of one.
    pub(crate) outstanding: Option<Box<Outstanding>>,
    pub(crate) queue: VecDeque<Task>,
    // Responding window.
    pub(crate) expected_request_id: u32,
    /// The last response as sent (its fragments, if fragmented), for a retransmitted request.
    pub(crate) last_response: Option<(u32, Vec<Vec<u8>>)>,
    pub(crate) iv_counter: u64,
    pub created: Instant,
    pub established: Option<Instant>,
    pub(crate) last_heard: Instant,
    /// A successor the daemon was never told about (a collision's loser): it ends without
    /// an IkeDown.
    pub(crate) silent: bool,
    /// Tasks to queue later: retries after TEMPORARY_FAILURE (RFC 7296 2.25).
    pub(crate) delayed: Vec<(Instant, Task)>,
    /// What NAT detection found (IKE_SA_INIT, RFC 7296 2.23); a rekey's successor inherits it.
    pub nat: NatState,
    /// When we last sent anything to the peer: a NAT keepalive is due only after a quiet
    /// `nat.keepalive` (RFC 3948 2.3).
    pub(crate) last_sent: Instant,
    /// The peer's address of its IKE_SA_INIT (the responder's half-open key).
    pub(crate) first_remote: SocketAddr,
    /// IKE fragmentation (RFC 7383): negotiated or not, and the reassemblies in progress.
    pub(crate) frag: Fragments,
    /// The address leased to the peer (RFC 7296 3.15.4); the lease itself is the
    /// endpoint's `Pools`, this a copy for selectors and display. A rekey's successor
    /// takes both.
    pub virtual_ip: Option<std::net::Ipv4Addr>,
    /// The IPv6 address leased to the peer (INTERNAL_IP6_ADDRESS), as `virtual_ip`.
    pub virtual_ip6: Option<std::net::Ipv6Addr>,
    /// Where the peer's addresses come from when the authentication step says (RADIUS
    /// Framed-IP-Address, Framed-Pool): set before the configuration payload is answered;
    /// a family none of them is for: the profile's pool.
    pub(crate) address_requests: Vec<crate::ike::pool::AddressRequest>,
    /// The end RADIUS gave the session (Session-Timeout, RFC 2865 5.27): the IKE SA is
    /// deleted then, whatever its rekeys (a successor inherits it).
    pub session_deadline: Option<Instant>,
    /// The hashes the peer announced for signature AUTH (RFC 7427 4), from IKE_SA_INIT.
    pub(crate) peer_hashes: SigHashes,
}

impl IkeSa {
    // Every field a fresh SA needs from its creator; a builder would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: IkeSaId,
        role: Role,
        spi_i: u64,
        spi_r: u64,
        local: SocketAddr,
        remote: SocketAddr,
        peer: Arc<PeerPolicy>,
        now: Instant,
    ) -> IkeSa {
        IkeSa {
            id,
            role,
            spi_i,
            spi_r,
            local,
            remote,
            peer,
            state: State::Dead,
            keys: None,
            ni: Vec::new(),
            nr: Vec::new(),
            init_request: Vec::new(),
            init_response: Vec::new(),
            remote_id: None,
            children: Vec::new(),
            next_message_id: 0,
            outstanding: None,
            queue: VecDeque::new(),
            expected_request_id: 0,
            last_response: None,
            iv_counter: 0,
            created: now,
            established: None,
            last_heard: now,
            silent: false,
            delayed: Vec::new(),
            nat: NatState::default(),
            last_sent: now,
            first_remote: remote,
            frag: Fragments::default(),
            virtual_ip: None,
            virtual_ip6: None,
            address_requests: Vec::new(),
            session_deadline: None,
            peer_hashes: SigHashes::default(),
        }
    }

    /// The UDP encapsulation of this IKE SA's children: its current ports, once NAT-T is in
    /// use (RFC 3948).
    pub fn encap(&self) -> Option<UdpEncap> {
        self.nat.in_use().then_some(UdpEncap {
            local_port: self.local.port(),
            remote_port: self.remote.port(),
        })
    }

    /// Sends a datagram, or a set of fragments, to the peer at its current address.
    pub(crate) fn send(&mut self, ctx: &mut Ctx<'_>, datagrams: &[Vec<u8>]) {
        self.last_sent = ctx.now;
        let remote = self.remote;
        send_to(ctx, self.local, remote, datagrams);
    }

    /// When the session's Session-Timeout ends it: only while established (a replaced SA
    /// waits for its Delete, its successor carries the deadline).
    fn session_end_at(&self) -> Option<Instant> {
        matches!(self.state, State::Established(_))
            .then_some(self.session_deadline)
            .flatten()
    }

    /// When a NAT keepalive is due: only with a NAT in front of us, once up (RFC 3948 2.3).
    fn keepalive_at(&self) -> Option<Instant> {
        let every = self.peer.nat.keepalive?;
        // Established only: a replaced SA waiting for its Delete shares the mapping with
        // its successor, which keeps it alive.
        let up = matches!(self.state, State::Established(_));
        (self.nat.local && self.nat.supported && up).then_some(self.last_sent + every)
    }

    /// Up: established, or replaced by a rekey and not yet deleted.
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established(_) | State::Replaced(_))
    }

    /// The IKE SA that replaced this one in a rekey.
    pub fn rekeyed_to(&self) -> Option<IkeSaId> {
        match self.state {
            State::Replaced(r) => Some(r.by),
            State::Deleting { rekeyed_to } => rekeyed_to,
            _ => None,
        }
    }

    /// The task in the initiating window, if any.
    pub(crate) fn active(&self) -> Option<&Active> {
        self.outstanding.as_ref().map(|o| &o.task)
    }

    pub(crate) fn active_mut(&mut self) -> Option<&mut Active> {
        self.outstanding.as_mut().map(|o| &mut o.task)
    }

    /// What the model still lets go wrong, for the simulation's invariants: the task in the
    /// window must fit the state (IKE_SA_INIT and IKE_AUTH only while connecting, rekeys and
    /// new children only while established, nothing but a Delete once deleting), and a
    /// standby successor starts nothing but its own Delete and owns no children.
    #[cfg(test)]
    pub(crate) fn check_consistent(&self) -> Result<(), String> {
        let fits = match (&self.state, self.active()) {
            (_, None) => true,
            (State::Connecting, Some(Active::IkeSaInit(_) | Active::IkeAuth(_))) => true,
            (State::Connecting | State::InitAnswered { .. }, _) => false,
            (_, Some(Active::IkeSaInit(_) | Active::IkeAuth(_))) => false,
            (State::Established(_) | State::Replaced(_), _) => true,
            (State::Standby(_) | State::Deleting { .. }, Some(a)) => {
                matches!(a, Active::DeleteIke)
            }
            (State::Dead, Some(_)) => false,
        };
        if !fits {
            return Err(format!(
                "IKE SA {:016x}: task {:?} in the window in state {}",
                self.id,
                self.active().map(Active::name),
                self.state_name()
            ));
        }
        if matches!(self.state, State::Standby(_) | State::Replaced(_)) && !self.children.is_empty()
        {
            return Err(format!(
                "IKE SA {:016x} owns children in state {}",
                self.id,
                self.state_name()
            ));
        }
        if self.keys.is_none() && !matches!(self.state, State::Connecting | State::Dead) {
            return Err(format!(
                "IKE SA {:016x} has no keys in state {}",
                self.id,
                self.state_name()
            ));
        }
        Ok(())
    }

    #[cfg(test)]
    fn state_name(&self) -> &'static str {
        match self.state {
            State::Connecting => "Connecting",
            State::InitAnswered { .. } => "InitAnswered",
            State::Established(_) => "Established",
            State::Replaced(_) => "Replaced",
            State::Standby(_) => "Standby",
            State::Deleting { .. } => "Deleting",
            State::Dead => "Dead",
        }
    }

    /// The deadlines, while established.
    pub(crate) fn life_mut(&mut self) -> Option<&mut Life> {
        match &mut self.state {
            State::Established(l) => Some(l),
            _ => None,
        }
    }

    /// A responder SA that answered IKE_SA_INIT and has no IKE_AUTH yet.
    pub fn is_half_open(&self) -> bool {
        matches!(self.state, State::InitAnswered { .. })
    }

    pub fn is_dead(&self) -> bool {
        matches!(self.state, State::Dead)
    }

    /// Our own SPI, which routes the peer's messages to this SA.
    pub fn local_spi(&self) -> u64 {
        match self.role {
            Role::Initiator => self.spi_i,
            Role::Responder => self.spi_r,
        }
    }

    pub(crate) fn header(&self, exchange: ExchangeType, response: bool, message_id: u32) -> Header {
        Header {
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            exchange,
            flags: Flags {
                initiator: self.role == Role::Initiator,
                version: false,
                response,
            },
            message_id,
        }
    }

    /// A fresh IV for the SK or SKF payload.
    fn next_iv(&mut self, ctx: &mut Ctx<'_>) -> Option<Vec<u8>> {
        let iv_len = self.keys.as_ref()?.out.iv_len();
        if iv_len == 8 {
            // GCM: the IV must never repeat under one key; a counter guarantees it.
            self.iv_counter += 1;
            Some(self.iv_counter.to_be_bytes().to_vec())
        } else {
            // CBC: unpredictable (RFC 7296 3.14), so no IV at all without randomness.
            ctx.random_bytes(iv_len).ok()
        }
    }

    /// Encrypts `inner` into a whole datagram (RFC 7296 3.14), or, when fragmentation was
    /// negotiated and the datagram would exceed the fragment size, into a set of Encrypted
    /// Fragment messages that each fit it (RFC 7383 2.5, 2.5.1).
    pub(crate) fn seal(
        &mut self,
        ctx: &mut Ctx<'_>,
        exchange: ExchangeType,
        response: bool,
        message_id: u32,
        inner: &[Payload],
    ) -> Option<Vec<Vec<u8>>> {
        let header = self.header(exchange, response, message_id);
        let (first, plaintext) = encode_chain(inner).ok()?;
        let cipher_body = self.keys.as_ref()?.out.body_len(plaintext.len());
        let nat_t = self.local.port() == self.peer.nat.local_port;
        let overhead = datagram_overhead(self.remote.is_ipv6(), nat_t);
        let whole = overhead + HEADER_LEN + 4 + cipher_body;
        let limit = usize::from(self.peer.frag.size);
        // Never IKE_SA_INIT (2.5): it is not encrypted, and support is unknown until it is done.
        if !self.frag.on || exchange == ExchangeType::IKE_SA_INIT || whole <= limit {
            let iv = self.next_iv(ctx)?;
            return Some(vec![self
                .keys
                .as_ref()?
                .out
                .seal(&header, inner, &iv)
                .ok()?]);
        }
        // Each fragment: the IKE header, the SKF generic header and its two counters, then
        // IV || share || padding || ICV.
        let room = limit.checked_sub(overhead + HEADER_LEN + 4 + super::codec::SKF_FIELDS_LEN)?;
        let share = self.keys.as_ref()?.out.plaintext_room(room)?;
        let total = u16::try_from(plaintext.len().div_ceil(share)).ok()?;
        let mut set = Vec::with_capacity(usize::from(total));
        for (i, chunk) in plaintext.chunks(share).enumerate() {
            let iv = self.next_iv(ctx)?;
            let number = u16::try_from(i + 1).ok()?;
            let next = if number == 1 {
                first
            } else {
                PayloadType::NONE
            };
            let keys = self.keys.as_ref()?;
            set.push(
                keys.out
                    .seal_fragment(&header, next, number, total, chunk, &iv)
                    .ok()?,
            );
        }
        ctx.frag_stats.messages_fragmented += 1;
        Some(set)
    }

    pub(crate) fn open(&self, datagram: &[u8], msg: &Message) -> Result<Vec<Payload>, OpenError> {
        match &self.keys {
            Some(k) => k.inb.open(datagram, msg),
            None => Err(OpenError::NotEncrypted),
        }
    }

    /// Sends a new request now, or queues the task if one is outstanding (window of 1).
    pub(crate) fn start_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        exchange: ExchangeType,
        task: Active,
        inner: Vec<Payload>,
    ) {
        let message_id = self.next_message_id;
        let Some(datagrams) = self.seal(ctx, exchange, false, message_id, &inner) else {
            ctx.failed(self, "could not encrypt a request");
            return;
        };
        self.next_message_id += 1;
        self.send_request(ctx, message_id, datagrams, exchange, task);
    }

    pub(crate) fn send_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        message_id: u32,
        datagrams: Vec<Vec<u8>>,
        exchange: ExchangeType,
        task: Active,
    ) {
        self.send(ctx, &datagrams);
        self.outstanding = Some(Box::new(Outstanding {
            message_id,
            datagrams,
            sends: 1,
            next_retransmit: ctx.now + self.peer.retransmit.delay(0),
            exchange,
            task,
        }));
    }

    /// Sends (and caches, for retransmitted requests) a response.
    pub(crate) fn respond(&mut self, ctx: &mut Ctx<'_>, message_id: u32, datagrams: Vec<Vec<u8>>) {
        self.send(ctx, &datagrams);
        self.last_response = Some((message_id, datagrams));
        self.expected_request_id = message_id.wrapping_add(1);
    }

    pub(crate) fn respond_encrypted(
        &mut self,
        ctx: &mut Ctx<'_>,
        exchange: ExchangeType,
        message_id: u32,
        inner: &[Payload],
    ) {
        if let Some(d) = self.seal(ctx, exchange, true, message_id, inner) {
            self.respond(ctx, message_id, d);
        }
    }

    /// Queues a task; runs it at once when nothing is outstanding.
    pub(crate) fn queue_task(&mut self, ctx: &mut Ctx<'_>, task: Task) {
        if !self.queue.contains(&task) {
            self.queue.push_back(task);
        }
        self.run_queue(ctx);
    }

    /// Starts the next queued task if the window is free. Delete goes before anything else.
    pub(crate) fn run_queue(&mut self, ctx: &mut Ctx<'_>) {
        if self.outstanding.is_some()
            || !matches!(
                self.state,
                State::Established(_) | State::Replaced(_) | State::Deleting { .. }
            )
        {
            return;
        }
        let next = match self.queue.iter().position(|t| *t == Task::DeleteIke) {
            Some(i) => self.queue.remove(i),
            None => self.queue.pop_front(),
        };
        match next {
            Some(Task::DeleteIke) => self.start_delete_ike(ctx),
            Some(Task::DeleteChildren(ids)) => self.start_delete_children(ctx, ids),
            Some(Task::Liveness) => self.start_liveness(ctx),
            Some(Task::RekeyChild(id)) => {
                // Only a plain installed child: one rekeyed by either end is on its way out.
                if let Some(policy) = self
                    .children
                    .iter()
                    .find(|c| c.id == id && c.state == ChildState::Installed)
                    .map(|c| c.policy)
                {
                    self.start_create_child(ctx, policy, Some(id));
                } else {
                    self.run_queue(ctx);
                }
            }
            Some(Task::CreateChild(policy)) => self.start_create_child(ctx, policy, None),
            Some(Task::RekeyIke) => self.start_rekey_ike(ctx),
            None => {}
        }
    }

    /// The kernel hard-expired a child: it is deleted with the peer and its configuration
    /// brought up again. A second expiry of the same pair (its other SA) changes nothing.
    pub(crate) fn child_expired(&mut self, ctx: &mut Ctx<'_>, child: ChildId) {
        let Some(c) = self.children.iter_mut().find(|c| c.id == child) else {
            return;
        };
        if c.hard_expired {
            return;
        }
        c.hard_expired = true;
        let policy = c.policy;
        self.delete_children(ctx, vec![child]);
        self.queue_task(ctx, Task::CreateChild(policy));
    }

    /// The next instant this SA needs `handle_timeout`.
    pub fn next_timeout(&self) -> Option<Instant> {
        let retransmit = self.outstanding.as_ref().map(|o| o.next_retransmit);
        let dpd = match (&self.state, self.peer.dpd, &self.outstanding) {
            (State::Established(_), Some(d), None) => Some(self.last_heard + d),
            _ => None,
        };
        let half_open = match self.state {
            // A responder whose IKE_AUTH never comes gives up (the DoS bound, 2.6).
            State::InitAnswered { until, .. } => Some(until),
            _ => None,
        };
        let (rekey, retire, expiry) = match &self.state {
            State::Established(l) => (l.rekey_at, None, Some(l.expires_at)),
            State::Replaced(r) => (None, r.retire_at, Some(r.expires_at)),
            _ => (None, None, None),
        };
        let standby = match &self.state {
            State::Standby(s) => Some(s.until),
            _ => None,
        };
        let delayed = self.delayed.iter().map(|d| d.0).min();
        let keepalive = self.keepalive_at();
        let reassembly = self.frag.deadline();
        let session_end = self.session_end_at();
        [
            retransmit,
            dpd,
            half_open,
            rekey,
            retire,
            expiry,
            standby,
            delayed,
            keepalive,
            reassembly,
            session_end,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub(crate) fn handle_timeout(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        self.frag.expire(now, ctx.frag_stats);
        if self.keepalive_at().is_some_and(|t| now >= t) {
            // One 0xFF octet to the peer's NAT-T port, which the daemon sends without the
            // non-ESP marker (RFC 3948 2.3); it counts as sending for the next one.
            self.last_sent = now;
            ctx.out.push_back(Output::Keepalive {
                local: self.local,
                remote: self.remote,
            });
        }
        if matches!(self.state, State::InitAnswered { until, .. } if now >= until) {
            self.die(ctx, DownReason::NegotiationFailed(Failure::NoIkeAuth));
            return;
        }
        if let Some(o) = &mut self.outstanding {
            if now >= o.next_retransmit {
                if o.sends >= self.peer.retransmit.tries {
                    let what = Failure::Unanswered {
                        exchange: o.exchange,
                        sends: o.sends,
                    };
                    let task = self.outstanding.take().map(|o| o.task);
                    let reason = match task {
                        Some(Active::IkeSaInit(_) | Active::IkeAuth(_)) => {
                            DownReason::NegotiationFailed(what)
                        }
                        // A Delete that is never answered still deletes (RFC 7296 1.4.1).
                        Some(Active::DeleteIke) => DownReason::LocalDelete,
                        _ => DownReason::PeerUnreachable,
                    };
                    self.die(ctx, reason);
                    return;
                }
                let delay = self.peer.retransmit.delay(o.sends);
                o.sends += 1;
                o.next_retransmit = now + delay;
                let d = std::mem::take(&mut o.datagrams);
                self.send(ctx, &d);
                if let Some(o) = &mut self.outstanding {
                    o.datagrams = d;
                }
            }
        }
        if let State::Standby(s) = &mut self.state {
            if now >= s.until {
                match s.of {
                    // Still undecided while the old SA waits for its own rekey's answer.
                    Some(old) if ctx.sa(old).is_some_and(|o| !o.is_dead()) => {
                        s.until = now + half_open_timeout(&self.peer);
                    }
                    Some(_) => self.die(ctx, DownReason::LocalDelete),
                    None => self.start_delete_ike(ctx),
                }
            }
            return;
        }
        let expires_at = match &self.state {
            State::Established(l) => Some(l.expires_at),
            State::Replaced(r) => Some(r.expires_at),
            _ => None,
        };
        let session_over = self.session_end_at().is_some_and(|t| now >= t);
        if session_over || expires_at.is_some_and(|t| now >= t) {
            // Tell the peer if the window is free; a Delete never answered still deletes
            // (1.4.1), so there is no waiting for it.
            if self.outstanding.is_none() {
                self.start_delete_ike(ctx);
            }
            let reason = if session_over {
                DownReason::SessionTimeout
            } else {
                DownReason::Expired
            };
            self.die(ctx, reason);
            return;
        }
        if self.delayed.iter().any(|d| now >= d.0) {
            let (due, later) = std::mem::take(&mut self.delayed)
                .into_iter()
                .partition::<Vec<_>, _>(|d| now >= d.0);
            self.delayed = later;
            for (_, task) in due {
                self.queue_task(ctx, task);
            }
        }
        if let Some(l) = self.life_mut() {
            if l.rekey_at.is_some_and(|t| now >= t) {
                l.rekey_at = None;
                self.queue_task(ctx, Task::RekeyIke);
            }
        }
        if let State::Replaced(r) = &mut self.state {
            if r.retire_at.is_some_and(|t| now >= t) {
                r.retire_at = None;
                self.queue_task(ctx, Task::DeleteIke);
            }
        }
        if let (State::Established(_), Some(d), None) =
            (&self.state, self.peer.dpd, &self.outstanding)
        {
            if now >= self.last_heard + d {
                self.queue_task(ctx, Task::Liveness);
            }
        }
    }

    /// Ends the SA: every child leaves the kernel, the daemon hears why.
    pub(crate) fn die(&mut self, ctx: &mut Ctx<'_>, reason: DownReason) {
        if matches!(self.state, State::Dead) {
            return;
        }
        let was_up = self.established.is_some();
        // Children that moved to a successor IKE SA are not ours to remove.
        let reason = if self.rekeyed_to().is_some() {
            DownReason::Rekeyed
        } else {
            reason
        };
        for c in std::mem::take(&mut self.children) {
            ctx.remove_child(self, &c);
        }
        self.frag.clear(ctx.frag_stats);
        self.state = State::Dead;
        self.outstanding = None;
        self.queue.clear();
        self.delayed.clear();
        if self.silent {
            return;
        }
        ctx.out.push_back(Output::IkeDown {
            ike: self.id,
            peer: self.peer.name.clone(),
            remote: self.remote,
            was_up,
            reason,
        });
    }

    /// The one way into `Established`, for a fresh IKE SA (IKE_AUTH) and a rekey's successor
    /// alike: it schedules the rekey (RFC 7296 2.8) and returns the deadline, which the
    /// daemon shows as the SA's lifetime. The original initiator rekeys at 90% of the
    /// lifetime, the responder at 95%, so both rarely start one at once (2.8.2).
    pub(crate) fn establish(&mut self, now: Instant) -> Instant {
        self.established = Some(now);
        // What only IKE_AUTH needed (the signed octets, SK_p, the raw SK_e/SK_a) goes.
        self.init_request = Vec::new();
        self.init_response = Vec::new();
        if let Some(k) = &mut self.keys {
            k.keys.keep_only_sk_d();
        }
        let share = if self.role == Role::Initiator {
            0.90
        } else {
            0.95
        };
        let at = now + self.peer.ike_lifetime.mul_f64(share);
        self.state = State::Established(Life {
            rekey_at: Some(at),
            expires_at: now + self.peer.ike_lifetime,
        });
        at
    }

    pub(crate) fn nonce_len(&self) -> usize {
        // At least half the PRF key size and at least 16 bytes (RFC 7296 2.10); 32 covers all.
        32
    }
}

/// Sends each datagram of a message (one, or its fragments) from `local` to `remote`.
pub(crate) fn send_to(
    ctx: &mut Ctx<'_>,
    local: SocketAddr,
    remote: SocketAddr,
    datagrams: &[Vec<u8>],
) {
    if datagrams.len() > 1 {
        ctx.frag_stats.fragments_sent += datagrams.len() as u64;
    }
    for d in datagrams {
        ctx.transmit(local, remote, d.clone());
    }
}

/// When to try again after TEMPORARY_FAILURE (RFC 7296 2.25): 5 to 15 s, as strongSwan's
/// RETRY_INTERVAL less a random jitter, so two ends refusing each other don't meet again.
pub(crate) fn retry_delay(ctx: &mut Ctx<'_>) -> Duration {
    // Jitter only: without randomness (the engine is stopping anyway) none.
    let b = ctx.random_bytes(2).unwrap_or_else(|_| vec![0; 2]);
    let jitter = u16::from_be_bytes([b[0], b[1]]);
    Duration::from_secs(15) - Duration::from_millis(u64::from(jitter) % 10_000)
}

pub(crate) fn half_open_timeout(peer: &PeerPolicy) -> Duration {
    (0..peer.retransmit.tries)
        .map(|n| peer.retransmit.delay(n))
        .sum::<Duration>()
        .max(Duration::from_secs(30))
}
