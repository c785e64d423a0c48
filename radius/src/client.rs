//! The accounting client: a server group with failover over per-server owner tasks.
//!
//! Our own transport, because the `radius` crate's client accepts forged responses, never
//! retransmits and opens a socket per request. Per server (see `server.rs`): one connected UDP
//! socket, 256 identifiers (a request waits when all are in flight), retransmission with a
//! doubling timeout, a new Identifier and Acct-Delay-Time on every retransmission
//! (RFC 2866 §5.2), and responses checked for source, code, length, identifier and Response
//! Authenticator before they count.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use crate::access::{self, AccessAnswer, AccessRequest, AnswerError, RequestError};
use crate::record::AccountingRecord;
use crate::server::{self, Command, Request, ServerHandle};

/// One accounting server.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// The name shown in statistics and errors.
    pub name: String,
    pub addr: SocketAddr,
    /// The shared secret (RFC 2865 §3: must not be empty).
    pub secret: Vec<u8>,
}

impl fmt::Debug for ServerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSpec")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Timers of the transport, the same for every server of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Wait for an answer to the first transmission (IOS `radius-server timeout`, 5 s).
    pub timeout: Duration,
    /// Transmissions after the first (IOS `radius-server retransmit`, 3).
    pub retransmit: u32,
    /// The timeout doubles on each retransmission up to this (never below `timeout`).
    pub max_timeout: Duration,
    /// How long a server that exhausted its tries is skipped (IOS `radius-server deadtime`);
    /// zero: never marked dead (IOS's default).
    pub dead_time: Duration,
    /// Source address of the requests (IOS `ip radius source-interface`); default: the
    /// kernel's choice for the route.
    pub source: Option<IpAddr>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            timeout: Duration::from_secs(5),
            retransmit: 3,
            max_timeout: Duration::from_secs(20),
            dead_time: Duration::ZERO,
            source: None,
        }
    }
}

/// A record the server acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The server that answered.
    pub server: String,
    /// Transmissions to that server (1 = answered the first time).
    pub tries: u32,
    /// Round trip of the answered transmission.
    pub rtt: Duration,
}

/// Why one server did not take a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("no answer after {tries} tries")]
    NoAnswer { tries: u32 },
    #[error("server task stopped")]
    Stopped,
}

/// One server's part in a failed [`Group::send`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub server: String,
    pub failure: Failure,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("no RADIUS accounting server configured")]
    NoServers,
    #[error("RADIUS server {0:?}: the shared secret is empty")]
    EmptySecret(String),
    #[error("RADIUS server name {0:?} is used twice")]
    DuplicateName(String),
    /// Every server tried failed; the caller keeps the record and tries again later.
    #[error("accounting record not delivered: {}", attempts_text(.attempts))]
    Undelivered { attempts: Vec<Attempt> },
    /// No authentication server answered an Access-Request.
    #[error("no RADIUS authentication server answered: {}", attempts_text(.attempts))]
    Unanswered { attempts: Vec<Attempt> },
    #[error("Access-Request not sent: {0}")]
    Request(#[from] RequestError),
    /// An authenticated answer we cannot use (server {server}).
    #[error("RADIUS server {server}: {error}")]
    Answer { server: String, error: AnswerError },
}

fn attempts_text(attempts: &[Attempt]) -> String {
    attempts
        .iter()
        .map(|a| format!("{}: {}", a.server, a.failure))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Per-server counters, for a `show aaa servers`-like view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ServerStats {
    pub name: String,
    pub addr: SocketAddr,
    /// Records sent to this server (first transmissions).
    pub requests: u64,
    pub retransmissions: u64,
    /// Authentic Accounting-Responses that completed a request.
    pub responses: u64,
    /// Transmissions that got no answer in their timeout.
    pub timeouts: u64,
    /// Requests that exhausted their tries here.
    pub failed: u64,
    /// Responses ignored: wrong Response Authenticator (or wrong source).
    pub forged: u64,
    /// Responses ignored: not a well-formed Accounting-Response.
    pub malformed: u64,
    /// Responses ignored: their identifier is not in flight (late duplicates, strays).
    pub unmatched: u64,
    pub socket_errors: u64,
    pub in_flight: usize,
    /// Requests waiting for a free identifier.
    pub queued: usize,
    pub dead: bool,
    /// Unix seconds until which the server is skipped.
    pub dead_until: Option<u64>,
    pub last_rtt_us: Option<u64>,
}

/// An ordered list of accounting servers (IOS `aaa group server radius`). Cheap to clone;
/// the server tasks stop when the last clone is dropped and their requests are done.
///
/// The list can be replaced while requests are under way ([`Group::reconfigure`], for a
/// configuration reload): every clone sees the new list; a server kept as it was keeps its
/// task (identifiers, requests in flight, counters); a request waiting on a server that
/// left the list is sent again to the new list, where the new server's task gives it a new
/// Identifier and Request Authenticator (as any retransmission does: its Acct-Delay-Time
/// changed, RFC 2866 5.2); the other attributes, Acct-Session-Id and Class among them, stay.
#[derive(Clone)]
pub struct Group {
    servers: Arc<watch::Sender<Servers>>,
}

type Servers = Arc<[Arc<ServerHandle>]>;

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.list().iter().map(|s| (s.name.clone(), s.addr)))
            .finish()
    }
}

