//! EAP responder (RFC 7296 2.16) against a client written here from the RFC: A's engine
//! does IKE_SA_INIT (so the client has real keys), its own IKE_AUTH (with a PSK AUTH) is
//! taken off the wire, and the test speaks the client's side of the EAP IKE_AUTH exchanges
//! with A's keys. B plays the gateway, its RADIUS answers given by hand.

use super::*;
use crate::ike::auth::RemoteAuth;
use crate::ike::auth::{psk_auth, verify_psk_auth};
use crate::ike::codec::{
    AuthMethod, AuthPayload, Codec, Flags, Header, IdPayload, Message, NotifyType, Payload,
    PayloadList,
};
use crate::ike::exchange::eap::EAP_STEP_TIMEOUT;
use crate::ike::policy::EapIdentity;
use crate::ike::{AuthenticatedUser, EapAnswer, EapRelay};

const MSK: [u8; 64] = [0x5a; 64];

/// The client's side: A's SA after IKE_SA_INIT, its first IKE_AUTH (opened with B's keys),
/// and a message counter.
struct Client {
    p: Pair,
    next_id: u32,
    iv: u64,
    first: Vec<Payload>,
    idi: IdPayload,
}

impl Client {
    fn new() -> Client {
        Client::with(EapIdentity::Request)
    }

    fn with(mode: EapIdentity) -> Client {
        Client::build(mode, |_, _| {}, Vec::new())
    }

    /// With the policies changed by `tweak` (A's, B's) and B's address pools.
    fn build(
        mode: EapIdentity,
        tweak: impl FnOnce(&mut crate::ike::PeerPolicy, &mut crate::ike::PeerPolicy),
        pools: Vec<crate::ike::AddressPool>,
    ) -> Client {
        let (mut pa, mut pb) = site_policies(&GCM, &GCM, &["aes256gcm16"]);
        pb.remote_auth = RemoteAuth::Eap(mode);
        tweak(&mut pa, &mut pb);
        let mut p = Pair::new(pa, pb);
        p.b.set_pools(pools);
        p.a.initiate(p.now, "b", addr(A)).unwrap();
        // IKE_SA_INIT request and response pass; A's IKE_AUTH is taken off the wire.
        let mut dropped = None;
        for _ in 0..3 {
            while let Some(o) = p.a.poll_output() {
                if let Output::Transmit(t) = o {
                    if dropped.is_none() && p.b.sas().next().is_some() {
                        dropped = Some(t.data);
                    } else {
                        p.b.handle_datagram(p.now, t.remote, t.local, &t.data);
                    }
                }
            }
            while let Some(o) = p.b.poll_output() {
                if let Output::Transmit(t) = o {
                    p.a.handle_datagram(p.now, t.remote, t.local, &t.data);
                }
            }
        }
        let dropped = dropped.expect("A sent IKE_AUTH");
        let b_sa = p.b.sas().next().unwrap();
        let msg = Message::decode(&dropped).unwrap();
        let mut first = b_sa
            .keys
            .as_ref()
            .unwrap()
            .inb
            .open(&dropped, &msg)
            .unwrap();
        assert!(
            first.auth().is_some(),
            "A's own IKE_AUTH carries its PSK AUTH"
        );
        let idi = first.id_i().unwrap().clone();
        first.retain(|p| !matches!(p, Payload::Auth(_)));
        Client {
            p,
            next_id: 1,
            iv: 1000,
            first,
            idi,
        }
    }

    fn a_sa(&self) -> &crate::ike::sa::IkeSa {
        self.p.a.sas().next().unwrap()
    }

    fn ike(&self) -> u64 {
        self.p.b.sas().next().map(|s| s.id).unwrap()
    }

