//! The owner task of one accounting server.
//!
//! It alone holds the server's connected UDP socket, its 256 identifiers and its in-flight
//! requests; callers reach it through an mpsc queue and get their answer on a oneshot. It
//! publishes its counters and dead state on a `watch` channel, which the [`Group`] reads to
//! choose servers and to show statistics: one writer, no shared locks.
//!
//! [`Group`]: crate::client::Group

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::access::{self, AccessRequest};
use crate::client::{ClientConfig, Failure, ServerSpec};
use crate::record::AccountingRecord;
use crate::response;

/// How many identifiers one request keeps after retransmitting under new ones, so that a late
/// answer to an earlier transmission still completes it. Bounded so that a large `retransmit`
/// cannot eat the 256 identifiers of the server.
const IDS_KEPT_PER_REQUEST: usize = 4;

/// The caller's side of one server.
pub(crate) struct ServerHandle {
    pub name: String,
    pub addr: SocketAddr,
    /// What the task was started with (its secret also reads what an answer carries
    /// encrypted, MS-MPPE keys); a reload keeps the task only if both are unchanged.
    pub spec: ServerSpec,
    pub config: ClientConfig,
    pub tx: mpsc::Sender<Command>,
    pub state: watch::Receiver<ServerState>,
}

pub(crate) enum Command {
    Send {
        request: Request,
        reply: oneshot::Sender<Result<Outcome, Failure>>,
    },
}

/// What a server is asked: the two kinds share identifiers, retransmission and response
/// authentication; they differ in encoding, answer codes and retransmission (below).
#[derive(Clone)]
pub(crate) enum Request {
    Accounting(Arc<AccountingRecord>),
    /// An Access-Request (RFC 3579); the server must be the authentication port.
    Access(Arc<AccessRequest>),
}

impl Request {
    fn is_access(&self) -> bool {
        matches!(self, Request::Access(_))
    }
}

/// A request answered by this server.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub tries: u32,
    pub rtt: Duration,
    /// The authenticated answer, cut to its Length, and the Request Authenticator of the
    /// transmission it answers (MS-MPPE keys are encrypted with it, RFC 2548 2.4.2).
    pub answer: Vec<u8>,
    pub request_authenticator: [u8; 16],
}

/// Counters and state published by the task after every event.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerState {
    pub requests: u64,
    pub retransmissions: u64,
    pub responses: u64,
    pub timeouts: u64,
    pub failed: u64,
    pub forged: u64,
    pub malformed: u64,
    pub unmatched: u64,
    pub socket_errors: u64,
    pub in_flight: usize,
    pub queued: usize,
    pub last_rtt: Option<Duration>,
    /// Set when a request exhausted its tries and `dead_time` is not zero; cleared by any
    /// authentic response.
    pub dead_until: Option<(Instant, SystemTime)>,
}

impl ServerState {
    pub fn is_dead(&self, now: Instant) -> bool {
        self.dead_until.is_some_and(|(until, _)| until > now)
    }
}

pub(crate) fn spawn(spec: ServerSpec, config: ClientConfig) -> ServerHandle {
    let (tx, rx) = mpsc::channel(1024);
    let (state_tx, state_rx) = watch::channel(ServerState::default());
    let handle = ServerHandle {
        name: spec.name.clone(),
        addr: spec.addr,
        spec: spec.clone(),
        config: config.clone(),
        tx,
        state: state_rx,
    };
    let task = Task {
        spec,
        config,
        slots: std::array::from_fn(|_| None),
        cursor: 0,
        in_flight: HashMap::new(),
        queue: VecDeque::new(),
        next_key: 0,
        state: ServerState::default(),
        publish: state_tx,
    };
    tokio::spawn(task.run(rx));
    handle
}

/// One identifier in use: which request holds it and the Request Authenticator sent with it.
struct Slot {
    key: u64,
    authenticator: [u8; 16],
    sent_at: Instant,
    access: bool,
}

