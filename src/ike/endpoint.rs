//! The engine's front door, in the style of quinn-proto's `Endpoint`: datagrams and time go
//! in (`handle_datagram`, `handle_timeout`, the kernel's `kernel_expired` naming an SA by its
//! SPI, commands such as `initiate`), outputs come out (`poll_output`: datagrams to send,
//! child SAs to install or remove, IKE SA up/down, `Fatal` if randomness fails), and
//! `poll_timeout` says when to call again. No sockets, no clock, no kernel. The endpoint
//! owns the indexes that route an input to its one IKE SA: deadlines, children by SPI,
//! established SAs by peer identity; and it answers requests for IKE SAs it does not have
//! (INVALID_IKE_SPI).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

use super::auth::AuthStats;
use super::codec::{
    ExchangeType, Flags, Header, Identity, Message, NotifyPayload, NotifyType, Payload,
    PayloadList, TrafficSelector,
};
use super::crypto::cipher::{Encr, Integ};
use super::crypto::{CryptoError, DhGroup, DhPrivateKey, RngSource};
use super::exchange::eap::{AuthenticatedUser, EapAnswer, EapRelay};
use super::fragment::FragStats;
use super::half_open::{CookieJar, DosConfig, DosStats, HalfOpen};
use super::nat::UdpEncap;
use super::policy::{Mode, PeerPolicy};
use super::pool::{AddressPool, PoolStats, Pools};
use super::sa::{ChildSa, DownReason, IkeSa, Role};

/// Identifies an IKE SA for the daemon (our own IKE SPI, unique per endpoint).
pub type IkeSaId = u64;
/// Identifies a child SA for the daemon (unique per endpoint, never reused).
pub type ChildId = u64;

/// One datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub data: Vec<u8>,
}

/// Everything the kernel needs for one child SA pair and its policies.
#[derive(Clone, Debug)]
pub struct ChildInstall {
    pub ike: IkeSaId,
    pub child: ChildId,
    pub peer: String,
    pub child_name: String,
    pub local: IpAddr,
    pub remote: IpAddr,
    pub inbound_spi: u32,
    pub outbound_spi: u32,
    pub encr: Encr,
    pub integ: Option<Integ>,
    pub esn: bool,
    /// Keys for our inbound SA (peer → us) and outbound SA (us → peer); GCM keys carry the salt.
    pub inbound_encr_key: Zeroizing<Vec<u8>>,
    pub inbound_integ_key: Zeroizing<Vec<u8>>,
    pub outbound_encr_key: Zeroizing<Vec<u8>>,
    pub outbound_integ_key: Zeroizing<Vec<u8>>,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    pub mode: Mode,
    pub lifetime: Duration,
    pub lifetime_bytes: Option<u64>,
    pub replay_window: u32,
    /// The child this one rekeys (same flow; the old pair is removed after this one is in).
    pub replaces: Option<ChildId>,
    /// Install only the inbound SA now; the outbound one on `Output::ActivateOutbound`.
    pub defer_outbound: bool,
    /// ESP-in-UDP (RFC 3948) with the IKE SA's ports, when NAT-T is in use.
    pub encap: Option<UdpEncap>,
}

/// A child SA pair to take out of the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildRemove {
    pub ike: IkeSaId,
    pub child: ChildId,
    pub peer: String,
    pub child_name: String,
    /// The kernel hard-expired it (its rekey never came): accounting's Session-Timeout.
    pub expired: bool,
    pub local: IpAddr,
    pub remote: IpAddr,
    pub inbound_spi: u32,
    pub outbound_spi: u32,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    pub mode: Mode,
    pub encap: Option<UdpEncap>,
}

/// A child SA whose outbound encapsulation follows the peer's new NAT mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildMoved {
    pub child: ChildId,
    pub outbound_spi: u32,
    pub local: IpAddr,
    pub remote: IpAddr,
    pub encap: UdpEncap,
}

#[derive(Debug)]
pub enum Output {
    Transmit(Transmit),
    /// A NAT keepalive (RFC 3948 2.3): the one octet 0xFF from our NAT-T socket, without
    /// the non-ESP marker.
    Keepalive {
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// An authenticated message of a NATed IKE SA came from a new address or port (the
    /// peer's NAT rebound, RFC 7296 2.23): the SA follows it, and so must the children's
    /// outbound ESP-in-UDP. Children whose peer address changed are rekeyed instead (an SA's
    /// destination is part of its identity in the kernel); `children` are those whose
    /// port alone changed.
    PeerMoved {
        ike: IkeSaId,
        peer: String,
        local: SocketAddr,
        from: SocketAddr,
        to: SocketAddr,
        children: Vec<ChildMoved>,
    },
    InstallChild(Box<ChildInstall>),
    RemoveChild(ChildRemove),
    /// Install the deferred outbound SA of a child (before the old pair is removed).
    ActivateOutbound {
        ike: IkeSaId,
        child: ChildId,
    },
    IkeUp {
        ike: IkeSaId,
        peer: String,
        local: SocketAddr,
        remote: SocketAddr,
        remote_id: Option<Identity>,
        initiator: bool,
        /// When the engine will rekey this IKE SA (the daemon shows it as its lifetime).
        rekey_at: Instant,
        /// NAT-T in use: the SA is on the NAT-T port, its children are ESP-in-UDP.
        nat_t: bool,
        /// The address leased to the peer (configuration payload, RFC 7296 3.15.4).
        virtual_ip: Option<IpAddr>,
        /// The IPv6 address leased to the peer (INTERNAL_IP6_ADDRESS).
        virtual_ip6: Option<std::net::Ipv6Addr>,
        /// When the engine ends the session (RADIUS Session-Timeout, RFC 2865 5.27).
        session_deadline: Option<Instant>,
        /// The user EAP authenticated (RFC 7296 2.16), with what RADIUS said of them.
        user: Option<AuthenticatedUser>,
    },
    /// An EAP message of a client's to relay to RADIUS (RFC 7296 2.16, RFC 3579); its answer
    /// comes back through [`Endpoint::eap_answer`].
    EapRequest(EapRelay),
    IkeDown {
        ike: IkeSaId,
        peer: String,
        remote: SocketAddr,
        was_up: bool,
        reason: DownReason,
    },
    /// An IKE SA was rekeyed: `new` replaces `old` and now owns `children`.
    IkeRekeyed {
        old: IkeSaId,
        new: IkeSaId,
        peer: String,
        children: Vec<ChildId>,
        /// When the engine will rekey `new`.
        rekey_at: Instant,
    },
    /// The engine cannot go on safely (its random source failed): it ignores every input
    /// from now on, and the daemon should stop. Comes out once.
    Fatal(Fatal),
    /// Something went wrong that the operator should see (bad packet, refused proposal…);
    /// nothing else changed.
    Notice {
        peer: Option<String>,
        remote: SocketAddr,
        text: String,
    },
}

/// Why the engine stopped for good.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Fatal {
    /// No nonce, SPI, IV or DH key can be made safely without randomness (RFC 7296 2.10,
    /// 2.12): nothing is sent with a predictable one, and nothing is retried forever.
    #[error("random source failed: {0}")]
    Rng(CryptoError),
}

