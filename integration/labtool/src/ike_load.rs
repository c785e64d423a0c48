//! An IKEv2 load generator built on vpnd's own sans-IO engine: opens IKE SAs (each with one
//! child) to a responder from many UDP source ports at once, and reports how many it
//! established per second. The same generator measures vpnd and charon as responders.
//! Child SAs are negotiated but never installed here: only the responder's work counts.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ipnet::IpNet;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use vpnd::ike::codec::{Identity, TrafficSelector};
use vpnd::ike::crypto::SystemRng;
use vpnd::ike::proposal::{Proposal, ProposalKind};
use vpnd::ike::{ChildPolicy, Endpoint, Mode, Output, PeerPolicy, RemoteMatch, Retransmit};
use zeroize::Zeroizing;

pub struct LoadArgs {
    pub local: IpAddr,
    pub target: IpAddr,
    pub count: usize,
    pub concurrency: usize,
    pub ports: u16,
    pub psk: String,
    pub ike: String,
    pub esp: String,
    pub local_id: String,
    pub remote_id: String,
    pub local_ts: IpNet,
    pub remote_ts: IpNet,
    pub timeout: Duration,
}

fn ts(n: IpNet) -> TrafficSelector {
    TrafficSelector::new(0, 0, 65535, n.network(), n.broadcast()).expect("one family")
}

pub async fn run(a: LoadArgs) -> Result<()> {
    let policy = PeerPolicy {
        name: "load".into(),
        remote: RemoteMatch::Single(a.target),
        remote_port: 500,
        local_id: Identity::Fqdn(a.local_id.clone()),
        remote_id: Some(Identity::Fqdn(a.remote_id.clone())),
        local_auth: vpnd::ike::LocalAuth::Psk(Zeroizing::new(a.psk.as_bytes().to_vec())),
        remote_auth: vpnd::ike::RemoteAuth::Psk(Zeroizing::new(a.psk.as_bytes().to_vec())),
        ike_proposals: vec![Proposal::parse(&a.ike, ProposalKind::Ike).map_err(anyhow::Error::msg)?],
        ike_lifetime: Duration::from_secs(86400),
        dpd: None,
        retransmit: Retransmit {
            timeout: Duration::from_secs(2),
            base: 1.8,
            tries: 4,
        },
        children: vec![ChildPolicy {
            name: "lan".into(),
            local_ts: vec![ts(a.local_ts)],
            remote_ts: vec![ts(a.remote_ts)],
            mode: Mode::Tunnel,
            esp: vec![Proposal::parse(&a.esp, ProposalKind::Esp).map_err(anyhow::Error::msg)?],
            pfs: None,
            lifetime: Duration::from_secs(3600),
            lifetime_bytes: None,
            replay_window: 64,
        }],
        // Every SA comes from the same identity: INITIAL_CONTACT would make the responder
        // drop the earlier ones.
        initial_contact: false,
        nat: Default::default(),
        frag: Default::default(),
        remote_access: Default::default(),
    };
    let mut endpoint = Endpoint::new(vec![policy], Box::new(SystemRng::new()));
    let (tx, mut rx) = mpsc::channel::<(SocketAddr, SocketAddr, Vec<u8>)>(4096);
    let mut sockets: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    for i in 0..a.ports {
        let s = Arc::new(
            UdpSocket::bind((a.local, 20000 + i))
                .await
                .with_context(|| format!("bind {}:{}", a.local, 20000 + i))?,
        );
        let local = s.local_addr()?;
        sockets.insert(local, s.clone());
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, remote)) = s.recv_from(&mut buf).await {
                if tx.send((local, remote, buf[..n].to_vec())).await.is_err() {
                    return;
                }
            }
        });
    }
    let locals: Vec<SocketAddr> = sockets.keys().copied().collect();
    let start = Instant::now();
    let (mut started, mut up, mut failed) = (0usize, 0usize, 0usize);
    let mut first_failure = None;
    let mut last_up = Duration::ZERO;
    let launch = |endpoint: &mut Endpoint, started: &mut usize| {
        let local = locals[*started % locals.len()];
        *started += 1;
        endpoint.initiate(Instant::now(), "load", local).map(|_| ())
    };
    while started < a.concurrency.min(a.count) {
        launch(&mut endpoint, &mut started)?;
    }
    let deadline = tokio::time::Instant::now() + a.timeout;
    while up + failed < a.count {
        while let Some(o) = endpoint.poll_output() {
            match o {
                Output::Transmit(t) => {
                    if let Some(s) = sockets.get(&t.local) {
                        let _ = s.send_to(&t.data, t.remote).await;
                    }
                }
                Output::IkeUp { .. } => {
                    up += 1;
                    last_up = start.elapsed();
                    if started < a.count {
                        launch(&mut endpoint, &mut started)?;
                    }
                }
                Output::IkeDown {
                    was_up: false,
                    reason,
                    ..
                } => {
                    failed += 1;
                    first_failure.get_or_insert(format!("{reason:?}"));
                    if started < a.count {
                        launch(&mut endpoint, &mut started)?;
                    }
                }
                _ => {}
            }
        }
        if up + failed >= a.count {
            break; // don't wait in select! for a datagram that will never come
        }
        let next = endpoint.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            Some((local, remote, data)) = rx.recv() => endpoint.handle_datagram(Instant::now(), local, remote, &data),
            _ = async { tokio::time::sleep_until(next.unwrap_or(deadline)).await }, if next.is_some() => endpoint.handle_timeout(Instant::now()),
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    // The rate counts up to the last IKE SA established, not to the loop's end.
    let took = if up > 0 { last_up } else { start.elapsed() };
    let rate = up as f64 / took.as_secs_f64();
    println!("ike-load: {up} IKE SAs (one child each) established, {failed} failed, of {} in {:.2} s: {rate:.1} IKE SAs/s ({} in flight, {} source ports)", a.count, took.as_secs_f64(), a.concurrency, a.ports);
    println!(
        "ike-load-json: {}",
        serde_json::json!({"established": up, "failed": failed, "count": a.count, "seconds": took.as_secs_f64(), "rate": rate})
    );
    if let Some(f) = first_failure {
        println!("ike-load: first failure: {f}");
    }
    if up == 0 {
        bail!("no IKE SA established");
    }
    Ok(())
}
