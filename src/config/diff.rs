//! What a configuration reload changes ([`Config::diff`]): per peer, added, removed,
//! renegotiated (what its SAs were negotiated from changed) or updated in place; per
//! section, applied live or kept as running until a restart; and the changes a running
//! daemon cannot make at all (the reload is then refused whole).
//!
//! Whether a peer's SAs must be renegotiated is the engine's call
//! ([`crate::ike::PeerPolicy::renegotiation_reasons`]), made here on the policies the two
//! configurations build, so the two can never disagree. What the engine does not see is
//! listed in [`peer_updates`], one line per field.

use super::{Config, PeerConfig};

/// How one peer changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerChange {
    Added,
    Removed,
    /// Its IKE SAs are deleted and brought up again as its start action says: why.
    Renegotiate(Vec<&'static str>),
    /// Its SAs carry on; these fields take effect now (or at the next rekey).
    Update(Vec<&'static str>),
}

/// The difference between the running configuration and a new one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// Changed peers only, in the new file's order (removed ones last).
    pub peers: Vec<(String, PeerChange)>,
    /// Sections applied without a restart.
    pub live: Vec<&'static str>,
    /// Sections that changed but take effect only at the next restart: the running
    /// values stay (the reload goes on with them).
    pub restart: Vec<String>,
    /// Changes a running vpnd cannot make: the reload is refused whole.
    pub refused: Vec<String>,
}

impl ConfigDiff {
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
            && self.live.is_empty()
            && self.restart.is_empty()
            && self.refused.is_empty()
    }

    /// The peers with this kind of change.
    pub fn named(&self, f: impl Fn(&PeerChange) -> bool) -> Vec<String> {
        self.peers
            .iter()
            .filter(|(_, c)| f(c))
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// Fields of a peer that the engine does not negotiate, one line each. A field missing
/// here (and from the engine's reasons) still counts: as a renegotiation, never as nothing.
fn peer_updates(a: &PeerConfig, b: &PeerConfig) -> Vec<&'static str> {
    let mut v = Vec::new();
    let mut check = |field, differs: bool| {
        if differs {
            v.push(field)
        }
    };
    check("description", a.description != b.description);
    check("start", a.start != b.start);
    check("unprotected", a.unprotected != b.unprotected);
    // A route-based peer's fvrf may be a real VRF, whose IKE sockets are bound at start.
    let route_based = a.interface.is_some() || b.interface.is_some();
    check(
        if route_based {
            "fvrf of a route-based peer"
        } else {
            "fvrf"
        },
        a.fvrf != b.fvrf,
    );
    check("group", a.group != b.group);
    check("accounting", a.accounting != b.accounting);
    check("reverse_route", a.reverse_route != b.reverse_route);
    check("interface", a.interface != b.interface);
    check("ivrf", a.ivrf != b.ivrf);
    check("ike.lifetime", a.ike.lifetime != b.ike.lifetime);
    check("ike.dpd", a.ike.dpd != b.ike.dpd);
    check("ike.retransmit", a.ike.retransmit != b.ike.retransmit);
    check(
        "ike.nat_keepalive",
        a.ike.nat_keepalive != b.ike.nat_keepalive,
    );
    // What an SA negotiated at IKE_SA_INIT stays; the size applies to the next message.
    check(
        "ike.fragmentation",
        (a.ike.fragmentation, a.ike.fragment_size) != (b.ike.fragmentation, b.ike.fragment_size),
    );
    // Handed out when a client connects: the connected ones keep what they were given.
    check("dns", a.remote_access.dns != b.remote_access.dns);
    check("pool", a.remote_access.pool != b.remote_access.pool);
    check("ipv6_pool", a.remote_access.pool6 != b.remote_access.pool6);
    let lifetimes = |p: &PeerConfig| -> Vec<(u64, Option<u64>, u32)> {
        p.children
            .iter()
            .map(|c| (c.lifetime_seconds, c.lifetime_kilobytes, c.replay_window))
            .collect()
    };
    check("children.lifetime", lifetimes(a) != lifetimes(b));
    v
}

