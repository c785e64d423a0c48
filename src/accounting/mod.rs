//! RADIUS accounting, IOS's "IPsec VPN Accounting": a session (an IKE SA and the IPsec SA
//! pairs it created) is accounted from its first pair to its last. Start when the first pair
//! is up, Interim-Update every `accounting.update_periodic`, Stop when no pair is left, with
//! the IOS attributes and Cisco VSAs ([`records`]).
//!
//! One task owns the accounting state: the active sessions, their identities and last
//! counters, and the [`outbox`]. The daemon's main task sends it events (up, down with a
//! cause, counters after each kernel dump) and never waits for RADIUS: tunnels stay up
//! while no server answers.
//!
//! # Nothing lost, nothing out of order
//! A record leaves a journal only once a server acknowledged it, or once it is durably in the
//! other journal. Two journals: the outbox's (records to send) and `<journal>.sessions`, one
//! prepared *crash Stop* per active session copy (last recorded counters, NAS-Reboot),
//! refreshed every minute, sent at the next start if vpnd dies with the session up (then
//! Accounting-On, RFC 2866 5.1).
//! - A session's Start is fsynced into the outbox before its crash Stop is written, and is not
//!   sent until that crash Stop is durable: a server never gets a Stop for a session it did
//!   not see start, nor a Start without a Stop to follow. A Start journalled just before a
//!   crash that came before its crash Stop gets one made from it at the next start.
//! - A crash Stop leaves the sessions journal only once the session's real Stop is in the
//!   outbox journal.
//! - Records not written yet wait in memory, in order (a session's Stop behind its Start,
//!   every new record behind an Accounting-On), and are retried every second and after
//!   deliveries: a journal write error (disk full) keeps them, logged once when it starts and
//!   once when it ends, counted in `show aaa accounting`. A real Stop that waits is *parked*:
//!   written over the session's crash Stop in the sessions journal (if that write works), so a
//!   crash sends it with its real cause and final counters. Interims are skipped meanwhile
//!   (the Stop carries the totals), so memory stays bounded by the sessions.
//!
//! # A full outbox
//! `accounting.outbox_limit` bounds the Starts and Interims queued; Stops and Accounting-On/Off
//! are always queued (the bill: one per session at most). A new session whose Start does not
//! fit is not accounted at all (no Start, no Stop: a Stop without a Start is what a billing
//! system cannot use), logged as an error and counted. [`WhenFull`] says what the daemon does
//! with new sessions meanwhile: refuse them ([`Accounting::admits_new_sessions`]) or let them
//! run unaccounted. An Interim is skipped while the session's previous one is undelivered:
//! Interims carry totals (RFC 2866 5.1), the newer one adds nothing the Stop will not have.
//!
//! # Duplicates
//! Only after a crash: a record answered by the server but whose ack was not journalled yet
//! is sent again (at-least-once, RFC 2866 gives a server no way to tell), and a session whose
//! real Stop was delivered while its crash Stop's removal kept failing (disk full) may get
//! both. And at a reload that removes a server whose answer is on its way: the record,
//! moved to the new servers, reaches both.

pub mod outbox;
pub mod records;

use crate::unix_now;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, warn};
use vpnd_radius::{
    AccountingRecord, AcctStatus, ClientConfig, Group, Journal, Seq, ServerSpec, ServerStats,
};
use vpnd_xfrm::SaCounters;

pub use crate::config::WhenFull;
use crate::config::{AccountingMode, Config};
use crate::daemon::logging::AAA;
use crate::session::model::{Counted, SessionKey, SessionView};
pub use outbox::OutboxStats;
pub use records::{
    crash_stop, crash_stop_from, interim_record, start_record, stop_record, with_kernel_readings,
    Cause, SessionIdentity,
};

/// How often the prepared crash Stops are brought up to date with the latest counters.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(60);

/// What `vpnctl show aaa accounting` shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountingView {
    /// Sessions being accounted (between their Start and their Stop).
    pub active_sessions: usize,
    /// Records in the outbox, not yet acknowledged by a server.
    pub queued: usize,
    pub in_flight: usize,
    /// How many records may be in flight now (adapts to the servers' answers).
    pub window: usize,
    pub limit: usize,
    pub journal: String,
    /// Seconds until delivery is tried again, while no server answers.
    pub retry_in_s: Option<u64>,
    pub interim_s: Option<u64>,
    pub outbox: OutboxStats,
    pub servers: Vec<ServerStats>,
    /// Records not yet written to the outbox journal (write errors): kept in memory and
    /// retried every second.
    #[serde(default)]
    pub waiting: usize,
    /// Active sessions without a durable crash Stop (their Start or crash Stop could not be
    /// written yet): a crash now would lose their accounting.
    #[serde(default)]
    pub without_crash_stop: usize,
    /// The outbox holds `limit` records: new sessions' Starts are refused.
    #[serde(default)]
    pub full: bool,
    /// `accounting.when_full: refuse`: while full, the daemon refuses new sessions (else
    /// they run unaccounted).
    #[serde(default)]
    pub refuses_when_full: bool,
}

enum Event {
    Up(Box<SessionView>),
    Down(Box<SessionView>, Cause),
    Totals(Vec<(SessionKey, Counted)>),
    Show(oneshot::Sender<AccountingView>),
    Reconfigure(Box<Plan>),
    Shutdown(Duration),
}

/// The daemon's handle on the accounting task.
pub struct Accounting {
    tx: mpsc::UnboundedSender<Event>,
    task: tokio::task::JoinHandle<()>,
    /// [`WhenFull::Refuse`].
    refuse: Arc<AtomicBool>,
    /// Set by the task: a new session's Start can be journalled now (the outbox has room and
    /// its journal takes writes).
    can_account: Arc<AtomicBool>,
    /// The task's latest [`crate::metrics::AccountingSnapshot`].
    metrics: watch::Receiver<Arc<crate::metrics::AccountingSnapshot>>,
}

