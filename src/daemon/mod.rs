//! The tokio shell around the sans-IO engine: UDP sockets, the timer, kernel events, and
//! the outputs applied in order (a child is in the kernel before the IKE_AUTH response that
//! announces it leaves). One task owns the engine and the kernel bookkeeping; socket
//! readers and the XFRM event stream feed it through channels.

pub mod args;
mod eap;
pub mod iface;
pub mod kernel;
pub mod links;
pub mod logging;
mod ops;
mod peers;
mod ratelimit;
mod reload;
pub mod routes;
pub mod sockets;
mod systemd;
mod vrf;

use crate::unix_now;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};
use vpnd_xfrm::{Event, Events, Owner, Xfrm};

use crate::accounting::{Accounting, Cause};
use crate::config::{Config, PeerAddress, StartAction, Unprotected};
use crate::ike::crypto::SystemRng;
use crate::ike::{Endpoint, IkeSaId, Output};
use kernel::{Flow, Kernel};
use sockets::IkeSocket;

use crate::control::proto::{Body, Command, Response};
use crate::session::model::{PeerView, SessionView};
use crate::session::table::{ChildInfo as SessionChild, PeerInfo, SessionTable, Transition};

/// An identity as operators write it (Phase1_id, RADIUS User-Name and isakmp-phase1-id),
/// escaped once here for every output path ([`crate::escape`]): the peer chose it.
/// A subject DN (a certificate holder's default identity) reads as "O=..., CN=...".
fn identity_text(id: &crate::ike::codec::Identity) -> String {
    crate::ike::auth::identity_text(id)
}

/// One IKE datagram in `debug crypto isakmp` words: exchange, request or response, message
/// ID, SPIs and length (or why its header does not parse).
fn describe(data: &[u8]) -> String {
    match crate::ike::codec::Header::peek(data) {
        Ok(h) => format!(
            "{:?} {} msgid {} spi {:016x}/{:016x} len {}",
            h.exchange,
            if h.flags.response {
                "response"
            } else {
                "request"
            },
            h.message_id,
            h.spi_i,
            h.spi_r,
            data.len()
        ),
        Err(e) => format!("{} bytes, bad header ({e})", data.len()),
    }
}

/// How long shutdown waits for peers to acknowledge our Deletes.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Back-off before bringing a static peer back: doubles per failure, reset when it is up.
const RETRY_FIRST: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(300);

struct Datagram {
    local: SocketAddr,
    remote: SocketAddr,
    data: Vec<u8>,
}

struct Daemon {
    endpoint: Endpoint,
    kernel: Kernel,
    sockets: Vec<Arc<IkeSocket>>,
    /// Peers to bring back up after their IKE SA ends (static crypto map behaviour).
    initiate: Vec<String>,
    /// Peers brought up when the kernel has traffic for them and no SA (ACQUIRE), with
    /// their address: `start: on-demand` and `initiate` peers.
    on_traffic: HashMap<String, IpAddr>,
    /// Per-datagram warnings, one a second per source.
    notices: ratelimit::NoticeLimiter,
    /// The interface of each local IKE address (`Interface:`, cisco-nas-port).
    interfaces: HashMap<IpAddr, Option<String>>,
    /// The real front-door VRF of each peer that has one (`Config::front_vrf`).
    front_vrfs: HashMap<String, String>,
    /// The configured VRF that holds each local IKE address, or none (the main table).
    local_vrfs: HashMap<IpAddr, Option<String>>,
    /// Peers with an accounting method list.
    accounted: HashSet<String>,
    /// Static peers (`initiate`, `on-demand`), listed DOWN by `show crypto session` while
    /// they have no session.
    static_peers: Vec<StaticPeer>,
    /// Static peers waiting to be re-initiated: when, and to which address.
    retries: HashMap<String, (Instant, IpAddr)>,
    /// The next back-off per static peer.
    backoff: HashMap<String, Duration>,
    port: u16,
    /// The crypto sessions (this task is their one owner).
    sessions: SessionTable,
    /// Description, fvrf and ivrf per configured peer, for sessions and show.
    peer_info: HashMap<String, PeerInfo>,
    peer_views: Vec<PeerView>,
    /// `debug crypto isakmp [aaa]`: the live log filter.
    log: logging::LogControl,
    /// `%CRYPTO-5-SESSION_STATUS` notices to the local and remote syslog receivers.
    syslog: crate::syslog::Syslog,
    /// RADIUS accounting, when a peer has an accounting list.
    accounting: Option<Accounting>,
    /// The EAP relay to RADIUS, when a peer authenticates clients with EAP.
    eap: Option<eap::Relay>,
    /// Sessions that went down in the current batch of outputs: their Stop waits for the
    /// batch's end, when the cause (an IkeDown in the same batch) is known.
    downs: Vec<SessionView>,
    /// Why sessions with this peer address are going down, learnt in this batch.
    batch_causes: HashMap<IpAddr, Cause>,
    /// Peers cleared by `clear crypto session`: their Stop says Admin-Reset.
    cleared: HashMap<IpAddr, Instant>,
    /// vpnd is stopping (Admin-Reboot).
    stopping: bool,
    /// Metrics snapshot, systemd status and watchdog (ops.rs).
    ops: ops::Ops,
    /// The running configuration (what the last start or reload applied) and its file.
    config: Config,
    config_path: std::path::PathBuf,
    /// Renegotiated initiators (reload): brought up again as soon as their old IKE SA is
    /// gone, at this address.
    reinitiate: HashMap<String, IpAddr>,
}

/// A static peer as `show crypto session` lists it while it has no session: who, from
/// where, to where, and its configured flows (protocol, local, remote).
struct StaticPeer {
    info: PeerInfo,
    local: IpAddr,
    remote: SocketAddr,
    flows: Vec<(u8, String, String)>,
}

/// How often the kernel's counters are read (one dump for every SA).
const COUNTERS_EVERY: Duration = Duration::from_secs(10);

/// A child's selectors as `show crypto session` lists them: prefixes, or ranges.
fn ts_text(ts: &[crate::ike::codec::TrafficSelector]) -> (u8, String) {
    let proto = ts.first().map_or(0, |t| t.ip_protocol);
    let text = ts
        .iter()
        .map(|t| match prefix_of(t.start_addr(), t.end_addr()) {
            Some(n) => n.to_string(),
            None => format!("{}-{}", t.start_addr(), t.end_addr()),
        })
        .collect::<Vec<_>>()
        .join(",");
    (proto, text)
}

