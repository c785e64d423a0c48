//! Reverse routes against this host's kernel, in a network namespace of the test's own
//! (root needed): routes to the remote selectors go the peer's way with our inner address as
//! source (policy-based) or into the peer's interface in its table (route-based), carry
//! vpnd's protocol, are shared by a rekeyed child and its successor, follow a reload's new
//! settings in place, leave with the last child that holds them, and vpnd never touches a
//! route it did not install.

mod common;
use common::sh;
use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use vpnd::config::ReverseRoute;
use vpnd::daemon::routes::{Changed, ChildRoutes, Plan, Routes, Via};
use vpnd_xfrm::testing::in_netns;

/// `ip -j route show table T proto 118`, as "dst gateway dev prefsrc metric" lines, sorted.
fn ours(table: &str) -> Vec<String> {
    let v: Vec<serde_json::Value> =
        serde_json::from_str(&sh(&format!("ip -j route show table {table} proto 118"))).unwrap();
    let s = |r: &serde_json::Value, k: &str| r[k].as_str().unwrap_or("-").to_string();
    let mut out: Vec<String> = v
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {} {}",
                s(r, "dst"),
                s(r, "gateway"),
                s(r, "dev"),
                s(r, "prefsrc"),
                r["metric"].as_u64().unwrap_or(0)
            )
        })
        .collect();
    out.sort();
    out
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn child(peer: &str, remote: &str, local: &[&str], nets: &[&str]) -> ChildRoutes {
    ChildRoutes {
        peer: peer.into(),
        remote: remote.parse::<IpAddr>().unwrap(),
        local_nets: local.iter().map(|s| net(s)).collect(),
        remote_nets: nets.iter().map(|s| net(s)).collect(),
    }
}

fn rr(table: u32, metric: u32, remote_peer: bool) -> ReverseRoute {
    ReverseRoute {
        table,
        metric,
        remote_peer,
    }
}

fn policy(table: u32, metric: u32, remote_peer: bool) -> Plan {
    Plan {
        rr: rr(table, metric, remote_peer),
        via: Via::Peer,
    }
}

fn routed(table: u32, metric: u32) -> Plan {
    Plan {
        rr: rr(254, metric, true),
        via: Via::Interface {
            name: "xf0".into(),
            table,
            vrf: None,
            front: None,
            front_table: 254,
        },
    }
}

fn changed(added: usize, replaced: usize, removed: usize) -> Changed {
    Changed {
        added,
        replaced,
        removed,
    }
}

/// A child goes: what changed (and no error).
async fn down(r: &mut Routes, id: u64) -> Changed {
    let (c, errors) = r.child_down(id).await;
    assert!(errors.is_empty(), "{errors:?}");
    c
}