/// How one peer's sessions are accounted (its method list).
#[derive(Clone, Debug)]
struct Profile {
    mode: AccountingMode,
    /// One group list per copy of each record: `[[g1, g2]]` tries g1 then g2; broadcast
    /// gives `[[g1], [g2]]`, a copy to each.
    copies: Vec<Vec<String>>,
    group_id: Option<String>,
    ivrf: Option<String>,
}

/// What a configuration asks of the accounting task, checked before anything changes (a
/// reload is refused whole on an error): the peers' method lists and the server groups.
pub struct Plan {
    profiles: HashMap<String, Profile>,
    /// The groups the method lists use, with their servers (Accounting-On/Off go to these).
    used: BTreeMap<String, Vec<ServerSpec>>,
    /// Every group of `radius.groups` with its servers: a session keeps the groups it
    /// started with while they exist, even when no list names them any more.
    all: BTreeMap<String, Vec<ServerSpec>>,
    client: ClientConfig,
    interim: Option<Duration>,
    limit: usize,
    send_vsas: bool,
}

/// Where a record goes whose groups are all gone from the configuration: IOS's default
/// group `radius` (every server, unless the file defines a group by that name).
const DEFAULT_GROUP: &str = "radius";

impl Plan {
    pub fn of(config: &Config) -> Result<Plan> {
        let mut profiles = HashMap::new();
        for p in &config.peers {
            let Some(list_name) = &p.accounting else {
                continue;
            };
            let list = config
                .accounting
                .lists
                .get(list_name)
                .with_context(|| format!("peer {}: no accounting list {list_name}", p.name))?;
            let copies = if list.broadcast {
                list.groups.iter().map(|g| vec![g.clone()]).collect()
            } else {
                vec![list.groups.clone()]
            };
            profiles.insert(
                p.name.clone(),
                Profile {
                    mode: list.mode,
                    copies,
                    group_id: p.group.clone(),
                    ivrf: p.ivrf.clone(),
                },
            );
        }
        let mut all = BTreeMap::new();
        for name in config.radius.groups.keys() {
            let servers = server_specs(config, name, |s| s.acct_port)?;
            if servers.is_empty() {
                continue;
            }
            all.insert(name.clone(), servers);
        }
        let mut used = BTreeMap::new();
        for name in profiles.values().flat_map(|p| p.copies.iter().flatten()) {
            let servers = all.get(name).with_context(|| {
                format!("RADIUS group {name}: not configured, or without a server")
            })?;
            // The transport's own checks (non-empty secrets, unique names), now.
            check_servers(name, servers)?;
            used.insert(name.clone(), servers.clone());
        }
        Ok(Plan {
            profiles,
            used,
            all,
            client: ClientConfig {
                timeout: config.radius.timeout,
                retransmit: config.radius.retransmit,
                dead_time: config.radius.dead_time,
                ..ClientConfig::default()
            },
            interim: config.accounting.update_periodic,
            limit: usize::try_from(config.accounting.outbox_limit).unwrap_or(usize::MAX),
            send_vsas: config.radius.vsa_send_accounting,
        })
    }

    /// Whether any peer has an accounting list (else the task need not run).
    pub fn accounts(&self) -> bool {
        !self.profiles.is_empty()
    }

    fn default_specs(&self) -> Option<&Vec<ServerSpec>> {
        self.all.get(DEFAULT_GROUP)
    }

    fn default_group(&self) -> Result<Option<Group>> {
        self.default_specs()
            .map(|s| Group::new(s.clone(), self.client.clone()))
            .transpose()
            .context("RADIUS group radius")
    }
}

pub(crate) fn check_servers(group: &str, servers: &[ServerSpec]) -> Result<()> {
    for (i, s) in servers.iter().enumerate() {
        if s.secret.is_empty() {
            anyhow::bail!(
                "RADIUS group {group}: server {} has an empty secret",
                s.name
            );
        }
        if servers[..i].iter().any(|o| o.name == s.name) {
            anyhow::bail!("RADIUS group {group}: server {} is listed twice", s.name);
        }
    }
    Ok(())
}

struct Active {
    identities: Vec<SessionIdentity>,
    /// The session's totals as the sum they are (crash Stops journal it).
    counted: Counted,
    next_interim: Option<u64>,
    /// Every copy of the Start is in the outbox journal (from the start in stop-only mode).
    started: bool,
    /// The prepared crash Stops in the sessions journal (none yet: not written).
    snapshot: Vec<Seq>,
}

/// Records not yet in the outbox journal (one session's copies, or one Accounting-On/Off),
/// and what their journalling allows.
struct Waiting {
    records: Vec<AccountingRecord>,
    then: Then,
}

enum Then {
    Nothing,
    /// The session's Start: its crash Stops can be written.
    Start {
        key: SessionKey,
        id: String,
    },
    /// A Stop: the crash Stops it replaces (`snapshot`) can leave the sessions journal.
    /// `park`: write it over them while it waits (only once its Start is durable).
    Stop {
        id: String,
        snapshot: Vec<Seq>,
        park: bool,
    },
}

/// Who gets the sequence numbers of records added to the sessions journal.
enum Owner {
    /// A session's crash Stops (`n` of them).
    Session {
        key: SessionKey,
        id: String,
        n: usize,
    },
    /// A parked Stop: the waiting item at this index.
    Park { index: usize, n: usize },
}

