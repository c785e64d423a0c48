//! Whole exchanges between two engines in memory with a virtual clock (quinn-proto's `Pair`
//! idea): no sockets, no kernel, microseconds per handshake.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::codec::{ExchangeType, NotifyType};
use super::codec::{Identity, TrafficSelector};
use super::crypto::RngSource;
use super::endpoint::{ChildInstall, ChildRemove, Endpoint, Output};
use super::policy::{ChildPolicy, Mode, PeerPolicy, RemoteMatch, Retransmit};
use super::proposal::{Proposal, ProposalKind};
use super::refusal::{Failure, Refusal};
use super::sa::DownReason;

mod frag;

/// A deterministic RNG (xorshift), so every run is the same.
struct TestRng(u64);
impl RngSource for TestRng {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), super::crypto::CryptoError> {
        for b in dest {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = self.0 as u8;
        }
        Ok(())
    }
}

fn ts(a: &str, b: &str) -> TrafficSelector {
    TrafficSelector::new(0, 0, 65535, a.parse().unwrap(), b.parse().unwrap()).unwrap()
}

const A: &str = "192.0.2.1:500";
const B: &str = "192.0.2.2:500";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn peer(
    name: &str,
    remote: &str,
    psk: &str,
    ike: &[&str],
    esp: &[&str],
    left: TrafficSelector,
    right: TrafficSelector,
) -> PeerPolicy {
    let remote = addr(remote);
    PeerPolicy {
        name: name.into(),
        remote: RemoteMatch::Single(remote.ip()),
        remote_port: 500,
        initial_contact: true,
        nat: Default::default(),
        frag: Default::default(),
        remote_access: Default::default(),
        local_id: Identity::Fqdn(format!("{name}.local.example")),
        remote_id: None,
        local_auth: crate::ike::LocalAuth::Psk(Zeroizing::new(psk.as_bytes().to_vec())),
        remote_auth: crate::ike::RemoteAuth::Psk(Zeroizing::new(psk.as_bytes().to_vec())),
        ike_proposals: ike
            .iter()
            .map(|p| Proposal::parse(p, ProposalKind::Ike).unwrap())
            .collect(),
        ike_lifetime: Duration::from_secs(86400),
        dpd: Some(Duration::from_secs(30)),
        retransmit: Retransmit {
            timeout: Duration::from_secs(2),
            base: 1.8,
            tries: 3,
        },
        children: vec![ChildPolicy {
            name: "net".into(),
            local_ts: vec![left],
            remote_ts: vec![right],
            mode: Mode::Tunnel,
            esp: esp
                .iter()
                .map(|p| Proposal::parse(p, ProposalKind::Esp).unwrap())
                .collect(),
            pfs: None,
            lifetime: Duration::from_secs(3600),
            lifetime_bytes: None,
            replay_window: 64,
        }],
    }
}

/// Two endpoints, a wire between them, and a clock.
struct Pair {
    a: Endpoint,
    b: Endpoint,
    now: Instant,
    /// Outputs other than datagrams, per side.
    a_out: Vec<Output>,
    b_out: Vec<Output>,
    /// Drop the next N datagrams sent by each side (lossy wire).
    drop_from_a: usize,
    drop_from_b: usize,
    /// The link is down: everything is lost.
    cut: bool,
    sent: usize,
    /// When each entry of `a_out` / `b_out` came out.
    a_at: Vec<Instant>,
    b_at: Vec<Instant>,
    /// A NAT in front of A: it rewrites A's source addresses, and B's answers back.
    nat: Option<NatBox>,
    /// A NAT in front of B (with port forwards, so B can still be reached).
    nat_b: Option<NatBox>,
}

/// A source NAT (masquerade) with one public address: each inside port gets a public port
/// of its own on first use; `rebind` forgets every mapping, as a NAT whose state timed out
/// (or was flushed) does, so the next datagram gets a new public port.
struct NatBox {
    inside: std::net::IpAddr,
    public: std::net::IpAddr,
    ports: std::collections::HashMap<u16, u16>,
    next: u16,
}

impl NatBox {
    fn new(inside: &str, public: &str) -> NatBox {
        NatBox {
            inside: inside.parse().unwrap(),
            public: public.parse().unwrap(),
            ports: Default::default(),
            next: 30000,
        }
    }

    fn out(&mut self, from: SocketAddr) -> SocketAddr {
        if from.ip() != self.inside {
            return from;
        }
        let next = &mut self.next;
        let port = *self.ports.entry(from.port()).or_insert_with(|| {
            *next += 1;
            *next
        });
        SocketAddr::new(self.public, port)
    }

    /// Where a datagram to `to` goes inside; None: no mapping, the NAT drops it.
    fn back(&self, to: SocketAddr) -> Option<SocketAddr> {
        if to.ip() != self.public {
            return Some(to);
        }
        self.ports
            .iter()
            .find(|(_, p)| **p == to.port())
            .map(|(i, _)| SocketAddr::new(self.inside, *i))
    }

    fn rebind(&mut self) {
        self.ports.clear();
        self.next += 1000;
    }
}

impl Pair {
    fn new(pa: PeerPolicy, pb: PeerPolicy) -> Pair {
        Pair::seeded(pa, pb, 0)
    }

    /// As `new`, with other random streams (nonces, SPIs) for each `seed`.
    fn seeded(pa: PeerPolicy, pb: PeerPolicy, seed: u64) -> Pair {
        Pair {
            a: Endpoint::new(vec![pa], Box::new(TestRng(2 * seed + 1))),
            b: Endpoint::new(vec![pb], Box::new(TestRng(2 * seed + 2))),
            now: Instant::now(),
            a_at: Vec::new(),
            b_at: Vec::new(),
            a_out: Vec::new(),
            b_out: Vec::new(),
            drop_from_a: 0,
            drop_from_b: 0,
            cut: false,
            sent: 0,
            nat: None,
            nat_b: None,
        }
    }

