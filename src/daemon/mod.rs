//! The tokio shell around the sans-IO engine: UDP sockets, the timer, kernel events, and
//! the outputs applied in order (a child is in the kernel before the IKE_AUTH response that
//! announces it leaves). One task owns the engine and the kernel bookkeeping; socket
//! readers and the XFRM event stream feed it through channels.

pub mod kernel;
mod peers;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{error, info, warn};
use vpnd_xfrm::{Event, Events, Owner, Xfrm};

use crate::config::{Config, StartAction};
use crate::ike::crypto::SystemRng;
use crate::ike::{ChildId, Endpoint, IkeSaId, Output};
use kernel::Kernel;

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

/// A child as the daemon knows it: enough to route kernel events back to the engine.
struct ChildInfo {
    ike: IkeSaId,
    name: String,
}

struct Daemon {
    endpoint: Endpoint,
    kernel: Kernel,
    sockets: Vec<Arc<UdpSocket>>,
    children: HashMap<ChildId, ChildInfo>,
    /// Inbound and outbound SPIs of live children.
    by_spi: HashMap<u32, ChildId>,
    /// Peers to bring back up after their IKE SA ends (static crypto map behaviour).
    initiate: Vec<String>,
    /// Static peers waiting to be re-initiated: when, and to which address.
    retries: HashMap<String, (Instant, IpAddr)>,
    /// The next back-off per static peer.
    backoff: HashMap<String, Duration>,
    port: u16,
}

