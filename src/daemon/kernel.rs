//! The XFRM install: the engine's child SA commands become kernel SAs and policies.
//!
//! Order matters so that no packet leaves in clear and none is dropped (RFC 4301 spirit):
//! SAs go in before the policies that use them, and on removal policies go out before
//! their SAs. Policies are keyed by a reqid per (peer, child, remote address) slot, so a
//! rekeyed child's new SAs are picked up by the existing policies.
//!
//! **Fail closed.** A configured flow of a peer with a single address and `unprotected:
//! drop` has *standing* policies: installed at start before anything of a previous run is
//! removed ([`Kernel::take_over`], replacing the old policies with the same selectors in
//! place), kept while no SA exists (a peer that is down, a `clear`, between a failed and the
//! next negotiation), and left in the kernel at stop ([`Kernel::stop`]). With no SA for its
//! reqid an outbound packet is dropped and the kernel sends an ACQUIRE (what an IOS crypto
//! map does with traffic that has no SA; strongSwan's trap policies); a cleartext inbound
//! packet fails the policy's template check. `vpnd --flush` removes them all.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Subnets, Ipv6Subnets};
use vpnd_xfrm::{
    Action, Algorithms, Dir, DumpScope, Integ as XInteg, Key, Lifetime, Mode as XMode, PolicyKey,
    PolicySpec, SaCounters, SaId, SaSpec, Selector, Template, UdpEncap, Xfrm,
};

use super::routes::{ChildRoutes, Plan, Routes};
use crate::ike::codec::TrafficSelector;
use crate::ike::crypto::cipher::{Encr, Integ};
use crate::ike::{ChildId, ChildInstall, ChildRemove, Mode};
use tracing::warn;

/// Priority of vpnd's tunnel policies: below the kernel default (0 is highest), with more
/// specific selectors first (lower value), as strongSwan orders them.
const PRIORITY_BASE: u32 = 200_000;

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("child {child} of {peer}: {source}")]
    Kernel {
        peer: String,
        child: String,
        source: vpnd_xfrm::Error,
    },
    #[error("child {child} of {peer}: traffic selector {ts:?} has a port range the kernel cannot match (only one port or all)")]
    PortRange {
        peer: String,
        child: String,
        ts: TrafficSelector,
    },
}

/// The selectors of one traffic selector: its address range as prefixes, with its
/// protocol and (single) port.
fn selectors_of(ts: &TrafficSelector) -> Option<Vec<(IpNet, u8, Option<u16>)>> {
    let port = match (ts.start_port, ts.end_port) {
        (0, 65535) => None,
        (a, b) if a == b => Some(a),
        _ => return None,
    };
    let nets: Vec<IpNet> = match (ts.start_addr(), ts.end_addr()) {
        (IpAddr::V4(a), IpAddr::V4(b)) => Ipv4Subnets::new(a, b, 0).map(IpNet::V4).collect(),
        (IpAddr::V6(a), IpAddr::V6(b)) => Ipv6Subnets::new(a, b, 0).map(IpNet::V6).collect(),
        _ => return None,
    };
    Some(
        nets.into_iter()
            .map(|n| (n, ts.ip_protocol, port))
            .collect(),
    )
}

fn kernel_algorithms(
    encr: Encr,
    integ: Option<Integ>,
    encr_key: &[u8],
    integ_key: &[u8],
) -> Algorithms {
    match (encr, integ) {
        (Encr::AesGcm16 { .. }, _) => Algorithms::AesGcm16 {
            key: Key::new(encr_key.to_vec()),
        },
        (Encr::AesCbc { .. }, i) => Algorithms::AesCbc {
            key: Key::new(encr_key.to_vec()),
            // Every integrity transform by name: a new one must not fall through to another.
            // (CBC without one never gets here: proposals refuse it.)
            integ: match i {
                Some(Integ::HmacSha1_96) => XInteg::HmacSha1_96,
                Some(Integ::HmacSha384_192) => XInteg::HmacSha384_192,
                Some(Integ::HmacSha512_256) => XInteg::HmacSha512_256,
                Some(Integ::HmacSha256_128) | None => XInteg::HmacSha256_128,
            },
            integ_key: Key::new(integ_key.to_vec()),
        },
    }
}

