//! One warning a second per source address: a flood of junk datagrams (25,000 of them once
//! gave 22,080 WARN lines) must not flood the log or the disk under it. What was held back
//! is counted and said with the next line from that source.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_secs(1);
/// Sources remembered at most; past that, forgotten sources share one allowance.
const MAX_SOURCES: usize = 4096;

#[derive(Default)]
pub struct NoticeLimiter {
    sources: HashMap<IpAddr, (Instant, u64)>,
    /// For sources beyond `MAX_SOURCES`: one line a second for all of them.
    overflow: Option<(Instant, u64)>,
}

impl NoticeLimiter {
    /// What to log for one notice: `None` to hold it back, `Some(n)` to log it, saying that
    /// `n` earlier ones from the same source were held back.
    pub fn admit(&mut self, now: Instant, source: IpAddr) -> Option<u64> {
        if self.sources.len() >= MAX_SOURCES && !self.sources.contains_key(&source) {
            self.sources
                .retain(|_, (at, held)| now.duration_since(*at) < EVERY || *held > 0);
            if self.sources.len() >= MAX_SOURCES {
                return Self::step(&mut self.overflow, now);
            }
        }
        let mut slot = self.sources.get(&source).copied();
        let r = Self::step(&mut slot, now);
        if let Some(s) = slot {
            self.sources.insert(source, s);
        }
        r
    }

    fn step(slot: &mut Option<(Instant, u64)>, now: Instant) -> Option<u64> {
        match slot {
            Some((at, held)) if now.duration_since(*at) < EVERY => {
                *held += 1;
                None
            }
            Some((at, held)) => {
                let n = *held;
                *at = now;
                *held = 0;
                Some(n)
            }
            None => {
                *slot = Some((now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_from_one_source_gives_one_line_a_second_with_the_count() {
        let mut l = NoticeLimiter::default();
        let t0 = Instant::now();
        let junk: IpAddr = "192.0.2.66".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let mut lines = Vec::new();
        // 25,000 datagrams over 2.5 s.
        for i in 0..25_000u64 {
            let now = t0 + Duration::from_micros(i * 100);
            if let Some(held) = l.admit(now, junk) {
                lines.push(held);
            }
        }
        // At 0 s, 1 s and 2 s, each saying how many the second before held back.
        assert_eq!(lines, [0, 9_999, 9_999]);
        // Another source is not held back by the flood.
        assert_eq!(l.admit(t0 + Duration::from_millis(100), other), Some(0));
    }

    #[test]
    fn many_sources_share_a_bounded_table() {
        let mut l = NoticeLimiter::default();
        let t0 = Instant::now();
        let mut logged = 0;
        for i in 0..20_000u32 {
            let a = IpAddr::from(std::net::Ipv4Addr::from(0xC633_6400 + i));
            if l.admit(t0, a).is_some() {
                logged += 1;
            }
        }
        assert!(l.sources.len() <= MAX_SOURCES);
        assert_eq!(logged, MAX_SOURCES + 1, "the rest share one line a second");
    }
}