    /// Delivers datagrams until both sides are quiet (no timers are advanced).
    fn drive(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            while let Some(o) = self.a.poll_output() {
                moved = true;
                match o {
                    Output::Transmit(t) => {
                        self.sent += 1;
                        let from = match &mut self.nat {
                            Some(n) => n.out(t.local),
                            None => t.local,
                        };
                        let to = match &self.nat_b {
                            Some(n) => n.back(t.remote),
                            None => Some(t.remote),
                        };
                        if self.drop_from_a > 0 {
                            self.drop_from_a -= 1;
                        } else if let (false, Some(to)) = (self.cut, to) {
                            self.b.handle_datagram(self.now, to, from, &t.data);
                        }
                    }
                    other => {
                        self.a_out.push(other);
                        self.a_at.push(self.now);
                    }
                }
            }
            while let Some(o) = self.b.poll_output() {
                moved = true;
                match o {
                    Output::Transmit(t) => {
                        self.sent += 1;
                        let to = match &self.nat {
                            Some(n) => n.back(t.remote),
                            None => Some(t.remote),
                        };
                        let from = match &mut self.nat_b {
                            Some(n) => n.out(t.local),
                            None => t.local,
                        };
                        if self.drop_from_b > 0 {
                            self.drop_from_b -= 1;
                        } else if let (false, Some(to)) = (self.cut, to) {
                            self.a.handle_datagram(self.now, to, from, &t.data);
                        }
                    }
                    other => {
                        self.b_out.push(other);
                        self.b_at.push(self.now);
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("no quiescence after 1000 rounds");
    }

    /// Advances the clock to the next timer of either side and fires it.
    fn step_time(&mut self) -> bool {
        let next = [self.a.poll_timeout(), self.b.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(t) = next else { return false };
        self.now = self.now.max(t);
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
        self.drive();
        true
    }

    fn installs(out: &[Output]) -> Vec<&ChildInstall> {
        out.iter()
            .filter_map(|o| {
                if let Output::InstallChild(c) = o {
                    Some(&**c)
                } else {
                    None
                }
            })
            .collect()
    }

    fn removes(out: &[Output]) -> Vec<&ChildRemove> {
        out.iter()
            .filter_map(|o| {
                if let Output::RemoveChild(c) = o {
                    Some(c)
                } else {
                    None
                }
            })
            .collect()
    }

    fn ups(out: &[Output]) -> usize {
        out.iter()
            .filter(|o| matches!(o, Output::IkeUp { .. }))
            .count()
    }

    fn downs(out: &[Output]) -> Vec<DownReason> {
        out.iter()
            .filter_map(|o| {
                if let Output::IkeDown { reason, .. } = o {
                    Some(reason.clone())
                } else {
                    None
                }
            })
            .collect()
    }

    /// For each IKE SA rekey seen by one side: when it happened, and the deadline that side
    /// had announced (IkeUp or IkeRekeyed) for the SA it replaced.
    fn rekeys_announced(&self, a: bool) -> Vec<(Instant, Instant)> {
        let (out, at) = if a {
            (&self.a_out, &self.a_at)
        } else {
            (&self.b_out, &self.b_at)
        };
        let mut announced = std::collections::HashMap::new();
        let mut rekeys = Vec::new();
        for (o, t) in out.iter().zip(at) {
            match o {
                Output::IkeUp { ike, rekey_at, .. } => {
                    announced.insert(*ike, *rekey_at);
                }
                Output::IkeRekeyed {
                    old, new, rekey_at, ..
                } => {
                    rekeys.push((*t, announced[old]));
                    announced.insert(*new, *rekey_at);
                }
                _ => {}
            }
        }
        rekeys
    }

    fn notices(out: &[Output]) -> Vec<String> {
        out.iter()
            .filter_map(|o| {
                if let Output::Notice { text, .. } = o {
                    Some(text.clone())
                } else {
                    None
                }
            })
            .collect()
    }
}

fn site_pair(ike_a: &[&str], ike_b: &[&str], esp: &[&str]) -> Pair {
    let (pa, pb) = site_policies(ike_a, ike_b, esp);
    Pair::new(pa, pb)
}

/// A's policy for B and B's policy for A, one child each.
fn site_policies(ike_a: &[&str], ike_b: &[&str], esp: &[&str]) -> (PeerPolicy, PeerPolicy) {
    let left = ts("198.51.100.0", "198.51.100.127");
    let right = ts("203.0.113.0", "203.0.113.63");
    (
        peer("b", B, "secret", ike_a, esp, left, right),
        peer("a", A, "secret", ike_b, esp, right, left),
    )
}

const GCM: [&str; 1] = ["aes256gcm16-prfsha256-x25519"];

fn up(p: &mut Pair) {
    p.a.initiate(p.now, "b", addr(A)).unwrap();
    p.drive();
}

fn assert_matching_children(a: &ChildInstall, b: &ChildInstall) {
    assert_eq!(a.inbound_spi, b.outbound_spi);
    assert_eq!(a.outbound_spi, b.inbound_spi);
    assert_eq!(*a.inbound_encr_key, *b.outbound_encr_key);
    assert_eq!(*a.outbound_encr_key, *b.inbound_encr_key);
    assert_eq!(*a.inbound_integ_key, *b.outbound_integ_key);
    assert_ne!(
        *a.inbound_encr_key, *a.outbound_encr_key,
        "each direction has its own key"
    );
    assert_eq!(a.local_ts, b.remote_ts);
    assert_eq!(a.remote_ts, b.local_ts);
    assert_eq!((a.encr, a.integ, a.esn), (b.encr, b.integ, b.esn));
}

#[test]
fn gcm_x25519_handshake_installs_matching_children() {
    let mut p = site_pair(
        &["aes256gcm16-prfsha256-x25519"],
        &["aes256gcm16-prfsha256-x25519"],
        &["aes256gcm16"],
    );
    up(&mut p);
    assert_eq!(Pair::ups(&p.a_out), 1);
    assert_eq!(Pair::ups(&p.b_out), 1);
    let (ia, ib) = (Pair::installs(&p.a_out), Pair::installs(&p.b_out));
    assert_eq!((ia.len(), ib.len()), (1, 1));
    assert_matching_children(ia[0], ib[0]);
    assert_eq!(
        ia[0].inbound_encr_key.len(),
        36,
        "AES-256 key plus 4-byte salt"
    );
    // RFC 7296 2.17: KEYMAT = prf+(SK_d, Ni | Nr); initiator-to-responder keys come first.
    let sa = p.a.sas().next().unwrap();
    let seed = [sa.ni.as_slice(), sa.nr.as_slice()].concat();
    let keymat = super::crypto::Prf::HmacSha256
        .prf_plus(&sa.keys.as_ref().unwrap().keys.sk_d, &seed, 72)
        .unwrap();
    assert_eq!(
        &ia[0].outbound_encr_key[..],
        &keymat[..36],
        "initiator's outbound key is KEYMAT's first"
    );
    assert_eq!(&ia[0].inbound_encr_key[..], &keymat[36..72]);
    assert_eq!(
        p.sent, 4,
        "IKE_SA_INIT and IKE_AUTH, request and response each"
    );
}

#[test]
fn cbc_modp_and_ecp_suites_with_esn() {
    for (ike, esp) in [
        ("aes128-sha256-modp2048", "aes128-sha256-esn"),
        ("aes256-sha384-ecp384", "aes256-sha512"),
    ] {
        let mut p = site_pair(&[ike], &[ike], &[esp]);
        up(&mut p);
        let (ia, ib) = (Pair::installs(&p.a_out), Pair::installs(&p.b_out));
        assert_eq!((ia.len(), ib.len()), (1, 1), "{ike}");
        assert_matching_children(ia[0], ib[0]);
        assert!(ia[0].integ.is_some());
        assert_eq!(ia[0].esn, esp.ends_with("-esn"));
    }
}

#[test]
fn responder_uses_initiator_order_and_asks_for_its_group() {
    // A offers ecp384 first; B only accepts x25519: B answers INVALID_KE_PAYLOAD? No: the
    // proposals share nothing for ecp384, so B picks A's second proposal, whose group
    // differs from A's KE: INVALID_KE_PAYLOAD, then A retries with x25519.
    let mut p = site_pair(
        &["aes256-sha384-ecp384", "aes256gcm16-prfsha256-x25519"],
        &["aes256gcm16-prfsha256-x25519"],
        &["aes256gcm16"],
    );
    up(&mut p);
    assert_eq!(Pair::ups(&p.a_out), 1);
    assert_eq!(Pair::installs(&p.b_out).len(), 1);
    assert_eq!(
        p.sent, 6,
        "one extra IKE_SA_INIT round trip for INVALID_KE_PAYLOAD"
    );
}

#[test]
fn no_common_proposal_is_refused_and_logged() {
    let mut p = site_pair(
        &["aes256-sha384-ecp384"],
        &["aes128-sha256-modp2048"],
        &["aes256gcm16"],
    );
    up(&mut p);
    assert!(
        Pair::notices(&p.b_out)
            .iter()
            .any(|n| n.contains("answered NO_PROPOSAL_CHOSEN")),
        "{:?}",
        p.b_out
    );
    assert_eq!(
        Pair::downs(&p.a_out),
        vec![DownReason::NegotiationFailed(Failure::PeerRefused {
            exchange: ExchangeType::IKE_SA_INIT,
            notify: NotifyType::NO_PROPOSAL_CHOSEN,
        })]
    );
    assert!(p.b.sas().next().is_none(), "the responder keeps no state");
}

#[test]
fn wrong_psk_fails_authentication_on_both_sides() {
    let left = ts("198.51.100.0", "198.51.100.127");
    let right = ts("203.0.113.0", "203.0.113.63");
    let s = ["aes256gcm16-prfsha256-x25519"];
    let mut p = Pair::new(
        peer("b", B, "secret", &s, &["aes256gcm16"], left, right),
        peer("a", A, "other", &s, &["aes256gcm16"], right, left),
    );
    up(&mut p);
    assert_eq!(Pair::ups(&p.a_out) + Pair::ups(&p.b_out), 0);
    assert!(
        matches!(&Pair::downs(&p.b_out)[..],
            [DownReason::NegotiationFailed(Failure::Refused(Refusal::AuthFailed(w)))]
            if w.to_string().contains("does not verify")),
        "{:?}",
        p.b_out
    );
    assert_eq!(
        Pair::downs(&p.a_out),
        vec![DownReason::NegotiationFailed(Failure::PeerRefused {
            exchange: ExchangeType::IKE_AUTH,
            notify: NotifyType::AUTHENTICATION_FAILED,
        })]
    );
    assert!(Pair::installs(&p.a_out).is_empty() && Pair::installs(&p.b_out).is_empty());
}

#[test]
fn lost_datagrams_are_retransmitted_and_cached_responses_resent() {
    let mut p = site_pair(
        &["aes256gcm16-prfsha256-x25519"],
        &["aes256gcm16-prfsha256-x25519"],
        &["aes256gcm16"],
    );
    p.drop_from_b = 2; // B's IKE_SA_INIT response, then (after the retransmit) nothing more
    p.a.initiate(p.now, "b", addr(A)).unwrap();
    p.drive();
    assert_eq!(Pair::ups(&p.a_out), 0);
    // A retransmits IKE_SA_INIT; B answers from its cache (no second SA).
    assert!(p.step_time());
    assert_eq!(
        p.b.sas().count(),
        1,
        "a retransmitted IKE_SA_INIT must not create a second SA"
    );
    assert!(p.step_time());
    assert_eq!(Pair::ups(&p.a_out), 1);
    assert_eq!(Pair::installs(&p.b_out).len(), 1);
}

#[test]
fn delete_from_either_side_removes_children_on_both() {
    for initiator_deletes in [true, false] {
        let mut p = site_pair(
            &["aes256gcm16-prfsha256-x25519"],
            &["aes256gcm16-prfsha256-x25519"],
            &["aes256gcm16"],
        );
        up(&mut p);
        let (ida, idb) = (p.a.sas().next().unwrap().id, p.b.sas().next().unwrap().id);
        if initiator_deletes {
            p.a.delete(p.now, ida).unwrap();
        } else {
            p.b.delete(p.now, idb).unwrap();
        }
        p.drive();
        let (ra, rb) = (Pair::removes(&p.a_out), Pair::removes(&p.b_out));
        assert_eq!((ra.len(), rb.len()), (1, 1));
        assert_eq!(ra[0].inbound_spi, Pair::installs(&p.a_out)[0].inbound_spi);
        let (da, db) = (Pair::downs(&p.a_out), Pair::downs(&p.b_out));
        let (deleter, deleted) = if initiator_deletes {
            (da, db)
        } else {
            (db, da)
        };
        assert_eq!(deleter, vec![DownReason::LocalDelete]);
        assert_eq!(deleted, vec![DownReason::PeerDelete]);
        assert_eq!(p.a.sas().count() + p.b.sas().count(), 0);
    }
}

#[test]
fn liveness_check_detects_a_dead_peer() {
    let mut p = site_pair(
        &["aes256gcm16-prfsha256-x25519"],
        &["aes256gcm16-prfsha256-x25519"],
        &["aes256gcm16"],
    );
    up(&mut p);
    let start = p.now;
    // Quiet link: liveness checks are answered and nothing goes down.
    for _ in 0..4 {
        assert!(p.step_time());
    }
    assert!(Pair::downs(&p.a_out).is_empty());
    p.cut = true;
    while Pair::downs(&p.a_out).is_empty() {
        assert!(
            p.step_time(),
            "a timer must remain until the peer is declared dead"
        );
    }
    assert_eq!(Pair::downs(&p.a_out), vec![DownReason::PeerUnreachable]);
    assert_eq!(Pair::removes(&p.a_out).len(), 1);
    assert!(
        p.now - start < Duration::from_secs(400),
        "gave up after {:?}",
        p.now - start
    );
}

#[test]
fn garbage_and_forged_datagrams_leave_the_tunnel_alone() {
    let mut p = site_pair(
        &["aes256gcm16-prfsha256-x25519"],
        &["aes256gcm16-prfsha256-x25519"],
        &["aes256gcm16"],
    );
    up(&mut p);
    let sa_b = p.b.sas().next().unwrap();
    let (spi_i, spi_r) = (sa_b.spi_i, sa_b.spi_r);
    // Random bytes, a truncated header, and a well-formed INFORMATIONAL with our SPIs but a
    // garbage SK payload (fails the ICV).
    p.b.handle_datagram(p.now, addr(B), addr(A), &[0xde, 0xad, 0xbe, 0xef]);
    let mut forged = Vec::new();
    forged.extend_from_slice(&spi_i.to_be_bytes());
    forged.extend_from_slice(&spi_r.to_be_bytes());
    forged.extend_from_slice(&[46, 0x20, 37, 0x08, 0, 0, 0, 2]);
    let body = [0u8; 40];
    forged.extend_from_slice(&((28 + 4 + body.len()) as u32).to_be_bytes());
    forged.extend_from_slice(&[0, 0, 0, (4 + body.len()) as u8]);
    forged.extend_from_slice(&body);
    p.b.handle_datagram(p.now, addr(B), addr(A), &forged);
    p.drive();
    assert!(Pair::downs(&p.b_out).is_empty());
    assert!(Pair::removes(&p.b_out).is_empty());
    assert!(p.b.sas().next().unwrap().is_established());
    // And the tunnel still works: a liveness round trip succeeds.
    let before = p.sent;
    assert!(p.step_time());
    assert!(p.sent > before && Pair::downs(&p.a_out).is_empty());
}

#[test]
fn ts_narrowing_on_the_responder() {
    // A asks for a /24; B allows only a /25 inside it: the child gets the /25.
    let s = ["aes256gcm16-prfsha256-x25519"];
    let a_left = ts("198.51.100.0", "198.51.100.255");
    let b_allows = ts("198.51.100.0", "198.51.100.127");
    let right = ts("203.0.113.0", "203.0.113.63");
    let mut p = Pair::new(
        peer("b", B, "k", &s, &["aes256gcm16"], a_left, right),
        peer("a", A, "k", &s, &["aes256gcm16"], right, b_allows),
    );
    up(&mut p);
    let ia = Pair::installs(&p.a_out);
    assert_eq!(ia.len(), 1);
    assert_eq!(ia[0].local_ts, vec![b_allows]);
}

#[test]
fn ts_unacceptable_keeps_the_ike_sa() {
    let s = ["aes256gcm16-prfsha256-x25519"];
    let right = ts("203.0.113.0", "203.0.113.63");
    let mut p = Pair::new(
        peer(
            "b",
            B,
            "k",
            &s,
            &["aes256gcm16"],
            ts("10.1.0.0", "10.1.0.255"),
            right,
        ),
        peer(
            "a",
            A,
            "k",
            &s,
            &["aes256gcm16"],
            right,
            ts("198.51.100.0", "198.51.100.127"),
        ),
    );
    up(&mut p);
    assert_eq!((Pair::ups(&p.a_out), Pair::ups(&p.b_out)), (1, 1));
    assert!(Pair::installs(&p.a_out).is_empty() && Pair::installs(&p.b_out).is_empty());
    assert!(
        Pair::notices(&p.a_out)
            .iter()
            .any(|n| n.contains("TS_UNACCEPTABLE")),
        "{:?}",
        p.a_out
    );
}

fn child_ids(e: &Endpoint) -> Vec<(u32, u32)> {
    let mut v: Vec<(u32, u32)> = e
        .sas()
        .flat_map(|s| s.children.iter().map(|c| (c.inbound_spi, c.outbound_spi)))
        .collect();
    v.sort();
    v
}

#[test]
fn child_rekey_from_either_side_is_make_before_break() {
    for (initiator_rekeys, pfs) in [
        (true, None),
        (false, None),
        (true, Some(super::proposal::DhGroup::Curve25519)),
        (false, Some(super::proposal::DhGroup::Modp2048)),
    ] {
        let left = ts("198.51.100.0", "198.51.100.127");
        let right = ts("203.0.113.0", "203.0.113.63");
        let s = ["aes256gcm16-prfsha256-x25519"];
        let (mut pa, mut pb) = (
            peer("b", B, "k", &s, &["aes256gcm16"], left, right),
            peer("a", A, "k", &s, &["aes256gcm16"], right, left),
        );
        pa.children[0].pfs = pfs;
        pb.children[0].pfs = pfs;
        let mut p = Pair::new(pa, pb);
        up(&mut p);
        let old = Pair::installs(&p.a_out)[0].child;
        let side = if initiator_rekeys { &mut p.a } else { &mut p.b };
        let ike = side.sas().next().unwrap().id;
        let child = side.sas().next().unwrap().children[0].id;
        side.rekey_child(p.now, ike, child).unwrap();
        p.drive();
        let (ia, ib) = (Pair::installs(&p.a_out), Pair::installs(&p.b_out));
        assert_eq!(
            (ia.len(), ib.len()),
            (2, 2),
            "pfs {pfs:?}: a new pair on each side"
        );
        assert_matching_children(ia[1], ib[1]);
        assert_ne!(ia[1].inbound_encr_key, ia[0].inbound_encr_key, "fresh keys");
        assert_eq!(
            ia[1].replaces,
            Some(ia[0].child),
            "the new pair says which one it rekeys"
        );
        assert_eq!(ib[1].replaces, Some(ib[0].child));
        // The old pair is removed on both sides, after the new one was installed.
        let (ra, rb) = (Pair::removes(&p.a_out), Pair::removes(&p.b_out));
        assert_eq!((ra.len(), rb.len()), (1, 1), "pfs {pfs:?}");
        assert_eq!(ra[0].inbound_spi, ia[0].inbound_spi);
        let pos = |out: &[Output], f: &dyn Fn(&Output) -> bool| out.iter().position(f).unwrap();
        let installed = pos(
            &p.a_out,
            &|o| matches!(o, Output::InstallChild(c) if c.inbound_spi == ia[1].inbound_spi),
        );
        let removed = pos(
            &p.a_out,
            &|o| matches!(o, Output::RemoveChild(c) if c.inbound_spi == ia[0].inbound_spi),
        );
        assert!(installed < removed, "make before break");
        assert_eq!(
            child_ids(&p.a),
            vec![(ia[1].inbound_spi, ia[1].outbound_spi)]
        );
        assert_eq!(Pair::downs(&p.a_out).len() + Pair::downs(&p.b_out).len(), 0);
        assert_eq!(old, ia[0].child);
    }
}

#[test]
fn child_rekey_with_the_pfs_group_in_the_esp_proposal() {
    // As strongSwan writes it: esp_proposals = aes256gcm16-x25519.
    let mut p = site_pair(
        &["aes256gcm16-prfsha256-x25519"],
        &["aes256gcm16-prfsha256-x25519"],
        &["aes256gcm16-x25519"],
    );
    up(&mut p);
    assert_eq!(
        Pair::installs(&p.b_out).len(),
        1,
        "IKE_AUTH carries no DH, so the first child comes up"
    );
    let (ike, child) = (
        p.b.sas().next().unwrap().id,
        p.b.sas().next().unwrap().children[0].id,
    );
    p.b.rekey_child(p.now, ike, child).unwrap();
    p.drive();
    assert!(
        Pair::notices(&p.a_out).is_empty(),
        "{:?}",
        Pair::notices(&p.a_out)
    );
    assert_eq!(Pair::installs(&p.a_out).len(), 2);
    assert_matching_children(Pair::installs(&p.a_out)[1], Pair::installs(&p.b_out)[1]);
}

#[test]
fn ike_rekey_moves_children_and_retires_the_old_sa() {
    for initiator_rekeys in [true, false] {
        let mut p = site_pair(
            &["aes256gcm16-prfsha256-x25519"],
            &["aes256gcm16-prfsha256-x25519"],
            &["aes256gcm16"],
        );
        up(&mut p);
        let children_before = child_ids(&p.a);
        let (old_a, old_b) = (p.a.sas().next().unwrap().id, p.b.sas().next().unwrap().id);
        if initiator_rekeys {
            p.a.rekey_ike(p.now, old_a).unwrap();
        } else {
            p.b.rekey_ike(p.now, old_b).unwrap();
        }
        p.drive();
        assert_eq!(
            (p.a.sas().count(), p.b.sas().count()),
            (1, 1),
            "old IKE SAs deleted"
        );
        let (na, nb) = (p.a.sas().next().unwrap(), p.b.sas().next().unwrap());
        assert!(na.id != old_a && nb.id != old_b);
        assert!(na.is_established() && nb.is_established());
        assert_eq!(
            (na.spi_i, na.spi_r),
            (nb.spi_i, nb.spi_r),
            "both sides agree on the new SPIs"
        );
        assert_eq!(
            child_ids(&p.a),
            children_before,
            "children moved, not re-created"
        );
        assert!(
            Pair::removes(&p.a_out).is_empty() && Pair::removes(&p.b_out).is_empty(),
            "no child left the kernel"
        );
        assert_eq!(Pair::downs(&p.a_out), vec![DownReason::Rekeyed]);
        assert_eq!(Pair::downs(&p.b_out), vec![DownReason::Rekeyed]);
        // The new SA works: a child rekey and a delete go through it.
        let (ike, child) = (na.id, na.children[0].id);
        p.a.rekey_child(p.now, ike, child).unwrap();
        p.drive();
        assert_eq!(Pair::installs(&p.b_out).len(), 2);
        p.a.delete(p.now, ike).unwrap();
        p.drive();
        assert_eq!(p.a.sas().count() + p.b.sas().count(), 0);
        assert_eq!(
            Pair::removes(&p.b_out).len(),
            2,
            "the rekeyed child's old pair, then the new one"
        );
    }
}

#[test]
fn ike_sa_rekeys_itself_before_its_lifetime() {
    let mut p = site_pair(
        &["aes256gcm16-prfsha256-x25519"],
        &["aes256gcm16-prfsha256-x25519"],
        &["aes256gcm16"],
    );
    up(&mut p);
    let first = p.a.sas().next().unwrap().id;
    let start = p.now;
    while p.a.sas().next().map(|s| s.id) == Some(first) {
        assert!(p.step_time());
    }
    // 24 h lifetime: the original initiator rekeys at 90%.
    let took = p.now - start;
    assert!(
        took >= Duration::from_secs(77_760) && took < Duration::from_secs(86_400),
        "{took:?}"
    );
    assert_eq!(Pair::downs(&p.a_out), vec![DownReason::Rekeyed]);
}

#[test]
fn child_rekey_queued_during_an_ike_rekey_follows_the_children() {
    // The kernel's soft expiry of a child and the IKE SA's rekey timer fire together
    // (equal lifetimes): the child rekey must still happen, on the successor IKE SA.
    let mut p = site_pair(
        &["aes256gcm16-prfsha256-x25519"],
        &["aes256gcm16-prfsha256-x25519"],
        &["aes256gcm16"],
    );
    up(&mut p);
    let (ike, child) = (
        p.a.sas().next().unwrap().id,
        p.a.sas().next().unwrap().children[0].id,
    );
    p.a.rekey_ike(p.now, ike).unwrap(); // outstanding: the IKE rekey
    p.a.rekey_child(p.now, ike, child).unwrap(); // queued behind it on the old SA
    p.drive();
    assert_eq!(p.a.sas().count(), 1);
    let ia = Pair::installs(&p.a_out);
    assert_eq!(ia.len(), 2, "the child was rekeyed on the new IKE SA");
    assert_eq!(ia[1].replaces, Some(child));
    assert_eq!(
        child_ids(&p.a),
        vec![(ia[1].inbound_spi, ia[1].outbound_spi)]
    );
    assert_eq!(
        child_ids(&p.b),
        vec![(ia[1].outbound_spi, ia[1].inbound_spi)]
    );
}

#[test]
fn a_hard_expired_child_is_brought_up_again() {
    let mut p = site_pair(
        &["aes256gcm16-prfsha256-x25519"],
        &["aes256gcm16-prfsha256-x25519"],
        &["aes256gcm16"],
    );
    up(&mut p);
    let (ike, child) = (
        p.a.sas().next().unwrap().id,
        p.a.sas().next().unwrap().children[0].id,
    );
    p.a.child_expired(p.now, ike, child);
    p.drive();
    assert_eq!(Pair::removes(&p.a_out).len(), 1);
    assert_eq!(Pair::removes(&p.b_out).len(), 1);
    assert_eq!(
        Pair::installs(&p.a_out).len(),
        2,
        "a new child for the same configuration"
    );
    assert_eq!(p.a.sas().next().unwrap().children.len(), 1);
    assert_eq!(p.b.sas().next().unwrap().children.len(), 1);
}

/// The kernel names an expired SA by SPI only; the engine finds the child, through an IKE
/// SA rekey that moved it too (the daemon keeps no map of its own).
#[test]
fn kernel_expiries_are_routed_by_spi() {
    let mut p = site_pair(
        &["aes256gcm16-prfsha256-x25519"],
        &["aes256gcm16-prfsha256-x25519"],
        &["aes256gcm16"],
    );
    up(&mut p);
    let old_ike = p.a.sas().next().unwrap().id;
    p.a.rekey_ike(p.now, old_ike).unwrap();
    p.drive();
    let sa = p.a.sas().next().unwrap();
    assert_ne!(sa.id, old_ike, "the child moved to the successor");
    let c = sa.children[0].clone();
    let (here, there) = (addr(A).ip(), addr(B).ip());
    // An SPI is our inbound SA's only when the SA goes to us: the peer picks the outbound
    // ones, and may pick one we use too.
    assert_eq!(p.a.kernel_expired(p.now, c.inbound_spi, there, false), None);
    assert_eq!(p.a.kernel_expired(p.now, c.outbound_spi, here, false), None);
    assert_eq!(p.a.kernel_expired(p.now, 0x0bad_cafe, here, false), None);
    // Soft, named by our inbound SA: a rekey, make before break.
    assert_eq!(
        p.a.kernel_expired(p.now, c.inbound_spi, here, false),
        Some(c.id)
    );
    p.drive();
    let removed = Pair::removes(&p.a_out);
    assert_eq!(removed.len(), 1);
    assert!(removed[0].child == c.id && !removed[0].expired);
    assert_eq!(removed[0].child_name, "net");
    let n = p.a.sas().next().unwrap().children[0].clone();
    assert_ne!(n.id, c.id);
    // Hard, both SAs of the pair (outbound first): one delete, one new child.
    p.a_out.clear();
    assert_eq!(
        p.a.kernel_expired(p.now, n.outbound_spi, there, true),
        Some(n.id)
    );
    assert_eq!(
        p.a.kernel_expired(p.now, n.inbound_spi, here, true),
        Some(n.id)
    );
    p.drive();
    let removed = Pair::removes(&p.a_out);
    assert_eq!(removed.len(), 1);
    assert!(
        removed[0].child == n.id && removed[0].expired,
        "Session-Timeout"
    );
    assert_eq!(Pair::installs(&p.a_out).len(), 1, "brought up again");
    assert_eq!(p.a.sas().next().unwrap().children.len(), 1);
    assert_eq!(
        p.a.kernel_expired(p.now, n.inbound_spi, here, true),
        None,
        "gone"
    );
}

#[test]
fn rekey_responder_switches_outbound_only_when_the_old_pair_is_deleted() {
    let mut p = site_pair(
        &["aes256gcm16-prfsha256-x25519"],
        &["aes256gcm16-prfsha256-x25519"],
        &["aes256gcm16"],
    );
    up(&mut p);
    let (ike, child) = (
        p.a.sas().next().unwrap().id,
        p.a.sas().next().unwrap().children[0].id,
    );
    p.a.rekey_child(p.now, ike, child).unwrap();
    p.drive();
    let (ia, ib) = (Pair::installs(&p.a_out), Pair::installs(&p.b_out));
    assert!(
        !ia[1].defer_outbound,
        "the rekey initiator sends on the new SA at once"
    );
    assert!(
        ib[1].defer_outbound,
        "the responder waits for the initiator's delete"
    );
    let pos = |f: &dyn Fn(&Output) -> bool| p.b_out.iter().position(f).unwrap();
    let activate =
        pos(&|o| matches!(o, Output::ActivateOutbound { child, .. } if *child == ib[1].child));
    let remove_old = pos(&|o| matches!(o, Output::RemoveChild(c) if c.child == ib[0].child));
    assert!(
        activate < remove_old,
        "new outbound SA before the old pair leaves"
    );
    assert!(!p.b.sas().next().unwrap().children[0].outbound_pending);
}

/// The kernel as the daemon drives it (`daemon/kernel.rs`): pairs in, deferred outbound SAs
/// activated, pairs out. Applying a side's outputs in order gives what its kernel holds.
#[derive(Default, Debug)]
struct KernelModel {
    /// child → (inbound SPI, outbound SPI, outbound SA installed)
    pairs: std::collections::BTreeMap<u64, (u32, u32, bool)>,
    /// Problems a real kernel would refuse or leak (a removal of nothing, a double install).
    errors: Vec<String>,
}

impl KernelModel {
    fn apply(&mut self, o: &Output) {
        let error = match o {
            Output::InstallChild(c) => {
                let pair = (c.inbound_spi, c.outbound_spi, !c.defer_outbound);
                let twice = self.pairs.insert(c.child, pair).is_some();
                twice.then(|| format!("child {} installed twice", c.child))
            }
            Output::ActivateOutbound { child, .. } => match self.pairs.get_mut(child) {
                Some(p) => {
                    p.2 = true;
                    None
                }
                None => Some(format!("activate of unknown child {child}")),
            },
            Output::RemoveChild(c) => {
                let gone = self.pairs.remove(&c.child).is_none();
                gone.then(|| format!("removal of unknown child {}", c.child))
            }
            _ => None,
        };
        self.errors.extend(error);
    }

    fn of(out: &[Output]) -> KernelModel {
        let mut k = KernelModel::default();
        for o in out {
            k.apply(o);
        }
        k
    }
}

/// Both kernels hold exactly one pair for the one flow, the two match, both send on it,
/// and each engine knows exactly that pair.
fn assert_one_matching_pair(p: &Pair, what: &str) {
    let (ka, kb) = (KernelModel::of(&p.a_out), KernelModel::of(&p.b_out));
    assert!(
        ka.errors.is_empty() && kb.errors.is_empty(),
        "{what}: {ka:?} {kb:?}"
    );
    assert_eq!(
        (ka.pairs.len(), kb.pairs.len()),
        (1, 1),
        "{what}: {ka:?} {kb:?}"
    );
    let (&(ai, ao, a_sends), &(bi, bo, b_sends)) = (
        ka.pairs.values().next().unwrap(),
        kb.pairs.values().next().unwrap(),
    );
    assert_eq!((ai, ao), (bo, bi), "{what}: the pairs match");
    assert!(a_sends && b_sends, "{what}: both outbound SAs installed");
    assert_eq!(child_ids(&p.a), vec![(ai, ao)], "{what}");
    assert_eq!(child_ids(&p.b), vec![(bi, bo)], "{what}");
}

/// Issue 9, bug 1: the successor of an IKE SA rekey never scheduled its own rekey, so with
/// a 24 h lifetime a 3-day run rekeyed once and the SA then aged past its lifetime.
#[test]
fn a_rekeyed_ike_sa_rekeys_again() {
    let (mut pa, mut pb) = site_policies(&GCM, &GCM, &["aes256gcm16"]);
    // No liveness checks: the rekey timer must be the one that keeps the clock moving.
    pa.dpd = None;
    pb.dpd = None;
    let lifetime = pa.ike_lifetime;
    let mut p = Pair::new(pa, pb);
    up(&mut p);
    let end = p.now + Duration::from_secs(3 * 86_400);
    while p.now < end && p.step_time() {}
    let rekeys = p
        .a_out
        .iter()
        .filter(|o| matches!(o, Output::IkeRekeyed { .. }))
        .count();
    assert!(
        rekeys >= 3,
        "{rekeys} IKE SA rekeys in 3 days of 24 h lifetimes"
    );
    for sa in p.a.sas().chain(p.b.sas()) {
        let age = p.now - sa.established.unwrap();
        assert!(age < lifetime, "an IKE SA aged {age:?}, past its lifetime");
    }
    assert_eq!(child_ids(&p.a).len(), 1, "the child moved along every time");
    // IkeUp and IkeRekeyed announce the real deadline: each rekey starts at the earlier of
    // the two ends' announced deadlines for the SA it replaces.
    let (ra, rb) = (p.rekeys_announced(true), p.rekeys_announced(false));
    assert_eq!(ra.len(), rekeys);
    assert_eq!(rb.len(), rekeys);
    for ((at, deadline_a), (_, deadline_b)) in ra.iter().zip(&rb) {
        assert_eq!(*at, (*deadline_a).min(*deadline_b));
    }
}

/// Issue 9, bug 2 (RFC 7296 2.8.1): both ends rekey the same child at once. Both exchanges
/// complete; the pair whose exchange holds the lowest of the four nonces is deleted by the
/// end that started it, so one pair per flow remains. It used to leave two (3 installs, 1
/// removal a side) and no notice.
#[test]
fn crossing_child_rekeys_leave_one_pair_per_flow() {
    let mut winners = std::collections::BTreeSet::new();
    for seed in 0..8 {
        let (pa, pb) = site_policies(&GCM, &GCM, &["aes256gcm16"]);
        let mut p = Pair::seeded(pa, pb, seed);
        up(&mut p);
        for e in [&mut p.a, &mut p.b] {
            let sa = e.sas().next().unwrap();
            let (ike, child) = (sa.id, sa.children[0].id);
            e.rekey_child(p.now, ike, child).unwrap();
        }
        p.drive();
        let what = format!("seed {seed}");
        assert_one_matching_pair(&p, &what);
        for out in [&p.a_out, &p.b_out] {
            assert_eq!(
                (Pair::installs(out).len(), Pair::removes(out).len()),
                (3, 2),
                "{what}: both new pairs were made, the old and the redundant one removed"
            );
            assert!(
                Pair::notices(out).is_empty(),
                "{what}: {:?}",
                Pair::notices(out)
            );
        }
        // The survivor on A was installed with its outbound SA at once iff A started it.
        let survivor = p.a.sas().next().unwrap().children[0].id;
        let install = Pair::installs(&p.a_out)
            .into_iter()
            .find(|c| c.child == survivor)
            .unwrap();
        winners.insert(if install.defer_outbound { "b" } else { "a" });
    }
    assert_eq!(winners.len(), 2, "each side's rekey survived for some seed");
}

/// Issue 9, bug 2 for the IKE SA (RFC 7296 2.8.2): both ends rekey the IKE SA at once. Both
/// exchanges complete, the new IKE SA with the lowest nonce is deleted by its initiator, and
/// the children move to the other one. It used to be refused with TEMPORARY_FAILURE by both.
#[test]
fn crossing_ike_rekeys_leave_one_ike_sa() {
    let mut winners = std::collections::BTreeSet::new();
    for seed in 0..8 {
        let (pa, pb) = site_policies(&GCM, &GCM, &["aes256gcm16"]);
        let mut p = Pair::seeded(pa, pb, seed);
        up(&mut p);
        let what = format!("seed {seed}");
        let children_before = child_ids(&p.a);
        let (old_a, old_b) = (p.a.sas().next().unwrap().id, p.b.sas().next().unwrap().id);
        p.a.rekey_ike(p.now, old_a).unwrap();
        p.b.rekey_ike(p.now, old_b).unwrap();
        p.drive();
        for out in [&p.a_out, &p.b_out] {
            assert!(
                Pair::notices(out).is_empty(),
                "{what}: {:?}",
                Pair::notices(out)
            );
        }
        assert_eq!((p.a.sas().count(), p.b.sas().count()), (1, 1), "{what}");
        let (na, nb) = (p.a.sas().next().unwrap(), p.b.sas().next().unwrap());
        assert!(na.id != old_a && nb.id != old_b, "{what}: rekeyed");
        assert!(na.is_established() && nb.is_established(), "{what}");
        assert_eq!(
            (na.spi_i, na.spi_r),
            (nb.spi_i, nb.spi_r),
            "{what}: the same new SA"
        );
        assert_eq!(child_ids(&p.a), children_before, "{what}: children moved");
        assert!(Pair::removes(&p.a_out).is_empty() && Pair::removes(&p.b_out).is_empty());
        for out in [&p.a_out, &p.b_out] {
            // The daemon hears of one rekey and one IKE SA down: the redundant SA was
            // never announced, so its end is not either.
            let rekeyed = out
                .iter()
                .filter(|o| matches!(o, Output::IkeRekeyed { .. }))
                .count();
            assert_eq!(rekeyed, 1, "{what}");
            assert_eq!(Pair::downs(out), vec![DownReason::Rekeyed], "{what}");
        }
        winners.insert(if na.role == super::sa::Role::Initiator {
            "a"
        } else {
            "b"
        });
        // The survivor works: a child rekey and a delete go through it.
        let (ike, child) = (na.id, na.children[0].id);
        p.a.rekey_child(p.now, ike, child).unwrap();
        p.drive();
        assert_one_matching_pair(&p, &what);
        p.a.delete(p.now, ike).unwrap();
        p.drive();
        assert_eq!(p.a.sas().count() + p.b.sas().count(), 0, "{what}");
    }
    assert_eq!(winners.len(), 2, "each side's rekey survived for some seed");
}

/// An IKE SA rekey crossing a child rekey: each end refuses the other's with
/// TEMPORARY_FAILURE (RFC 7296 2.25.2; children must not move mid-exchange) and both try
/// again after a random delay, so both rekeys happen and one pair per flow remains.
#[test]
fn ike_and_child_rekeys_crossing_are_both_retried() {
    for seed in 0..4 {
        let (pa, pb) = site_policies(&GCM, &GCM, &["aes256gcm16"]);
        let mut p = Pair::seeded(pa, pb, seed);
        up(&mut p);
        let what = format!("seed {seed}");
        let old_a = p.a.sas().next().unwrap().id;
        let (ike_b, child_b) = {
            let sa = p.b.sas().next().unwrap();
            (sa.id, sa.children[0].id)
        };
        p.a.rekey_ike(p.now, old_a).unwrap();
        p.b.rekey_child(p.now, ike_b, child_b).unwrap();
        p.drive();
        let refused = |out: &[Output]| {
            Pair::notices(out)
                .iter()
                .any(|n| n.contains("TEMPORARY_FAILURE; trying again"))
        };
        assert!(
            refused(&p.a_out) && refused(&p.b_out),
            "{what}: both refused"
        );
        let start = p.now;
        while p.now < start + Duration::from_secs(60) && p.step_time() {}
        assert_eq!((p.a.sas().count(), p.b.sas().count()), (1, 1), "{what}");
        assert_ne!(
            p.a.sas().next().unwrap().id,
            old_a,
            "{what}: IKE SA rekeyed"
        );
        assert_eq!(Pair::installs(&p.a_out).len(), 2, "{what}: child rekeyed");
        assert_one_matching_pair(&p, &what);
    }
}

/// Issue 9, timers that scale: each IKE SA's next deadline is kept in order, so a datagram,
/// a command or a timer visits only the IKE SAs it concerns, with 10 IKE SAs or 10,000.
/// (Before, every `poll_timeout` and `handle_timeout` scanned every SA for its deadline and
/// every input scanned them all again for the dead.)
#[test]
fn ten_thousand_idle_sas_cost_what_ten_do() {
    let mut costs = Vec::new();
    for n in [10, 10_000] {
        let (pa, pb) = site_policies(&GCM, &GCM, &["aes256gcm16"]);
        let mut p = Pair::new(pa, pb);
        for _ in 0..n {
            p.a.initiate(p.now, "b", addr(A)).unwrap();
            p.drive();
        }
        assert_eq!(p.b.sas().filter(|s| s.is_established()).count(), n);
        let (a0, b0) = (p.a.visits(), p.b.visits());
        // Nothing is due yet: asking costs nothing.
        assert!(p.a.poll_timeout().unwrap() > p.now);
        p.a.handle_timeout(p.now);
        p.b.handle_timeout(p.now);
        assert_eq!(
            (p.a.visits(), p.b.visits()),
            (a0, b0),
            "{n} SAs: idle timers"
        );
        // One child rekey: a command on A, a request and a Delete into B, their responses
        // into A.
        let sa = p.a.sas().next().unwrap();
        let (ike, child) = (sa.id, sa.children[0].id);
        p.a.rekey_child(p.now, ike, child).unwrap();
        p.drive();
        costs.push((p.a.visits() - a0, p.b.visits() - b0));
    }
    assert_eq!(
        costs[0], costs[1],
        "the same visits for 10 and 10,000 IKE SAs"
    );
    // Each input: the SA handled, then its deadline moved.
    assert_eq!(costs[1], (6, 4), "{costs:?}");
}

/// A random source that fails (`Err`) or returns only zeros once `broken` is set.
struct BrokenRng {
    inner: TestRng,
    broken: std::sync::Arc<std::sync::atomic::AtomicU8>,
}

const RNG_OK: u8 = 0;
const RNG_ERR: u8 = 1;
const RNG_ZEROS: u8 = 2;

impl RngSource for BrokenRng {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), super::crypto::CryptoError> {
        match self.broken.load(std::sync::atomic::Ordering::Relaxed) {
            RNG_OK => self.inner.fill(dest),
            RNG_ERR => Err(super::crypto::CryptoError::Rng),
            _ => {
                dest.fill(0);
                Ok(())
            }
        }
    }
}

fn fatal_outputs(ep: &mut Endpoint) -> (usize, usize) {
    let (mut fatal, mut transmits) = (0, 0);
    while let Some(o) = ep.poll_output() {
        match o {
            Output::Fatal(super::endpoint::Fatal::Rng(_)) => fatal += 1,
            Output::Transmit(_) => transmits += 1,
            _ => {}
        }
    }
    (fatal, transmits)
}

/// An RNG failure (an error, or a source stuck at zero, which made the SPI helpers loop
/// forever) stops the engine with one typed Output::Fatal, sends nothing, and every later
/// input is ignored.
#[test]
fn a_failing_rng_is_fatal_not_an_endless_loop() {
    for mode in [RNG_ERR, RNG_ZEROS] {
        let suite = ["aes256gcm16-prfsha256-x25519"];
        let pols = || site_policies(&suite, &suite, &["aes256gcm16"]).0;
        let broken = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(mode));
        let mut ep = Endpoint::new(
            vec![pols()],
            Box::new(BrokenRng {
                inner: TestRng(7),
                broken: broken.clone(),
            }),
        );
        let now = Instant::now();
        let e = ep.initiate(now, "b", addr(A)).unwrap_err();
        assert!(matches!(e, super::CommandError::Fatal(_)), "{e}");
        assert_eq!(fatal_outputs(&mut ep), (1, 0), "mode {mode}");
        assert!(ep.fatal().is_some());
        // Still refused, and announced only once.
        assert!(ep.initiate(now, "b", addr(A)).is_err());
        assert_eq!(fatal_outputs(&mut ep), (0, 0));

        // Mid-life: the handshake works, then the source breaks.
        let mut p = site_pair(
            &["aes256gcm16-prfsha256-x25519"],
            &["aes256gcm16-prfsha256-x25519"],
            &["aes256gcm16"],
        );
        let broken = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(RNG_OK));
        p.a = Endpoint::new(
            vec![pols()],
            Box::new(BrokenRng {
                inner: TestRng(11),
                broken: broken.clone(),
            }),
        );
        up(&mut p);
        assert_eq!(p.a.sas().next().unwrap().children.len(), 1);
        let (ike, child) = (
            p.a.sas().next().unwrap().id,
            p.a.sas().next().unwrap().children[0].id,
        );
        broken.store(mode, std::sync::atomic::Ordering::Relaxed);
        p.a.rekey_child(p.now, ike, child).unwrap();
        assert_eq!(
            fatal_outputs(&mut p.a),
            (1, 0),
            "no request with a made-up nonce"
        );
        assert!(matches!(
            p.a.delete(p.now, ike),
            Err(super::CommandError::Fatal(_))
        ));
        // The responder side: an IKE_SA_INIT to an endpoint whose source is broken.
        let mut b = Endpoint::new(
            vec![site_policies(&suite, &suite, &["aes256gcm16"]).1],
            Box::new(BrokenRng {
                inner: TestRng(13),
                broken: std::sync::Arc::new(std::sync::atomic::AtomicU8::new(mode)),
            }),
        );
        let mut a = Endpoint::new(vec![pols()], Box::new(TestRng(17)));
        a.initiate(now, "b", addr(A)).unwrap();
        let Some(Output::Transmit(t)) = a.poll_output() else {
            panic!("no IKE_SA_INIT");
        };
        b.handle_datagram(now, addr(B), addr(A), &t.data);
        assert_eq!(fatal_outputs(&mut b), (1, 0), "nothing answered");
        b.handle_datagram(now, addr(B), addr(A), &t.data);
        assert_eq!(fatal_outputs(&mut b), (0, 0), "ignored once stopped");
    }
}

/// Takes one datagram `from` sends, if any (other outputs are dropped).
fn next_datagram(from: &mut Endpoint) -> Option<super::endpoint::Transmit> {
    while let Some(o) = from.poll_output() {
        if let Output::Transmit(t) = o {
            return Some(t);
        }
    }
    None
}

/// A restarted responder answers requests on IKE SAs it no longer knows with an
/// unprotected INVALID_IKE_SPI (RFC 7296 2.21.4), a few a second at most, and never
/// answers a response or an INVALID_IKE_SPI.
#[test]
fn a_restarted_end_answers_invalid_ike_spi() {
    use super::codec::{Header, Message};
    let mut p = site_pair(
        &["aes256gcm16-prfsha256-x25519"],
        &["aes256gcm16-prfsha256-x25519"],
        &["aes256gcm16"],
    );
    up(&mut p);
    let sa = p.a.sas().next().unwrap();
    let (ike, child, spis) = (sa.id, sa.children[0].id, (sa.spi_i, sa.spi_r));
    // B restarts: same configuration, no state.
    let pb = site_policies(
        &["aes256gcm16-prfsha256-x25519"],
        &["aes256gcm16-prfsha256-x25519"],
        &["aes256gcm16"],
    )
    .1;
    p.b = Endpoint::new(vec![pb], Box::new(TestRng(99)));
    p.a.rekey_child(p.now, ike, child).unwrap();
    let req = next_datagram(&mut p.a).expect("A's CREATE_CHILD_SA");
    let req_h = Header::peek(&req.data).unwrap();
    p.b.handle_datagram(p.now, req.remote, req.local, &req.data);
    let answer = next_datagram(&mut p.b).expect("an INVALID_IKE_SPI answer");
    let m = Message::decode(&answer.data).unwrap();
    assert_eq!((m.header.spi_i, m.header.spi_r), spis, "SPIs copied");
    assert_eq!(m.header.message_id, req_h.message_id, "message ID copied");
    assert_eq!(m.header.exchange, ExchangeType::INFORMATIONAL);
    assert!(m.header.flags.response && !m.header.flags.initiator);
    assert!(m.find_notify(NotifyType::INVALID_IKE_SPI).is_some());
    assert_eq!(
        answer.remote, req.local,
        "back to where the request came from"
    );
    assert!(p.b.sas().next().is_none(), "no state kept");

    // A keeps its SA: the notification is unauthenticated, so it only drops it.
    p.a.handle_datagram(p.now, answer.remote, answer.local, &answer.data);
    assert!(next_datagram(&mut p.a).is_none());
    assert!(p.a.sa(ike).is_some());
    // Our own INVALID_IKE_SPI, or any response, fed back is never answered.
    p.b.handle_datagram(p.now, answer.remote, answer.local, &answer.data);
    assert!(
        next_datagram(&mut p.b).is_none(),
        "a response is not answered"
    );
    let mut as_request = m.clone();
    as_request.header.flags.response = false;
    let bytes = as_request.encode().unwrap();
    p.b.handle_datagram(p.now, req.remote, req.local, &bytes);
    assert!(
        next_datagram(&mut p.b).is_none(),
        "an INVALID_IKE_SPI is not answered"
    );

    // A flood gets a bounded number of answers per second.
    let count = |b: &mut Endpoint, now| {
        for _ in 0..100 {
            b.handle_datagram(now, req.remote, req.local, &req.data);
        }
        let mut n = 0;
        while next_datagram(b).is_some() {
            n += 1;
        }
        n
    };
    let t0 = p.now + Duration::from_secs(5);
    assert_eq!(count(&mut p.b, t0), 10);
    assert_eq!(count(&mut p.b, t0 + Duration::from_millis(500)), 0);
    assert_eq!(count(&mut p.b, t0 + Duration::from_millis(1000)), 10);
}

/// INITIAL_CONTACT (RFC 7296 2.4, 3.16): sent in the first IKE_AUTH to a peer only; on it,
/// the responder drops the other IKE SAs of that identity (a restart), without a Delete.
#[test]
fn initial_contact_clears_a_restarted_peers_stale_sas() {
    let suite = ["aes256gcm16-prfsha256-x25519"];
    let mut p = site_pair(&suite, &suite, &["aes256gcm16"]);
    up(&mut p);
    let old = p.b.sas().next().unwrap().id;
    let old_child = p.b.sas().next().unwrap().children[0].id;
    // A second IKE SA while the first is up: no INITIAL_CONTACT, both stay.
    p.a.initiate(p.now, "b", addr(A)).unwrap();
    p.drive();
    assert_eq!(
        p.b.sas().count(),
        2,
        "no INITIAL_CONTACT from A's second IKE SA"
    );
    assert!(Pair::downs(&p.b_out).is_empty());
    // A restarts and connects again: B's two old IKE SAs go, silently.
    let pa = site_policies(&suite, &suite, &["aes256gcm16"]).0;
    p.a = Endpoint::new(vec![pa], Box::new(TestRng(1234)));
    p.b_out.clear();
    p.a.initiate(p.now, "b", addr(A)).unwrap();
    let mut sent_by_b = 0;
    for _ in 0..10 {
        while let Some(o) = p.a.poll_output() {
            if let Output::Transmit(t) = o {
                p.b.handle_datagram(p.now, t.remote, t.local, &t.data);
            }
        }
        while let Some(o) = p.b.poll_output() {
            match o {
                Output::Transmit(t) => {
                    sent_by_b += 1;
                    p.a.handle_datagram(p.now, t.remote, t.local, &t.data);
                }
                other => p.b_out.push(other),
            }
        }
    }
    assert_eq!(
        sent_by_b, 2,
        "IKE_SA_INIT and IKE_AUTH answers only: no Delete"
    );
    assert_eq!(
        Pair::downs(&p.b_out),
        vec![DownReason::PeerRestarted, DownReason::PeerRestarted]
    );
    assert_eq!(p.b.sas().count(), 1);
    assert_ne!(p.b.sas().next().unwrap().id, old);
    let removed: Vec<_> = Pair::removes(&p.b_out).iter().map(|r| r.child).collect();
    assert!(removed.contains(&old_child) && removed.len() == 2);
    // The new child was installed before the stale ones left.
    let first_install = p
        .b_out
        .iter()
        .position(|o| matches!(o, Output::InstallChild(_)))
        .unwrap();
    let first_remove = p
        .b_out
        .iter()
        .position(|o| matches!(o, Output::RemoveChild(_)))
        .unwrap();
    assert!(first_install < first_remove);
    assert_eq!(p.a.sas().filter(|s| s.is_established()).count(), 1);
}

/// An SA held for days keeps only what it still needs (issue 9: memory per held IKE SA):
/// not the IKE_SA_INIT messages AUTH signed, nor SK_p or the raw SK_e/SK_a; SK_d stays and
/// a rekey still works (`ike_rekey_*` and the simulation).
#[test]
fn an_established_sa_keeps_only_what_it_still_needs() {
    let mut p = site_pair(&GCM, &GCM, &["aes256gcm16"]);
    up(&mut p);
    for sa in p.a.sas().chain(p.b.sas()) {
        assert!(sa.is_established());
        assert!(sa.init_request.is_empty() && sa.init_response.is_empty());
        let k = &sa.keys.as_ref().unwrap().keys;
        assert!(
            k.sk_pi.is_empty() && k.sk_pr.is_empty() && k.sk_ei.is_empty() && k.sk_ai.is_empty()
        );
        assert_eq!(k.sk_d.len(), 32);
        assert!(sa.outstanding.is_none());
    }
}

/// The responder B of a site pair that also takes any address (a road-warrior entry), so
/// a flood from anywhere reaches the IKE_SA_INIT intake, with `dos` as its DoS bounds.
fn dos_pair(dos: super::DosConfig) -> Pair {
    let (pa, pb) = site_policies(&GCM, &GCM, &["aes256gcm16"]);
    let mut rw = pb.clone();
    rw.name = "rw".into();
    rw.remote = RemoteMatch::Any;
    let mut p = Pair::new(pa, pb.clone());
    p.b = Endpoint::new(vec![pb, rw], Box::new(TestRng(77)));
    p.b.set_dos(dos);
    p
}

/// An attacker's IKE_SA_INIT: a real one's payloads (so the responder gets as far as DH)
/// under a new SPIi, with `cookie` first if given (2.6).
struct Flood {
    template: super::codec::Message,
}

impl Flood {
    fn new() -> Flood {
        let (pa, _) = site_policies(&GCM, &GCM, &["aes256gcm16"]);
        let mut e = Endpoint::new(vec![pa], Box::new(TestRng(5)));
        e.initiate(Instant::now(), "b", addr(A)).unwrap();
        let t = next_datagram(&mut e).unwrap();
        Flood {
            template: super::codec::Message::decode(&t.data).unwrap(),
        }
    }

