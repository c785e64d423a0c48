//! Reverse routes (IOS `reverse-route [remote-peer]`, issue 13): while a child SA is up, a
//! route to each of its remote traffic selectors, so the host needs no route by hand.
//!
//! - A policy-based peer's routes go the way the route to the peer goes (its gateway and
//!   interface), in `reverse_route.table`, with a local address inside the local selector
//!   as the preferred source when the host has one, so that traffic the gateway itself
//!   sends to the remote subnet leaves protected (what charon's table 220 does).
//! - A route-based peer's go into its XFRM interface (`dev ipsecN`), in its ivrf's table
//!   when it has one (else `reverse_route.table`): 0.0.0.0/0 selectors make a default route
//!   of that table, as IOS's reverse-route does in a VRF. `remote_peer`'s host route to the
//!   peer goes its way in the front-door table (the fvrf's, else main).
//! - A pool client's remote selector is its leased address (RFC 7296 2.9): its route is a
//!   host route to that address.
//!
//! Every route carries vpnd's own protocol number ([`RTPROT_VPND`]): vpnd never changes a
//! route it did not install (a route that exists already with the same destination, table
//! and metric is left alone, and retried when the next child wants it), and at start it
//! removes those a previous run left behind. A route is held by the children that want it
//! (the rekeyed child and its successor, two flows with the same remote subnet), and leaves
//! with the last; a changed way (a new path to the peer, a reload's new settings) replaces
//! it in place (NLM_F_REPLACE), never a second copy. Through `rtnetlink` (the rust-netlink
//! handle crate the XFRM client is modelled on).

use std::collections::{BTreeMap, BTreeSet, HashMap};
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

use crate::config::{Config, ReverseRoute, MAIN_TABLE};
use crate::ike::ChildId;

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
    #[error("the XFRM interface {0} does not exist")]
    NoInterface(String),
}

/// Where one peer's reverse routes go: its `reverse_route` and what its configuration says
/// about tables and interfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub rr: ReverseRoute,
    pub via: Via,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// Policy-based: the peer's way in the main table; every route in `rr.table`.
    Peer,
    /// Route-based: the remote subnets into XFRM interface `name`, in `table`; the host
    /// route to the peer through the front-door VRF device `front` (none: the main table)
    /// in `front_table`.
    Interface {
        name: String,
        table: u32,
        /// The ivrf, whose addresses may be a preferred source.
        vrf: Option<String>,
        front: Option<String>,
        front_table: u32,
    },
}

/// The plan of every peer that has `reverse_route`.
pub fn plans(config: &Config) -> HashMap<String, Plan> {
    config
        .peers
        .iter()
        .filter_map(|p| {
            let rr = p.reverse_route?;
            let via = match &p.interface {
                None => Via::Peer,
                Some(x) => {
                    let vrf = p.ivrf.clone().filter(|v| config.vrfs.contains_key(v));
                    let front = config.front_vrf(p).map(str::to_string);
                    Via::Interface {
                        name: x.name.clone(),
                        table: vrf.as_ref().map_or(rr.table, |v| config.vrfs[v]),
                        vrf,
                        front_table: front.as_ref().map_or(MAIN_TABLE, |v| config.vrfs[v]),
                        front,
                    }
                }
            };
            Some((p.name.clone(), Plan { rr, via }))
        })
        .collect()
}

/// What a child's routes are made of: its peer, the peer's address and its selectors'
/// prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildRoutes {
    pub peer: String,
    pub remote: IpAddr,
    pub local_nets: Vec<IpNet>,
    pub remote_nets: Vec<IpNet>,
}

/// A route as the kernel tells routes apart in a table: destination and metric.
type RouteKey = (u32, IpNet, u32);

/// One route vpnd manages: what is in the kernel (none: not yet, or a foreign route holds
/// the place) and the message each child wants there. The first child's wins.
#[derive(Default)]
struct Entry {
    installed: Option<RouteMessage>,
    wanted: BTreeMap<ChildId, RouteMessage>,
}

struct Child {
    routes: ChildRoutes,
    keys: Vec<RouteKey>,
}

