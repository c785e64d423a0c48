//! The transport against fake accounting servers on 127.0.0.1.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use common::Fake;
use vpnd_radius::{AccountingRecord, AcctStatus, ClientConfig, Error, Failure, Group, ServerSpec};

const SECRET: &[u8] = b"testing123";

fn spec(name: &str, addr: SocketAddr) -> ServerSpec {
    ServerSpec {
        name: name.into(),
        addr,
        secret: SECRET.to_vec(),
    }
}

fn fast(timeout_ms: u64, retransmit: u32, dead_time: Duration) -> ClientConfig {
    ClientConfig {
        timeout: Duration::from_millis(timeout_ms),
        retransmit,
        max_timeout: Duration::from_secs(2),
        dead_time,
        source: None,
    }
}

fn record(id: &str) -> AccountingRecord {
    AccountingRecord {
        cisco_avpairs: vec!["vrf-id=cisco".into()],
        ..AccountingRecord::new(
            AcctStatus::Start,
            id,
            SystemTime::now() - Duration::from_secs(3),
        )
    }
}

#[tokio::test]
async fn answered_request_is_delivered() {
    let server = Fake::bind(SECRET).await;
    let group = Group::new(
        vec![spec("a", server.addr())],
        fast(2000, 1, Duration::ZERO),
    )
    .unwrap();
    let rec = record("s-a");
    let send = tokio::spawn({
        let (group, rec) = (group.clone(), rec.clone());
        async move { group.send(&rec).await }
    });
    let (req, from) = server.recv().await;
    assert_eq!(common::session_id(&req), "s-a");
    assert!(
        common::delay(&req) >= 3,
        "Acct-Delay-Time counts from the event"
    );
    server.answer(&req, from).await;
    let delivered = send.await.unwrap().unwrap();
    assert_eq!((delivered.server.as_str(), delivered.tries), ("a", 1));
    let stats = &group.stats()[0];
    assert_eq!(
        (stats.requests, stats.responses, stats.retransmissions),
        (1, 1, 0)
    );
    assert!(stats.last_rtt_us.is_some());
    assert!(!stats.dead);
    let json = serde_json::to_value(group.stats()).unwrap();
    assert_eq!(json[0]["name"], "a");
    assert_eq!(json[0]["responses"], 1);
}

#[tokio::test]
async fn forged_and_malformed_responses_are_ignored_and_counted() {
    let server = Fake::bind(SECRET).await;
    let group = Group::new(
        vec![spec("a", server.addr())],
        fast(2000, 1, Duration::ZERO),
    )
    .unwrap();
    let send = tokio::spawn({
        let group = group.clone();
        async move { group.send(&record("s-b")).await }
    });
    let (req, from) = server.recv().await;
    // Right identifier, authenticator made with the wrong secret.
    server
        .send(&common::response_with(&req, req[1], 5, b"wrong"), from)
        .await;
    // Garbage: too short; an Access-Accept; a Length past the datagram.
    server.send(&[5, req[1], 0, 20], from).await;
    server
        .send(&common::response_with(&req, req[1], 2, SECRET), from)
        .await;
    let mut long = common::response(&req, SECRET);
    long[3] = 40;
    server.send(&long, from).await;
    // Then the real answer.
    server.answer(&req, from).await;
    let delivered = send.await.unwrap().unwrap();
    assert_eq!(delivered.tries, 1);
    let stats = &group.stats()[0];
    assert_eq!(stats.forged, 1);
    assert_eq!(stats.malformed, 3);
    assert_eq!(stats.responses, 1);
}

#[tokio::test]
async fn octets_past_length_are_padding() {
    let server = Fake::bind(SECRET).await;
    let group = Group::new(
        vec![spec("a", server.addr())],
        fast(2000, 1, Duration::ZERO),
    )
    .unwrap();
    let send = tokio::spawn({
        let group = group.clone();
        async move { group.send(&record("s-pad")).await }
    });
    let (req, from) = server.recv().await;
    let mut padded = common::response(&req, SECRET);
    padded.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    server.send(&padded, from).await;
    assert_eq!(send.await.unwrap().unwrap().tries, 1);
    assert_eq!(group.stats()[0].malformed, 0);
}