/// The local address the kernel would use towards `remote` (a connected UDP socket's
/// source address: the route lookup, without sending anything).
fn source_towards(remote: IpAddr) -> Option<IpAddr> {
    let any: SocketAddr = if remote.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = std::net::UdpSocket::bind(any).ok()?;
    s.connect((remote, 9)).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

impl Daemon {
    fn local_for(&self, remote: IpAddr) -> SocketAddr {
        let bound = self
            .sockets
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .find(|a| !a.ip().is_unspecified() && a.is_ipv4() == remote.is_ipv4());
        match bound {
            Some(a) => a,
            None => SocketAddr::new(
                source_towards(remote).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                self.port,
            ),
        }
    }

    fn socket_for(&self, local: SocketAddr) -> Option<&Arc<UdpSocket>> {
        self.sockets
            .iter()
            .find(|s| s.local_addr().is_ok_and(|a| a == local))
            .or_else(|| {
                self.sockets.iter().find(|s| {
                    s.local_addr()
                        .is_ok_and(|a| a.ip().is_unspecified() && a.is_ipv4() == local.is_ipv4())
                })
            })
    }

    fn initiate(&mut self, peer: &str, remote: IpAddr) {
        let local = self.local_for(remote);
        match self.endpoint.initiate(Instant::now(), peer, local) {
            Ok(id) => info!(peer, ike = format_args!("{id:016x}"), %local, "initiating IKE SA"),
            Err(e) => error!(peer, "cannot initiate: {e}"),
        }
    }

    /// Applies every pending engine output, in order.
    async fn apply_outputs(&mut self) {
        while let Some(o) = self.endpoint.poll_output() {
            match o {
                Output::Transmit(t) => match self.socket_for(t.local) {
                    Some(s) => {
                        if let Err(e) = s.send_to(&t.data, t.remote).await {
                            warn!(remote = %t.remote, "send failed: {e}");
                        }
                    }
                    None => warn!(local = %t.local, "no socket for local address"),
                },
                Output::InstallChild(c) => match self.kernel.install(&c).await {
                    Ok(()) => {
                        info!(
                            peer = c.peer,
                            child = c.child_name,
                            inbound = format_args!("{:08x}", c.inbound_spi),
                            outbound = format_args!("{:08x}", c.outbound_spi),
                            "child SA installed"
                        );
                        self.by_spi.insert(c.inbound_spi, c.child);
                        self.by_spi.insert(c.outbound_spi, c.child);
                        self.children.insert(
                            c.child,
                            ChildInfo {
                                ike: c.ike,
                                name: c.child_name.clone(),
                            },
                        );
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
                    let name = self
                        .children
                        .remove(&c.child)
                        .map(|i| i.name)
                        .unwrap_or_default();
                    self.by_spi.remove(&c.inbound_spi);
                    self.by_spi.remove(&c.outbound_spi);
                    for e in self.kernel.remove(&c, &name).await {
                        error!(peer = c.peer, "removing child SA: {e}");
                    }
                    info!(
                        peer = c.peer,
                        child = name,
                        inbound = format_args!("{:08x}", c.inbound_spi),
                        "child SA removed"
                    );
                }
                Output::IkeUp {
                    ike,
                    peer,
                    remote,
                    remote_id,
                    initiator,
                    ..
                } => {
                    info!(peer, ike = format_args!("{ike:016x}"), %remote, ?remote_id, initiator, "IKE SA established");
                    self.backoff.remove(&peer);
                }
                Output::IkeDown {
                    ike,
                    peer,
                    remote,
                    was_up,
                    reason,
                } => {
                    info!(peer, ike = format_args!("{ike:016x}"), %remote, was_up, ?reason, "IKE SA down");
                    self.schedule_retry(&peer, remote.ip(), &reason);
                }
                Output::IkeRekeyed {
                    old,
                    new,
                    peer,
                    children,
                } => {
                    info!(
                        peer,
                        old = format_args!("{old:016x}"),
                        new = format_args!("{new:016x}"),
                        "IKE SA rekeyed"
                    );
                    for c in children {
                        if let Some(info) = self.children.get_mut(&c) {
                            info.ike = new;
                        }
                    }
                }
                Output::Notice { peer, remote, text } => {
                    warn!(peer = peer.as_deref().unwrap_or("-"), %remote, "{text}")
                }
            }
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

    fn kernel_event(&mut self, ev: Event) {
        if let Event::Expire {
            id, hard: false, ..
        } = ev
        {
            // Soft expiry: time (or bytes) to rekey, make before break.
            if let Some(child) = self.by_spi.get(&id.spi).copied() {
                if let Some(info) = self.children.get(&child) {
                    info!(
                        spi = format_args!("{:08x}", id.spi),
                        "kernel soft-expired a child SA: rekeying"
                    );
                    let _ = self.endpoint.rekey_child(Instant::now(), info.ike, child);
                }
            }
        }
        if let Event::Expire { id, hard: true, .. } = ev {
            if let Some(child) = self.by_spi.get(&id.spi).copied() {
                if let Some(info) = self.children.get(&child) {
                    info!(
                        spi = format_args!("{:08x}", id.spi),
                        "kernel hard-expired a child SA"
                    );
                    self.endpoint.child_expired(Instant::now(), info.ike, child);
                }
            }
        }
    }
}

pub async fn run(config: Config) -> Result<()> {
    let owner = Owner {
        reqid_base: config.local.reqid_base,
        ..Owner::default()
    };
    let xfrm = Xfrm::connect(owner).context("opening the XFRM netlink socket")?;
    // SAs and policies left by a previous run that died: ours alone, by reqid band.
    let stale = xfrm
        .flush_owned()
        .await
        .context("removing stale vpnd SAs and policies")?;
    if stale.sas + stale.policies > 0 {
        warn!(
            sas = stale.sas,
            policies = stale.policies,
            "removed state left by a previous run"
        );
    }
    let mut events = Events::subscribe().context("subscribing to XFRM events")?;

    let addrs: Vec<IpAddr> = if config.local.addresses.is_empty() {
        vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)]
    } else {
        config.local.addresses.clone()
    };
    let mut sockets = Vec::new();
    for a in addrs {
        let s = UdpSocket::bind((a, config.local.port))
            .await
            .with_context(|| format!("binding UDP {a}:{}", config.local.port))?;
        sockets.push(Arc::new(s));
    }
    let (tx, mut rx) = mpsc::channel::<Datagram>(1024);
    for s in &sockets {
        let (s, tx) = (s.clone(), tx.clone());
        let local = s.local_addr()?;
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            loop {
                match s.recv_from(&mut buf).await {
                    Ok((n, remote)) => {
                        let local = if local.ip().is_unspecified() {
                            SocketAddr::new(
                                source_towards(remote.ip()).unwrap_or(local.ip()),
                                local.port(),
                            )
                        } else {
                            local
                        };
                        if tx
                            .send(Datagram {
                                local,
                                remote,
                                data: buf[..n].to_vec(),
                            })
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => warn!(%local, "receive failed: {e}"),
                }
            }
        });
    }

    let peers = config.peers.iter().map(peers::peer_policy).collect();
    let mut d = Daemon {
        endpoint: Endpoint::new(peers, Box::new(SystemRng::new())),
        kernel: Kernel::new(xfrm),
        sockets,
        children: HashMap::new(),
        by_spi: HashMap::new(),
        initiate: config
            .peers
            .iter()
            .filter(|p| p.start == StartAction::Initiate)
            .map(|p| p.name.clone())
            .collect(),
        retries: HashMap::new(),
        backoff: HashMap::new(),
        port: config.local.port,
    };
    for p in config
        .peers
        .iter()
        .filter(|p| p.start == StartAction::Initiate)
    {
        if let crate::config::PeerAddress::Single(remote) = p.remote {
            d.initiate(&p.name, remote);
        }
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    info!(peers = config.peers.len(), "vpnd running");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    loop {
        d.apply_outputs().await;
        let deadline = [d.endpoint.poll_timeout(), d.next_retry()]
            .into_iter()
            .flatten()
            .min()
            .map(tokio::time::Instant::from_std);
        tokio::select! {
            Some(dg) = rx.recv() => d.endpoint.handle_datagram(Instant::now(), dg.local, dg.remote, &dg.data),
            _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if deadline.is_some() => {
                d.endpoint.handle_timeout(Instant::now());
                d.run_retries();
            }
            Some(ev) = events.next() => d.kernel_event(ev),
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }

    // Shutdown: tell every peer, wait a little for their answers, then clean the kernel.
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    info!("stopping: deleting IKE SAs");
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
    let left = d.kernel.xfrm().flush_owned().await?;
    info!(
        sas = left.sas,
        policies = left.policies,
        "stopped; removed what was left"
    );
    Ok(())
}
