//! The session table: one owner (the daemon's main task) feeds it the engine's outputs and
//! one kernel counter dump per cycle; it answers `show crypto session` and says, exactly once
//! per transition, when a session comes up (its first IPsec SA pair) or goes down (its last
//! pair gone) — the moments IOS logs `%CRYPTO-5-SESSION_STATUS` and accounts Start/Stop.
//!
//! Totals never go backwards: every SA's latest kernel reading is kept, and when an SA
//! leaves (rekey, delete, expiry) its last reading moves into the session's retired sum.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

use vpnd_xfrm::SaCounters;

use super::model::*;
use crate::ike::{ChildId, IkeSaId};

/// Who the session is with, as configured.
#[derive(Clone, Debug, Default)]
pub struct PeerInfo {
    pub name: String,
    pub description: Option<String>,
    pub fvrf: Option<String>,
    pub ivrf: Option<String>,
    /// Respond-only: IOS's dynamic crypto map (a flow's `origin`).
    pub dynamic: bool,
    /// The interface of the local IKE address (IOS `Interface:`), found when the IKE SA
    /// comes up.
    pub interface: Option<String>,
}

/// A child SA pair as the table needs it.
#[derive(Clone, Debug)]
pub struct ChildInfo {
    pub inbound_spi: u32,
    pub outbound_spi: u32,
    pub protocol: u8,
    pub local_ts: String,
    pub remote_ts: String,
    pub lifetime_s: u64,
    pub lifetime_kb: Option<u64>,
    /// Unix time of the install, for remaining-life figures.
    pub installed_at: u64,
}

#[derive(Clone, Debug)]
struct Ike {
    local: SocketAddr,
    remote: SocketAddr,
    established: bool,
    /// Unix time of the planned rekey.
    rekey_at: u64,
    /// UDP-encapsulated (NAT-T): IOS's `N` capability.
    nat_t: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct Reading {
    bytes: u64,
    packets: u64,
    dropped: u64,
}

impl Totals {
    /// A child pair's totals: its inbound SA counts "in", its outbound SA "out".
    fn of_pair((i, o): (Reading, Reading)) -> Totals {
        Totals {
            bytes_in: i.bytes,
            bytes_out: o.bytes,
            packets_in: i.packets,
            packets_out: o.packets,
        }
    }
}

struct Session {
    peer: PeerInfo,
    local: IpAddr,
    phase1_id: Option<String>,
    user: Option<SessionUser>,
    ikes: BTreeMap<IkeSaId, Ike>,
    children: BTreeMap<ChildId, ChildInfo>,
    /// Latest kernel reading per live SA, by SPI.
    readings: HashMap<u32, Reading>,
    retired: Totals,
    up_since: Option<u64>,
    /// The address leased to the client (the engine owns the lease; this is what it said).
    assigned_ip: Option<IpAddr>,
    assigned_ip6: Option<IpAddr>,
    /// Unix time the engine ends the session (RADIUS Session-Timeout): the engine's
    /// deadline as it said, for display.
    session_end: Option<u64>,
}

/// What [`SessionTable::summaries`] gives per session.
pub struct SessionSummary<'a> {
    pub key: &'a SessionKey,
    pub peer_name: &'a str,
    pub phase1_id: Option<&'a str>,
    pub status: Status,
    pub totals: Totals,
}

/// A session transition, for syslog and accounting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    Up(SessionView),
    Down(SessionView),
}

#[derive(Default)]
pub struct SessionTable {
    sessions: BTreeMap<SessionKey, Session>,
    by_ike: HashMap<IkeSaId, SessionKey>,
    by_child: HashMap<ChildId, SessionKey>,
}

impl Session {
    fn status(&self) -> Status {
        let ike = self.ikes.values().any(|i| i.established);
        match (ike, !self.children.is_empty()) {
            (true, true) => Status::UpActive,
            (true, false) => Status::UpIdle,
            (false, true) => Status::UpNoIke,
            (false, false) if !self.ikes.is_empty() => Status::DownNegotiating,
            _ => Status::Down,
        }
    }

    /// The latest readings of a child's inbound and outbound SA (zero before the first dump).
    fn pair(&self, c: &ChildInfo) -> (Reading, Reading) {
        let r = |spi| self.readings.get(&spi).copied().unwrap_or_default();
        (r(c.inbound_spi), r(c.outbound_spi))
    }

