//! A flood of IKE_SA_INITs that never go further, for the responder's DoS bounds (RFC 7296
//! 2.6, issue 11): one real IKE_SA_INIT made by vpnd's own engine, sent again and again
//! under fresh initiator SPIs from many source addresses and ports, at a given rate. It
//! never echoes a COOKIE and never sends IKE_AUTH, as a spoofing attacker could not; it
//! counts what came back (COOKIE only, a full answer, nothing).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::net::UdpSocket;
use vpnd::ike::codec::{Identity, Message, NotifyType, PayloadList};
use vpnd::ike::crypto::SystemRng;
use vpnd::ike::proposal::{Proposal, ProposalKind};
use vpnd::ike::{Endpoint, Output, PeerPolicy, RemoteMatch, Retransmit};
use zeroize::Zeroizing;

pub struct FloodArgs {
    pub locals: Vec<IpAddr>,
    pub target: IpAddr,
    pub count: u64,
    pub ports: u16,
    pub rate: u64,
    pub ike: String,
}

#[derive(Default)]
struct Seen {
    cookies: AtomicU64,
    full: AtomicU64,
    other: AtomicU64,
}

/// One real IKE_SA_INIT request to `target`, from vpnd's engine.
fn template(a: &FloodArgs) -> Result<Vec<u8>> {
    let policy = PeerPolicy {
        name: "flood".into(),
        remote: RemoteMatch::Single(a.target),
        remote_port: 500,
        local_id: Identity::Fqdn("flood.lab.example".into()),
        remote_id: None,
        local_auth: vpnd::ike::LocalAuth::Psk(Zeroizing::new(b"unused-by-a-flood".to_vec())),
        remote_auth: vpnd::ike::RemoteAuth::Psk(Zeroizing::new(b"unused-by-a-flood".to_vec())),
        ike_proposals: vec![Proposal::parse(&a.ike, ProposalKind::Ike).map_err(anyhow::Error::msg)?],
        ike_lifetime: Duration::from_secs(3600),
        dpd: None,
        retransmit: Retransmit::default(),
        children: Vec::new(),
        initial_contact: false,
        nat: Default::default(),
        frag: Default::default(),
        remote_access: Default::default(),
    };
    let mut e = Endpoint::new(vec![policy], Box::new(SystemRng::new()));
    e.initiate(Instant::now(), "flood", SocketAddr::new(a.locals[0], 500))
        .context("engine refused to initiate")?;
    while let Some(o) = e.poll_output() {
        if let Output::Transmit(t) = o {
            return Ok(t.data);
        }
    }
    anyhow::bail!("the engine sent no IKE_SA_INIT")
}

pub async fn run(a: FloodArgs) -> Result<()> {
    let mut packet = template(&a)?;
    let seen = Arc::new(Seen::default());
    let mut sockets = Vec::new();
    for ip in &a.locals {
        for i in 0..a.ports {
            let s = Arc::new(
                UdpSocket::bind((*ip, 30000 + i))
                    .await
                    .with_context(|| format!("bind {ip}:{}", 30000 + i))?,
            );
            let (rx, seen) = (s.clone(), seen.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while let Ok((n, _)) = rx.recv_from(&mut buf).await {
                    let counter = match Message::decode(&buf[..n]) {
                        Ok(m) if m.payloads.find_notify(NotifyType::COOKIE).is_some() => {
                            &seen.cookies
                        }
                        Ok(m) if m.payloads.sa().is_some() => &seen.full,
                        _ => &seen.other,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            });
            sockets.push(s);
        }
    }
    let target = SocketAddr::new(a.target, 500);
    let start = Instant::now();
    // SPIs from a random base, so two runs never collide with each other's half-open SAs.
    let base = u64::from_be_bytes(packet[..8].try_into().unwrap_or_default());
    let gap = Duration::from_secs_f64(1.0 / a.rate.max(1) as f64);
    for n in 0..a.count {
        let spi = base.wrapping_add(n).max(1);
        packet[..8].copy_from_slice(&spi.to_be_bytes());
        let s = &sockets[(n % sockets.len() as u64) as usize];
        let _ = s.send_to(&packet, target).await;
        let due = start + gap.mul_f64(n as f64 + 1.0);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            if wait > Duration::from_millis(1) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    let sent_for = start.elapsed();
    // The answers still on the way.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (c, f, o) = (
        seen.cookies.load(Ordering::Relaxed),
        seen.full.load(Ordering::Relaxed),
        seen.other.load(Ordering::Relaxed),
    );
    let silent = a.count.saturating_sub(c + f + o);
    println!(
        "ike-flood: {} IKE_SA_INITs from {} sources in {:.1} s ({:.0}/s): {c} COOKIE answers, {f} full answers, {o} other, {silent} unanswered",
        a.count,
        sockets.len(),
        sent_for.as_secs_f64(),
        a.count as f64 / sent_for.as_secs_f64().max(1e-9)
    );
    println!(
        "ike-flood-json: {}",
        serde_json::json!({"sent": a.count, "sources": sockets.len(), "seconds": sent_for.as_secs_f64(), "cookies": c, "full": f, "other": o, "unanswered": silent})
    );
    Ok(())
}