/// How one server's part of a request ended.
enum Tried {
    Done(Result<server::Outcome, Failure>),
    /// The server left the list while the request waited on it.
    Removed,
}

fn check(servers: &[ServerSpec]) -> Result<(), Error> {
    if servers.is_empty() {
        return Err(Error::NoServers);
    }
    for (i, s) in servers.iter().enumerate() {
        if s.secret.is_empty() {
            return Err(Error::EmptySecret(s.name.clone()));
        }
        if servers[..i].iter().any(|o| o.name == s.name) {
            return Err(Error::DuplicateName(s.name.clone()));
        }
    }
    Ok(())
}

impl Group {
    /// Starts one task per server; call it inside a tokio runtime.
    pub fn new(servers: Vec<ServerSpec>, config: ClientConfig) -> Result<Group, Error> {
        check(&servers)?;
        let handles: Vec<Arc<ServerHandle>> = servers
            .into_iter()
            .map(|s| Arc::new(server::spawn(s, config.clone())))
            .collect();
        let (tx, _) = watch::channel(handles.into());
        Ok(Group {
            servers: Arc::new(tx),
        })
    }

    /// Replaces the servers (for every clone of this group). A server whose name, address,
    /// secret and timers are unchanged keeps its task; the others get a new one, and the
    /// old ones stop once no request uses them. Requests waiting on a server that is gone
    /// move to the new list. A list that does not validate changes nothing.
    pub fn reconfigure(&self, servers: Vec<ServerSpec>, config: ClientConfig) -> Result<(), Error> {
        check(&servers)?;
        let old = self.list();
        let handles: Vec<Arc<ServerHandle>> = servers
            .into_iter()
            .map(
                |s| match old.iter().find(|h| h.spec == s && h.config == config) {
                    Some(h) => h.clone(),
                    None => Arc::new(server::spawn(s, config.clone())),
                },
            )
            .collect();
        self.servers.send_replace(handles.into());
        Ok(())
    }

    fn list(&self) -> Servers {
        self.servers.borrow().clone()
    }

    /// The servers to try, in order: those not marked dead; when all are dead, all.
    fn order(&self) -> Vec<Arc<ServerHandle>> {
        let now = Instant::now();
        let all = self.list();
        let alive: Vec<Arc<ServerHandle>> = all
            .iter()
            .filter(|s| !s.state.borrow().is_dead(now))
            .cloned()
            .collect();
        if alive.is_empty() {
            all.to_vec()
        } else {
            alive
        }
    }

    fn listed(&self, server: &Arc<ServerHandle>) -> bool {
        self.servers.borrow().iter().any(|s| Arc::ptr_eq(s, server))
    }

