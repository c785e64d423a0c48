//! labtool: drives `vpnd-xfrm` inside the lab VM (see integration/README.md).
//!
//! Keys are derived from the SPI so both ends of a lab tunnel, each running labtool in its
//! own namespace with mirrored arguments, install matching SAs without exchanging anything.
//! This is a test instrument, never a way to key real tunnels.

use std::net::IpAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use futures::stream::{self, StreamExt};
use ipnet::IpNet;
use vpnd_xfrm::*;

mod acct_burst;
mod alloc_count;
mod fake_sessions;
mod ike_flood;
mod ike_load;

#[derive(Parser)]
#[command(name = "labtool", about = "Drive vpnd-xfrm in the lab")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Alg {
    Gcm128,
    Gcm256,
    Cbc128Sha256,
    Cbc256Sha256,
    Cbc256Sha384,
    Cbc256Sha512,
}

#[derive(clap::Args, Clone)]
struct PairArgs {
    /// This gateway's transport address.
    #[arg(long)]
    local: IpAddr,
    /// The other gateway's transport address.
    #[arg(long)]
    remote: IpAddr,
    /// The subnet behind this gateway.
    #[arg(long)]
    local_net: IpNet,
    /// The subnet behind the other gateway.
    #[arg(long)]
    remote_net: IpNet,
    /// SPI of the SA from here to there.
    #[arg(long, value_parser = parse_u32)]
    spi_out: u32,
    /// SPI of the SA from there to here.
    #[arg(long, value_parser = parse_u32)]
    spi_in: u32,
    #[arg(long, value_enum, default_value = "gcm256")]
    alg: Alg,
    /// Extended sequence numbers with this replay window.
    #[arg(long)]
    esn: bool,
    #[arg(long, default_value_t = 32)]
    replay_window: u32,
    /// ESP in UDP: LOCALPORT:REMOTEPORT (RFC 3948), e.g. 4500:4500.
    #[arg(long)]
    encap: Option<String>,
    /// Index within vpnd's reqid band.
    #[arg(long, default_value_t = 1)]
    reqid: u32,
    #[arg(long, value_enum, default_value = "tunnel")]
    mode: ModeArg,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Tunnel,
    Transport,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install an outbound and an inbound SA with their out/in/fwd policies.
    SaPair(PairArgs),
    /// One counters dump through vpnd-xfrm, printed as JSON.
    Counters {
        /// Every SA, not only vpnd's.
        #[arg(long)]
        all: bool,
    },
    /// Policies as JSON.
    Policies {
        #[arg(long)]
        all: bool,
    },
    /// Remove what vpnd owns (policies first), and only that.
    Flush,
    /// Install N SA pairs, then time one counters dump through vpnd-xfrm, `ip -s xfrm state`,
    /// and N*2 single GETSA requests (the per-SA way), in the same namespace.
    Bench {
        #[arg(long, default_value_t = 10_000)]
        pairs: u32,
        #[arg(long)]
        local: IpAddr,
        #[arg(long)]
        remote: IpAddr,
        /// Repetitions of each timed read (the median is reported).
        #[arg(long, default_value_t = 5)]
        reps: usize,
    },
    /// Feed vpnd's accounting task N session-up events at once against a RADIUS server:
    /// Starts per second, and the outbox's memory per queued record.
    AcctBurst {
        #[arg(long, default_value_t = 10_000)]
        sessions: usize,
        #[arg(long)]
        server: std::net::SocketAddr,
        #[arg(long, default_value = "testing123")]
        secret: String,
        /// Where the benchmark's journals go.
        #[arg(long)]
        dir: std::path::PathBuf,
    },
    /// Serve vpnd's control socket with N synthetic sessions (benchmark of `vpnctl show`).
    FakeSessions {
        #[arg(long, default_value_t = 10_000)]
        sessions: usize,
        #[arg(long)]
        socket: std::path::PathBuf,
    },
    /// Send COUNT IKE_SA_INITs that never go further (no COOKIE echoed, no IKE_AUTH) to
    /// TARGET from every LOCAL address and PORTS source ports each, RATE a second: a
    /// half-open flood for the responder's DoS bounds (RFC 7296 2.6).
    IkeFlood {
        /// Source addresses (repeat the option), each already on an interface.
        #[arg(long = "local", required = true)]
        locals: Vec<IpAddr>,
        #[arg(long)]
        target: IpAddr,
        #[arg(long, default_value_t = 20_000)]
        count: u64,
        /// UDP source ports per address (30000 upwards).
        #[arg(long, default_value_t = 16)]
        ports: u16,
        #[arg(long, default_value_t = 2_000)]
        rate: u64,
        #[arg(long, default_value = "aes256gcm16-prfsha256-x25519")]
        ike: String,
    },
    /// Open COUNT IKE SAs (one child each) to TARGET as fast as it answers, with vpnd's own
    /// engine as the initiator, and print IKE SAs per second.
    IkeLoad {
        #[arg(long)]
        local: IpAddr,
        #[arg(long)]
        target: IpAddr,
        #[arg(long, default_value_t = 1000)]
        count: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// UDP source ports to spread the IKE SAs over (20000 upwards).
        #[arg(long, default_value_t = 32)]
        ports: u16,
        #[arg(long, default_value = "lab-load-secret")]
        psk: String,
        #[arg(long, default_value = "aes256gcm16-prfsha256-x25519")]
        ike: String,
        #[arg(long, default_value = "aes256gcm16")]
        esp: String,
        #[arg(long, default_value = "load.lab.example")]
        local_id: String,
        #[arg(long, default_value = "gw1.lab.example")]
        remote_id: String,
        #[arg(long)]
        local_ts: IpNet,
        #[arg(long)]
        remote_ts: IpNet,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
}

fn parse_u32(s: &str) -> Result<u32, String> {
    let r = match s.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s}: {e}"))
}