impl Accounting {
    /// Starts the task when at least one peer has an accounting list; `None` otherwise.
    /// `left_behind`: the counters of the SAs a previous run left in the kernel, read before
    /// anything removed them: the crash Stops of their sessions carry them.
    pub fn start(config: &Config, left_behind: &[SaCounters]) -> Result<Option<Accounting>> {
        let plan = Plan::of(config)?;
        if plan.profiles.is_empty() {
            return Ok(None);
        }
        let client = plan.client.clone();
        let mut groups = HashMap::new();
        for (name, servers) in &plan.used {
            let g = Group::new(servers.clone(), client.clone())
                .with_context(|| format!("RADIUS group {name}"))?;
            groups.insert(name.clone(), g);
        }
        let default = plan.default_group()?;
        let Plan { profiles, .. } = plan;
        let journal = config.accounting.journal.clone();
        if let Some(dir) = journal.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let limit = usize::try_from(config.accounting.outbox_limit).unwrap_or(usize::MAX);
        let (results_tx, results_rx) = mpsc::unbounded_channel();
        let outbox = outbox::Outbox::open(
            &journal,
            limit,
            groups.clone(),
            default,
            config.radius.timeout,
            results_tx,
        )
        .with_context(|| format!("accounting journal {}", journal.display()))?;
        let sessions_path = PathBuf::from(format!("{}.sessions", journal.display()));
        let (snapshots, crashed) = Journal::open(&sessions_path, usize::MAX)
            .with_context(|| format!("accounting sessions journal {}", sessions_path.display()))?;
        let r = snapshots.recovery();
        if r.corrupt_lines > 0 {
            error!(path = %sessions_path.display(), corrupt = r.corrupt_lines, saved_to = %r.corrupt_file.as_ref().map_or_else(|| "-".into(), |p| p.display().to_string()),
                "accounting sessions journal: CORRUPT lines moved aside; the crash Stops they held are NOT sent (see the saved file)");
        }
        let refuse = Arc::new(AtomicBool::new(
            config.accounting.when_full == WhenFull::Refuse,
        ));
        let can_account = Arc::new(AtomicBool::new(true));
        let start_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let (metrics_tx, metrics) = watch::channel(Arc::default());
        let mut task = Task {
            profiles,
            group_names: groups.keys().cloned().collect(),
            nas_ip: config
                .local
                .nas_ip
                .or_else(|| config.local.addresses.first().copied()),
            send_vsas: config.radius.vsa_send_accounting,
            interim: config.accounting.update_periodic,
            outbox,
            snapshots,
            active: HashMap::new(),
            id_prefix: format!("{:011X}", start_ms & 0xFFF_FFFF_FFFF),
            next_id: 0,
            waiting: VecDeque::new(),
            waiting_records: 0,
            needs_snapshot: Vec::new(),
            snapshot_acks: Vec::new(),
            journal_failing: false,
            snapshots_failing: false,
            full: false,
            refuse: refuse.clone(),
            can_account: can_account.clone(),
            journal_path: journal.display().to_string(),
            last_snapshot: Instant::now(),
            metrics: metrics_tx,
        };
        task.recover(crashed, left_behind);
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(task.run(rx, results_rx));
        Ok(Some(Accounting {
            tx,
            task,
            refuse,
            can_account,
            metrics,
        }))
    }

    /// A session's first IPsec SA pair is up (after IKE completed).
    pub fn up(&self, view: &SessionView) {
        self.send(Event::Up(Box::new(view.clone())));
    }

    /// A session's last IPsec SA pair is gone; `view` carries its final totals.
    pub fn down(&self, view: &SessionView, cause: Cause) {
        self.send(Event::Down(Box::new(view.clone()), cause));
    }

    /// The sessions' totals after a kernel counter dump.
    pub fn totals(&self, totals: Vec<(SessionKey, Counted)>) {
        self.send(Event::Totals(totals));
    }

    /// Whether a new session may come up now, for the daemon to ask before it brings one up
    /// (cheap, no waiting): false only with [`WhenFull::Refuse`] while a new Start could not
    /// be journalled (the outbox is full, or its journal cannot be written).
    pub fn admits_new_sessions(&self) -> bool {
        !self.refuse.load(Ordering::Relaxed) || self.can_account.load(Ordering::Relaxed)
    }

    /// A configuration reload: new sessions use the new method lists; running ones keep
    /// the groups their Start went to (a Start on one server and the Stop on another
    /// breaks billing) while those groups exist; the servers, secrets, ports and timers
    /// of every group change at once, requests in flight included ([`Group::reconfigure`]).
    pub fn reconfigure(&self, plan: Plan) {
        self.send(Event::Reconfigure(Box::new(plan)));
    }

    /// The policy for new sessions while the outbox is full (`accounting.when_full` at
    /// start; e.g. for a configuration reload).
    pub fn set_when_full(&self, policy: WhenFull) {
        self.refuse
            .store(policy == WhenFull::Refuse, Ordering::Relaxed);
    }

    pub fn when_full(&self) -> WhenFull {
        if self.refuse.load(Ordering::Relaxed) {
            WhenFull::Refuse
        } else {
            WhenFull::Accept
        }
    }

    fn send(&self, e: Event) {
        if self.tx.send(e).is_err() {
            error!("accounting task is gone: session event NOT accounted");
        }
    }

    /// The outbox and RADIUS servers as the metrics endpoint shows them (the task refreshes
    /// it every second; reading it never waits on the task).
    pub fn metrics(&self) -> watch::Receiver<Arc<crate::metrics::AccountingSnapshot>> {
        self.metrics.clone()
    }

    pub async fn show(&self) -> Option<AccountingView> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Event::Show(tx)).ok()?;
        rx.await.ok()
    }

    /// At daemon stop: Accounting-Off, then up to `grace` to deliver what is queued; the
    /// rest stays in the journal for the next start.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.tx.send(Event::Shutdown(grace));
        let _ = tokio::time::timeout(grace + Duration::from_secs(1), self.task).await;
    }
}

