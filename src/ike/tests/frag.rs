//! IKE fragmentation (RFC 7383) between two engines: large IKE_AUTH and CREATE_CHILD_SA
//! messages in both roles over a wire that loses, reorders and duplicates fragments, the
//! retransmission of a whole set, and fragments that must be dropped and counted.

use super::*;
use crate::ike::codec::{Header, Message, PayloadType};
use crate::ike::endpoint::Transmit;
use crate::ike::fragment::FragPolicy;

/// `n` single-address selectors in `net` (e.g. "198.51.100"): a big TSi/TSr, as a site
/// with many networks sends.
fn many(net: &str, n: u8) -> Vec<TrafficSelector> {
    (1..=n)
        .map(|i| {
            let a = format!("{net}.{i}");
            ts(&a, &a)
        })
        .collect()
}

/// Two peers whose IKE_AUTH carries 60 selectors each way (about 2 KB), fragments of
/// `size` bytes at most (when `frag_b`, B does fragmentation too).
fn big_pair(size: u16, frag_b: bool) -> Pair {
    let (mut pa, mut pb) = site_policies(&GCM, &GCM, &["aes256gcm16"]);
    let (left, right) = (many("198.51.100", 60), many("203.0.113", 60));
    pa.children[0].local_ts = left.clone();
    pa.children[0].remote_ts = right.clone();
    pb.children[0].local_ts = right;
    pb.children[0].remote_ts = left;
    pa.frag = FragPolicy {
        enabled: true,
        size,
    };
    pb.frag = FragPolicy {
        enabled: frag_b,
        size,
    };
    // Room for a lossy wire to need several sends.
    pa.retransmit.tries = 12;
    pb.retransmit.tries = 12;
    Pair::new(pa, pb)
}

fn exchange(d: &[u8]) -> ExchangeType {
    Header::peek(d)
        .map(|h| h.exchange)
        .unwrap_or(ExchangeType(0))
}

fn is_fragment(d: &[u8]) -> bool {
    d.get(16) == Some(&PayloadType::SKF.0)
}

/// Like `Pair::drive`, but each burst one side sends goes through `wire` first (which may
/// drop, reorder, duplicate or just look); `from_a` says whose burst it is.
fn pump(p: &mut Pair, wire: &mut dyn FnMut(bool, &mut Vec<Transmit>)) {
    for _ in 0..1000 {
        let mut moved = false;
        for from_a in [true, false] {
            let mut burst = Vec::new();
            loop {
                let o = if from_a {
                    p.a.poll_output()
                } else {
                    p.b.poll_output()
                };
                let Some(o) = o else { break };
                moved = true;
                match o {
                    Output::Transmit(t) => burst.push(t),
                    other if from_a => {
                        p.a_out.push(other);
                        p.a_at.push(p.now);
                    }
                    other => {
                        p.b_out.push(other);
                        p.b_at.push(p.now);
                    }
                }
            }
            p.sent += burst.len();
            wire(from_a, &mut burst);
            for t in burst {
                let to = if from_a { &mut p.b } else { &mut p.a };
                to.handle_datagram(p.now, t.remote, t.local, &t.data);
            }
        }
        if !moved {
            return;
        }
    }
    panic!("no quiescence after 1000 rounds");
}

/// Pumps and advances the clock until `done` or `limit` of virtual time passed.
fn run_until(
    p: &mut Pair,
    limit: Duration,
    wire: &mut dyn FnMut(bool, &mut Vec<Transmit>),
    done: &dyn Fn(&Pair) -> bool,
) -> bool {
    let end = p.now + limit;
    pump(p, wire);
    while !done(p) {
        let next = [p.a.poll_timeout(), p.b.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(t) if t <= end => {
                p.now = p.now.max(t);
                p.a.handle_timeout(p.now);
                p.b.handle_timeout(p.now);
                pump(p, wire);
            }
            _ => return false,
        }
    }
    true
}

fn both_up(p: &Pair) -> bool {
    p.a.sas().any(|s| s.is_established()) && p.b.sas().any(|s| s.is_established())
}

