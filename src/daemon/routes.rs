//! Reverse routes (IOS `reverse-route [remote-peer]`, issue 13): while a flow has a child
//! SA, a route to each of its remote traffic selectors, so the host needs no route by hand.
//!
//! Each route goes the way the route to the peer goes (its gateway and interface), with a
//! local address inside the local selector as the preferred source when the host has one,
//! so that traffic the gateway itself sends to the remote subnet leaves protected (what
//! charon's table 220 does). Every route carries vpnd's own protocol number
//! ([`RTPROT_VPND`]): vpnd never changes a route it did not install, and at start it removes
//! those a previous run left behind. Through `rtnetlink` (the rust-netlink handle crate the
//! XFRM client is modelled on).

use std::collections::HashMap;
use std::net::IpAddr;

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteType,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, RouteMessageBuilder};
use thiserror::Error;
use tracing::{info, warn};

use crate::config::ReverseRoute;

/// The routing protocol number of vpnd's routes (`ip route show proto 118`): unassigned in
/// iproute2's rt_protos, so no routing daemon claims them.
pub const RTPROT_VPND: u8 = 118;

#[derive(Debug, Error)]
pub enum RouteError {
    #[error("netlink: {0}")]
    Netlink(#[from] rtnetlink::Error),
    #[error("no route to the peer {0}: the remote subnets cannot go its way")]
    NoPathToPeer(IpAddr),
    #[error("route to {0}: {1}")]
    Invalid(IpNet, String),
}

/// The way to the peer, as the kernel routes it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Path {
    gateway: Option<IpAddr>,
    oif: u32,
}

/// The routes of one flow (a child configuration towards one remote address).
pub type FlowKey = (String, String, IpAddr);

pub struct Routes {
    handle: Handle,
    installed: HashMap<FlowKey, Vec<RouteMessage>>,
}

