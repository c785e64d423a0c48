//! The responder's defence against IKE_SA_INIT floods (RFC 7296 2.6), with strongSwan's
//! knobs and defaults (charon.cookie_threshold, block_threshold, init_limit_half_open,
//! half_open_timeout):
//!
//! - Stateless cookies: once `cookie_threshold` responder SAs are half-open (IKE_SA_INIT
//!   answered, no IKE_AUTH yet), a request without a valid COOKIE gets only a COOKIE notify
//!   and leaves no state; an initiator that really is at its address echoes it (2.6).
//! - A per-address bound (`block_threshold`): more half-open SAs from one address are
//!   dropped, unanswered, until some of them complete or time out.
//! - A global bound (`half_open_limit`): beyond it new IKE_SA_INITs are dropped, so what
//!   half-open SAs cost in memory is bounded whatever the cookies let through.
//! - `half_open_timeout`: a half-open SA whose IKE_AUTH never comes goes (see `sa.rs`).
//!
//! Everything here is sans-IO like the rest of the engine: time comes in as `now`, the
//! cookie secrets from the engine's RNG.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;

use super::endpoint::IkeSaId;

/// The responder's DoS settings (`dos:` in the configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DosConfig {
    /// Half-open responder SAs from which on COOKIEs are demanded; 0: never.
    pub cookie_threshold: u32,
    /// Half-open responder SAs one address may hold; more are dropped. 0: no limit.
    pub block_threshold: u32,
    /// Half-open responder SAs in all; more are dropped. 0: no limit.
    pub half_open_limit: u32,
    /// How long a responder SA waits for IKE_AUTH after answering IKE_SA_INIT.
    pub half_open_timeout: Duration,
    /// A cookie secret is replaced after this long…
    pub cookie_secret_lifetime: Duration,
    /// …or after this many cookies, whichever comes first.
    pub cookie_secret_uses: u32,
}

impl Default for DosConfig {
    /// strongSwan's defaults (cookie_threshold 10, block_threshold 5, half_open_timeout
    /// 30 s); charon has no global half-open bound by default, 10,000 keeps it to a few MB.
    fn default() -> Self {
        DosConfig {
            cookie_threshold: 10,
            block_threshold: 5,
            half_open_limit: 10_000,
            half_open_timeout: Duration::from_secs(30),
            cookie_secret_lifetime: Duration::from_secs(120),
            cookie_secret_uses: 10_000,
        }
    }
}

/// What the defence has done since start, and the half-open SAs now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DosStats {
    /// Responder SAs now half-open.
    pub half_open: u64,
    /// The most there were at once.
    pub half_open_peak: u64,
    /// IKE_SA_INITs answered with a COOKIE notify only.
    pub cookies_sent: u64,
    /// IKE_SA_INITs whose cookie was checked and valid.
    pub cookies_valid: u64,
    /// IKE_SA_INITs with a wrong or stale cookie while cookies were demanded (each got a
    /// fresh one, 2.6).
    pub cookies_invalid: u64,
    /// IKE_SA_INITs dropped: their address held `block_threshold` half-open SAs already.
    pub dropped_blocked: u64,
    /// IKE_SA_INITs dropped: `half_open_limit` half-open SAs already.
    pub dropped_limit: u64,
    /// IKE_SA_INITs dropped: undecodable or without a nonce while cookies were demanded.
    pub dropped_malformed: u64,
    /// IKE_SA_INITs dropped: from an address no peer is configured for.
    #[serde(default)]
    pub dropped_unknown_peer: u64,
    /// Half-open SAs that ended without IKE_AUTH (timed out or failed).
    pub half_open_failed: u64,
}

/// Length of the secret's version id at the head of a cookie.
const VERSION_LEN: usize = 4;
/// A cookie: version id | HMAC-SHA256 (36 bytes; 2.6 allows 1 to 64).
pub const COOKIE_LEN: usize = VERSION_LEN + 32;
/// How long the secret before the current one is still accepted after a rotation: a cookie
/// given out just before comes back within the initiator's round trip.
pub const PREVIOUS_SECRET_GRACE: Duration = Duration::from_secs(60);

