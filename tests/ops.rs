//! The real `vpnd` binary run as an operator runs it, each test in a network namespace of
//! its own (vpnd's start-up takes over vpnd-owned XFRM state; nothing of this host's is
//! touched). Needs root, like tests/fail_closed.rs.
//!
//! - metrics: two vpnds negotiate over loopback (this kernel has no ESP, so their child SA
//!   installs fail and each keeps an IKE SA without one: UP-IDLE); both endpoints, TCP and
//!   Unix socket, are scraped and the values read back.
//! - systemd: a fake NOTIFY_SOCKET (a datagram socket this test binds) sees READY=1,
//!   STATUS= and WATCHDOG=1; when the daemon loop is stalled (SIGUSR2, debug builds only)
//!   the pings stop, and they come back when it runs again.

mod common;
use common::sh;
use std::io::{Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use vpnd::metrics::text::{parse, value, Sample};
use vpnd_xfrm::testing::in_netns;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vpnd-ops-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// SIGTERM (then SIGKILL) when the test ends, however it ends.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(conf: &Path, env: &[(&str, &str)]) -> Daemon {
        let log = conf.with_extension("log");
        let f = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_vpnd"))
            .arg("-c")
            .arg(conf)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .envs(env.iter().copied())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        Daemon { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.signal(libc::SIGTERM);
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of `GET /metrics` after checking the status line and content type.
fn http_get(mut s: impl Read + Write) -> String {
    s.write_all(
        b"GET /metrics HTTP/1.1\r\nHost: vpnd\r\nAccept: application/openmetrics-text\r\n\r\n",
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains(vpnd::metrics::CONTENT_TYPE), "{head}");
    body.to_string()
}

fn scrape_tcp(addr: &str) -> Option<Vec<Sample>> {
    let s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    Some(parse(&http_get(s)).unwrap())
}

fn scrape_unix(path: &Path) -> Option<Vec<Sample>> {
    let s = UnixStream::connect(path).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    Some(parse(&http_get(s)).unwrap())
}

/// Scrapes until `ok` holds (the loop publishes at most once a second), or panics with the
/// last scrape and the log.
fn scrape_until(
    d: &Daemon,
    scrape: impl Fn() -> Option<Vec<Sample>>,
    ok: impl Fn(&[Sample]) -> bool,
) -> Vec<Sample> {
    let until = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    while Instant::now() < until {
        if let Some(s) = scrape() {
            if ok(&s) {
                return s;
            }
            last = Some(s);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "metrics never showed it; last scrape {last:#?}\nlog:\n{}",
        d.log()
    );
}

fn config(dir: &Path, me: &str, peer: &str, port: u16, start: &str, metrics: &str) -> PathBuf {
    let path = dir.join(format!("{me}.yaml"));
    std::fs::write(
        &path,
        format!(
            r#"
local:
  addresses: [{me}]
  port: {port}
control:
  socket: {dir}/{me}.sock
metrics:
  listen: {metrics}
syslog:
  local: false
peers:
  - name: other
    address: {peer}
    port: {port}
    local_id: {me}
    remote_id: {peer}
    psk: "ops-test-secret-0123456789"
    start: {start}
    unprotected: pass
    children:
      - name: lan
        local_ts: [{me}/32]
        remote_ts: [{peer}/32]
"#,
            dir = dir.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn metrics_are_served_over_tcp_and_a_unix_socket() {
    in_netns(|| async {
        sh("ip link set lo up && ip addr add 192.0.2.1/24 dev lo && ip addr add 192.0.2.2/24 dev lo");
        let dir = temp_dir("metrics");
        let port = 6500 + (std::process::id() % 1000) as u16;
        let sock = dir.join("metrics.sock");
        let responder = Daemon::start(
            &config(
                &dir,
                "192.0.2.2",
                "192.0.2.1",
                port,
                "respond",
                &sock.display().to_string(),
            ),
            &[],
        );
        let initiator = Daemon::start(
            &config(
                &dir,
                "192.0.2.1",
                "192.0.2.2",
                port,
                "initiate",
                "127.0.0.1:9469",
            ),
            &[],
        );
        let established =
            |s: &[Sample]| value(s, "vpnd_ike_sas", &[("state", "established")]) == Some(1.0);
        let i = scrape_until(&initiator, || scrape_tcp("127.0.0.1:9469"), established);
        let r = scrape_until(&responder, || scrape_unix(&sock), established);
        for (who, s) in [("initiator", &i), ("responder", &r)] {
            let v = |n, l: &[(&str, &str)]| value(s, n, l);
            assert_eq!(
                v("vpnd_ike_handshakes_total", &[("result", "established")]),
                Some(1.0),
                "{who}"
            );
            assert_eq!(
                v("vpnd_ike_handshakes_total", &[("result", "failed")]),
                Some(0.0),
                "{who}"
            );
            assert_eq!(
                v("vpnd_ike_sas", &[("state", "half_open")]),
                Some(0.0),
                "{who}"
            );
            // No ESP in this kernel: the child SA install failed, the IKE SA stayed.
            assert_eq!(v("vpnd_child_sas", &[]), Some(0.0), "{who}");
            assert_eq!(
                v("vpnd_sessions", &[("status", "UP-IDLE")]),
                Some(1.0),
                "{who}"
            );
            assert_eq!(
                v("vpnd_sessions", &[("status", "UP-ACTIVE")]),
                Some(0.0),
                "{who}"
            );
            assert_eq!(v("vpnd_dpd_failures_total", &[]), Some(0.0), "{who}");
            // The session's counters, labelled with who it is with (no SA, no traffic).
            let peer = if who == "initiator" {
                "192.0.2.2"
            } else {
                "192.0.2.1"
            };
            let remote = format!("{peer}:{port}");
            for dir in ["in", "out"] {
                let l = [
                    ("direction", dir),
                    ("peer", "other"),
                    ("remote", remote.as_str()),
                    ("username", peer),
                ];
                assert_eq!(v("vpnd_session_bytes_total", &l), Some(0.0), "{who} {dir}");
                assert_eq!(
                    v("vpnd_session_packets_total", &l),
                    Some(0.0),
                    "{who} {dir}"
                );
            }
        }
        // The counter dump ran at start (one per 10 s after): its histogram has a count.
        assert!(value(&i, "vpnd_kernel_dump_duration_seconds_count", &[]).unwrap() >= 1.0);
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// Datagrams received on the fake NOTIFY_SOCKET within `within`.
fn notifications(s: &UnixDatagram, within: Duration) -> Vec<String> {
    let until = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match s.recv(&mut buf) {
            Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => break,
        }
    }
    out
}

#[test]
fn the_watchdog_is_pinged_from_the_daemon_loop_and_stops_when_it_stalls() {
    if !cfg!(debug_assertions) {
        eprintln!("skipped: the stall hook exists in debug builds only");
        return;
    }
    in_netns(|| async {
        sh("ip link set lo up && ip addr add 192.0.2.1/24 dev lo");
        let dir = temp_dir("watchdog");
        let notify = dir.join("notify.sock");
        let fake = UnixDatagram::bind(&notify).unwrap();
        let conf = dir.join("vpnd.yaml");
        std::fs::write(
            &conf,
            format!(
                "local:\n  addresses: [192.0.2.1]\n  port: {}\ncontrol:\n  socket: {}/vpnd.sock\n\
                 syslog:\n  local: false\npeers: []\n",
                7500 + (std::process::id() % 1000) as u16,
                dir.display()
            ),
        )
        .unwrap();
        // WatchdogSec=0.4 s: a ping every 200 ms.
        let d = Daemon::start(
            &conf,
            &[
                ("NOTIFY_SOCKET", notify.to_str().unwrap()),
                ("WATCHDOG_USEC", "400000"),
            ],
        );
        // Up to READY=1 (a loaded machine may take a while to start vpnd), then 2 s more.
        let mut first = Vec::new();
        let until = Instant::now() + Duration::from_secs(30);
        while !first.iter().any(|m: &String| m.contains("READY=1")) && Instant::now() < until {
            first.extend(notifications(&fake, Duration::from_millis(200)));
        }
        let log = d.log();
        assert!(
            first.iter().any(|m| m.contains("READY=1")),
            "{first:?}\n{log}"
        );
        let running = notifications(&fake, Duration::from_secs(2));
        first.extend(running.iter().cloned());
        let status = first
            .iter()
            .find_map(|m| m.lines().find_map(|l| l.strip_prefix("STATUS=")))
            .unwrap_or_else(|| panic!("no STATUS= in {first:?}\n{log}"));
        assert_eq!(status, "0 sessions up, 0 down; 0 IKE SAs, 0 negotiating");
        let pings = running.iter().filter(|m| m.contains("WATCHDOG=1")).count();
        assert!(
            pings >= 5,
            "{pings} pings in 2 s at one per 200 ms: {running:?}"
        );

        // The loop stalls: within a ping interval the pings stop.
        d.signal(libc::SIGUSR2);
        let _in_flight = notifications(&fake, Duration::from_millis(500));
        let stalled = notifications(&fake, Duration::from_secs(2));
        assert!(
            !stalled.iter().any(|m| m.contains("WATCHDOG=1")),
            "pings went on while the loop was stalled: {stalled:?}\n{}",
            d.log()
        );
        assert!(d.log().contains("stalling the daemon loop"), "{}", d.log());
        // It runs again (the hook holds it 5 s): the pings come back.
        let after = notifications(&fake, Duration::from_secs(8));
        assert!(
            after.iter().any(|m| m.contains("WATCHDOG=1")),
            "no ping after the stall: {after:?}\n{}",
            d.log()
        );
        drop(d);
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// `vpnctl --json ARGS` against `sock`: exit status and the JSON answer.
fn vpnctl(sock: &Path, args: &[&str]) -> (i32, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_vpnctl"))
        .arg("--socket")
        .arg(sock)
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "vpnctl {args:?}: {e}: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

fn peers_shown(sock: &Path) -> Vec<(String, Option<String>)> {
    let (code, v) = vpnctl(sock, &["show", "crypto", "isakmp", "peer"]);
    assert_eq!(code, 0, "{v}");
    v["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["description"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// The selectors (src dst) of the namespace's outbound XFRM policies, sorted.
fn out_policies() -> Vec<String> {
    let text = sh("ip xfrm policy show dir out");
    let mut v: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("src "))
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .collect();
    v.sort();
    v
}

fn reload_config(dir: &Path, port: u16, peers: &[(&str, &str, &str, &str)]) -> String {
    let mut s = format!(
        "local:\n  addresses: [192.0.2.1]\n  port: {port}\ncontrol:\n  socket: {}/vpnd.sock\n\
         syslog:\n  local: false\npeers:\n",
        dir.display()
    );
    for (name, address, description, remote_ts) in peers {
        s.push_str(&format!(
            "  - name: {name}\n    address: {address}\n    description: {description}\n    \
             psk: reload-test-secret-0123456789\n    children:\n      - name: lan\n        \
             local_ts: [198.51.100.0/25]\n        remote_ts: [{remote_ts}]\n"
        ));
    }
    s
}

#[test]
fn a_reload_applies_the_difference_and_refuses_a_broken_file_whole() {
    in_netns(|| async {
        sh("ip link set lo up && ip addr add 192.0.2.1/24 dev lo");
        let dir = temp_dir("reload");
        let sock = dir.join("vpnd.sock");
        let notify = dir.join("notify.sock");
        let fake = UnixDatagram::bind(&notify).unwrap();
        let conf = dir.join("vpnd.yaml");
        let port = 6500 + (std::process::id() % 1000) as u16;
        let first = [
            ("keep", "192.0.2.2", "first", "203.0.113.0/26"),
            ("gone", "192.0.2.3", "second", "203.0.113.64/26"),
        ];
        std::fs::write(&conf, reload_config(&dir, port, &first)).unwrap();
        let d = Daemon::start(&conf, &[("NOTIFY_SOCKET", notify.to_str().unwrap())]);
        let until = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while !seen.iter().any(|m: &String| m.contains("READY=1")) && Instant::now() < until {
            seen.extend(notifications(&fake, Duration::from_millis(200)));
        }
        assert!(
            seen.iter().any(|m| m.contains("READY=1")),
            "{seen:?}\n{}",
            d.log()
        );
        assert_eq!(
            out_policies(),
            [
                "198.51.100.0/25 dst 203.0.113.0/26",
                "198.51.100.0/25 dst 203.0.113.64/26"
            ]
        );

        // SIGHUP: one peer added, one removed, one's description changed.
        let second = [
            ("keep", "192.0.2.2", "changed", "203.0.113.0/26"),
            ("new", "192.0.2.4", "third", "203.0.113.128/26"),
        ];
        std::fs::write(&conf, reload_config(&dir, port, &second)).unwrap();
        let _ = notifications(&fake, Duration::from_millis(100));
        d.signal(libc::SIGHUP);
        let mut around = Vec::new();
        let until = Instant::now() + Duration::from_secs(20);
        while !around.iter().any(|m: &String| m.contains("READY=1")) && Instant::now() < until {
            around.extend(notifications(&fake, Duration::from_millis(200)));
        }
        let reloading = around
            .iter()
            .position(|m| m.contains("RELOADING=1"))
            .unwrap_or_else(|| panic!("no RELOADING=1: {around:?}\n{}", d.log()));
        assert!(around[reloading].contains("MONOTONIC_USEC="), "{around:?}");
        let ready = around.iter().position(|m| m.contains("READY=1")).unwrap();
        assert!(reloading < ready, "{around:?}");
        assert_eq!(
            peers_shown(&sock),
            [
                ("keep".to_string(), Some("changed".to_string())),
                ("new".to_string(), Some("third".to_string()))
            ],
            "{}",
            d.log()
        );
        // The new flow stands, the removed one's policies are gone, the kept one's stayed.
        assert_eq!(
            out_policies(),
            [
                "198.51.100.0/25 dst 203.0.113.0/26",
                "198.51.100.0/25 dst 203.0.113.128/26"
            ]
        );

        // The same file again (the second time): nothing changes.
        let (code, v) = vpnctl(&sock, &["reload"]);
        assert_eq!(code, 0, "{v}");
        assert_eq!(v["reload"]["applied"], true, "{v}");
        for k in ["added", "removed", "renegotiated", "updated"] {
            assert_eq!(v["reload"][k], serde_json::json!([]), "{k}: {v}");
        }

        // New selectors for a peer: its new standing policy is in, the old one gone.
        let third = [
            ("keep", "192.0.2.2", "changed", "203.0.113.0/25"),
            ("new", "192.0.2.4", "third", "203.0.113.128/26"),
        ];
        std::fs::write(&conf, reload_config(&dir, port, &third)).unwrap();
        let (code, v) = vpnctl(&sock, &["reload"]);
        assert_eq!(code, 0, "{v}");
        assert_eq!(
            v["reload"]["renegotiated"],
            serde_json::json!([{"name": "keep", "fields": ["children.remote_ts"]}]),
            "{v}"
        );
        assert_eq!(
            out_policies(),
            [
                "198.51.100.0/25 dst 203.0.113.0/25",
                "198.51.100.0/25 dst 203.0.113.128/26"
            ]
        );
        std::fs::write(&conf, reload_config(&dir, port, &second)).unwrap();
        let (code, v) = vpnctl(&sock, &["reload"]);
        assert_eq!(code, 0, "{v}");

        // A broken file: refused whole, with its location; everything stays.
        let mut broken = reload_config(
            &dir,
            port,
            &[("only", "192.0.2.5", "x", "203.0.113.192/26")],
        );
        broken.push_str("    ike:\n      dpd: soon\n");
        std::fs::write(&conf, &broken).unwrap();
        let (code, v) = vpnctl(&sock, &["reload"]);
        assert_eq!(code, 1, "{v}");
        assert_eq!(v["ok"], false, "{v}");
        assert_eq!(v["reload"]["applied"], false, "{v}");
        let p = &v["reload"]["problems"][0];
        let line = broken
            .lines()
            .position(|l| l.contains("dpd: soon"))
            .unwrap()
            + 1;
        assert_eq!(p["line"], line as u64, "{v}");
        assert!(p["column"].as_u64().unwrap() > 0, "{v}");
        assert!(
            v["error"].as_str().unwrap().contains(&format!(":{line}:")),
            "{v}"
        );
        assert_eq!(peers_shown(&sock).len(), 2);
        assert_eq!(out_policies().len(), 2);
        assert!(d.log().contains("reload refused"), "{}", d.log());
        drop(d);
        let _ = std::fs::remove_dir_all(&dir);
    });
}