    fn init(&self, spi: u64, cookie: Option<&[u8]>) -> Vec<u8> {
        let mut m = self.template.clone();
        m.header.spi_i = spi;
        if let Some(c) = cookie {
            m.payloads.insert(
                0,
                super::codec::Payload::Notify(super::codec::NotifyPayload::new(
                    NotifyType::COOKIE,
                    c.to_vec(),
                )),
            );
        }
        m.encode().unwrap()
    }
}

/// The i-th flood source: many addresses, many ports.
fn flood_src(i: u32) -> SocketAddr {
    SocketAddr::new(
        std::net::Ipv4Addr::from(0x0a00_0000 + i).into(),
        1024 + (i % 50_000) as u16,
    )
}

/// B's datagrams since the last call, split into COOKIE-only answers and the rest.
fn drain_answers(b: &mut Endpoint) -> (Vec<super::endpoint::Transmit>, usize) {
    let (mut cookies, mut other) = (Vec::new(), 0);
    while let Some(o) = b.poll_output() {
        if let Output::Transmit(t) = o {
            let m = super::codec::Message::decode(&t.data).unwrap();
            if m.find_notify(NotifyType::COOKIE).is_some() {
                assert_eq!(m.payloads.len(), 1, "a COOKIE answer carries nothing else");
                assert_eq!(m.header.spi_r, 0, "and no SPI of ours: no state");
                cookies.push(t);
            } else {
                other += 1;
            }
        }
    }
    (cookies, other)
}

fn cookie_of(t: &super::endpoint::Transmit) -> Vec<u8> {
    let m = super::codec::Message::decode(&t.data).unwrap();
    m.find_notify(NotifyType::COOKIE).unwrap().data.clone()
}

/// RFC 7296 2.6 under a flood: past `cookie_threshold` half-open SAs every IKE_SA_INIT
/// without a valid cookie gets a COOKIE and leaves nothing behind; the real initiator
/// echoes its cookie and comes up; the flood's half-open SAs time out.
#[test]
fn a_flood_gets_cookies_while_the_real_initiator_comes_up() {
    let dos = super::DosConfig::default();
    let mut p = dos_pair(dos);
    let flood = Flood::new();
    let b_local = addr(B);
    const N: u32 = 20_000;
    for i in 0..N {
        p.b.handle_datagram(
            p.now,
            b_local,
            flood_src(i),
            &flood.init(u64::from(i) + 1, None),
        );
    }
    let (cookies, answered) = drain_answers(&mut p.b);
    assert_eq!(
        answered, 10,
        "the first cookie_threshold requests are answered in full"
    );
    assert_eq!(cookies.len(), (N - 10) as usize);
    assert_eq!(p.b.sas().count(), 10, "a COOKIE keeps no state");
    let s = p.b.dos_stats();
    assert_eq!((s.half_open, s.cookies_sent), (10, u64::from(N - 10)));

    // A wrong cookie gets a fresh one, not an SA.
    let forged = vec![0u8; super::half_open::COOKIE_LEN];
    p.b.handle_datagram(
        p.now,
        b_local,
        flood_src(1),
        &flood.init(100_000, Some(&forged)),
    );
    // Another source's cookie is refused too (it is bound to address, SPIi and Ni).
    let stolen = cookie_of(&cookies[0]);
    p.b.handle_datagram(
        p.now,
        b_local,
        flood_src(99),
        &flood.init(11, Some(&stolen)),
    );
    let (again, answered) = drain_answers(&mut p.b);
    assert_eq!((again.len(), answered), (2, 0));
    assert_eq!(p.b.dos_stats().cookies_invalid, 2);

    // The real initiator: COOKIE, the same request again with it first (2.6), IKE_AUTH,
    // up.
    up(&mut p);
    assert_eq!(Pair::ups(&p.a_out), 1, "{:?}", Pair::notices(&p.a_out));
    assert_eq!(Pair::ups(&p.b_out), 1);
    let s = p.b.dos_stats();
    assert_eq!(s.cookies_valid, 1);
    assert_eq!(s.half_open, 10, "the real SA is no longer half-open");

    // A source that echoes its own cookie (it can receive at its address) gets an SA.
    let t = &cookies[5];
    let spi = super::codec::Header::peek(&t.data).unwrap().spi_i;
    p.b.handle_datagram(
        p.now,
        b_local,
        t.remote,
        &flood.init(spi, Some(&cookie_of(t))),
    );
    let (c, answered) = drain_answers(&mut p.b);
    assert_eq!((c.len(), answered), (0, 1));
    assert_eq!(p.b.dos_stats().half_open, 11);

    // No IKE_AUTH ever comes for the flood: gone after half_open_timeout.
    let until = p.now + dos.half_open_timeout;
    while p.now < until && p.step_time() {}
    p.b.handle_timeout(until);
    let _ = drain_answers(&mut p.b);
    assert_eq!(p.b.sas().count(), 1, "only the real IKE SA is left");
    assert_eq!(
        p.b.half_open_sizes(),
        (1, 0, 0),
        "only the real SA's entry for retransmitted IKE_SA_INITs"
    );
    let s = p.b.dos_stats();
    assert_eq!(
        (s.half_open, s.half_open_peak, s.half_open_failed),
        (0, 11, 11)
    );
    // Below the threshold again: no cookie needed.
    p.b.handle_datagram(p.now, b_local, flood_src(7), &flood.init(777, None));
    assert_eq!(drain_answers(&mut p.b).1, 1);
}

/// `block_threshold`: one address holds at most that many half-open SAs; the excess is
/// dropped unanswered while it lasts, other addresses are not affected.
#[test]
fn half_open_sas_per_address_are_bounded() {
    let dos = super::DosConfig {
        cookie_threshold: 0,
        block_threshold: 5,
        ..super::DosConfig::default()
    };
    let mut p = dos_pair(dos);
    let flood = Flood::new();
    let one = |port: u16| SocketAddr::new(flood_src(3).ip(), port);
    for i in 0..50u16 {
        p.b.handle_datagram(
            p.now,
            addr(B),
            one(2000 + i),
            &flood.init(u64::from(i) + 1, None),
        );
    }
    assert_eq!(drain_answers(&mut p.b), (Vec::new(), 5));
    assert_eq!(p.b.dos_stats().dropped_blocked, 45);
    // A retransmission of an admitted request still gets its cached answer.
    p.b.handle_datagram(p.now, addr(B), one(2000), &flood.init(1, None));
    assert_eq!(drain_answers(&mut p.b).1, 1);
    assert_eq!(p.b.dos_stats().dropped_blocked, 45);
    // The real initiator is elsewhere and comes up.
    up(&mut p);
    assert_eq!(Pair::ups(&p.b_out), 1);
    // Once they time out, the address may try again.
    p.now += dos.half_open_timeout;
    p.b.handle_timeout(p.now);
    let _ = drain_answers(&mut p.b); // B's liveness check on the real SA
    assert_eq!(p.b.dos_stats().half_open, 0);
    p.b.handle_datagram(p.now, addr(B), one(9000), &flood.init(900, None));
    assert_eq!(drain_answers(&mut p.b).1, 1);
}

/// `half_open_limit`: however many sources there are, and even if each echoes its
/// cookie, no more than that many half-open SAs are held (memory stays bounded).
#[test]
fn half_open_sas_in_all_are_bounded() {
    let dos = super::DosConfig {
        cookie_threshold: 10,
        block_threshold: 5,
        half_open_limit: 100,
        ..super::DosConfig::default()
    };
    let mut p = dos_pair(dos);
    let flood = Flood::new();
    for i in 0..2_000u32 {
        let (src, spi) = (flood_src(i), u64::from(i) + 1);
        p.b.handle_datagram(p.now, addr(B), src, &flood.init(spi, None));
        // A source that can receive echoes its cookie.
        let (c, _) = drain_answers(&mut p.b);
        if let Some(t) = c.first() {
            p.b.handle_datagram(p.now, addr(B), src, &flood.init(spi, Some(&cookie_of(t))));
            let _ = drain_answers(&mut p.b);
        }
    }
    let s = p.b.dos_stats();
    assert_eq!(p.b.sas().count(), 100);
    assert_eq!((s.half_open, s.dropped_limit), (100, 1_900));
    assert_eq!(s.cookies_valid, 1_990);
    let (by_spi, waiting, per_ip) = p.b.half_open_sizes();
    assert!(by_spi <= 100 && waiting <= 100 && per_ip <= 100);
    p.now += dos.half_open_timeout;
    p.b.handle_timeout(p.now);
    assert_eq!(p.b.sas().count(), 0);
    assert_eq!(p.b.half_open_sizes(), (0, 0, 0));
}

/// The initiator's side of 2.6: after a COOKIE it sends the same request again with the
/// cookie as the first payload and every other payload unchanged (the cookie covers its
/// Ni); a responder that keeps answering COOKIEs is given up on after five.
#[test]
fn the_initiator_echoes_cookies_unchanged_and_gives_up_on_endless_ones() {
    use super::codec::{Message, NotifyPayload, Payload};
    let (pa, _) = site_policies(&GCM, &GCM, &["aes256gcm16"]);
    let mut a = Endpoint::new(vec![pa], Box::new(TestRng(3)));
    let now = Instant::now();
    a.initiate(now, "b", addr(A)).unwrap();
    let first = Message::decode(&next_datagram(&mut a).unwrap().data).unwrap();
    let mut downs = Vec::new();
    for n in 0..6u8 {
        let cookie = vec![n; 20];
        let answer = Message {
            header: super::codec::Header {
                spi_r: 0,
                flags: super::codec::Flags {
                    initiator: false,
                    version: false,
                    response: true,
                },
                ..first.header
            },
            payloads: vec![Payload::Notify(NotifyPayload::new(
                NotifyType::COOKIE,
                cookie.clone(),
            ))],
        };
        a.handle_datagram(now, addr(A), addr(B), &answer.encode().unwrap());
        let mut sent = None;
        while let Some(o) = a.poll_output() {
            match o {
                Output::Transmit(t) => sent = Some(t),
                Output::IkeDown { reason, .. } => downs.push(reason),
                _ => {}
            }
        }
        let Some(t) = sent else {
            assert_eq!(n, 5, "gave up after five COOKIEs");
            break;
        };
        assert!(n < 5, "a sixth retry");
        let retry = Message::decode(&t.data).unwrap();
        assert_eq!(retry.header, first.header, "same SPIi, message ID 0");
        match &retry.payloads[0] {
            Payload::Notify(c) => assert_eq!((c.kind, &c.data), (NotifyType::COOKIE, &cookie)),
            other => panic!("first payload {other:?}"),
        }
        assert_eq!(
            retry.payloads[1..],
            first.payloads[..],
            "all other payloads unchanged"
        );
    }
    assert!(
        matches!(&downs[..], [DownReason::NegotiationFailed(Failure::Local(t))] if t.contains("COOKIE")),
        "{downs:?}"
    );
}

/// IKE_SA_INITs from addresses no peer is configured for leave nothing and are counted.
#[test]
fn init_from_strangers_is_counted_and_keeps_nothing() {
    let mut p = site_pair(&GCM, &GCM, &["aes256gcm16"]);
    let flood = Flood::new();
    for i in 0..1000u32 {
        p.b.handle_datagram(
            p.now,
            addr(B),
            flood_src(i),
            &flood.init(u64::from(i) + 1, None),
        );
    }
    assert_eq!(drain_answers(&mut p.b), (Vec::new(), 0));
    assert_eq!(p.b.sas().count(), 0);
    assert_eq!(p.b.dos_stats().dropped_unknown_peer, 1000);
}

// NAT traversal (RFC 7296 2.23, RFC 3948): A sits behind a NAT (inside 10.0.0.1, public
// 192.0.2.100) and initiates to B.

const A_INSIDE: &str = "10.0.0.1:500";
const A_PUBLIC: &str = "192.0.2.100:500";

fn nat_pair() -> Pair {
    let left = ts("198.51.100.0", "198.51.100.127");
    let right = ts("203.0.113.0", "203.0.113.63");
    let pa = peer("b", B, "secret", &GCM, &["aes256gcm16"], left, right);
    let pb = peer("a", A_PUBLIC, "secret", &GCM, &["aes256gcm16"], right, left);
    let mut p = Pair::new(pa, pb);
    p.nat = Some(NatBox::new("10.0.0.1", "192.0.2.100"));
    p.a.initiate(p.now, "b", addr(A_INSIDE)).unwrap();
    p.drive();
    p
}

fn keepalives(out: &[Output]) -> usize {
    out.iter()
        .filter(|o| matches!(o, Output::Keepalive { .. }))
        .count()
}

#[test]
fn a_nat_is_detected_on_both_sides_and_the_sa_floats_to_4500() {
    let p = nat_pair();
    assert_eq!((Pair::ups(&p.a_out), Pair::ups(&p.b_out)), (1, 1));
    let (a, b) = (p.a.sas().next().unwrap(), p.b.sas().next().unwrap());
    // A sees the NAT in front of itself, B sees it in front of A.
    assert!(a.nat.local && !a.nat.remote && a.nat.in_use());
    assert!(b.nat.remote && !b.nat.local && b.nat.in_use());
    // The initiator floated: IKE_AUTH on went from its 4500 to the peer's 4500, and the
    // responder follows the NAT's public address and port of that.
    assert_eq!(
        (a.local, a.remote),
        (addr("10.0.0.1:4500"), addr("192.0.2.2:4500"))
    );
    let public_4500 = p.nat.as_ref().unwrap().ports[&4500];
    assert_eq!(b.local, addr("192.0.2.2:4500"));
    assert_eq!(
        b.remote,
        SocketAddr::new("192.0.2.100".parse().unwrap(), public_4500)
    );
    // The session's address is where the peer really is.
    assert!(p.b_out.iter().any(|o| matches!(o,
        Output::IkeUp { remote, nat_t: true, .. } if *remote == b.remote)));
    // Children are ESP-in-UDP with the IKE SA's ports.
    let (ia, ib) = (Pair::installs(&p.a_out), Pair::installs(&p.b_out));
    assert_matching_children(ia[0], ib[0]);
    let e = ia[0].encap.expect("A's child is encapsulated");
    assert_eq!((e.local_port, e.remote_port), (4500, 4500));
    let e = ib[0].encap.expect("B's child is encapsulated");
    assert_eq!((e.local_port, e.remote_port), (4500, public_4500));
    assert_eq!(ib[0].remote, b.remote.ip());
}

#[test]
fn without_a_nat_nothing_floats_and_nothing_is_encapsulated() {
    let mut p = site_pair(&GCM, &GCM, &["aes256gcm16"]);
    up(&mut p);
    for sa in p.a.sas().chain(p.b.sas()) {
        assert!(sa.nat.supported && !sa.nat.in_use());
        assert_eq!((sa.local.port(), sa.remote.port()), (500, 500));
    }
    assert!(Pair::installs(&p.a_out)[0].encap.is_none());
    for _ in 0..10 {
        p.step_time();
    }
    assert_eq!(keepalives(&p.a_out) + keepalives(&p.b_out), 0);
}

/// strongSwan floats IKE to 4500 at IKE_AUTH even without a NAT (RFC 7296 2.23 lets an
/// initiator): the responder answers where each request came from (2.11) and keeps talking
/// there; with no NAT nothing is encapsulated.
#[test]
fn a_responder_follows_an_initiators_float_without_a_nat() {
    let mut p = site_pair(&GCM, &GCM, &["aes256gcm16"]);
    p.a.initiate(p.now, "b", addr(A)).unwrap();
    let (a4500, b4500) = (addr("192.0.2.1:4500"), addr("192.0.2.2:4500"));
    // IKE_SA_INIT is exchange type 34, the 19th octet of the header (RFC 7296 3.1).
    let init = |d: &[u8]| d.get(18) == Some(&34);
    let mut from_b = Vec::new();
    for _ in 0..100 {
        let mut moved = false;
        while let Some(o) = p.a.poll_output() {
            moved = true;
            match o {
                Output::Transmit(t) if init(&t.data) => {
                    p.b.handle_datagram(p.now, t.remote, t.local, &t.data)
                }
                Output::Transmit(t) => p.b.handle_datagram(p.now, b4500, a4500, &t.data),
                other => p.a_out.push(other),
            }
        }
        while let Some(o) = p.b.poll_output() {
            moved = true;
            match o {
                Output::Transmit(t) => {
                    from_b.push((init(&t.data), t.local, t.remote));
                    p.a.handle_datagram(p.now, t.remote, t.local, &t.data);
                }
                other => p.b_out.push(other),
            }
        }
        if !moved {
            break;
        }
    }
    assert_eq!(Pair::ups(&p.a_out) + Pair::ups(&p.b_out), 2, "both up");
    let after_init: Vec<_> = from_b.iter().filter(|(i, ..)| !i).collect();
    assert!(!after_init.is_empty());
    for (_, local, remote) in after_init {
        assert_eq!(
            (*local, *remote),
            (b4500, a4500),
            "B answered where A asked from"
        );
    }
    let sa = p.b.sas().next().unwrap();
    assert_eq!((sa.local, sa.remote), (b4500, a4500));
    assert!(!sa.nat.in_use());
    assert!(
        Pair::installs(&p.b_out)[0].encap.is_none(),
        "no NAT: plain ESP"
    );
}

#[test]
fn only_the_side_behind_the_nat_sends_keepalives_when_quiet() {
    let mut p = nat_pair();
    // No DPD: only keepalives keep the NAT's mapping alive.
    let start = p.now;
    while p.now < start + Duration::from_secs(65) {
        if !p.step_time() {
            break;
        }
    }
    let n = keepalives(&p.a_out);
    assert!(n >= 2, "A sent {n} keepalives in 65 s");
    assert_eq!(keepalives(&p.b_out), 0, "B is not behind a NAT");
    let to = p.a_out.iter().find_map(|o| match o {
        Output::Keepalive { local, remote } => Some((*local, *remote)),
        _ => None,
    });
    assert_eq!(to, Some((addr("10.0.0.1:4500"), addr("192.0.2.2:4500"))));
    // None sooner than 20 s after anything else A sent.
    let first = p.a_at[p
        .a_out
        .iter()
        .position(|o| matches!(o, Output::Keepalive { .. }))
        .unwrap()];
    assert!(first >= start + Duration::from_secs(20));
}

#[test]
fn a_nat_rebind_is_followed_without_a_new_ike_sa() {
    let mut p = nat_pair();
    let old_port = p.b.sas().next().unwrap().remote.port();
    p.nat.as_mut().unwrap().rebind();
    // B's next request goes to the old mapping and is lost; A's own (its liveness check,
    // DPD 30 s) comes from the new one, authenticated: B follows it.
    let start = p.now;
    while p.now < start + Duration::from_secs(120)
        && !p
            .b_out
            .iter()
            .any(|o| matches!(o, Output::PeerMoved { .. }))
    {
        assert!(p.step_time());
    }
    let b = p.b.sas().next().unwrap();
    let new_port = p.nat.as_ref().unwrap().ports[&4500];
    assert_ne!(old_port, new_port);
    assert_eq!(b.remote.port(), new_port);
    let moved = p.b_out.iter().find_map(|o| match o {
        Output::PeerMoved {
            from, to, children, ..
        } => Some((*from, *to, children.clone())),
        _ => None,
    });
    let (from, to, children) = moved.unwrap();
    assert_eq!((from.port(), to.port()), (old_port, new_port));
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].encap.remote_port, new_port);
    assert_eq!(
        children[0].outbound_spi,
        Pair::installs(&p.b_out)[0].outbound_spi
    );
    // The same IKE SA on both sides, nothing removed, and B's requests get through again.
    assert_eq!((Pair::ups(&p.a_out), Pair::ups(&p.b_out)), (1, 1));
    assert!(Pair::removes(&p.b_out).is_empty() && Pair::downs(&p.b_out).is_empty());
    for _ in 0..20 {
        p.step_time();
    }
    assert!(Pair::downs(&p.a_out).is_empty() && Pair::downs(&p.b_out).is_empty());
    // A child rekeyed now is installed with the new port.
    let b_id = p.b.sas().next().unwrap().id;
    let child = Pair::installs(&p.b_out)[0].child;
    p.b.rekey_child(p.now, b_id, child).unwrap();
    p.drive();
    let installs = Pair::installs(&p.b_out);
    assert_eq!(installs.len(), 2);
    assert_eq!(installs[1].encap.unwrap().remote_port, new_port);
}

