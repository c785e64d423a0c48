//! The authentication client (Access-Request for EAP, RFC 3579) against fake servers on
//! 127.0.0.1: a good one, and hostile ones whose answers must not count.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use vpnd_radius::access::{attr, attribute_list, build_answer, encrypt_mppe_key};
use vpnd_radius::{AccessAnswer, AccessRequest, ClientConfig, Error, Group, ServerSpec};

const SECRET: &[u8] = b"testing123";

fn group(addr: SocketAddr, retransmit: u32) -> Group {
    Group::new(
        vec![ServerSpec {
            name: "radius1".into(),
            addr,
            secret: SECRET.to_vec(),
        }],
        ClientConfig {
            timeout: Duration::from_millis(150),
            retransmit,
            max_timeout: Duration::from_millis(300),
            dead_time: Duration::ZERO,
            source: None,
        },
    )
    .unwrap()
}

fn request(state: Option<&[u8]>) -> AccessRequest {
    AccessRequest {
        user_name: "joe@cclient".into(),
        eap_message: b"\x02\x01\x00\x10\x01joe@cclient".to_vec(),
        state: state.map(<[u8]>::to_vec),
        nas_ip: Some("192.0.2.1".parse().unwrap()),
        nas_identifier: Some("vpnd".into()),
        nas_port: Some(1),
        called_station_id: None,
        calling_station_id: None,
    }
}

async fn recv(sock: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 4096];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("a request within 5 s")
        .unwrap();
    buf.truncate(n);
    (buf, from)
}

#[tokio::test]
async fn challenge_then_accept_with_msk_and_class() {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let g = group(server.local_addr().unwrap(), 2);
    let task = tokio::spawn({
        let g = g.clone();
        async move { g.authenticate(&request(None)).await }
    });
    let (req, from) = recv(&server).await;
    assert_eq!(req[0], 1, "Access-Request");
    let attrs = attribute_list(&req).unwrap();
    assert!(attrs
        .iter()
        .any(|a| a.0 == attr::MESSAGE_AUTHENTICATOR && a.1.len() == 16));
    let challenge = build_answer(
        attr::ACCESS_CHALLENGE,
        &req,
        &[
            (attr::EAP_MESSAGE, vec![1, 2, 0, 6, 26, 1]),
            (attr::STATE, b"st".to_vec()),
        ],
        SECRET,
        true,
    );
    server.send_to(&challenge, from).await.unwrap();
    let (_, answer) = task.await.unwrap().unwrap();
    assert_eq!(
        answer,
        AccessAnswer::Challenge {
            eap_message: vec![1, 2, 0, 6, 26, 1],
            state: Some(b"st".to_vec())
        }
    );

    // Second round: the State is echoed, the Accept carries keys and a Class.
    let task = tokio::spawn({
        let g = g.clone();
        async move { g.authenticate(&request(Some(b"st"))).await }
    });
    let (req, from) = recv(&server).await;
    let attrs = attribute_list(&req).unwrap();
    assert!(attrs.iter().any(|a| a.0 == attr::STATE && a.1 == b"st"));
    let ra: [u8; 16] = req[4..20].try_into().unwrap();
    let accept = build_answer(
        attr::ACCESS_ACCEPT,
        &req,
        &[
            (attr::EAP_MESSAGE, vec![3, 2, 0, 4]),
            (attr::CLASS, b"gold".to_vec()),
            (attr::FRAMED_POOL, b"gold-v4".to_vec()),
            (attr::FRAMED_IPV6_POOL, b"gold-v6".to_vec()),
            (attr::SESSION_TIMEOUT, 20u32.to_be_bytes().to_vec()),
            (
                attr::VENDOR_SPECIFIC,
                attr::mppe(
                    attr::MS_MPPE_RECV_KEY,
                    &encrypt_mppe_key(&[1; 32], [0x81, 0], &ra, SECRET),
                ),
            ),
            (
                attr::VENDOR_SPECIFIC,
                attr::mppe(
                    attr::MS_MPPE_SEND_KEY,
                    &encrypt_mppe_key(&[2; 32], [0x82, 0], &ra, SECRET),
                ),
            ),
        ],
        SECRET,
        true,
    );
    server.send_to(&accept, from).await.unwrap();
    let (_, answer) = task.await.unwrap().unwrap();
    let AccessAnswer::Accept(a) = answer else {
        panic!("{answer:?}")
    };
    let mut msk = vec![1; 32];
    msk.extend_from_slice(&[2; 32]);
    assert_eq!(a.msk.as_deref().map(Vec::as_slice), Some(&msk[..]));
    assert_eq!(a.class, vec![b"gold".to_vec()]);
    assert_eq!(
        a.framed_pools,
        vec!["gold-v4".to_string(), "gold-v6".into()]
    );
    assert_eq!(a.session_timeout, Some(20));
}

