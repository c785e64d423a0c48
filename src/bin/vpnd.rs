//! vpnd: the IKEv2 daemon. `vpnd --config /etc/vpnd/vpnd.yaml`; `--check` validates the
//! configuration and exits (every problem with file, line and column).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use vpnd::config::Config;

#[derive(Parser)]
#[command(
    name = "vpnd",
    version,
    about = "IKEv2 daemon for the Linux XFRM stack"
)]
struct Args {
    /// The YAML configuration.
    #[arg(long, short, default_value = "/etc/vpnd/vpnd.yaml")]
    config: PathBuf,
    /// Validate the configuration and exit.
    #[arg(long)]
    check: bool,
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
        println!(
            "{}: OK ({} peers)",
            args.config.display(),
            config.peers.len()
        );
        return ExitCode::SUCCESS;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("VPND_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(config.log.level.as_str()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vpnd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(vpnd::daemon::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