struct Task {
    profiles: HashMap<String, Profile>,
    group_names: Vec<String>,
    nas_ip: Option<IpAddr>,
    send_vsas: bool,
    interim: Option<Duration>,
    outbox: outbox::Outbox,
    /// One prepared crash Stop per record copy of every active session.
    snapshots: Journal,
    active: HashMap<SessionKey, Active>,
    id_prefix: String,
    next_id: u64,
    /// Records not yet in the outbox journal, oldest first.
    waiting: VecDeque<Waiting>,
    /// The records in `waiting`.
    waiting_records: usize,
    /// Sessions whose Start is journalled and whose crash Stops are still to be written.
    needs_snapshot: Vec<(SessionKey, String)>,
    /// Crash Stops to remove (their real Stop is in the outbox journal): a failed ack, retried.
    snapshot_acks: Vec<Seq>,
    /// The last outbox journal write failed (the records wait in memory).
    journal_failing: bool,
    /// The last sessions journal write failed.
    snapshots_failing: bool,
    /// The outbox was full when last looked at.
    full: bool,
    refuse: Arc<AtomicBool>,
    can_account: Arc<AtomicBool>,
    journal_path: String,
    last_snapshot: Instant,
    /// What the metrics endpoint shows, refreshed every second.
    metrics: watch::Sender<Arc<crate::metrics::AccountingSnapshot>>,
}

/// A session's copy: its Acct-Session-Id and groups (what a server matches a Stop with).
type CopyKey = (String, Vec<String>);

fn copy_key(r: &AccountingRecord) -> CopyKey {
    (r.acct_session_id.clone(), r.groups.clone())
}

/// When a session's first Interim-Update is due: one period after its Start, as IOS's `aaa
/// accounting update periodic` does. Sessions are spread by their own start times (an
/// offset from a hash of the id once made the first interval up to twice the period).
fn first_interim(started: u64, period: u64) -> u64 {
    started + period
}