    /// One server's part of a request; given up (the server task sees its caller gone and
    /// frees the identifier) when the server leaves the list.
    async fn try_server(
        &self,
        server: &Arc<ServerHandle>,
        request: Request,
        changes: &mut watch::Receiver<Servers>,
    ) -> Tried {
        let sent = send_to(server, request);
        tokio::pin!(sent);
        loop {
            tokio::select! {
                r = &mut sent => return Tried::Done(r),
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Tried::Done(sent.await);
                    }
                    if !self.listed(server) {
                        return Tried::Removed;
                    }
                }
            }
        }
    }

    /// Tries the servers in order with `request` until one answers; the list is taken
    /// again from its start when the server being waited on leaves it.
    async fn first_answer(
        &self,
        request: Request,
        what: &str,
    ) -> Result<(Arc<ServerHandle>, server::Outcome), Vec<Attempt>> {
        let mut changes = self.servers.subscribe();
        'list: loop {
            let mut attempts = Vec::new();
            for server in self.order() {
                if !self.listed(&server) {
                    continue;
                }
                match self
                    .try_server(&server, request.clone(), &mut changes)
                    .await
                {
                    Tried::Done(Ok(outcome)) => return Ok((server, outcome)),
                    Tried::Done(Err(failure)) => {
                        tracing::info!(server = %server.name, %failure, what, "RADIUS request failed over");
                        attempts.push(Attempt {
                            server: server.name.clone(),
                            failure,
                        });
                    }
                    Tried::Removed => {
                        tracing::info!(server = %server.name, what,
                            "RADIUS server removed by a reload: request sent to the new servers");
                        continue 'list;
                    }
                }
            }
            return Err(attempts);
        }
    }

    /// Sends `record` to the first server that answers, in configured order, skipping the
    /// servers marked dead; when all are dead, all are tried in order all the same.
    pub async fn send(&self, record: &AccountingRecord) -> Result<Delivered, Error> {
        let what = format!("accounting {}", record.acct_session_id.escape_debug());
        let record = Arc::new(record.clone());
        match self.first_answer(Request::Accounting(record), &what).await {
            Ok((server, outcome)) => Ok(Delivered {
                server: server.name.clone(),
                tries: outcome.tries,
                rtt: outcome.rtt,
            }),
            Err(attempts) => Err(Error::Undelivered { attempts }),
        }
    }

    /// Sends an Access-Request (these servers being on their authentication port) to the
    /// first server that answers, as [`Group::send`] does, and reads its answer. Within one
    /// EAP conversation the State ties it to a server; after a failover mid-conversation the
    /// next server rejects what it has no State for, which ends it cleanly.
    pub async fn authenticate(
        &self,
        request: &AccessRequest,
    ) -> Result<(String, AccessAnswer), Error> {
        // Checked once here, so the server task only encodes what fits.
        request.encode(0, &[0; 16], b"x")?;
        let what = format!("access {}", request.user_name.escape_debug());
        let request = Arc::new(request.clone());
        match self.first_answer(Request::Access(request), &what).await {
            Ok((server, outcome)) => access::read_answer(
                &outcome.answer,
                &outcome.request_authenticator,
                &server.spec.secret,
            )
            .map(|a| (server.name.clone(), a))
            .map_err(|error| Error::Answer {
                server: server.name.clone(),
                error,
            }),
            Err(attempts) => Err(Error::Unanswered { attempts }),
        }
    }

    /// The servers' counters, in configured order.
    pub fn stats(&self) -> Vec<ServerStats> {
        let now = Instant::now();
        self.list()
            .iter()
            .map(|s| {
                let st = s.state.borrow();
                let dead = st.is_dead(now);
                ServerStats {
                    name: s.name.clone(),
                    addr: s.addr,
                    requests: st.requests,
                    retransmissions: st.retransmissions,
                    responses: st.responses,
                    timeouts: st.timeouts,
                    failed: st.failed,
                    forged: st.forged,
                    malformed: st.malformed,
                    unmatched: st.unmatched,
                    socket_errors: st.socket_errors,
                    in_flight: st.in_flight,
                    queued: st.queued,
                    dead,
                    dead_until: st.dead_until.filter(|_| dead).map(|(_, wall)| {
                        wall.duration_since(UNIX_EPOCH)
                            .unwrap_or(Duration::ZERO)
                            .as_secs()
                    }),
                    last_rtt_us: st
                        .last_rtt
                        .map(|d| d.as_micros().try_into().unwrap_or(u64::MAX)),
                }
            })
            .collect()
    }

    /// The servers' names, in configured order.
    pub fn server_names(&self) -> Vec<String> {
        self.list().iter().map(|s| s.name.clone()).collect()
    }
}

async fn send_to(server: &ServerHandle, request: Request) -> Result<server::Outcome, Failure> {
    let (reply, answer) = oneshot::channel();
    server
        .tx
        .send(Command::Send { request, reply })
        .await
        .map_err(|_| Failure::Stopped)?;
    answer.await.map_err(|_| Failure::Stopped)?
}
