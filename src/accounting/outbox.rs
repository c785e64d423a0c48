//! The outbox: every record is in the journal (fsynced) before it counts as queued, and
//! leaves it only when a RADIUS server acknowledged it. Delivery keeps each session's
//! records in order (a Stop never overtakes its Start), backs off while no server answers,
//! and runs a window of records at once that adapts to the server like TCP's congestion
//! avoidance: one more per window of records answered quickly at the first try, half as many
//! when an answer needed a retransmission or took more than half the timeout. A burst
//! of 10,000 Starts must not drown a server that answers 100 a second: every late answer
//! means a retransmission, which (with a new Acct-Delay-Time, so a new Identifier, RFC 2866
//! 5.2) the server cannot tell from a new record, and it writes the record twice.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};
use vpnd_radius::{AccountingRecord, AcctStatus, Delivered, Group, Journal, JournalError, Seq};

use crate::daemon::logging::AAA;

/// Records being delivered at once, at most (a server has 256 RADIUS identifiers).
pub const MAX_IN_FLIGHT: usize = 256;
/// The window to begin with.
const WINDOW_FIRST: usize = 32;
const BACKOFF_FIRST: Duration = Duration::from_secs(2);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The outcome of one record's delivery, back to the owner.
pub type Outcome = (Seq, Result<Delivered, String>);

/// Counters for `show aaa accounting`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxStats {
    pub delivered: u64,
    /// Delivery rounds in which every server of the record's groups failed.
    pub undelivered_rounds: u64,
    /// Records refused because the outbox was full (logged as errors, each one).
    pub refused_full: u64,
    /// Records that could not be written to the journal (logged as errors, each one).
    pub journal_errors: u64,
    pub last_error: Option<String>,
}

pub struct Outbox {
    journal: Journal,
    queue: VecDeque<(Seq, AccountingRecord)>,
    in_flight: HashSet<Seq>,
    groups: HashMap<String, Group>,
    results: mpsc::UnboundedSender<Outcome>,
    retry_at: Option<Instant>,
    backoff: Duration,
    /// Records that may be in flight now (AIMD, 1..=MAX_IN_FLIGHT).
    window: usize,
    /// Quick first-try answers since the window last grew.
    quick: usize,
    /// When the window was last halved: once per round trip, as TCP does, not once per
    /// late answer of the same round.
    last_cut: Option<Instant>,
    /// The servers' first timeout: an answer slower than half of it shrinks the window.
    timeout: Duration,
    pub stats: OutboxStats,
}

impl Outbox {
    /// Opens the journal: what it still holds from an earlier run is queued first.
    pub fn open(
        path: &Path,
        limit: usize,
        groups: HashMap<String, Group>,
        timeout: Duration,
        results: mpsc::UnboundedSender<Outcome>,
    ) -> Result<Outbox, JournalError> {
        let (journal, pending) = Journal::open(path, limit)?;
        let r = journal.recovery();
        if r.torn_lines > 0 {
            warn!(path = %path.display(), torn = r.torn_lines, "accounting journal: a torn last write was dropped (a crash while appending)");
        }
        if !pending.is_empty() {
            info!(
                records = pending.len(),
                "accounting: records from the previous run are queued again"
            );
        }
        Ok(Outbox {
            journal,
            queue: pending.into(),
            in_flight: HashSet::new(),
            groups,
            results,
            retry_at: None,
            backoff: BACKOFF_FIRST,
            window: WINDOW_FIRST,
            quick: 0,
            last_cut: None,
            timeout,
            stats: OutboxStats::default(),
        })
    }

    /// Queues records, durably (one fsync for all). What does not fit is reported, record
    /// by record, as an error: nothing leaves silently.
    pub fn queue(&mut self, records: Vec<AccountingRecord>) {
        if records.is_empty() {
            return;
        }
        match self.journal.append_many(&records) {
            Ok(seqs) => {
                let n = seqs.len();
                for r in &records[n..] {
                    self.refused(r, "the outbox is full");
                }
                self.queue
                    .extend(seqs.into_iter().zip(records.into_iter().take(n)));
            }
            Err(JournalError::Full { limit }) => {
                for r in &records {
                    self.refused(r, &format!("the outbox is full ({limit} records)"));
                }
            }
            Err(e) => {
                self.stats.journal_errors += records.len() as u64;
                for r in &records {
                    error!(
                        session = r.acct_session_id,
                        status = ?r.status,
                        "accounting record NOT queued: journal write failed: {e}"
                    );
                }
                self.stats.last_error = Some(e.to_string());
            }
        }
    }