#[test]
fn forced_encapsulation_floats_without_a_nat() {
    let (mut pa, pb) = site_policies(&GCM, &GCM, &["aes256gcm16"]);
    pa.nat.encap = true;
    let mut p = Pair::new(pa, pb);
    up(&mut p);
    let (a, b) = (p.a.sas().next().unwrap(), p.b.sas().next().unwrap());
    assert!(a.nat.forced && !a.nat.local && !a.nat.remote && a.nat.in_use());
    // A's faked NAT-D makes B believe A is behind a NAT, so B encapsulates too.
    assert!(b.nat.remote && b.nat.in_use());
    assert_eq!(
        (a.local, a.remote),
        (addr("192.0.2.1:4500"), addr("192.0.2.2:4500"))
    );
    assert_eq!(
        (b.local, b.remote),
        (addr("192.0.2.2:4500"), addr("192.0.2.1:4500"))
    );
    for c in Pair::installs(&p.a_out)
        .into_iter()
        .chain(Pair::installs(&p.b_out))
    {
        let e = c.encap.unwrap();
        assert_eq!((e.local_port, e.remote_port), (4500, 4500));
    }
    for _ in 0..10 {
        p.step_time();
    }
    // Nobody is really behind a NAT: no keepalives.
    assert_eq!(keepalives(&p.a_out) + keepalives(&p.b_out), 0);
}

