//! IKE fragmentation (RFC 7383): encrypted messages too big for the path are sent as
//! Encrypted Fragment (SKF) messages, each a whole IKE message with its own IV and ICV, so a
//! network that drops IP fragments (many do) still carries a large IKE_AUTH.
//!
//! - Negotiation (2.3): IKEV2_FRAGMENTATION_SUPPORTED in IKE_SA_INIT, both roles; used only
//!   when both ends sent it, never for IKE_SA_INIT itself (2.5), and a rekeyed IKE SA keeps
//!   what its predecessor negotiated.
//! - Sending (2.5, 2.5.1): [`FragPolicy::size`] counts the whole IP datagram (IP and UDP
//!   headers, the non-ESP marker on the NAT-T port, the IKE message), as strongSwan's
//!   `fragment_size` does; a protected message above it is cut into fragments that each fit.
//!   The set is made once and a retransmission resends all of it (2.6: only the fragments
//!   of one send are guaranteed consistent).
//! - Receiving (2.6): each fragment's ICV is checked before it is kept, so only the
//!   authenticated peer can fill a reassembly. One reassembly per direction (requests in,
//!   responses in: the message-ID window of one has room for one message each), bounded
//!   in fragments ([`MAX_FRAGMENTS`]), bytes ([`MAX_REASSEMBLED`]) and time
//!   ([`REASSEMBLY_TIMEOUT`]). Duplicates are ignored; a fragment numbered 0 or above its
//!   Total Fragments, or with a Next Payload other than NONE after the first, is dropped;
//!   a larger Total Fragments than the set held means the sender re-fragmented smaller
//!   (2.5.3), so the set starts over with it, and a smaller one is stale and dropped. The
//!   inner chain's first payload type comes from fragment 1 alone (2.5). Each case counts
//!   in [`FragStats`] (`vpnctl show crypto isakmp stats`).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::codec::{PayloadType, SkfPayload};

/// The default fragment size: the IPv6 minimum MTU (RFC 8200 5), which RFC 7383 2.5.1
/// names as safe for IPv6 and which most IPv4 paths carry too.
pub const DEFAULT_FRAGMENT_SIZE: u16 = 1280;
/// The smallest fragment size accepted: IPv4's minimum reassembly size (RFC 791), the
/// value RFC 7383 2.5.1 gives for IPv4.
pub const MIN_FRAGMENT_SIZE: u16 = 576;
/// The most fragments one message may arrive in. At the smallest fragment size a 64 KiB
/// message needs about 130; at the default one 54. More is refused, whatever the peer says.
pub const MAX_FRAGMENTS: u16 = 128;
/// The most inner payload bytes one reassembly holds: an IKE message never exceeds what one
/// UDP datagram could carry.
pub const MAX_REASSEMBLED: usize = 65_535;
/// The most fragment bytes all IKE SAs of an endpoint hold at once. Each fragment's ICV is
/// checked before it is kept, but a half-open responder SA has keys before its peer is
/// authenticated: without this bound, an attacker finishing many IKE_SA_INITs could make
/// every half-open SA hold [`MAX_REASSEMBLED`] bytes.
pub const MAX_HELD_IN_ALL: usize = 8 << 20;
/// How long an incomplete set waits for its missing fragments: longer than a peer's first
/// retransmissions (which resend the same set), short enough that a stalled one goes.
pub const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(30);

/// A peer's fragmentation settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragPolicy {
    /// Announce IKEV2_FRAGMENTATION_SUPPORTED and fragment when the peer does too.
    pub enabled: bool,
    /// The largest IP datagram an IKE message may make before it is fragmented (2.5.1).
    pub size: u16,
}

impl Default for FragPolicy {
    fn default() -> Self {
        FragPolicy {
            enabled: true,
            size: DEFAULT_FRAGMENT_SIZE,
        }
    }
}

