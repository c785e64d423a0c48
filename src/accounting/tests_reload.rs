//! A configuration reload's RADIUS and method-list changes, against servers on loopback:
//! records move to the new servers with nothing lost, running sessions keep their Start's
//! servers, new sessions take the new list.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

use super::tests::{recv, temp_dir, view_of};
use super::*;
use crate::session::model::Totals;

/// Two servers (t1, t2), groups g1 = [t1] and g2 = [t2] (unless `groups` says otherwise),
/// lists l1 → g1 and l2 → g2; peer p1 on `list`.
fn config(
    dir: &std::path::Path,
    s1: SocketAddr,
    s2: SocketAddr,
    groups: &str,
    lists: &str,
    list: &str,
) -> Config {
    let yaml = format!(
        "local:\n  addresses: [192.0.2.1]\n\
         radius:\n  servers:\n    - {{ name: t1, address: {}, acct_port: {}, key: testing123 }}\n    - {{ name: t2, address: {}, acct_port: {}, key: testing123 }}\n  timeout: 1s\n  retransmit: 0\n{groups}\
         accounting:\n  journal: {}/acct.journal\n  lists:\n{lists}\
         peers:\n  - name: p1\n    address: 192.0.2.2\n    psk: lab-secret-0123456789\n    start: respond\n    accounting: {list}\n\
         \x20   children:\n      - name: lan\n        local_ts: [198.51.100.0/25]\n        remote_ts: [203.0.113.0/26]\n",
        s1.ip(),
        s1.port(),
        s2.ip(),
        s2.port(),
        dir.display()
    );
    Config::from_str(&yaml, dir.join("t.yaml")).unwrap_or_else(|e| panic!("{e}"))
}

const GROUPS: &str = "  groups:\n    g1: [t1]\n    g2: [t2]\n";
const LISTS: &str =
    "    l1: { mode: start-stop, groups: [g1] }\n    l2: { mode: start-stop, groups: [g2] }\n";

async fn servers() -> (UdpSocket, UdpSocket) {
    (
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
    )
}

fn addr(s: &UdpSocket) -> SocketAddr {
    s.local_addr().unwrap()
}