#[test]
fn a_kernel_mapping_event_moves_a_nated_peer_and_only_that() {
    let mut p = nat_pair();
    let b_child = Pair::installs(&p.b_out)[0].clone();
    let a_child = Pair::installs(&p.a_out)[0].clone();
    let new = addr("192.0.2.100:40000");
    // A's peer (B) is not behind a NAT: A does not follow ESP from elsewhere.
    assert_eq!(
        p.a.kernel_mapping(p.now, a_child.inbound_spi, a_child.local, new),
        None
    );
    // An SPI that is not ours, or the wrong destination: nothing.
    assert_eq!(p.b.kernel_mapping(p.now, 0x1234, b_child.local, new), None);
    assert_eq!(
        p.b.kernel_mapping(p.now, b_child.inbound_spi, a_child.local, new),
        None
    );
    assert_eq!(
        p.b.kernel_mapping(p.now, b_child.inbound_spi, b_child.local, new),
        Some(b_child.child)
    );
    p.drive();
    assert_eq!(p.b.sas().next().unwrap().remote, new);
    // The kernel goes on reporting until its inbound SA has the new port: nothing more.
    assert_eq!(
        p.b.kernel_mapping(p.now, b_child.inbound_spi, b_child.local, new),
        None
    );
    let moved = p.b_out.iter().find_map(|o| match o {
        Output::PeerMoved { to, children, .. } => Some((*to, children.clone())),
        _ => None,
    });
    let (to, children) = moved.expect("B's SA moved");
    assert_eq!(to, new);
    assert_eq!(children[0].child, b_child.child);
    assert_eq!(children[0].encap.remote_port, 40000);
    assert!(p
        .a_out
        .iter()
        .all(|o| !matches!(o, Output::PeerMoved { .. })));
}