impl Task {
    /// Acct-Session-Id: the start time of this run in milliseconds (hex) and a counter, so
    /// ids never repeat across restarts.
    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("{}{:05X}", self.id_prefix, self.next_id)
    }

    fn push(&mut self, records: Vec<AccountingRecord>, then: Then) {
        self.waiting_records += records.len();
        self.waiting.push_back(Waiting { records, then });
    }

    /// Sessions that were up when the previous run ended without their Stops: their crash
    /// Stops go out (behind what the outbox still holds of them), then Accounting-On.
    fn recover(&mut self, crashed: Vec<(Seq, AccountingRecord)>, left_behind: &[SaCounters]) {
        let readings: HashMap<u32, (u64, u64)> = left_behind
            .iter()
            .map(|c| (c.id.spi, (c.bytes, c.packets)))
            .collect();
        // What the outbox still holds from the previous run, per session copy.
        let mut starts: Vec<(CopyKey, AccountingRecord)> = Vec::new();
        let mut stopped: HashSet<CopyKey> = HashSet::new();
        let mut last_interim: HashMap<CopyKey, AccountingRecord> = HashMap::new();
        for r in self.outbox.records() {
            match r.status {
                AcctStatus::Start => starts.push((copy_key(r), r.clone())),
                AcctStatus::Stop => {
                    stopped.insert(copy_key(r));
                }
                AcctStatus::InterimUpdate => {
                    last_interim.insert(copy_key(r), r.clone());
                }
                _ => {}
            }
        }
        // The latest crash Stop per copy: an older one is left by a crash between writing a
        // newer one (refreshed or parked) and removing it. All of them leave together.
        let mut order: Vec<CopyKey> = Vec::new();
        let mut latest: HashMap<CopyKey, (AccountingRecord, Vec<Seq>)> = HashMap::new();
        for (seq, r) in crashed {
            let key = copy_key(&r);
            match latest.get_mut(&key) {
                Some((newest, seqs)) => {
                    *newest = r;
                    seqs.push(seq);
                }
                None => {
                    order.push(key.clone());
                    latest.insert(key, (r, vec![seq]));
                }
            }
        }
        let (mut sent, mut redundant, mut made, mut from_kernel) = (0usize, 0usize, 0usize, 0usize);
        for key in order {
            let Some((r, seqs)) = latest.remove(&key) else {
                continue;
            };
            if stopped.contains(&key) {
                // Its real Stop is queued already: the crash Stop would be a second one.
                redundant += seqs.len();
                self.snapshot_acks.extend(seqs);
                continue;
            }
            stopped.insert(key.clone());
            sent += 1;
            let (r, moved) = with_kernel_readings(r, |spi| readings.get(&spi).copied());
            from_kernel += usize::from(moved);
            self.push(
                vec![r],
                Then::Stop {
                    id: key.0,
                    snapshot: seqs,
                    park: false,
                },
            );
        }
        for (key, start) in starts {
            if stopped.insert(key.clone()) {
                made += 1;
                let stop = crash_stop_from(&start, last_interim.get(&key));
                self.push(vec![stop], Then::Nothing);
            }
        }
        if sent + made > 0 {
            warn!(
                crash_stops = sent,
                with_kernel_counters = from_kernel,
                made_from_starts = made,
                "accounting: sessions were up when vpnd last stopped without accounting them: sending their Stops"
            );
        }
        if redundant > 0 {
            debug!(
                redundant,
                "accounting: crash Stops of sessions whose Stop is queued are dropped"
            );
        }
        self.nas_records(AcctStatus::AccountingOn);
        self.flush();
    }

    /// Accounting-On or -Off (RFC 2866 5.1): one to every server group in use.
    fn nas_records(&mut self, status: AcctStatus) {
        let now = SystemTime::now();
        for g in self.group_names.clone() {
            let id = self.new_id();
            let r = AccountingRecord {
                nas_ip: self.nas_ip,
                groups: vec![g],
                ..AccountingRecord::new(status, id, now)
            };
            self.push(vec![r], Then::Nothing);
        }
    }

    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Event>,
        mut results: mpsc::UnboundedReceiver<outbox::Outcome>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut closing: Option<Instant> = None;
        loop {
            self.outbox.pump(Instant::now());
            if let Some(deadline) = closing {
                // Everything delivered and recorded as such: a restart sends no duplicate.
                let done = self.outbox.is_empty()
                    && self.outbox.all_recorded()
                    && self.waiting.is_empty()
                    && self.snapshot_acks.is_empty();
                if done || Instant::now() >= deadline {
                    if !done {
                        warn!(
                            queued = self.outbox.len(),
                            not_written = self.waiting_records,
                            "accounting: stopping with records undelivered; the queued ones stay in the journal for the next start, the sessions' crash Stops in the sessions journal"
                        );
                    }
                    return;
                }
            }
            tokio::select! {
                e = rx.recv(), if closing.is_none() => {
                    let Some(e) = e else { return };
                    let mut batch = vec![e];
                    while batch.len() < 4096 {
                        match rx.try_recv() {
                            Ok(e) => batch.push(e),
                            Err(_) => break,
                        }
                    }
                    let mut shows = Vec::new();
                    for e in batch {
                        match e {
                            // Answered after the batch's journal writes: what it shows is
                            // written, or waiting because a write failed.
                            Event::Show(reply) => shows.push(reply),
                            e => {
                                if let Some(grace) = self.event(e) {
                                    closing = Some(Instant::now() + grace);
                                }
                            }
                        }
                    }
                    self.flush();
                    for reply in shows {
                        let _ = reply.send(self.view());
                    }
                    // A burst keeps this branch ready batch after batch: let the deliveries
                    // just spawned (in this worker's LIFO slot, which others cannot steal)
                    // and the servers' tasks run between batches.
                    tokio::task::yield_now().await;
                }
                Some(o) = results.recv() => {
                    let mut done = vec![o];
                    while let Ok(o) = results.try_recv() {
                        done.push(o);
                    }
                    self.outbox.outcomes(done, Instant::now());
                    if self.waiting.is_empty() {
                        self.update_state();
                    } else {
                        self.flush();
                    }
                }
                _ = tick.tick() => {
                    self.publish_metrics();
                    self.outbox.record_acks();
                    let now = unix_now();
                    let sent = self.interims(now);
                    if self.last_snapshot.elapsed() >= SNAPSHOT_EVERY {
                        self.refresh_snapshots(now, None);
                        self.last_snapshot = Instant::now();
                    } else if !sent.is_empty() {
                        self.refresh_snapshots(now, Some(&sent));
                    }
                    self.flush();
                }
                _ = tokio::time::sleep(Duration::from_millis(100)), if closing.is_some() => {}
            }
        }
    }

    /// One event; `Some(grace)` when the daemon is stopping.
    fn event(&mut self, e: Event) -> Option<Duration> {
        match e {
            Event::Up(v) => self.up(&v),
            Event::Down(v, cause) => self.down(&v, cause),
            Event::Totals(t) => {
                // A rekey changed a session's SAs: its crash Stop names the new ones at once,
                // so a crash loses none of their counters (`recover`).
                let mut rekeyed = HashSet::new();
                for (k, c) in t {
                    if let Some(a) = self.active.get_mut(&k) {
                        if !a.snapshot.is_empty() && !a.counted.spis().eq(c.spis()) {
                            rekeyed.insert(k);
                        }
                        a.counted = c;
                    }
                }
                if !rekeyed.is_empty() {
                    self.refresh_snapshots(unix_now(), Some(&rekeyed));
                }
            }
            Event::Show(reply) => {
                let _ = reply.send(self.view());
            }
            Event::Reconfigure(plan) => self.reconfigure(*plan),
            Event::Shutdown(grace) => {
                self.nas_records(AcctStatus::AccountingOff);
                return Some(grace);
            }
        }
        None
    }

    /// A reload's [`Plan`]. Groups are kept for the lists that use them and for the
    /// records and running sessions that name them; a group gone from `radius.groups`
    /// sends what it was sending, and its sessions' later records, to the default group
    /// `radius` (the Stop is the bill: sent to the servers that remain rather than kept
    /// forever or dropped), with a warning.
    fn reconfigure(&mut self, plan: Plan) {
        let mut named: BTreeSet<String> = self
            .active
            .values()
            .flat_map(|a| a.identities.iter().flat_map(|i| i.groups.iter().cloned()))
            .collect();
        named.extend(self.outbox.records().flat_map(|r| r.groups.iter().cloned()));
        named.extend(
            self.waiting
                .iter()
                .flat_map(|w| w.records.iter().flat_map(|r| r.groups.iter().cloned())),
        );
        let mut groups = HashMap::new();
        for (name, servers) in &plan.all {
            if !plan.used.contains_key(name) && !named.contains(name) {
                continue;
            }
            let g = match self.outbox.group(name) {
                Some(g) => match g.reconfigure(servers.clone(), plan.client.clone()) {
                    Ok(()) => g.clone(),
                    Err(e) => {
                        error!(group = %name, "accounting: RADIUS group not changed: {e}");
                        g.clone()
                    }
                },
                None => match Group::new(servers.clone(), plan.client.clone()) {
                    Ok(g) => g,
                    Err(e) => {
                        error!(group = %name, "accounting: RADIUS group not started: {e}");
                        continue;
                    }
                },
            };
            groups.insert(name.clone(), g);
        }
        let default = match (self.outbox.default_group(), plan.default_specs()) {
            (Some(g), Some(servers)) => {
                if let Err(e) = g.reconfigure(servers.clone(), plan.client.clone()) {
                    error!("accounting: RADIUS default group not changed: {e}");
                }
                Some(g.clone())
            }
            (None, Some(servers)) => Group::new(servers.clone(), plan.client.clone()).ok(),
            (_, None) => None,
        };
        for (name, g) in self.outbox.groups() {
            if groups.contains_key(name) {
                continue;
            }
            let sessions = self
                .active
                .values()
                .filter(|a| a.identities.iter().any(|i| i.groups.contains(name)))
                .count();
            if !named.contains(name) {
                continue;
            }
            // Requests waiting on it move to the default's servers now.
            match plan.default_specs() {
                Some(servers) => {
                    let _ = g.reconfigure(servers.clone(), plan.client.clone());
                    warn!(group = %name, sessions, "accounting: RADIUS group removed by the reload: its queued records and its running sessions' later records go to the default group radius");
                }
                None => {
                    error!(group = %name, sessions, "accounting: RADIUS group removed by the reload and no default group radius: its records stay in the journal until a server is configured");
                }
            }
        }
        self.outbox
            .set_transport(groups, default, plan.client.timeout, plan.limit);
        self.group_names = plan.used.keys().cloned().collect();
        self.profiles = plan.profiles;
        self.interim = plan.interim;
        self.send_vsas = plan.send_vsas;
        debug!(target: AAA, groups = ?self.group_names, "AAA: accounting reconfigured");
    }

    fn up(&mut self, v: &SessionView) {
        let Some(profile) = self.profiles.get(&v.peer_name).cloned() else {
            return;
        };
        if self.active.contains_key(&v.key) {
            return;
        }
        let now = unix_now();
        let id = self.new_id();
        let start_stop = profile.mode == AccountingMode::StartStop;
        if start_stop && !self.outbox.room(self.waiting_records) {
            self.outbox.stats.refused_full += profile.copies.len() as u64;
            self.outbox.stats.sessions_unaccounted += 1;
            error!(
                session = id,
                peer = v.peer_name,
                "accounting: session NOT accounted (no Start, no Stop): the outbox is full ({} records)",
                self.outbox.limit()
            );
            return;
        }
        // The session's outer interface, as the session table has it (cisco-nas-port).
        let interface = v.interface.clone();
        let identities: Vec<SessionIdentity> = profile
            .copies
            .iter()
            .map(|groups| SessionIdentity {
                id: id.clone(),
                // An EAP user is the session's User-Name; else the IKE identity.
                user_name: v
                    .user
                    .as_ref()
                    .map(|u| u.username.clone())
                    .or_else(|| v.phase1_id.clone()),
                class: v.user.as_ref().map(|u| u.class.clone()).unwrap_or_default(),
                framed_ip: match v.assigned_ip {
                    Some(std::net::IpAddr::V4(a)) => Some(a),
                    _ => None,
                },
                framed_ipv6: match v.assigned_ip6 {
                    Some(std::net::IpAddr::V6(a)) => Some(a),
                    _ => None,
                },
                nas_ip: self.nas_ip.or(Some(v.local)),
                peer_ip: v.key.peer.ip(),
                ivrf: profile.ivrf.clone(),
                group: profile.group_id.clone(),
                interface: interface.clone(),
                send_vsas: self.send_vsas,
                groups: groups.clone(),
                started: v.up_since.unwrap_or(now),
            })
            .collect();
        if start_stop {
            // Its crash Stops are written once the Start is in the journal (`flush`).
            let starts = identities.iter().map(start_record).collect();
            self.push(
                starts,
                Then::Start {
                    key: v.key.clone(),
                    id: id.clone(),
                },
            );
        } else {
            self.needs_snapshot.push((v.key.clone(), id.clone()));
        }
        debug!(target: AAA, session = id, peer = v.peer_name, "AAA: session up, accounting started");
        let next_interim = match (profile.mode, self.interim) {
            (AccountingMode::StartStop, Some(p)) if p.as_secs() > 0 => {
                Some(first_interim(v.up_since.unwrap_or(now), p.as_secs()))
            }
            _ => None,
        };
        self.active.insert(
            v.key.clone(),
            Active {
                identities,
                counted: Counted::from(v.totals),
                next_interim,
                started: !start_stop,
                snapshot: Vec::new(),
            },
        );
    }

    fn down(&mut self, v: &SessionView, cause: Cause) {
        let Some(a) = self.active.remove(&v.key) else {
            return;
        };
        let now = unix_now();
        let id = a
            .identities
            .first()
            .map(|i| i.id.clone())
            .unwrap_or_default();
        debug!(target: AAA, session = id, peer = v.peer_name, ?cause, "AAA: session down, accounting stopped");
        let stops = a
            .identities
            .iter()
            .map(|i| stop_record(i, &v.totals, now, cause))
            .collect();
        // Behind its Start if that still waits; its crash Stops leave once it is journalled.
        self.push(
            stops,
            Then::Stop {
                id,
                snapshot: a.snapshot,
                park: a.started,
            },
        );
    }

    /// Queues the Interims that are due; returns the sessions that got one (their crash
    /// Stops are brought up to the same counters and time, so a crash Stop never says less
    /// than the session's last Interim).
    fn interims(&mut self, now: u64) -> HashSet<SessionKey> {
        let mut sent = HashSet::new();
        let Some(period) = self.interim.map(|p| p.as_secs().max(1)) else {
            return sent;
        };
        let mut records = Vec::new();
        let mut waiting = self.waiting_records;
        let (mut skipped, mut refused) = (0u64, 0u64);
        for (k, a) in self.active.iter_mut() {
            match a.next_interim {
                Some(t) if t <= now => {
                    a.next_interim = Some(t.max(now.saturating_sub(period)) + period);
                    let Some(id) = a.identities.first().map(|i| i.id.as_str()) else {
                        continue;
                    };
                    if !a.started {
                        continue;
                    }
                    if self.journal_failing || self.outbox.has_interim(id) {
                        skipped += 1;
                        continue;
                    }
                    if !self.outbox.room(waiting) {
                        refused += a.identities.len() as u64;
                        continue;
                    }
                    let copies: Vec<AccountingRecord> = a
                        .identities
                        .iter()
                        .map(|i| interim_record(i, &a.counted.totals(), now))
                        .collect();
                    waiting += copies.len();
                    records.push(copies);
                    sent.insert(k.clone());
                }
                _ => {}
            }
        }
        self.outbox.stats.interims_skipped += skipped;
        self.outbox.stats.refused_full += refused;
        if !records.is_empty() {
            debug!(target: AAA, sessions = records.len(), "AAA: interim updates queued");
        }
        for r in records {
            self.push(r, Then::Nothing);
        }
        sent
    }

    /// Brings the prepared crash Stops up to the latest counters and session time (every
    /// session, or those in `only`), all in one write: the new ones in, the old ones out.
    /// Idle sessions too: their session time moves (a Stop once said 42 s after an Interim
    /// of the same session had said 97 s).
    fn refresh_snapshots(&mut self, now: u64, only: Option<&HashSet<SessionKey>>) {
        let mut add = Vec::new();
        let mut remove = Vec::new();
        let mut owners = Vec::new();
        for (k, a) in &self.active {
            if a.snapshot.is_empty() || only.is_some_and(|o| !o.contains(k)) {
                continue;
            }
            add.extend(a.identities.iter().map(|i| crash_stop(i, &a.counted, now)));
            remove.extend(a.snapshot.iter().copied());
            owners.push((k.clone(), a.identities.len()));
        }
        if add.is_empty() {
            return;
        }
        match self.snapshots.replace(&add, &remove) {
            Ok(seqs) => {
                let mut seqs = seqs.into_iter();
                for (k, n) in owners {
                    if let Some(a) = self.active.get_mut(&k) {
                        a.snapshot = seqs.by_ref().take(n).collect();
                    }
                }
            }
            // The old ones stay: a crash sends a Stop with older counters.
            Err(e) => warn!("accounting sessions journal: crash Stops not refreshed: {e}"),
        }
    }

    /// Writes what waits into the outbox journal (one write and fsync per chunk), then what
    /// that allows into the sessions journal (one write): the crash Stops of sessions whose
    /// Start got in, the removal of those whose real Stop got in, the parking of Stops that
    /// did not.
    fn flush(&mut self) {
        let mut done = Vec::new();
        if !self.waiting.is_empty() {
            let items = std::mem::take(&mut self.waiting);
            let mut sizes = Vec::with_capacity(items.len());
            let mut thens = Vec::with_capacity(items.len());
            let mut all = Vec::with_capacity(self.waiting_records);
            for w in items {
                sizes.push(w.records.len());
                thens.push(w.then);
                all.extend(w.records);
            }
            let q = self.outbox.queue(all);
            let mut taken = q.accepted;
            let mut rest = q.rest.into_iter();
            for (n, then) in sizes.into_iter().zip(thens) {
                if taken >= n {
                    taken -= n;
                    done.push(then);
                } else {
                    // A Start partly in (broadcast copies split by a failed write): the copies
                    // in must not go out before the session's crash Stops are written.
                    if let Then::Start { id, .. } = &then {
                        if taken > 0 {
                            self.outbox.hold(id);
                        }
                    }
                    let records = rest.by_ref().take(n - taken).collect();
                    taken = 0;
                    self.waiting.push_back(Waiting { records, then });
                }
            }
            self.waiting_records = self.waiting.iter().map(|w| w.records.len()).sum();
            self.journal_state(q.error);
        }

        let mut acks = std::mem::take(&mut self.snapshot_acks);
        for then in done {
            match then {
                Then::Nothing => {}
                Then::Start { key, id } => {
                    if let Some(a) = self.active.get_mut(&key) {
                        if a.identities.first().is_some_and(|i| i.id == id) {
                            a.started = true;
                            self.needs_snapshot.push((key, id));
                        }
                    }
                }
                Then::Stop { id, snapshot, .. } => {
                    acks.extend(snapshot);
                    self.outbox.release(&id);
                }
            }
        }
        let mut add = Vec::new();
        let mut owners = Vec::new();
        for (key, id) in std::mem::take(&mut self.needs_snapshot) {
            let Some(a) = self.active.get(&key) else {
                continue;
            };
            if a.identities.first().is_none_or(|i| i.id != id) || !a.snapshot.is_empty() {
                continue;
            }
            let now = unix_now();
            add.extend(a.identities.iter().map(|i| crash_stop(i, &a.counted, now)));
            owners.push(Owner::Session {
                key,
                id,
                n: a.identities.len(),
            });
        }
        let mut parked_out = Vec::new();
        for (index, w) in self.waiting.iter().enumerate() {
            if let Then::Stop {
                snapshot,
                park: true,
                ..
            } = &w.then
            {
                add.extend(w.records.iter().cloned());
                parked_out.extend(snapshot.iter().copied());
                owners.push(Owner::Park {
                    index,
                    n: w.records.len(),
                });
            }
        }
        if add.is_empty() && acks.is_empty() {
            self.update_state();
            return;
        }
        let mut seen = HashSet::new();
        acks.retain(|s| self.snapshots.is_pending(*s) && seen.insert(*s));
        parked_out.retain(|s| self.snapshots.is_pending(*s) && seen.insert(*s));
        let remove: Vec<Seq> = acks.iter().chain(&parked_out).copied().collect();
        match self.snapshots.replace(&add, &remove) {
            Ok(seqs) => {
                let mut seqs = seqs.into_iter();
                for o in owners {
                    match o {
                        Owner::Session { key, id, n } => {
                            if let Some(a) = self.active.get_mut(&key) {
                                a.snapshot = seqs.by_ref().take(n).collect();
                            }
                            self.outbox.release(&id);
                        }
                        Owner::Park { index, n } => {
                            let new: Vec<Seq> = seqs.by_ref().take(n).collect();
                            if let Some(Then::Stop { snapshot, park, .. }) =
                                self.waiting.get_mut(index).map(|w| &mut w.then)
                            {
                                *snapshot = new;
                                *park = false;
                            }
                        }
                    }
                }
                if self.snapshots_failing {
                    warn!("accounting sessions journal: writable again");
                    self.snapshots_failing = false;
                }
            }
            Err(e) => {
                // Sessions whose crash Stop is not durable: their Start is not sent meanwhile.
                for o in owners {
                    if let Owner::Session { key, id, .. } = o {
                        self.outbox.hold(&id);
                        self.needs_snapshot.push((key, id));
                    }
                }
                if !self.snapshots_failing {
                    error!(
                        sessions = self.needs_snapshot.len(),
                        "accounting sessions journal: CANNOT WRITE (retried every second): a crash now would lose these sessions' Stops; their Starts are held back: {e}"
                    );
                    self.snapshots_failing = true;
                }
                self.outbox.stats.journal_errors += 1;
                self.outbox.stats.last_error = Some(e.to_string());
                // The removals alone are small: they may fit where the whole did not.
                if !acks.is_empty() && !add.is_empty() && self.snapshots.ack_many(&acks).is_ok() {
                    acks.clear();
                }
                self.snapshot_acks = acks;
            }
        }
        self.update_state();
    }

    /// Logs the outbox journal's failure once when it starts and once when it ends.
    fn journal_state(&mut self, error: Option<String>) {
        match error {
            Some(e) if !self.journal_failing => {
                self.journal_failing = true;
                error!(
                    waiting = self.waiting_records,
                    "accounting journal: CANNOT WRITE: the records are kept in memory and retried every second (a crash now loses them, but the sessions' crash Stops are in the sessions journal); Interims are skipped meanwhile: {e}"
                );
            }
            Some(_) => {}
            None if self.journal_failing => {
                self.journal_failing = false;
                warn!("accounting journal: writable again, the records kept in memory are queued");
            }
            None => {}
        }
    }

    /// Publishes whether a new session can be accounted, logging the outbox's filling up and
    /// emptying once each.
    fn update_state(&mut self) {
        let room = self.outbox.room(self.waiting_records);
        if self.full == room {
            self.full = !room;
            if self.full {
                let what = if self.refuse.load(Ordering::Relaxed) {
                    "new sessions are refused"
                } else {
                    "new sessions run unaccounted"
                };
                error!(
                    limit = self.outbox.limit(),
                    "accounting outbox FULL: {what}, Interims are refused; Stops are still queued"
                );
            } else {
                warn!("accounting outbox has room again: new sessions are accounted");
            }
        }
        self.can_account
            .store(room && !self.journal_failing, Ordering::Relaxed);
    }

    fn publish_metrics(&self) {
        let now = SystemTime::now();
        // The first of each queue, not a scan: both are in the order events happened.
        let oldest = [
            self.outbox.records().next(),
            self.waiting.front().and_then(|w| w.records.first()),
        ]
        .into_iter()
        .flatten()
        .map(|r| r.event_time)
        .min();
        self.metrics
            .send_replace(Arc::new(crate::metrics::AccountingSnapshot {
                queued: (self.outbox.len() + self.waiting_records) as u64,
                oldest_age_seconds: oldest
                    .and_then(|t| now.duration_since(t).ok())
                    .map_or(0.0, |d| d.as_secs_f64()),
                servers: self.outbox.server_stats(),
            }));
    }

    fn view(&self) -> AccountingView {
        let now = Instant::now();
        AccountingView {
            active_sessions: self.active.len(),
            queued: self.outbox.len(),
            in_flight: self.outbox.in_flight(),
            window: self.outbox.window(),
            limit: self.outbox.limit(),
            journal: self.journal_path.clone(),
            retry_in_s: self.outbox.retry_in(now).map(|d| d.as_secs()),
            interim_s: self.interim.map(|d| d.as_secs()),
            outbox: self.outbox.stats.clone(),
            servers: self.outbox.server_stats(),
            waiting: self.waiting_records,
            without_crash_stop: self
                .active
                .values()
                .filter(|a| a.snapshot.is_empty())
                .count(),
            full: self.full,
            refuses_when_full: self.refuse.load(Ordering::Relaxed),
        }
    }
}

/// The transport's view of RADIUS group `name`: its servers in order, on the port `port`
/// picks (accounting's or authentication's), for the shared client (`vpnd_radius::Group`).
pub(crate) fn server_specs(
    config: &Config,
    name: &str,
    port: impl Fn(&crate::config::RadiusServer) -> u16,
) -> Result<Vec<ServerSpec>> {
    Ok(config
        .radius
        .group_servers(name)
        .with_context(|| format!("no RADIUS group {name}"))?
        .into_iter()
        .map(|s| ServerSpec {
            name: s.name.clone(),
            addr: std::net::SocketAddr::new(s.address, port(s)),
            secret: s.key.expose().to_vec(),
        })
        .collect())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod schedule_tests {
    #[test]
    fn the_first_interim_comes_one_period_after_the_start() {
        for started in [0, 1_796_109_121, 1_796_109_122] {
            assert_eq!(super::first_interim(started, 60), started + 60);
        }
    }
}
#[cfg(test)]
mod tests_loss;
#[cfg(test)]
mod tests_reload;