    /// The next IKE_AUTH request with `inner`, as a datagram.
    fn request(&mut self, inner: &[Payload]) -> Vec<u8> {
        let sa = self.a_sa();
        let header = Header {
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            exchange: ExchangeType::IKE_AUTH,
            flags: Flags {
                initiator: true,
                version: false,
                response: false,
            },
            message_id: self.next_id,
        };
        let iv = self.iv.to_be_bytes();
        let d = sa
            .keys
            .as_ref()
            .unwrap()
            .out
            .seal(&header, inner, &iv)
            .unwrap();
        self.iv += 1;
        self.next_id += 1;
        d
    }

    /// Delivers a datagram to B; B's answers opened, its other outputs kept.
    fn deliver(&mut self, d: &[u8]) -> Vec<Vec<Payload>> {
        self.p.b.handle_datagram(self.p.now, addr(B), addr(A), d);
        self.collect()
    }

    fn collect(&mut self) -> Vec<Vec<Payload>> {
        let mut answers = Vec::new();
        while let Some(o) = self.p.b.poll_output() {
            match o {
                Output::Transmit(t) => {
                    let msg = Message::decode(&t.data).unwrap();
                    assert!(msg.header.flags.response);
                    let keys = self.a_sa().keys.as_ref().unwrap();
                    answers.push(keys.inb.open(&t.data, &msg).unwrap());
                }
                other => self.p.b_out.push(other),
            }
        }
        answers
    }

    fn send(&mut self, inner: &[Payload]) -> Vec<Vec<Payload>> {
        let d = self.request(inner);
        self.deliver(&d)
    }

    fn relayed(&mut self) -> Vec<EapRelay> {
        let mut out = Vec::new();
        self.p.b_out.retain(|o| match o {
            Output::EapRequest(r) => {
                out.push(r.clone());
                false
            }
            _ => true,
        });
        out
    }

    fn answer(&mut self, a: EapAnswer) -> Vec<Vec<Payload>> {
        let ike = self.ike();
        self.p.b.eap_answer(self.p.now, ike, a);
        self.collect()
    }

    /// Our AUTH for the last message, keyed with `key` (2.16).
    fn auth(&self, key: &[u8]) -> Payload {
        let sa = self.a_sa();
        let k = sa.keys.as_ref().unwrap();
        let data = psk_auth(
            k.algs.prf,
            key,
            &sa.init_request,
            &sa.nr,
            &k.keys.sk_pi,
            &self.idi.get_encoding(),
        );
        Payload::Auth(AuthPayload {
            method: AuthMethod::SHARED_KEY_MIC,
            data: data.to_vec(),
        })
    }

    /// The whole conversation up to EAP-Success: Identity, one challenge round, Accept.
    fn through_success(&mut self, msk: Option<Vec<u8>>) {
        self.through_success_as(msk, user());
    }

    /// As `through_success`, RADIUS saying `user` of the client.
    fn through_success_as(&mut self, msk: Option<Vec<u8>>, user: AuthenticatedUser) {
        let first = self.first.clone();
        let r = self.send(&first);
        assert_eq!(r.len(), 1);
        let eap = eap_of(&r[0]).expect("an EAP request in the first answer");
        assert_eq!(eap, [1, 1, 0, 5, 1], "EAP-Request/Identity");
        self.send(&[Payload::Eap(identity_response(1, "joe@cclient"))]);
        let relayed = self.relayed();
        assert_eq!(relayed.len(), 1);
        self.answer(EapAnswer::Request(vec![1, 2, 0, 6, 26, 1]));
        self.send(&[Payload::Eap(vec![2, 2, 0, 6, 26, 1])]);
        assert_eq!(self.relayed().len(), 1);
        let r = self.answer(EapAnswer::Success {
            eap: vec![3, 2, 0, 4],
            msk: msk.map(Zeroizing::new),
            user,
        });
        assert_eq!(eap_of(&r[0]).unwrap(), [3, 2, 0, 4], "EAP-Success relayed");
    }

