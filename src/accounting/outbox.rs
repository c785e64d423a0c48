//! The outbox: every record is in the journal (fsynced) before it counts as queued, and
//! leaves it only when a RADIUS server acknowledged it. Delivery keeps each session's
//! records in order (a Stop never overtakes its Start), backs off while no server answers,
//! and runs a window of records at once that adapts to the server like TCP's congestion
//! avoidance: one more per window of records answered quickly at the first try, half as many
//! when an answer needed a retransmission or took more than half the timeout. A burst
//! of 10,000 Starts must not drown a server that answers 100 a second: every late answer
//! means a retransmission, which (with a new Acct-Delay-Time, so a new Identifier, RFC 2866
//! 5.2) the server cannot tell from a new record, and it writes the record twice.
//!
//! [`Outbox::queue`] says which records it took (a prefix of them, durably): the caller keeps
//! the rest and tries again, so a write error (disk full) loses nothing. The outbox itself
//! refuses nothing: the record limit is the caller's admission rule ([`Outbox::room`]), for
//! Starts and Interims only, so that Stops (the bill) and Accounting-On/Off always get in.
//! An acknowledgement that cannot be journalled is kept in memory and retried: the record is
//! not sent again in this run (a restart before the retry succeeds sends it again: a
//! duplicate, never a loss).

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
/// Records per journal write in [`Outbox::queue`]: on a nearly full disk the first ones get
/// in even when the whole batch would not fit.
const WRITE_CHUNK: usize = 1024;

/// The outcome of one record's delivery, back to the owner.
pub type Outcome = (Seq, Result<Delivered, String>);

/// Counters for `show aaa accounting`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxStats {
    pub delivered: u64,
    /// Delivery rounds in which every server of the record's groups failed.
    pub undelivered_rounds: u64,
    /// Starts and Interims refused because the outbox was full (never a Stop or an
    /// Accounting-On/Off).
    pub refused_full: u64,
    /// Sessions not accounted at all because their Start was refused (logged, each one):
    /// neither Start nor Stop is sent for them.
    #[serde(default)]
    pub sessions_unaccounted: u64,
    /// Interims not queued: the session's previous Interim was still undelivered (the next
    /// one would only repeat its counters, RFC 2866 5.1), or the journal could not be written.
    #[serde(default)]
    pub interims_skipped: u64,
    /// Journal writes that failed (appends and acks); each is retried, nothing is dropped.
    pub journal_errors: u64,
    /// Deliveries whose ack is not journalled yet (retried every second): not sent again,
    /// but a restart now would send them again.
    #[serde(default)]
    pub unrecorded_acks: usize,
    pub last_error: Option<String>,
}

/// What [`Outbox::queue`] took: the first `accepted` records, durably in the journal. The
/// others come back in `rest`, stopped by `error` (a journal write failed).
#[derive(Debug)]
pub struct Queued {
    pub accepted: usize,
    pub rest: Vec<AccountingRecord>,
    pub error: Option<String>,
}