/// At most this many INVALID_IKE_SPI answers in any one second (RFC 7296 2.21.4: they
/// are unauthenticated, so an attacker must not turn us into a reflector).
const INVALID_SPI_PER_SECOND: u32 = 10;

/// The budget of INVALID_IKE_SPI answers: a one-second window and what it has spent.
#[derive(Default)]
struct AnswerLimit {
    window: Option<Instant>,
    spent: u32,
}

impl AnswerLimit {
    fn admit(&mut self, now: Instant) -> bool {
        match self.window {
            Some(w) if now < w + Duration::from_secs(1) => {}
            _ => {
                self.window = Some(now);
                self.spent = 0;
            }
        }
        let ok = self.spent < INVALID_SPI_PER_SECOND;
        self.spent += u32::from(ok);
        ok
    }
}

/// Draws of a random value that may come out unusable (zero, or an ESP SPI below 256) before
/// the RNG counts as broken: a working one fails that many times with odds below 2^-190.
const RANDOM_TRIES: usize = 8;

/// What exchange handlers get: the current time, randomness, the output queue and id/SPI
/// allocation.
pub(crate) struct Ctx<'a> {
    pub now: Instant,
    /// The time of day at `now` in seconds since 1970, if the daemon told it
    /// ([`Endpoint::set_time_of_day`]): what certificates are checked against.
    pub unix_time: Option<u64>,
    pub auth_stats: &'a mut AuthStats,
    /// How long a responder's SA waits for IKE_AUTH (`DosConfig::half_open_timeout`).
    pub half_open_timeout: Duration,
    rng: &'a mut dyn RngSource,
    /// Set (and announced) by the first RNG failure.
    fatal: &'a mut Option<Fatal>,
    pub out: &'a mut VecDeque<Output>,
    pub next_child: &'a mut ChildId,
    /// IKE SAs created by a rekey, for the endpoint to adopt.
    pub spawned: &'a mut Vec<IkeSa>,
    /// The endpoint's other IKE SAs (the one being handled is taken out meanwhile): a rekey
    /// collision hands children between an old SA and its successors (RFC 7296 2.8.2).
    /// Reached through `sa`, `take_sa` and `put_sa`, which note what was touched.
    sas: &'a mut HashMap<IkeSaId, Box<IkeSa>>,
    /// SAs taken out and put back: the endpoint moves their deadlines afterwards.
    touched: &'a mut Vec<IkeSaId>,
    /// The SA being handled (out of `sas` meanwhile).
    current: Option<IkeSaId>,
    pub children: &'a mut ChildIndex,
    pub identities: &'a IdentityIndex,
    /// What IKE fragmentation did (RFC 7383), for `show crypto isakmp stats`.
    pub frag_stats: &'a mut FragStats,
    /// Every configured peer: a responder re-selects its peer by IDi in IKE_AUTH.
    pub peers: &'a [Arc<PeerPolicy>],
    /// Address pools and leases (RFC 7296 3.15.4).
    pub pools: &'a mut Pools,
}

/// The established IKE SAs of each peer configuration, by the peer's authenticated
/// identity: whether an IKE_AUTH of ours is the first to the peer (INITIAL_CONTACT, RFC 7296
/// 2.4, 3.16), and which SAs a peer's INITIAL_CONTACT makes stale. Kept by `reschedule`,
/// which sees every SA an input touched.
#[derive(Default)]
pub(crate) struct IdentityIndex {
    by_peer: HashMap<String, HashMap<Identity, BTreeSet<IkeSaId>>>,
    of: HashMap<IkeSaId, (String, Identity)>,
}

impl IdentityIndex {
    fn update(&mut self, sa: &IkeSa) {
        let now = match (&sa.remote_id, sa.is_established()) {
            (Some(id), true) => Some((sa.peer.name.clone(), id.clone())),
            _ => None,
        };
        if self.of.get(&sa.id) == now.as_ref() {
            return;
        }
        self.forget(sa.id);
        if let Some((peer, id)) = now {
            self.by_peer
                .entry(peer.clone())
                .or_default()
                .entry(id.clone())
                .or_default()
                .insert(sa.id);
            self.of.insert(sa.id, (peer, id));
        }
    }

    fn forget(&mut self, ike: IkeSaId) {
        let Some((peer, id)) = self.of.remove(&ike) else {
            return;
        };
        if let Some(ids) = self.by_peer.get_mut(&peer) {
            if let Some(set) = ids.get_mut(&id) {
                set.remove(&ike);
                if set.is_empty() {
                    ids.remove(&id);
                }
            }
            if ids.is_empty() {
                self.by_peer.remove(&peer);
            }
        }
    }

    /// Whether any IKE SA with the peer is established.
    pub fn any(&self, peer: &str) -> bool {
        self.by_peer.contains_key(peer)
    }