    /// B's outputs from now on (requests it sends too, opened with A's keys).
    fn b_outputs(&mut self) -> (Vec<Output>, Vec<Vec<Payload>>) {
        let (mut outs, mut msgs) = (Vec::new(), Vec::new());
        while let Some(o) = self.p.b.poll_output() {
            match o {
                Output::Transmit(t) => {
                    let msg = Message::decode(&t.data).unwrap();
                    let keys = self.a_sa().keys.as_ref().unwrap();
                    msgs.push(keys.inb.open(&t.data, &msg).unwrap());
                }
                other => outs.push(other),
            }
        }
        (outs, msgs)
    }
}

fn user() -> AuthenticatedUser {
    AuthenticatedUser {
        identity: "joe@cclient".into(),
        class: vec![b"gold-class".to_vec()],
        server: "radius1".into(),
        ..Default::default()
    }
}

fn eap_of(inner: &[Payload]) -> Option<Vec<u8>> {
    inner.iter().find_map(|p| match p {
        Payload::Eap(e) => Some(e.clone()),
        _ => None,
    })
}

fn identity_response(id: u8, name: &str) -> Vec<u8> {
    let mut e = vec![2, id, 0, 0, 1];
    e.extend_from_slice(name.as_bytes());
    let len = e.len() as u16;
    e[2..4].copy_from_slice(&len.to_be_bytes());
    e
}

fn has_notify(inner: &[Payload], kind: NotifyType) -> bool {
    inner.find_notify(kind).is_some()
}

#[test]
fn eap_client_is_authenticated_through_the_relay_and_gets_its_child() {
    let mut c = Client::new();
    let first = c.first.clone();
    let r = c.send(&first);
    // IDr and the gateway's own AUTH (PSK) come first (2.16), with the EAP request.
    let sa = c.a_sa();
    let k = sa.keys.as_ref().unwrap();
    let (idr, auth) = (r[0].id_r().unwrap(), r[0].auth().unwrap());
    verify_psk_auth(
        k.algs.prf,
        b"secret",
        &sa.init_response,
        &sa.ni,
        &k.keys.sk_pr,
        &idr.get_encoding(),
        &auth.data,
    )
    .expect("the gateway's first AUTH is its PSK AUTH");
    assert!(
        r[0].sa().is_none(),
        "no child before the client is authenticated"
    );

    // The identity response goes to the relay, with the identity; a retransmission of the
    // same request while RADIUS thinks is not relayed again, nor answered.
    let d = c.request(&[Payload::Eap(identity_response(1, "joe@cclient"))]);
    assert!(c.deliver(&d).is_empty(), "no answer before RADIUS answers");
    let relayed = c.relayed();
    assert_eq!(relayed.len(), 1);
    assert_eq!(relayed[0].identity, "joe@cclient");
    assert!(relayed[0].first);
    assert_eq!(relayed[0].eap, identity_response(1, "joe@cclient"));
    assert!(c.deliver(&d).is_empty());
    assert!(
        c.relayed().is_empty(),
        "a retransmission is not relayed twice"
    );

    let r = c.answer(EapAnswer::Request(vec![1, 2, 0, 6, 26, 1]));
    assert_eq!(eap_of(&r[0]).unwrap(), [1, 2, 0, 6, 26, 1]);
    // A second answer for the same message (a duplicate from the relay) changes nothing.
    assert!(c
        .answer(EapAnswer::Request(vec![1, 3, 0, 6, 26, 1]))
        .is_empty());
    c.send(&[Payload::Eap(vec![2, 2, 0, 6, 26, 1])]);
    let relayed = c.relayed();
    assert!(!relayed[0].first);
    let r = c.answer(EapAnswer::Success {
        eap: vec![3, 2, 0, 4],
        msk: Some(Zeroizing::new(MSK.to_vec())),
        user: user(),
    });
    assert_eq!(eap_of(&r[0]).unwrap(), [3, 2, 0, 4]);
    assert_eq!(
        Pair::ups(&c.p.b_out),
        0,
        "not up before the AUTH with the MSK"
    );

    let auth = c.auth(&MSK);
    let r = c.send(&[auth]);
    assert_eq!(r.len(), 1);
    // The gateway's last AUTH is keyed with the MSK too, over its own signed octets.
    let sa = c.a_sa();
    let k = sa.keys.as_ref().unwrap();
    let idr = IdPayload::new(Identity::Fqdn("a.local.example".into()));
    verify_psk_auth(
        k.algs.prf,
        &MSK,
        &sa.init_response,
        &sa.ni,
        &k.keys.sk_pr,
        &idr.get_encoding(),
        &r[0].auth().unwrap().data,
    )
    .expect("the gateway's last AUTH uses the MSK");
    assert!(
        r[0].sa().is_some() && r[0].ts_i().is_some(),
        "the child SA answer"
    );
    assert_eq!(Pair::installs(&c.p.b_out).len(), 1);
    let ups: Vec<&Option<AuthenticatedUser>> =
        c.p.b_out
            .iter()
            .filter_map(|o| match o {
                Output::IkeUp { user, .. } => Some(user),
                _ => None,
            })
            .collect();
    assert_eq!(ups, [&Some(user())], "IkeUp carries the user and Class");
}