/// Peer fields only a restart applies (a route-based peer's front-door VRF, whose IKE
/// sockets are bound at start): changing them refuses the reload. `reverse_route` is not
/// one: the running children's routes follow it.
const PEER_RESTART_ONLY: [&str; 1] = ["fvrf of a route-based peer"];

/// Peer fields that move the peer's SAs: a new XFRM interface (or its VRF) is made before the
/// peer is renegotiated onto it; the old interface stays (fail closed: what is routed into
/// it is dropped, not sent in clear; `vpnd --flush` removes those vpnd made).
const PEER_MOVES: [&str; 2] = ["interface", "ivrf"];

impl Config {
    /// What loading `new` over this running configuration does. `new` should be
    /// [`Config::effective`] of the file just read.
    pub fn diff(&self, new: &Config) -> ConfigDiff {
        let mut d = ConfigDiff::default();
        let nat_t = |c: &Config| c.local.nat_t_port;
        for p in &new.peers {
            let Some(old) = self.peer(&p.name) else {
                d.peers.push((p.name.clone(), PeerChange::Added));
                if let Some(v) = new.front_vrf(p) {
                    if !self.front_vrfs().contains(v) {
                        d.refused.push(format!(
                            "peers[{}].fvrf: the IKE sockets of VRF {v} are bound at start: a \
                             new front-door VRF needs a restart",
                            p.name
                        ));
                    }
                }
                continue;
            };
            if old == p {
                continue;
            }
            let mut a = old.engine_policy();
            a.nat.local_port = nat_t(self);
            let mut b = p.engine_policy();
            b.nat.local_port = nat_t(new);
            let why = a.renegotiation_reasons(&b);
            let updates = peer_updates(old, p);
            for f in updates.iter().filter(|f| PEER_RESTART_ONLY.contains(f)) {
                d.refused.push(format!(
                    "peers[{}].{f}: changing it needs a restart",
                    p.name
                ));
            }
            let mut why = why;
            why.extend(PEER_MOVES.iter().filter(|f| updates.contains(f)));
            // Also when the fvrf's name stays but becomes (or stops being) a real VRF: the
            // peer turned route-based, or `vrfs` changed. Refused once either way.
            if self.front_vrf(old) != new.front_vrf(p)
                && p.interface.is_some()
                && !updates.contains(&"fvrf of a route-based peer")
            {
                d.refused.push(format!(
                    "peers[{}].fvrf: a route-based peer's front-door VRF (its IKE sockets) \
                     changes only at a restart",
                    p.name
                ));
            }
            if updates.contains(&"fvrf") {
                // Part of the session's key (IOS shows sessions per fvrf).
                why.push("fvrf");
            }
            let change = if !why.is_empty() {
                PeerChange::Renegotiate(why)
            } else if updates.is_empty() {
                // Something neither list names: renegotiate rather than ignore it.
                PeerChange::Renegotiate(vec!["other"])
            } else {
                PeerChange::Update(updates)
            };
            d.peers.push((p.name.clone(), change));
        }
        for p in &self.peers {
            if new.peer(&p.name).is_none() {
                d.peers.push((p.name.clone(), PeerChange::Removed));
            }
        }
        if self.log != new.log {
            d.live.push("log");
        }
        if self.syslog != new.syslog {
            d.live.push("syslog");
        }
        if self.dos != new.dos {
            d.live.push("dos");
        }
        // Live (issue 14): leases stay with their sessions, new clients get the new pools.
        if self.pools != new.pools {
            d.live.push("pools");
        }
        // Bound anew before the old endpoint stops; a bind failure keeps the old one.
        if self.metrics != new.metrics {
            d.live.push("metrics");
        }
        // The servers, secrets, ports and timers: the accounting and EAP clients switch
        // with their requests in flight (`vpnd_radius::Group::reconfigure`).
        if self.radius != new.radius {
            d.live.push("radius");
        }
        if self.accounting.when_full != new.accounting.when_full {
            d.live.push("accounting.when_full");
        }
        // Method lists, the Interim period and the outbox limit; the journal is the open
        // file and stays (`restart_only`).
        let (a, b) = (&self.accounting, &new.accounting);
        if a.lists != b.lists
            || a.update_periodic != b.update_periodic
            || a.outbox_limit != b.outbox_limit
        {
            d.live.push("accounting");
        }
        d
    }