    /// The established IKE SAs with `peer` as `id`.
    pub fn with(&self, peer: &str, id: &Identity) -> Vec<IkeSaId> {
        self.by_peer
            .get(peer)
            .and_then(|m| m.get(id))
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// Which IKE SA holds each child SA, and which child each SPI belongs to, so a kernel event
/// naming only an SPI reaches its SA directly (`Endpoint::kernel_expired`). Kept by the
/// three places children come and go: install (`add_child`), removal (`Ctx::remove_child`)
/// and the move to a rekey's successor (`hand_over`).
#[derive(Default)]
pub(crate) struct ChildIndex {
    owner: HashMap<ChildId, IkeSaId>,
    /// Our inbound SPIs (we chose them, so they are unique among ours).
    inbound: HashMap<u32, ChildId>,
    /// The peer's choice, so looked up only after the inbound ones.
    outbound: HashMap<u32, ChildId>,
}

impl ChildIndex {
    pub fn added(&mut self, ike: IkeSaId, c: &ChildSa) {
        self.owner.insert(c.id, ike);
        self.inbound.insert(c.inbound_spi, c.id);
        self.outbound.insert(c.outbound_spi, c.id);
    }

    pub fn moved(&mut self, child: ChildId, to: IkeSaId) {
        if let Some(o) = self.owner.get_mut(&child) {
            *o = to;
        }
    }

    pub fn removed(&mut self, c: &ChildSa) {
        self.owner.remove(&c.id);
        if self.inbound.get(&c.inbound_spi) == Some(&c.id) {
            self.inbound.remove(&c.inbound_spi);
        }
        if self.outbound.get(&c.outbound_spi) == Some(&c.id) {
            self.outbound.remove(&c.outbound_spi);
        }
    }

    pub fn owner(&self, child: ChildId) -> Option<IkeSaId> {
        self.owner.get(&child).copied()
    }

    /// The child of an SPI of ours (`inbound`) or of the peer's, and the IKE SA that holds
    /// it. The two sets are apart: the peer may pick an SPI we use too.
    pub fn by_spi(&self, spi: u32, inbound: bool) -> Option<(IkeSaId, ChildId)> {
        let child = *if inbound {
            self.inbound.get(&spi)
        } else {
            self.outbound.get(&spi)
        }?;
        Some((self.owner(child)?, child))
    }
}

impl Ctx<'_> {
    /// Another IKE SA, to look at.
    pub fn sa(&self, id: IkeSaId) -> Option<&IkeSa> {
        self.sas.get(&id).map(|sa| &**sa)
    }

    /// Takes another IKE SA out, to work on it alongside the current one; `put_sa` gives
    /// it back.
    pub fn take_sa(&mut self, id: IkeSaId) -> Option<Box<IkeSa>> {
        let sa = self.sas.remove(&id)?;
        self.touched.push(id);
        Some(sa)
    }

    pub fn put_sa(&mut self, sa: Box<IkeSa>) {
        self.sas.insert(sa.id, sa);
    }

    /// A random IKE SPI of ours that no IKE SA of this endpoint uses (it routes the peer's
    /// messages, RFC 7296 2.6).
    pub fn fresh_ike_spi(&mut self) -> Result<u64, Fatal> {
        for _ in 0..RANDOM_TRIES {
            let s = self.random_u64()?;
            let used = self.sas.contains_key(&s)
                || self.current == Some(s)
                || self.spawned.iter().any(|sa| sa.id == s);
            if !used {
                return Ok(s);
            }
        }
        Err(self.rng_failed(CryptoError::Rng))
    }

    pub fn transmit(&mut self, local: SocketAddr, remote: SocketAddr, data: Vec<u8>) {
        self.out.push_back(Output::Transmit(Transmit {
            local,
            remote,
            data,
        }));
    }

    pub fn notice(&mut self, peer: Option<&str>, remote: SocketAddr, text: impl Into<String>) {
        self.out.push_back(Output::Notice {
            peer: peer.map(str::to_string),
            remote,
            text: text.into(),
        });
    }

    pub fn failed(&mut self, sa: &IkeSa, text: &str) {
        self.notice(Some(&sa.peer.name), sa.remote, text);
    }

    /// Records the engine's end: the first failure is announced, later ones add nothing.
    fn rng_failed(&mut self, e: CryptoError) -> Fatal {
        let f = Fatal::Rng(e);
        if self.fatal.is_none() {
            *self.fatal = Some(f.clone());
            self.out.push_back(Output::Fatal(f.clone()));
        }
        f
    }

    /// `n` random bytes, or the engine's end: a nonce or IV is never sent predictable.
    pub fn random_bytes(&mut self, n: usize) -> Result<Vec<u8>, Fatal> {
        let mut v = vec![0u8; n];
        match self.rng.fill(&mut v) {
            Ok(()) => Ok(v),
            Err(e) => Err(self.rng_failed(e)),
        }
    }

    /// A DH key pair (RFC 7296 1.2, 1.3); an RNG failure is the engine's end.
    pub fn generate(&mut self, group: DhGroup) -> Result<(DhPrivateKey, Vec<u8>), CryptoError> {
        let r = group.generate(self.rng);
        if let Err(CryptoError::Rng) = r {
            self.rng_failed(CryptoError::Rng);
        }
        r
    }

    /// A non-zero random u64 (an IKE SPI must not be zero, RFC 7296 3.1).
    pub fn random_u64(&mut self) -> Result<u64, Fatal> {
        for _ in 0..RANDOM_TRIES {
            let b: [u8; 8] = self.random_bytes(8)?.try_into().unwrap_or_default();
            let v = u64::from_be_bytes(b);
            if v != 0 {
                return Ok(v);
            }
        }
        Err(self.rng_failed(CryptoError::Rng))
    }

    /// A fresh inbound ESP SPI: random, never below 256 (RFC 4303 2.1). Collisions with an
    /// SA already in the kernel come back as an install error (EEXIST) and fail that child.
    pub fn random_esp_spi(&mut self) -> Result<u32, Fatal> {
        for _ in 0..RANDOM_TRIES {
            let b: [u8; 4] = self.random_bytes(4)?.try_into().unwrap_or_default();
            let v = u32::from_be_bytes(b);
            if v >= 0x100 {
                return Ok(v);
            }
        }
        Err(self.rng_failed(CryptoError::Rng))
    }

    pub fn next_child_id(&mut self) -> ChildId {
        *self.next_child += 1;
        *self.next_child
    }

    pub fn remove_child(&mut self, sa: &IkeSa, c: &ChildSa) {
        self.children.removed(c);
        self.out.push_back(Output::RemoveChild(ChildRemove {
            ike: sa.id,
            child: c.id,
            peer: sa.peer.name.clone(),
            child_name: sa
                .peer
                .children
                .get(c.policy)
                .map(|p| p.name.clone())
                .unwrap_or_default(),
            expired: c.hard_expired,
            local: c.local,
            remote: c.remote,
            inbound_spi: c.inbound_spi,
            outbound_spi: c.outbound_spi,
            local_ts: c.local_ts.clone(),
            remote_ts: c.remote_ts.clone(),
            mode: c.mode,
            encap: c.encap,
        }));
    }
}

/// Errors of the command API (the daemon's requests), never of the peer's input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    #[error("no peer named '{0}'")]
    UnknownPeer(String),
    #[error("peer '{0}' has no single remote address to initiate to")]
    NotInitiable(String),
    #[error("no IKE SA {0}")]
    UnknownSa(IkeSaId),
    #[error("the IKE engine stopped: {0}")]
    Fatal(#[from] Fatal),
}

/// What [`Endpoint::set_peers`] did, by peer name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PeerChanges {
    /// New in the set.
    pub added: Vec<String>,
    /// Gone from the set: their IKE SAs are being deleted.
    pub removed: Vec<String>,
    /// Negotiated parameters changed (which ones): their IKE SAs are being deleted.
    pub renegotiated: Vec<(String, Vec<&'static str>)>,
    /// Their SAs carry on under the new policy.
    pub kept: Vec<String>,
    /// The IKE SAs deleted.
    pub deleted: Vec<IkeSaId>,
}

pub struct Endpoint {
    peers: Vec<Arc<PeerPolicy>>,
    /// Boxed: a table slot is a pointer, not the SA (its load factor would double what
    /// every held SA costs), and taking an SA out to handle it moves eight bytes.
    sas: HashMap<IkeSaId, Box<IkeSa>>,
    /// Responder SAs by (initiator SPI, initiator address), so a retransmitted IKE_SA_INIT
    /// gets the cached response instead of a second SA (RFC 7296 2.1); and those still
    /// half-open, counted for the DoS bounds (2.6).
    half_open: HalfOpen,
    dos: DosConfig,
    cookies: CookieJar,
    /// Whether the last IKE_SA_INIT met the cookie threshold, to tell the operator once
    /// when cookies start and stop.
    demanding_cookies: bool,
    rng: Box<dyn RngSource + Send>,
    out: VecDeque<Output>,
    next_child: ChildId,
    spawned: Vec<IkeSa>,
    touched: Vec<IkeSaId>,
    /// Every IKE SA's next deadline, in order (quinn-proto's timer idea, one entry per SA):
    /// `poll_timeout` reads the first, `handle_timeout` visits only the SAs that are due.
    timers: BTreeSet<(Instant, IkeSaId)>,
    /// Each SA's entry in `timers`, to take it out when the SA's deadline moves.
    deadline: HashMap<IkeSaId, Instant>,
    /// IKE SAs looked at by handlers and deadline upkeep: the cost of an input, for tests.
    visits: u64,
    children: ChildIndex,
    /// Set once the engine cannot go on; every input is ignored after.
    fatal: Option<Fatal>,
    invalid_spi: AnswerLimit,
    identities: IdentityIndex,
    frag_stats: FragStats,
    /// The one owner of address leases: an IKE SA's lease goes when the SA is forgotten.
    pools: Pools,
    /// The time of day at an instant, from the daemon ([`Endpoint::set_time_of_day`]):
    /// certificate validity is a wall-clock matter the engine cannot read itself.
    time_of_day: Option<(Instant, SystemTime)>,
    auth_stats: AuthStats,
}

impl Endpoint {
    pub fn new(peers: Vec<PeerPolicy>, rng: Box<dyn RngSource + Send>) -> Endpoint {
        Endpoint {
            peers: peers.into_iter().map(Arc::new).collect(),
            sas: HashMap::new(),
            half_open: HalfOpen::default(),
            dos: DosConfig::default(),
            cookies: CookieJar::default(),
            demanding_cookies: false,
            rng,
            out: VecDeque::new(),
            next_child: 0,
            spawned: Vec::new(),
            touched: Vec::new(),
            timers: BTreeSet::new(),
            deadline: HashMap::new(),
            visits: 0,
            children: ChildIndex::default(),
            fatal: None,
            invalid_spi: AnswerLimit::default(),
            identities: IdentityIndex::default(),
            frag_stats: FragStats::default(),
            pools: Pools::default(),
            time_of_day: None,
            auth_stats: AuthStats::default(),
        }
    }