/// The prefix exactly covering start..=end, if the range is one.
fn prefix_of(start: IpAddr, end: IpAddr) -> Option<ipnet::IpNet> {
    let bits = if start.is_ipv4() { 32 } else { 128 };
    (0..=bits)
        .rev()
        .filter_map(|len| ipnet::IpNet::new(start, len).ok())
        .find(|n| n.network() == start && n.broadcast() == end)
}

impl Daemon {
    /// What the daemon derives from the configured peers (start actions, what `show`
    /// lists of them): at start and at every reload.
    fn configure_peers(&mut self, config: &Config) {
        self.initiate = config
            .peers
            .iter()
            .filter(|p| p.start == StartAction::Initiate)
            .map(|p| p.name.clone())
            .collect();
        self.on_traffic = config
            .peers
            .iter()
            .filter(|p| matches!(p.start, StartAction::Initiate | StartAction::OnDemand))
            .filter_map(|p| match p.remote {
                PeerAddress::Single(a) => Some((p.name.clone(), a)),
                _ => None,
            })
            .collect();
        self.static_peers = config
            .peers
            .iter()
            .filter(|p| matches!(p.start, StartAction::Initiate | StartAction::OnDemand))
            .filter_map(|p| {
                let PeerAddress::Single(remote) = p.remote else {
                    return None;
                };
                let info = peer_info_of(p);
                let flows = peers::peer_policy(p, config.local.nat_t_port)
                    .children
                    .iter()
                    .map(|c| {
                        let (proto, l) = ts_text(&c.local_ts);
                        (proto, l, ts_text(&c.remote_ts).1)
                    })
                    .collect();
                Some(StaticPeer {
                    info,
                    local: standing_local(config, p, remote),
                    remote: SocketAddr::new(remote, p.port),
                    flows,
                })
            })
            .collect();
        self.front_vrfs = config
            .peers
            .iter()
            .filter_map(|p| Some((p.name.clone(), config.front_vrf(p)?.to_string())))
            .collect();
        self.accounted = config
            .peers
            .iter()
            .filter(|p| p.accounting.is_some())
            .map(|p| p.name.clone())
            .collect();
        self.peer_info = config
            .peers
            .iter()
            .map(|p| (p.name.clone(), peer_info_of(p)))
            .collect();
        self.peer_views = config
            .peers
            .iter()
            .map(|p| PeerView {
                name: p.name.clone(),
                address: match p.remote {
                    crate::config::PeerAddress::Single(a) => a.to_string(),
                    crate::config::PeerAddress::Prefix(n) => n.to_string(),
                    crate::config::PeerAddress::Any => "any".into(),
                },
                port: p.port,
                description: p.description.clone(),
                flags: vec!["PEER_POLICY".into()],
            })
            .collect();
    }

    /// Where we initiate to `remote` from: a configured address of its family and front-door
    /// VRF, else the route's source in that VRF (or the main table).
    fn local_for(&self, remote: IpAddr, vrf: Option<&str>) -> SocketAddr {
        let bound = self
            .sockets
            .iter()
            .map(|s| (s.bound(), s.vrf()))
            .find(|(a, v)| {
                a.port() == self.port
                    && !a.ip().is_unspecified()
                    && a.is_ipv4() == remote.is_ipv4()
                    && *v == vrf
            });
        match bound {
            Some((a, _)) => a,
            None => SocketAddr::new(
                vrf::source_towards(remote, vrf).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                self.port,
            ),
        }
    }

    /// The configured VRF that holds local address `ip` (looked up once per address).
    fn vrf_of_local(&mut self, ip: IpAddr) -> Option<String> {
        // Cached: the local addresses and their sockets are the start's (`local` needs a
        // restart), so a VRF a reload adds holds none of them.
        let vrfs = &self.config.vrfs;
        if vrfs.is_empty() {
            return None;
        }
        self.local_vrfs
            .entry(ip)
            .or_insert_with(|| {
                vrf::of_address(ip, vrfs.keys().map(String::as_str)).map(str::to_string)
            })
            .clone()
    }

    /// The socket that sends from `local`: bound to it, else the wildcard of its port in the
    /// VRF that holds the address.
    fn socket_for(&mut self, local: SocketAddr) -> Option<Arc<IkeSocket>> {
        if let Some(s) = self.sockets.iter().find(|s| s.bound() == local) {
            return Some(s.clone());
        }
        let vrf = self.vrf_of_local(local.ip());
        self.sockets
            .iter()
            .find(|s| s.serves(local) && s.vrf() == vrf.as_deref())
            .cloned()
    }

    fn initiate(&mut self, peer: &str, remote: IpAddr) {
        let local = self.local_for(remote, self.front_vrfs.get(peer).map(String::as_str));
        match self.endpoint.initiate(Instant::now(), peer, local) {
            Ok(id) => info!(peer, ike = format_args!("{id:016x}"), %local, "initiating IKE SA"),
            Err(e) => error!(peer, "cannot initiate: {e}"),
        }
    }