impl Routes {
    /// Opens the route netlink socket (its connection runs on the tokio runtime).
    pub fn connect() -> std::io::Result<Routes> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(conn);
        Ok(Routes {
            handle,
            installed: HashMap::new(),
        })
    }

    /// A flow's first child is up: its routes in. A route that exists already (the same
    /// destination, table and metric: the operator's, or another flow's) is left alone.
    pub async fn up(
        &mut self,
        key: FlowKey,
        rr: &ReverseRoute,
        peer: IpAddr,
        local_nets: &[IpNet],
        remote_nets: &[IpNet],
    ) -> Result<usize, RouteError> {
        if self.installed.contains_key(&key) {
            return Ok(0);
        }
        let path = self.path_to(peer).await?;
        let addrs = self.local_addresses().await?;
        let mut dsts: Vec<IpNet> = remote_nets.to_vec();
        if rr.remote_peer {
            dsts.push(IpNet::from(peer));
        }
        let mut done = Vec::new();
        for dst in dsts {
            let src = addrs.iter().copied().find(|a| {
                local_nets.iter().any(|n| n.contains(a)) && a.is_ipv4() == dst.addr().is_ipv4()
            });
            let msg = route_message(dst, rr, path, src)?;
            match self.handle.route().add(msg.clone()).execute().await {
                Ok(()) => done.push(msg),
                Err(e) if is_exists(&e) => {
                    warn!(route = %dst, table = rr.table, "reverse route not installed: a route to it with this metric exists already (not vpnd's to change)");
                }
                Err(e) => {
                    // All or nothing: a half-routed flow would be harder to reason about.
                    for m in done {
                        let _ = self.handle.route().del(m).execute().await;
                    }
                    return Err(e.into());
                }
            }
        }
        let n = done.len();
        if n > 0 {
            info!(
                peer = key.0,
                child = key.1,
                routes = n,
                table = rr.table,
                "reverse routes installed"
            );
        }
        self.installed.insert(key, done);
        Ok(n)
    }

    /// A flow's last child is gone: its routes out (only the ones vpnd installed).
    pub async fn down(&mut self, key: &FlowKey) -> Vec<RouteError> {
        let mut errors = Vec::new();
        for m in self.installed.remove(key).unwrap_or_default() {
            if let Err(e) = self.handle.route().del(m).execute().await {
                if !is_not_found(&e) {
                    errors.push(e.into());
                }
            }
        }
        errors
    }

    /// At stop: every route vpnd installed.
    pub async fn remove_all(&mut self) -> Vec<RouteError> {
        let keys: Vec<FlowKey> = self.installed.keys().cloned().collect();
        let mut errors = Vec::new();
        for k in keys {
            errors.extend(self.down(&k).await);
        }
        errors
    }

    /// At start: routes of vpnd's protocol that a previous run left (in any table).
    pub async fn remove_stale(&mut self) -> Result<usize, RouteError> {
        let mut n = 0;
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut q = RouteMessageBuilder::<IpAddr>::new().build();
            q.header.address_family = family;
            q.header.table = 0; // RT_TABLE_UNSPEC: every table
            let ours: Vec<RouteMessage> = self
                .handle
                .route()
                .get(q)
                .execute()
                .try_filter(|m| {
                    futures::future::ready(m.header.protocol == RouteProtocol::Other(RTPROT_VPND))
                })
                .try_collect()
                .await?;
            for m in ours {
                match self.handle.route().del(m).execute().await {
                    Ok(()) => n += 1,
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(n)
    }

    async fn path_to(&self, peer: IpAddr) -> Result<Path, RouteError> {
        let q = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(peer, if peer.is_ipv4() { 32 } else { 128 })
            .map_err(|e| RouteError::Invalid(IpNet::from(peer), e.to_string()))?
            .build();
        let found: Vec<RouteMessage> = self.handle.route().get(q).execute().try_collect().await?;
        let m = found.first().ok_or(RouteError::NoPathToPeer(peer))?;
        let mut path = Path {
            gateway: None,
            oif: 0,
        };
        for a in &m.attributes {
            match a {
                RouteAttribute::Oif(i) => path.oif = *i,
                RouteAttribute::Gateway(g) => path.gateway = route_ip(g),
                _ => {}
            }
        }
        if path.oif == 0 {
            return Err(RouteError::NoPathToPeer(peer));
        }
        Ok(path)
    }

    async fn local_addresses(&self) -> Result<Vec<IpAddr>, RouteError> {
        let msgs: Vec<_> = self.handle.address().get().execute().try_collect().await?;
        Ok(msgs
            .iter()
            .flat_map(|m| m.attributes.iter())
            .filter_map(|a| match a {
                AddressAttribute::Local(ip) | AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })
            .collect())
    }
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// `dst` via the peer's gateway (when of the same family) out of the peer's interface.
fn route_message(
    dst: IpNet,
    rr: &ReverseRoute,
    path: Path,
    src: Option<IpAddr>,
) -> Result<RouteMessage, RouteError> {
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(dst.addr(), dst.prefix_len())
        .map_err(|e| RouteError::Invalid(dst, e.to_string()))?;
    if let Some(g) = path.gateway.filter(|g| g.is_ipv4() == dst.addr().is_ipv4()) {
        b = b
            .gateway(g)
            .map_err(|e| RouteError::Invalid(dst, e.to_string()))?;
    }
    if let Some(s) = src {
        b = b
            .pref_source(s)
            .map_err(|e| RouteError::Invalid(dst, e.to_string()))?;
    }
    Ok(b.output_interface(path.oif)
        .table_id(rr.table)
        .priority(rr.metric)
        .protocol(RouteProtocol::Other(RTPROT_VPND))
        .kind(RouteType::Unicast)
        .build())
}

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

fn is_exists(e: &rtnetlink::Error) -> bool {
    errno(e) == Some(libc::EEXIST)
}

fn is_not_found(e: &rtnetlink::Error) -> bool {
    matches!(errno(e), Some(libc::ESRCH) | Some(libc::ENOENT))
}