#[tokio::test]
async fn response_with_another_identifier_is_ignored() {
    let server = Fake::bind(SECRET).await;
    let group = Group::new(
        vec![spec("a", server.addr())],
        fast(2000, 1, Duration::ZERO),
    )
    .unwrap();
    let send = tokio::spawn({
        let group = group.clone();
        async move { group.send(&record("s-c")).await }
    });
    let (req, from) = server.recv().await;
    // Correctly signed for its (wrong) identifier, which no request is using.
    server
        .send(
            &common::response_with(&req, req[1].wrapping_add(1), 5, SECRET),
            from,
        )
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !send.is_finished(),
        "a response with a foreign identifier completed the request"
    );
    server.answer(&req, from).await;
    assert_eq!(send.await.unwrap().unwrap().tries, 1);
    let stats = &group.stats()[0];
    assert_eq!((stats.unmatched, stats.forged, stats.responses), (1, 0, 1));
}

#[tokio::test]
async fn retransmission_has_new_identifier_and_higher_delay() {
    let server = Fake::bind(SECRET).await;
    // 1 s timeout: Acct-Delay-Time counts whole seconds.
    let group = Group::new(
        vec![spec("a", server.addr())],
        fast(1000, 2, Duration::ZERO),
    )
    .unwrap();
    let send = tokio::spawn({
        let group = group.clone();
        async move { group.send(&record("s-d")).await }
    });
    let (first, _) = server.recv().await; // not answered
    let (second, from) = server.recv().await;
    assert_eq!(common::session_id(&second), "s-d");
    assert_ne!(
        first[1], second[1],
        "identifier changes with the attributes"
    );
    assert!(
        common::delay(&second) > common::delay(&first),
        "Acct-Delay-Time grows"
    );
    server.answer(&second, from).await;
    let delivered = send.await.unwrap().unwrap();
    assert_eq!(delivered.tries, 2);
    let stats = &group.stats()[0];
    assert_eq!(
        (stats.requests, stats.retransmissions, stats.timeouts),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn late_answer_to_an_earlier_transmission_is_accepted() {
    let server = Fake::bind(SECRET).await;
    let group = Group::new(vec![spec("a", server.addr())], fast(50, 3, Duration::ZERO)).unwrap();
    let send = tokio::spawn({
        let group = group.clone();
        async move { group.send(&record("s-late")).await }
    });
    let (first, from) = server.recv().await;
    let (second, _) = server.recv().await;
    assert_ne!(first[1], second[1]);
    server.answer(&first, from).await;
    let delivered = send.await.unwrap().unwrap();
    assert!(delivered.tries >= 2);
    // The answer to the second transmission comes after completion: ignored, counted.
    server.answer(&second, from).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stats = &group.stats()[0];
    assert_eq!((stats.responses, stats.unmatched, stats.forged), (1, 1, 0));
}

#[tokio::test]
async fn failover_marks_the_silent_server_dead() {
    let a = Fake::bind(SECRET).await; // never answers
    let b = Fake::bind(SECRET).await;
    let group = Group::new(
        vec![spec("a", a.addr()), spec("b", b.addr())],
        fast(50, 1, Duration::from_secs(30)),
    )
    .unwrap();
    let answerer = tokio::spawn(async move {
        loop {
            let (req, from) = b.recv().await;
            b.answer(&req, from).await;
        }
    });

    let delivered = group.send(&record("s-e1")).await.unwrap();
    assert_eq!((delivered.server.as_str(), delivered.tries), ("b", 1));
    let (r1, _) = a.recv().await;
    let (r2, _) = a.recv().await;
    assert_eq!(
        (common::session_id(&r1), common::session_id(&r2)),
        ("s-e1".into(), "s-e1".into())
    );
    let stats = group.stats();
    assert!(stats[0].dead && stats[0].dead_until.is_some());
    assert_eq!((stats[0].failed, stats[0].timeouts), (1, 2));
    assert!(!stats[1].dead);

    // The next record goes to b at once.
    let started = Instant::now();
    let delivered = group.send(&record("s-e2")).await.unwrap();
    assert_eq!(delivered.server, "b");
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "waited on a: {:?}",
        started.elapsed()
    );
    assert!(
        a.quiet(Duration::from_millis(150)).await,
        "a dead server got a request"
    );
    answerer.abort();
}

#[tokio::test]
async fn without_dead_time_the_first_server_is_always_tried() {
    let a = Fake::bind(SECRET).await;
    let b = Fake::bind(SECRET).await;
    let group = Group::new(
        vec![spec("a", a.addr()), spec("b", b.addr())],
        fast(30, 0, Duration::ZERO),
    )
    .unwrap();
    let answerer = tokio::spawn(async move {
        loop {
            let (req, from) = b.recv().await;
            b.answer(&req, from).await;
        }
    });
    for id in ["s-f1", "s-f2"] {
        assert_eq!(group.send(&record(id)).await.unwrap().server, "b");
        let (req, _) = a.recv().await;
        assert_eq!(common::session_id(&req), id);
    }
    assert!(!group.stats()[0].dead);
    answerer.abort();
}

#[tokio::test]
async fn all_silent_fails_after_the_configured_tries_then_tries_dead_servers_anyway() {
    let a = Fake::bind(SECRET).await;
    let b = Fake::bind(SECRET).await;
    let group = Group::new(
        vec![spec("a", a.addr()), spec("b", b.addr())],
        fast(30, 2, Duration::from_secs(30)),
    )
    .unwrap();
    for round in 0..2 {
        let err = group.send(&record("s-g")).await.unwrap_err();
        let Error::Undelivered { attempts } = &err else {
            panic!("{err:?}")
        };
        let got: Vec<(&str, &Failure)> = attempts
            .iter()
            .map(|x| (x.server.as_str(), &x.failure))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", &Failure::NoAnswer { tries: 3 }),
                ("b", &Failure::NoAnswer { tries: 3 })
            ],
            "round {round}"
        );
        assert!(err.to_string().contains("a: no answer after 3 tries"));
        for server in [&a, &b] {
            let mut ids = Vec::new();
            for _ in 0..3 {
                ids.push(server.recv().await.0[1]);
            }
            ids.dedup();
            assert_eq!(ids.len(), 3, "a new identifier per try");
            assert!(
                server.quiet(Duration::from_millis(50)).await,
                "more than 3 tries"
            );
        }
        assert!(group.stats().iter().all(|s| s.dead), "round {round}");
    }
}