    /// Applies every pending engine output, in order.
    async fn apply_outputs(&mut self) {
        // One counter dump per batch, before its first removal, however many pairs leave
        // (a clear or a stop removes every pair at once).
        let mut counted = false;
        while let Some(o) = self.endpoint.poll_output() {
            self.ops.output(&o);
            match o {
                Output::Transmit(t) => match self.socket_for(t.local) {
                    Some(s) => {
                        debug!(target: logging::ISAKMP, "ISAKMP: sending {} to {}", describe(&t.data), t.remote);
                        if let Err(e) = s.send(t.local.ip(), t.remote, &t.data).await {
                            warn!(remote = %t.remote, "send failed: {e}");
                        }
                    }
                    None => warn!(local = %t.local, "no socket for local address"),
                },
                Output::Keepalive { local, remote } => match self.socket_for(local) {
                    Some(s) => {
                        debug!(target: logging::ISAKMP, "ISAKMP: sending NAT keepalive to {remote}");
                        if let Err(e) = s.send_keepalive(local.ip(), remote).await {
                            warn!(%remote, "NAT keepalive not sent: {e}");
                        }
                    }
                    None => warn!(%local, "no socket for local address"),
                },
                Output::PeerMoved {
                    ike,
                    peer,
                    local,
                    from,
                    to,
                    children,
                } => {
                    info!(peer, ike = format_args!("{ike:016x}"), %from, %to, "peer's NAT mapping moved: following it");
                    for c in children {
                        if let Err(e) = self.kernel.move_encap(c.child, c.encap).await {
                            error!(peer, "updating the encapsulation of child {}: {e}", c.child);
                        }
                    }
                    self.sessions.ike_moved(ike, local, to);
                }
                Output::InstallChild(c) => match self.kernel.install(&c).await {
                    Ok(()) => {
                        info!(
                            peer = c.peer,
                            child = c.child_name,
                            inbound = format_args!("{:08x}", c.inbound_spi),
                            outbound = format_args!("{:08x}", c.outbound_spi),
                            "child SA installed"
                        );
                        if c.replaces.is_some() {
                            self.ops.child_rekeyed();
                        }
                        let (protocol, local_ts) = ts_text(&c.local_ts);
                        let (_, remote_ts) = ts_text(&c.remote_ts);
                        let info = SessionChild {
                            inbound_spi: c.inbound_spi,
                            outbound_spi: c.outbound_spi,
                            protocol,
                            local_ts,
                            remote_ts,
                            lifetime_s: c.lifetime.as_secs(),
                            lifetime_kb: c.lifetime_bytes.map(|b| b / 1024),
                            installed_at: unix_now(),
                        };
                        if let Some(t) =
                            self.sessions
                                .child_installed(c.ike, c.child, info, unix_now())
                        {
                            self.transition(t);
                        }
                    }
                    Err(e) => {
                        error!("install failed: {e}");
                        self.endpoint.child_gone(Instant::now(), c.ike, c.child);
                    }
                },
                Output::ActivateOutbound { child, .. } => {
                    if let Err(e) = self.kernel.activate_outbound(child).await {
                        error!("activating the rekeyed outbound SA of child {child}: {e}");
                    }
                }
                Output::RemoveChild(c) => {
                    let name = c.child_name.as_str();
                    // The pair's last reading, taken before its SAs leave the kernel.
                    if !counted {
                        self.read_counters().await;
                        counted = true;
                    }
                    for e in self.kernel.remove(&c, name).await {
                        error!(peer = c.peer, "removing child SA: {e}");
                    }
                    info!(
                        peer = c.peer,
                        child = name,
                        inbound = format_args!("{:08x}", c.inbound_spi),
                        "child SA removed"
                    );
                    if c.expired {
                        self.batch_causes.insert(c.remote, Cause::SessionTimeout);
                    }
                    if let Some(t) = self.sessions.child_removed(c.child, unix_now()) {
                        self.transition(t);
                    }
                }
                Output::IkeUp {
                    ike,
                    peer,
                    local,
                    remote,
                    remote_id,
                    initiator,
                    rekey_at,
                    nat_t,
                    virtual_ip,
                    virtual_ip6,
                    session_deadline,
                    user,
                } => {
                    let username = user.as_ref().map(|u| crate::escape::peer_text(&u.identity));
                    info!(peer, ike = format_args!("{ike:016x}"), %remote, remote_id = remote_id.as_ref().map_or_else(|| "-".into(), identity_text), user = username.as_deref().unwrap_or("-"), initiator, nat_t, virtual_ip = virtual_ip.map_or_else(|| "-".into(), |a| a.to_string()), virtual_ip6 = virtual_ip6.map_or_else(|| "-".into(), |a| a.to_string()), session_timeout = session_deadline.map(|t| t.saturating_duration_since(Instant::now()).as_secs()), "IKE SA established");
                    self.backoff.remove(&peer);
                    let mut info = self.peer_info.get(&peer).cloned().unwrap_or_default();
                    // Route-based: its XFRM interface (configured); else the outer one.
                    if info.interface.is_none() {
                        info.interface = self
                            .interfaces
                            .entry(local.ip())
                            .or_insert_with(|| iface::interface_of(local.ip()))
                            .clone();
                    }
                    // The engine's own deadline, not one computed here again.
                    let rekey_at =
                        unix_now() + rekey_at.saturating_duration_since(Instant::now()).as_secs();
                    self.sessions.ike_up(
                        ike,
                        info,
                        local,
                        remote,
                        remote_id.as_ref().map(identity_text),
                        true,
                        rekey_at,
                    );
                    self.sessions.ike_nat_t(ike, nat_t);
                    self.sessions.ike_virtual_ip(ike, virtual_ip);
                    self.sessions.ike_virtual_ip6(ike, virtual_ip6);
                    // The engine's deadline (it ends the session), shown as it said.
                    self.sessions.ike_session_end(
                        ike,
                        session_deadline.map(|t| {
                            unix_now() + t.saturating_duration_since(Instant::now()).as_secs()
                        }),
                    );
                    if let (Some(u), Some(username)) = (user, username) {
                        self.sessions.ike_user(
                            ike,
                            crate::session::model::SessionUser {
                                username,
                                class: u.class,
                                radius_server: u.server,
                            },
                        );
                    }
                }
                Output::EapRequest(r) => {
                    let ike = r.ike;
                    let now_answer = match self.eap.as_mut() {
                        Some(relay) => relay.relay(r),
                        None => Some(crate::ike::EapAnswer::Failure {
                            eap: Vec::new(),
                            why: "no EAP relay configured".into(),
                        }),
                    };
                    if let Some(a) = now_answer {
                        self.endpoint.eap_answer(Instant::now(), ike, a);
                    }
                }
                Output::IkeDown {
                    ike,
                    peer,
                    remote,
                    was_up,
                    reason,
                } => {
                    info!(peer, ike = format_args!("{ike:016x}"), %remote, was_up, reason = %reason, "IKE SA down");
                    if let Some(relay) = self.eap.as_mut() {
                        relay.forget(ike);
                    }
                    {
                        use crate::ike::DownReason::*;
                        let cause = match &reason {
                            PeerDelete => Some(Cause::UserRequest),
                            // A peer that restarted lost its side as an unreachable one did.
                            PeerUnreachable | PeerRestarted => Some(Cause::LostCarrier),
                            LocalDelete => Some(Cause::AdminReset),
                            NegotiationFailed(_) => Some(Cause::NasError),
                            Rekeyed => None,
                            Expired | SessionTimeout => Some(Cause::SessionTimeout),
                        };
                        if let Some(c) = cause {
                            self.batch_causes.entry(remote.ip()).or_insert(c);
                        }
                    }
                    if let Some(t) = self.sessions.ike_down(ike, unix_now()) {
                        self.transition(t);
                    }
                    self.reinitiate_if_gone(&peer);
                    self.schedule_retry(&peer, remote.ip(), &reason);
                }
                Output::IkeRekeyed {
                    old,
                    new,
                    peer,
                    children: _,
                    rekey_at,
                } => {
                    info!(
                        peer,
                        old = format_args!("{old:016x}"),
                        new = format_args!("{new:016x}"),
                        "IKE SA rekeyed"
                    );
                    let rekey_at =
                        unix_now() + rekey_at.saturating_duration_since(Instant::now()).as_secs();
                    self.sessions.ike_rekeyed(old, new, rekey_at);
                }
                Output::Fatal(e) => error!("IKE engine stopped: {e}; vpnd stops"),
                Output::Notice { peer, remote, text } => {
                    let peer = peer.as_deref().unwrap_or("-");
                    match self.notices.admit(Instant::now(), remote.ip()) {
                        Some(0) => warn!(peer, %remote, "{text}"),
                        Some(held) => warn!(
                            peer,
                            %remote,
                            held,
                            "{text} (and {held} more from this address in the last second)"
                        ),
                        None => {}
                    }
                }
            }
        }
        self.account_downs();
    }