    /// A reload of `file` over this running configuration: what the daemon applies (the
    /// file with the restart-only sections as running) and the difference, the
    /// restart-only sections that changed listed in [`ConfigDiff::restart`].
    pub fn reload(&self, file: Config) -> (Config, ConfigDiff) {
        let restart = self.restart_only(&file);
        let new = self.effective(file);
        let mut d = self.diff(&new);
        d.restart.splice(0..0, restart);
        (new, d)
    }

    /// `new` as a running daemon can apply it: the sections only a restart applies keep
    /// their running values (listed by [`Config::restart_only`]).
    pub fn effective(&self, mut new: Config) -> Config {
        new.local = self.local.clone();
        new.control = self.control.clone();
        if !self.vrfs_live(&new) {
            new.vrfs = self.vrfs.clone();
        }
        new.accounting.journal = self.accounting.journal.clone();
        new
    }

    /// Whether `new`'s VRFs can replace the running ones: VRFs added (made when a peer first
    /// uses one) or no longer named, but none with another table (the running devices and
    /// their routes are in the old one).
    fn vrfs_live(&self, new: &Config) -> bool {
        self.vrfs
            .iter()
            .all(|(name, table)| new.vrfs.get(name).is_none_or(|t| t == table))
    }

    /// The sections of `new` that differ from the running ones and need a restart.
    pub fn restart_only(&self, new: &Config) -> Vec<String> {
        let mut v = Vec::new();
        let mut check = |s: &str, differs: bool| {
            if differs {
                v.push(s.to_string())
            }
        };
        check("local", self.local != new.local);
        check("control", self.control != new.control);
        check("vrfs", !self.vrfs_live(new));
        // The outbox's open file, with what it still holds.
        check(
            "accounting.journal",
            self.accounting.journal != new.accounting.journal,
        );
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "
local:
  addresses: [192.0.2.1]
peers:
  - name: keep
    address: 192.0.2.2
    description: first
    psk: secret-0123-keep
    children:
      - name: net
        local_ts: [198.51.100.0/25]
        remote_ts: [203.0.113.0/26]
  - name: gone
    address: 192.0.2.3
    psk: secret-0123-gone
    children:
      - name: net
        local_ts: [198.51.100.0/25]
        remote_ts: [203.0.113.64/26]
";

    fn load(text: &str) -> Config {
        Config::from_str(text, "/etc/vpnd/vpnd.yaml").unwrap_or_else(|e| panic!("{e}"))
    }

    /// The reload of BASE with `from` replaced by `to` (once).
    fn diff(from: &str, to: &str) -> ConfigDiff {
        assert!(BASE.contains(from), "{from}");
        load(BASE).reload(load(&BASE.replacen(from, to, 1))).1
    }

    fn peer(d: &ConfigDiff, name: &str) -> Option<PeerChange> {
        d.peers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.clone())
    }

    #[test]
    fn the_same_file_changes_nothing() {
        assert!(diff("first", "first").is_empty());
    }

