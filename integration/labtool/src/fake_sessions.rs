//! `labtool fake-sessions`: vpnd's real control socket and session table, filled with N
//! synthetic sessions (one IKE SA and one child pair each, with counters), and no IKE or
//! kernel behind them: what `vpnctl show crypto session` costs with 10,000 sessions, without
//! needing 10,000 peers. Benchmark only.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use vpnd::unix_now;

use anyhow::Result;
use tokio::sync::mpsc;
use vpnd::control::proto::{Command, Response};
use vpnd::control::server::{self, Request};
use vpnd::session::table::{ChildInfo, PeerInfo, SessionTable};
use vpnd_xfrm::{SaCounters, SaId};

/// Peer i: 203.0.113.x / 198.51.100.x addresses, spread over both TEST-NETs' host parts and
/// UDP ports so that every session key is distinct (these addresses are never contacted).
fn peer_addr(i: usize) -> SocketAddr {
    let net = if i.is_multiple_of(2) {
        [203, 0, 113]
    } else {
        [198, 51, 100]
    };
    let host = (i / 2 % 254 + 1) as u8;
    let port = 500 + (i / 508) as u16;
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(net[0], net[1], net[2], host)),
        port,
    )
}

fn counters(spi: u32, bytes: u64, packets: u64) -> SaCounters {
    let id = SaId::esp(
        "192.0.2.1".parse().unwrap(),
        "192.0.2.2".parse().unwrap(),
        spi,
    );
    SaCounters::usage(id, bytes, packets)
}

pub fn table(n: usize) -> SessionTable {
    let now = unix_now();
    let mut t = SessionTable::new();
    let mut dump = Vec::with_capacity(2 * n);
    for i in 0..n {
        let ike = i as u64 + 1;
        let remote = peer_addr(i);
        t.ike_up(
            ike,
            PeerInfo {
                name: format!("peer{i}"),
                description: Some(format!("branch office {i}")),
                fvrf: None,
                ivrf: (i % 10 == 0).then(|| "blue".to_string()),
                dynamic: false,
                interface: Some("eth0".into()),
            },
            "192.0.2.1:500".parse().unwrap(),
            remote,
            Some(format!("peer{i}.lab.example")),
            true,
            now + 80_000,
        );
        let (spi_in, spi_out) = (0x1000_0000 + 2 * i as u32, 0x1000_0001 + 2 * i as u32);
        t.child_installed(
            ike,
            ike,
            ChildInfo {
                inbound_spi: spi_in,
                outbound_spi: spi_out,
                protocol: 0,
                local_ts: "198.51.100.0/25".into(),
                remote_ts: format!("203.0.113.{}/32", i % 254 + 1),
                lifetime_s: 3600,
                lifetime_kb: Some(4_608_000),
                installed_at: now,
            },
            now,
        );
        dump.push(counters(spi_in, 84 * i as u64, i as u64));
        dump.push(counters(spi_out, 84 * i as u64, i as u64));
    }
    t.counters(&dump);
    t
}

pub async fn serve(sessions: usize, socket: PathBuf) -> Result<()> {
    let table = table(sessions);
    let (tx, mut rx) = mpsc::channel::<Request>(64);
    server::spawn(&socket, 0o660, None, tx)?;
    println!("fake-sessions: {sessions} sessions on {}", socket.display());
    while let Some(req) = rx.recv().await {
        let response = match req.command {
            Command::ShowSessions { filter, text } => {
                let now = unix_now();
                vpnd::control::show_sessions(table.views(now), &filter, text, now)
            }
            _ => Response::error("fake-sessions answers show crypto session only"),
        };
        let _ = req.reply.send(response);
    }
    Ok(())
}