fn xmode(m: Mode) -> XMode {
    match m {
        Mode::Tunnel => XMode::Tunnel,
        Mode::Transport => XMode::Transport,
    }
}

/// A flow as the kernel's policies see it: who, between which gateway addresses, which
/// selectors. The engine's [`ChildInstall`] gives one, the configuration the standing ones.
pub struct Flow {
    pub peer: String,
    pub child: String,
    pub local: IpAddr,
    pub remote: IpAddr,
    pub mode: Mode,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    /// Route-based: the XFRM interface's if_id, on the policies and the SAs.
    pub if_id: Option<u32>,
}

impl Flow {
    fn of(c: &ChildInstall, if_id: Option<u32>) -> Flow {
        Flow {
            peer: c.peer.clone(),
            child: c.child_name.clone(),
            local: c.local,
            remote: c.remote,
            mode: c.mode,
            local_ts: c.local_ts.clone(),
            remote_ts: c.remote_ts.clone(),
            if_id,
        }
    }

    /// The in, out (and for tunnels fwd) policies of every selector pair, with `reqid`.
    fn policies(&self, reqid: u32) -> Result<Vec<PolicySpec>, InstallError> {
        let sel = |ts: &TrafficSelector| {
            selectors_of(ts).ok_or_else(|| InstallError::PortRange {
                peer: self.peer.to_string(),
                child: self.child.to_string(),
                ts: *ts,
            })
        };
        let mut out = Vec::new();
        for l in &self.local_ts {
            for r in &self.remote_ts {
                for (ln, lproto, lport) in sel(l)? {
                    for (rn, rproto, rport) in sel(r)? {
                        if ln.addr().is_ipv4() != rn.addr().is_ipv4() {
                            continue;
                        }
                        let proto = lproto.max(rproto);
                        let specificity = u32::from(ln.prefix_len()) + u32::from(rn.prefix_len());
                        let priority = PRIORITY_BASE
                            - 256 * specificity
                            - u32::from(proto != 0) * 64
                            - u32::from(lport.is_some() || rport.is_some()) * 32;
                        let out_sel = Selector {
                            src: ln,
                            dst: rn,
                            proto,
                            sport: lport,
                            dport: rport,
                        };
                        let in_sel = Selector {
                            src: rn,
                            dst: ln,
                            proto,
                            sport: rport,
                            dport: lport,
                        };
                        let t_out = vec![Template {
                            src: self.local,
                            dst: self.remote,
                            mode: xmode(self.mode),
                            reqid,
                        }];
                        let t_in = vec![Template {
                            src: self.remote,
                            dst: self.local,
                            mode: xmode(self.mode),
                            reqid,
                        }];
                        let p = |selector, dir, templates| PolicySpec {
                            selector,
                            dir,
                            action: Action::Allow,
                            priority,
                            templates,
                            mark: None,
                            if_id: self.if_id,
                        };
                        out.push(p(out_sel, Dir::Out, t_out));
                        out.push(p(in_sel, Dir::In, t_in.clone()));
                        if self.mode == Mode::Tunnel {
                            out.push(p(in_sel, Dir::Fwd, t_in));
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

/// One policy slot: the policies of a child configuration towards one remote address.
#[derive(Default)]
struct Slot {
    reqid: u32,
    /// Policies that stay while no child is up (fail closed); empty for `unprotected: pass`.
    standing: Vec<PolicySpec>,
    /// The policies of the negotiated selectors, while children are up.
    policies: Vec<PolicySpec>,
    children: BTreeSet<ChildId>,
}

type SlotKey = (String, String, IpAddr);

/// What [`Kernel::take_over`] found and did.
#[derive(Debug, Default)]
pub struct TakeOver {
    /// Standing policies installed (replacing a previous run's with the same selectors).
    pub standing: usize,
    /// A previous run's policies that no configured flow stands for any more: removed.
    pub stale_policies: usize,
    /// A previous run's SAs (their IKE SAs died with it), with their last counters: removed.
    pub stale_sas: Vec<SaCounters>,
    /// Reqids of the kernel's larval SAs (spi 0): traffic wanted these flows while no IKE
    /// daemon answered its ACQUIRE. The kernel sends no new ACQUIRE for a flow while its
    /// larval SA lives (`net.core.xfrm_acq_expires`, 30 s), so these count as ACQUIREs.
    pub waiting: Vec<u32>,
    /// A previous run's reverse routes: removed (they come back with their children).
    pub stale_routes: usize,
}

/// What [`Kernel::set_standing`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StandingChange {
    pub installed: usize,
    pub removed: usize,
    pub slots_removed: usize,
}

/// Owns vpnd's kernel state bookkeeping (only the daemon's main task touches it).
pub struct Kernel {
    xfrm: Xfrm,
    slots: HashMap<SlotKey, Slot>,
    /// Outbound SAs of rekeyed children waiting for their predecessor's delete.
    deferred: HashMap<ChildId, SaSpec>,
    /// The inbound and outbound SAs of UDP-encapsulated children, so a NAT rebind can
    /// update their encapsulation in place (XFRM_MSG_UPDSA takes a whole SA; RFC 7296
    /// 2.23). The inbound one too: until its source port is the new one the kernel reports
    /// every packet as a new mapping.
    encapsulated: HashMap<ChildId, (SaSpec, SaSpec)>,
    next_reqid: u32,
    /// Reverse routes, for the peers that ask for them (`reverse_route`).
    routes: Option<Routes>,
    /// Route-based peers: their XFRM interface's if_id.
    if_ids: HashMap<String, u32>,
}

impl Kernel {
    /// The bookkeeping for `standing` flows (reqids in configuration order, so a restart
    /// with the same configuration finds the same reqids). Nothing reaches the kernel yet;
    /// a flow the kernel could not match is refused here, before anything changed.
    pub fn new(xfrm: Xfrm, standing: &[Flow]) -> Result<Kernel, InstallError> {
        let mut k = Kernel {
            xfrm,
            slots: HashMap::new(),
            deferred: HashMap::new(),
            encapsulated: HashMap::new(),
            next_reqid: 1,
            routes: None,
            if_ids: HashMap::new(),
        };
        for f in standing {
            let reqid = k.alloc_reqid();
            let slot = Slot {
                reqid,
                standing: f.policies(reqid)?,
                ..Slot::default()
            };
            k.slots
                .insert((f.peer.clone(), f.child.clone(), f.remote), slot);
        }
        Ok(k)
    }

    /// Route-based peers and their XFRM interface's if_id.
    pub fn set_if_ids(&mut self, peers: HashMap<String, u32>) {
        self.if_ids = peers;
    }

    /// The route netlink socket of reverse routes, with the peers' plans (at start; nothing
    /// is up yet, so nothing reaches the kernel).
    pub async fn set_reverse_routes(&mut self, mut routes: Routes, plans: HashMap<String, Plan>) {
        let _ = routes.set_plans(plans).await;
        self.routes = Some(routes);
    }

    /// A reload's reverse routes: the running children's follow the new plans (added,
    /// replaced, removed), their SAs untouched.
    pub async fn replan_routes(
        &mut self,
        plans: HashMap<String, Plan>,
    ) -> (super::routes::Changed, Vec<super::routes::RouteError>) {
        match &mut self.routes {
            Some(r) => r.set_plans(plans).await,
            None => Default::default(),
        }
    }

    fn alloc_reqid(&mut self) -> u32 {
        let r = self.xfrm.owner().reqid(self.next_reqid);
        self.next_reqid += 1;
        r
    }

    pub fn xfrm(&self) -> &Xfrm {
        &self.xfrm
    }

    /// The peer whose flow a policy with this reqid protects (an ACQUIRE names it).
    pub fn peer_of_reqid(&self, reqid: u32) -> Option<&str> {
        self.slots
            .iter()
            .find(|(_, s)| s.reqid == reqid)
            .map(|(k, _)| k.0.as_str())
    }

    fn standing_keys(&self) -> HashSet<PolicyKey> {
        self.slots
            .values()
            .flat_map(|s| s.standing.iter().map(PolicySpec::key))
            .collect()
    }

    /// At start, from whatever a previous run left: first every standing policy (an update
    /// replaces a policy with the same selectors in place, so a protected flow is never
    /// without one), then the previous run's other policies, then its SAs (read first: their
    /// counters are the last word on the sessions that died with it). On an error the
    /// kernel keeps what it has: policies that protect, never a gap.
    pub async fn take_over(&mut self) -> Result<TakeOver, vpnd_xfrm::Error> {
        let old_policies = self.xfrm.dump_policies(DumpScope::Owned).await?;
        let old_sas = self.xfrm.dump_counters(DumpScope::Owned).await?;
        let mut report = TakeOver::default();
        for p in self.slots.values().flat_map(|s| &s.standing) {
            self.xfrm.update_policy(p).await?;
            report.standing += 1;
        }
        let keep = self.standing_keys();
        for p in old_policies.iter().filter(|p| !keep.contains(&p.key)) {
            match self.xfrm.delete_policy(&p.key).await {
                Ok(()) => report.stale_policies += 1,
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        for sa in old_sas {
            if sa.id.spi == 0 {
                // Larval: cannot be deleted by SPI; the next real SA replaces it.
                if !report.waiting.contains(&sa.reqid) {
                    report.waiting.push(sa.reqid);
                }
                continue;
            }
            match self.xfrm.delete_sa(&sa.id).await {
                Ok(()) => report.stale_sas.push(sa),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(r) = &mut self.routes {
            match r.remove_stale().await {
                Ok(n) => report.stale_routes = n,
                Err(e) => warn!("removing the reverse routes of a previous run: {e}"),
            }
        }
        Ok(report)
    }

    /// At stop: every SA and every policy but the standing ones leave (policies first).
    /// Returns how many policies stay and what was removed.
    pub async fn stop(&mut self) -> Result<(usize, vpnd_xfrm::FlushReport), vpnd_xfrm::Error> {
        if let Some(r) = &mut self.routes {
            for e in r.remove_all().await {
                warn!("removing a reverse route at stop: {e}");
            }
        }
        let keep = self.standing_keys();
        let mut removed = vpnd_xfrm::FlushReport::default();
        for p in self.xfrm.dump_policies(DumpScope::Owned).await? {
            if keep.contains(&p.key) {
                continue;
            }
            match self.xfrm.delete_policy(&p.key).await {
                Ok(()) => removed.policies += 1,
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        // Standing policies whose slot carried narrowed or explicit-address policies are
        // put back exactly as configured.
        for p in self.slots.values().flat_map(|s| &s.standing) {
            self.xfrm.update_policy(p).await?;
        }
        for sa in self.xfrm.dump_counters(DumpScope::Owned).await? {
            if sa.id.spi == 0 {
                continue; // larval (an ACQUIRE's): expires by itself
            }
            match self.xfrm.delete_sa(&sa.id).await {
                Ok(()) => removed.sas += 1,
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok((keep.len(), removed))
    }

    /// A reload's standing flows: the new ones' policies go in first (an update replaces
    /// a policy with the same selectors in place), then the old ones no flow stands for
    /// leave, so a flow whose selectors change is never without a policy. A policy that
    /// a live child's negotiated policies still use stays until that child is removed
    /// ([`Kernel::remove`] then takes it with the slot). Every flow is checked before the
    /// kernel is touched; on a kernel error nothing is removed (the kernel keeps
    /// policies that protect, never a gap).
    pub async fn set_standing(&mut self, flows: &[Flow]) -> Result<StandingChange, InstallError> {
        let mut next: Vec<(SlotKey, u32, Vec<PolicySpec>)> = Vec::new();
        let mut next_reqid = self.next_reqid;
        for f in flows {
            let key = (f.peer.clone(), f.child.clone(), f.remote);
            let reqid = match self.slots.get(&key) {
                Some(s) => s.reqid,
                None => {
                    let r = self.xfrm.owner().reqid(next_reqid);
                    next_reqid += 1;
                    r
                }
            };
            next.push((key, reqid, f.policies(reqid)?));
        }
        self.next_reqid = next_reqid;
        let kerr = |key: &SlotKey, source| InstallError::Kernel {
            peer: key.0.clone(),
            child: key.1.clone(),
            source,
        };
        let mut change = StandingChange::default();
        for (key, _, specs) in &next {
            let old = self.slots.get(key).map(|s| &s.standing);
            for p in specs {
                if old.is_some_and(|o| o.contains(p)) {
                    continue;
                }
                self.xfrm.update_policy(p).await.map_err(|e| kerr(key, e))?;
                change.installed += 1;
            }
        }
        let keep: HashSet<PolicyKey> = next
            .iter()
            .flat_map(|(_, _, specs)| specs.iter().map(PolicySpec::key))
            .collect();
        let wanted: HashSet<&SlotKey> = next.iter().map(|(k, _, _)| k).collect();
        let mut gone = Vec::new();
        for (key, slot) in &self.slots {
            let used: HashSet<PolicyKey> = slot.policies.iter().map(PolicySpec::key).collect();
            for p in &slot.standing {
                let k = p.key();
                if keep.contains(&k) || (!slot.children.is_empty() && used.contains(&k)) {
                    continue;
                }
                gone.push(k);
            }
            if !wanted.contains(key) {
                change.slots_removed += 1;
            }
        }
        for k in gone {
            match self.xfrm.delete_policy(&k).await {
                Ok(()) => change.removed += 1,
                Err(e) if e.is_not_found() => {}
                Err(e) => warn!("removing a standing policy no flow stands for: {e}"),
            }
        }
        // Slots no flow stands for keep only their live children (their negotiated
        // policies leave with the last one).
        self.slots.retain(|key, slot| {
            if !wanted.contains(key) {
                slot.standing.clear();
            }
            !slot.children.is_empty() || wanted.contains(key)
        });
        for (key, reqid, specs) in next {
            let slot = self.slots.entry(key).or_default();
            slot.reqid = reqid;
            slot.standing = specs;
        }
        Ok(change)
    }

    /// Installs both SAs, then (update-or-add) the slot's policies.
    pub async fn install(&mut self, c: &ChildInstall) -> Result<(), InstallError> {
        let key = (c.peer.clone(), c.child_name.clone(), c.remote);
        let reqid = match self.slots.get(&key) {
            Some(s) => s.reqid,
            None => self.alloc_reqid(),
        };
        let if_id = self.if_ids.get(&c.peer).copied();
        let policies = Flow::of(c, if_id).policies(reqid)?;
        let kerr = |source| InstallError::Kernel {
            peer: c.peer.clone(),
            child: format!("{} (#{})", c.child_name, c.child),
            source,
        };
        let lifetime = Lifetime {
            // Soft at 90%: the kernel's soft EXPIRE is the rekey trigger.
            soft_seconds: Some(c.lifetime.as_secs() * 9 / 10),
            hard_seconds: Some(c.lifetime.as_secs().max(1)),
            soft_bytes: c.lifetime_bytes.map(|b| b * 9 / 10),
            hard_bytes: c.lifetime_bytes,
            ..Default::default()
        };
        // ESP-in-UDP (RFC 3948): the UDP ports as each SA's packets carry them.
        let encap = |outbound: bool| {
            c.encap.map(|e| {
                let (sport, dport) = if outbound {
                    (e.local_port, e.remote_port)
                } else {
                    (e.remote_port, e.local_port)
                };
                UdpEncap { sport, dport }
            })
        };
        let sa = |id: SaId, encr_key: &[u8], integ_key: &[u8], outbound: bool| SaSpec {
            id,
            reqid,
            mode: xmode(c.mode),
            selector: None,
            algorithms: kernel_algorithms(c.encr, c.integ, encr_key, integ_key),
            esn: c.esn,
            replay_window: if c.esn {
                c.replay_window.max(1)
            } else {
                c.replay_window
            },
            encap: encap(outbound),
            if_id,
            lifetime,
        };
        let inbound = SaId::esp(c.remote, c.local, c.inbound_spi);
        let outbound = SaId::esp(c.local, c.remote, c.outbound_spi);
        let in_spec = sa(inbound, &c.inbound_encr_key, &c.inbound_integ_key, false);
        self.xfrm.add_sa(&in_spec).await.map_err(kerr)?;
        let out_spec = sa(outbound, &c.outbound_encr_key, &c.outbound_integ_key, true);
        if c.encap.is_some() {
            self.encapsulated
                .insert(c.child, (in_spec, out_spec.clone()));
        }
        if c.defer_outbound {
            // The old outbound SA keeps carrying traffic until the engine says so.
            self.deferred.insert(c.child, out_spec);
        } else if let Err(e) = self.xfrm.add_sa(&out_spec).await {
            let _ = self.xfrm.delete_sa(&inbound).await;
            return Err(kerr(e));
        }
        for p in &policies {
            if let Err(e) = self.xfrm.update_policy(p).await {
                let _ = self.xfrm.delete_sa(&outbound).await;
                let _ = self.xfrm.delete_sa(&inbound).await;
                return Err(kerr(e));
            }
        }
        let slot = self.slots.entry(key).or_default();
        slot.reqid = reqid;
        slot.policies = policies;
        slot.children.insert(c.child);
        if c.mode == Mode::Tunnel {
            self.routes_up(c).await;
        }
        Ok(())
    }

    /// The child's reverse routes, if its peer wants them (a rekeyed child's successor
    /// shares its predecessor's). A failure is logged: the tunnel works, the host may
    /// route to it otherwise.
    async fn routes_up(&mut self, c: &ChildInstall) {
        let Some(routes) = &mut self.routes else {
            return;
        };
        let nets = |ts: &[TrafficSelector]| -> Vec<IpNet> {
            let mut v: Vec<IpNet> = ts
                .iter()
                .filter_map(selectors_of)
                .flatten()
                .map(|(n, _, _)| n)
                .collect();
            v.dedup();
            v
        };
        let wanted = ChildRoutes {
            peer: c.peer.clone(),
            remote: c.remote,
            local_nets: nets(&c.local_ts),
            remote_nets: nets(&c.remote_ts),
        };
        if let Err(e) = routes.child_up(c.child, wanted).await {
            warn!(
                peer = c.peer,
                child = c.child_name,
                "reverse routes not installed: {e}"
            );
        }
    }

    /// The peer's NAT mapping moved to a new port (RFC 7296 2.23): the child's outbound SA
    /// now sends its ESP-in-UDP there, and its inbound SA expects it from there. The kernel
    /// updates an SA in place (UPDSA keeps its keys, sequence numbers and counters, and
    /// takes the new encapsulation); a deferred outbound SA takes it when it goes in.
    pub async fn move_encap(
        &mut self,
        child: ChildId,
        encap: crate::ike::UdpEncap,
    ) -> Result<(), vpnd_xfrm::Error> {
        let out = UdpEncap {
            sport: encap.local_port,
            dport: encap.remote_port,
        };
        let inb = UdpEncap {
            sport: encap.remote_port,
            dport: encap.local_port,
        };
        if let Some(spec) = self.deferred.get_mut(&child) {
            spec.encap = Some(out);
        }
        let deferred = self.deferred.contains_key(&child);
        let Some((in_spec, out_spec)) = self.encapsulated.get_mut(&child) else {
            return Ok(());
        };
        in_spec.encap = Some(inb);
        out_spec.encap = Some(out);
        self.xfrm.update_sa(in_spec).await?;
        if !deferred {
            self.xfrm.update_sa(out_spec).await?;
        }
        Ok(())
    }

    /// Installs a child's deferred outbound SA: from now on traffic leaves through it.
    pub async fn activate_outbound(&mut self, child: ChildId) -> Result<(), vpnd_xfrm::Error> {
        match self.deferred.remove(&child) {
            Some(spec) => self.xfrm.add_sa(&spec).await,
            None => Ok(()),
        }
    }

    /// Removes a child's SAs. When it was its slot's last child, the slot's negotiated
    /// policies go first, except the standing ones, which are put back as configured (the
    /// flow stays protected: dropped and ACQUIREd until the next SA). Already-gone objects
    /// (a hard expire raced us) are not errors.
    pub async fn remove(&mut self, c: &ChildRemove, child_name: &str) -> Vec<vpnd_xfrm::Error> {
        self.deferred.remove(&c.child);
        self.encapsulated.remove(&c.child);
        let mut errors = Vec::new();
        let key = (c.peer.clone(), child_name.to_string(), c.remote);
        let last = match self.slots.get_mut(&key) {
            Some(s) => {
                s.children.remove(&c.child);
                s.children.is_empty()
            }
            None => false,
        };
        if let Some(r) = &mut self.routes {
            for e in r.child_down(c.child).await.1 {
                warn!(
                    peer = c.peer,
                    child = child_name,
                    "removing a reverse route: {e}"
                );
            }
        }
        if last {
            let slot = self.slots.get_mut(&key).expect("looked up above");
            let policies = std::mem::take(&mut slot.policies);
            let standing = slot.standing.clone();
            if standing.is_empty() {
                self.slots.remove(&key);
            }
            let keep: HashSet<PolicyKey> = standing.iter().map(PolicySpec::key).collect();
            for p in policies.iter().filter(|p| !keep.contains(&p.key())) {
                if let Err(e) = self.xfrm.delete_policy(&p.key()).await {
                    if !e.is_not_found() {
                        errors.push(e);
                    }
                }
            }
            for p in &standing {
                if let Err(e) = self.xfrm.update_policy(p).await {
                    errors.push(e);
                }
            }
        }
        for id in [
            SaId::esp(c.remote, c.local, c.inbound_spi),
            SaId::esp(c.local, c.remote, c.outbound_spi),
        ] {
            if let Err(e) = self.xfrm.delete_sa(&id).await {
                if !e.is_not_found() {
                    errors.push(e);
                }
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_become_minimal_prefixes() {
        let ts = TrafficSelector::new(
            0,
            0,
            65535,
            "198.51.100.0".parse().unwrap(),
            "198.51.100.127".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(
            selectors_of(&ts).unwrap(),
            vec![("198.51.100.0/25".parse().unwrap(), 0, None)]
        );
        let odd = TrafficSelector::new(
            6,
            443,
            443,
            "10.0.0.1".parse().unwrap(),
            "10.0.0.6".parse().unwrap(),
        )
        .unwrap();
        let nets: Vec<String> = selectors_of(&odd)
            .unwrap()
            .iter()
            .map(|(n, p, port)| format!("{n}/{p}/{port:?}"))
            .collect();
        assert_eq!(
            nets,
            [
                "10.0.0.1/32/6/Some(443)",
                "10.0.0.2/31/6/Some(443)",
                "10.0.0.4/31/6/Some(443)",
                "10.0.0.6/32/6/Some(443)"
            ]
        );
        let range = TrafficSelector::new(
            6,
            1000,
            2000,
            "10.0.0.1".parse().unwrap(),
            "10.0.0.1".parse().unwrap(),
        )
        .unwrap();
        assert!(
            selectors_of(&range).is_none(),
            "the kernel has no port ranges"
        );
    }
}
