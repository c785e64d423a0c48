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
//! Nothing is lost across a crash: a record is queued only once it is in the outbox journal
//! (fsynced), and every active session has a prepared Stop (its last recorded counters,
//! cause NAS-Reboot) in a second journal, `<journal>.sessions`. At start, the daemon queues
//! those Stops for sessions that were up when it died, then sends Accounting-On.

pub mod iface;
pub mod outbox;
pub mod records;

use crate::unix_now;
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, warn};
use vpnd_radius::{
    AccountingRecord, AcctStatus, ClientConfig, Group, Journal, Seq, ServerSpec, ServerStats,
};

use crate::config::{AccountingMode, Config};
use crate::daemon::logging::AAA;
use crate::session::model::{SessionKey, SessionView, Totals};
pub use outbox::OutboxStats;
pub use records::{interim_record, start_record, stop_record, Cause, SessionIdentity};

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
}

enum Event {
    Up(Box<SessionView>),
    Down(Box<SessionView>, Cause),
    Totals(Vec<(SessionKey, Totals)>),
    Show(oneshot::Sender<AccountingView>),
    Shutdown(Duration),
}

/// The daemon's handle on the accounting task.
pub struct Accounting {
    tx: mpsc::UnboundedSender<Event>,
    task: tokio::task::JoinHandle<()>,
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

struct Active {
    identities: Vec<SessionIdentity>,
    totals: Totals,
    next_interim: Option<u64>,
    /// The prepared crash Stops in the sessions journal, and the totals they carry.
    snapshot: Vec<Seq>,
    snapshot_totals: Totals,
}

impl Accounting {
    /// Starts the task when at least one peer has an accounting list; `None` otherwise.
    pub fn start(config: &Config) -> Result<Option<Accounting>> {
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
        if profiles.is_empty() {
            return Ok(None);
        }
        let used: BTreeSet<&String> = profiles
            .values()
            .flat_map(|p| p.copies.iter().flatten())
            .collect();
        let client = ClientConfig {
            timeout: config.radius.timeout,
            retransmit: config.radius.retransmit,
            dead_time: config.radius.dead_time,
            ..ClientConfig::default()
        };
        let mut groups = HashMap::new();
        for name in used {
            let servers = config
                .radius
                .group_servers(name)
                .with_context(|| format!("no RADIUS group {name}"))?
                .into_iter()
                .map(|s| ServerSpec {
                    name: s.name.clone(),
                    addr: std::net::SocketAddr::new(s.address, s.acct_port),
                    secret: s.key.expose().to_vec(),
                })
                .collect();
            let g = Group::new(servers, client.clone())
                .with_context(|| format!("RADIUS group {name}"))?;
            groups.insert(name.clone(), g);
        }
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
            config.radius.timeout,
            results_tx,
        )
        .with_context(|| format!("accounting journal {}", journal.display()))?;
        let sessions_path = PathBuf::from(format!("{}.sessions", journal.display()));
        let (snapshots, crashed) = Journal::open(&sessions_path, usize::MAX)
            .with_context(|| format!("accounting sessions journal {}", sessions_path.display()))?;
        let start_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
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
            pending: Vec::new(),
            ifaces: HashMap::new(),
            journal_path: journal.display().to_string(),
            last_snapshot: Instant::now(),
        };
        task.recover(crashed);
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(task.run(rx, results_rx));
        Ok(Some(Accounting { tx, task }))
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
    pub fn totals(&self, totals: Vec<(SessionKey, Totals)>) {
        self.send(Event::Totals(totals));
    }

    fn send(&self, e: Event) {
        if self.tx.send(e).is_err() {
            error!("accounting task is gone: session event NOT accounted");
        }
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
    /// Records built while handling a batch of events, queued together (one fsync).
    pending: Vec<AccountingRecord>,
    ifaces: HashMap<IpAddr, Option<String>>,
    journal_path: String,
    last_snapshot: Instant,
}

impl Task {
    /// Acct-Session-Id: the start time of this run in milliseconds (hex) and a counter, so
    /// ids never repeat across restarts.
    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("{}{:05X}", self.id_prefix, self.next_id)
    }

    /// Sessions that were up when the previous run ended without its Stops: their prepared
    /// Stops (last recorded counters, NAS-Reboot) go out first, then Accounting-On.
    fn recover(&mut self, crashed: Vec<(Seq, AccountingRecord)>) {
        if !crashed.is_empty() {
            warn!(
                records = crashed.len(),
                "accounting: sessions were up when vpnd last stopped without accounting them: sending their Stops"
            );
        }
        let seqs: Vec<Seq> = crashed.iter().map(|(s, _)| *s).collect();
        self.pending.extend(crashed.into_iter().map(|(_, r)| r));
        self.nas_records(AcctStatus::AccountingOn);
        self.flush();
        // Only once the Stops are in the outbox journal.
        if let Err(e) = self.snapshots.ack_many(&seqs) {
            error!("accounting sessions journal: {e}");
        }
    }