/// What fragmentation did so far, for the whole endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FragStats {
    /// Messages we sent as fragments (counted once, however often retransmitted).
    pub messages_fragmented: u64,
    /// Fragment datagrams we sent, retransmissions included (what a capture counts).
    pub fragments_sent: u64,
    /// Fragments received whose ICV verified and that were kept.
    pub fragments_received: u64,
    /// Messages put back together from fragments.
    pub reassembled: u64,
    /// Fragments dropped as copies of one already held.
    pub dropped_duplicate: u64,
    /// Fragments dropped as inconsistent: Fragment Number 0 or above Total Fragments, a
    /// Total Fragments below the set's, Next Payload set after the first, or fragments
    /// from a peer that did not negotiate fragmentation.
    pub dropped_invalid: u64,
    /// Fragments whose ICV did not verify (forged or corrupted).
    pub dropped_icv: u64,
    /// Sets abandoned over the bounds: more than [`MAX_FRAGMENTS`], or more than
    /// [`MAX_REASSEMBLED`] bytes.
    pub dropped_limit: u64,
    /// Incomplete sets abandoned after [`REASSEMBLY_TIMEOUT`].
    pub timed_out: u64,
    /// Sets started over because a larger Total Fragments came (the sender re-fragmented).
    pub restarted: u64,
    /// Bytes held in incomplete sets now, by all IKE SAs (at most [`MAX_HELD_IN_ALL`]).
    pub held_bytes: u64,
}

impl FragStats {
    fn release(&mut self, set: Option<Box<Set>>) {
        if let Some(s) = set {
            self.held_bytes = self.held_bytes.saturating_sub(s.bytes as u64);
        }
    }
}

/// One message being reassembled.
#[derive(Debug)]
struct Set {
    message_id: u32,
    total: u16,
    /// Fragment n at index n - 1, decrypted.
    parts: Vec<Option<Vec<u8>>>,
    have: u16,
    bytes: usize,
    /// The first inner payload's type, from fragment 1 (RFC 7383 2.5).
    first_inner: Option<PayloadType>,
    deadline: Instant,
}

/// The reassembly of one direction (requests in, or responses in) of one IKE SA. Boxed
/// inside: an idle SA carries a pointer, not a set.
#[derive(Debug, Default)]
pub(crate) struct Reassembly {
    set: Option<Box<Set>>,
}

/// What a verified fragment did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Added {
    /// Kept (or ignored); the message is not complete yet.
    Pending,
    /// The last missing fragment: the inner payload chain's first type and its bytes.
    Complete(PayloadType, Vec<u8>),
}

