//! `vpnctl reload` and SIGHUP: the configuration file read again and the difference
//! applied ([`Config::reload`] says what differs). A file that does not validate, or that
//! asks for what only a restart can do, is refused whole: nothing changes. Otherwise, in
//! this order (fail closed: a flow is never without a policy):
//! 0. the XFRM interfaces and VRFs of route-based peers added or moved are made;
//! 1. the standing policies of the new flows go in, those no flow stands for leave
//!    ([`super::kernel::Kernel::set_standing`]);
//! 2. the engine gets the new peer set ([`crate::ike::Endpoint::set_peers`]): it deletes
//!    the IKE SAs of removed and renegotiated peers with the peer, and the others' SAs
//!    carry on under the new policy objects;
//! 3. what the daemon derives from the peers (start actions, descriptions, `show`), the
//!    running children's reverse routes (added, replaced or removed in place), the log
//!    level, syslog destinations, DoS bounds, the RADIUS servers of accounting and EAP
//!    (requests in flight to a removed server go to the new ones) and the accounting
//!    method lists (new sessions take the new list, running ones keep their Start's);
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
        let (mut new, diff) = self.config.reload(file);
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
        // The RADIUS clients' plans, checked before anything changes; accounting started
        // now if it was not running (no peer had a list) and a peer has one.
        let aaa = diff
            .live
            .iter()
            .any(|s| matches!(*s, "radius" | "accounting"))
            || !diff.peers.is_empty();
        let plans = if aaa {
            match (
                crate::accounting::Plan::of(&new),
                super::eap::Plan::of(&new),
            ) {
                (Ok(a), Ok(e)) => Some((a, e)),
                (Err(e), _) | (_, Err(e)) => {
                    error!("reload refused: RADIUS: {e:#}");
                    view.refused = vec![format!("{e:#}")];
                    return refused(view, format!("reload refused: RADIUS: {e:#}"));
                }
            }
        } else {
            None
        };
        let mut started = None;
        if let Some((a, _)) = &plans {
            if self.accounting.is_none() && a.accounts() {
                match crate::accounting::Accounting::start(&new, &[]) {
                    Ok(acct) => started = acct,
                    Err(e) => {
                        error!("reload refused: starting RADIUS accounting: {e:#}");
                        view.refused = vec![format!("{e:#}")];
                        return refused(
                            view,
                            format!("reload refused: starting RADIUS accounting: {e:#}"),
                        );
                    }
                }
            }
        }
        // 0. The XFRM interfaces (and VRFs) of route-based peers added or moved, before
        // anything else changes: a failure refuses the reload with only an idle interface
        // made, and the peer's SAs are made after its interface exists.
        let moved = |c: &PeerChange| match c {
            PeerChange::Added => true,
            PeerChange::Renegotiate(why) => why.iter().any(|f| matches!(*f, "interface" | "ivrf")),
            _ => false,
        };
        let linked: Vec<&crate::config::PeerConfig> = diff
            .peers
            .iter()
            .filter(|(_, c)| moved(c))
            .filter_map(|(name, _)| new.peer(name))
            .filter(|p| p.interface.is_some())
            .collect();
        if !linked.is_empty() {
            let made = async {
                let mut l = super::links::Links::connect()
                    .map_err(|e| anyhow::anyhow!("opening the route netlink socket: {e}"))?;
                for p in &linked {
                    super::ensure_peer_links(&mut l, &new, p).await?;
                }
                anyhow::Ok(())
            };
            if let Err(e) = made.await {
                error!("reload refused: {e:#}");
                view.refused = vec![format!("{e:#}")];
                return refused(view, format!("reload refused: {e:#}"));
            }
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
        // 2. The engine: which SAs stay is its call. The children it makes from now on carry
        // their peer's new if_id (a peer moved to another interface).
        self.kernel.set_if_ids(super::if_ids(&new));
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
        let mut changes = self.endpoint.set_peers(Instant::now(), policies);
        // A peer moved to another interface or VRF with the same negotiated policy (if_id
        // included) is one the engine would keep: its SAs go too, to come up on the new one.
        for (name, _) in diff.peers.iter().filter(|(_, c)| moved(c)) {
            if !changes.kept.contains(name) {
                continue;
            }
            let ids: Vec<_> = self
                .endpoint
                .sas()
                .filter(|s| &s.peer.name == name && !s.is_dead())
                .map(|s| s.id)
                .collect();
            for id in ids {
                if self.endpoint.delete(Instant::now(), id).is_ok() {
                    changes.deleted.push(id);
                }
            }
        }
        if diff.live.contains(&"dos") {
            self.endpoint.set_dos(new.dos);
        }
        // 3. The daemon's own view of the peers, the running children's reverse routes
        //    (their SAs untouched), and the live sections.
        self.configure_peers(&new);
        let (routes, errors) = self.kernel.replan_routes(super::routes::plans(&new)).await;
        for e in errors {
            warn!("reload: reverse routes: {e}");
        }
        if routes != super::routes::Changed::default() {
            info!(
                added = routes.added,
                replaced = routes.replaced,
                removed = routes.removed,
                "reload: reverse routes updated"
            );
        }
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
        if let Some((acct, eap)) = plans {
            if let Some(a) = started {
                warn!("reload: RADIUS accounting started (the metrics endpoint shows it after a restart)");
                self.accounting = Some(a);
            } else if let Some(a) = &self.accounting {
                // Running sessions keep the groups their Start went to.
                a.reconfigure(acct);
            }
            if let Some(relay) = self.eap.as_mut() {
                if let Err(e) = relay.reconfigure(eap) {
                    error!("reload: EAP's RADIUS groups: {e:#}");
                }
            }
        }
        if let Some(a) = &self.accounting {
            a.set_when_full(new.accounting.when_full);
        }
        if diff.live.contains(&"metrics") {
            if let Err(e) = self
                .ops
                .reload_metrics(&new.metrics, self.accounting.as_ref())
            {
                error!("reload: the metrics endpoint NOT moved, the old one keeps serving: {e:#}");
                view.not_applied.push(format!("metrics: {e:#}"));
                new.metrics = self.config.metrics.clone();
            }
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
        view.live = diff
            .live
            .iter()
            .filter(|s| {
                !view
                    .not_applied
                    .iter()
                    .any(|n| n.starts_with(&format!("{s}:")))
            })
            .map(|s| s.to_string())
            .collect();
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
