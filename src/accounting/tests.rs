//! The accounting task end to end against a RADIUS server on loopback that answers as
//! RFC 2866 says (Response Authenticator with MD5, written here from the RFC), or not at all.

use std::net::SocketAddr;
use std::time::Duration;

use md5::{Digest, Md5};
use tokio::net::UdpSocket;

use super::*;
use crate::session::model::{Status, Totals};

const SECRET: &[u8] = b"testing123";

fn config(dir: &std::path::Path, server: SocketAddr, periodic: &str) -> Config {
    let yaml = format!(
        "local:\n  addresses: [192.0.2.1]\n\
         radius:\n  servers:\n    - {{ name: t, address: {}, acct_port: {}, key: testing123 }}\n  timeout: 1s\n  retransmit: 0\n  vsa_send_accounting: true\n\
         accounting:\n  journal: {}/acct.journal\n{periodic}  lists:\n    lab: {{ mode: start-stop, groups: [radius] }}\n\
         peers:\n  - name: p1\n    address: 192.0.2.2\n    psk: lab-secret-0123456789\n    start: respond\n    accounting: lab\n\
         \x20   children:\n      - name: lan\n        local_ts: [198.51.100.0/25]\n        remote_ts: [203.0.113.0/26]\n",
        server.ip(),
        server.port(),
        dir.display()
    );
    Config::from_str(&yaml, dir.join("t.yaml")).unwrap()
}

pub(super) fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "vpnd-acct-{name}-{}-{}",
        std::process::id(),
        unix_now()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn view(totals: Totals) -> SessionView {
    view_of("192.0.2.2:500", totals)
}

/// Peer p1's session from `peer` (address:port).
pub(super) fn view_of(peer: &str, totals: Totals) -> SessionView {
    SessionView {
        key: SessionKey {
            peer: peer.parse().unwrap(),
            fvrf: None,
            ivrf: None,
        },
        peer_name: "p1".into(),
        interface: None,
        status: Status::UpActive,
        description: None,
        phase1_id: Some("peer1.lab.example".into()),
        user: None,
        local: "127.0.0.1".parse().unwrap(),
        ike_sas: vec![],
        flows: vec![],
        totals,
        up_since: Some(unix_now()),
        assigned_ip: None,
        assigned_ip6: None,
        session_timeout_s: None,
    }
}

/// One received Accounting-Request, its attributes by type (the last one of each type).
pub(super) struct Req {
    attrs: HashMap<u8, Vec<u8>>,
    /// Every Vendor-Specific attribute's value, in order.
    vsas: Vec<Vec<u8>>,
}

impl Req {
    pub(super) fn u32(&self, t: u8) -> Option<u32> {
        self.attrs
            .get(&t)
            .map(|v| u32::from_be_bytes(v[..4].try_into().unwrap()))
    }
    pub(super) fn status(&self) -> u32 {
        self.u32(40).unwrap()
    }
    pub(super) fn session(&self) -> String {
        String::from_utf8(self.attrs[&44].clone()).unwrap()
    }
}

/// Receives one request; answers it when `answer`.
pub(super) async fn recv(sock: &UdpSocket, answer: bool) -> Req {
    let mut buf = [0u8; 4096];
    let (n, from) = tokio::time::timeout(Duration::from_secs(10), sock.recv_from(&mut buf))
        .await
        .expect("a request in time")
        .unwrap();
    let p = &buf[..n];
    let mut attrs = HashMap::new();
    let mut vsas = Vec::new();
    let mut i = 20;
    while i + 2 <= n {
        let (t, l) = (p[i], p[i + 1] as usize);
        attrs.insert(t, p[i + 2..i + l].to_vec());
        if t == 26 {
            vsas.push(p[i + 2..i + l].to_vec());
        }
        i += l;
    }
    if answer {
        let mut resp = vec![5, p[1], 0, 20];
        let mut h = Md5::new();
        h.update(&resp[..4]);
        h.update(&p[4..20]);
        h.update(SECRET);
        resp.extend_from_slice(&h.finalize());
        sock.send_to(&resp, from).await.unwrap();
    }
    Req { attrs, vsas }
}