#[test]
fn reverse_routes_follow_their_children_and_touch_nothing_else() {
    in_netns(|| async {
        // The uplink (the peers behind a router at .254), the inside (our inner address) and
        // a stand-in for an XFRM interface, on tun devices: this host kernel has no dummy,
        // veth or xfrm links.
        sh("ip tuntap add up0 mode tun && ip link set up0 up && ip addr add 203.0.113.1/24 dev up0 \
            && ip route add 192.0.2.0/24 via 203.0.113.254 dev up0 \
            && ip tuntap add in0 mode tun && ip link set in0 up && ip addr add 198.51.100.1/25 dev in0 \
            && ip tuntap add xf0 mode tun && ip link set xf0 up");
        // The operator's own routes: one to a subnet a flow also names, one in the table a
        // route-based peer's routes go to.
        sh("ip route add 10.9.0.0/16 via 203.0.113.253 dev up0 \
            && ip route add 10.8.0.0/16 dev xf0 table 1001 metric 7");
        let mut r = Routes::connect().unwrap();
        let mut plans = HashMap::from([
            ("p1".to_string(), policy(254, 0, false)),
            ("p2".to_string(), policy(220, 0, true)),
            ("rb".to_string(), routed(1001, 7)),
        ]);
        r.set_plans(plans.clone()).await;
        let lan = &["198.51.100.0/25"];

        let c = r
            .child_up(
                1,
                child("p1", "192.0.2.2", lan, &["10.1.0.0/16", "10.2.0.0/24"]),
            )
            .await
            .unwrap();
        assert_eq!(c, changed(2, 0, 0));
        assert_eq!(
            ours("main"),
            [
                "10.1.0.0/16 203.0.113.254 up0 198.51.100.1 0",
                "10.2.0.0/24 203.0.113.254 up0 198.51.100.1 0"
            ],
            "the peer's way, our inner address as source"
        );
        // The rekey: the successor shares the routes, the predecessor's going keeps them.
        let c = r
            .child_up(
                2,
                child("p1", "192.0.2.2", lan, &["10.1.0.0/16", "10.2.0.0/24"]),
            )
            .await
            .unwrap();
        assert_eq!(c, changed(0, 0, 0), "no second copy");
        assert_eq!(down(&mut r, 1).await, changed(0, 0, 0));
        assert_eq!(ours("main").len(), 2, "still held by the successor");

        // A flow with the operator's subnet: that route is not vpnd's.
        let c = r
            .child_up(3, child("p1", "192.0.2.2", &[], &["10.9.0.0/16"]))
            .await
            .unwrap();
        assert_eq!(
            c,
            changed(0, 0, 0),
            "the operator's route stays the operator's"
        );
        // Another table, with the peer's host route.
        let c = r
            .child_up(4, child("p2", "192.0.2.3", lan, &["10.3.0.0/16"]))
            .await
            .unwrap();
        assert_eq!(c, changed(2, 0, 0));
        assert_eq!(
            ours("220"),
            [
                "10.3.0.0/16 203.0.113.254 up0 198.51.100.1 0",
                "192.0.2.3 203.0.113.254 up0 - 0"
            ]
        );

        // Route-based: 0.0.0.0/0 is the table's default route, into the interface; the
        // peer's host route goes its way in the front-door table (main); and a pool
        // client's leased address is a host route.
        let c = r
            .child_up(5, child("rb", "192.0.2.4", &["0.0.0.0/0"], &["0.0.0.0/0"]))
            .await
            .unwrap();
        assert_eq!(c, changed(2, 0, 0));
        let c = r
            .child_up(6, child("rb", "192.0.2.5", lan, &["203.0.113.77/32"]))
            .await
            .unwrap();
        assert_eq!(c, changed(2, 0, 0));
        assert_eq!(
            ours("1001"),
            ["203.0.113.77 - xf0 198.51.100.1 7", "default - xf0 - 7"]
        );
        assert!(ours("main").contains(&"192.0.2.4 203.0.113.254 up0 - 7".to_string()));

        // A reload: a new metric for the route-based peer (replaced: new in, old out), p2
        // off, p1 unchanged.
        plans.insert("rb".into(), routed(1001, 9));
        plans.remove("p2");
        let (c, errors) = r.set_plans(plans.clone()).await;
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(c, changed(4, 0, 6));
        assert_eq!(
            ours("1001"),
            ["203.0.113.77 - xf0 198.51.100.1 9", "default - xf0 - 9"]
        );
        assert!(
            ours("220").is_empty(),
            "p2's routes gone with its reverse_route"
        );
        assert_eq!(ours("main").len(), 4, "p1's two, rb's host routes");
        // p2 back on: its running child's routes come back.
        plans.insert("p2".into(), policy(220, 0, true));
        assert_eq!(r.set_plans(plans.clone()).await.0, changed(2, 0, 0));
        // The peer's way changes: the next child's routes go the new way, once the first
        // holder is gone, in place.
        sh("ip route replace 192.0.2.0/24 via 203.0.113.252 dev up0");
        let c = r
            .child_up(7, child("p2", "192.0.2.3", lan, &["10.3.0.0/16"]))
            .await
            .unwrap();
        assert_eq!(c, changed(0, 0, 0), "the first holder's route stays");
        assert_eq!(down(&mut r, 4).await, changed(0, 2, 0));
        assert_eq!(
            ours("220"),
            [
                "10.3.0.0/16 203.0.113.252 up0 198.51.100.1 0",
                "192.0.2.3 203.0.113.252 up0 - 0"
            ],
            "the successor's way, replaced in place"
        );

        // Children go: their routes go, the operator's stay.
        assert_eq!(down(&mut r, 3).await, changed(0, 0, 0));
        assert_eq!(down(&mut r, 6).await, changed(0, 0, 2));
        assert_eq!(ours("1001"), ["default - xf0 - 9"]);
        let left = r.remove_all().await;
        assert!(left.is_empty(), "{left:?}");
        for t in ["main", "220", "1001"] {
            assert!(ours(t).is_empty(), "table {t}: {:?}", ours(t));
        }
        assert!(sh("ip route show 10.9.0.0/16").contains("via 203.0.113.253"));
        let op = sh("ip route show table 1001 10.8.0.0/16");
        assert!(op.contains("dev xf0") && op.contains("metric 7"), "{op}");

        // What a killed run leaves is found by its protocol, in any table.
        let mut killed = Routes::connect().unwrap();
        killed.set_plans(plans).await;
        killed
            .child_up(1, child("rb", "192.0.2.4", &[], &["10.5.0.0/16"]))
            .await
            .unwrap();
        drop(killed);
        let mut again = Routes::connect().unwrap();
        assert_eq!(again.remove_stale().await.unwrap(), 2);
        assert!(ours("1001").is_empty() && ours("main").is_empty());
        assert!(sh("ip route show table 1001").contains("10.8.0.0/16"));
    });
}