#[test]
fn both_behind_nats_both_keep_their_mappings_alive() {
    // B's NAT forwards 500 and 4500 to B (a port forward: B must be reachable).
    let left = ts("198.51.100.0", "198.51.100.127");
    let right = ts("203.0.113.0", "203.0.113.63");
    let pa = peer(
        "b",
        "192.0.2.200:500",
        "secret",
        &GCM,
        &["aes256gcm16"],
        left,
        right,
    );
    let mut pb = peer("a", A_PUBLIC, "secret", &GCM, &["aes256gcm16"], right, left);
    pb.dpd = None;
    let mut p = Pair::new(pa, pb);
    p.nat = Some(NatBox::new("10.0.0.1", "192.0.2.100"));
    let mut nb = NatBox::new("10.9.0.2", "192.0.2.200");
    nb.ports.insert(500, 500);
    nb.ports.insert(4500, 4500);
    p.nat_b = Some(nb);
    p.a.initiate(p.now, "b", addr(A_INSIDE)).unwrap();
    p.drive();
    // B's own address is its inside one: it sees its NAT in the DESTINATION hash.
    assert_eq!((Pair::ups(&p.a_out), Pair::ups(&p.b_out)), (1, 1));
    let (a, b) = (p.a.sas().next().unwrap(), p.b.sas().next().unwrap());
    assert!(a.nat.local && a.nat.remote, "A: {:?}", a.nat);
    assert!(b.nat.local && b.nat.remote, "B: {:?}", b.nat);
    assert_eq!(a.remote, addr("192.0.2.200:4500"));
    assert_eq!(b.local, addr("10.9.0.2:4500"));
    let ib = Pair::installs(&p.b_out)[0];
    assert_eq!(ib.encap.unwrap().local_port, 4500);
    let start = p.now;
    while p.now < start + Duration::from_secs(65) && p.step_time() {}
    assert!(keepalives(&p.a_out) >= 1 && keepalives(&p.b_out) >= 1);
}