    #[test]
    fn each_change_is_classified() {
        use PeerChange::*;
        let upd = |f: &'static str| Some(Update(vec![f]));
        let reneg = |f: &'static str| Some(Renegotiate(vec![f]));
        let table: &[(&str, &str, Option<PeerChange>)] = &[
            ("description: first", "description: second", upd("description")),
            ("    description: first\n", "", upd("description")),
            (
                "    description: first\n",
                "    description: first\n    start: initiate\n",
                upd("start"),
            ),
            (
                "    description: first\n",
                "    description: first\n    unprotected: pass\n",
                upd("unprotected"),
            ),
            (
                "    description: first\n",
                "    description: first\n    ike:\n      dpd: 10s\n",
                upd("ike.dpd"),
            ),
            (
                "    description: first\n",
                "    description: first\n    ike:\n      lifetime: 2h\n",
                upd("ike.lifetime"),
            ),
            (
                "remote_ts: [203.0.113.0/26]",
                "remote_ts: [203.0.113.0/26]\n        lifetime: {seconds: 1800}",
                upd("children.lifetime"),
            ),
            ("secret-0123-keep", "secret-0123-new!", reneg("psk")),
            // The remote identity defaults to the address.
            (
                "address: 192.0.2.2",
                "address: 192.0.2.4",
                Some(Renegotiate(vec!["address", "remote_id"])),
            ),
            (
                "remote_ts: [203.0.113.0/26]",
                "remote_ts: [203.0.113.0/25]",
                reneg("children.remote_ts"),
            ),
            (
                "local_ts: [198.51.100.0/25]\n        remote_ts: [203.0.113.0/26]",
                "local_ts: [198.51.100.0/24]\n        remote_ts: [203.0.113.0/26]",
                reneg("children.local_ts"),
            ),
            (
                "remote_ts: [203.0.113.0/26]",
                "remote_ts: [203.0.113.0/26]\n        esp: [aes128gcm16]",
                reneg("children.esp"),
            ),
            (
                "    description: first\n",
                "    description: first\n    ike:\n      proposals: [aes128gcm16-prfsha256-ecp256]\n",
                reneg("ike.proposals"),
            ),
            (
                "    description: first\n",
                "    description: first\n    local_id: gw1.example\n",
                reneg("local_id"),
            ),
            (
                "    description: first\n",
                "    description: first\n    remote_id: peer1.example\n",
                reneg("remote_id"),
            ),
            ("- name: net\n        local_ts: [198.51.100.0/25]\n        remote_ts: [203.0.113.0/26]",
             "- name: lan\n        local_ts: [198.51.100.0/25]\n        remote_ts: [203.0.113.0/26]",
             reneg("children")),
        ];
        for (from, to, want) in table {
            let d = diff(from, to);
            assert_eq!(&peer(&d, "keep"), want, "{from:?} -> {to:?}: {d:?}");
            assert_eq!(peer(&d, "gone"), None, "{from:?} -> {to:?}: the other peer");
            assert!(d.refused.is_empty() && d.restart.is_empty(), "{d:?}");
        }
    }

    #[test]
    fn peers_come_and_go() {
        let d = diff("  - name: gone\n", "  - name: new\n");
        assert_eq!(peer(&d, "new"), Some(PeerChange::Added));
        assert_eq!(peer(&d, "gone"), Some(PeerChange::Removed));
        assert_eq!(peer(&d, "keep"), None);
        assert_eq!(d.named(|c| *c == PeerChange::Removed), vec!["gone"]);
    }

    #[test]
    fn sections_are_live_or_wait_for_a_restart() {
        let d = diff(
            "local:\n",
            "log:\n  level: debug\ndos:\n  cookie_threshold: 3\nlocal:\n",
        );
        assert_eq!(d.live, vec!["log", "dos"]);
        let d = diff(
            "local:\n",
            "syslog:\n  servers: [{address: 192.0.2.20, port: 5514}]\nlocal:\n",
        );
        assert_eq!(d.live, vec!["syslog"]);
        let d = diff("local:\n", "metrics:\n  listen: 127.0.0.1:9469\nlocal:\n");
        assert_eq!(d.live, vec!["metrics"]);
        assert!(d.restart.is_empty(), "{d:?}");
        // A new port or socket path: the running ones stay, the rest of the file applies.
        let old = load(BASE);
        let file = load(
            &BASE
                .replace(
                    "  addresses: [192.0.2.1]\n",
                    "  addresses: [192.0.2.1]\n  port: 501\ncontrol:\n  socket: /run/x.sock\n",
                )
                .replace("description: first", "description: second"),
        );
        let (eff, d) = old.reload(file);
        assert_eq!(eff.local, old.local);
        assert_eq!(d.restart, vec!["local", "control"]);
        assert_eq!(
            peer(&d, "keep"),
            Some(PeerChange::Update(vec!["description"]))
        );
    }