/// Deterministic lab key material for an SPI (both ends compute the same bytes).
fn lab_key(spi: u32, salt: u8, len: usize) -> Key {
    Key::new(
        (0..len)
            .map(|i| (spi.rotate_left(i as u32 * 7) as u8) ^ (i as u8).wrapping_mul(37) ^ salt)
            .collect(),
    )
}

fn algorithms(alg: Alg, spi: u32) -> Algorithms {
    let cbc = |bits: usize, integ: Integ| Algorithms::AesCbc {
        key: lab_key(spi, 1, bits / 8),
        integ,
        integ_key: lab_key(spi, 2, integ.key_len()),
    };
    match alg {
        Alg::Gcm128 => Algorithms::AesGcm16 {
            key: lab_key(spi, 0, 20),
        },
        Alg::Gcm256 => Algorithms::AesGcm16 {
            key: lab_key(spi, 0, 36),
        },
        Alg::Cbc128Sha256 => cbc(128, Integ::HmacSha256_128),
        Alg::Cbc256Sha256 => cbc(256, Integ::HmacSha256_128),
        Alg::Cbc256Sha384 => cbc(256, Integ::HmacSha384_192),
        Alg::Cbc256Sha512 => cbc(256, Integ::HmacSha512_256),
    }
}

fn parse_encap(s: &str) -> Result<UdpEncap> {
    let (a, b) = s
        .split_once(':')
        .context("--encap wants LOCALPORT:REMOTEPORT")?;
    Ok(UdpEncap {
        sport: a.parse()?,
        dport: b.parse()?,
    })
}

