//! vpnd: the IKEv2 daemon. `vpnd --config /etc/vpnd/vpnd.yaml`; `--check` validates the
//! configuration and exits (every problem with file, line and column).

use std::process::ExitCode;

use clap::Parser;
use vpnd::config::Config;
use vpnd::daemon::args::Args;

/// One thread: the daemon is one owner task and its helpers, all waiting on I/O.
fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| eprintln!("vpnd: cannot start the runtime: {e}"))
        .ok()
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vpnd: configuration refused, nothing started:\n{e}");
            return ExitCode::from(2);
        }
    };
    if args.check {
        for w in &config.warnings {
            eprintln!("vpnd: warning: {w}");
        }
        println!(
            "{}: OK ({} peers)",
            args.config.display(),
            config.peers.len()
        );
        return ExitCode::SUCCESS;
    }
    if args.flush {
        let Some(rt) = runtime() else {
            return ExitCode::FAILURE;
        };
        return match rt.block_on(vpnd::daemon::flush(&config)) {
            Ok(r) => {
                println!(
                    "removed {} policies, {} SAs, {} routes and {} interfaces owned by vpnd",
                    r.policies, r.sas, r.routes, r.interfaces
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("vpnd: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    // The filter sits behind a reload layer: `vpnctl debug crypto isakmp on` changes it live.
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let base = std::env::var("VPND_LOG").unwrap_or_else(|_| config.log.level.as_str().to_string());
    let filter = match tracing_subscriber::EnvFilter::try_new(&base) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("vpnd: VPND_LOG={base:?} is not a log filter: {e}");
            return ExitCode::from(2);
        }
    };
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    // To stderr, one line per event; colours only for a terminal; no timestamps in the
    // journal (it has its own).
    let style = vpnd::daemon::logging::LogStyle::detect();
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(style.ansi)
        .with_writer(vpnd::daemon::logging::stderr_one_line);
    let registry = tracing_subscriber::registry().with(filter);
    if style.time {
        registry.with(fmt).init();
    } else {
        registry.with(fmt.without_time()).init();
    }
    let log = vpnd::daemon::logging::LogControl::new(handle, base);
    for w in &config.warnings {
        tracing::warn!("configuration: {w}");
    }
    let Some(rt) = runtime() else {
        return ExitCode::FAILURE;
    };
    match rt.block_on(vpnd::daemon::run(config, args.config.clone(), log)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