#[test]
fn eap_without_msk_uses_sk_p() {
    let mut c = Client::new();
    c.through_success(None);
    let sk_pi = c.a_sa().keys.as_ref().unwrap().keys.sk_pi.to_vec();
    let auth = c.auth(&sk_pi);
    let r = c.send(&[auth]);
    assert!(r[0].auth().is_some());
    assert_eq!(Pair::ups(&c.p.b_out), 1);
}

#[test]
fn wrong_msk_is_authentication_failed_and_never_up() {
    let mut c = Client::new();
    c.through_success(Some(MSK.to_vec()));
    let auth = c.auth(&[0x11; 64]);
    let r = c.send(&[auth]);
    assert!(has_notify(&r[0], NotifyType::AUTHENTICATION_FAILED));
    assert_eq!(Pair::ups(&c.p.b_out), 0);
    assert!(Pair::installs(&c.p.b_out).is_empty());
    assert!(matches!(
        Pair::downs(&c.p.b_out)[..],
        [DownReason::NegotiationFailed(Failure::Refused(
            Refusal::AuthFailed(_)
        ))]
    ));
}

#[test]
fn reject_and_radius_down_are_authentication_failed_with_eap_failure() {
    for why in [
        "rejected by RADIUS server radius1",
        "no RADIUS authentication server answered",
    ] {
        let mut c = Client::new();
        let first = c.first.clone();
        c.send(&first);
        c.send(&[Payload::Eap(identity_response(1, "joe@cclient"))]);
        let r = c.answer(EapAnswer::Failure {
            eap: Vec::new(),
            why: why.into(),
        });
        assert!(has_notify(&r[0], NotifyType::AUTHENTICATION_FAILED));
        assert_eq!(
            eap_of(&r[0]).unwrap(),
            [4, 1, 0, 4],
            "an EAP-Failure we made"
        );
        assert_eq!(Pair::ups(&c.p.b_out), 0);
        assert_eq!(Pair::downs(&c.p.b_out).len(), 1);
        assert!(c.p.b.sas().next().is_none(), "the SA is gone");
        // A late answer for the gone SA is ignored.
        c.p.b
            .eap_answer(c.p.now, 1, EapAnswer::Request(vec![1, 9, 0, 4]));
        assert!(c.p.b.poll_output().is_none());
    }
}

#[test]
fn a_client_sending_psk_auth_to_an_eap_peer_is_refused() {
    let mut c = Client::new();
    let mut first = c.first.clone();
    first.push(c.auth(b"secret"));
    let r = c.send(&first);
    assert!(has_notify(&r[0], NotifyType::AUTHENTICATION_FAILED));
    assert_eq!(Pair::ups(&c.p.b_out), 0);
}