async fn sa_pair(x: &Xfrm, a: &PairArgs) -> Result<()> {
    let reqid = x.owner().reqid(a.reqid);
    let mode = match a.mode {
        ModeArg::Tunnel => Mode::Tunnel,
        ModeArg::Transport => Mode::Transport,
    };
    let encap = a.encap.as_deref().map(parse_encap).transpose()?;
    let sa = |id: SaId, encap: Option<UdpEncap>| SaSpec {
        id,
        reqid,
        mode,
        selector: None,
        algorithms: algorithms(a.alg, id.spi),
        esn: a.esn,
        replay_window: a.replay_window,
        encap,
        if_id: None,
        lifetime: Lifetime::default(),
    };
    let swapped = encap.map(|e| UdpEncap {
        sport: e.dport,
        dport: e.sport,
    });
    x.add_sa(&sa(SaId::esp(a.local, a.remote, a.spi_out), encap))
        .await?;
    x.add_sa(&sa(SaId::esp(a.remote, a.local, a.spi_in), swapped))
        .await?;
    let out_sel = Selector::new(a.local_net, a.remote_net);
    let in_sel = Selector::new(a.remote_net, a.local_net);
    let tmpl = |src, dst| {
        vec![Template {
            src,
            dst,
            mode,
            reqid,
        }]
    };
    let pol = |selector, dir, templates| PolicySpec {
        selector,
        dir,
        action: Action::Allow,
        priority: 1000,
        templates,
        mark: None,
        if_id: None,
    };
    x.add_policy(&pol(out_sel, Dir::Out, tmpl(a.local, a.remote)))
        .await?;
    x.add_policy(&pol(in_sel, Dir::In, tmpl(a.remote, a.local)))
        .await?;
    x.add_policy(&pol(in_sel, Dir::Fwd, tmpl(a.remote, a.local)))
        .await?;
    println!(
        "installed {} pair out 0x{:08x} in 0x{:08x} reqid {:#x}",
        algorithms(a.alg, 0).name(),
        a.spi_out,
        a.spi_in,
        reqid
    );
    Ok(())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn bench(x: &Xfrm, pairs: u32, local: IpAddr, remote: IpAddr, reps: usize) -> Result<()> {
    let (IpAddr::V4(_), IpAddr::V4(_)) = (local, remote) else {
        bail!("bench uses IPv4 endpoints")
    };
    let reqid = x.owner().reqid(9);
    let spec = |i: u32, out: bool| {
        let spi = if out {
            0x1000_0000 + i
        } else {
            0x2000_0000 + i
        };
        let id = if out {
            SaId::esp(local, remote, spi)
        } else {
            SaId::esp(remote, local, spi)
        };
        SaSpec {
            id,
            reqid,
            mode: Mode::Tunnel,
            selector: None,
            algorithms: algorithms(Alg::Gcm256, spi),
            esn: true,
            replay_window: 128,
            encap: None,
            if_id: None,
            lifetime: Lifetime::default(),
        }
    };
    let t = Instant::now();
    // Pipelined installs: 64 requests in flight on the one netlink socket.
    let results: Vec<_> = stream::iter((0..pairs).flat_map(|i| [spec(i, true), spec(i, false)]))
        .map(|s| async move { x.add_sa(&s).await })
        .buffer_unordered(64)
        .collect()
        .await;
    for r in results {
        r?;
    }
    let install = t.elapsed();
    let n = pairs as usize * 2;
    eprintln!("bench: installed {n} SAs in {:.1} s", install.as_secs_f64());

    let mut ours = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        let got = x.dump_counters(DumpScope::Owned).await?;
        ours.push(t.elapsed());
        if got.len() != n {
            bail!("dump returned {} SAs, expected {n}", got.len());
        }
    }
    eprintln!("bench: vpnd-xfrm dumps done");
    let mut ip = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        // TZ set: otherwise glibc re-reads /etc/localtime for every timestamp it prints,
        // which on the lab VM's 9p root costs iproute2 ~80 s for 20,000 SAs.
        let st = std::process::Command::new("ip")
            .args(["-s", "xfrm", "state"])
            .env("TZ", "UTC")
            .stdout(Stdio::null())
            .status()?;
        ip.push(t.elapsed());
        if !st.success() {
            bail!("ip -s xfrm state failed: {st}");
        }
    }
    eprintln!("bench: iproute2 dumps done");
    // The per-SA way: one GETSA round trip after another, as strongSwan queries usage.
    let ids: Vec<SaId> = (0..pairs)
        .flat_map(|i| [spec(i, true).id, spec(i, false).id])
        .collect();
    let t = Instant::now();
    let got = x.get_sas_one_by_one(ids).await?;
    let per_sa = t.elapsed();
    if got.len() != n {
        bail!("per-SA reads returned {} SAs, expected {n}", got.len());
    }

    let (ours, ip) = (median(ours), median(ip));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "bench: {n} SAs ({pairs} pairs) installed in {:.0} ms ({:.0} SAs/s)",
        ms(install),
        n as f64 / install.as_secs_f64()
    );
    println!(
        "bench: vpnd-xfrm one dump      {:>9.1} ms (median of {reps})",
        ms(ours)
    );
    println!(
        "bench: ip -s xfrm state        {:>9.1} ms (median of {reps})",
        ms(ip)
    );
    println!("bench: {n} single GETSA        {:>9.1} ms", ms(per_sa));
    println!(
        "bench: ratio dump/iproute2 = {:.2}x (target <= 1.5)",
        ours.as_secs_f64() / ip.as_secs_f64()
    );
    println!(
        "bench: ratio per-SA/dump   = {:.1}x (target >= 10)",
        per_sa.as_secs_f64() / ours.as_secs_f64()
    );
    let json = serde_json::json!({
        "sas": n, "install_ms": ms(install), "dump_ms": ms(ours), "iproute2_ms": ms(ip), "per_sa_ms": ms(per_sa),
        "ratio_dump_vs_iproute2": ours.as_secs_f64() / ip.as_secs_f64(),
        "ratio_per_sa_vs_dump": per_sa.as_secs_f64() / ours.as_secs_f64(),
    });
    println!("bench-json: {json}");
    let report = x.flush_owned().await?;
    println!(
        "bench: flushed {} SAs, {} policies",
        report.sas, report.policies
    );
    Ok(())
}