struct InFlight {
    request: Request,
    reply: oneshot::Sender<Result<Outcome, Failure>>,
    /// Transmissions so far (1 = only the first).
    tries: u32,
    /// Identifiers held, oldest first; the last one is the latest transmission's.
    ids: VecDeque<u8>,
    /// The latest transmission, resent as is if no fresh identifier is free.
    bytes: Vec<u8>,
    timeout: Duration,
    deadline: Instant,
}

struct Waiting {
    request: Request,
    reply: oneshot::Sender<Result<Outcome, Failure>>,
}

struct Task {
    spec: ServerSpec,
    config: ClientConfig,
    slots: [Option<Slot>; 256],
    /// Where the search for a free identifier starts: identifiers go round, so a freed one is
    /// reused as late as possible (a late duplicate answer then finds it free, not reused).
    cursor: u8,
    in_flight: HashMap<u64, InFlight>,
    /// Requests waiting for an identifier (all 256 in flight).
    queue: VecDeque<Waiting>,
    next_key: u64,
    state: ServerState,
    publish: watch::Sender<ServerState>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut socket: Option<UdpSocket> = None;
        let mut buf = vec![0u8; response::MAX_LEN];
        let mut open = true;
        loop {
            if !open && self.in_flight.is_empty() && self.queue.is_empty() {
                break;
            }
            let deadline = self.in_flight.values().map(|f| f.deadline).min();
            tokio::select! {
                command = rx.recv(), if open => match command {
                    Some(Command::Send { request, reply }) => {
                        self.queue.push_back(Waiting { request, reply });
                        self.admit(&mut socket).await;
                    }
                    None => open = false,
                },
                received = recv_from(socket.as_ref(), &mut buf) => match received {
                    Ok((n, from)) => {
                        self.on_datagram(&buf[..n], from);
                        self.admit(&mut socket).await;
                    }
                    Err(e) => self.on_recv_error(e, &mut socket),
                },
                _ = sleep_until(deadline) => {
                    // Answers may be waiting in the socket when a busy runtime wakes us late
                    // (select! picks among ready branches at random): take them first, so
                    // that no answered request is retransmitted, which the server would
                    // count as a new record (new Identifier, new Acct-Delay-Time).
                    if let Some(s) = socket.as_ref() {
                        while let Ok((n, from)) = s.try_recv_from(&mut buf) {
                            self.on_datagram(&buf[..n], from);
                        }
                    }
                    self.on_deadlines(&mut socket).await;
                    self.admit(&mut socket).await;
                }
            }
            self.publish();
        }
    }

    fn publish(&mut self) {
        self.state.in_flight = self.in_flight.len();
        self.state.queued = self.queue.len();
        self.publish.send_replace(self.state.clone());
    }

    /// Sends waiting requests while identifiers are free.
    async fn admit(&mut self, socket: &mut Option<UdpSocket>) {
        while !self.queue.is_empty() {
            let Some(id) = self.free_identifier() else {
                return;
            };
            let Some(waiting) = self.queue.pop_front() else {
                return;
            };
            if waiting.reply.is_closed() {
                continue; // the caller gave up
            }
            let key = self.next_key;
            self.next_key += 1;
            self.state.requests += 1;
            let bytes = self.transmit(socket, key, id, &waiting.request).await;
            let timeout = self.config.timeout;
            self.in_flight.insert(
                key,
                InFlight {
                    request: waiting.request,
                    reply: waiting.reply,
                    tries: 1,
                    ids: VecDeque::from([id]),
                    bytes,
                    timeout,
                    deadline: Instant::now() + timeout,
                },
            );
        }
    }

    fn free_identifier(&mut self) -> Option<u8> {
        for i in 0..=255u8 {
            let id = self.cursor.wrapping_add(i);
            if self.slots[id as usize].is_none() {
                self.cursor = id.wrapping_add(1);
                return Some(id);
            }
        }
        None
    }

    /// Encodes the request under `id` (a record with the Acct-Delay-Time of this moment, an
    /// Access-Request with a fresh random Request Authenticator), takes the slot and sends. A
    /// send error counts as a lost transmission: the deadline will retry it.
    async fn transmit(
        &mut self,
        socket: &mut Option<UdpSocket>,
        key: u64,
        id: u8,
        request: &Request,
    ) -> Vec<u8> {
        let bytes = match request {
            Request::Accounting(record) => {
                let delay = record.delay_at(SystemTime::now());
                record.encode(id, &self.spec.secret, delay)
            }
            Request::Access(req) => {
                // RFC 2865 3: unpredictable and unique over the secret's lifetime.
                let mut ra = [0u8; 16];
                if getrandom::getrandom(&mut ra).is_err() {
                    self.state.socket_errors += 1;
                    tracing::error!(server = %self.spec.name, "no randomness for a Request Authenticator");
                    return Vec::new();
                }
                // Checked by the caller before it was queued (Group::authenticate).
                req.encode(id, &ra, &self.spec.secret).unwrap_or_default()
            }
        };
        if bytes.len() < response::HEADER_LEN {
            return bytes;
        }
        let mut authenticator = [0u8; 16];
        authenticator.copy_from_slice(&bytes[4..20]);
        self.slots[id as usize] = Some(Slot {
            key,
            authenticator,
            sent_at: Instant::now(),
            access: request.is_access(),
        });
        self.send(socket, &bytes).await;
        bytes
    }

    async fn send(&mut self, socket: &mut Option<UdpSocket>, bytes: &[u8]) {
        if socket.is_none() {
            match connect(self.spec.addr, self.config.source).await {
                Ok(s) => *socket = Some(s),
                Err(e) => {
                    self.state.socket_errors += 1;
                    tracing::warn!(server = %self.spec.name, addr = %self.spec.addr, error = %e,
                        "RADIUS accounting socket");
                    return;
                }
            }
        }
        if let Some(s) = socket.as_ref() {
            if let Err(e) = s.send(bytes).await {
                self.state.socket_errors += 1;
                tracing::debug!(server = %self.spec.name, error = %e, "RADIUS send failed");
            }
        }
    }

    fn on_recv_error(&mut self, e: io::Error, socket: &mut Option<UdpSocket>) {
        self.state.socket_errors += 1;
        // ECONNREFUSED is an ICMP port unreachable for an earlier datagram: the server is not
        // listening; the deadlines handle it. Anything else: start again with a new socket.
        if e.kind() != io::ErrorKind::ConnectionRefused {
            tracing::warn!(server = %self.spec.name, error = %e, "RADIUS receive failed; new socket");
            *socket = None;
        }
    }

    fn on_datagram(&mut self, datagram: &[u8], from: SocketAddr) {
        if from != self.spec.addr {
            // A connected socket only gets the server's datagrams; count it all the same.
            self.state.forged += 1;
            return;
        }
        let candidate = match response::parse(datagram, &self.spec.secret) {
            Ok(c) => c,
            Err(why) => {
                self.state.malformed += 1;
                tracing::debug!(server = %self.spec.name, ?why, "malformed RADIUS response ignored");
                return;
            }
        };
        let Some(slot) = &self.slots[candidate.identifier as usize] else {
            // A duplicate answer to a completed request, or a stray.
            self.state.unmatched += 1;
            tracing::debug!(server = %self.spec.name, id = candidate.identifier,
                "RADIUS response for no request in flight ignored");
            return;
        };
        let access_code = [
            access::ACCESS_ACCEPT,
            access::ACCESS_REJECT,
            access::ACCESS_CHALLENGE,
        ]
        .contains(&candidate.bytes[0]);
        if access_code != slot.access {
            self.state.malformed += 1;
            tracing::debug!(server = %self.spec.name, code = candidate.bytes[0],
                "RADIUS response of the wrong kind for its request ignored");
            return;
        }
        if !response::is_authentic(&candidate, &slot.authenticator, &self.spec.secret) {
            self.state.forged += 1;
            tracing::warn!(server = %self.spec.name, id = candidate.identifier,
                "RADIUS response with a wrong authenticator ignored (wrong secret or forged)");
            return;
        }
        // RFC 3579 3.2, and BlastRADIUS: an answer to an Access-Request counts only with a
        // valid Message-Authenticator, whatever its code.
        if slot.access
            && !access::has_valid_message_authenticator(
                candidate.bytes,
                &slot.authenticator,
                &self.spec.secret,
            )
        {
            self.state.forged += 1;
            tracing::warn!(server = %self.spec.name, id = candidate.identifier,
                "RADIUS answer without a valid Message-Authenticator ignored");
            return;
        }
        let (key, rtt) = (slot.key, slot.sent_at.elapsed());
        let request_authenticator = slot.authenticator;
        let answer = candidate.bytes.to_vec();
        let Some(done) = self.in_flight.remove(&key) else {
            return;
        };
        self.release(key, &done.ids);
        self.state.responses += 1;
        self.state.last_rtt = Some(rtt);
        self.state.dead_until = None;
        let _ = done.reply.send(Ok(Outcome {
            tries: done.tries,
            rtt,
            answer,
            request_authenticator,
        }));
    }

    async fn on_deadlines(&mut self, socket: &mut Option<UdpSocket>) {
        let now = Instant::now();
        let due: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            let Some(mut f) = self.in_flight.remove(&key) else {
                continue;
            };
            self.state.timeouts += 1;
            if f.reply.is_closed() {
                self.release(key, &f.ids);
                continue;
            }
            if f.tries > self.config.retransmit {
                self.release(key, &f.ids);
                self.state.failed += 1;
                if !self.config.dead_time.is_zero() {
                    self.state.dead_until = Some((
                        Instant::now() + self.config.dead_time,
                        SystemTime::now() + self.config.dead_time,
                    ));
                    tracing::warn!(server = %self.spec.name, addr = %self.spec.addr,
                        dead_time_s = self.config.dead_time.as_secs(), "RADIUS accounting server marked dead");
                }
                let _ = f.reply.send(Err(Failure::NoAnswer { tries: f.tries }));
                continue;
            }
            // RFC 2866 §5.2: Acct-Delay-Time changes, so the Identifier must change too. An
            // Access-Request is resent as it was, same Identifier and Request Authenticator
            // (RFC 5080 2.2.1): the server then answers it once, and an EAP conversation
            // does not see the same step twice.
            self.state.retransmissions += 1;
            f.tries += 1;
            f.timeout = (f.timeout * 2).min(self.config.max_timeout.max(self.config.timeout));
            let fresh = if f.request.is_access() {
                None
            } else {
                self.free_identifier()
            };
            match fresh {
                Some(id) => {
                    if f.ids.len() >= IDS_KEPT_PER_REQUEST {
                        if let Some(old) = f.ids.pop_front() {
                            self.slots[old as usize] = None;
                        }
                    }
                    f.ids.push_back(id);
                    f.bytes = self.transmit(socket, key, id, &f.request).await;
                }
                None => {
                    // No identifier free: resend the same octets under the same one, which
                    // RFC 2866 allows as the attributes do not change.
                    let last = *f.ids.back().expect("a request holds an identifier");
                    if let Some(slot) = &mut self.slots[last as usize] {
                        slot.sent_at = Instant::now();
                    }
                    let bytes = std::mem::take(&mut f.bytes);
                    self.send(socket, &bytes).await;
                    f.bytes = bytes;
                }
            }
            f.deadline = Instant::now() + f.timeout;
            self.in_flight.insert(key, f);
        }
    }

    fn release(&mut self, key: u64, ids: &VecDeque<u8>) {
        for &id in ids {
            if self.slots[id as usize]
                .as_ref()
                .is_some_and(|s| s.key == key)
            {
                self.slots[id as usize] = None;
            }
        }
    }
}

async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<UdpSocket> {
    let local = match (source, addr) {
        (Some(ip), _) => SocketAddr::new(ip, 0),
        (None, SocketAddr::V4(_)) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
        (None, SocketAddr::V6(_)) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(addr).await?;
    Ok(socket)
}

async fn recv_from(socket: Option<&UdpSocket>, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
