//! The daemon loop's operations hooks: the metrics snapshot, systemd's STATUS= and
//! watchdog, and what the engine's outputs count (handshakes, rekeys, DPD failures). Kept
//! apart from the loop itself (mod.rs), which only calls in here.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::systemd::Notifier;
use super::Daemon;
use crate::accounting::Accounting;
use crate::config::Config;
use crate::ike::{DownReason, Output};
use crate::metrics::snapshot::{DumpStats, EngineCounters, STATUSES};
use crate::metrics::{EngineSnapshot, Metrics, SessionSample};
use crate::session::model::Status;

/// The metrics snapshot is rebuilt at most this often (and after each counter dump).
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

pub(super) struct Ops {
    metrics: Option<Metrics>,
    notifier: Notifier,
    counters: EngineCounters,
    dump: DumpStats,
    /// Something happened since the last snapshot.
    pending: bool,
    /// This turn of the loop is the wake-up asked for by [`Ops::next_wake`], not an event.
    woke: bool,
    published: Option<Instant>,
}

impl Ops {
    pub fn new() -> Ops {
        Ops {
            metrics: None,
            notifier: Notifier::from_env(),
            counters: EngineCounters::default(),
            dump: DumpStats::default(),
            pending: true,
            woke: false,
            published: None,
        }
    }

    /// Binds the metrics endpoint when configured.
    pub fn start_metrics(
        &mut self,
        config: &Config,
        accounting: Option<&Accounting>,
    ) -> Result<()> {
        if let Some(m) = &config.metrics {
            self.metrics = Some(Metrics::start(m, accounting.map(Accounting::metrics))?);
        }
        Ok(())
    }

    /// A reload's `metrics:`: the new endpoint is bound first; if that fails the old one
    /// keeps serving (the error says why), else the old one stops.
    pub fn reload_metrics(
        &mut self,
        config: &Option<crate::config::MetricsConfig>,
        accounting: Option<&Accounting>,
    ) -> Result<()> {
        let new = match config {
            Some(m) => Some(Metrics::start(m, accounting.map(Accounting::metrics))?),
            None => None,
        };
        let started = new.is_some();
        if let Some(old) = std::mem::replace(&mut self.metrics, new) {
            old.stop();
        }
        if started {
            // The new endpoint's first snapshot now, not at the next tick.
            self.pending = true;
        }
        Ok(())
    }

    /// Counts what an engine output says happened (before the daemon applies it).
    pub fn output(&mut self, o: &Output) {
        let c = &mut self.counters;
        match o {
            Output::IkeUp { .. } => c.handshakes_established += 1,
            Output::IkeRekeyed { .. } => c.ike_rekeys += 1,
            Output::IkeDown { was_up, reason, .. } => match (was_up, reason) {
                (true, DownReason::PeerUnreachable) => c.dpd_failures += 1,
                (true, _) => {}
                (false, DownReason::NegotiationFailed(_)) => c.handshakes_failed += 1,
                (false, DownReason::PeerUnreachable) => c.handshakes_timeout += 1,
                // A successor's predecessor, not a negotiation that ended.
                (false, DownReason::Rekeyed) => {}
                (false, _) => c.handshakes_aborted += 1,
            },
            _ => {}
        }
    }

    /// A reload begins (systemd: RELOADING=1 with MONOTONIC_USEC).
    pub fn reloading(&mut self) {
        self.notifier.reloading();
    }

    /// A reload ended, applied or refused (systemd: READY=1).
    pub fn reloaded(&mut self) {
        self.notifier.ready();
        self.pending = true;
    }

    /// A rekeyed child's new pair is in the kernel.
    pub fn child_rekeyed(&mut self) {
        self.counters.child_rekeys += 1;
    }

    /// One kernel counter dump took `took` (`None`: it failed).
    pub fn dumped(&mut self, took: Option<Duration>) {
        match took {
            Some(d) => self.dump.observe(d.as_secs_f64()),
            None => self.dump.errors += 1,
        }
        // Fresh totals: the next turn of the loop publishes them.
        self.published = None;
    }

    /// Whether anyone reads the snapshot (the endpoint, or systemd's status line).
    fn wanted(&self) -> bool {
        self.metrics.is_some() || self.notifier.enabled()
    }

    /// The loop turned for [`Ops::next_wake`] only.
    pub fn woke(&mut self) {
        self.woke = true;
    }

    /// When the loop must turn again for the snapshot, the status or the watchdog.
    pub fn next_wake(&self) -> Option<Instant> {
        let publish = (self.wanted() && self.pending).then(|| {
            self.published
                .map_or_else(Instant::now, |t| t + PUBLISH_EVERY)
        });
        [publish, self.notifier.next_wake()]
            .into_iter()
            .flatten()
            .min()
    }
}