#[test]
fn nat_traversal_works_over_ipv6_too() {
    let left = ts("2001:db8:1::", "2001:db8:1::ffff");
    let right = ts("2001:db8:2::", "2001:db8:2::ffff");
    let pa = peer(
        "b",
        "[2001:db8::2]:500",
        "secret",
        &GCM,
        &["aes256gcm16"],
        left,
        right,
    );
    let pb = peer(
        "a",
        "[2001:db8::100]:500",
        "secret",
        &GCM,
        &["aes256gcm16"],
        right,
        left,
    );
    let mut p = Pair::new(pa, pb);
    p.nat = Some(NatBox::new("fd00::1", "2001:db8::100"));
    p.a.initiate(p.now, "b", addr("[fd00::1]:500")).unwrap();
    p.drive();
    assert_eq!((Pair::ups(&p.a_out), Pair::ups(&p.b_out)), (1, 1));
    let (a, b) = (p.a.sas().next().unwrap(), p.b.sas().next().unwrap());
    assert!(a.nat.local && b.nat.remote);
    assert_eq!(a.local, addr("[fd00::1]:4500"));
    assert_eq!(
        b.remote.ip(),
        "2001:db8::100".parse::<std::net::IpAddr>().unwrap()
    );
    assert!(Pair::installs(&p.b_out)[0].encap.is_some());
}

#[test]
fn an_ike_sa_rekeyed_behind_a_nat_stays_on_4500_and_encapsulated() {
    let mut p = nat_pair();
    let old = p.a.sas().next().unwrap().id;
    p.a.rekey_ike(p.now, old).unwrap();
    p.drive();
    let new =
        p.a.sas()
            .find(|s| s.id != old && s.is_established())
            .expect("A's successor");
    assert_eq!(new.nat, p.a.sa(old).map_or(new.nat, |o| o.nat));
    assert!(new.nat.local && new.nat.in_use());
    assert_eq!((new.local.port(), new.remote.port()), (4500, 4500));
    let (new_id, child) = (new.id, new.children[0].id);
    p.a.rekey_child(p.now, new_id, child).unwrap();
    p.drive();
    let installs = Pair::installs(&p.a_out);
    let e = installs.last().unwrap().encap.expect("still ESP-in-UDP");
    assert_eq!((e.local_port, e.remote_port), (4500, 4500));
}

/// What came out of one side since `from`: datagrams counted by the caller's wire.
fn outputs_since(out: &[Output], from: usize) -> &[Output] {
    &out[from..]
}

#[test]
fn a_reload_that_changes_nothing_negotiated_keeps_the_sas_under_the_new_policy() {
    let (pa, pb) = site_policies(&GCM, &GCM, &["aes256gcm16"]);
    let mut p = Pair::new(pa.clone(), pb);
    up(&mut p);
    let before = child_ids(&p.a);
    let (sent, seen) = (p.sent, p.a_out.len());
    // The second time too: the same reload twice changes nothing more.
    for round in 0..2 {
        let mut next = pa.clone();
        next.dpd = Some(Duration::from_secs(5 + round));
        next.ike_lifetime = Duration::from_secs(7200);
        next.children[0].lifetime = Duration::from_secs(1800);
        let c = p.a.set_peers(p.now, vec![next]);
        assert_eq!(c.kept, vec!["b".to_string()]);
        assert!(c.removed.is_empty() && c.renegotiated.is_empty() && c.deleted.is_empty());
        p.drive();
        assert_eq!(p.sent, sent, "nothing sent");
        assert_eq!(p.a_out.len(), seen, "no install, removal or down");
        assert_eq!(child_ids(&p.a), before, "same SPIs");
        let sa = p.a.sas().next().unwrap();
        assert_eq!(
            sa.peer.dpd,
            Some(Duration::from_secs(5 + round)),
            "new policy object"
        );
    }
    // The new child lifetime is what the next rekey installs.
    let (ike, child) = {
        let sa = p.a.sas().next().unwrap();
        (sa.id, sa.children[0].id)
    };
    p.a.rekey_child(p.now, ike, child).unwrap();
    p.drive();
    let installs = Pair::installs(&p.a_out);
    assert_eq!(installs.last().unwrap().lifetime, Duration::from_secs(1800));
    assert_one_matching_pair(&p, "after a rekey under the reloaded policy");
}

#[test]
fn a_reload_that_changes_proposals_renegotiates_and_one_that_drops_a_peer_deletes_it() {
    let (pa, pb) = site_policies(&GCM, &GCM, &["aes256gcm16"]);
    let mut p = Pair::new(pa.clone(), pb);
    up(&mut p);
    let first = Pair::installs(&p.a_out)[0].inbound_spi;
    let mut next = pa.clone();
    next.ike_proposals
        .push(Proposal::parse("aes128gcm16-prfsha256-ecp256", ProposalKind::Ike).unwrap());
    let (seen_a, seen_b) = (p.a_out.len(), p.b_out.len());
    let c = p.a.set_peers(p.now, vec![next.clone()]);
    assert_eq!(
        c.renegotiated,
        vec![("b".to_string(), vec!["ike.proposals"])]
    );
    assert_eq!(c.deleted.len(), 1);
    p.drive();
    let (a, b) = (
        outputs_since(&p.a_out, seen_a),
        outputs_since(&p.b_out, seen_b),
    );
    assert_eq!(Pair::removes(a).len(), 1);
    assert_eq!(Pair::removes(a)[0].inbound_spi, first);
    assert_eq!(Pair::downs(a), vec![DownReason::LocalDelete]);
    assert_eq!(
        Pair::downs(b),
        vec![DownReason::PeerDelete],
        "the peer was told"
    );
    assert_eq!(p.a.sas().count() + p.b.sas().count(), 0);
    // Brought up again (the daemon's part), under the new proposals.
    up(&mut p);
    let again = Pair::installs(&p.a_out).last().unwrap().inbound_spi;
    assert_ne!(again, first);
    assert_eq!(p.a.sas().next().unwrap().peer.ike_proposals.len(), 2);

    // Dropped from the set: deleted with the peer, and no longer known.
    let seen_b = p.b_out.len();
    let c = p.a.set_peers(p.now, Vec::new());
    assert_eq!(c.removed, vec!["b".to_string()]);
    p.drive();
    assert_eq!(
        Pair::downs(outputs_since(&p.b_out, seen_b)),
        vec![DownReason::PeerDelete]
    );
    assert_eq!(p.a.sas().count() + p.b.sas().count(), 0);
    assert_eq!(
        p.a.initiate(p.now, "b", addr(A)),
        Err(super::CommandError::UnknownPeer("b".into()))
    );
}

