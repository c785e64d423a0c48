//! What a scrape shows: plain data, published by each owner into a `watch` channel (the
//! daemon loop for the engine and the sessions, the accounting task for its outbox and
//! RADIUS servers), so the endpoint reads the latest copy and never waits on an owner.

use crate::session::model::{SessionView, Status, Totals};

/// Every status a session can have, in the order the scrape lists them (each is always
/// present, 0 when no session has it, so a dashboard's series do not vanish).
pub const STATUSES: [Status; 5] = [
    Status::UpActive,
    Status::UpIdle,
    Status::UpNoIke,
    Status::DownNegotiating,
    Status::Down,
];

/// Upper bounds of the kernel dump duration histogram, in seconds (a dump of 20,000 SAs
/// took 73 ms in the VM; 10 s means the netlink socket is stuck).
pub const DUMP_BUCKETS: [f64; 8] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 10.0];

/// The daemon loop's part.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EngineSnapshot {
    /// Sessions per status, [`STATUSES`] order.
    pub sessions_by_status: [u64; 5],
    pub sessions: Vec<SessionSample>,
    /// IKE SAs established (not being negotiated, not dead).
    pub ike_sas: u64,
    /// IKE SAs being negotiated (IKE_SA_INIT or IKE_AUTH not completed).
    pub half_open_sas: u64,
    /// Child SAs (pairs) in the kernel.
    pub child_sas: u64,
    pub counters: EngineCounters,
    pub dump: DumpStats,
    /// Per syslog destination (`unix:/dev/log`, `udp:…`, `tcp:…`): notices waiting.
    pub syslog_queued: Vec<(String, u64)>,
}

/// A session's totals and who it is with. One per session: the series ends when the
/// session does (its totals never go backwards while it lives, rekeys included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionSample {
    /// The configured peer's name.
    pub peer: String,
    /// The peer's address and port (the session key, with the VRFs).
    pub remote: String,
    pub fvrf: Option<String>,
    pub ivrf: Option<String>,
    /// What accounting sends as User-Name: the EAP user, else the peer's IKE identity.
    pub username: Option<String>,
    pub totals: Totals,
}

impl SessionSample {
    pub fn of(v: &SessionView) -> SessionSample {
        SessionSample {
            peer: v.peer_name.clone(),
            remote: v.key.peer.to_string(),
            fvrf: v.key.fvrf.clone(),
            ivrf: v.key.ivrf.clone(),
            username: v
                .user
                .as_ref()
                .map(|u| u.username.clone())
                .or_else(|| v.phase1_id.clone()),
            totals: v.totals,
        }
    }
}

/// Counted from the engine's outputs by the daemon loop, since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineCounters {
    /// IKE SAs that completed IKE_AUTH.
    pub handshakes_established: u64,
    /// IKE_SA_INIT or IKE_AUTH refused or failed (proposals, authentication, identities).
    pub handshakes_failed: u64,
    /// Negotiations the peer never answered.
    pub handshakes_timeout: u64,
    /// Negotiations that ended otherwise (deleted, cleared, stopped) before completing.
    pub handshakes_aborted: u64,
    pub ike_rekeys: u64,
    pub child_rekeys: u64,
    /// Established IKE SAs whose peer stopped answering (liveness check or other request).
    pub dpd_failures: u64,
}

/// The kernel counter dumps (one netlink dump of every SA vpnd owns).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DumpStats {
    /// Per bucket of [`DUMP_BUCKETS`] (not cumulative), then +Inf.
    pub buckets: [u64; 9],
    pub count: u64,
    pub sum_seconds: f64,
    pub errors: u64,
}

impl DumpStats {
    pub fn observe(&mut self, seconds: f64) {
        let i = DUMP_BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(DUMP_BUCKETS.len());
        self.buckets[i] += 1;
        self.count += 1;
        self.sum_seconds += seconds;
    }
}

/// The accounting task's part.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AccountingSnapshot {
    /// Records in the outbox not yet acknowledged, plus those not yet journalled.
    pub queued: u64,
    /// Age of the oldest of them (from its event time), seconds; 0 when none.
    pub oldest_age_seconds: f64,
    pub servers: Vec<vpnd_radius::ServerStats>,
}