/// Waits until every record is acknowledged and recorded as such (answers are read by the
/// server tasks, then the outbox, after the fake server sent them).
async fn settled(a: &Accounting) -> AccountingView {
    for _ in 0..100 {
        let v = a.show().await.unwrap();
        if v.queued == 0 && v.in_flight == 0 {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("records still queued: {:?}", a.show().await);
}

async fn quiet(s: &UdpSocket, wait: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(wait, s.recv_from(&mut buf))
        .await
        .is_err()
}

#[tokio::test]
async fn a_running_session_keeps_its_list_and_a_new_one_takes_the_new_list() {
    let (s1, s2) = servers().await;
    let dir = temp_dir("reload-list");
    let a = Accounting::start(
        &config(&dir, addr(&s1), addr(&s2), GROUPS, LISTS, "l1"),
        &[],
    )
    .unwrap()
    .unwrap();
    assert_eq!(recv(&s1, true).await.status(), 7, "Accounting-On to g1");
    let first = view_of("192.0.2.2:500", Totals::default());
    a.up(&first);
    let start = recv(&s1, true).await;
    assert_eq!(start.status(), 1);

    let new = config(&dir, addr(&s1), addr(&s2), GROUPS, LISTS, "l2");
    a.reconfigure(Plan::of(&new).unwrap());
    let second = view_of("192.0.2.2:4500", Totals::default());
    a.up(&second);
    let start2 = recv(&s2, true).await;
    assert_eq!(start2.status(), 1, "the new session's Start on l2's server");
    assert_ne!(start2.session(), start.session());

    let t = Totals {
        bytes_in: 1000,
        bytes_out: 2000,
        packets_in: 10,
        packets_out: 20,
    };
    a.down(&view_of("192.0.2.2:500", t), Cause::AdminReset);
    let stop = recv(&s1, true).await;
    assert_eq!(
        (stop.status(), stop.session()),
        (2, start.session()),
        "the running session's Stop where its Start went"
    );
    assert_eq!(stop.u32(42), Some(1000), "Acct-Input-Octets");
    assert_eq!(stop.u32(49), Some(6), "Acct-Terminate-Cause Admin-Reset");
    assert!(quiet(&s2, Duration::from_millis(300)).await);
    a.shutdown(Duration::from_millis(10)).await;
}

#[tokio::test]
async fn a_server_moved_by_a_reload_gets_what_was_waiting_nothing_lost() {
    let (s1, s2) = servers().await;
    let dir = temp_dir("reload-move");
    // Only t1 in the implicit group radius; it never answers.
    let one = |at: SocketAddr| {
        let yaml = format!(
            "local:\n  addresses: [192.0.2.1]\n\
             radius:\n  servers:\n    - {{ name: t, address: {}, acct_port: {}, key: testing123 }}\n  timeout: 1s\n  retransmit: 3\n\
             accounting:\n  journal: {}/acct.journal\n  lists:\n    lab: {{ mode: start-stop, groups: [radius] }}\n\
             peers:\n  - name: p1\n    address: 192.0.2.2\n    psk: lab-secret-0123456789\n    start: respond\n    accounting: lab\n\
             \x20   children:\n      - name: lan\n        local_ts: [198.51.100.0/25]\n        remote_ts: [203.0.113.0/26]\n",
            at.ip(),
            at.port(),
            dir.display()
        );
        Config::from_str(&yaml, dir.join("t.yaml")).unwrap()
    };
    let a = Accounting::start(&one(addr(&s1)), &[]).unwrap().unwrap();
    let on = recv(&s1, false).await;
    assert_eq!(on.status(), 7);
    a.up(&view_of("192.0.2.2:500", Totals::default()));
    // In flight to t1 (waiting on its first timeout): the reload moves t to s2.
    a.reconfigure(Plan::of(&one(addr(&s2))).unwrap());
    let started = std::time::Instant::now();
    let on2 = recv(&s2, true).await;
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "waited on t1's timeout"
    );
    assert_eq!(
        (on2.status(), on2.session()),
        (7, on.session()),
        "the same record"
    );
    let start = recv(&s2, true).await;
    assert_eq!(start.status(), 1);
    a.down(
        &view_of("192.0.2.2:500", Totals::default()),
        Cause::AdminReset,
    );
    let stop = recv(&s2, true).await;
    assert_eq!((stop.status(), stop.session()), (2, start.session()));
    let v = settled(&a).await;
    assert_eq!(v.outbox.delivered, 3, "{v:?}");
    assert_eq!(v.servers.len(), 1);
    assert_eq!(v.servers[0].addr, addr(&s2));
    a.shutdown(Duration::from_millis(10)).await;
}

#[tokio::test]
async fn a_removed_group_sends_its_sessions_stop_to_the_default_group() {
    let (s1, s2) = servers().await;
    let dir = temp_dir("reload-gone");
    let a = Accounting::start(
        &config(&dir, addr(&s1), addr(&s2), GROUPS, LISTS, "l1"),
        &[],
    )
    .unwrap()
    .unwrap();
    assert_eq!(recv(&s1, true).await.status(), 7);
    a.up(&view_of("192.0.2.2:500", Totals::default()));
    let start = recv(&s1, true).await;
    assert_eq!(start.status(), 1);
    settled(&a).await;
    // g1 and its list are gone; the implicit group radius (both servers) remains, t1 silent.
    let new = config(
        &dir,
        addr(&s1),
        addr(&s2),
        "  groups:\n    radius: [t2]\n",
        "    l2: { mode: start-stop, groups: [radius] }\n",
        "l2",
    );
    a.reconfigure(Plan::of(&new).unwrap());
    a.down(
        &view_of("192.0.2.2:500", Totals::default()),
        Cause::AdminReset,
    );
    let stop = recv(&s2, true).await;
    assert_eq!((stop.status(), stop.session()), (2, start.session()));
    let v = settled(&a).await;
    assert_eq!(v.outbox.delivered, 3, "{v:?}");
    assert!(quiet(&s1, Duration::from_millis(200)).await);
    a.shutdown(Duration::from_millis(10)).await;
}