    fn totals(&self) -> Totals {
        let mut t = self.retired;
        for c in self.children.values() {
            t.add(&Totals::of_pair(self.pair(c)));
        }
        t
    }

    /// What the totals are the sum of (for crash Stops).
    fn counted(&self) -> Counted {
        let mut live = Vec::with_capacity(self.children.len() * 2);
        for c in self.children.values() {
            let (i, o) = self.pair(c);
            for (spi, inbound, r) in [(c.inbound_spi, true, i), (c.outbound_spi, false, o)] {
                live.push(LiveSa {
                    spi,
                    inbound,
                    bytes: r.bytes,
                    packets: r.packets,
                });
            }
        }
        Counted {
            retired: self.retired,
            live,
        }
    }

    /// Folds the last reading of a leaving child into the retired sum.
    fn retire(&mut self, c: &ChildInfo) {
        let pair = self.pair(c);
        self.readings.remove(&c.inbound_spi);
        self.readings.remove(&c.outbound_spi);
        self.retired.add(&Totals::of_pair(pair));
    }

    fn view(&self, key: &SessionKey, now: u64) -> SessionView {
        // Flows: children grouped by their selectors (a rekey briefly has two pairs). A
        // session has a handful of children: a linear search beats a map keyed by clones.
        let mut flows: Vec<FlowView> = Vec::with_capacity(self.children.len());
        for c in self.children.values() {
            let i = match flows.iter().position(|f| {
                f.protocol == c.protocol && f.local == c.local_ts && f.remote == c.remote_ts
            }) {
                Some(i) => i,
                None => {
                    flows.push(FlowView {
                        protocol: c.protocol,
                        local: c.local_ts.clone(),
                        remote: c.remote_ts.clone(),
                        active_sas: 0,
                        origin: if self.peer.dynamic {
                            "dynamic crypto map"
                        } else {
                            "crypto map"
                        }
                        .into(),
                        inbound: FlowDirection::default(),
                        outbound: FlowDirection::default(),
                    });
                    flows.len() - 1
                }
            };
            let f = &mut flows[i];
            f.active_sas += 2;
            let (i, o) = self.pair(c);
            f.inbound.packets += i.packets;
            f.inbound.dropped += i.dropped;
            f.outbound.packets += o.packets;
            f.outbound.dropped += o.dropped;
            // Remaining life of the newest pair (the one a rekey just installed).
            let life_s = (c.installed_at + c.lifetime_s).saturating_sub(now);
            let life_kb = |used: u64| c.lifetime_kb.map(|kb| kb.saturating_sub(used / 1024));
            f.inbound.life_s = life_s;
            f.outbound.life_s = life_s;
            f.inbound.life_kb = life_kb(i.bytes);
            f.outbound.life_kb = life_kb(o.bytes);
        }
        SessionView {
            key: key.clone(),
            peer_name: self.peer.name.clone(),
            interface: self.peer.interface.clone(),
            status: self.status(),
            description: self.peer.description.clone(),
            phase1_id: self.phase1_id.clone(),
            user: self.user.clone(),
            local: self.local,
            ike_sas: self
                .ikes
                .iter()
                .map(|(id, i)| IkeSaView {
                    local: i.local,
                    remote: i.remote,
                    state: if i.established {
                        "Active".into()
                    } else {
                        "Negotiating".into()
                    },
                    connid: *id,
                    lifetime_remaining_s: i.rekey_at.saturating_sub(now),
                    capabilities: if i.nat_t {
                        vec!["N".into()]
                    } else {
                        Vec::new()
                    },
                })
                .collect(),
            flows: {
                // The order `show` lists them in: protocol, then selectors.
                flows.sort_by(|a, b| {
                    (a.protocol, &a.local, &a.remote).cmp(&(b.protocol, &b.local, &b.remote))
                });
                flows
            },
            totals: self.totals(),
            up_since: self.up_since,
            assigned_ip: self.assigned_ip,
            assigned_ip6: self.assigned_ip6,
            session_timeout_s: self.session_end.map(|t| t.saturating_sub(now)),
        }
    }
}

impl SessionTable {
    pub fn new() -> SessionTable {
        SessionTable::default()
    }