    /// A session came up (its first IPsec SA pair) or went down (its last): the IOS notice,
    /// to syslog and to the daemon's own log, exactly once per transition.
    fn transition(&mut self, t: Transition) {
        let (up, view) = match &t {
            Transition::Up(v) => (true, v),
            Transition::Down(v) => (false, v),
        };
        let line = crate::control::render::session_status_syslog(up, view);
        info!(peer = view.peer_name, "{line}");
        self.syslog.notice(&line);
        match t {
            Transition::Up(v) => {
                if let Some(a) = &self.accounting {
                    if self.accounted.contains(&v.peer_name) && !a.admits_new_sessions() {
                        // accounting.when_full: refuse. The session is taken down at once
                        // (the peer hears a Delete), not run unbilled.
                        error!(
                            peer = v.peer_name,
                            remote = %v.key.peer,
                            "session refused: the accounting outbox is full (accounting.when_full: refuse)"
                        );
                        for ike in self.sessions.ike_sas_of(&v.key) {
                            let _ = self.endpoint.delete(Instant::now(), ike);
                        }
                        return;
                    }
                    a.up(&v);
                }
            }
            Transition::Down(v) => self.downs.push(v),
        }
    }

    /// The end of a batch of outputs: each session that went down gets its Stop, with the
    /// cause this batch (or an earlier clear, or the shutdown) gives.
    fn account_downs(&mut self) {
        let downs = std::mem::take(&mut self.downs);
        let causes = std::mem::take(&mut self.batch_causes);
        self.cleared
            .retain(|_, at| at.elapsed() < Duration::from_secs(120));
        let Some(a) = &self.accounting else {
            return;
        };
        for v in downs {
            let ip = v.key.peer.ip();
            let cause = if self.stopping {
                Cause::AdminReboot
            } else if self.cleared.remove(&ip).is_some() {
                Cause::AdminReset
            } else {
                causes.get(&ip).copied().unwrap_or(Cause::UserRequest)
            };
            a.down(&v, cause);
        }
    }

    /// One kernel dump: every SA's counters, into the session table.
    async fn read_counters(&mut self) {
        let started = Instant::now();
        let dump = self
            .kernel
            .xfrm()
            .dump_counters(vpnd_xfrm::DumpScope::Owned)
            .await;
        self.ops
            .dumped(dump.as_ref().ok().map(|_| started.elapsed()));
        match dump {
            Ok(dump) => {
                self.sessions.counters(&dump);
                if let Some(a) = &self.accounting {
                    a.totals(self.sessions.up_totals());
                }
            }
            Err(e) => warn!("reading the kernel's SA counters: {e}"),
        }
    }

    /// A command from the control socket.
    async fn control(&mut self, command: Command) -> Response {
        match command {
            Command::ShowSessions { filter, text } => {
                // Fresh counters for the operator: one dump, whatever the number of SAs.
                self.read_counters().await;
                let now = unix_now();
                let mut views = self.sessions.views(now);
                if !self.static_peers.is_empty() {
                    let with_session: HashSet<&str> =
                        views.iter().map(|v| v.peer_name.as_str()).collect();
                    let down: Vec<SessionView> = self
                        .static_peers
                        .iter()
                        .filter(|p| !with_session.contains(p.info.name.as_str()))
                        .map(|p| {
                            let negotiating = self.endpoint.sas().any(|s| {
                                s.peer.name == p.info.name && !s.is_dead() && !s.is_established()
                            });
                            SessionTable::down_view(
                                &p.info,
                                p.local,
                                p.remote,
                                &p.flows,
                                negotiating,
                            )
                        })
                        .collect();
                    views.extend(down);
                }
                crate::control::show_sessions(views, &filter, text, now)
            }
            Command::ShowAccounting {} => match &self.accounting {
                Some(a) => match a.show().await {
                    Some(accounting) => Response::ok(Body::Accounting {
                        accounting: Box::new(accounting),
                    }),
                    None => Response::error("the accounting task is not running"),
                },
                None => {
                    Response::error("accounting is not configured (no peer has an accounting list)")
                }
            },
            Command::ShowPeers {} => Response::ok(Body::Peers {
                peers: self.peer_views.clone(),
            }),
            Command::ShowIkeStats {} => Response::ok(Body::IkeStats {
                ike_stats: Box::new(crate::control::ike_stats(&self.endpoint)),
            }),
            Command::ShowPools {} => {
                let (unknown_pool_refused, leases_outside_pools) = self.endpoint.pool_extras();
                Response::ok(Body::Pools {
                    pools: self.endpoint.pool_stats(),
                    unknown_pool_refused,
                    leases_outside_pools,
                })
            }
            Command::ClearSessions { filter } => {
                let now = Instant::now();
                let mut cleared = 0;
                for s in self
                    .sessions
                    .views(unix_now())
                    .into_iter()
                    .filter(|s| filter.matches(s))
                {
                    for ike in self.sessions.ike_sas_of(&s.key) {
                        if self.endpoint.delete(now, ike).is_ok() {
                            cleared += 1;
                        }
                    }
                    // IOS brings a configured initiator back up after a clear.
                    if self.initiate.contains(&s.peer_name) {
                        self.retries
                            .insert(s.peer_name.clone(), (now + RETRY_FIRST, s.key.peer.ip()));
                    }
                    self.cleared.insert(s.key.peer.ip(), now);
                    info!(peer = s.peer_name, remote = %s.key.peer, "clear crypto session");
                }
                Response::ok(Body::Cleared { cleared })
            }
            Command::Reload {} => self.reload().await,
            Command::Debug { aaa, on } => match self.log.set(aaa, on) {
                Ok(text) => {
                    info!("{text}");
                    Response::ok(Body::Debug { debug: text })
                }
                Err(e) => Response::error(e),
            },
        }
    }