impl Reassembly {
    /// Adds fragment `f` of message `message_id` whose ICV verified, decrypted to `plain`.
    pub(crate) fn add(
        &mut self,
        now: Instant,
        message_id: u32,
        f: &SkfPayload,
        plain: Vec<u8>,
        stats: &mut FragStats,
    ) -> Added {
        self.expire(now, stats);
        if f.number == 0 || f.total == 0 || f.number > f.total {
            stats.dropped_invalid += 1;
            return Added::Pending;
        }
        if f.number > 1 && f.first_inner != PayloadType::NONE {
            stats.dropped_invalid += 1;
            return Added::Pending;
        }
        if f.total > MAX_FRAGMENTS {
            stats.dropped_limit += 1;
            return Added::Pending;
        }
        match &self.set {
            // A set of another message: that message is behind the window now (answered,
            // or its request was given up), so its fragments are stale.
            Some(s) if s.message_id != message_id => stats.release(self.set.take()),
            // 2.5.3: more fragments than the set held: the sender re-fragmented smaller, and
            // only fragments of the same send fit together. Fewer: a stale fragment.
            Some(s) if f.total > s.total => {
                stats.restarted += 1;
                stats.release(self.set.take());
            }
            Some(s) if f.total < s.total => {
                stats.dropped_invalid += 1;
                return Added::Pending;
            }
            _ => {}
        }
        let set = self.set.get_or_insert_with(|| {
            Box::new(Set {
                message_id,
                total: f.total,
                parts: vec![None; usize::from(f.total)],
                have: 0,
                bytes: 0,
                first_inner: None,
                deadline: now + REASSEMBLY_TIMEOUT,
            })
        });
        let Some(slot) = set.parts.get_mut(usize::from(f.number) - 1) else {
            stats.dropped_invalid += 1;
            return Added::Pending;
        };
        if slot.is_some() {
            stats.dropped_duplicate += 1;
            return Added::Pending;
        }
        if set.bytes + plain.len() > MAX_REASSEMBLED {
            stats.dropped_limit += 1;
            stats.release(self.set.take());
            return Added::Pending;
        }
        if stats.held_bytes + plain.len() as u64 > MAX_HELD_IN_ALL as u64 {
            // The endpoint's budget is spent: this fragment goes, the set may still
            // complete from a retransmission once others have.
            stats.dropped_limit += 1;
            return Added::Pending;
        }
        set.bytes += plain.len();
        stats.held_bytes += plain.len() as u64;
        *slot = Some(plain);
        set.have += 1;
        if f.number == 1 {
            set.first_inner = Some(f.first_inner);
        }
        stats.fragments_received += 1;
        if set.have < set.total {
            return Added::Pending;
        }
        let Some(set) = self.set.take() else {
            return Added::Pending;
        };
        stats.held_bytes = stats.held_bytes.saturating_sub(set.bytes as u64);
        let mut whole = Vec::with_capacity(set.bytes);
        for part in set.parts.into_iter().flatten() {
            whole.extend_from_slice(&part);
        }
        stats.reassembled += 1;
        Added::Complete(set.first_inner.unwrap_or(PayloadType::NONE), whole)
    }

    /// When the set in progress is abandoned, if there is one.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.set.as_ref().map(|s| s.deadline)
    }

    /// Abandons a set whose time is up.
    pub(crate) fn expire(&mut self, now: Instant, stats: &mut FragStats) {
        if self.deadline().is_some_and(|d| now >= d) {
            stats.release(self.set.take());
            stats.timed_out += 1;
        }
    }

    /// Lets go of the set in progress (its IKE SA ends).
    pub(crate) fn clear(&mut self, stats: &mut FragStats) {
        stats.release(self.set.take());
    }

    /// Fragments and bytes held now (for the bound tests and the fuzz target).
    pub(crate) fn held(&self) -> (u16, usize) {
        self.set.as_ref().map_or((0, 0), |s| (s.have, s.bytes))
    }
}

/// Both directions of an IKE SA.
#[derive(Debug, Default)]
pub(crate) struct Fragments {
    /// Negotiated: both ends sent IKEV2_FRAGMENTATION_SUPPORTED (2.3).
    pub on: bool,
    pub requests: Reassembly,
    pub responses: Reassembly,
}