pub struct Outbox {
    journal: Journal,
    queue: VecDeque<(Seq, AccountingRecord)>,
    in_flight: HashSet<Seq>,
    /// Records the caller admits while fewer are queued (Starts and Interims).
    limit: usize,
    /// Delivered records whose ack could not be written yet.
    unrecorded: Vec<Seq>,
    /// Sessions whose records are not sent for now (their crash Stop is not durable yet).
    held: HashSet<String>,
    /// Undelivered Interims per Acct-Session-Id.
    interims: HashMap<String, u32>,
    groups: HashMap<String, Group>,
    /// For records none of whose groups is configured (`radius`, if there is one).
    default: Option<Group>,
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
        default: Option<Group>,
        timeout: Duration,
        results: mpsc::UnboundedSender<Outcome>,
    ) -> Result<Outbox, JournalError> {
        // The journal takes every record: the limit is an admission rule (see `room`).
        let (journal, pending) = Journal::open(path, usize::MAX)?;
        let r = journal.recovery();
        if r.torn_lines > 0 {
            warn!(path = %path.display(), torn = r.torn_lines, "accounting journal: a torn last write was dropped (a crash while appending)");
        }
        if r.corrupt_lines > 0 {
            error!(path = %path.display(), corrupt = r.corrupt_lines, saved_to = %r.corrupt_file.as_ref().map_or_else(|| "-".into(), |p| p.display().to_string()),
                "accounting journal: CORRUPT lines moved aside; their records are NOT sent (see the saved file)");
        }
        if !pending.is_empty() {
            info!(
                records = pending.len(),
                "accounting: records from the previous run are queued again"
            );
        }
        let mut interims = HashMap::new();
        for (_, r) in &pending {
            if r.status == AcctStatus::InterimUpdate {
                *interims.entry(r.acct_session_id.clone()).or_insert(0) += 1;
            }
        }
        Ok(Outbox {
            journal,
            queue: pending.into(),
            in_flight: HashSet::new(),
            limit,
            unrecorded: Vec::new(),
            held: HashSet::new(),
            interims,
            groups,
            default,
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

    /// Queues records durably, in order, a chunk per write and fsync, up to the first write
    /// that fails; what it took and what it did not are in the answer. Logs nothing: the
    /// caller keeps the rest and reports the failure once.
    pub fn queue(&mut self, mut records: Vec<AccountingRecord>) -> Queued {
        let mut seqs = Vec::with_capacity(records.len());
        let mut error = None;
        for chunk in records.chunks(WRITE_CHUNK) {
            match self.write(chunk) {
                Ok(s) => seqs.extend(s),
                Err(e) => {
                    self.stats.journal_errors += 1;
                    self.stats.last_error = Some(e.to_string());
                    error = Some(e.to_string());
                    break;
                }
            }
        }
        let rest = records.split_off(seqs.len());
        for r in &records {
            if r.status == AcctStatus::InterimUpdate {
                *self.interims.entry(r.acct_session_id.clone()).or_insert(0) += 1;
            }
        }
        let accepted = records.len();
        self.queue.extend(seqs.into_iter().zip(records));
        Queued {
            accepted,
            rest,
            error,
        }
    }

    fn write(&mut self, records: &[AccountingRecord]) -> Result<Vec<Seq>, JournalError> {
        #[cfg(test)]
        if let Some(e) = fault::injected(self.journal.path()) {
            return Err(e);
        }
        self.journal.append_many(records)
    }

    /// Whether a Start or an Interim may be queued, with `waiting` more records not yet
    /// written: fewer than the limit are queued. Stops and Accounting-On/Off are always taken.
    pub fn room(&self, waiting: usize) -> bool {
        self.queue.len() + waiting < self.limit
    }

    /// Whether the session has an Interim not yet delivered.
    pub fn has_interim(&self, session_id: &str) -> bool {
        self.interims.contains_key(session_id)
    }

    /// Holds the session's records back (they stay queued, in order) until [`release`].
    ///
    /// [`release`]: Outbox::release
    pub fn hold(&mut self, session_id: &str) {
        self.held.insert(session_id.to_string());
    }

    pub fn release(&mut self, session_id: &str) {
        self.held.remove(session_id);
    }

    /// The records queued, in journal order.
    pub fn records(&self) -> impl Iterator<Item = &AccountingRecord> {
        self.queue.iter().map(|(_, r)| r)
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
            // A held record keeps its session busy: the session's later records wait too.
            let first = busy.insert((r.acct_session_id.as_str(), r.groups.as_slice()));
            if first && !self.in_flight.contains(seq) && !self.held.contains(&r.acct_session_id) {
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

    /// A reload's transport: the groups by name, the default, the first timeout and the
    /// admission limit. Deliveries under way keep their group handles, which see the new
    /// servers at once ([`Group::reconfigure`]).
    pub fn set_transport(
        &mut self,
        groups: HashMap<String, Group>,
        default: Option<Group>,
        timeout: Duration,
        limit: usize,
    ) {
        self.groups = groups;
        self.default = default;
        self.timeout = timeout;
        self.limit = limit;
        // Delivery starts again now, on the new servers.
        self.retry_at = None;
        self.backoff = BACKOFF_FIRST;
    }

    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.get(name)
    }

    pub fn groups(&self) -> impl Iterator<Item = (&String, &Group)> {
        self.groups.iter()
    }

    pub fn default_group(&self) -> Option<&Group> {
        self.default.as_ref()
    }

    /// The groups a record goes to, in order; a record journalled for a group that is no
    /// longer configured goes to the default group `radius`, or without one to every
    /// configured group (it must not stay stuck).
    fn groups_for(&self, r: &AccountingRecord) -> Vec<(String, Group)> {
        let named: Vec<(String, Group)> = r
            .groups
            .iter()
            .filter_map(|n| self.groups.get(n).map(|g| (n.clone(), g.clone())))
            .collect();
        if !named.is_empty() {
            return named;
        }
        if let Some(d) = &self.default {
            return vec![(super::DEFAULT_GROUP.to_string(), d.clone())];
        }
        let mut all: Vec<(String, Group)> = self
            .groups
            .iter()
            .map(|(n, g)| (n.clone(), g.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Deliveries that ended: acknowledged records leave the queue at once (never sent
    /// twice) and the journal with one fsync for all; the others stay queued and delivery
    /// backs off.
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
        self.stats.delivered += acked.len() as u64;
        let done: HashSet<Seq> = acked.iter().copied().collect();
        let interims = &mut self.interims;
        self.queue.retain(|(s, r)| {
            if !done.contains(s) {
                return true;
            }
            if r.status == AcctStatus::InterimUpdate {
                if let Some(n) = interims.get_mut(&r.acct_session_id) {
                    *n -= 1;
                    if *n == 0 {
                        interims.remove(&r.acct_session_id);
                    }
                }
            }
            false
        });
        self.unrecorded.extend(acked);
        self.record_acks();
    }

    /// Writes the acks not yet journalled (after deliveries, and every second while some
    /// failed). The first failure and the recovery are logged, not every retry.
    pub fn record_acks(&mut self) {
        if self.unrecorded.is_empty() {
            return;
        }
        let failing = self.stats.unrecorded_acks > 0;
        let journal = &self.journal;
        self.unrecorded.retain(|s| journal.is_pending(*s));
        let result = {
            #[cfg(test)]
            let injected = fault::injected(self.journal.path());
            #[cfg(not(test))]
            let injected: Option<JournalError> = None;
            match injected {
                Some(e) => Err(e),
                None => self.journal.ack_many(&self.unrecorded),
            }
        };
        match result {
            Ok(()) => {
                if failing {
                    warn!(
                        acks = self.unrecorded.len(),
                        "accounting journal: deliveries recorded again"
                    );
                }
                self.unrecorded.clear();
                self.stats.unrecorded_acks = 0;
            }
            Err(e) => {
                if !failing {
                    error!(
                        acks = self.unrecorded.len(),
                        "accounting journal: cannot record deliveries (retried every second; they are not sent again, but a restart now would): {e}"
                    );
                }
                self.stats.journal_errors += 1;
                self.stats.unrecorded_acks = self.unrecorded.len();
                self.stats.last_error = Some(e.to_string());
            }
        }
    }

    /// Every delivery so far is recorded in the journal.
    pub fn all_recorded(&self) -> bool {
        self.unrecorded.is_empty()
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
        } else if self
            .last_cut
            .is_none_or(|t| now.duration_since(t) >= self.timeout / 2)
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
        self.limit
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

/// Test-only write failures, per journal path (tests run in parallel: no global switch).
#[cfg(test)]
pub(crate) mod fault {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    use vpnd_radius::JournalError;

    static FAILING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

    /// Every write to the journal at `path` fails (ENOSPC) until [`heal`].
    pub fn fail(path: &Path) {
        FAILING.lock().unwrap().push(path.to_path_buf());
    }

    pub fn heal(path: &Path) {
        FAILING.lock().unwrap().retain(|p| p != path);
    }

    pub(super) fn injected(path: &Path) -> Option<JournalError> {
        FAILING
            .lock()
            .unwrap()
            .iter()
            .any(|p| p == path)
            .then(|| JournalError::Io {
                path: path.to_path_buf(),
                op: "append (injected)",
                source: std::io::Error::from_raw_os_error(28),
            })
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
            None,
            Duration::from_secs(2),
            tx,
        )
        .unwrap();
        let q = o.queue(vec![
            rec(AcctStatus::Stop, "old-1"),
            rec(AcctStatus::Start, "old-2"),
            rec(AcctStatus::AccountingOn, "on"),
            rec(AcctStatus::Start, "new-1"),
            rec(AcctStatus::Stop, "new-1"),
        ]);
        assert_eq!((q.accepted, q.rest.len()), (5, 0));
        let t = Instant::now();
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

    fn open(name: &str) -> (Outbox, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "vpnd-outbox-{name}-{}-{:?}",
            std::process::id(),
            Instant::now()
        ));
        let _ = std::fs::create_dir_all(&dir);
        let (tx, rx) = mpsc::unbounded_channel();
        std::mem::forget(rx); // the deliveries' outcomes are given by hand
        let path = dir.join("j");
        let o = Outbox::open(&path, 100, HashMap::new(), None, Duration::from_secs(2), tx).unwrap();
        (o, path)
    }

    fn flying(o: &Outbox) -> Vec<String> {
        let mut v: Vec<String> = o
            .queue
            .iter()
            .filter(|(s, _)| o.in_flight.contains(s))
            .map(|(_, r)| format!("{:?} {}", r.status, r.acct_session_id))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_failed_write_takes_nothing_and_gives_the_records_back() {
        let (mut o, path) = open("fail");
        fault::fail(&path);
        let q = o.queue(vec![
            rec(AcctStatus::Start, "a"),
            rec(AcctStatus::Stop, "a"),
        ]);
        assert_eq!((q.accepted, q.rest.len(), o.len()), (0, 2, 0));
        assert!(q.error.is_some());
        assert_eq!(o.stats.journal_errors, 1);
        fault::heal(&path);
        let q = o.queue(q.rest);
        assert_eq!((q.accepted, q.rest.len(), o.len()), (2, 0, 2));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[tokio::test]
    async fn a_held_session_waits_with_its_later_records() {
        let (mut o, path) = open("hold");
        o.queue(vec![
            rec(AcctStatus::Start, "s1"),
            rec(AcctStatus::Stop, "s1"),
            rec(AcctStatus::Start, "s2"),
        ]);
        o.hold("s1");
        o.pump(Instant::now());
        assert_eq!(flying(&o), ["Start s2"]);
        o.release("s1");
        o.pump(Instant::now());
        assert_eq!(flying(&o), ["Start s1", "Start s2"]);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[tokio::test]
    async fn a_delivery_whose_ack_cannot_be_written_is_not_sent_again() {
        let (mut o, path) = open("ack");
        o.queue(vec![rec(AcctStatus::Stop, "a")]);
        let t = Instant::now();
        o.pump(t);
        let seq = o.queue[0].0;
        fault::fail(&path);
        o.outcomes(vec![(seq, delivered())], t);
        assert_eq!((o.len(), o.stats.unrecorded_acks), (0, 1));
        assert!(!o.all_recorded());
        o.pump(t);
        assert_eq!(o.in_flight(), 0, "delivered: not sent again");
        fault::heal(&path);
        o.record_acks();
        assert!(o.all_recorded());
        assert_eq!(o.stats.unrecorded_acks, 0);
        drop(o);
        let (_, pending) = Journal::open(&path, 100).unwrap();
        assert!(pending.is_empty());
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn an_interim_is_known_until_delivered() {
        let (mut o, path) = open("interim");
        o.queue(vec![rec(AcctStatus::InterimUpdate, "a")]);
        assert!(o.has_interim("a") && !o.has_interim("b"));
        let seq = o.queue[0].0;
        o.outcomes(vec![(seq, delivered())], Instant::now());
        assert!(!o.has_interim("a"));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn the_window_grows_per_window_of_quick_answers_and_halves_once_per_round() {
        let dir = std::env::temp_dir().join(format!("vpnd-outbox-aimd-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let (tx, _rx) = mpsc::unbounded_channel();
        let timeout = Duration::from_secs(2);
        let mut o = Outbox::open(&dir.join("j"), 10, HashMap::new(), None, timeout, tx).unwrap();
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
