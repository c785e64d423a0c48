//! `vpnctl reload` and SIGHUP: the configuration file read again and the difference
//! applied ([`Config::reload`] says what differs). A file that does not validate, or that
//! asks for what only a restart can do, is refused whole: nothing changes. Otherwise, in
//! this order (fail closed: a flow is never without a policy):
//! 1. the standing policies of the new flows go in, those no flow stands for leave
//!    ([`super::kernel::Kernel::set_standing`]);
//! 2. the engine gets the new peer set ([`crate::ike::Endpoint::set_peers`]): it deletes
//!    the IKE SAs of removed and renegotiated peers with the peer, and the others' SAs
//!    carry on under the new policy objects;
//! 3. what the daemon derives from the peers (start actions, descriptions, `show`),
//!    the log level, syslog destinations, DoS bounds and `accounting.when_full`;
//! 4. new initiators start, renegotiated ones start again once their old IKE SA is gone.
//!
//! systemd hears RELOADING=1 (with MONOTONIC_USEC, as `Type=notify-reload` wants) before
//! and READY=1 after, whatever the outcome.

use std::collections::HashSet;
use std::time::Instant;

use tracing::{error, info, warn};

use super::{standing_flows, Daemon, SHUTDOWN_GRACE};
use crate::config::{Config, ConfigError, PeerAddress, PeerChange, StartAction};
use crate::control::proto::{Body, PeerFields, ProblemView, ReloadView, Response};

impl Daemon {
    pub(super) async fn reload(&mut self) -> Response {
        self.ops.reloading();
        let r = self.reload_file().await;
        self.ops.reloaded();
        r
    }