    #[test]
    fn reverse_routes_change_in_place() {
        use PeerChange::*;
        let with = |rr: &str| format!("    description: first\n    reverse_route: {rr}\n");
        let on = with("true");
        let base = BASE.replacen("    description: first\n", &on, 1);
        // Each change of reverse_route: the peer's SAs carry on, its routes follow.
        for (from, to) in [
            ("    description: first\n".to_string(), on.clone()),
            (on.clone(), "    description: first\n".to_string()),
            (on.clone(), with("{ metric: 50 }")),
            (on.clone(), with("{ table: 220 }")),
            (on.clone(), with("{ remote_peer: true }")),
        ] {
            let text = if from == on {
                base.clone()
            } else {
                BASE.to_string()
            };
            let d = load(&text).reload(load(&text.replacen(&from, &to, 1))).1;
            assert_eq!(
                peer(&d, "keep"),
                Some(Update(vec!["reverse_route"])),
                "{from:?} -> {to:?}: {d:?}"
            );
            assert!(d.refused.is_empty() && d.restart.is_empty(), "{d:?}");
        }
        // The same settings written another way: nothing changes.
        let d = load(&base).reload(load(&base.replacen(&on, &with("{ table: 254 }"), 1)));
        assert!(d.1.is_empty(), "{:?}", d.1);
        // A new peer with reverse routes comes in like any other.
        let d = diff(
            "  - name: gone\n",
            "  - name: new\n    reverse_route: { metric: 5, remote_peer: true }\n",
        );
        assert_eq!(peer(&d, "new"), Some(Added));
        assert!(d.refused.is_empty(), "{d:?}");
    }

    #[test]
    fn pools_are_live_and_a_profile_changing_its_pool_is_updated_in_place() {
        let pools =
            "local:\n  addresses: [192.0.2.1]\npools:\n  a: { begin: 10.1.0.1, end: 10.1.0.9 }\n";
        let with = |more: &str| {
            BASE.replacen(
                "local:\n  addresses: [192.0.2.1]\n",
                &format!("{pools}{more}"),
                1,
            )
            .replacen(
                "    description: first\n",
                "    description: first\n    pool: a\n",
                1,
            )
        };
        let old = load(&with(""));
        // Resized, a new IPv6 pool added, the profile now names both.
        let new_text = with("  b: { prefix: '2001:db8:9::/120' }\n")
            .replace("end: 10.1.0.9", "end: 10.1.0.3")
            .replacen("    pool: a\n", "    pool: a\n    ipv6_pool: b\n", 1);
        let (eff, d) = old.reload(load(&new_text));
        assert_eq!(d.live, vec!["pools"], "{d:?}");
        assert!(d.restart.is_empty() && d.refused.is_empty(), "{d:?}");
        assert_eq!(eff.pools.len(), 2, "the reload's pools apply");
        assert_eq!(
            peer(&d, "keep"),
            Some(PeerChange::Update(vec!["ipv6_pool"])),
            "connected clients keep their leases: no renegotiation"
        );
        // A pool removed: the profile that named it must name another (refused at load).
        assert!(Config::from_str(
            &new_text.replace("  a: { begin: 10.1.0.1, end: 10.1.0.3 }\n", ""),
            "/x"
        )
        .is_err());
        let (_, d) = old.reload(load(&with("").replace("    pool: a\n", "")));
        assert_eq!(peer(&d, "keep"), Some(PeerChange::Update(vec!["pool"])));
        assert!(d.live.is_empty(), "{d:?}");
    }

    #[test]
    fn what_a_running_daemon_cannot_do_refuses_the_reload() {
        // A front-door VRF's IKE sockets are bound at start.
        let fvrf = "vrfs:\n  outside: 1100\n";
        let d = load(BASE).reload(load(&format!(
            "{fvrf}{}",
            BASE.replacen(
                "  - name: gone\n",
                "  - name: new\n    interface: ipsec9\n    if_id: 9\n    fvrf: outside\n",
                1
            )
        )));
        assert!(
            d.1.refused.iter().any(|r| r.contains("peers[new].fvrf")),
            "{:?}",
            d.1
        );
        // A route-based peer moved to another front-door VRF: refused, once.
        let routed = |fvrf: &str| {
            format!(
                "vrfs:\n  outside: 1100\n  outside2: 1101\n{}",
                BASE.replacen(
                    "  - name: gone\n",
                    &format!(
                        "  - name: gone\n    interface: ipsec9\n    if_id: 9\n    fvrf: {fvrf}\n"
                    ),
                    1
                )
            )
        };
        let d = load(&routed("outside")).reload(load(&routed("outside2"))).1;
        assert_eq!(d.refused.len(), 1, "{d:?}");
        assert!(d.refused[0].contains("peers[gone].fvrf"), "{d:?}");
        // The same fvrf name, now a real VRF because the peer turned route-based: refused,
        // once, though the name did not change.
        let label = BASE.replacen("  - name: gone\n", "  - name: gone\n    fvrf: outside\n", 1);
        let d = load(&label).reload(load(&routed("outside"))).1;
        assert_eq!(d.refused.len(), 1, "{d:?}");
        assert!(d.refused[0].contains("peers[gone].fvrf"), "{d:?}");
    }

