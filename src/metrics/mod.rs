//! The OpenMetrics endpoint (`metrics: { listen: … }`, off by default).
//!
//! A scrape never waits on the engine: each owner publishes a [`snapshot`] into a `watch`
//! channel when it has something new (the daemon loop: sessions, SAs and event counters at
//! most once a second and after every kernel counter dump; the accounting task: its outbox
//! and RADIUS servers every second), and the [`server`] encodes the latest copies. Labels
//! and their cardinality are listed in the README ("Metrics").

pub mod encode;
mod server;
pub mod snapshot;
pub mod text;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::{MetricsConfig, MetricsListen};
pub use server::CONTENT_TYPE;
pub use snapshot::{AccountingSnapshot, EngineSnapshot, SessionSample};

/// The daemon loop's side: where it publishes its snapshot.
pub struct Metrics {
    engine: watch::Sender<Arc<EngineSnapshot>>,
    /// The accept loop: stopped when this endpoint is dropped (a reload moved it).
    accept: tokio::task::JoinHandle<()>,
    listen: MetricsListen,
}

impl Drop for Metrics {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Metrics {
    /// Binds the endpoint (a failure stops the start, as for the control socket) and serves
    /// it from a task of its own.
    pub fn start(
        config: &MetricsConfig,
        accounting: Option<watch::Receiver<Arc<AccountingSnapshot>>>,
    ) -> Result<Metrics> {
        let (engine, rx) = watch::channel(Arc::new(EngineSnapshot::default()));
        let src = server::Sources::new(rx, accounting);
        let accept = match &config.listen {
            MetricsListen::Tcp(addr) => {
                let l = std::net::TcpListener::bind(addr)
                    .with_context(|| format!("metrics: binding TCP {addr}"))?;
                l.set_nonblocking(true)?;
                let l = tokio::net::TcpListener::from_std(l)?;
                tokio::spawn(async move {
                    loop {
                        match l.accept().await {
                            Ok((s, _)) => {
                                tokio::spawn(server::serve(s, src.clone()));
                            }
                            Err(e) => accept_failed(e).await,
                        }
                    }
                })
            }
            MetricsListen::Unix(path) => {
                // A socket left by an earlier run is replaced; anything else is not ours.
                if let Ok(m) = std::fs::symlink_metadata(path) {
                    anyhow::ensure!(
                        m.file_type().is_socket(),
                        "metrics: {} exists and is not a socket",
                        path.display()
                    );
                    std::fs::remove_file(path)
                        .with_context(|| format!("metrics: removing {}", path.display()))?;
                }
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("metrics: creating {}", dir.display()))?;
                }
                let l = std::os::unix::net::UnixListener::bind(path)
                    .with_context(|| format!("metrics: binding {}", path.display()))?;
                // Root's and its group's: the scraper (or its proxy) runs as one of them.
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
                l.set_nonblocking(true)?;
                let l = tokio::net::UnixListener::from_std(l)?;
                tokio::spawn(async move {
                    loop {
                        match l.accept().await {
                            Ok((s, _)) => {
                                tokio::spawn(server::serve(s, src.clone()));
                            }
                            Err(e) => accept_failed(e).await,
                        }
                    }
                })
            }
        };
        info!(listen = %config.listen, "metrics endpoint serving");
        Ok(Metrics {
            engine,
            accept,
            listen: config.listen.clone(),
        })
    }

    /// Stops serving (a reload moved or removed the endpoint): the accept loop ends, a
    /// Unix socket file is removed; scrapes under way finish.
    pub fn stop(self) {
        if let MetricsListen::Unix(path) = &self.listen {
            let _ = std::fs::remove_file(path);
        }
    }

    /// The daemon loop's latest state, for the next scrapes.
    pub fn publish(&self, snapshot: EngineSnapshot) {
        self.engine.send_replace(Arc::new(snapshot));
    }
}

/// Out of descriptors (or similar): wait instead of spinning on accept.
async fn accept_failed(e: std::io::Error) {
    warn!("metrics: accept failed: {e}");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
}