    /// An IKE SA is up (or negotiating, `established` false) with `remote`.
    #[allow(clippy::too_many_arguments)]
    pub fn ike_up(
        &mut self,
        ike: IkeSaId,
        peer: PeerInfo,
        local: SocketAddr,
        remote: SocketAddr,
        phase1_id: Option<String>,
        established: bool,
        rekey_at: u64,
    ) {
        let key = SessionKey {
            peer: remote,
            fvrf: peer.fvrf.clone(),
            ivrf: peer.ivrf.clone(),
        };
        let s = self.sessions.entry(key.clone()).or_insert_with(|| Session {
            peer: peer.clone(),
            local: local.ip(),
            phase1_id: None,
            user: None,
            ikes: BTreeMap::new(),
            children: BTreeMap::new(),
            readings: HashMap::new(),
            retired: Totals::default(),
            up_since: None,
            assigned_ip: None,
            assigned_ip6: None,
            session_end: None,
        });
        if phase1_id.is_some() {
            s.phase1_id = phase1_id;
        }
        s.ikes.insert(
            ike,
            Ike {
                local,
                remote,
                established,
                rekey_at,
                nat_t: false,
            },
        );
        self.by_ike.insert(ike, key);
    }

    /// The engine leased `ip` to the client of this IKE SA (RFC 7296 3.15.4).
    pub fn ike_virtual_ip(&mut self, ike: IkeSaId, ip: Option<IpAddr>) {
        if let (Some(ip), Some(s)) = (
            ip,
            self.by_ike.get(&ike).and_then(|k| self.sessions.get_mut(k)),
        ) {
            s.assigned_ip = Some(ip);
        }
    }

    /// The engine leased the IPv6 address `ip` to the client of this IKE SA.
    pub fn ike_virtual_ip6(&mut self, ike: IkeSaId, ip: Option<std::net::Ipv6Addr>) {
        if let (Some(ip), Some(s)) = (
            ip,
            self.by_ike.get(&ike).and_then(|k| self.sessions.get_mut(k)),
        ) {
            s.assigned_ip6 = Some(IpAddr::V6(ip));
        }
    }

    /// The engine ends this IKE SA's session at `end` (unix time; RADIUS Session-Timeout).
    pub fn ike_session_end(&mut self, ike: IkeSaId, end: Option<u64>) {
        if let (Some(end), Some(s)) = (
            end,
            self.by_ike.get(&ike).and_then(|k| self.sessions.get_mut(k)),
        ) {
            s.session_end = Some(end);
        }
    }

    /// A reload changed what the configuration says of a peer (description, whether it
    /// is dynamic): its sessions show the new text from now on. The session key (address,
    /// VRFs) is not touched: a peer whose VRFs change is renegotiated instead.
    pub fn peer_updated(&mut self, info: &PeerInfo) {
        for s in self
            .sessions
            .values_mut()
            .filter(|s| s.peer.name == info.name)
        {
            s.peer.description.clone_from(&info.description);
            s.peer.dynamic = info.dynamic;
        }
    }

    /// The IKE SA runs over NAT-T (RFC 3948): shown as IOS's `N` capability.
    /// The user the IKE SA's client authenticated as: the session's, kept across rekeys
    /// (the session table is its one owner; accounting reads it from the session's view).
    pub fn ike_user(&mut self, ike: IkeSaId, user: SessionUser) {
        if let Some(s) = self.by_ike.get(&ike).and_then(|k| self.sessions.get_mut(k)) {
            s.user = Some(user);
        }
    }

    pub fn ike_nat_t(&mut self, ike: IkeSaId, nat_t: bool) {
        if let Some(i) = self
            .by_ike
            .get(&ike)
            .and_then(|k| self.sessions.get_mut(k))
            .and_then(|s| s.ikes.get_mut(&ike))
        {
            i.nat_t = nat_t;
        }
    }

    /// The peer's NAT mapping moved (RFC 7296 2.23): the IKE SA talks to `remote` now, and
    /// the session, keyed by the peer's address as IOS keys it, moves with it (with all its
    /// IKE SAs and children) unless a session at the new address exists already.
    pub fn ike_moved(&mut self, ike: IkeSaId, local: SocketAddr, remote: SocketAddr) {
        let Some(old) = self.by_ike.get(&ike).cloned() else {
            return;
        };
        if let Some(i) = self
            .sessions
            .get_mut(&old)
            .and_then(|s| s.ikes.get_mut(&ike))
        {
            i.local = local;
            i.remote = remote;
        }
        let new = SessionKey {
            peer: remote,
            ..old.clone()
        };
        if new == old || self.sessions.contains_key(&new) {
            return;
        }
        let Some(s) = self.sessions.remove(&old) else {
            return;
        };
        for id in s.ikes.keys() {
            self.by_ike.insert(*id, new.clone());
        }
        for id in s.children.keys() {
            self.by_child.insert(*id, new.clone());
        }
        self.sessions.insert(new, s);
    }