impl Daemon {
    /// Every turn of the daemon loop: the watchdog ping (so a loop that hangs stops it),
    /// STATUS= and the metrics snapshot when due.
    pub(super) fn ops_tick(&mut self) {
        let now = Instant::now();
        if !std::mem::take(&mut self.ops.woke) {
            self.ops.pending = true;
        }
        let due = self.ops.pending
            && self.ops.wanted()
            && self.ops.published.is_none_or(|t| now >= t + PUBLISH_EVERY);
        if due {
            let snapshot = self.engine_snapshot();
            let up: u64 = STATUSES
                .iter()
                .zip(snapshot.sessions_by_status)
                .filter(|(s, _)| s.is_up())
                .map(|(_, n)| n)
                .sum();
            let all: u64 = snapshot.sessions_by_status.iter().sum();
            self.ops.notifier.set_status(format!(
                "{up} sessions up, {} down; {} IKE SAs, {} negotiating",
                all - up,
                snapshot.ike_sas,
                snapshot.half_open_sas
            ));
            if let Some(m) = &self.ops.metrics {
                m.publish(snapshot);
            }
            self.ops.published = Some(now);
            self.ops.pending = false;
        }
        self.ops.notifier.tick(now);
    }

    fn engine_snapshot(&self) -> EngineSnapshot {
        let mut by_status = [0u64; 5];
        let index = |s: Status| STATUSES.iter().position(|x| *x == s).unwrap_or(4);
        let mut sessions = Vec::new();
        let mut with_session = HashSet::new();
        let detailed = self.ops.metrics.is_some();
        for s in self.sessions.summaries() {
            by_status[index(s.status)] += 1;
            with_session.insert(s.peer_name);
            if detailed {
                sessions.push(SessionSample {
                    peer: s.peer_name.to_string(),
                    remote: s.key.peer.to_string(),
                    fvrf: s.key.fvrf.clone(),
                    ivrf: s.key.ivrf.clone(),
                    username: s.phase1_id.map(str::to_string),
                    totals: s.totals,
                });
            }
        }
        let (mut ike_sas, mut half_open) = (0, 0);
        let mut negotiating = HashSet::new();
        for sa in self.endpoint.sas().filter(|s| !s.is_dead()) {
            if sa.is_established() {
                ike_sas += 1;
            } else {
                half_open += 1;
                negotiating.insert(sa.peer.name.as_str());
            }
        }
        // Static peers without a session, as `show crypto session` lists them.
        for p in &self.static_peers {
            if !with_session.contains(p.info.name.as_str()) {
                let s = if negotiating.contains(p.info.name.as_str()) {
                    Status::DownNegotiating
                } else {
                    Status::Down
                };
                by_status[index(s)] += 1;
            }
        }
        EngineSnapshot {
            sessions_by_status: by_status,
            sessions,
            ike_sas,
            half_open_sas: half_open,
            // The engine's: it owns the children (once a second, off the datagram path).
            child_sas: self.endpoint.sas().map(|sa| sa.children.len() as u64).sum(),
            counters: self.ops.counters,
            dump: self.ops.dump.clone(),
            syslog_queued: if detailed {
                self.syslog.queued()
            } else {
                Vec::new()
            },
        }
    }
}

/// Debug builds only: SIGUSR2 stalls the daemon loop (as a hung engine would), so a test
/// can see the watchdog pings stop. Release builds have no such hook.
#[cfg(debug_assertions)]
pub(super) fn stall_signal() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined2()).ok()
}

#[cfg(not(debug_assertions))]
pub(super) fn stall_signal() -> Option<tokio::signal::unix::Signal> {
    None
}

/// Resolves when the stall hook fires; never without it.
pub(super) async fn stall_requested(s: &mut Option<tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// How long the stall hook holds the loop.
pub(super) const STALL: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MetricsConfig, MetricsListen};
    use std::net::{SocketAddr, TcpListener, TcpStream};

    fn free() -> SocketAddr {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    }

    fn tcp(a: SocketAddr) -> Option<MetricsConfig> {
        Some(MetricsConfig {
            listen: MetricsListen::Tcp(a),
        })
    }

    async fn serves(a: SocketAddr) -> bool {
        // The aborted accept loop drops its listener at its next poll.
        tokio::time::sleep(Duration::from_millis(50)).await;
        TcpStream::connect(a).is_ok()
    }

    #[tokio::test]
    async fn the_metrics_endpoint_moves_and_a_failed_bind_keeps_the_old_one() {
        let mut ops = Ops::new();
        let (a, b) = (free(), free());
        ops.reload_metrics(&tcp(a), None).unwrap();
        assert!(serves(a).await);
        // b is taken: refused, a keeps serving.
        let taken = TcpListener::bind(b).unwrap();
        let e = ops.reload_metrics(&tcp(b), None).unwrap_err();
        assert!(format!("{e:#}").contains(&b.to_string()), "{e:#}");
        assert!(serves(a).await, "the old endpoint stays");
        drop(taken);
        ops.reload_metrics(&tcp(b), None).unwrap();
        assert!(serves(b).await);
        assert!(!serves(a).await, "the old endpoint stopped");
        ops.reload_metrics(&None, None).unwrap();
        assert!(!serves(b).await, "removed");
    }
}