    /// Accounting-On or -Off (RFC 2866 5.1): one to every server group in use.
    fn nas_records(&mut self, status: AcctStatus) {
        let now = SystemTime::now();
        for g in self.group_names.clone() {
            let id = self.new_id();
            self.pending.push(AccountingRecord {
                nas_ip: self.nas_ip,
                groups: vec![g],
                ..AccountingRecord::new(status, id, now)
            });
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
                if self.outbox.is_empty() || Instant::now() >= deadline {
                    if !self.outbox.is_empty() {
                        warn!(
                            queued = self.outbox.len(),
                            "accounting: stopping with records undelivered; they stay in the journal for the next start"
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
                    for e in batch {
                        if let Some(grace) = self.event(e) {
                            closing = Some(Instant::now() + grace);
                        }
                    }
                    self.flush();
                }
                Some(o) = results.recv() => {
                    let mut done = vec![o];
                    while let Ok(o) = results.try_recv() {
                        done.push(o);
                    }
                    self.outbox.outcomes(done, Instant::now());
                }
                _ = tick.tick() => {
                    self.interims(unix_now());
                    if self.last_snapshot.elapsed() >= SNAPSHOT_EVERY {
                        self.refresh_snapshots(unix_now());
                        self.last_snapshot = Instant::now();
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
                for (k, t) in t {
                    if let Some(a) = self.active.get_mut(&k) {
                        a.totals = t;
                    }
                }
            }
            Event::Show(reply) => {
                let _ = reply.send(self.view());
            }
            Event::Shutdown(grace) => {
                self.nas_records(AcctStatus::AccountingOff);
                return Some(grace);
            }
        }
        None
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
        let interface = self
            .ifaces
            .entry(v.local)
            .or_insert_with(|| iface::interface_of(v.local))
            .clone();
        let identities: Vec<SessionIdentity> = profile
            .copies
            .iter()
            .map(|groups| SessionIdentity {
                id: id.clone(),
                user_name: v.phase1_id.clone(),
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
        if profile.mode == AccountingMode::StartStop {
            self.pending.extend(identities.iter().map(start_record));
        }
        debug!(target: AAA, session = id, peer = v.peer_name, "AAA: session up, accounting started");
        // Spread the Interims: a session's first one comes a fraction of the period (from
        // its id's hash) after the period, so sessions that came up together don't all
        // send in the same second.
        let next_interim = match (profile.mode, self.interim) {
            (AccountingMode::StartStop, Some(p)) if p.as_secs() > 0 => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                id.hash(&mut h);
                Some(now + p.as_secs() + h.finish() % p.as_secs())
            }
            _ => None,
        };
        let snapshot = self.snapshot(&identities, &v.totals, now);
        self.active.insert(
            v.key.clone(),
            Active {
                identities,
                totals: v.totals,
                next_interim,
                snapshot,
                snapshot_totals: v.totals,
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
        self.pending.extend(
            a.identities
                .iter()
                .map(|i| stop_record(i, &v.totals, now, cause)),
        );
        // The real Stop replaces the prepared one: queue it first, then drop the snapshot.
        self.flush();
        if let Err(e) = self.snapshots.ack_many(&a.snapshot) {
            error!(session = id, "accounting sessions journal: {e}");
        }
    }

    /// Prepared crash Stops for a session, in the sessions journal.
    fn snapshot(&mut self, ids: &[SessionIdentity], t: &Totals, now: u64) -> Vec<Seq> {
        let stops: Vec<AccountingRecord> = ids
            .iter()
            .map(|i| stop_record(i, t, now, Cause::NasReboot))
            .collect();
        match self.snapshots.append_many(&stops) {
            Ok(seqs) => seqs,
            Err(e) => {
                error!(
                    "accounting sessions journal: a crash now would lose this session's Stop: {e}"
                );
                Vec::new()
            }
        }
    }

    fn interims(&mut self, now: u64) {
        let Some(period) = self.interim.map(|p| p.as_secs().max(1)) else {
            return;
        };
        let mut records = Vec::new();
        for a in self.active.values_mut() {
            match a.next_interim {
                Some(t) if t <= now => {
                    records.extend(
                        a.identities
                            .iter()
                            .map(|i| interim_record(i, &a.totals, now)),
                    );
                    a.next_interim = Some(t.max(now.saturating_sub(period)) + period);
                }
                _ => {}
            }
        }
        if !records.is_empty() {
            debug!(target: AAA, records = records.len(), "AAA: interim updates queued");
        }
        self.pending.extend(records);
    }

    /// Brings the prepared crash Stops up to the latest counters (only where they moved).
    fn refresh_snapshots(&mut self, now: u64) {
        let keys: Vec<SessionKey> = self
            .active
            .iter()
            .filter(|(_, a)| a.totals != a.snapshot_totals)
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            let (ids, totals, old) = {
                let a = &self.active[&k];
                (a.identities.clone(), a.totals, a.snapshot.clone())
            };
            let new = self.snapshot(&ids, &totals, now);
            if new.is_empty() {
                continue;
            }
            if let Err(e) = self.snapshots.ack_many(&old) {
                warn!("accounting sessions journal: {e}");
            }
            if let Some(a) = self.active.get_mut(&k) {
                a.snapshot = new;
                a.snapshot_totals = totals;
            }
        }
    }

    /// Queues what this batch built (one journal write and fsync).
    fn flush(&mut self) {
        let records = std::mem::take(&mut self.pending);
        self.outbox.queue(records);
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
        }
    }
}

#[cfg(test)]
mod tests;