    /// The IKE SA `old` was replaced by `new` (rekey): same session.
    pub fn ike_rekeyed(&mut self, old: IkeSaId, new: IkeSaId, rekey_at: u64) {
        if let Some(key) = self.by_ike.remove(&old) {
            if let Some(s) = self.sessions.get_mut(&key) {
                if let Some(mut i) = s.ikes.remove(&old) {
                    i.rekey_at = rekey_at;
                    s.ikes.insert(new, i);
                }
            }
            self.by_ike.insert(new, key);
        }
    }

    /// An IKE SA ended. The session ends with it unless IPsec SAs remain (UP-NO-IKE).
    pub fn ike_down(&mut self, ike: IkeSaId, now: u64) -> Option<Transition> {
        let key = self.by_ike.remove(&ike)?;
        let s = self.sessions.get_mut(&key)?;
        s.ikes.remove(&ike);
        self.forget_if_empty(&key, now)
    }

    /// A child SA pair is in the kernel. The session's first pair brings it up.
    pub fn child_installed(
        &mut self,
        ike: IkeSaId,
        child: ChildId,
        info: ChildInfo,
        now: u64,
    ) -> Option<Transition> {
        let key = self.by_ike.get(&ike)?.clone();
        let s = self.sessions.get_mut(&key)?;
        let first = s.children.is_empty() && s.up_since.is_none();
        s.children.insert(child, info);
        self.by_child.insert(child, key.clone());
        if first {
            s.up_since = Some(now);
            return Some(Transition::Up(s.view(&key, now)));
        }
        None
    }

    /// A child SA pair left the kernel; its last reading is kept in the totals. The last
    /// pair of a session whose IKE SA is gone or idle ends it (IOS accounting's Stop).
    pub fn child_removed(&mut self, child: ChildId, now: u64) -> Option<Transition> {
        let key = self.by_child.remove(&child)?;
        let s = self.sessions.get_mut(&key)?;
        if let Some(c) = s.children.remove(&child) {
            s.retire(&c);
        }
        if s.children.is_empty() && s.up_since.is_some() {
            let view = s.view(&key, now);
            s.up_since = None;
            s.retired = Totals::default();
            let down = Transition::Down(view);
            self.forget_if_empty(&key, now);
            return Some(down);
        }
        None
    }

    /// One kernel dump: the latest reading of every SA a session knows. Kernel counters of
    /// one SA only grow; a smaller value would be a different SA reusing an SPI, so the
    /// larger is kept.
    pub fn counters(&mut self, dump: &[SaCounters]) {
        let by_spi: HashMap<u32, &SaCounters> = dump.iter().map(|c| (c.id.spi, c)).collect();
        for s in self.sessions.values_mut() {
            for c in s.children.values() {
                for spi in [c.inbound_spi, c.outbound_spi] {
                    if let Some(k) = by_spi.get(&spi) {
                        let r = s.readings.entry(spi).or_default();
                        r.bytes = r.bytes.max(k.bytes);
                        r.packets = r.packets.max(k.packets);
                        r.dropped = r
                            .dropped
                            .max(u64::from(k.replay_dropped) + u64::from(k.integrity_failed));
                    }
                }
            }
        }
    }

    fn forget_if_empty(&mut self, key: &SessionKey, now: u64) -> Option<Transition> {
        let s = self.sessions.get(key)?;
        if !s.ikes.is_empty() || !s.children.is_empty() {
            return None;
        }
        let was_up = s.up_since.is_some();
        let view = s.view(key, now);
        self.sessions.remove(key);
        was_up.then_some(Transition::Down(view))
    }