struct Secret {
    version: u32,
    key: hmac::Key,
}

impl Secret {
    fn tag(&self, ni: &[u8], ip: IpAddr, spi_i: u64) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        update(&mut ctx, ni, ip, spi_i);
        ctx.sign()
    }

    fn cookie(&self, ni: &[u8], ip: IpAddr, spi_i: u64) -> Vec<u8> {
        let mut c = Vec::with_capacity(COOKIE_LEN);
        c.extend_from_slice(&self.version.to_be_bytes());
        c.extend_from_slice(self.tag(ni, ip, spi_i).as_ref());
        c
    }

    fn verify(&self, mac: &[u8], ni: &[u8], ip: IpAddr, spi_i: u64) -> bool {
        let mut data = Vec::with_capacity(ni.len() + 24);
        data.extend_from_slice(ni);
        push_ip(&mut data, ip);
        data.extend_from_slice(&spi_i.to_be_bytes());
        // Constant time: a forger learns nothing from how long a refusal took.
        hmac::verify(&self.key, &data, mac).is_ok()
    }
}

fn push_ip(v: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => v.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => v.extend_from_slice(&a.octets()),
    }
}

/// 2.6's `Hash(Ni | IPi | SPIi | <secret>)`, as an HMAC keyed by the secret.
fn update(ctx: &mut hmac::Context, ni: &[u8], ip: IpAddr, spi_i: u64) {
    let mut v = Vec::with_capacity(16);
    push_ip(&mut v, ip);
    ctx.update(ni);
    ctx.update(&v);
    ctx.update(&spi_i.to_be_bytes());
}

/// The cookie secrets: the current one and, for `PREVIOUS_SECRET_GRACE` after a rotation,
/// the one before, each known by its version id (2.6: "<VersionIDofSecret>").
#[derive(Default)]
pub struct CookieJar {
    current: Option<(Secret, Instant)>,
    uses: u32,
    previous: Option<(Secret, Instant)>,
}

impl CookieJar {
    /// Whether a new secret is needed before the next cookie is made or checked.
    pub fn due(&self, now: Instant, cfg: &DosConfig) -> bool {
        match &self.current {
            None => true,
            Some((_, born)) => {
                now >= *born + cfg.cookie_secret_lifetime || self.uses >= cfg.cookie_secret_uses
            }
        }
    }

    /// Puts in a new secret (32 random bytes); the current one stays acceptable for the
    /// grace period.
    pub fn rotate(&mut self, now: Instant, key: &[u8]) {
        let version = self
            .current
            .as_ref()
            .map_or(1, |(s, _)| s.version.wrapping_add(1));
        let new = Secret {
            version,
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        };
        self.previous = self
            .current
            .replace((new, now))
            .map(|(s, _)| (s, now + PREVIOUS_SECRET_GRACE));
        self.uses = 0;
    }

    /// The cookie for an IKE_SA_INIT with nonce `ni` and SPIi `spi_i` from `ip`; None
    /// without a secret (`rotate` first).
    pub fn issue(&mut self, ni: &[u8], ip: IpAddr, spi_i: u64) -> Option<Vec<u8>> {
        let (s, _) = self.current.as_ref()?;
        self.uses = self.uses.saturating_add(1);
        Some(s.cookie(ni, ip, spi_i))
    }

    /// Whether `cookie` is one we made for this nonce, address and SPI, with the current
    /// secret or the previous one within its grace.
    pub fn verify(&self, now: Instant, cookie: &[u8], ni: &[u8], ip: IpAddr, spi_i: u64) -> bool {
        if cookie.len() != COOKIE_LEN {
            return false;
        }
        let (v, mac) = cookie.split_at(VERSION_LEN);
        let version = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
        let current = self.current.as_ref().map(|(s, _)| s);
        let previous = self
            .previous
            .as_ref()
            .filter(|(_, until)| now < *until)
            .map(|(s, _)| s);
        [current, previous]
            .into_iter()
            .flatten()
            .find(|s| s.version == version)
            .is_some_and(|s| s.verify(mac, ni, ip, spi_i))
    }
}