#[test]
fn malformed_and_unexpected_eap_are_refused() {
    // A Length past the data, a wrong identifier, a Request where a Response belongs, no
    // EAP at all, a non-Identity first response: each refuses the client, nothing else.
    let cases: [Vec<Payload>; 5] = [
        vec![Payload::Eap(vec![2, 1, 0, 50, 1])],
        vec![Payload::Eap(identity_response(7, "joe"))],
        vec![Payload::Eap(vec![1, 1, 0, 5, 1])],
        vec![],
        vec![Payload::Eap(vec![2, 1, 0, 6, 26, 1])],
    ];
    for (i, inner) in cases.into_iter().enumerate() {
        let mut c = Client::new();
        let first = c.first.clone();
        c.send(&first);
        let r = c.send(&inner);
        assert_eq!(r.len(), 1, "case {i}");
        assert!(
            has_notify(&r[0], NotifyType::AUTHENTICATION_FAILED)
                || has_notify(&r[0], NotifyType::INVALID_SYNTAX),
            "case {i}: {:?}",
            r[0]
        );
        assert!(c.relayed().is_empty(), "case {i}: nothing relayed");
        assert_eq!(Pair::ups(&c.p.b_out), 0);
    }
}

#[test]
fn a_silent_radius_or_client_ends_the_half_open_sa() {
    let mut c = Client::new();
    let first = c.first.clone();
    c.send(&first);
    c.send(&[Payload::Eap(identity_response(1, "joe@cclient"))]);
    // No answer from the relay: the SA stays (longer than the plain half-open timeout)...
    c.p.now += Duration::from_secs(45);
    c.p.b.handle_timeout(c.p.now);
    assert!(
        c.p.b.sas().next().is_some(),
        "RADIUS may take its retransmits"
    );
    // ...but not forever.
    c.p.now += EAP_STEP_TIMEOUT;
    c.p.b.handle_timeout(c.p.now);
    c.collect();
    assert!(c.p.b.sas().next().is_none());
    assert!(matches!(
        Pair::downs(&c.p.b_out)[..],
        [DownReason::NegotiationFailed(Failure::NoIkeAuth)]
    ));
}

/// IDi as the EAP identity (the default): no EAP-Request/Identity; the first IKE_AUTH
/// response waits for RADIUS and carries IDr, AUTH and the server's first request.
#[test]
fn ike_identity_mode_relays_idi_and_answers_the_first_request_late() {
    let mut c = Client::with(EapIdentity::IkeId);
    let first = c.first.clone();
    let d = c.request(&first);
    assert!(
        c.deliver(&d).is_empty(),
        "the first response waits for RADIUS"
    );
    let relayed = c.relayed();
    assert_eq!(relayed.len(), 1);
    assert!(relayed[0].first);
    // A's IDi is its FQDN: the synthesized EAP-Response/Identity carries it.
    assert_eq!(relayed[0].identity, "b.local.example");
    assert_eq!(relayed[0].eap, identity_response(0, "b.local.example"));
    assert!(c.deliver(&d).is_empty(), "a retransmission waits too");
    assert!(c.relayed().is_empty());
    let r = c.answer(EapAnswer::Request(vec![1, 5, 0, 6, 4, 1]));
    assert_eq!(r.len(), 1);
    assert!(
        r[0].id_r().is_some() && r[0].auth().is_some(),
        "IDr and AUTH first"
    );
    assert_eq!(eap_of(&r[0]).unwrap(), [1, 5, 0, 6, 4, 1]);
    c.send(&[Payload::Eap(vec![2, 5, 0, 6, 4, 1])]);
    assert_eq!(c.relayed().len(), 1);
    c.answer(EapAnswer::Success {
        eap: vec![3, 5, 0, 4],
        msk: Some(Zeroizing::new(MSK.to_vec())),
        user: user(),
    });
    let auth = c.auth(&MSK);
    let r = c.send(&[auth]);
    assert!(r[0].sa().is_some());
    assert_eq!(Pair::ups(&c.p.b_out), 1);
    // Refused at the first step: AUTHENTICATION_FAILED, no IDr/AUTH needed.
    let mut c = Client::with(EapIdentity::IkeId);
    let first = c.first.clone();
    c.send(&first);
    let r = c.answer(EapAnswer::Failure {
        eap: Vec::new(),
        why: "rejected".into(),
    });
    assert!(has_notify(&r[0], NotifyType::AUTHENTICATION_FAILED));
    assert_eq!(Pair::ups(&c.p.b_out), 0);
}