    /// Sets the address pools (`ip local pool`): at start, and live at a reload, where
    /// every lease stays with its IKE SA, also one a shrunk or removed pool left outside,
    /// until that SA ends ([`Pools::reconfigure`]).
    pub fn set_pools(&mut self, pools: Vec<AddressPool>) {
        self.pools.reconfigure(pools);
    }

    /// Clients refused because RADIUS named a pool that is not configured (Framed-Pool),
    /// and leases of addresses outside every configured pool.
    pub fn pool_extras(&self) -> (u64, u32) {
        (self.pools.unknown_refused(), self.pools.outside_pools())
    }

    /// Each pool's begin, end, free and in-use figures (`show ip local pool`).
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        self.pools.stats()
    }

    /// The pools and leases, for invariant checks.
    pub fn pools(&self) -> &Pools {
        &self.pools
    }

    /// The leases agree with the IKE SAs: the pools' books balance, each lease is held by a
    /// live IKE SA that knows its address, and no address is held twice.
    pub fn check_leases(&self) -> Result<(), String> {
        self.pools.check()?;
        for (owner, a) in self.pools.owners() {
            match self.sas.get(&owner) {
                Some(sa)
                    if !sa.is_dead()
                        && (sa.virtual_ip.map(IpAddr::V4) == Some(a)
                            || sa.virtual_ip6.map(IpAddr::V6) == Some(a)) => {}
                Some(_) => return Err(format!("lease {a}: its IKE SA {owner:x} disagrees")),
                None => return Err(format!("lease {a} of a forgotten IKE SA {owner:x}")),
            }
        }
        Ok(())
    }