#[tokio::test]
async fn requests_wait_when_all_256_identifiers_are_in_flight() {
    let server = Fake::bind(SECRET).await;
    let group = Group::new(
        vec![spec("a", server.addr())],
        fast(5000, 0, Duration::ZERO),
    )
    .unwrap();
    let sends: Vec<_> = (0..300)
        .map(|i| {
            let group = group.clone();
            tokio::spawn(async move { group.send(&record(&format!("s-{i}"))).await })
        })
        .collect();
    // Hold the answers until 256 are outstanding (or nothing more comes).
    let mut outstanding: HashMap<u8, (Vec<u8>, SocketAddr)> = HashMap::new();
    let mut most = 0;
    let mut answered = 0;
    let mut buf = vec![0u8; 4096];
    while answered < 300 {
        match tokio::time::timeout(Duration::from_millis(200), server.sock.recv_from(&mut buf))
            .await
        {
            Ok(received) => {
                let (n, from) = received.unwrap();
                let req = buf[..n].to_vec();
                assert!(
                    !outstanding.contains_key(&req[1]),
                    "identifier {} used twice",
                    req[1]
                );
                outstanding.insert(req[1], (req, from));
                most = most.max(outstanding.len());
                if outstanding.len() < 256 {
                    continue;
                }
            }
            Err(_) => assert!(!outstanding.is_empty(), "client stalled at {answered}"),
        }
        for (_, (req, from)) in outstanding.drain() {
            server.answer(&req, from).await;
            answered += 1;
        }
    }
    assert_eq!(most, 256);
    for s in sends {
        assert_eq!(s.await.unwrap().unwrap().tries, 1);
    }
    let stats = &group.stats()[0];
    assert_eq!(
        (
            stats.requests,
            stats.responses,
            stats.in_flight,
            stats.queued
        ),
        (300, 300, 0, 0)
    );
}

#[tokio::test]
async fn group_configuration_errors() {
    let addr: SocketAddr = "127.0.0.1:1813".parse().unwrap();
    assert_eq!(
        Group::new(vec![], ClientConfig::default()).unwrap_err(),
        Error::NoServers
    );
    let empty = ServerSpec {
        secret: vec![],
        ..spec("a", addr)
    };
    assert_eq!(
        Group::new(vec![empty], ClientConfig::default()).unwrap_err(),
        Error::EmptySecret("a".into())
    );
    assert_eq!(
        Group::new(
            vec![spec("a", addr), spec("a", addr)],
            ClientConfig::default()
        )
        .unwrap_err(),
        Error::DuplicateName("a".into())
    );
    assert!(
        !format!("{:?}", spec("a", addr)).contains("testing123"),
        "secret in Debug"
    );
    // The daemon spawns sends: the future must be Send.
    fn is_send<T: Send>(_: &T) {}
    let group = Group::new(vec![spec("a", addr)], ClientConfig::default()).unwrap();
    let rec = record("x");
    is_send(&group.send(&rec));
}