    /// A static peer whose IKE SA ended comes back, after a back-off so that a peer that
    /// refuses us is not hammered. Not after our own delete, not after a rekey (the
    /// successor carries on), and not while another IKE SA to the peer is alive.
    fn schedule_retry(&mut self, peer: &str, remote: IpAddr, reason: &crate::ike::DownReason) {
        use crate::ike::DownReason::{LocalDelete, Rekeyed};
        if !self.initiate.iter().any(|p| p == peer) || matches!(reason, LocalDelete | Rekeyed) {
            return;
        }
        if self
            .endpoint
            .sas()
            .any(|s| s.peer.name == peer && !s.is_dead())
        {
            return;
        }
        let delay = self.backoff.get(peer).copied().unwrap_or(RETRY_FIRST);
        self.backoff
            .insert(peer.to_string(), (delay * 2).min(RETRY_MAX));
        info!(
            peer,
            delay_s = delay.as_secs(),
            "re-initiating after a back-off"
        );
        self.retries
            .insert(peer.to_string(), (Instant::now() + delay, remote));
    }

    fn next_retry(&self) -> Option<Instant> {
        self.retries.values().map(|r| r.0).min()
    }

    fn run_retries(&mut self) {
        let now = Instant::now();
        let due: Vec<(String, IpAddr)> = self
            .retries
            .iter()
            .filter(|(_, r)| r.0 <= now)
            .map(|(p, r)| (p.clone(), r.1))
            .collect();
        for (peer, remote) in due {
            self.retries.remove(&peer);
            self.initiate(&peer, remote);
        }
    }

    /// The kernel has traffic for a standing policy and no SA (ACQUIRE): an initiating or
    /// on-demand peer is brought up now, unless an IKE SA to it is alive or negotiating, or
    /// it is waiting out a back-off after a failure (the kernel's larval SA holds further
    /// ACQUIREs for the same flow for a while, `net.core.xfrm_acq_expires`).
    fn acquired(&mut self, reqid: u32) {
        let Some(peer) = self.kernel.peer_of_reqid(reqid).map(str::to_string) else {
            return;
        };
        let Some(remote) = self.on_traffic.get(&peer).copied() else {
            debug!(
                peer,
                "traffic for a responder's flow without an SA: dropped"
            );
            return;
        };
        if self.retries.contains_key(&peer)
            || self
                .endpoint
                .sas()
                .any(|s| s.peer.name == peer && !s.is_dead())
        {
            return;
        }
        info!(
            peer,
            "traffic for the peer's flows and no SA (kernel ACQUIRE): initiating"
        );
        self.initiate(&peer, remote);
    }

    fn kernel_event(&mut self, ev: Event) {
        if let Event::Acquire { reqid, .. } = ev {
            self.acquired(reqid);
            return;
        }
        if let Event::Mapping {
            dst, spi, old, new, ..
        } = ev
        {
            // The engine decides whether the SA follows (its peer must be NATed).
            match self.endpoint.kernel_mapping(Instant::now(), spi, dst, new) {
                Some(child) => info!(
                    spi = format_args!("{spi:08x}"),
                    child, %old, %new, "kernel saw the peer's NAT mapping move (XFRM MAPPING)"
                ),
                None => {
                    debug!(spi = format_args!("{spi:08x}"), %old, %new, "XFRM MAPPING for no NATed child: ignored")
                }
            }
            return;
        }
        if let Event::Expire {
            id, hard: false, ..
        } = ev
        {
            // Soft expiry: time (or bytes) to rekey, make before break. The engine knows
            // which child the SPI belongs to.
            if let Some(child) = self
                .endpoint
                .kernel_expired(Instant::now(), id.spi, id.dst, false)
            {
                info!(
                    spi = format_args!("{:08x}", id.spi),
                    child, "kernel soft-expired a child SA: rekeying"
                );
            }
        }
        if let Event::Expire { id, hard: true, .. } = ev {
            // Its removal comes back marked expired (Session-Timeout).
            if let Some(child) = self
                .endpoint
                .kernel_expired(Instant::now(), id.spi, id.dst, true)
            {
                info!(
                    spi = format_args!("{:08x}", id.spi),
                    child, "kernel hard-expired a child SA"
                );
            }
        }
    }
}

/// What sessions and `show` say of a configured peer (a respond-only one is IOS's dynamic
/// crypto map).
fn peer_info_of(p: &crate::config::PeerConfig) -> PeerInfo {
    PeerInfo {
        name: p.name.clone(),
        description: p.description.clone(),
        fvrf: p.fvrf.clone(),
        ivrf: p.ivrf.clone(),
        dynamic: p.start == StartAction::Respond,
        interface: p.interface.as_ref().map(|i| i.name.clone()),
    }
}

/// The local address a standing policy's template names towards `remote`: the configured
/// address of its family (in the peer's front-door VRF when it has one), else the route's
/// source (in that VRF), else none (the kernel then takes the route's source itself when
/// it resolves the template).
fn standing_local(config: &Config, p: &crate::config::PeerConfig, remote: IpAddr) -> IpAddr {
    let fvrf = config.front_vrf(p);
    config
        .local
        .addresses
        .iter()
        .copied()
        .filter(|a| a.is_ipv4() == remote.is_ipv4())
        .find(|a| fvrf.is_none() || vrf::of_address(*a, fvrf.into_iter()) == fvrf)
        .or_else(|| vrf::source_towards(remote, fvrf))
        .unwrap_or(if remote.is_ipv4() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        })
}