    #[test]
    fn route_based_peers_come_and_move_by_reload() {
        use PeerChange::*;
        let vrfs = "vrfs:\n  cust-a: 1001\n";
        let routed = |name: &str, ivrf: &str| {
            format!("  - name: {name}\n    interface: ipsec9\n    if_id: 9\n    ivrf: {ivrf}\n")
        };
        let running = load(&format!("{vrfs}{BASE}"));
        // A new route-based peer in a new VRF: its interface and VRF are made at the reload.
        let (cfg, d) = running.reload(load(&format!(
            "vrfs:\n  cust-a: 1001\n  cust-b: 1002\n{}",
            BASE.replacen("  - name: gone\n", &routed("new", "cust-b"), 1)
        )));
        assert_eq!(peer(&d, "new"), Some(Added), "{d:?}");
        assert!(d.refused.is_empty() && d.restart.is_empty(), "{d:?}");
        assert_eq!(cfg.vrfs.get("cust-b"), Some(&1002), "new VRFs are live");
        // Moved into another VRF: renegotiated onto it.
        let a = load(&format!(
            "vrfs:\n  cust-a: 1001\n  cust-b: 1002\n{}",
            BASE.replacen("  - name: gone\n", &routed("gone", "cust-a"), 1)
        ));
        let d = a.reload(load(&format!(
            "vrfs:\n  cust-a: 1001\n  cust-b: 1002\n{}",
            BASE.replacen("  - name: gone\n", &routed("gone", "cust-b"), 1)
        )));
        match peer(&d.1, "gone") {
            Some(Renegotiate(why)) => assert!(why.contains(&"ivrf"), "{why:?}"),
            other => panic!("{other:?}"),
        }
        assert!(d.1.refused.is_empty(), "{:?}", d.1);
        // A policy-based peer made route-based: renegotiated onto its interface.
        let d = running.reload(load(&format!(
            "{vrfs}{}",
            BASE.replacen("  - name: gone\n", &routed("gone", "cust-a"), 1)
        )));
        match peer(&d.1, "gone") {
            Some(Renegotiate(why)) => assert!(why.contains(&"interface"), "{why:?}"),
            other => panic!("{other:?}"),
        }
        // Another table for a running VRF: its devices and routes are in the old one.
        let (cfg, d) = running.reload(load(&format!("vrfs:\n  cust-a: 1005\n{BASE}")));
        assert_eq!(d.restart, vec!["vrfs".to_string()], "{d:?}");
        assert_eq!(
            cfg.vrfs.get("cust-a"),
            Some(&1001),
            "the running table stays"
        );
    }

    const AAA: &str = "
local:
  addresses: [192.0.2.1]
radius:
  servers:
    - {name: r1, address: 192.0.2.10, key: radius-secret-1}
    - {name: r2, address: 192.0.2.11, key: radius-secret-2}
  groups:
    g1: [r1]
    g2: [r2]
accounting:
  journal: /tmp/vpnd-diff-test/acct.journal
  lists:
    l1: {mode: start-stop, groups: [g1]}
    l2: {mode: start-stop, groups: [g2]}
peers:
  - name: keep
    address: 192.0.2.2
    psk: secret-0123-keep
    accounting: l1
    children:
      - name: net
        local_ts: [198.51.100.0/25]
        remote_ts: [203.0.113.0/26]
";

    /// The reload of AAA with `from` replaced by `to` (once): the file applied, the diff.
    fn aaa(from: &str, to: &str) -> (Config, ConfigDiff) {
        assert!(AAA.contains(from), "{from}");
        load(AAA).reload(load(&AAA.replacen(from, to, 1)))
    }