/// What a change did to the kernel's routes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Changed {
    pub added: usize,
    pub replaced: usize,
    pub removed: usize,
}

impl Changed {
    fn add(&mut self, o: Changed) {
        self.added += o.added;
        self.replaced += o.replaced;
        self.removed += o.removed;
    }
}

/// The way to the peer, as the kernel routes it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Path {
    gateway: Option<IpAddr>,
    oif: u32,
}

pub struct Routes {
    handle: Handle,
    plans: HashMap<String, Plan>,
    children: HashMap<ChildId, Child>,
    routes: BTreeMap<RouteKey, Entry>,
}

impl Routes {
    /// Opens the route netlink socket (its connection runs on the tokio runtime).
    pub fn connect() -> std::io::Result<Routes> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(conn);
        Ok(Routes {
            handle,
            plans: HashMap::new(),
            children: HashMap::new(),
            routes: BTreeMap::new(),
        })
    }

    /// The peers' plans (at start, and at a reload: the running children's routes follow
    /// the new ones, added, replaced or removed without touching their SAs).
    pub async fn set_plans(&mut self, plans: HashMap<String, Plan>) -> (Changed, Vec<RouteError>) {
        let changed: Vec<ChildId> = self
            .children
            .iter()
            .filter(|(_, c)| self.plans.get(&c.routes.peer) != plans.get(&c.routes.peer))
            .map(|(id, _)| *id)
            .collect();
        self.plans = plans;
        self.rebuild(&changed).await
    }

    /// A tunnel-mode child is up: its routes in (a route another child holds already is
    /// shared). All or nothing: on an error the child holds no route.
    pub async fn child_up(
        &mut self,
        id: ChildId,
        routes: ChildRoutes,
    ) -> Result<Changed, RouteError> {
        let (peer, n) = (routes.peer.clone(), routes.remote_nets.len());
        self.children.insert(
            id,
            Child {
                routes,
                keys: Vec::new(),
            },
        );
        let (changed, mut errors) = self.rebuild(&[id]).await;
        if !errors.is_empty() {
            self.child_down(id).await;
            return Err(errors.remove(0));
        }
        if changed.added + changed.replaced > 0 {
            info!(
                peer = %peer,
                child = id,
                routes = changed.added + changed.replaced,
                selectors = n,
                "reverse routes installed"
            );
        }
        Ok(changed)
    }

    /// A child is gone: the routes no other child holds leave (only the ones vpnd installed).
    pub async fn child_down(&mut self, id: ChildId) -> (Changed, Vec<RouteError>) {
        let Some(c) = self.children.remove(&id) else {
            return (Changed::default(), Vec::new());
        };
        for k in &c.keys {
            if let Some(e) = self.routes.get_mut(k) {
                e.wanted.remove(&id);
            }
        }
        self.reconcile_all(c.keys.into_iter().collect()).await
    }

    /// At stop: every route vpnd installed.
    pub async fn remove_all(&mut self) -> Vec<RouteError> {
        self.children.clear();
        for e in self.routes.values_mut() {
            e.wanted.clear();
        }
        let keys = self.routes.keys().copied().collect();
        self.reconcile_all(keys).await.1
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

    /// The routes of vpnd's protocol it holds now: (table, destination, metric), for tests
    /// and `show`.
    pub fn installed(&self) -> Vec<(u32, IpNet, u32)> {
        self.routes
            .iter()
            .filter(|(_, e)| e.installed.is_some())
            .map(|(k, _)| *k)
            .collect()
    }

    /// These children's routes computed again from their plans, and the kernel brought in
    /// line: new and replaced routes first, then those no child wants any more (a changed
    /// metric or table: the new route is in before the old one leaves).
    async fn rebuild(&mut self, ids: &[ChildId]) -> (Changed, Vec<RouteError>) {
        let mut touched = BTreeSet::new();
        let mut errors = Vec::new();
        for id in ids {
            let Some(c) = self.children.get(id) else {
                continue;
            };
            let wanted = match self.plans.get(&c.routes.peer) {
                Some(plan) => match self.messages(plan, &c.routes).await {
                    Ok(w) => w,
                    Err(e) => {
                        errors.push(e);
                        BTreeMap::new()
                    }
                },
                None => BTreeMap::new(),
            };
            let c = self.children.get_mut(id).expect("looked up above");
            for k in c.keys.drain(..) {
                if let Some(e) = self.routes.get_mut(&k) {
                    e.wanted.remove(id);
                }
                touched.insert(k);
            }
            for (k, m) in wanted {
                self.routes.entry(k).or_default().wanted.insert(*id, m);
                c.keys.push(k);
                touched.insert(k);
            }
        }
        let (changed, more) = self.reconcile_all(touched).await;
        errors.extend(more);
        (changed, errors)
    }

    async fn reconcile_all(&mut self, keys: BTreeSet<RouteKey>) -> (Changed, Vec<RouteError>) {
        let (going, staying): (Vec<RouteKey>, Vec<RouteKey>) = keys
            .into_iter()
            .partition(|k| self.routes.get(k).is_some_and(|e| e.wanted.is_empty()));
        let mut changed = Changed::default();
        let mut errors = Vec::new();
        for k in staying.into_iter().chain(going) {
            match self.reconcile(k).await {
                Ok(c) => changed.add(c),
                Err(e) => errors.push(e),
            }
        }
        (changed, errors)
    }

    /// One route as its holders want it: added, replaced, removed or left as it is.
    async fn reconcile(&mut self, key: RouteKey) -> Result<Changed, RouteError> {
        let Some(e) = self.routes.get_mut(&key) else {
            return Ok(Changed::default());
        };
        let want = e.wanted.values().next().cloned();
        let mut changed = Changed::default();
        match (want, e.installed.clone()) {
            (None, None) => {
                self.routes.remove(&key);
            }
            (None, Some(m)) => {
                self.routes.remove(&key);
                match self.handle.route().del(m).execute().await {
                    Ok(()) => changed.removed += 1,
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            (Some(w), None) => match self.handle.route().add(w.clone()).execute().await {
                Ok(()) => {
                    e.installed = Some(w);
                    changed.added += 1;
                }
                Err(err) if is_exists(&err) => {
                    warn!(route = %key.1, table = key.0, metric = key.2, "reverse route not installed: a route to it with this metric exists already (not vpnd's to change)");
                }
                Err(err) => return Err(err.into()),
            },
            (Some(w), Some(i)) if w == i => {}
            (Some(w), Some(_)) => {
                // Ours (we installed it at this destination and metric): in place, so
                // the destination is never without its route.
                self.handle
                    .route()
                    .add(w.clone())
                    .replace()
                    .execute()
                    .await?;
                e.installed = Some(w);
                changed.replaced += 1;
            }
        }
        Ok(changed)
    }

    /// The routes `plan` makes for a child, by key (the first of a key wins).
    async fn messages(
        &self,
        plan: &Plan,
        c: &ChildRoutes,
    ) -> Result<BTreeMap<RouteKey, RouteMessage>, RouteError> {
        let rr = &plan.rr;
        let addrs = self.local_addresses().await?;
        let mut out = BTreeMap::new();
        // A source inside a local selector narrower than the whole family (for 0.0.0.0/0
        // the kernel's own choice is as good as any), in the VRF of the route's table.
        let src_of = |dst: &IpNet, vrf: Option<&str>| {
            addrs.iter().copied().find(|a| {
                !a.is_loopback()
                    && a.is_ipv4() == dst.addr().is_ipv4()
                    && c.local_nets
                        .iter()
                        .any(|n| n.prefix_len() > 0 && n.contains(a))
                    && super::vrf::of_address(*a, vrf.into_iter()) == vrf
            })
        };
        match &plan.via {
            Via::Peer => {
                let path = self.path_to(c.remote, None).await?;
                for dst in &c.remote_nets {
                    let m = route_message(*dst, rr.table, rr.metric, path, src_of(dst, None))?;
                    out.entry((rr.table, *dst, rr.metric)).or_insert(m);
                }
                // The peer itself is not behind the tunnel: no inner source for it.
                if rr.remote_peer {
                    let dst = IpNet::from(c.remote);
                    let m = route_message(dst, rr.table, rr.metric, path, None)?;
                    out.entry((rr.table, dst, rr.metric)).or_insert(m);
                }
            }
            Via::Interface {
                name,
                table,
                vrf,
                front,
                front_table,
            } => {
                let oif = nix::net::if_::if_nametoindex(name.as_str())
                    .map_err(|_| RouteError::NoInterface(name.clone()))?;
                let into = Path { gateway: None, oif };
                for dst in &c.remote_nets {
                    let src = src_of(dst, vrf.as_deref());
                    let m = route_message(*dst, *table, rr.metric, into, src)?;
                    out.entry((*table, *dst, rr.metric)).or_insert(m);
                }
                if rr.remote_peer {
                    let path = self.path_to(c.remote, front.as_deref()).await?;
                    let dst = IpNet::from(c.remote);
                    let m = route_message(dst, *front_table, rr.metric, path, None)?;
                    out.entry((*front_table, dst, rr.metric)).or_insert(m);
                }
            }
        }
        Ok(out)
    }

    /// The kernel's route to `peer` now (`ip route get`), in VRF `vrf` when given (the
    /// lookup's output interface is the VRF device, as iproute2's `vrf NAME` sets it).
    async fn path_to(&self, peer: IpAddr, vrf: Option<&str>) -> Result<Path, RouteError> {
        let mut q = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(peer, if peer.is_ipv4() { 32 } else { 128 })
            .map_err(|e| RouteError::Invalid(IpNet::from(peer), e.to_string()))?
            .build();
        if let Some(v) = vrf {
            let i = nix::net::if_::if_nametoindex(v)
                .map_err(|_| RouteError::NoInterface(v.to_string()))?;
            q.attributes.push(RouteAttribute::Oif(i));
        }
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

/// `dst` via the path's gateway (when of the same family) out of its interface.
fn route_message(
    dst: IpNet,
    table: u32,
    metric: u32,
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
        .table_id(table)
        .priority(metric)
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

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = "
local:
  addresses: [192.0.2.1]
vrfs:
  outside: 100
  cust-a: 1001
peers:
  - name: policy
    address: 192.0.2.2
    psk: secret-0123-policy
    reverse_route: { table: 220, metric: 5 }
    children:
      - { name: net, local_ts: [198.51.100.0/25], remote_ts: [203.0.113.0/26] }
  - name: routed
    address: 192.0.2.3
    psk: secret-0123-routed
    interface: ipsec1
    if_id: 1
    ivrf: cust-a
    fvrf: outside
    reverse_route: { table: 220, metric: 7, remote_peer: true }
    children:
      - { name: net, local_ts: [0.0.0.0/0], remote_ts: [0.0.0.0/0] }
  - name: plain
    address: 192.0.2.4
    psk: secret-0123-plain
    interface: ipsec2
    if_id: 2
    reverse_route: true
    children:
      - { name: net, local_ts: [0.0.0.0/0], remote_ts: [0.0.0.0/0] }
  - name: none
    address: 192.0.2.5
    psk: secret-0123-none
    children:
      - { name: net, local_ts: [198.51.100.0/25], remote_ts: [203.0.113.64/26] }
";

    #[test]
    fn each_peer_gets_the_tables_its_configuration_names() {
        let c = Config::from_str(CONF, "t.yaml").unwrap_or_else(|e| panic!("{e}"));
        let p = plans(&c);
        assert_eq!(p.len(), 3, "only the peers with reverse_route: {p:?}");
        assert_eq!(p["policy"].via, Via::Peer);
        assert_eq!(p["policy"].rr.table, 220);
        // The ivrf's table wins over reverse_route.table; the peer's host route goes in
        // the front-door VRF's table.
        assert_eq!(
            p["routed"].via,
            Via::Interface {
                name: "ipsec1".into(),
                table: 1001,
                vrf: Some("cust-a".into()),
                front: Some("outside".into()),
                front_table: 100,
            }
        );
        assert_eq!(
            p["plain"].via,
            Via::Interface {
                name: "ipsec2".into(),
                table: MAIN_TABLE,
                vrf: None,
                front: None,
                front_table: MAIN_TABLE,
            }
        );
    }
}