#[test]
fn a_reload_adds_a_peer_without_touching_the_others_even_during_a_rekey() {
    let (pa, pb) = site_policies(&GCM, &GCM, &["aes256gcm16"]);
    let mut p = Pair::new(pa.clone(), pb);
    up(&mut p);
    let (ike, child) = {
        let sa = p.a.sas().next().unwrap();
        (sa.id, sa.children[0].id)
    };
    // The crossing case: a reload lands while a child rekey is in flight.
    p.a.rekey_child(p.now, ike, child).unwrap();
    let mut extra = pa.clone();
    extra.name = "c".into();
    extra.remote = RemoteMatch::Single("192.0.2.3".parse().unwrap());
    let c = p.a.set_peers(p.now, vec![pa.clone(), extra]);
    assert_eq!(c.added, vec!["c".to_string()]);
    assert_eq!(c.kept, vec!["b".to_string()]);
    assert!(c.deleted.is_empty());
    p.drive();
    assert_one_matching_pair(&p, "rekey across a reload");
    assert_eq!(Pair::downs(&p.a_out), Vec::<DownReason>::new());
    assert_eq!(p.a.peers().len(), 2);
    // A negotiating SA of a renegotiated peer is abandoned, not left half-open.
    let mut changed = pa.clone();
    changed.children[0].remote_ts = vec![ts("203.0.113.0", "203.0.113.127")];
    p.a.initiate(p.now, "c", addr(A)).unwrap();
    let c = p.a.set_peers(p.now, vec![changed]);
    assert_eq!(c.removed, vec!["c".to_string()]);
    assert_eq!(
        c.renegotiated,
        vec![("b".to_string(), vec!["children.remote_ts"])]
    );
    p.drive();
    assert_eq!(p.a.sas().count(), 0, "every SA of both peers gone");
}

#[test]
fn a_peer_removed_and_added_back_before_its_delete_is_answered_ends_with_one_pair() {
    let (pa, pb) = site_policies(&GCM, &GCM, &["aes256gcm16"]);
    let mut p = Pair::new(pa.clone(), pb);
    up(&mut p);
    let first = child_ids(&p.a);
    // Two reloads in a row: the DELETE of the first is still in flight at the second.
    let c = p.a.set_peers(p.now, Vec::new());
    assert_eq!(c.deleted.len(), 1);
    let c = p.a.set_peers(p.now, vec![pa.clone()]);
    assert_eq!(c.added, vec!["b".to_string()]);
    assert!(
        c.deleted.is_empty(),
        "the SA being deleted is not deleted twice"
    );
    p.a.initiate(p.now, "b", addr(A)).unwrap();
    p.drive();
    assert_one_matching_pair(&p, "removed and added back");
    assert_ne!(child_ids(&p.a), first, "a new pair");
    assert_eq!(p.a.sas().filter(|s| s.is_established()).count(), 1);
    // A flood of reloads that change nothing costs nothing on the wire.
    let sent = p.sent;
    for _ in 0..1000 {
        let c = p.a.set_peers(p.now, vec![pa.clone()]);
        assert_eq!(c.kept.len(), 1);
    }
    p.drive();
    assert_eq!(p.sent, sent);
    assert_one_matching_pair(&p, "after 1000 reloads");
}

#[path = "tests_eap.rs"]
mod eap;

/// Certificate authentication (RFC 7296 2.15, 3.6-3.7, RFC 7427) between two engines.
mod certificates {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::ike::auth::testca::{ca, local_cert, trust, Ca, Leaf, NOW};
    use crate::ike::auth::AuthRefusal;
    use crate::ike::{LocalAuth, RemoteAuth};

    fn with_time(p: &mut Pair) {
        let wall = UNIX_EPOCH + Duration::from_secs(NOW);
        p.a.set_time_of_day(p.now, wall);
        p.b.set_time_of_day(p.now, wall);
    }

    /// A (initiator, "moon") and B (responder, "sun"), each with the auth given.
    fn pair(a: (LocalAuth, RemoteAuth), b: (LocalAuth, RemoteAuth)) -> Pair {
        let (mut pa, mut pb) = site_policies(&GCM, &GCM, &["aes256gcm16"]);
        (pa.local_auth, pa.remote_auth) = a;
        (pb.local_auth, pb.remote_auth) = b;
        pa.local_id = Identity::Fqdn("moon.example".into());
        pb.local_id = Identity::Fqdn("sun.example".into());
        let mut p = Pair::new(pa, pb);
        with_time(&mut p);
        p
    }

    fn cert(ca: &Ca, cn: &str, alg: &'static rcgen::SignatureAlgorithm) -> LocalAuth {
        let dns = [format!("{cn}.example")];
        let dns: Vec<&str> = dns.iter().map(|s| s.as_str()).collect();
        LocalAuth::Certificate(local_cert(
            ca,
            &Leaf {
                cn,
                dns: &dns,
                alg,
                ..Default::default()
            },
        ))
    }

    fn psk() -> (LocalAuth, RemoteAuth) {
        let k = || Zeroizing::new(b"a-shared-secret".to_vec());
        (LocalAuth::Psk(k()), RemoteAuth::Psk(k()))
    }

    fn refused(out: &[Output]) -> Vec<AuthRefusal> {
        Pair::downs(out)
            .into_iter()
            .filter_map(|d| match d {
                DownReason::NegotiationFailed(Failure::Refused(Refusal::AuthFailed(r))) => Some(r),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn certificates_both_ways_ecdsa_and_rsa_then_rekeys() {
        let lab = ca("Lab CA");
        for (alg_a, alg_b) in [
            (
                &rcgen::PKCS_ECDSA_P256_SHA256,
                &rcgen::PKCS_ECDSA_P384_SHA384,
            ),
            (&rcgen::PKCS_RSA_SHA256, &rcgen::PKCS_ECDSA_P256_SHA256),
        ] {
            let tp = RemoteAuth::Certificate(trust(&lab, &[]));
            let mut p = pair(
                (cert(&lab, "moon", alg_a), tp.clone()),
                (cert(&lab, "sun", alg_b), tp),
            );
            up(&mut p);
            assert_eq!(
                Pair::ups(&p.a_out) + Pair::ups(&p.b_out),
                2,
                "{:?}",
                p.b_out
            );
            assert_eq!(Pair::installs(&p.b_out).len(), 1);
            assert_eq!(p.a.auth_stats().succeeded, 1);
            assert_eq!(p.b.auth_stats().succeeded, 1);
            assert_eq!(
                p.b.sas().next().unwrap().remote_id,
                Some(Identity::Fqdn("moon.example".into()))
            );
            // Thirty days on: IKE SA rekeys (no new AUTH) keep the child.
            let end = p.now + Duration::from_secs(30 * 86_400);
            while p.now < end && p.step_time() {}
            let rekeys = p
                .a_out
                .iter()
                .filter(|o| matches!(o, Output::IkeRekeyed { .. }))
                .count();
            assert!(rekeys >= 29, "{rekeys} IKE rekeys in 30 days");
            assert_eq!(child_ids(&p.a).len(), 1);
        }
    }

    #[test]
    fn certificate_one_way_psk_the_other() {
        let lab = ca("Lab CA");
        let (k, r) = psk();
        // A proves itself with its certificate, B with the PSK; and the reverse.
        let mut p = pair(
            (
                cert(&lab, "moon", &rcgen::PKCS_ECDSA_P256_SHA256),
                r.clone(),
            ),
            (k.clone(), RemoteAuth::Certificate(trust(&lab, &[]))),
        );
        up(&mut p);
        assert_eq!(
            Pair::ups(&p.a_out) + Pair::ups(&p.b_out),
            2,
            "{:?}",
            p.b_out
        );
        let mut p = pair(
            (k, RemoteAuth::Certificate(trust(&lab, &[]))),
            (cert(&lab, "sun", &rcgen::PKCS_ECDSA_P256_SHA256), r),
        );
        up(&mut p);
        assert_eq!(
            Pair::ups(&p.a_out) + Pair::ups(&p.b_out),
            2,
            "{:?}",
            p.a_out
        );
        // A PSK where B wants a certificate is a wrong method, not a bad PSK.
        let (k, r) = psk();
        let mut p = pair(
            (k, r),
            (
                cert(&lab, "sun", &rcgen::PKCS_ECDSA_P256_SHA256),
                RemoteAuth::Certificate(trust(&lab, &[])),
            ),
        );
        up(&mut p);
        assert_eq!(refused(&p.b_out)[0].kind(), "wrong_method");
    }

    #[test]
    fn refused_certificates_are_answered_authentication_failed_and_counted() {
        let lab = ca("Lab CA");
        let other = ca("Other CA");
        let expired = LocalAuth::Certificate(local_cert(
            &lab,
            &Leaf {
                from: (2025, 1, 1),
                to: (2026, 1, 1),
                ..Default::default()
            },
        ));
        let cases: Vec<(LocalAuth, Option<Identity>, &str)> = vec![
            (expired, None, "expired"),
            (
                cert(&other, "moon", &rcgen::PKCS_ECDSA_P256_SHA256),
                None,
                "unknown_ca",
            ),
            // The certificate names moon.example; A claims another identity.
            (
                cert(&lab, "moon", &rcgen::PKCS_ECDSA_P256_SHA256),
                Some(Identity::Fqdn("mars.example".into())),
                "identity_mismatch",
            ),
        ];
        for (local, id, kind) in cases {
            let tp = RemoteAuth::Certificate(trust(&lab, &[]));
            let mut p = pair(
                (local, tp.clone()),
                (cert(&lab, "sun", &rcgen::PKCS_ECDSA_P256_SHA256), tp),
            );
            if let Some(id) = id {
                let mut pa = (*p.a.peers()[0]).clone();
                pa.local_id = id;
                p.a = Endpoint::new(vec![pa], Box::new(TestRng(5)));
                with_time(&mut p);
            }
            up(&mut p);
            assert_eq!(Pair::ups(&p.a_out) + Pair::ups(&p.b_out), 0);
            let r = refused(&p.b_out);
            assert_eq!(r.len(), 1, "{:?}", p.b_out);
            assert_eq!(r[0].kind(), kind, "{}", r[0]);
            assert_eq!(p.b.auth_stats().refused.get(kind), Some(&1));
            assert_eq!(
                Pair::downs(&p.a_out),
                vec![DownReason::NegotiationFailed(Failure::PeerRefused {
                    exchange: ExchangeType::IKE_AUTH,
                    notify: NotifyType::AUTHENTICATION_FAILED,
                })]
            );
        }
    }

    #[test]
    fn without_the_time_of_day_certificates_are_refused() {
        let lab = ca("Lab CA");
        let tp = RemoteAuth::Certificate(trust(&lab, &[]));
        let mut p = pair(
            (
                cert(&lab, "moon", &rcgen::PKCS_ECDSA_P256_SHA256),
                tp.clone(),
            ),
            (cert(&lab, "sun", &rcgen::PKCS_ECDSA_P256_SHA256), tp),
        );
        let fresh = (*p.b.peers()[0]).clone();
        p.b = Endpoint::new(vec![fresh], Box::new(TestRng(9)));
        up(&mut p);
        assert_eq!(refused(&p.b_out)[0], AuthRefusal::NoTimeOfDay);
    }
}

/// Windows' default proposal, configured on both ends (issue 12 item 7): MODP 1024 with
/// SHA-1 for IKE, AES-CBC with HMAC-SHA1-96 for ESP; up, and rekeyed (IKE and child) after.
#[test]
fn legacy_windows_proposal_when_configured() {
    let legacy = ["aes256-sha1-modp1024"];
    let (pa, pb) = site_policies(&legacy, &legacy, &["aes256-sha1"]);
    let lifetime = pa.ike_lifetime;
    let mut p = Pair::new(pa, pb);
    up(&mut p);
    assert_eq!(Pair::ups(&p.a_out) + Pair::ups(&p.b_out), 2);
    let installs = Pair::installs(&p.b_out);
    assert_eq!(installs.len(), 1);
    assert_eq!(
        installs[0].integ,
        Some(crate::ike::crypto::Integ::HmacSha1_96)
    );
    assert_eq!(
        installs[0].inbound_integ_key.len(),
        20,
        "HMAC-SHA1-96 keys are 20 bytes (RFC 2404)"
    );
    let end = p.now + lifetime + lifetime / 2;
    while p.now < end && p.step_time() {}
    assert!(p
        .a_out
        .iter()
        .any(|o| matches!(o, Output::IkeRekeyed { .. })));
    assert_eq!(child_ids(&p.a).len(), 1);
    // A peer that did not configure it refuses it: nothing legacy is offered by default.
    let mut p = site_pair(&legacy, &GCM, &["aes256gcm16"]);
    up(&mut p);
    assert_eq!(Pair::ups(&p.a_out) + Pair::ups(&p.b_out), 0);
}
