//! Reverse routes against this host's kernel, in a network namespace of the test's own
//! (root needed): routes to the remote selectors go the peer's way with our inner address as
//! source, carry vpnd's protocol, leave when the flow goes, and vpnd never touches a route it
//! did not install.

mod common;
use common::sh;
use std::net::IpAddr;

use ipnet::IpNet;
use vpnd::config::ReverseRoute;
use vpnd::daemon::routes::Routes;
use vpnd_xfrm::testing::in_netns;

/// `ip -j route show table T`, as (dst, gateway, dev, prefsrc, protocol, metric).
fn routes(table: &str) -> Vec<serde_json::Value> {
    serde_json::from_str(&sh(&format!("ip -j route show table {table}"))).unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn key(child: &str) -> (String, String, IpAddr) {
    ("peer1".into(), child.into(), "192.0.2.2".parse().unwrap())
}

#[test]
fn reverse_routes_follow_the_peer_and_touch_nothing_else() {
    in_netns(|| async {
        // The uplink (the peer behind a router at .254) and the inside (our inner address), on
        // tun devices: this host kernel has no dummy or veth.
        sh("ip tuntap add up0 mode tun && ip link set up0 up && ip addr add 203.0.113.1/24 dev up0 \
            && ip route add 192.0.2.0/24 via 203.0.113.254 dev up0 \
            && ip tuntap add in0 mode tun && ip link set in0 up && ip addr add 198.51.100.1/25 dev in0");
        // The operator's own route to a subnet that one flow also names.
        sh("ip route add 10.9.0.0/16 via 203.0.113.253 dev up0");
        let mut r = Routes::connect().unwrap();
        let rr = ReverseRoute {
            table: 254,
            metric: 0,
            remote_peer: false,
        };
        let n = r
            .up(
                key("lan"),
                &rr,
                "192.0.2.2".parse().unwrap(),
                &[net("198.51.100.0/25")],
                &[net("10.1.0.0/16"), net("10.2.0.0/24")],
            )
            .await
            .unwrap();
        assert_eq!(n, 2);
        let main = routes("main");
        let mine: Vec<&serde_json::Value> =
            main.iter().filter(|r| r["protocol"] == "118").collect();
        assert_eq!(mine.len(), 2, "{main:?}");
        for r in &mine {
            assert_eq!(r["gateway"], "203.0.113.254", "the peer's way: {r}");
            assert_eq!(r["dev"], "up0");
            assert_eq!(r["prefsrc"], "198.51.100.1", "our inner address: {r}");
        }
        // A second flow with the operator's subnet: its route exists (same metric), so it
        // is not vpnd's; the other one goes in, in its own table, with a metric.
        let rr2 = ReverseRoute {
            table: 220,
            metric: 0,
            remote_peer: true,
        };
        let n = r
            .up(
                key("other"),
                &rr2,
                "192.0.2.2".parse().unwrap(),
                &[net("198.51.100.0/25")],
                &[net("10.3.0.0/16")],
            )
            .await
            .unwrap();
        assert_eq!(n, 2, "10.3.0.0/16 and the peer's host route");
        let t220 = routes("220");
        assert!(t220.iter().any(|r| r["dst"] == "192.0.2.2"), "{t220:?}");
        let n = r
            .up(
                key("dup"),
                &rr,
                "192.0.2.2".parse().unwrap(),
                &[],
                &[net("10.9.0.0/16")],
            )
            .await
            .unwrap();
        assert_eq!(n, 0, "the operator's route stays the operator's");

        // The flow goes: its routes go, the operator's stays (also after `down` of the
        // flow that found it there).
        assert!(r.down(&key("lan")).await.is_empty());
        assert!(r.down(&key("dup")).await.is_empty());
        let main = routes("main");
        assert!(!main.iter().any(|r| r["protocol"] == "118"), "{main:?}");
        let op = main
            .iter()
            .find(|r| r["dst"] == "10.9.0.0/16")
            .expect("kept");
        assert_eq!(op["gateway"], "203.0.113.253");

        // What a killed run leaves is found by its protocol, in any table.
        let mut again = Routes::connect().unwrap();
        assert_eq!(again.remove_stale().await.unwrap(), 2);
        assert!(routes("220").is_empty());
        assert!(routes("main").iter().any(|r| r["dst"] == "10.9.0.0/16"));
    });
}