/// A client that sends SAi2, TSi and TSr with its last AUTH rather than in the first
/// IKE_AUTH request gets its child from there.
#[test]
fn child_payloads_with_the_last_auth() {
    let mut c = Client::with(EapIdentity::IkeId);
    let (child, first): (Vec<Payload>, Vec<Payload>) = c
        .first
        .clone()
        .into_iter()
        .partition(|p| matches!(p, Payload::Sa(_) | Payload::TsI(_) | Payload::TsR(_)));
    assert_eq!(child.len(), 3);
    c.send(&first);
    c.answer(EapAnswer::Request(vec![1, 5, 0, 6, 4, 1]));
    c.send(&[Payload::Eap(vec![2, 5, 0, 6, 4, 1])]);
    c.answer(EapAnswer::Success {
        eap: vec![3, 5, 0, 4],
        msk: Some(Zeroizing::new(MSK.to_vec())),
        user: user(),
    });
    let mut last = vec![c.auth(&MSK)];
    last.extend(child);
    let r = c.send(&last);
    assert!(r[0].auth().is_some() && r[0].sa().is_some() && r[0].ts_r().is_some());
    assert_eq!(Pair::installs(&c.p.b_out).len(), 1);
    assert_eq!(Pair::ups(&c.p.b_out), 1);
}

/// A's policy asks for an address (strongSwan's `vips`); B's profile has a default pool
/// and the pool `gold` for the users RADIUS puts there (Framed-Pool, RFC 2869 5.23).
fn pooled_client() -> Client {
    let pool = |n: &str, a: &str, b: &str| crate::ike::AddressPool {
        name: n.into(),
        first: a.parse().unwrap(),
        last: b.parse().unwrap(),
    };
    Client::build(
        EapIdentity::Request,
        |pa, pb| {
            pa.remote_access.request_address = true;
            pb.remote_access.pool = Some("default".into());
        },
        vec![
            pool("default", "198.51.100.10", "198.51.100.11"),
            pool("gold", "198.51.100.100", "198.51.100.101"),
        ],
    )
}

fn replied(inner: &[Payload]) -> Option<std::net::Ipv4Addr> {
    inner
        .cp()
        .and_then(crate::ike::exchange::config::replied_address)
}