#[tokio::test]
async fn start_interims_and_stop_share_one_session_id() {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dir = temp_dir("flow");
    let cfg = config(
        &dir,
        server.local_addr().unwrap(),
        "  update_periodic: 1s\n",
    );
    let a = Accounting::start(&cfg, &[])
        .unwrap()
        .expect("a peer has a list");
    assert_eq!(recv(&server, true).await.status(), 7, "Accounting-On first");

    a.up(&view(Totals::default()));
    let start = recv(&server, true).await;
    assert_eq!(start.status(), 1);
    assert_eq!(start.attrs[&1], b"peer1.lab.example", "User-Name");
    let id = start.session();

    let t = Totals {
        bytes_in: (1 << 32) + 5,
        bytes_out: 420,
        packets_in: 7,
        packets_out: 5,
    };
    a.totals(vec![(view(t).key, t.into())]);
    let interim = recv(&server, true).await;
    assert_eq!((interim.status(), interim.session()), (3, id.clone()));
    assert_eq!(interim.u32(42), Some(5), "octets past 2^32 ...");
    assert_eq!(interim.u32(52), Some(1), "... carry into gigawords");

    a.down(&view(t), Cause::AdminReset);
    let stop = loop {
        let r = recv(&server, true).await;
        if r.status() == 2 {
            break r;
        }
        assert_eq!(r.status(), 3, "only Interims before the Stop");
    };
    assert_eq!(stop.session(), id);
    assert_eq!(stop.u32(49), Some(6), "Admin-Reset");
    assert_eq!((stop.u32(43), stop.u32(48)), (Some(420), Some(5)));
    let v = a.show().await.unwrap();
    assert_eq!(v.active_sessions, 0);
    a.shutdown(Duration::from_secs(2)).await;
    assert_eq!(
        recv(&server, true).await.status(),
        8,
        "Accounting-Off at stop"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_crash_leaves_its_records_and_a_stop_for_the_next_start() {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dir = temp_dir("crash");
    let cfg = config(&dir, server.local_addr().unwrap(), "");

    // The server does not answer: Accounting-On and the Start stay queued; then the task
    // dies without a Stop (as the daemon would on SIGKILL).
    let a = Accounting::start(&cfg, &[]).unwrap().unwrap();
    a.up(&view(Totals::default()));
    for _ in 0..200 {
        if a.show().await.map_or(0, |v| v.queued) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.task.abort();
    let _ = a.task.await;
    // Drain what was sent unanswered.
    while tokio::time::timeout(Duration::from_millis(200), recv(&server, false))
        .await
        .is_ok()
    {}

    // The next start: the old On and Start, the crash Stop, and a new On, each once.
    let b = Accounting::start(&cfg, &[]).unwrap().unwrap();
    let mut got: Vec<(u32, String, Option<u32>)> = Vec::new();
    while got.len() < 4 {
        let r = recv(&server, true).await;
        let key = (r.status(), r.session(), r.u32(49));
        if !got.contains(&key) {
            got.push(key); // a retransmission of an unanswered try is not a new record
        }
    }
    let start = got.iter().find(|r| r.0 == 1).expect("the queued Start");
    let stop = got.iter().find(|r| r.0 == 2).expect("the crash Stop");
    assert_eq!(stop.1, start.1, "the Stop closes the Start's session");
    assert_eq!(stop.2, Some(11), "NAS-Reboot");
    assert_eq!(
        got.iter().filter(|r| r.0 == 7).count(),
        2,
        "an Accounting-On per start"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let v = b.show().await.unwrap();
    assert_eq!((v.queued, v.outbox.delivered), (0, 4));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_crash_stop_never_says_less_than_the_last_interim() {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dir = temp_dir("crash-interim");
    let cfg = config(
        &dir,
        server.local_addr().unwrap(),
        "  update_periodic: 1s\n",
    );
    let a = Accounting::start(&cfg, &[]).unwrap().unwrap();
    assert_eq!(recv(&server, true).await.status(), 7);
    // An idle session (its counters never move): only its session time grows.
    let mut v = view(Totals::default());
    v.up_since = Some(unix_now() - 40);
    a.up(&v);
    assert_eq!(recv(&server, true).await.status(), 1);
    let mut last_interim = 0;
    for _ in 0..2 {
        let r = recv(&server, true).await;
        assert_eq!(r.status(), 3);
        last_interim = r.u32(46).unwrap();
    }
    // SIGKILL: the next start sends the crash Stop.
    a.task.abort();
    let _ = a.task.await;
    let _b = Accounting::start(&cfg, &[]).unwrap().unwrap();
    let stop = loop {
        let r = recv(&server, true).await;
        if r.status() == 2 {
            break r;
        }
    };
    let crash_time = stop.u32(46).unwrap();
    assert!(
        crash_time >= last_interim,
        "crash Stop says {crash_time} s, the last Interim said {last_interim} s"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 15.4: a crash Stop carries what the session's SAs had carried when vpnd died, read
/// from the kernel at the next start, not the counters of its last refresh; and after a
/// rekey it names the new SAs at once.
#[tokio::test]
async fn a_crash_stop_carries_the_kernel_counters_of_the_sas_left_behind() {
    use crate::session::model::{Counted, LiveSa};
    use vpnd_xfrm::{SaCounters, SaId};
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dir = temp_dir("crash-kernel");
    let cfg = config(&dir, server.local_addr().unwrap(), "");
    let a = Accounting::start(&cfg, &[]).unwrap().unwrap();
    assert_eq!(recv(&server, true).await.status(), 7);
    let v = view(Totals::default());
    a.up(&v);
    assert_eq!(recv(&server, true).await.status(), 1);
    let sa = |spi, inbound, bytes, packets| LiveSa {
        spi,
        inbound,
        bytes,
        packets,
    };
    // The first pair, then a rekey: the first pair's readings retired, a second pair live.
    a.totals(vec![(
        v.key.clone(),
        Counted {
            retired: Totals::default(),
            live: vec![sa(0x100, true, 500, 5), sa(0x200, false, 300, 3)],
        },
    )]);
    let retired = Totals {
        bytes_in: 600,
        bytes_out: 400,
        packets_in: 6,
        packets_out: 4,
    };
    a.totals(vec![(
        v.key.clone(),
        Counted {
            retired,
            live: vec![sa(0x300, true, 10, 1), sa(0x400, false, 20, 2)],
        },
    )]);
    // Let the task write the refreshed crash Stop, then SIGKILL.
    let _ = a.show().await;
    a.task.abort();
    let _ = a.task.await;

    // The kernel still holds the second pair with what it carried until the crash (and an
    // SA of someone else, and the first pair's inbound SPI reused with a smaller count).
    let reading = |spi, bytes, packets| {
        let id = SaId::esp(
            "127.0.0.1".parse().unwrap(),
            "192.0.2.2".parse().unwrap(),
            spi,
        );
        SaCounters::usage(id, bytes, packets)
    };
    let left = [
        reading(0x300, 7_000, 70),
        reading(0x400, 9_000, 90),
        reading(0x100, 1, 1),
        reading(0x999, 123_456, 789),
    ];
    let _b = Accounting::start(&cfg, &left).unwrap().unwrap();
    let stop = loop {
        let r = recv(&server, true).await;
        if r.status() == 2 {
            break r;
        }
    };
    assert_eq!(stop.u32(49), Some(11), "NAS-Reboot");
    assert_eq!(stop.u32(42), Some(600 + 7_000), "Acct-Input-Octets");
    assert_eq!(stop.u32(43), Some(400 + 9_000), "Acct-Output-Octets");
    assert_eq!(stop.u32(47), Some(6 + 70), "Acct-Input-Packets");
    assert_eq!(stop.u32(48), Some(4 + 90), "Acct-Output-Packets");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Polls the task's metrics snapshot until `ok` holds (it is refreshed every second).
async fn metrics_until(
    a: &Accounting,
    what: &str,
    ok: impl Fn(&crate::metrics::AccountingSnapshot) -> bool,
) -> crate::metrics::AccountingSnapshot {
    let m = a.metrics();
    for _ in 0..100 {
        let s = m.borrow().as_ref().clone();
        if ok(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("metrics never showed {what}: {:?}", m.borrow());
}

#[tokio::test]
async fn metrics_count_forged_answers_timeouts_and_the_outbox() {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dir = temp_dir("metrics");
    let cfg = config(&dir, server.local_addr().unwrap(), "");
    let a = Accounting::start(&cfg, &[])
        .unwrap()
        .expect("a peer has a list");
    // Accounting-On, answered with a garbage Response Authenticator: dropped, then the
    // request times out (1 s, no retransmission) and waits in the outbox.
    let mut buf = [0u8; 4096];
    let (n, from) = tokio::time::timeout(Duration::from_secs(10), server.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(n >= 20);
    let mut forged = vec![5, buf[1], 0, 20];
    forged.extend_from_slice(&[0xEE; 16]);
    server.send_to(&forged, from).await.unwrap();
    let s = metrics_until(&a, "a forged answer and a timeout", |s| {
        s.servers
            .first()
            .is_some_and(|v| v.forged >= 1 && v.timeouts >= 1)
    })
    .await;
    assert_eq!(s.servers.len(), 1);
    assert_eq!(s.servers[0].name, "t");
    assert!(s.servers[0].requests >= 1, "{s:?}");
    let s = metrics_until(&a, "the waiting record", |s| s.queued == 1).await;
    assert!(s.oldest_age_seconds > 0.0, "{s:?}");
    // The retry is answered: the outbox empties.
    assert_eq!(recv(&server, true).await.status(), 7, "Accounting-On again");
    let s = metrics_until(&a, "an empty outbox", |s| s.queued == 0).await;
    assert_eq!(s.oldest_age_seconds, 0.0);
    a.shutdown(Duration::from_secs(2)).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A remote-access client's records (the Cisco guide's Start): Framed-IP-Address is its
/// leased address, isakmp-group-id the profile's group, User-Name its identity; in the
/// Start and again in the Stop.
#[tokio::test]
async fn a_clients_records_carry_its_address_and_group() {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dir = temp_dir("client");
    let mut cfg = config(&dir, server.local_addr().unwrap(), "");
    cfg.peers[0].group = Some("cclient".into());
    let a = Accounting::start(&cfg, &[]).unwrap().expect("a list");
    assert_eq!(recv(&server, true).await.status(), 7);
    let mut v = view(Totals::default());
    v.phase1_id = Some("joe@cclient".into());
    v.assigned_ip = Some("203.0.113.200".parse().unwrap());
    v.assigned_ip6 = Some("2001:db8:77::1".parse().unwrap());
    a.up(&v);
    let start = recv(&server, true).await;
    assert_eq!(start.status(), 1);
    assert_eq!(start.attrs[&1], b"joe@cclient", "User-Name");
    assert_eq!(start.attrs[&8], [203, 0, 113, 200], "Framed-IP-Address");
    let v6: std::net::Ipv6Addr = "2001:db8:77::1".parse().unwrap();
    assert_eq!(
        start.attrs[&168],
        v6.octets(),
        "Framed-IPv6-Address (RFC 6911)"
    );
    // Vendor 9 (Cisco), type 1 (Cisco-AVPair).
    let pair = |r: &Req, text: &[u8]| {
        r.vsas
            .iter()
            .any(|v| v.starts_with(&[0, 0, 0, 9, 1]) && v.ends_with(text))
    };
    assert!(pair(&start, b"isakmp-group-id=cclient"), "isakmp-group-id");
    assert!(pair(&start, b"isakmp-phase1-id=joe@cclient"));
    a.down(&v, Cause::UserRequest);
    let stop = recv(&server, true).await;
    assert_eq!(stop.status(), 2);
    assert_eq!(
        stop.attrs[&8],
        [203, 0, 113, 200],
        "Framed-IP-Address in the Stop"
    );
    assert_eq!(
        stop.attrs[&168],
        v6.octets(),
        "Framed-IPv6-Address in the Stop"
    );
    a.shutdown(Duration::from_secs(2)).await;
    let _ = std::fs::remove_dir_all(&dir);
}