    /// A configured static peer (`initiate`, `on-demand`) without a session: IOS lists a
    /// crypto map peer as DOWN (or DOWN-NEGOTIATING while an IKE SA is being set up), with
    /// its configured flows and no SA.
    pub fn down_view(
        peer: &PeerInfo,
        local: IpAddr,
        remote: SocketAddr,
        flows: &[(u8, String, String)],
        negotiating: bool,
    ) -> SessionView {
        SessionView {
            key: SessionKey {
                peer: remote,
                fvrf: peer.fvrf.clone(),
                ivrf: peer.ivrf.clone(),
            },
            peer_name: peer.name.clone(),
            interface: peer.interface.clone(),
            status: if negotiating {
                Status::DownNegotiating
            } else {
                Status::Down
            },
            description: peer.description.clone(),
            phase1_id: None,
            user: None,
            local,
            ike_sas: vec![],
            flows: flows
                .iter()
                .map(|(protocol, l, r)| FlowView {
                    protocol: *protocol,
                    local: l.clone(),
                    remote: r.clone(),
                    active_sas: 0,
                    origin: "crypto map".into(),
                    inbound: FlowDirection::default(),
                    outbound: FlowDirection::default(),
                })
                .collect(),
            totals: Totals::default(),
            up_since: None,
            assigned_ip: None,
            assigned_ip6: None,
            session_timeout_s: None,
        }
    }

    pub fn views(&self, now: u64) -> Vec<SessionView> {
        self.sessions.iter().map(|(k, s)| s.view(k, now)).collect()
    }

    /// The totals of every session that is up (its first pair came and its last has not
    /// gone): what accounting needs after each counter dump, without building views.
    pub fn up_totals(&self) -> Vec<(SessionKey, Counted)> {
        self.sessions
            .iter()
            .filter(|(_, s)| s.up_since.is_some())
            .map(|(k, s)| (k.clone(), s.counted()))
            .collect()
    }