#[test]
fn framed_pool_names_the_pool_and_an_unknown_one_is_refused_clearly_and_counted() {
    let mut c = pooled_client();
    let mut gold = user();
    gold.framed_pools = vec!["gold".into()];
    c.through_success_as(Some(MSK.to_vec()), gold);
    let auth = c.auth(&MSK);
    let r = c.send(&[auth]);
    let gold_ip: std::net::Ipv4Addr = "198.51.100.100".parse().unwrap();
    assert_eq!(replied(&r[0]), Some(gold_ip), "from the pool RADIUS named");
    let ups: Vec<_> =
        c.p.b_out
            .iter()
            .filter_map(|o| match o {
                Output::IkeUp { virtual_ip, .. } => Some(*virtual_ip),
                _ => None,
            })
            .collect();
    assert_eq!(ups, vec![Some(std::net::IpAddr::V4(gold_ip))]);
    let installs = Pair::installs(&c.p.b_out);
    assert_eq!(installs.len(), 1);
    assert_eq!(
        installs[0].remote_ts,
        vec![ts("198.51.100.100", "198.51.100.100")],
        "TSi narrowed to the lease"
    );
    let st = c.p.b.pool_stats();
    assert_eq!((st[0].in_use, st[1].in_use), (0, 1));

    // A pool nobody configured: the child is refused (the IKE SA stays, 3.15.4), the log
    // names the pool, and it is counted.
    let mut c = pooled_client();
    let mut lost = user();
    lost.framed_pools = vec!["nope\x1b[2J".into()];
    c.through_success_as(Some(MSK.to_vec()), lost);
    let auth = c.auth(&MSK);
    let r = c.send(&[auth]);
    assert!(
        has_notify(&r[0], NotifyType::INTERNAL_ADDRESS_FAILURE),
        "{:?}",
        r[0]
    );
    assert!(r[0].sa().is_none() && replied(&r[0]).is_none());
    assert_eq!(Pair::ups(&c.p.b_out), 1);
    assert!(Pair::installs(&c.p.b_out).is_empty());
    assert_eq!(c.p.b.pool_extras(), (1, 0));
    let notes: Vec<&String> =
        c.p.b_out
            .iter()
            .filter_map(|o| match o {
                Output::Notice { text, .. } => Some(text),
                _ => None,
            })
            .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("Framed-Pool") && n.contains("'nope") && !n.contains('\x1b')),
        "named, escaped: {notes:?}"
    );
    assert!(c.p.b.pool_stats().iter().all(|p| p.in_use == 0));
}

#[test]
fn session_timeout_ends_the_session_in_the_engine_with_its_own_reason() {
    let mut c = pooled_client();
    let mut u = user();
    u.session_timeout = Some(20);
    c.through_success_as(Some(MSK.to_vec()), u);
    let auth = c.auth(&MSK);
    let up_at = c.p.now;
    c.send(&[auth]);
    let deadline =
        c.p.b_out
            .iter()
            .find_map(|o| match o {
                Output::IkeUp {
                    session_deadline, ..
                } => Some(*session_deadline),
                _ => None,
            })
            .expect("up");
    assert_eq!(deadline, Some(up_at + Duration::from_secs(20)));
    assert!(c
        .p
        .b
        .poll_timeout()
        .is_some_and(|t| t <= up_at + Duration::from_secs(20)));
    // A second early: nothing ends.
    c.p.now = up_at + Duration::from_secs(19);
    c.p.b.handle_timeout(c.p.now);
    let (outs, _) = c.b_outputs();
    assert!(Pair::downs(&outs).is_empty(), "{outs:?}");
    // At the deadline: a Delete for the IKE SA to the client, the child removed, and the
    // daemon told why (accounting's Session-Timeout).
    c.p.now = up_at + Duration::from_secs(20);
    c.p.b.handle_timeout(c.p.now);
    let (outs, msgs) = c.b_outputs();
    assert_eq!(Pair::downs(&outs), vec![DownReason::SessionTimeout]);
    assert!(outs.iter().any(|o| matches!(o, Output::RemoveChild(_))));
    assert!(
        msgs.iter().any(|m| m.iter().any(
            |p| matches!(p, Payload::Delete(d) if d.protocol == crate::ike::codec::ProtocolId::IKE)
        )),
        "{msgs:?}"
    );
    assert!(
        c.p.b.pool_stats().iter().all(|p| p.in_use == 0),
        "the lease is released"
    );
}

#[test]
fn session_timeout_zero_is_none() {
    let mut c = Client::new();
    let mut u = user();
    u.session_timeout = Some(0);
    c.through_success_as(Some(MSK.to_vec()), u);
    let auth = c.auth(&MSK);
    c.send(&[auth]);
    assert!(c.p.b_out.iter().any(|o| matches!(
        o,
        Output::IkeUp {
            session_deadline: None,
            ..
        }
    )));
}
