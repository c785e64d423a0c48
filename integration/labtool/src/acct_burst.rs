//! `labtool acct-burst`: vpnd's accounting task (the daemon's own code: outbox journal,
//! RADIUS client) fed N session-up events at once, as if N sessions had come up together,
//! against a real RADIUS server. Prints how many Starts per second it got acknowledged, and
//! the outbox's memory and journal bytes per queued record (measured with the server
//! unreachable, so that every record stays queued). Benchmark only: the sessions are
//! generated, no IKE runs.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use vpnd::unix_now;

use anyhow::{bail, Context, Result};
use vpnd::accounting::Accounting;
use vpnd::config::Config;
use vpnd::session::model::{SessionKey, SessionView, Status, Totals};

fn config(dir: &std::path::Path, server: SocketAddr, secret: &str, limit: usize) -> Result<Config> {
    let yaml = format!(
        "local:\n  addresses: [192.0.2.1]\n\
         radius:\n  servers:\n    - {{ name: bench, address: {}, acct_port: {}, key: {secret} }}\n  timeout: 2s\n  retransmit: 3\n  vsa_send_accounting: true\n\
         accounting:\n  journal: {}/accounting.journal\n  outbox_limit: {limit}\n  lists:\n    bench: {{ mode: start-stop, groups: [radius] }}\n\
         peers:\n  - name: burst\n    address: any\n    psk: bench-secret-0123456789\n    start: respond\n    accounting: bench\n\
         \x20   children:\n      - name: lan\n        local_ts: [198.51.100.0/25]\n        remote_ts: [0.0.0.0/0]\n",
        server.ip(),
        server.port(),
        dir.display()
    );
    Config::from_str(&yaml, dir.join("bench.yaml")).map_err(|e| anyhow::anyhow!("{e}"))
}

fn view(i: usize, now: u64) -> SessionView {
    let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, (i % 254 + 1) as u8));
    SessionView {
        key: SessionKey {
            peer: SocketAddr::new(ip, 1024 + (i / 254) as u16),
            fvrf: None,
            ivrf: None,
        },
        peer_name: "burst".into(),
        interface: None,
        status: Status::UpActive,
        description: None,
        phase1_id: Some(format!("client{i}.lab.example")),
        user: None,
        local: "192.0.2.1".parse().unwrap(),
        ike_sas: vec![],
        flows: vec![],
        totals: Totals::default(),
        up_since: Some(now),
        assigned_ip: None,
        assigned_ip6: None,
        session_timeout_s: None,
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn drain(a: &Accounting, n: usize, deadline: Duration) -> Result<Duration> {
    let t0 = Instant::now();
    loop {
        let v = a.show().await.context("accounting task gone")?;
        if v.outbox.delivered as usize >= n && v.queued == 0 {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > deadline {
            bail!(
                "only {} of {n} records delivered in {deadline:?}",
                v.outbox.delivered
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn run(sessions: usize, server: SocketAddr, secret: String, dir: PathBuf) -> Result<()> {
    // 1) Memory per queued record: a server that does not exist (nothing listens on the
    //    discard port of the loopback), so every record stays queued.
    let mem_dir = dir.join("mem");
    let _ = std::fs::remove_dir_all(&mem_dir);
    std::fs::create_dir_all(&mem_dir)?;
    let cfg = config(&mem_dir, "127.0.0.1:9".parse()?, "unused", sessions + 16)?;
    let now = unix_now();
    let views: Vec<SessionView> = (0..sessions).map(|i| view(i, now)).collect();
    let a = Accounting::start(&cfg, &[])?.context("accounting not started")?;
    // Accounting-On is queued at start: wait for it, then measure from there.
    for _ in 0..500 {
        if a.show().await.map_or(0, |v| v.queued) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = rss_kib();
    let heap_before = crate::alloc_count::live();
    for v in &views {
        a.up(v);
    }
    let mut queued = 0;
    for _ in 0..500 {
        queued = a.show().await.map_or(0, |v| v.queued);
        if queued >= sessions {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the unanswered first tries settle, so that in-flight copies are not counted.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib();
    let heap = crate::alloc_count::live().saturating_sub(heap_before);
    let journal_bytes = std::fs::metadata(mem_dir.join("accounting.journal"))?.len();
    let per = |x: f64| x / sessions.max(1) as f64;
    println!(
        "acct-burst: {sessions} sessions up, {queued} records queued: heap +{} KiB = {:.0} B per session \
         (its queued Start in the outbox and its journal line, and its accounting state with the \
         prepared crash Stop); RSS +{} KiB; outbox journal {:.0} B/record on disk",
        heap / 1024,
        per(heap as f64),
        after.saturating_sub(before),
        per(journal_bytes as f64)
    );
    // Stop that task (its records stay in its own journal) before the timed run.
    a.shutdown(Duration::from_millis(100)).await;

    // 2) Starts per second against the real server.
    let run_dir = dir.join("run");
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir)?;
    let cfg = config(&run_dir, server, &secret, sessions + 16)?;
    let a = Accounting::start(&cfg, &[])?.context("accounting not started")?;
    // Accounting-On first, so that the timing covers the Starts alone.
    drain(&a, 1, Duration::from_secs(30)).await?;
    let t0 = Instant::now();
    for v in &views {
        a.up(v);
    }
    drain(&a, sessions + 1, Duration::from_secs(600)).await?;
    let took = t0.elapsed();
    let rate = sessions as f64 / took.as_secs_f64();
    println!(
        "acct-burst: {sessions} Starts acknowledged by {server} in {:.2} s: {rate:.0} Starts/s",
        took.as_secs_f64()
    );
    println!(
        "acct-burst-json: {}",
        serde_json::json!({"sessions": sessions, "seconds": took.as_secs_f64(), "rate": rate})
    );
    Ok(())
}