    fn refused(&mut self, r: &AccountingRecord, why: &str) {
        self.stats.refused_full += 1;
        error!(
            session = r.acct_session_id,
            status = ?r.status,
            "accounting record NOT queued: {why}"
        );
    }

    /// Starts deliveries: in journal order, at most one record per session and group list
    /// at a time, none while backing off. Accounting-On and -Off are barriers (RFC 2866
    /// 5.1: a server may close every open session of the NAS when it sees them): they wait
    /// for every record queued before them, and every record after them waits for them.
    pub fn pump(&mut self, now: Instant) {
        if self.retry_at.is_some_and(|t| now < t) {
            return;
        }
        self.retry_at = None;
        let mut busy: HashSet<(&str, &[String])> = HashSet::new();
        let mut start = Vec::new();
        let mut before_barrier = false;
        let mut in_barrier = false;
        for (seq, r) in &self.queue {
            if self.in_flight.len() + start.len() >= self.window {
                break;
            }
            let barrier = matches!(
                r.status,
                AcctStatus::AccountingOn | AcctStatus::AccountingOff
            );
            if barrier && before_barrier || !barrier && in_barrier {
                break;
            }
            in_barrier |= barrier;
            before_barrier |= !barrier;
            let first = busy.insert((r.acct_session_id.as_str(), r.groups.as_slice()));
            if first && !self.in_flight.contains(seq) {
                start.push((*seq, r.clone()));
            }
        }
        for (seq, r) in start {
            self.in_flight.insert(seq);
            let groups = self.groups_for(&r);
            let tx = self.results.clone();
            tokio::spawn(async move {
                let mut errors = Vec::new();
                for (name, g) in groups {
                    match g.send(&r).await {
                        Ok(d) => {
                            let _ = tx.send((seq, Ok(d)));
                            return;
                        }
                        Err(e) => errors.push(format!("group {name}: {e}")),
                    }
                }
                let _ = tx.send((seq, Err(errors.join("; "))));
            });
        }
    }