/// Every configured child that stands in the kernel (fail closed): peers with one address
/// and `unprotected: drop`.
fn standing_flows(config: &Config) -> Vec<Flow> {
    let mut out = Vec::new();
    for p in &config.peers {
        let PeerAddress::Single(remote) = p.remote else {
            continue;
        };
        if p.unprotected != Unprotected::Drop {
            continue;
        }
        for c in peers::peer_policy(p, config.local.nat_t_port).children {
            out.push(Flow {
                peer: p.name.clone(),
                child: c.name,
                local: standing_local(config, p, remote),
                remote,
                mode: c.mode,
                local_ts: c.local_ts,
                remote_ts: c.remote_ts,
                if_id: p.interface.as_ref().map(|i| i.if_id),
            });
        }
    }
    out
}

/// Route-based peers and their XFRM interface's if_id, which their SAs and policies carry.
fn if_ids(config: &Config) -> HashMap<String, u32> {
    config
        .peers
        .iter()
        .filter_map(|p| p.interface.as_ref().map(|i| (p.name.clone(), i.if_id)))
        .collect()
}

/// A route-based peer's XFRM interface, up, and in its ivrf (both created when missing):
/// at start, and at a reload that adds the peer or moves it (before its SAs are made).
async fn ensure_peer_links(
    l: &mut links::Links,
    config: &Config,
    p: &crate::config::PeerConfig,
) -> Result<()> {
    let Some(x) = &p.interface else {
        return Ok(());
    };
    // The link decides the table the ESP packets are routed in: the front-door VRF
    // itself (any peer address), else the interface towards a single peer.
    let underlying = match (config.front_vrf(p), p.remote) {
        (Some(v), _) => nix::net::if_::if_nametoindex(v)
            .with_context(|| format!("peer {}: the front-door VRF {v} does not exist", p.name))?,
        (None, PeerAddress::Single(a)) => iface::index_towards(a).unwrap_or(0),
        _ => 0,
    };
    let xfrm = l
        .ensure_xfrm(&x.name, x.if_id, underlying)
        .await
        .with_context(|| format!("peer {}: interface {}", p.name, x.name))?;
    if let links::Ensured::Existing(_) = xfrm {
        info!(
            interface = x.name,
            if_id = x.if_id,
            "using the existing XFRM interface"
        );
    }
    if let Some(v) = &p.ivrf {
        let table = config.vrfs.get(v).copied().context("ivrf not in vrfs")?;
        let vrf = l
            .ensure_vrf(v, table)
            .await
            .with_context(|| format!("peer {}: ivrf {v}", p.name))?;
        l.enslave(&x.name, xfrm.index(), vrf.index())
            .await
            .with_context(|| format!("peer {}: putting {} into VRF {v}", p.name, x.name))?;
    }
    Ok(())
}

/// `vpnd --flush`: removes every SA and policy vpnd owns (by its reqid band), standing
/// policies included: protected flows go back to the routing table, in clear. For taking
/// vpnd out of service; a stopped vpnd otherwise leaves its flows blocked.
pub async fn flush(config: &Config) -> Result<Flushed> {
    let owner = Owner {
        reqid_base: config.local.reqid_base,
        ..Owner::default()
    };
    let xfrm = Xfrm::connect(owner).context("opening the XFRM netlink socket")?;
    let vpnd_xfrm::FlushReport { policies, sas } = xfrm
        .flush_owned()
        .await
        .context("removing vpnd's SAs and policies")?;
    let mut r = routes::Routes::connect().context("opening the route netlink socket")?;
    let routes = r
        .remove_stale()
        .await
        .context("removing vpnd's reverse routes")?;
    let interfaces = links::Links::connect()
        .context("opening the route netlink socket")?
        .remove_created()
        .await
        .context("removing vpnd's XFRM interfaces")?;
    Ok(Flushed {
        policies,
        sas,
        routes,
        interfaces,
    })
}

/// What `vpnd --flush` removed.
#[derive(Debug)]
pub struct Flushed {
    pub policies: usize,
    pub sas: usize,
    pub routes: usize,
    pub interfaces: usize,
}