/// Counts live heap bytes, for acct-burst's memory per queued record.
#[global_allocator]
static ALLOC: alloc_count::Counting = alloc_count::Counting;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::FakeSessions { sessions, socket } => {
            return fake_sessions::serve(sessions, socket).await
        }
        Cmd::AcctBurst {
            sessions,
            server,
            secret,
            dir,
        } => return acct_burst::run(sessions, server, secret, dir).await,
        _ => {}
    }
    let x = Xfrm::connect(Owner::default())?;
    match cli.cmd {
        Cmd::SaPair(a) => sa_pair(&x, &a).await?,
        Cmd::Counters { all } => {
            let scope = if all {
                DumpScope::All
            } else {
                DumpScope::Owned
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&x.dump_counters(scope).await?)?
            );
        }
        Cmd::Policies { all } => {
            let scope = if all {
                DumpScope::All
            } else {
                DumpScope::Owned
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&x.dump_policies(scope).await?)?
            );
        }
        Cmd::Flush => {
            let r = x.flush_owned().await?;
            println!("flushed {} policies, {} SAs", r.policies, r.sas);
        }
        Cmd::Bench {
            pairs,
            local,
            remote,
            reps,
        } => bench(&x, pairs, local, remote, reps).await?,
        Cmd::IkeLoad {
            local,
            target,
            count,
            concurrency,
            ports,
            psk,
            ike,
            esp,
            local_id,
            remote_id,
            local_ts,
            remote_ts,
            timeout,
        } => {
            let args = ike_load::LoadArgs {
                local,
                target,
                count,
                concurrency,
                ports,
                psk,
                ike,
                esp,
                local_id,
                remote_id,
                local_ts,
                remote_ts,
                timeout: Duration::from_secs(timeout),
            };
            ike_load::run(args).await?
        }
        Cmd::IkeFlood {
            locals,
            target,
            count,
            ports,
            rate,
            ike,
        } => {
            ike_flood::run(ike_flood::FloodArgs {
                locals,
                target,
                count,
                ports,
                rate,
                ike,
            })
            .await?
        }
        Cmd::FakeSessions { .. } | Cmd::AcctBurst { .. } => unreachable!("run above"),
    }
    Ok(())
}