/// Every datagram after IKE_SA_INIT fits `size` as an IPv4 datagram (2.5.1), and each
/// burst is remembered by exchange and fragment-ness.
fn checking(
    size: u16,
    seen: &mut Vec<(bool, ExchangeType, bool, usize)>,
) -> impl FnMut(bool, &mut Vec<Transmit>) + '_ {
    move |from_a, burst| {
        for t in burst.iter() {
            let x = exchange(&t.data);
            if x != ExchangeType::IKE_SA_INIT {
                assert!(
                    t.data.len() + 28 <= usize::from(size),
                    "{x:?} datagram of {} bytes over {size}",
                    t.data.len()
                );
            }
            seen.push((from_a, x, is_fragment(&t.data), t.data.len()));
        }
    }
}

#[test]
fn a_large_ike_auth_goes_in_fragments_in_both_roles() {
    for a_starts in [true, false] {
        let mut p = big_pair(576, true);
        let mut seen = Vec::new();
        if a_starts {
            p.a.initiate(p.now, "b", addr(A)).unwrap();
        } else {
            p.b.initiate(p.now, "a", addr(B)).unwrap();
        }
        assert!(run_until(
            &mut p,
            Duration::from_secs(5),
            &mut checking(576, &mut seen),
            &both_up
        ));
        let (ia, ib) = (Pair::installs(&p.a_out), Pair::installs(&p.b_out));
        assert_eq!((ia.len(), ib.len()), (1, 1));
        assert_matching_children(ia[0], ib[0]);
        assert_eq!(ia[0].local_ts.len(), 60, "every selector made it across");
        // IKE_SA_INIT whole, IKE_AUTH request and response each a set of fragments.
        let auth: Vec<_> = seen
            .iter()
            .filter(|s| s.1 == ExchangeType::IKE_AUTH)
            .collect();
        assert!(
            auth.iter().all(|s| s.2),
            "every IKE_AUTH datagram is a fragment"
        );
        let from_i = auth.iter().filter(|s| s.0 == a_starts).count();
        let from_r = auth.len() - from_i;
        assert!(from_i >= 4 && from_r >= 4, "{from_i} + {from_r} fragments");
        assert!(seen
            .iter()
            .filter(|s| s.1 == ExchangeType::IKE_SA_INIT)
            .all(|s| !s.2));
        let (fa, fb) = (p.a.frag_stats(), p.b.frag_stats());
        for (f, sent) in [
            (fa, if a_starts { from_i } else { from_r }),
            (fb, if a_starts { from_r } else { from_i }),
        ] {
            assert_eq!(f.messages_fragmented, 1);
            assert_eq!(f.fragments_sent, sent as u64);
            assert_eq!(f.reassembled, 1);
            assert_eq!(f.dropped_duplicate + f.dropped_invalid + f.dropped_icv, 0);
        }
        assert_eq!(fa.fragments_received, fb.fragments_sent);
    }
}

#[test]
fn small_messages_stay_whole_and_the_default_size_is_1280() {
    // Default policy: the plain site pair's IKE_AUTH fits, so nothing is fragmented...
    let mut p = site_pair(&GCM, &GCM, &["aes256gcm16"]);
    let mut seen = Vec::new();
    p.a.initiate(p.now, "b", addr(A)).unwrap();
    pump(&mut p, &mut checking(1280, &mut seen));
    assert!(both_up(&p));
    assert!(seen.iter().all(|s| !s.2));
    assert_eq!(p.a.frag_stats().messages_fragmented, 0);
    assert!(p.a.sas().all(|s| s.frag.on), "but it was negotiated");
    // ...while the big one is, in two fragments of at most 1280 bytes.
    let mut p = big_pair(1280, true);
    let mut seen = Vec::new();
    p.a.initiate(p.now, "b", addr(A)).unwrap();
    pump(&mut p, &mut checking(1280, &mut seen));
    assert!(both_up(&p));
    let auth_from_a = seen
        .iter()
        .filter(|s| s.0 && s.1 == ExchangeType::IKE_AUTH && s.2)
        .count();
    assert_eq!(auth_from_a, 2);
}