/// The responder's half-open SAs: by (SPIi, address) so a retransmitted IKE_SA_INIT finds
/// its SA (2.1), and those still waiting for IKE_AUTH counted in all and per address.
#[derive(Default)]
pub struct HalfOpen {
    /// Responder SAs by the initiator's SPI and address, until they end.
    by_init: HashMap<(u64, SocketAddr), IkeSaId>,
    /// Responder SAs that answered IKE_SA_INIT and have no IKE_AUTH yet, with the
    /// initiator's address.
    waiting: HashMap<IkeSaId, IpAddr>,
    per_ip: HashMap<IpAddr, u32>,
    pub stats: DosStats,
}

impl HalfOpen {
    pub fn find(&self, spi_i: u64, remote: SocketAddr) -> Option<IkeSaId> {
        self.by_init.get(&(spi_i, remote)).copied()
    }

    /// Half-open SAs now.
    pub fn count(&self) -> usize {
        self.waiting.len()
    }

    /// Half-open SAs from `ip` now.
    pub fn from(&self, ip: IpAddr) -> u32 {
        self.per_ip.get(&ip).copied().unwrap_or(0)
    }

    /// A responder SA answered IKE_SA_INIT.
    pub fn added(&mut self, id: IkeSaId, spi_i: u64, remote: SocketAddr) {
        self.by_init.insert((spi_i, remote), id);
        if self.waiting.insert(id, remote.ip()).is_none() {
            *self.per_ip.entry(remote.ip()).or_default() += 1;
        }
        self.stats.half_open = self.waiting.len() as u64;
        self.stats.half_open_peak = self.stats.half_open_peak.max(self.stats.half_open);
    }

    /// A responder SA is no longer half-open: IKE_AUTH came (`dead` false) or it ended.
    pub fn settled(&mut self, id: IkeSaId, spi_i: u64, remote: SocketAddr, dead: bool) {
        if dead && self.by_init.get(&(spi_i, remote)) == Some(&id) {
            self.by_init.remove(&(spi_i, remote));
        }
        let Some(ip) = self.waiting.remove(&id) else {
            return;
        };
        if dead {
            self.stats.half_open_failed += 1;
        }
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
        self.stats.half_open = self.waiting.len() as u64;
    }