impl Fragments {
    pub(crate) fn deadline(&self) -> Option<Instant> {
        [self.requests.deadline(), self.responses.deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    pub(crate) fn expire(&mut self, now: Instant, stats: &mut FragStats) {
        self.requests.expire(now, stats);
        self.responses.expire(now, stats);
    }

    pub(crate) fn clear(&mut self, stats: &mut FragStats) {
        self.requests.clear(stats);
        self.responses.clear(stats);
    }
}

/// The IP datagram's bytes around an IKE message (RFC 7383 2.5.1 counts them): the IP
/// header (no options), UDP, and the non-ESP marker on the NAT-T port (RFC 3948 2.2).
pub(crate) fn datagram_overhead(ipv6: bool, nat_t: bool) -> usize {
    (if ipv6 { 40 } else { 20 }) + 8 + if nat_t { 4 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(number: u16, total: u16, first: PayloadType) -> SkfPayload {
        SkfPayload {
            first_inner: first,
            number,
            total,
            body: Vec::new(),
        }
    }

    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn in_order_out_of_order_and_duplicates() {
        let now = t0();
        let mut r = Reassembly::default();
        let mut s = FragStats::default();
        assert_eq!(
            r.add(
                now,
                1,
                &frag(3, 3, PayloadType::NONE),
                b"cc".to_vec(),
                &mut s
            ),
            Added::Pending
        );
        assert_eq!(
            r.add(
                now,
                1,
                &frag(1, 3, PayloadType::IDI),
                b"aa".to_vec(),
                &mut s
            ),
            Added::Pending
        );
        // A duplicate changes nothing, even with other contents.
        assert_eq!(
            r.add(
                now,
                1,
                &frag(1, 3, PayloadType::IDI),
                b"xx".to_vec(),
                &mut s
            ),
            Added::Pending
        );
        assert_eq!(s.dropped_duplicate, 1);
        assert_eq!(
            r.add(
                now,
                1,
                &frag(2, 3, PayloadType::NONE),
                b"bb".to_vec(),
                &mut s
            ),
            Added::Complete(PayloadType::IDI, b"aabbcc".to_vec())
        );
        assert_eq!(s.fragments_received, 3);
        assert_eq!(s.reassembled, 1);
        assert_eq!(r.held(), (0, 0));
        assert!(r.deadline().is_none());
        // A single fragment is a whole message.
        assert_eq!(
            r.add(now, 2, &frag(1, 1, PayloadType::SA), b"z".to_vec(), &mut s),
            Added::Complete(PayloadType::SA, b"z".to_vec())
        );
    }

    #[test]
    fn inconsistent_fragments_are_dropped_and_counted() {
        let now = t0();
        let mut r = Reassembly::default();
        let mut s = FragStats::default();
        for f in [
            frag(0, 3, PayloadType::NONE),
            frag(1, 0, PayloadType::IDI),
            frag(4, 3, PayloadType::NONE),
            frag(2, 3, PayloadType::IDI), // Next Payload only in fragment 1
        ] {
            assert_eq!(r.add(now, 1, &f, vec![1], &mut s), Added::Pending);
        }
        assert_eq!(s.dropped_invalid, 4);
        assert_eq!(r.held(), (0, 0), "nothing kept from them");
        // A set of 3; a fragment claiming 2 in all is stale.
        r.add(now, 1, &frag(1, 3, PayloadType::IDI), vec![1], &mut s);
        assert_eq!(
            r.add(now, 1, &frag(2, 2, PayloadType::NONE), vec![2], &mut s),
            Added::Pending
        );
        assert_eq!(s.dropped_invalid, 5);
        assert_eq!(r.held(), (1, 1));
        // One claiming 4: re-fragmented smaller (2.5.3), the set starts over.
        r.add(now, 1, &frag(2, 4, PayloadType::NONE), vec![2], &mut s);
        assert_eq!(s.restarted, 1);
        assert_eq!(r.held(), (1, 1));
        for n in [1, 3] {
            let first = if n == 1 {
                PayloadType::IDI
            } else {
                PayloadType::NONE
            };
            assert_eq!(
                r.add(now, 1, &frag(n, 4, first), vec![n as u8], &mut s),
                Added::Pending
            );
        }
        assert_eq!(
            r.add(now, 1, &frag(4, 4, PayloadType::NONE), vec![4], &mut s),
            Added::Complete(PayloadType::IDI, vec![1, 2, 3, 4])
        );
        // The first fragment decides the inner type, wherever it comes in the order.
        r.add(now, 2, &frag(2, 2, PayloadType::NONE), vec![2], &mut s);
        assert_eq!(
            r.add(now, 2, &frag(1, 2, PayloadType::SA), vec![1], &mut s),
            Added::Complete(PayloadType::SA, vec![1, 2])
        );
    }

    #[test]
    fn bounds_on_count_size_time_and_message() {
        let now = t0();
        let mut r = Reassembly::default();
        let mut s = FragStats::default();
        // Too many fragments: refused before anything is held.
        r.add(
            now,
            1,
            &frag(1, MAX_FRAGMENTS + 1, PayloadType::IDI),
            vec![0; 10],
            &mut s,
        );
        assert_eq!((s.dropped_limit, r.held()), (1, (0, 0)));
        // Too many bytes: the set goes.
        let big = MAX_REASSEMBLED / 2 + 1;
        r.add(now, 1, &frag(1, 3, PayloadType::IDI), vec![0; big], &mut s);
        assert_eq!(r.held(), (1, big));
        r.add(now, 1, &frag(2, 3, PayloadType::NONE), vec![0; big], &mut s);
        assert_eq!((s.dropped_limit, r.held()), (2, (0, 0)));
        // Time: an incomplete set is abandoned at its deadline, and counted once.
        r.add(now, 1, &frag(1, 2, PayloadType::IDI), vec![1], &mut s);
        assert_eq!(r.deadline(), Some(now + REASSEMBLY_TIMEOUT));
        r.expire(now + REASSEMBLY_TIMEOUT - Duration::from_millis(1), &mut s);
        assert_eq!(r.held(), (1, 1));
        r.expire(now + REASSEMBLY_TIMEOUT, &mut s);
        r.expire(now + REASSEMBLY_TIMEOUT * 2, &mut s);
        assert_eq!((s.timed_out, r.held()), (1, (0, 0)));
        // The late second half alone completes nothing.
        let late = now + REASSEMBLY_TIMEOUT;
        assert_eq!(
            r.add(late, 1, &frag(2, 2, PayloadType::NONE), vec![2], &mut s),
            Added::Pending
        );
        // One set per direction: another message's fragment replaces it.
        r.add(late, 2, &frag(1, 2, PayloadType::IDI), vec![1], &mut s);
        assert_eq!(r.held(), (1, 1));
        assert_eq!(
            r.add(late, 2, &frag(2, 2, PayloadType::NONE), vec![2], &mut s),
            Added::Complete(PayloadType::IDI, vec![1, 2])
        );
    }

    #[test]
    fn the_endpoint_wide_budget_bounds_all_sets_together() {
        let now = t0();
        let mut s = FragStats::default();
        let chunk = 60_000;
        let mut sets: Vec<Reassembly> = Vec::new();
        // Many half-open SAs each holding a big first fragment: the budget stops them.
        for _ in 0..(MAX_HELD_IN_ALL / chunk + 10) {
            let mut r = Reassembly::default();
            r.add(
                now,
                1,
                &frag(1, 2, PayloadType::IDI),
                vec![0; chunk],
                &mut s,
            );
            sets.push(r);
        }
        assert!(s.held_bytes <= MAX_HELD_IN_ALL as u64);
        // 139 sets of 60,000 bytes fit in 8 MiB; the 10 after them do not.
        assert_eq!(s.dropped_limit, 10);
        let held: usize = sets.iter().map(|r| r.held().1).sum();
        assert_eq!(held as u64, s.held_bytes, "the gauge is what the sets hold");
        // Completing, timing out and clearing give it back.
        sets[0].add(now, 1, &frag(2, 2, PayloadType::NONE), vec![1], &mut s);
        sets[1].expire(now + REASSEMBLY_TIMEOUT, &mut s);
        sets[2].clear(&mut s);
        let held: usize = sets.iter().map(|r| r.held().1).sum();
        assert_eq!(held as u64, s.held_bytes);
        for r in &mut sets {
            r.clear(&mut s);
        }
        assert_eq!(s.held_bytes, 0);
    }

    #[test]
    fn overhead_counts_the_ip_datagram() {
        assert_eq!(datagram_overhead(false, false), 28);
        assert_eq!(datagram_overhead(false, true), 32);
        assert_eq!(datagram_overhead(true, true), 52);
    }
}