    async fn reload_file(&mut self) -> Response {
        let path = self.config_path.clone();
        let mut view = ReloadView {
            file: path.display().to_string(),
            ..ReloadView::default()
        };
        let file = match Config::load(&path) {
            Ok(c) => c,
            Err(e) => {
                error!(file = %path.display(), "reload refused, the running configuration stays:\n{e}");
                view.problems = e.problems().iter().map(ProblemView::from).collect();
                let message = match &e {
                    ConfigError::Read { .. } => e.to_string(),
                    _ => format!("configuration refused, the running one stays:\n{e}"),
                };
                return refused(view, message);
            }
        };
        view.warnings = file.warnings.iter().map(ProblemView::from).collect();
        for w in &file.warnings {
            warn!("configuration: {w}");
        }
        let (new, diff) = self.config.reload(file);
        if !diff.refused.is_empty() {
            let text = diff.refused.join("\n");
            error!(file = %path.display(), "reload refused, the running configuration stays:\n{text}");
            view.refused = diff.refused;
            return refused(
                view,
                format!("reload refused, the running configuration stays:\n{text}"),
            );
        }
        for s in &diff.restart {
            warn!(
                section = s,
                "reload: changed, but only a restart applies it; the running values stay"
            );
        }
        // 1. The kernel's standing policies, new before old.
        match self.kernel.set_standing(&standing_flows(&new)).await {
            Ok(c) => info!(
                installed = c.installed,
                removed = c.removed,
                "reload: standing policies updated"
            ),
            Err(e) => {
                error!("reload refused: standing policies: {e}");
                view.refused = vec![e.to_string()];
                return refused(view, format!("reload refused: {e}"));
            }
        }
        // 2. The engine: which SAs stay is its call.
        let policies = new
            .peers
            .iter()
            .map(|p| super::peers::peer_policy(p, new.local.nat_t_port))
            .collect();
        if diff.live.contains(&"pools") {
            // Before the peers that may name new pools; leases stay (Pools::reconfigure).
            self.endpoint.set_pools(new.pools.clone());
            info!("reload: address pools updated");
        }
        let changes = self.endpoint.set_peers(Instant::now(), policies);
        if diff.live.contains(&"dos") {
            self.endpoint.set_dos(new.dos);
        }
        // 3. The daemon's own view of the peers, and the live sections.
        self.configure_peers(&new);
        for (name, change) in &diff.peers {
            if let PeerChange::Update(_) = change {
                if let Some(info) = self.peer_info.get(name).cloned() {
                    self.sessions.peer_updated(&info);
                }
            }
        }
        let known: HashSet<&str> = new.peers.iter().map(|p| p.name.as_str()).collect();
        self.retries.retain(|p, _| known.contains(p.as_str()));
        self.backoff.retain(|p, _| known.contains(p.as_str()));
        self.reinitiate.retain(|p, _| known.contains(p.as_str()));
        if diff.live.contains(&"log") {
            if std::env::var_os("VPND_LOG").is_some() {
                warn!("reload: log.level changed, but VPND_LOG overrides it");
            } else if let Err(e) = self.log.set_base(new.log.level.as_str().to_string()) {
                warn!("reload: {e}");
            }
        }
        if diff.live.contains(&"syslog") {
            // The old destinations send what they hold, off this loop.
            let old =
                std::mem::replace(&mut self.syslog, crate::syslog::Syslog::start(&new.syslog));
            tokio::spawn(old.shutdown(SHUTDOWN_GRACE));
        }
        if let Some(a) = &self.accounting {
            a.set_when_full(new.accounting.when_full);
        }
        // 4. Initiators.
        let initiator = |name: &str| {
            new.peer(name).and_then(|p| match (p.start, p.remote) {
                (StartAction::Initiate, PeerAddress::Single(a)) => Some(a),
                _ => None,
            })
        };
        for (name, change) in &diff.peers {
            let Some(remote) = initiator(name) else {
                continue;
            };
            match change {
                PeerChange::Renegotiate(_) => {
                    self.reinitiate.insert(name.clone(), remote);
                    self.reinitiate_if_gone(name);
                }
                PeerChange::Added | PeerChange::Update(_) => {
                    if !self.has_live_sa(name) && !self.retries.contains_key(name) {
                        self.initiate(name, remote);
                    }
                }
                PeerChange::Removed => {}
            }
        }
        let fields = |v: Vec<&'static str>| v.into_iter().map(String::from).collect();
        for (name, change) in diff.peers {
            match change {
                PeerChange::Added => view.added.push(name),
                PeerChange::Removed => view.removed.push(name),
                PeerChange::Renegotiate(f) => view.renegotiated.push(PeerFields {
                    name,
                    fields: fields(f),
                }),
                PeerChange::Update(f) => view.updated.push(PeerFields {
                    name,
                    fields: fields(f),
                }),
            }
        }
        view.live = diff.live.iter().map(|s| s.to_string()).collect();
        view.restart_needed = diff.restart;
        view.applied = true;
        info!(
            file = %path.display(),
            added = ?view.added,
            removed = ?view.removed,
            renegotiated = ?view.renegotiated.iter().map(|p| &p.name).collect::<Vec<_>>(),
            updated = ?view.updated.iter().map(|p| &p.name).collect::<Vec<_>>(),
            ike_sas_deleted = changes.deleted.len(),
            live = ?view.live,
            restart_needed = ?view.restart_needed,
            "configuration reloaded"
        );
        self.config = new;
        Response::ok(Body::Reload {
            reload: Box::new(view),
        })
    }

    fn has_live_sa(&self, peer: &str) -> bool {
        self.endpoint
            .sas()
            .any(|s| s.peer.name == peer && !s.is_dead())
    }

    /// A renegotiated initiator comes up again once none of its old IKE SAs is left.
    pub(super) fn reinitiate_if_gone(&mut self, peer: &str) {
        if self.has_live_sa(peer) {
            return;
        }
        if let Some(remote) = self.reinitiate.remove(peer) {
            info!(peer, "reload: bringing the renegotiated peer up again");
            self.initiate(peer, remote);
        }
    }
}

fn refused(view: ReloadView, message: String) -> Response {
    let mut r = Response::error(message);
    r.body = Some(Body::Reload {
        reload: Box::new(view),
    });
    r
}