    /// Entries of every table, for tests of the bounds.
    #[cfg(test)]
    pub fn sizes(&self) -> (usize, usize, usize) {
        (self.by_init.len(), self.waiting.len(), self.per_ip.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn jar(now: Instant) -> CookieJar {
        let mut j = CookieJar::default();
        j.rotate(now, &[7; 32]);
        j
    }

    #[test]
    fn cookie_is_version_then_hmac_of_ni_ip_spi() {
        let now = Instant::now();
        let mut j = jar(now);
        let ni = [0xAA; 32];
        let c = j
            .issue(&ni, ip("192.0.2.2"), 0x0102_0304_0506_0708)
            .unwrap();
        assert_eq!(c.len(), COOKIE_LEN);
        assert_eq!(&c[..4], &1u32.to_be_bytes());
        // 2.6: Hash(Ni | IPi | SPIi | <secret>), keyed by the secret.
        let key = hmac::Key::new(hmac::HMAC_SHA256, &[7; 32]);
        let mut data = ni.to_vec();
        data.extend_from_slice(&[192, 0, 2, 2]);
        data.extend_from_slice(&0x0102_0304_0506_0708u64.to_be_bytes());
        assert_eq!(&c[4..], hmac::sign(&key, &data).as_ref());
        assert!(j.verify(now, &c, &ni, ip("192.0.2.2"), 0x0102_0304_0506_0708));
    }

    #[test]
    fn cookie_bound_to_nonce_address_and_spi() {
        let now = Instant::now();
        let mut j = jar(now);
        let (ni, a, spi) = ([1; 32], ip("2001:db8::1"), 42);
        let c = j.issue(&ni, a, spi).unwrap();
        assert!(j.verify(now, &c, &ni, a, spi));
        assert!(!j.verify(now, &c, &[2; 32], a, spi), "other nonce");
        assert!(
            !j.verify(now, &c, &ni, ip("2001:db8::2"), spi),
            "other address"
        );
        assert!(!j.verify(now, &c, &ni, a, spi + 1), "other SPI");
        let mut forged = c.clone();
        forged[20] ^= 1;
        assert!(!j.verify(now, &forged, &ni, a, spi), "flipped bit");
        assert!(!j.verify(now, &c[..35], &ni, a, spi), "short");
        assert!(!j.verify(now, &[], &ni, a, spi), "empty");
        let mut other_version = c.clone();
        other_version[3] = 9;
        assert!(
            !j.verify(now, &other_version, &ni, a, spi),
            "unknown version"
        );
    }

    #[test]
    fn rotation_keeps_the_previous_secret_for_its_grace_only() {
        let t0 = Instant::now();
        let cfg = DosConfig::default();
        let mut j = jar(t0);
        let (ni, a, spi) = ([3; 32], ip("198.51.100.7"), 7);
        let old = j.issue(&ni, a, spi).unwrap();
        assert!(!j.due(t0, &cfg));
        let t1 = t0 + cfg.cookie_secret_lifetime;
        assert!(j.due(t1, &cfg), "rotates after its lifetime");
        j.rotate(t1, &[8; 32]);
        let new = j.issue(&ni, a, spi).unwrap();
        assert_ne!(old, new);
        assert_eq!(&new[..4], &2u32.to_be_bytes());
        assert!(j.verify(t1, &new, &ni, a, spi));
        assert!(
            j.verify(t1, &old, &ni, a, spi),
            "previous accepted after rotation"
        );
        let late = t1 + PREVIOUS_SECRET_GRACE;
        assert!(
            !j.verify(late, &old, &ni, a, spi),
            "previous refused after its grace"
        );
        assert!(j.verify(late, &new, &ni, a, spi));
        // Two rotations on, the first secret is gone even within the grace.
        j.rotate(t1 + Duration::from_secs(1), &[9; 32]);
        assert!(!j.verify(t1 + Duration::from_secs(1), &old, &ni, a, spi));
    }

    #[test]
    fn rotation_after_so_many_cookies() {
        let t0 = Instant::now();
        let cfg = DosConfig {
            cookie_secret_uses: 3,
            ..DosConfig::default()
        };
        let mut j = jar(t0);
        for _ in 0..3 {
            assert!(!j.due(t0, &cfg));
            j.issue(&[1; 16], ip("192.0.2.9"), 1).unwrap();
        }
        assert!(j.due(t0, &cfg));
        assert!(CookieJar::default().due(t0, &cfg), "no secret yet");
        assert!(CookieJar::default()
            .issue(&[1; 16], ip("192.0.2.9"), 1)
            .is_none());
    }

    #[test]
    fn half_open_counts_per_address_and_settles() {
        let mut h = HalfOpen::default();
        let a: SocketAddr = "192.0.2.2:500".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:4500".parse().unwrap();
        h.added(1, 11, a);
        h.added(2, 12, b);
        assert_eq!((h.count(), h.from(a.ip())), (2, 2));
        assert_eq!(h.find(12, b), Some(2));
        h.settled(1, 11, a, false);
        assert_eq!((h.count(), h.from(a.ip())), (1, 1));
        assert_eq!(
            h.find(11, a),
            Some(1),
            "still routes retransmits until it ends"
        );
        h.settled(1, 11, a, true);
        h.settled(2, 12, b, true);
        assert_eq!(h.sizes(), (0, 0, 0));
        assert_eq!(h.stats.half_open_failed, 1);
        assert_eq!(h.stats.half_open_peak, 2);
    }
}