    /// A new peer set (a configuration reload), and what became of the IKE SAs: a peer
    /// that is gone has its IKE SAs deleted with the peer (DELETE, RFC 7296 1.4.1; their
    /// children leave the kernel), a peer whose negotiated parameters changed
    /// ([`PeerPolicy::renegotiation_reasons`]) too (the caller brings it up again as its
    /// start action says), and every other SA carries on under its peer's new policy
    /// object. New peers only join the set: initiating is the caller's command.
    #[must_use]
    pub fn set_peers(&mut self, now: Instant, peers: Vec<PeerPolicy>) -> PeerChanges {
        let mut changes = PeerChanges::default();
        let new: HashMap<&str, &PeerPolicy> = peers.iter().map(|p| (p.name.as_str(), p)).collect();
        for old in &self.peers {
            match new.get(old.name.as_str()) {
                None => changes.removed.push(old.name.clone()),
                Some(n) => {
                    let why = old.renegotiation_reasons(n);
                    if why.is_empty() {
                        changes.kept.push(old.name.clone());
                    } else {
                        changes.renegotiated.push((old.name.clone(), why));
                    }
                }
            }
        }
        let old_names: BTreeSet<&str> = self.peers.iter().map(|p| p.name.as_str()).collect();
        changes.added = peers
            .iter()
            .filter(|p| !old_names.contains(p.name.as_str()))
            .map(|p| p.name.clone())
            .collect();
        self.peers = peers.into_iter().map(Arc::new).collect();
        let kept: HashMap<String, Arc<PeerPolicy>> = self
            .peers
            .iter()
            .filter(|p| changes.kept.contains(&p.name))
            .map(|p| (p.name.clone(), p.clone()))
            .collect();
        let mut ids: Vec<IkeSaId> = self.sas.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(sa) = self.sas.get_mut(&id) else {
                continue;
            };
            if let Some(p) = kept.get(&sa.peer.name) {
                sa.peer = p.clone();
                continue;
            }
            if sa.rekeyed_to().is_some()
                || sa.is_dead()
                || matches!(sa.state, super::sa::State::Deleting { .. })
            {
                // A replaced SA stands for its successor (deleted in this loop too), as in
                // `delete`; the old one is left to its rekey. One being deleted (an earlier
                // reload's) is on its way out already.
                continue;
            }
            if self.fatal.is_none() {
                changes.deleted.push(id);
            }
            self.with_sa(now, id, |sa, ctx| sa.request_delete(ctx));
        }
        changes
    }

    /// Tells the engine the time of day `wall` at the instant `now`: certificates are
    /// checked at `wall + (then - now)` for a later input's `then`. The daemon calls it
    /// before each input, so a stepped clock (NTP) takes effect at once; tests set it once
    /// and let the virtual clock run. Until it is set, certificate authentication refuses
    /// (fail closed: no check without a date).
    pub fn set_time_of_day(&mut self, now: Instant, wall: SystemTime) {
        self.time_of_day = Some((now, wall));
    }

    /// Peer authentications that succeeded and those refused, by reason.
    pub fn auth_stats(&self) -> &AuthStats {
        &self.auth_stats
    }

    /// Sets the responder's DoS bounds (strongSwan's defaults until then). Applies to
    /// IKE_SA_INITs from now on; SAs already half-open keep their timeout.
    pub fn set_dos(&mut self, dos: DosConfig) {
        self.dos = dos;
    }

    pub fn dos(&self) -> &DosConfig {
        &self.dos
    }

    /// The responder's half-open SAs now and what the DoS defence did so far.
    pub fn dos_stats(&self) -> DosStats {
        self.half_open.stats
    }

    /// What IKE fragmentation (RFC 7383) did so far: fragments sent, reassembled, dropped.
    pub fn frag_stats(&self) -> FragStats {
        self.frag_stats
    }

    /// Sizes of the half-open tables (by SPI, waiting, per address), for bound tests.
    #[cfg(test)]
    pub(crate) fn half_open_sizes(&self) -> (usize, usize, usize) {
        self.half_open.sizes()
    }

    /// How many times an IKE SA was looked at so far (handled or rescheduled).
    /// Sets an IKE SA's Session-Timeout deadline as RADIUS would (tests of its life across
    /// rekeys), its next deadline rescheduled.
    #[cfg(test)]
    pub(crate) fn set_session_deadline(&mut self, now: Instant, id: IkeSaId, at: Instant) -> bool {
        self.with_sa(now, id, |sa, _| sa.session_deadline = Some(at))
    }

    #[cfg(test)]
    pub(crate) fn visits(&self) -> u64 {
        self.visits
    }

    /// A command to a stopped engine is refused with why it stopped.
    fn alive(&self) -> Result<(), CommandError> {
        match &self.fatal {
            Some(f) => Err(f.clone().into()),
            None => Ok(()),
        }
    }

    /// Why the engine stopped for good, if it did (see [`Output::Fatal`]).
    pub fn fatal(&self) -> Option<&Fatal> {
        self.fatal.as_ref()
    }

    pub fn peers(&self) -> &[Arc<PeerPolicy>] {
        &self.peers
    }

    pub fn sa(&self, id: IkeSaId) -> Option<&IkeSa> {
        self.sas.get(&id).map(|sa| &**sa)
    }

    pub fn sas(&self) -> impl Iterator<Item = &IkeSa> {
        self.sas.values().map(|sa| &**sa)
    }

    fn ctx(&mut self, now: Instant, current: Option<IkeSaId>) -> Ctx<'_> {
        let unix_time = self.time_of_day.and_then(|(at, wall)| {
            let t = match now.checked_duration_since(at) {
                Some(d) => wall.checked_add(d)?,
                None => wall.checked_sub(at.duration_since(now))?,
            };
            t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
        });
        Ctx {
            now,
            unix_time,
            auth_stats: &mut self.auth_stats,
            half_open_timeout: self.dos.half_open_timeout,
            rng: &mut *self.rng,
            fatal: &mut self.fatal,
            out: &mut self.out,
            next_child: &mut self.next_child,
            spawned: &mut self.spawned,
            sas: &mut self.sas,
            touched: &mut self.touched,
            current,
            children: &mut self.children,
            identities: &self.identities,
            frag_stats: &mut self.frag_stats,
            peers: &self.peers,
            pools: &mut self.pools,
        }
    }

    /// Runs `f` on one IKE SA, with the others reachable through the context, then settles
    /// what it touched. False if there is no such SA.
    fn with_sa(
        &mut self,
        now: Instant,
        id: IkeSaId,
        f: impl FnOnce(&mut IkeSa, &mut Ctx<'_>),
    ) -> bool {
        if self.fatal.is_some() {
            return false;
        }
        let Some(mut sa) = self.sas.remove(&id) else {
            return false;
        };
        self.visits += 1;
        f(&mut sa, &mut self.ctx(now, Some(id)));
        self.sas.insert(id, sa);
        self.settle(Some(id));
        true
    }

    /// After an input: adopts the SAs it created, and for those and the ones it touched
    /// forgets the dead and moves the deadlines. Only those: an input costs the SAs it
    /// concerns, not every SA of the endpoint.
    fn settle(&mut self, handled: Option<IkeSaId>) {
        let mut ids = std::mem::take(&mut self.touched);
        ids.extend(handled);
        for sa in self.spawned.drain(..) {
            ids.push(sa.id);
            self.sas.insert(sa.id, Box::new(sa));
        }
        for id in ids {
            self.reschedule(id);
        }
    }

    fn reschedule(&mut self, id: IkeSaId) {
        self.visits += 1;
        if let Some(t) = self.deadline.remove(&id) {
            self.timers.remove(&(t, id));
        }
        let Some(sa) = self.sas.get(&id) else {
            self.identities.forget(id);
            self.pools.release(id);
            return;
        };
        self.identities.update(sa);
        if sa.role == Role::Responder && !sa.is_half_open() {
            self.half_open
                // Keyed by where its IKE_SA_INIT came from: a NAT-T float moves `remote`.
                .settled(id, sa.spi_i, sa.first_remote, sa.is_dead());
        }
        if sa.is_dead() {
            // Its IkeDown and RemoveChild outputs are already queued. A lease still its own
            // (a rekey handed it over otherwise) goes back to its pool.
            self.sas.remove(&id);
            self.pools.release(id);
        } else if let Some(t) = sa.next_timeout() {
            self.timers.insert((t, id));
            self.deadline.insert(id, t);
        }
    }

    /// The IKE SA that replaced `ike`, through every rekey since; `ike` if none.
    fn successor(&self, mut ike: IkeSaId) -> IkeSaId {
        for _ in 0..8 {
            match self.sas.get(&ike).and_then(|sa| sa.rekeyed_to()) {
                Some(next) if self.sas.contains_key(&next) => ike = next,
                _ => break,
            }
        }
        ike
    }

    /// The IKE SA that holds `child` now: `ike`, or the SA it moved to since (the daemon
    /// may name the old one before it has applied an IkeRekeyed).
    fn owner(&self, ike: IkeSaId, child: ChildId) -> IkeSaId {
        self.children.owner(child).unwrap_or(ike)
    }

    /// Checks the child index against the SAs' own children, for the simulation.
    #[cfg(test)]
    pub(crate) fn check_child_index(&self) -> Result<(), String> {
        let mut held = HashMap::new();
        for sa in self.sas.values() {
            for c in &sa.children {
                held.insert(c.id, sa.id);
                if self.children.by_spi(c.inbound_spi, true) != Some((sa.id, c.id))
                    || self.children.by_spi(c.outbound_spi, false) != Some((sa.id, c.id))
                {
                    return Err(format!("child {} not found by its SPIs", c.id));
                }
            }
        }
        if held != self.children.owner {
            return Err(format!(
                "child index {:?}, SAs hold {held:?}",
                self.children.owner
            ));
        }
        Ok(())
    }

    /// Starts an IKE SA (and its first child) to the named peer from `local`.
    pub fn initiate(
        &mut self,
        now: Instant,
        peer: &str,
        local: SocketAddr,
    ) -> Result<IkeSaId, CommandError> {
        let policy = self
            .peers
            .iter()
            .find(|p| p.name == peer)
            .cloned()
            .ok_or_else(|| CommandError::UnknownPeer(peer.into()))?;
        let super::policy::RemoteMatch::Single(ip) = policy.remote else {
            return Err(CommandError::NotInitiable(peer.into()));
        };
        let remote = SocketAddr::new(ip, policy.remote_port);
        self.alive()?;
        let mut ctx = self.ctx(now, None);
        let spi_i = ctx.fresh_ike_spi()?;
        let mut sa = IkeSa::new(spi_i, Role::Initiator, spi_i, 0, local, remote, policy, now);
        sa.start_ike_sa_init(&mut ctx, None, None);
        ctx.spawned.push(sa);
        self.settle(None);
        Ok(spi_i)
    }

    /// Deletes an IKE SA and its children with the peer (clear crypto session, shutdown).
    /// A replaced IKE SA stands for its successor, which has its children: the old one is
    /// left to its rekey, whose peer may still wait for our answer on it.
    pub fn delete(&mut self, now: Instant, id: IkeSaId) -> Result<(), CommandError> {
        self.alive()?;
        if !self.sas.contains_key(&id) {
            return Err(CommandError::UnknownSa(id));
        }
        let id = self.successor(id);
        self.with_sa(now, id, |sa, ctx| sa.request_delete(ctx))
            .then_some(())
            .ok_or(CommandError::UnknownSa(id))
    }

    /// Tells the engine the kernel could not install a child SA: it is deleted with the peer.
    /// RADIUS answered the EAP message of `ike` (an [`Output::EapRequest`]): the engine
    /// answers the client's waiting IKE_AUTH. An SA that went meanwhile, or that waits for
    /// nothing, ignores it.
    pub fn eap_answer(&mut self, now: Instant, ike: IkeSaId, answer: EapAnswer) {
        self.with_sa(now, ike, |sa, ctx| sa.eap_answered(ctx, answer));
    }

    pub fn child_gone(&mut self, now: Instant, ike: IkeSaId, child: ChildId) {
        let ike = self.owner(ike, child);
        self.with_sa(now, ike, |sa, ctx| sa.delete_children(ctx, vec![child]));
    }

    /// Tells the engine the kernel hard-expired a child SA (its rekey never happened): it is
    /// deleted with the peer and its configuration brought up again in a new child SA.
    pub fn child_expired(&mut self, now: Instant, ike: IkeSaId, child: ChildId) {
        let ike = self.owner(ike, child);
        self.with_sa(now, ike, |sa, ctx| sa.child_expired(ctx, child));
    }

    /// The kernel's expiry of an SA it names by SPI and destination (XFRM_MSG_EXPIRE, either
    /// SA of a pair): soft asks for a rekey, make before break (RFC 7296 2.8); hard means the
    /// rekey never came, so the pair goes and its configuration comes up again. The engine
    /// resolves the SA itself: our inbound SA if `dst` is the IKE SA's local address, else
    /// our outbound one. None if no child of ours has it (already gone).
    pub fn kernel_expired(
        &mut self,
        now: Instant,
        spi: u32,
        dst: IpAddr,
        hard: bool,
    ) -> Option<ChildId> {
        let local = |ep: &Endpoint, ike: IkeSaId| ep.sas.get(&ike).map(|sa| sa.local.ip());
        let (ike, child) = self
            .children
            .by_spi(spi, true)
            .filter(|(ike, _)| local(self, *ike) == Some(dst))
            .or_else(|| {
                self.children
                    .by_spi(spi, false)
                    .filter(|(ike, _)| local(self, *ike) != Some(dst))
            })?;
        self.with_sa(now, ike, |sa, ctx| {
            if hard {
                sa.child_expired(ctx, child);
            } else {
                sa.queue_task(ctx, super::sa::Task::RekeyChild(child));
            }
        });
        Some(child)
    }

    /// The kernel saw an authenticated ESP-in-UDP packet for our inbound SA `spi` (at
    /// `dst`) come from `new` (XFRM_MSG_MAPPING): the peer's NAT rebound. As for an
    /// authenticated IKE message (RFC 7296 2.23), an IKE SA with a NATed peer follows it,
    /// and its children with it. None if no such child, its peer is not behind a NAT, or
    /// the SA is there already.
    pub fn kernel_mapping(
        &mut self,
        now: Instant,
        spi: u32,
        dst: IpAddr,
        new: SocketAddr,
    ) -> Option<ChildId> {
        let (ike, child) = self.children.by_spi(spi, true)?;
        let sa = self.sas.get(&ike)?;
        if sa.local.ip() != dst || !sa.nat.remote || !sa.nat.in_use() {
            return None;
        }
        if sa.remote == new {
            return None; // followed already (the kernel reports packets until it knows)
        }
        let local = sa.local;
        self.with_sa(now, ike, |sa, ctx| sa.follow(ctx, local, new));
        Some(child)
    }

    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        if self.fatal.is_some() {
            return;
        }
        let header = match Header::peek(data) {
            Ok(h) => h,
            Err(e) => {
                // Not answerable: we can't even trust the SPIs (RFC 7296 2.21.1).
                self.ctx(now, None).notice(
                    None,
                    remote,
                    format!("dropped malformed IKE datagram ({} bytes): {e}", data.len()),
                );
                return;
            }
        };
        if header.exchange == ExchangeType::IKE_SA_INIT
            && !header.flags.response
            && header.spi_r == 0
        {
            self.handle_init_request(now, local, remote, header, data);
        } else {
            // The peer's I flag says which SPI is ours: set means the peer is the original
            // initiator and our SPI is the responder's.
            let ours = if header.flags.initiator {
                header.spi_r
            } else {
                header.spi_i
            };
            // A NATed SA takes any address: the NAT may have moved the peer, and only an
            // authenticated message moves the SA (RFC 7296 2.23).
            let known = self
                .sas
                .get(&ours)
                .is_some_and(|sa| sa.remote.ip() == remote.ip() || sa.nat.in_use());
            let handled = known
                && self.with_sa(now, ours, |sa, ctx| {
                    sa.handle_message(ctx, header, data, local, remote)
                });
            if !handled {
                let answered = !self.sas.contains_key(&ours)
                    && self.answer_invalid_spi(now, local, remote, &header, data);
                self.ctx(now, None).notice(
                    None,
                    remote,
                    format!(
                        "{} {:?} for unknown IKE SA {:016x}",
                        if answered {
                            "answered INVALID_IKE_SPI to"
                        } else {
                            "dropped"
                        },
                        header.exchange,
                        ours
                    ),
                );
            }
        }
    }

    /// A request for an IKE SA we do not know (we restarted, or it ended here): an
    /// unprotected INFORMATIONAL response with INVALID_IKE_SPI, SPIs and message ID copied
    /// (RFC 7296 2.21.4, 1.5), so the peer need not wait for its liveness check to give
    /// up on it. Never to a response (2.21.4: MUST NOT respond), never to an INVALID_IKE_SPI,
    /// never without both SPIs, never to an address no peer is configured for, and no more
    /// than a few a second. True if answered.
    fn answer_invalid_spi(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        req: &Header,
        data: &[u8],
    ) -> bool {
        if req.flags.response || req.spi_i == 0 || req.spi_r == 0 {
            return false;
        }
        // Only to addresses a peer is configured for, as IKE_SA_INIT: nobody else can
        // have had an IKE SA with us, and strangers get nothing reflected.
        if !self.peers.iter().any(|p| p.remote.matches(remote.ip())) {
            return false;
        }
        // An unprotected message naming INVALID_IKE_SPI is a notification itself.
        if req.exchange == ExchangeType::INFORMATIONAL
            && Message::decode(data)
                .is_ok_and(|m| m.find_notify(NotifyType::INVALID_IKE_SPI).is_some())
        {
            return false;
        }
        if !self.invalid_spi.admit(now) {
            return false;
        }
        let msg = Message {
            header: Header {
                spi_i: req.spi_i,
                spi_r: req.spi_r,
                exchange: ExchangeType::INFORMATIONAL,
                flags: Flags {
                    // We are the other end of whatever the peer thinks this SA is.
                    initiator: !req.flags.initiator,
                    version: false,
                    response: true,
                },
                message_id: req.message_id,
            },
            payloads: vec![Payload::Notify(NotifyPayload::new(
                NotifyType::INVALID_IKE_SPI,
                Vec::new(),
            ))],
        };
        let Ok(bytes) = msg.encode() else {
            return false;
        };
        self.ctx(now, None).transmit(local, remote, bytes);
        true
    }

    fn handle_init_request(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        header: Header,
        data: &[u8],
    ) {
        if let Some(id) = self.half_open.find(header.spi_i, remote) {
            if self.with_sa(now, id, |sa, ctx| {
                sa.handle_message(ctx, header, data, local, remote)
            }) {
                return;
            }
        }
        let Some(policy) = self
            .peers
            .iter()
            .filter(|p| p.remote.matches(remote.ip()))
            .max_by_key(|p| p.remote.specificity())
            .cloned()
        else {
            self.half_open.stats.dropped_unknown_peer += 1;
            self.ctx(now, None).notice(
                None,
                remote,
                "IKE_SA_INIT from an address no peer is configured for: ignored",
            );
            return;
        };
        if !self.admit_init(now, local, remote, &header, data) {
            return;
        }
        let mut ctx = self.ctx(now, None);
        let Ok(spi_r) = ctx.fresh_ike_spi() else {
            return;
        };
        let mut sa = IkeSa::new(
            spi_r,
            Role::Responder,
            header.spi_i,
            spi_r,
            local,
            remote,
            policy,
            now,
        );
        if sa.answer_ike_sa_init(&mut ctx, header, data) {
            ctx.spawned.push(sa);
            self.half_open.added(spi_r, header.spi_i, remote);
        }
        self.settle(None);
    }

    /// The DoS bounds on a new IKE_SA_INIT (RFC 7296 2.6), cheapest and stateless first:
    /// past `cookie_threshold` half-open SAs, no valid COOKIE gets a COOKIE and nothing
    /// kept; then the per-address and the global bound drop it unanswered. True: go on.
    fn admit_init(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        header: &Header,
        data: &[u8],
    ) -> bool {
        let dos = self.dos;
        let count = self.half_open.count();
        let demand = dos.cookie_threshold > 0 && count >= dos.cookie_threshold as usize;
        if demand != self.demanding_cookies {
            self.demanding_cookies = demand;
            let text = if demand {
                format!("{count} half-open IKE SAs: IKE_SA_INIT now needs a COOKIE (RFC 7296 2.6)")
            } else {
                format!("{count} half-open IKE SAs: IKE_SA_INIT no longer needs a COOKIE")
            };
            self.ctx(now, None).notice(None, remote, text);
        }
        if demand && !self.check_cookie(now, local, remote, header, data) {
            return false;
        }
        if dos.block_threshold > 0 && self.half_open.from(remote.ip()) >= dos.block_threshold {
            self.half_open.stats.dropped_blocked += 1;
            return false;
        }
        if dos.half_open_limit > 0 && count >= dos.half_open_limit as usize {
            self.half_open.stats.dropped_limit += 1;
            return false;
        }
        true
    }

    /// True if the request carries a cookie we made for its Ni, address and SPIi;
    /// otherwise it is answered with a fresh cookie (or dropped if it has no nonce).
    fn check_cookie(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        header: &Header,
        data: &[u8],
    ) -> bool {
        let msg = match Message::decode(data) {
            Ok(m) if m.payloads.nonce().is_some() => m,
            _ => {
                self.half_open.stats.dropped_malformed += 1;
                return false;
            }
        };
        let ni = msg
            .payloads
            .nonce()
            .map(|n| n.data.as_slice())
            .unwrap_or_default();
        if self.cookies.due(now, &self.dos) {
            let Ok(key) = self.ctx(now, None).random_bytes(32) else {
                return false;
            };
            self.cookies.rotate(now, &key);
        }
        if let Some(c) = msg.find_notify(NotifyType::COOKIE) {
            if self
                .cookies
                .verify(now, &c.data, ni, remote.ip(), header.spi_i)
            {
                self.half_open.stats.cookies_valid += 1;
                return true;
            }
            self.half_open.stats.cookies_invalid += 1;
        }
        let Some(cookie) = self.cookies.issue(ni, remote.ip(), header.spi_i) else {
            return false;
        };
        // 2.6: the response is the COOKIE notify alone, SPIr zero, and nothing is kept.
        let reply = Message {
            header: Header {
                spi_i: header.spi_i,
                spi_r: 0,
                exchange: ExchangeType::IKE_SA_INIT,
                flags: Flags {
                    initiator: false,
                    version: false,
                    response: true,
                },
                message_id: 0,
            },
            payloads: vec![Payload::Notify(NotifyPayload::new(
                NotifyType::COOKIE,
                cookie,
            ))],
        };
        if let Ok(bytes) = reply.encode() {
            self.half_open.stats.cookies_sent += 1;
            self.ctx(now, None).transmit(local, remote, bytes);
        }
        false
    }

    /// Fires the timers that are due: only their SAs are visited.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = Vec::new();
        while let Some(&(t, id)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            self.deadline.remove(&id);
            due.push(id);
        }
        for id in due {
            self.with_sa(now, id, |sa, ctx| sa.handle_timeout(ctx));
        }
    }

    /// The earliest instant `handle_timeout` has work: the first deadline, O(1).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Rekeys a child SA (the kernel's soft expiry or an operator): make before break.
    pub fn rekey_child(
        &mut self,
        now: Instant,
        ike: IkeSaId,
        child: ChildId,
    ) -> Result<(), CommandError> {
        let ike = self.owner(ike, child);
        self.alive()?;
        self.with_sa(now, ike, |sa, ctx| {
            sa.queue_task(ctx, super::sa::Task::RekeyChild(child))
        })
        .then_some(())
        .ok_or(CommandError::UnknownSa(ike))
    }

    /// Rekeys an IKE SA now (normally its own timer does).
    pub fn rekey_ike(&mut self, now: Instant, ike: IkeSaId) -> Result<(), CommandError> {
        self.alive()?;
        self.with_sa(now, ike, |sa, ctx| {
            if let Some(l) = sa.life_mut() {
                l.rekey_at = None;
            }
            sa.queue_task(ctx, super::sa::Task::RekeyIke);
        })
        .then_some(())
        .ok_or(CommandError::UnknownSa(ike))
    }
}