#[test]
fn without_support_on_one_side_nothing_is_fragmented() {
    let mut p = big_pair(576, false);
    let mut seen = Vec::new();
    p.a.initiate(p.now, "b", addr(A)).unwrap();
    pump(&mut p, &mut |from_a, burst| {
        for t in burst.iter() {
            seen.push((
                from_a,
                exchange(&t.data),
                is_fragment(&t.data),
                t.data.len(),
            ));
        }
    });
    assert!(both_up(&p));
    assert!(
        seen.iter().all(|s| !s.2),
        "no SKF without both announcing it"
    );
    assert!(
        seen.iter()
            .any(|s| s.1 == ExchangeType::IKE_AUTH && s.3 > 576),
        "IKE_AUTH went whole (IP would have to fragment it)"
    );
    assert!(p.a.sas().all(|s| !s.frag.on) && p.b.sas().all(|s| !s.frag.on));
}

#[test]
fn both_roles_announce_support_in_ike_sa_init() {
    let mut p = big_pair(576, true);
    let mut inits = Vec::new();
    p.a.initiate(p.now, "b", addr(A)).unwrap();
    pump(&mut p, &mut |_, burst| {
        inits.extend(
            burst
                .iter()
                .filter(|t| exchange(&t.data) == ExchangeType::IKE_SA_INIT)
                .map(|t| Message::decode(&t.data).unwrap()),
        );
    });
    assert_eq!(inits.len(), 2);
    for m in &inits {
        let n = m
            .find_notify(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED)
            .expect("announced");
        assert!(n.data.is_empty());
    }
}

