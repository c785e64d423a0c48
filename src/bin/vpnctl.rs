//! vpnctl: the operator's CLI, in Cisco IOS words (`vpnctl sh cr sess det`). The grammar is
//! `vpnd::control::cli`, the wire `vpnd::control::proto`, the text `vpnd::control::render`.
//!
//! Exit codes: 0 success, 1 the daemon said no, 2 usage error, 3 vpnd not reachable.

use std::process::ExitCode;
use vpnd::unix_now;

use vpnd::control::cli::{self, Command, EXIT_UNREACHABLE};
use vpnd::control::client::{call, ClientError};
use vpnd::control::proto::Body;
use vpnd::control::render;

fn main() -> ExitCode {
    // A usage error is printed with the usage line and exits 2 (`--help`, `--version`: 0).
    let inv = cli::parse();
    let response = match call(&inv.socket, inv.request()) {
        Ok(r) => r,
        Err(e @ ClientError::Unreachable { .. }) => {
            eprintln!("vpnctl: {e}");
            return ExitCode::from(EXIT_UNREACHABLE);
        }
        Err(e) => {
            eprintln!("vpnctl: {e}");
            return ExitCode::from(1);
        }
    };
    if !response.ok && inv.json && matches!(response.body, Some(Body::Reload { .. })) {
        // A refused reload: its structured reasons, and still exit 1.
        println!(
            "{}",
            serde_json::to_string_pretty(&response).unwrap_or_default()
        );
        return ExitCode::from(1);
    }
    if !response.ok {
        if let Some(Body::Reload { reload }) = &response.body {
            eprint!("{}", render::reload(reload));
        }
        eprintln!(
            "vpnctl: vpnd refused: {}",
            response.error.as_deref().unwrap_or("no reason given")
        );
        return ExitCode::from(1);
    }
    if inv.json {
        // The stable schema: the response object itself (see control/proto.rs).
        println!(
            "{}",
            serde_json::to_string_pretty(&response).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    match (&inv.command, response.body) {
        (Command::ShowCryptoSession { .. }, Some(Body::Text { text })) => print!("{text}"),
        // A daemon that answers with the list (an older vpnd): render it here.
        (Command::ShowCryptoSession { display, .. }, Some(Body::Sessions { sessions })) => {
            print!("{}", render::sessions(*display, &sessions, unix_now()))
        }
        (Command::DebugCryptoIsakmp { .. }, Some(Body::Debug { debug })) => println!("{debug}"),
        (Command::ShowAaaAccounting, Some(Body::Accounting { accounting })) => {
            print!("{}", render::aaa_accounting(&accounting))
        }
        (Command::ShowCryptoIsakmpPeer, Some(Body::Peers { peers })) => {
            print!("{}", render::isakmp_peers(&peers))
        }
        (Command::ShowCryptoIsakmpStats, Some(Body::IkeStats { ike_stats })) => {
            print!("{}", render::isakmp_stats(&ike_stats))
        }
        (
            Command::ShowIpLocalPool,
            Some(Body::Pools {
                pools,
                unknown_pool_refused,
                leases_outside_pools,
            }),
        ) => print!(
            "{}",
            render::local_pools(&pools, unknown_pool_refused, leases_outside_pools)
        ),
        (Command::Reload, Some(Body::Reload { reload })) => print!("{}", render::reload(&reload)),
        (Command::ClearCryptoSession { .. }, Some(Body::Cleared { cleared })) => {
            eprintln!("vpnctl: cleared {cleared} IKE SA(s) and their IPsec SAs");
        }
        _ => {}
    }
    ExitCode::SUCCESS
}