/// Answers that must not count: a forged Response Authenticator, a missing or wrong
/// Message-Authenticator (BlastRADIUS), another identifier, an Accounting-Response. The
/// request then goes unanswered, retransmitted unchanged (same identifier and
/// authenticator, RFC 5080 2.2.1), and fails; the counters say why.
#[tokio::test]
async fn hostile_answers_are_refused_and_the_request_fails() {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let g = group(server.local_addr().unwrap(), 1);
    let task = tokio::spawn({
        let g = g.clone();
        async move { g.authenticate(&request(None)).await }
    });
    let (req, from) = recv(&server).await;
    let eap = [(attr::EAP_MESSAGE, vec![3, 1, 0, 4])];
    let mut forged = build_answer(attr::ACCESS_ACCEPT, &req, &eap, SECRET, true);
    forged[5] ^= 0xff;
    let no_ma = build_answer(attr::ACCESS_ACCEPT, &req, &eap, SECRET, false);
    let wrong_ma = {
        // A valid Response Authenticator over a Message-Authenticator made with another key.
        let mut a = build_answer(attr::ACCESS_ACCEPT, &req, &eap, b"other-secret", true);
        // Re-sign the Response Authenticator with the right secret.
        a[4..20].copy_from_slice(&req[4..20]);
        let mut md5 = <md5::Md5 as md5::Digest>::new();
        md5::Digest::update(&mut md5, &a);
        md5::Digest::update(&mut md5, SECRET);
        let ra: [u8; 16] = md5::Digest::finalize(md5).into();
        a[4..20].copy_from_slice(&ra);
        a
    };
    let mut other_id_req = req.clone();
    other_id_req[1] = req[1].wrapping_add(1);
    let other_id = build_answer(attr::ACCESS_ACCEPT, &other_id_req, &eap, SECRET, true);
    let mut acct = build_answer(attr::ACCESS_ACCEPT, &req, &[], SECRET, false);
    acct[0] = 5;
    for bad in [&forged, &no_ma, &wrong_ma, &other_id, &acct] {
        server.send_to(bad, from).await.unwrap();
    }
    let (again, _) = recv(&server).await;
    assert_eq!(again, req, "an Access-Request is retransmitted unchanged");
    let err = task.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Unanswered { .. }), "{err}");
    let st = &g.stats()[0];
    assert_eq!(st.forged, 3, "{st:?}");
    assert_eq!(st.unmatched, 1, "{st:?}");
    assert_eq!(st.malformed, 1, "{st:?}");
    assert_eq!(st.responses, 0);
}

#[tokio::test]
async fn server_down_is_refused_after_the_retransmits() {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    drop(sock);
    let g = group(addr, 2);
    let t0 = std::time::Instant::now();
    let err = g.authenticate(&request(None)).await.unwrap_err();
    assert!(matches!(err, Error::Unanswered { .. }), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert_eq!(g.stats()[0].failed, 1);
}