    #[test]
    fn radius_and_accounting_apply_live_but_the_journal_waits() {
        for (from, to) in [
            ("key: radius-secret-1", "key: radius-secret-9"),
            ("address: 192.0.2.10,", "address: 192.0.2.12,"),
            ("address: 192.0.2.10,", "address: 192.0.2.10, acct_port: 1646,"),
            ("    g2: [r2]\n", "    g2: [r2, r1]\n"),
            ("    g2: [r2]\n", "    g2: [r2]\n  timeout: 2s\n"),
            (
                "    - {name: r2, address: 192.0.2.11, key: radius-secret-2}\n",
                "    - {name: r2, address: 192.0.2.11, key: radius-secret-2}\n    - {name: r3, address: 192.0.2.13, key: radius-secret-3}\n",
            ),
        ] {
            let (eff, d) = aaa(from, to);
            assert_eq!(d.live, vec!["radius"], "{from:?} -> {to:?}: {d:?}");
            assert!(d.restart.is_empty() && d.refused.is_empty() && d.peers.is_empty(), "{d:?}");
            assert_eq!(eff.radius, load(&AAA.replacen(from, to, 1)).radius, "applied");
        }
        let (eff, d) = aaa(
            "l2: {mode: start-stop, groups: [g2]}",
            "l2: {mode: stop-only, groups: [g2]}",
        );
        assert_eq!(d.live, vec!["accounting"], "{d:?}");
        assert!(d.restart.is_empty(), "{d:?}");
        assert_eq!(
            eff.accounting.lists["l2"].mode,
            crate::config::AccountingMode::StopOnly
        );
        let (_, d) = aaa("  lists:\n", "  update_periodic: 10m\n  lists:\n");
        assert_eq!(d.live, vec!["accounting"], "{d:?}");
        // Removing a list no peer uses.
        let (eff, d) = aaa("    l2: {mode: start-stop, groups: [g2]}\n", "");
        assert_eq!(d.live, vec!["accounting"], "{d:?}");
        assert!(!eff.accounting.lists.contains_key("l2"));
        // The journal is the outbox's open file: kept until a restart, the rest applies.
        let (eff, d) = aaa(
            "journal: /tmp/vpnd-diff-test/acct.journal\n  lists:\n",
            "journal: /tmp/vpnd-diff-test/other.journal\n  outbox_limit: 10\n  lists:\n",
        );
        assert_eq!(d.restart, vec!["accounting.journal"], "{d:?}");
        assert_eq!(d.live, vec!["accounting"], "{d:?}");
        assert_eq!(eff.accounting.journal, load(AAA).accounting.journal);
        assert_eq!(eff.accounting.outbox_limit, 10);
    }

    #[test]
    fn a_peers_accounting_list_or_group_is_updated_in_place() {
        use PeerChange::*;
        let (_, d) = aaa("    accounting: l1\n", "    accounting: l2\n");
        assert_eq!(peer(&d, "keep"), Some(Update(vec!["accounting"])), "{d:?}");
        assert!(
            d.restart.is_empty() && d.refused.is_empty() && d.live.is_empty(),
            "{d:?}"
        );
        let (_, d) = aaa("    accounting: l1\n", "");
        assert_eq!(peer(&d, "keep"), Some(Update(vec!["accounting"])), "{d:?}");
        let (_, d) = aaa(
            "    accounting: l1\n",
            "    accounting: l1\n    group: gold\n",
        );
        assert_eq!(peer(&d, "keep"), Some(Update(vec!["group"])), "{d:?}");
        assert!(d.restart.is_empty(), "{d:?}");
        // A new peer with a list starts accounted, no restart.
        let (_, d) = aaa(
            "  - name: keep\n",
            "  - name: new\n    address: 192.0.2.5\n    psk: secret-0123-newp\n    accounting: l2\n    children:\n      - name: net\n        local_ts: [198.51.100.128/25]\n        remote_ts: [203.0.113.128/26]\n  - name: keep\n",
        );
        assert_eq!(peer(&d, "new"), Some(Added), "{d:?}");
        assert!(d.restart.is_empty() && d.refused.is_empty(), "{d:?}");
    }
}