/// Runs the daemon on `config`, read from `config_path` (which a reload reads again).
pub async fn run(
    config: Config,
    config_path: std::path::PathBuf,
    log: logging::LogControl,
) -> Result<()> {
    let owner = Owner {
        reqid_base: config.local.reqid_base,
        ..Owner::default()
    };
    let xfrm = Xfrm::connect(owner).context("opening the XFRM netlink socket")?;
    // Fail closed: nothing in the kernel changes until everything that can fail at start
    // has been done. A previous run's policies keep protecting their flows until then,
    // and if start-up fails the kernel is left exactly as it was found.
    let mut kernel = Kernel::new(xfrm, &standing_flows(&config)).context("the configured flows")?;
    kernel.set_if_ids(if_ids(&config));
    // Always: a previous run's reverse routes leave at take-over, and a reload may turn
    // them on.
    let routes = routes::Routes::connect().context("opening the route netlink socket")?;
    kernel
        .set_reverse_routes(routes, routes::plans(&config))
        .await;
    let mut events = Events::subscribe().context("subscribing to XFRM events")?;

    let wildcard = config.local.addresses.is_empty();
    let fronts = config.front_vrfs();
    for v in &fronts {
        if nix::net::if_::if_nametoindex(*v).is_err() {
            bail!(
                "the front-door VRF {v} does not exist: create it and enslave the uplink \
                 (ip link add {v} type vrf table {}; ip link set UPLINK master {v})",
                config.vrfs[*v]
            );
        }
    }
    // Each address with the front-door VRF that holds it; the wildcards once in the main
    // table and once in each front-door VRF (a VRF's traffic reaches only sockets bound to it).
    let addrs: Vec<(IpAddr, Option<&str>)> = if wildcard {
        std::iter::once(None)
            .chain(fronts.iter().map(|v| Some(*v)))
            .flat_map(|v| {
                [
                    (Ipv4Addr::UNSPECIFIED.into(), v),
                    (std::net::Ipv6Addr::UNSPECIFIED.into(), v),
                ]
            })
            .collect()
    } else {
        let held = |a: IpAddr| vrf::of_address(a, fronts.iter().copied());
        config
            .local
            .addresses
            .iter()
            .map(|a| (*a, held(*a)))
            .collect()
    };
    let shared = wildcard && !fronts.is_empty();
    let mut sockets = Vec::new();
    for (a, vrf) in addrs {
        let ports = [(config.local.port, false), (config.local.nat_t_port, true)];
        let within = vrf.map_or(String::new(), |v| format!(" in VRF {v}"));
        for (port, nat_t) in ports {
            match IkeSocket::bind(SocketAddr::new(a, port), nat_t, vrf, shared) {
                Ok(s) => sockets.push(Arc::new(s)),
                // A host without IPv6 still serves IPv4 on the wildcard.
                Err(e) if wildcard && a.is_ipv6() => {
                    warn!("not listening on UDP [::]:{port}{within}: {e}");
                }
                Err(e) => {
                    return Err(e)
                        .context(format!("binding UDP {}{within}", SocketAddr::new(a, port)))
                }
            }
        }
    }
    let (tx, mut rx) = mpsc::channel::<Datagram>(1024);
    for s in &sockets {
        let (s, tx) = (s.clone(), tx.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            loop {
                match s.recv(&mut buf).await {
                    Ok(r) => {
                        let d = Datagram {
                            local: r.local,
                            remote: r.remote,
                            data: r.data,
                        };
                        if tx.send(d).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => warn!(local = %s.bound(), "receive failed: {e}"),
                }
            }
        });
    }

    // The counters of SAs a previous run left behind, read before anything removes them:
    // its sessions' crash Stops carry them (reading changes nothing in the kernel).
    let left_behind = match kernel
        .xfrm()
        .dump_counters(vpnd_xfrm::DumpScope::Owned)
        .await
    {
        Ok(d) => d,
        Err(e) => {
            warn!("reading the SAs a previous run left behind: {e}; crash Stops keep their last refresh");
            Vec::new()
        }
    };
    let peers = config
        .peers
        .iter()
        .map(|p| peers::peer_policy(p, config.local.nat_t_port))
        .collect();
    let mut endpoint = Endpoint::new(peers, Box::new(SystemRng::new()));
    endpoint.set_time_of_day(Instant::now(), std::time::SystemTime::now());
    endpoint.set_dos(config.dos);
    endpoint.set_pools(config.pools.clone());
    let mut d = Daemon {
        endpoint,
        kernel,
        sockets,
        initiate: Vec::new(),
        on_traffic: HashMap::new(),
        notices: ratelimit::NoticeLimiter::default(),
        interfaces: HashMap::new(),
        front_vrfs: HashMap::new(),
        local_vrfs: HashMap::new(),
        static_peers: Vec::new(),
        accounted: HashSet::new(),
        retries: HashMap::new(),
        backoff: HashMap::new(),
        port: config.local.port,
        sessions: SessionTable::new(),
        peer_info: HashMap::new(),
        peer_views: Vec::new(),
        reinitiate: HashMap::new(),
        config_path,
        log,
        syslog: crate::syslog::Syslog::start(&config.syslog),
        accounting: Accounting::start(&config, &left_behind)
            .context("starting RADIUS accounting")?,
        eap: None,
        downs: Vec::new(),
        batch_causes: HashMap::new(),
        cleared: HashMap::new(),
        stopping: false,
        ops: ops::Ops::new(),
        config: config.clone(),
    };
    d.configure_peers(&config);
    let mut eap_rx = {
        let (relay, rx) = eap::Relay::start(&config).context("starting the EAP relay")?;
        d.eap = Some(relay);
        Some(rx)
    };
    let (control_tx, mut control_rx) = mpsc::channel::<crate::control::server::Request>(64);
    crate::control::server::start(&config.control, control_tx)
        .context("starting the control socket")?;
    // Route-based peers' XFRM interfaces (the first change to the kernel: a start that
    // fails after it leaves only an idle interface, which `--flush` removes).
    let mut links = None;
    for p in config.peers.iter().filter(|p| p.interface.is_some()) {
        let l = match &mut links {
            Some(l) => l,
            None => {
                links.insert(links::Links::connect().context("opening the route netlink socket")?)
            }
        };
        ensure_peer_links(l, &config, p).await?;
    }
    d.ops.start_metrics(&config, d.accounting.as_ref())?;
    // Everything that could fail has been done: now the kernel. Standing policies replace
    // the previous run's in place before its SAs go.
    let taken = d
        .kernel
        .take_over()
        .await
        .context("installing the standing policies")?;
    info!(
        standing_policies = taken.standing,
        stale_policies = taken.stale_policies,
        stale_sas = taken.stale_sas.len(),
        stale_routes = taken.stale_routes,
        "kernel taken over: configured flows protected"
    );
    for sa in &taken.stale_sas {
        warn!(
            sa = %sa.id,
            bytes = sa.bytes,
            packets = sa.packets,
            "removed an SA left by a previous run (its IKE SA died with it)"
        );
    }
    let mut counters = tokio::time::interval(COUNTERS_EVERY);
    counters.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for p in config
        .peers
        .iter()
        .filter(|p| p.start == StartAction::Initiate)
    {
        if let crate::config::PeerAddress::Single(remote) = p.remote {
            d.initiate(&p.name, remote);
        }
    }
    // Flows that had traffic waiting while no vpnd answered (on-demand peers come up now).
    for reqid in taken.waiting {
        d.acquired(reqid);
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    info!(peers = config.peers.len(), "vpnd running");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    // SIGHUP (`systemctl reload vpnd` with the fallback unit, or `kill -HUP`): reload.
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut stall = ops::stall_signal();
    loop {
        d.apply_outputs().await;
        if d.endpoint.fatal().is_some() {
            break; // logged with its Output::Fatal; the shutdown below still cleans up
        }
        d.ops_tick();
        let deadline = [d.endpoint.poll_timeout(), d.next_retry()]
            .into_iter()
            .flatten()
            .min()
            .map(tokio::time::Instant::from_std);
        let ops_wake = d.ops.next_wake().map(tokio::time::Instant::from_std);
        tokio::select! {
            Some(dg) = rx.recv() => {
                debug!(target: logging::ISAKMP, "ISAKMP: received {} from {}", describe(&dg.data), dg.remote);
                let now = Instant::now();
                // Certificates are checked at the time of day (the engine reads no clock).
                d.endpoint.set_time_of_day(now, std::time::SystemTime::now());
                d.endpoint.handle_datagram(now, dg.local, dg.remote, &dg.data)
            }
            _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if deadline.is_some() => {
                d.endpoint.handle_timeout(Instant::now());
                d.run_retries();
            }
            Some(ev) = events.next() => d.kernel_event(ev),
            Some(a) = async { match eap_rx.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                if let Some(relay) = d.eap.as_mut() {
                    let ike = a.ike;
                    let answer = relay.answered(a);
                    d.endpoint.eap_answer(Instant::now(), ike, answer);
                }
            }
            Some(req) = control_rx.recv() => {
                let response = d.control(req.command).await;
                let _ = req.reply.send(response);
            }
            _ = counters.tick() => d.read_counters().await,
            _ = async { tokio::time::sleep_until(ops_wake.unwrap_or_else(tokio::time::Instant::now)).await }, if ops_wake.is_some() => d.ops.woke(),
            _ = ops::stall_requested(&mut stall) => {
                warn!(secs = ops::STALL.as_secs(), "SIGUSR2 (debug build): stalling the daemon loop");
                tokio::time::sleep(ops::STALL).await;
            }
            _ = hup.recv() => {
                info!("SIGHUP: reloading the configuration");
                let _ = d.reload().await;
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }

    // Shutdown: tell every peer, wait a little for their answers, then clean the kernel.
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    info!("stopping: deleting IKE SAs");
    d.stopping = true;
    d.initiate.clear();
    d.retries.clear();
    let ids: Vec<IkeSaId> = d.endpoint.sas().map(|s| s.id).collect();
    for id in ids {
        let _ = d.endpoint.delete(Instant::now(), id);
    }
    let until = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    while d.endpoint.sas().next().is_some() && tokio::time::Instant::now() < until {
        d.apply_outputs().await;
        tokio::select! {
            Some(dg) = rx.recv() => d.endpoint.handle_datagram(Instant::now(), dg.local, dg.remote, &dg.data),
            _ = tokio::time::sleep(Duration::from_millis(100)) => d.endpoint.handle_timeout(Instant::now()),
        }
    }
    d.apply_outputs().await;
    // Sessions whose peers did not answer in time end here: their last counters, then Stop.
    d.read_counters().await;
    let now = unix_now();
    for v in d.sessions.up_views(now) {
        d.transition(Transition::Down(v));
    }
    d.account_downs();
    // Protected flows stay blocked while vpnd is not running (`vpnd --flush` unblocks).
    let (standing, left) = d.kernel.stop().await?;
    info!(
        sas = left.sas,
        policies = left.policies,
        standing_policies = standing,
        "stopped; removed what was left, standing policies keep the configured flows blocked"
    );
    if let Some(a) = d.accounting.take() {
        a.shutdown(SHUTDOWN_GRACE).await;
    }
    d.syslog.shutdown(SHUTDOWN_GRACE).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounting::{start_record, SessionIdentity};
    use crate::control::render;
    use crate::ike::codec::Identity;

    /// What a PSK holder once put into `show crypto session`: a screen clear and fake lines.
    const EVIL: &str = "x\x1b[2J\x1b[H\r\nSession status: UP-ACTIVE\nPeer: 10.9.9.9 \u{202e}\x07";

    fn outputs(phase1: &str) -> Vec<(&'static str, String)> {
        let id = identity_text(&Identity::Fqdn(phase1.into()));
        let mut t = SessionTable::new();
        let peer = PeerInfo {
            name: "p".into(),
            description: Some("branch".into()),
            fvrf: None,
            ivrf: None,
            dynamic: false,
            interface: Some("t0".into()),
        };
        let (local, remote) = (
            "192.0.2.1:500".parse().unwrap(),
            "192.0.2.2:500".parse().unwrap(),
        );
        t.ike_up(1, peer, local, remote, Some(id.clone()), true, 0);
        let child = SessionChild {
            inbound_spi: 1,
            outbound_spi: 2,
            protocol: 0,
            local_ts: "198.51.100.0/25".into(),
            remote_ts: "203.0.113.0/26".into(),
            lifetime_s: 3600,
            lifetime_kb: None,
            installed_at: 100,
        };
        let Some(Transition::Up(up)) = t.child_installed(1, 1, child, 100) else {
            panic!("the first pair brings the session up");
        };
        let views = t.views(160);
        let record = start_record(&SessionIdentity {
            id: "1".into(),
            user_name: up.phase1_id.clone(),
            framed_ip: None,
            framed_ipv6: None,
            nas_ip: None,
            peer_ip: remote.ip(),
            ivrf: None,
            group: None,
            interface: None,
            send_vsas: true,
            groups: vec![],
            started: 100,
            class: Vec::new(),
        });
        vec![
            ("detail", render::crypto_session(&views, true)),
            ("brief", render::crypto_session_brief(&views, 160)),
            ("syslog", render::session_status_syslog(true, &up)),
            ("User-Name", record.user_name.clone().unwrap_or_default()),
            ("AVPairs", record.cisco_avpairs.join(";")),
        ]
    }

    #[test]
    fn a_hostile_identity_reaches_no_output_unescaped() {
        let plain = outputs("peer1.lab.example");
        let evil = outputs(EVIL);
        for ((what, p), (_, e)) in plain.iter().zip(&evil) {
            assert!(
                !e.chars()
                    .any(|c| (c.is_control() && c != '\n') || c == '\u{202e}'),
                "{what}: {e:?}"
            );
            assert_eq!(
                p.lines().count(),
                e.lines().count(),
                "{what}: fake lines in {e}"
            );
        }
        // The outer interface, as IOS's `Interface:` and brief's I/F column show it.
        assert!(plain[0].1.contains("Interface: t0\n"), "{}", plain[0].1);
        assert!(plain[1].1.contains(" t0 "), "{}", plain[1].1);
        assert!(
            evil[0].1.contains("x\\x1b[2J"),
            "shown escaped: {}",
            evil[0].1
        );
    }
}