    /// The groups a record goes to, in order; a record journalled for a group that is no
    /// longer configured goes to every configured group instead (it must not stay stuck).
    fn groups_for(&self, r: &AccountingRecord) -> Vec<(String, Group)> {
        let named: Vec<(String, Group)> = r
            .groups
            .iter()
            .filter_map(|n| self.groups.get(n).map(|g| (n.clone(), g.clone())))
            .collect();
        if !named.is_empty() {
            return named;
        }
        let mut all: Vec<(String, Group)> = self
            .groups
            .iter()
            .map(|(n, g)| (n.clone(), g.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Deliveries that ended: acknowledged records leave the journal (one fsync for all),
    /// the others stay queued and delivery backs off.
    pub fn outcomes(&mut self, outcomes: Vec<Outcome>, now: Instant) {
        let mut acked = Vec::new();
        for (seq, res) in outcomes {
            self.in_flight.remove(&seq);
            match res {
                Ok(d) => {
                    debug!(target: AAA, seq = seq.0, server = d.server, tries = d.tries, "accounting record delivered");
                    acked.push(seq);
                    self.adapt(d.tries == 1 && d.rtt < self.timeout / 2, now);
                }
                Err(e) => {
                    self.stats.undelivered_rounds += 1;
                    self.adapt(false, now);
                    if self.retry_at.is_none() {
                        warn!(
                            queued = self.queue.len(),
                            retry_s = self.backoff.as_secs(),
                            "accounting: no RADIUS server answered; records stay queued: {e}"
                        );
                        self.retry_at = Some(now + self.backoff);
                        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                    }
                    self.stats.last_error = Some(e);
                }
            }
        }
        if acked.is_empty() {
            return;
        }
        self.backoff = BACKOFF_FIRST;
        match self.journal.ack_many(&acked) {
            Ok(()) => {
                self.stats.delivered += acked.len() as u64;
                let done: HashSet<Seq> = acked.into_iter().collect();
                self.queue.retain(|(s, _)| !done.contains(s));
            }
            // The records stay queued: a duplicate after a crash, never a loss.
            Err(e) => {
                error!("accounting journal: cannot record deliveries: {e}");
                self.stats.last_error = Some(e.to_string());
            }
        }
    }

    /// AIMD: a quick first-try answer counts towards one more in flight (per window's worth
    /// of them); a slow or retransmitted one halves the window.
    fn adapt(&mut self, quick: bool, now: Instant) {
        if quick {
            self.quick += 1;
            if self.quick >= self.window {
                self.quick = 0;
                self.window = (self.window + 1).min(MAX_IN_FLIGHT);
            }
        } else if !self
            .last_cut
            .is_some_and(|t| now.duration_since(t) < self.timeout / 2)
        {
            self.quick = 0;
            self.last_cut = Some(now);
            self.window = (self.window / 2).max(1);
        }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    pub fn window(&self) -> usize {
        self.window
    }

    pub fn limit(&self) -> usize {
        self.journal.limit()
    }

    pub fn retry_in(&self, now: Instant) -> Option<Duration> {
        self.retry_at.map(|t| t.saturating_duration_since(now))
    }

    pub fn server_stats(&self) -> Vec<vpnd_radius::ServerStats> {
        let mut names: Vec<&String> = self.groups.keys().collect();
        names.sort();
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for n in names {
            for s in self.groups[n].stats() {
                if seen.insert(s.name.clone()) {
                    out.push(s);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(status: AcctStatus, id: &str) -> AccountingRecord {
        AccountingRecord::new(status, id, std::time::SystemTime::now())
    }

    fn delivered() -> Result<Delivered, String> {
        Ok(Delivered {
            server: "t".into(),
            tries: 1,
            rtt: Duration::from_millis(1),
        })
    }

    #[tokio::test]
    async fn accounting_on_waits_for_what_came_before_and_holds_back_what_comes_after() {
        let dir = std::env::temp_dir().join(format!("vpnd-outbox-order-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let (tx, _rx) = mpsc::unbounded_channel();
        let mut o = Outbox::open(
            &dir.join("j"),
            100,
            HashMap::new(),
            Duration::from_secs(2),
            tx,
        )
        .unwrap();
        o.queue(vec![
            rec(AcctStatus::Stop, "old-1"),
            rec(AcctStatus::Start, "old-2"),
            rec(AcctStatus::AccountingOn, "on"),
            rec(AcctStatus::Start, "new-1"),
            rec(AcctStatus::Stop, "new-1"),
        ]);
        let t = Instant::now();
        let flying = |o: &Outbox| {
            let mut v: Vec<String> = o
                .queue
                .iter()
                .filter(|(s, _)| o.in_flight.contains(s))
                .map(|(_, r)| format!("{:?} {}", r.status, r.acct_session_id))
                .collect();
            v.sort();
            v
        };
        o.pump(t);
        assert_eq!(
            flying(&o),
            ["Start old-2", "Stop old-1"],
            "the On waits for both"
        );
        let seqs: Vec<Seq> = o.queue.iter().map(|(s, _)| *s).collect();
        o.outcomes(vec![(seqs[0], delivered())], t);
        o.pump(t);
        assert_eq!(flying(&o), ["Start old-2"]);
        o.outcomes(vec![(seqs[1], delivered())], t);
        o.pump(t);
        assert_eq!(flying(&o), ["AccountingOn on"], "nothing passes the On");
        o.outcomes(vec![(seqs[2], delivered())], t);
        o.pump(t);
        assert_eq!(
            flying(&o),
            ["Start new-1"],
            "a session's records stay in order"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_window_grows_per_window_of_quick_answers_and_halves_once_per_round() {
        let dir = std::env::temp_dir().join(format!("vpnd-outbox-aimd-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let (tx, _rx) = mpsc::unbounded_channel();
        let timeout = Duration::from_secs(2);
        let mut o = Outbox::open(&dir.join("j"), 10, HashMap::new(), timeout, tx).unwrap();
        let t0 = Instant::now();
        assert_eq!(o.window(), WINDOW_FIRST);
        for _ in 0..WINDOW_FIRST - 1 {
            o.adapt(true, t0);
        }
        assert_eq!(
            o.window(),
            WINDOW_FIRST,
            "not before a whole window of answers"
        );
        o.adapt(true, t0);
        assert_eq!(o.window(), WINDOW_FIRST + 1);
        o.adapt(false, t0);
        assert_eq!(o.window(), WINDOW_FIRST.div_ceil(2));
        o.adapt(false, t0 + timeout / 4);
        assert_eq!(
            o.window(),
            WINDOW_FIRST.div_ceil(2),
            "one cut per round trip"
        );
        o.adapt(false, t0 + timeout);
        assert_eq!(o.window(), WINDOW_FIRST.div_ceil(4));
        for i in 0..20 {
            o.adapt(false, t0 + timeout * (2 + i));
        }
        assert_eq!(o.window(), 1, "never below one");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