/// Class (25) as sent.
fn class(packet: &[u8]) -> Vec<Vec<u8>> {
    common::attributes(packet)
        .into_iter()
        .filter(|(t, _)| *t == 25)
        .map(|(_, v)| v)
        .collect()
}

#[tokio::test]
async fn a_request_waiting_on_a_removed_server_goes_to_the_new_list() {
    let a = Fake::bind(SECRET).await; // never answers
    let b = Fake::bind(b"another-secret").await;
    // A long timeout: without the switch the request would wait on a for seconds.
    let group = Group::new(vec![spec("a", a.addr())], fast(1000, 3, Duration::ZERO)).unwrap();
    let rec = AccountingRecord {
        class: vec![b"bill-me".to_vec()],
        ..record("s-switch")
    };
    let send = tokio::spawn({
        let (group, rec) = (group.clone(), rec.clone());
        async move { group.send(&rec).await }
    });
    let (at_a, _) = a.recv().await;
    let started = Instant::now();
    let b_spec = ServerSpec {
        secret: b"another-secret".to_vec(),
        ..spec("b", b.addr())
    };
    group
        .reconfigure(vec![b_spec], fast(1000, 3, Duration::ZERO))
        .unwrap();
    // Checked by b under its own secret: encoded anew for b, same session and Class.
    let (at_b, from) = b.recv().await;
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "waited on a"
    );
    assert_eq!(common::session_id(&at_b), "s-switch");
    assert_eq!(class(&at_b), class(&at_a));
    assert_eq!(class(&at_b), vec![b"bill-me".to_vec()]);
    assert_ne!(at_a[4..20], at_b[4..20], "a new Request Authenticator");
    b.answer(&at_b, from).await;
    let delivered = send.await.unwrap().unwrap();
    assert_eq!((delivered.server.as_str(), delivered.tries), ("b", 1));
    assert_eq!(group.server_names(), ["b"]);
    // a's task gave the request up: no retransmission reaches it.
    assert!(
        a.quiet(Duration::from_millis(1500)).await,
        "a got a retransmission"
    );
}

#[tokio::test]
async fn an_unchanged_server_keeps_its_task_and_a_bad_list_changes_nothing() {
    let a = Fake::bind(SECRET).await;
    let b = Fake::bind(SECRET).await;
    let cfg = fast(2000, 1, Duration::ZERO);
    let group = Group::new(vec![spec("a", a.addr())], cfg.clone()).unwrap();
    let send = tokio::spawn({
        let (group, rec) = (group.clone(), record("s-keep"));
        async move { group.send(&rec).await }
    });
    let (req, from) = a.recv().await;
    // a stays as it was, b is added after it: the request in flight is not sent again.
    group
        .reconfigure(vec![spec("a", a.addr()), spec("b", b.addr())], cfg.clone())
        .unwrap();
    a.answer(&req, from).await;
    let delivered = send.await.unwrap().unwrap();
    assert_eq!((delivered.server.as_str(), delivered.tries), ("a", 1));
    let stats = group.stats();
    assert_eq!(
        (
            stats[0].name.as_str(),
            stats[0].requests,
            stats[0].responses
        ),
        ("a", 1, 1),
        "a's counters survive"
    );
    assert_eq!((stats[1].name.as_str(), stats[1].requests), ("b", 0));
    assert!(b.quiet(Duration::from_millis(100)).await);
    // Refused: the running list stays.
    assert_eq!(
        group.reconfigure(vec![], cfg.clone()).unwrap_err(),
        Error::NoServers
    );
    assert_eq!(group.server_names(), ["a", "b"]);
    // A new secret is a new server task (its counters start again).
    let changed = ServerSpec {
        secret: b"new-secret".to_vec(),
        ..spec("a", a.addr())
    };
    group.reconfigure(vec![changed], cfg).unwrap();
    assert_eq!(group.stats()[0].requests, 0);
}