    /// Every session's status, totals and who it is with, without building views (the
    /// metrics snapshot, every second).
    pub fn summaries(&self) -> impl Iterator<Item = SessionSummary<'_>> {
        self.sessions.iter().map(|(key, s)| SessionSummary {
            key,
            peer_name: &s.peer.name,
            phase1_id: s.phase1_id.as_deref(),
            status: s.status(),
            totals: s.totals(),
        })
    }

    /// The views of the sessions that are up, for their final records when vpnd stops
    /// before their peers acknowledged the deletes.
    pub fn up_views(&self, now: u64) -> Vec<SessionView> {
        self.sessions
            .iter()
            .filter(|(_, s)| s.up_since.is_some())
            .map(|(k, s)| s.view(k, now))
            .collect()
    }

    /// The sessions an IKE SA id belongs to (for `clear crypto session`).
    pub fn ike_sas_of(&self, key: &SessionKey) -> Vec<IkeSaId> {
        self.sessions
            .get(key)
            .map(|s| s.ikes.keys().copied().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vpnd_xfrm::SaId;

    fn peer() -> PeerInfo {
        PeerInfo {
            name: "site-b".into(),
            description: Some("SJC24-2-VPN-Gateway".into()),
            fvrf: Some("name10".into()),
            ivrf: Some("name20".into()),
            dynamic: false,
            interface: None,
        }
    }

    fn child(i: u32, o: u32) -> ChildInfo {
        ChildInfo {
            inbound_spi: i,
            outbound_spi: o,
            protocol: 0,
            local_ts: "198.51.100.0/25".into(),
            remote_ts: "203.0.113.0/26".into(),
            lifetime_s: 3600,
            lifetime_kb: Some(4_608_000),
            installed_at: 1000,
        }
    }

    fn reading(spi: u32, bytes: u64, packets: u64) -> SaCounters {
        let id = SaId::esp(
            "192.0.2.1".parse().unwrap(),
            "192.0.2.2".parse().unwrap(),
            spi,
        );
        SaCounters::usage(id, bytes, packets)
    }

    fn table() -> SessionTable {
        let mut t = SessionTable::new();
        t.ike_up(
            1,
            peer(),
            "192.0.2.1:500".parse().unwrap(),
            "192.0.2.2:500".parse().unwrap(),
            Some("192.0.2.2".into()),
            true,
            5000,
        );
        t
    }

    #[test]
    fn a_nat_rebind_moves_the_session_to_the_new_port_with_its_children() {
        let mut t = SessionTable::new();
        let local = "192.0.2.1:4500".parse().unwrap();
        let before: SocketAddr = "192.0.2.9:4500".parse().unwrap();
        let after: SocketAddr = "192.0.2.9:31000".parse().unwrap();
        t.ike_up(1, peer(), local, before, None, true, 0);
        t.ike_nat_t(1, true);
        assert!(t
            .child_installed(1, 10, child(0x100, 0x200), 1000)
            .is_some());
        t.ike_moved(1, local, after);
        let v = t.views(1000);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].key.peer, after);
        assert_eq!(v[0].ike_sas[0].remote, after);
        assert_eq!(v[0].ike_sas[0].capabilities, vec!["N".to_string()]);
        // Its child still ends the session where it is now.
        assert!(matches!(
            t.child_removed(10, 1001),
            Some(Transition::Down(_))
        ));
    }

    #[test]
    fn a_static_peer_without_a_session_is_listed_down_with_its_flows() {
        let flows = [(
            0,
            "198.51.100.0/25".to_string(),
            "203.0.113.0/26".to_string(),
        )];
        let local = "192.0.2.1".parse().unwrap();
        let remote = "192.0.2.2:500".parse().unwrap();
        let down = SessionTable::down_view(&peer(), local, remote, &flows, false);
        let neg = SessionTable::down_view(&peer(), local, remote, &flows, true);
        let text = crate::control::render::crypto_session(std::slice::from_ref(&down), true);
        for want in [
            "Session status: DOWN\n",
            "Peer: 192.0.2.2 port 500 fvrf: name10 ivrf: name20\n",
            "  Desc: SJC24-2-VPN-Gateway\n",
            "  IPSEC FLOW: permit ip 198.51.100.0/255.255.255.128 203.0.113.0/255.255.255.192\n",
            "    Active SAs: 0, origin: crypto map\n",
        ] {
            assert!(text.contains(want), "{want:?} in\n{text}");
        }
        let neg_text = crate::control::render::crypto_session(std::slice::from_ref(&neg), false);
        assert!(
            neg_text.contains("Session status: DOWN-NEGOTIATING\n"),
            "{neg_text}"
        );
        let summary = crate::control::render::crypto_session_summary(&[down, neg]);
        for want in [
            "Total sessions: 2\n".to_string(),
            format!("  {:<17} 1\n", "DOWN-NEGOTIATING:"),
            format!("  {:<17} 1\n", "DOWN:"),
        ] {
            assert!(summary.contains(&want), "{want:?} in\n{summary}");
        }
    }

    #[test]
    fn a_respond_only_peer_is_a_dynamic_crypto_map() {
        let mut t = table();
        t.child_installed(1, 10, child(0x100, 0x200), 1000);
        assert_eq!(t.views(1000)[0].flows[0].origin, "crypto map");
        let mut d = SessionTable::new();
        d.ike_up(
            1,
            PeerInfo {
                dynamic: true,
                ..peer()
            },
            "192.0.2.1:500".parse().unwrap(),
            "192.0.2.9:500".parse().unwrap(),
            None,
            true,
            5000,
        );
        d.child_installed(1, 10, child(0x100, 0x200), 1000);
        let text = crate::control::render::crypto_session(&d.views(1000), true);
        assert!(
            text.contains("    Active SAs: 2, origin: dynamic crypto map\n"),
            "{text}"
        );
    }

    #[test]
    fn first_pair_brings_the_session_up_once() {
        let mut t = table();
        assert_eq!(t.views(1000)[0].status, Status::UpIdle);
        let up = t.child_installed(1, 10, child(0x100, 0x200), 1000);
        assert!(
            matches!(up, Some(Transition::Up(ref v)) if v.status == Status::UpActive && v.description.as_deref() == Some("SJC24-2-VPN-Gateway"))
        );
        // A rekey's successor is no new session (IOS: no new record on rekey).
        assert_eq!(t.child_installed(1, 11, child(0x101, 0x201), 1100), None);
        assert_eq!(
            t.views(1100)[0].flows[0].active_sas,
            4,
            "both pairs during the rekey"
        );
        assert_eq!(t.child_removed(10, 1101), None);
    }

    #[test]
    fn totals_never_go_backwards_across_rekeys() {
        let mut t = table();
        t.child_installed(1, 10, child(0x100, 0x200), 1000);
        t.counters(&[reading(0x100, 1000, 10), reading(0x200, 2000, 20)]);
        t.child_installed(1, 11, child(0x101, 0x201), 1100);
        t.child_removed(10, 1101); // the old pair's last reading stays in the totals
        t.counters(&[reading(0x101, 5, 1), reading(0x201, 7, 1)]);
        let v = &t.views(1200)[0];
        assert_eq!(
            v.totals,
            Totals {
                bytes_in: 1005,
                bytes_out: 2007,
                packets_in: 11,
                packets_out: 21
            }
        );
        // A stale, smaller reading of a live SA is ignored.
        t.counters(&[reading(0x101, 1, 0)]);
        assert_eq!(t.views(1201)[0].totals.bytes_in, 1005);
    }

    #[test]
    fn totals_are_64_bit() {
        let mut t = table();
        t.child_installed(1, 10, child(0x100, 0x200), 1000);
        t.counters(&[reading(0x100, 5 << 32, 1)]);
        t.child_installed(1, 11, child(0x101, 0x201), 1100);
        t.child_removed(10, 1101);
        t.counters(&[reading(0x101, 3 << 32, 1)]);
        assert_eq!(t.views(1200)[0].totals.bytes_in, 8 << 32);
    }

    #[test]
    fn last_pair_gone_is_down_once_with_final_totals() {
        let mut t = table();
        t.child_installed(1, 10, child(0x100, 0x200), 1000);
        t.counters(&[reading(0x100, 420, 5), reading(0x200, 420, 5)]);
        let down = t.child_removed(10, 1700);
        match down {
            Some(Transition::Down(v)) => assert_eq!(
                v.totals,
                Totals {
                    bytes_in: 420,
                    bytes_out: 420,
                    packets_in: 5,
                    packets_out: 5
                }
            ),
            other => panic!("expected Down, got {other:?}"),
        }
        assert_eq!(
            t.views(1700)[0].status,
            Status::UpIdle,
            "the IKE SA is still there"
        );
        assert_eq!(t.ike_down(1, 1701), None, "no second Down");
        assert!(t.views(1701).is_empty());
    }

    #[test]
    fn ike_sa_gone_with_pairs_left_is_up_no_ike() {
        let mut t = table();
        t.child_installed(1, 10, child(0x100, 0x200), 1000);
        assert_eq!(t.ike_down(1, 1100), None);
        assert_eq!(t.views(1100)[0].status, Status::UpNoIke);
        assert!(matches!(
            t.child_removed(10, 1200),
            Some(Transition::Down(_))
        ));
        assert!(t.views(1200).is_empty());
    }

    #[test]
    fn up_totals_and_views_cover_only_sessions_that_are_up() {
        let mut t = table();
        assert!(t.up_totals().is_empty(), "UP-IDLE: not accounted yet");
        t.child_installed(1, 10, child(0x100, 0x200), 1000);
        t.counters(&[reading(0x100, 84, 1)]);
        let totals = t.up_totals();
        assert_eq!(totals.len(), 1);
        assert_eq!(totals[0].1.totals().bytes_in, 84);
        // What a crash Stop redoes its sum from: both SAs of the pair, by direction.
        let live = &totals[0].1.live;
        assert_eq!(live.len(), 2);
        assert!(live
            .iter()
            .any(|sa| sa.spi == 0x100 && sa.inbound && sa.bytes == 84));
        assert!(live
            .iter()
            .any(|sa| sa.spi == 0x200 && !sa.inbound && sa.bytes == 0));
        assert_eq!(t.up_views(1001)[0].totals.bytes_in, 84);
        t.child_removed(10, 1002);
        assert!(t.up_views(1003).is_empty());
    }

    #[test]
    fn ike_rekey_keeps_the_session() {
        let mut t = table();
        t.child_installed(1, 10, child(0x100, 0x200), 1000);
        t.ike_rekeyed(1, 2, 9000);
        assert_eq!(
            t.ike_down(1, 1100),
            None,
            "the old id is gone from the index"
        );
        let v = &t.views(1100)[0];
        assert_eq!(v.ike_sas.len(), 1);
        assert_eq!(v.ike_sas[0].connid, 2);
        assert_eq!(v.ike_sas[0].lifetime_remaining_s, 7900);
        assert_eq!(v.status, Status::UpActive);
    }

    #[test]
    fn remaining_life_in_seconds_and_kilobytes() {
        let mut t = table();
        t.child_installed(1, 10, child(0x100, 0x200), 1000);
        t.counters(&[reading(0x100, 10 * 1024, 10)]);
        let f = &t.views(1600)[0].flows[0];
        assert_eq!(f.inbound.life_s, 3000);
        assert_eq!(f.inbound.life_kb, Some(4_608_000 - 10));
        assert_eq!(f.outbound.life_kb, Some(4_608_000));
    }
}