/// xorshift for the wire's choices.
struct Dice(u64);
impl Dice {
    fn roll(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A wire that shuffles each burst, duplicates one datagram in five and loses one in four.
fn bad_wire(dice: &mut Dice) -> impl FnMut(bool, &mut Vec<Transmit>) + '_ {
    move |_, burst| {
        let mut out = Vec::new();
        for t in burst.drain(..) {
            if dice.roll(5) == 0 {
                out.push(t.clone());
            }
            if dice.roll(4) != 0 {
                out.push(t);
            }
        }
        for i in (1..out.len()).rev() {
            let j = dice.roll(i as u64 + 1) as usize;
            out.swap(i, j);
        }
        *burst = out;
    }
}

#[test]
fn lost_reordered_and_duplicated_fragments_still_make_the_tunnel_and_its_rekeys() {
    for (seed, a_starts) in [(1, true), (2, false), (3, true), (4, false), (5, true)] {
        let mut p = big_pair(576, true);
        let mut dice = Dice(0x9e37_79b9 ^ seed);
        let mut wire = bad_wire(&mut dice);
        if a_starts {
            p.a.initiate(p.now, "b", addr(A)).unwrap();
        } else {
            p.b.initiate(p.now, "a", addr(B)).unwrap();
        }
        assert!(
            run_until(&mut p, Duration::from_secs(600), &mut wire, &both_up),
            "seed {seed}: not up"
        );
        let (ia, ib) = (Pair::installs(&p.a_out), Pair::installs(&p.b_out));
        assert_eq!((ia.len(), ib.len()), (1, 1), "seed {seed}");
        assert_matching_children(ia[0], ib[0]);
        let (fa, fb) = (p.a.frag_stats(), p.b.frag_stats());
        assert!(fa.reassembled >= 1 && fb.reassembled >= 1, "seed {seed}");
        // A child rekey (CREATE_CHILD_SA with all the selectors: fragmented too), then an
        // IKE SA rekey, whose successor keeps fragmentation, then a child rekey on it.
        let ike = p.a.sas().find(|s| s.is_established()).unwrap().id;
        let child = ia[0].child;
        p.a.rekey_child(p.now, ike, child).unwrap();
        let installed = |n: usize| {
            move |p: &Pair| {
                Pair::installs(&p.a_out).len() >= n && Pair::installs(&p.b_out).len() >= n
            }
        };
        assert!(
            run_until(&mut p, Duration::from_secs(600), &mut wire, &installed(2)),
            "seed {seed}: child rekey"
        );
        let before = p.a.frag_stats().messages_fragmented;
        assert!(before >= 2, "the rekey request was fragmented");
        let b_ike =
            p.b.sas()
                .find(|s| s.is_established() && s.rekeyed_to().is_none())
                .unwrap()
                .id;
        p.b.rekey_ike(p.now, b_ike).unwrap();
        let rekeyed = |p: &Pair| {
            p.a_out
                .iter()
                .any(|o| matches!(o, Output::IkeRekeyed { .. }))
                && p.b_out
                    .iter()
                    .any(|o| matches!(o, Output::IkeRekeyed { .. }))
        };
        assert!(
            run_until(&mut p, Duration::from_secs(600), &mut wire, &rekeyed),
            "seed {seed}: IKE rekey"
        );
        let new =
            p.a.sas()
                .find(|s| matches!(s.state, crate::ike::sa::State::Established(_)))
                .unwrap();
        assert!(
            new.frag.on,
            "the successor keeps fragmentation (RFC 7383 2.3)"
        );
        let (new_id, child) = (new.id, new.children[0].id);
        p.a.rekey_child(p.now, new_id, child).unwrap();
        assert!(
            run_until(&mut p, Duration::from_secs(600), &mut wire, &installed(3)),
            "seed {seed}: rekey on the new IKE SA"
        );
        assert!(p.a.frag_stats().messages_fragmented > before);
        // The dice did their work: duplicates were seen and ignored.
        let dups = p.a.frag_stats().dropped_duplicate + p.b.frag_stats().dropped_duplicate;
        assert!(dups > 0, "seed {seed}: no duplicate fragments came");
        assert!(Pair::downs(&p.a_out)
            .iter()
            .all(|d| *d == DownReason::Rekeyed));
    }
}

#[test]
fn a_retransmitted_fragmented_request_is_answered_once_per_set() {
    let mut p = big_pair(576, true);
    p.a.initiate(p.now, "b", addr(A)).unwrap();
    // B's IKE_AUTH response is lost once, whole.
    let mut lost = false;
    let mut bursts: Vec<(bool, usize)> = Vec::new();
    let mut wire = |from_a: bool, burst: &mut Vec<Transmit>| {
        if burst
            .iter()
            .any(|t| exchange(&t.data) == ExchangeType::IKE_AUTH)
        {
            bursts.push((from_a, burst.len()));
            if !from_a && !lost {
                lost = true;
                burst.clear();
            }
        }
    };
    assert!(run_until(
        &mut p,
        Duration::from_secs(30),
        &mut wire,
        &both_up
    ));
    // A's set, B's (lost), A's set again, B's cached set once (not once per fragment).
    assert_eq!(bursts.len(), 4, "{bursts:?}");
    assert!(bursts[0].0 && !bursts[1].0 && bursts[2].0 && !bursts[3].0);
    assert_eq!(bursts[0].1, bursts[2].1, "the same set resent");
    assert_eq!(bursts[1].1, bursts[3].1, "the cached response resent once");
    assert_eq!(
        Pair::installs(&p.b_out).len(),
        1,
        "the request acted on once"
    );
    assert_eq!(p.b.frag_stats().reassembled, 1);
    assert_eq!(p.a.frag_stats().fragments_sent, 2 * bursts[0].1 as u64);
}

#[test]
fn forged_and_inconsistent_fragments_are_dropped_counted_and_change_nothing() {
    let mut p = big_pair(576, true);
    let mut captured: Vec<Vec<u8>> = Vec::new();
    p.a.initiate(p.now, "b", addr(A)).unwrap();
    pump(&mut p, &mut |from_a, burst| {
        if from_a {
            captured.extend(
                burst
                    .iter()
                    .filter(|t| is_fragment(&t.data))
                    .map(|t| t.data.clone()),
            );
        }
    });
    assert!(both_up(&p));
    let before_b = p.b.frag_stats();
    // A flipped bit in a fragment's ciphertext: its ICV fails. Its message ID is old by
    // now, so use a fresh one's header: A's next request.
    let sa = p.a.sas().next().unwrap();
    let next_id = sa.next_message_id;
    let header = sa.header(ExchangeType::INFORMATIONAL, false, next_id);
    let cipher = &sa.keys.as_ref().unwrap().out;
    let frag = |n: u16, total: u16, first: PayloadType, iv: u64| {
        cipher
            .seal_fragment(&header, first, n, total, &[0u8; 40], &iv.to_be_bytes())
            .unwrap()
    };
    let mut bad = frag(1, 2, PayloadType::NONE, 0xffff_0001);
    let last = bad.len() - 1;
    bad[last] ^= 1;
    // Properly protected, but numbered 0, above the total, or with a Next Payload after 1.
    let zero = frag(0, 2, PayloadType::NONE, 0xffff_0002);
    let above = frag(3, 2, PayloadType::NONE, 0xffff_0003);
    let next_set = frag(2, 2, PayloadType::NOTIFY, 0xffff_0004);
    // A set of 3 started, then a fragment of the same message claiming 2 in all.
    let start = frag(1, 3, PayloadType::NOTIFY, 0xffff_0005);
    let fewer = frag(2, 2, PayloadType::NONE, 0xffff_0006);
    let dup = start.clone();
    for d in [&bad, &zero, &above, &next_set, &start, &fewer, &dup] {
        p.b.handle_datagram(p.now, addr(B), addr(A), d);
    }
    // And an old fragment replayed: outside the window, never even opened.
    p.b.handle_datagram(p.now, addr(B), addr(A), &captured[1]);
    pump(&mut p, &mut |_, _| {});
    let f = p.b.frag_stats();
    assert_eq!(f.dropped_icv - before_b.dropped_icv, 1);
    assert_eq!(f.dropped_invalid - before_b.dropped_invalid, 4);
    assert_eq!(f.dropped_duplicate - before_b.dropped_duplicate, 1);
    assert_eq!(
        f.fragments_received - before_b.fragments_received,
        1,
        "only `start` kept"
    );
    assert_eq!(f.reassembled, before_b.reassembled);
    // Nothing else changed: no answer, the tunnel is up, and its next exchange works
    // (the stale partial set of that message ID gives way to the real one).
    assert_eq!(Pair::downs(&p.a_out).len() + Pair::downs(&p.b_out).len(), 0);
    let ike = p.a.sas().next().unwrap().id;
    let child = Pair::installs(&p.a_out)[0].child;
    p.a.rekey_child(p.now, ike, child).unwrap();
    let mut ok = |_: bool, _: &mut Vec<Transmit>| {};
    assert!(run_until(
        &mut p,
        Duration::from_secs(60),
        &mut ok,
        &|p: &Pair| Pair::installs(&p.b_out).len() == 2
    ));
}

#[test]
fn an_incomplete_set_times_out() {
    let mut p = big_pair(576, true);
    p.a.initiate(p.now, "b", addr(A)).unwrap();
    // Only A's first IKE_AUTH fragment arrives.
    let mut wire = |from_a: bool, burst: &mut Vec<Transmit>| {
        if from_a && burst.iter().any(|t| is_fragment(&t.data)) {
            burst.truncate(1);
        }
    };
    pump(&mut p, &mut wire);
    let b = p.b.sas().next().unwrap();
    assert_eq!(b.frag.requests.held().0, 1);
    let due = b.frag.deadline().unwrap();
    assert_eq!(due, p.now + crate::ike::fragment::REASSEMBLY_TIMEOUT);
    assert!(p.b.poll_timeout().unwrap() <= due, "the SA wakes for it");
    assert!(p.b.frag_stats().held_bytes > 0);
    p.now = due;
    p.b.handle_timeout(p.now);
    assert_eq!(p.b.frag_stats().timed_out, 1);
    assert_eq!(p.b.frag_stats().held_bytes, 0, "given back");
    assert!(
        p.b.sas().all(|s| s.frag.deadline().is_none()),
        "nothing held"
    );
}

#[test]
fn a_half_open_sa_that_dies_gives_its_fragments_back() {
    let mut p = big_pair(576, true);
    p.b.set_dos(crate::ike::DosConfig {
        half_open_timeout: Duration::from_secs(10),
        ..Default::default()
    });
    p.a.initiate(p.now, "b", addr(A)).unwrap();
    // Only A's first IKE_AUTH fragment arrives: B holds it, half-open.
    let mut wire = |from_a: bool, burst: &mut Vec<Transmit>| {
        if from_a && burst.iter().any(|t| is_fragment(&t.data)) {
            burst.truncate(1);
        }
    };
    pump(&mut p, &mut wire);
    let held = p.b.frag_stats().held_bytes;
    assert!(held > 0);
    // The half-open timeout (10 s) comes before the reassembly's (30 s).
    p.now += Duration::from_secs(10);
    p.b.handle_timeout(p.now);
    assert!(p.b.sas().next().is_none(), "the half-open SA is gone");
    let f = p.b.frag_stats();
    assert_eq!(
        (f.held_bytes, f.timed_out),
        (0, 0),
        "released with its SA, not by time"
    );
}
