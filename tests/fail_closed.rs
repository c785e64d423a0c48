//! Fail closed, against this machine's kernel (XFRM netlink, no ESP: policies only), each
//! test in a network namespace of its own so the host's XFRM state is never touched.
//!
//! What a SIGKILLed vpnd leaves is simulated by installing its policies directly; then the
//! real `vpnd` binary is started (and made to fail at start), stopped and flushed, and the
//! kernel's policies are compared at each step. Needs root (unshare, CAP_NET_ADMIN).

mod common;
use common::sh;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use futures::StreamExt;
use vpnd::daemon::kernel::{Flow, Kernel};
use vpnd::ike::codec::TrafficSelector;
use vpnd::ike::Mode;
use vpnd_xfrm::testing::in_netns;
use vpnd_xfrm::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ts(net: &str) -> TrafficSelector {
    let n: ipnet::IpNet = net.parse().unwrap();
    TrafficSelector::new(0, 0, 65535, n.network(), n.broadcast()).unwrap()
}

/// The policy as a previous run installed it (reqid `n` of vpnd's band).
fn old_policy(src: &str, dst: &str, dir: Dir, tsrc: &str, tdst: &str, n: u32) -> PolicySpec {
    PolicySpec {
        selector: Selector::new(src.parse().unwrap(), dst.parse().unwrap()),
        dir,
        action: Action::Allow,
        priority: 190_000,
        templates: vec![Template {
            src: ip(tsrc),
            dst: ip(tdst),
            mode: vpnd_xfrm::Mode::Tunnel,
            reqid: Owner::default().reqid(n),
        }],
        mark: None,
        if_id: None,
    }
}

/// The three policies of the lab's flow 198.51.100.0/25 <-> 203.0.113.0/26 via 192.0.2.2.
fn lan_policies(n: u32) -> Vec<PolicySpec> {
    let (l, r) = ("198.51.100.0/25", "203.0.113.0/26");
    vec![
        old_policy(l, r, Dir::Out, "192.0.2.1", "192.0.2.2", n),
        old_policy(r, l, Dir::In, "192.0.2.2", "192.0.2.1", n),
        old_policy(r, l, Dir::Fwd, "192.0.2.2", "192.0.2.1", n),
    ]
}

/// Every policy in the namespace: key -> (reqids of its templates, kernel index).
async fn policies(x: &Xfrm) -> BTreeMap<String, (Vec<u32>, u32)> {
    x.dump_policies(DumpScope::All)
        .await
        .unwrap()
        .into_iter()
        .map(|p| {
            (
                p.key.to_string(),
                (p.templates.iter().map(|t| t.reqid).collect(), p.index),
            )
        })
        .collect()
}

#[test]
fn take_over_replaces_in_place_removes_the_stale_and_stop_keeps_the_standing() {
    in_netns(|| async {
        let owner = Owner::default();
        let x = Xfrm::connect(owner).unwrap();
        // A previous run: the configured flow (reqid 7), a flow no longer configured, and a
        // foreign daemon's policy (reqid 1, outside vpnd's band).
        for p in lan_policies(7) {
            x.add_policy(&p).await.unwrap();
        }
        let gone = old_policy(
            "198.51.100.128/25",
            "203.0.113.128/26",
            Dir::Out,
            "192.0.2.1",
            "192.0.2.9",
            8,
        );
        x.add_policy(&gone).await.unwrap();
        let mut foreign = old_policy(
            "10.1.0.0/16",
            "10.2.0.0/16",
            Dir::Out,
            "192.0.2.1",
            "192.0.2.7",
            0,
        );
        foreign.templates[0].reqid = 1;
        let other_daemon = Owner {
            reqid_base: 1,
            reqid_span: 16,
            priority_band: (1, 2),
        };
        Xfrm::connect(other_daemon)
            .unwrap()
            .add_policy(&foreign)
            .await
            .unwrap();

        let mut events = Events::subscribe().unwrap();
        let flows = [Flow {
            peer: "peer1".into(),
            child: "lan".into(),
            local: ip("192.0.2.1"),
            remote: ip("192.0.2.2"),
            mode: Mode::Tunnel,
            local_ts: vec![ts("198.51.100.0/25")],
            remote_ts: vec![ts("203.0.113.0/26")],
            if_id: None,
        }];
        let mut k = Kernel::new(x.clone(), &flows).unwrap();
        let report = k.take_over().await.unwrap();
        assert_eq!(report.standing, 3);
        assert_eq!(report.stale_policies, 1, "the unconfigured flow's policy");
        assert!(report.stale_sas.is_empty());

        let after = policies(&x).await;
        let want_reqid = owner.reqid(1);
        for p in lan_policies(7) {
            let (reqids, _) = after
                .get(&p.key().to_string())
                .unwrap_or_else(|| panic!("{} missing after take-over: {after:?}", p.key()));
            assert_eq!(
                reqids,
                &vec![want_reqid],
                "{} now carries this run's reqid",
                p.key()
            );
        }
        assert!(!after.contains_key(&gone.key().to_string()));
        assert!(
            after.contains_key(&foreign.key().to_string()),
            "foreign policy untouched"
        );
        assert_eq!(after.len(), 4);

        // In place: the only deletion the kernel announced is the stale flow's.
        let mut deleted = Vec::new();
        while let Ok(Some(e)) =
            tokio::time::timeout(Duration::from_millis(300), events.next()).await
        {
            if let Event::PolicyDeleted { selector, dir, .. } = e {
                deleted.push((selector, dir));
            }
        }
        assert_eq!(
            deleted,
            vec![(gone.selector, Some(Dir::Out))],
            "a configured flow's policy was deleted, not replaced: a cleartext gap"
        );

        // Stop keeps the standing policies (and the foreign one).
        let (standing, removed) = k.stop().await.unwrap();
        assert_eq!((standing, removed.policies, removed.sas), (3, 0, 0));
        assert_eq!(policies(&x).await.len(), 4);
    });
}

#[test]
fn unprotected_pass_has_no_standing_policies_and_takes_the_old_ones_away() {
    in_netns(|| async {
        let x = Xfrm::connect(Owner::default()).unwrap();
        for p in lan_policies(1) {
            x.add_policy(&p).await.unwrap();
        }
        let mut k = Kernel::new(x.clone(), &[]).unwrap();
        let report = k.take_over().await.unwrap();
        assert_eq!((report.standing, report.stale_policies), (0, 3));
        assert!(policies(&x).await.is_empty());
    });
}

struct Lab {
    dir: PathBuf,
    conf: PathBuf,
}

impl Lab {
    fn new(name: &str, port: u16) -> Lab {
        let dir =
            std::env::temp_dir().join(format!("vpnd-failclosed-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("vpnd.yaml");
        let nat_t_port = port + 10_000;
        std::fs::write(
            &conf,
            format!(
                r#"
local:
  addresses: [192.0.2.1]
  port: {port}
  nat_t_port: {nat_t_port}
control:
  socket: {dir}/vpnd.sock
peers:
  - name: peer1
    address: 192.0.2.2
    psk: "lab-secret-0123456789"
    start: respond
    children:
      - name: lan
        local_ts: [198.51.100.0/25]
        remote_ts: [203.0.113.0/26]
  - name: open
    address: 192.0.2.3
    psk: "lab-secret-0123456789"
    start: respond
    unprotected: pass
    children:
      - name: lan
        local_ts: [198.51.100.0/25]
        remote_ts: [203.0.113.64/26]
"#,
                dir = dir.display()
            ),
        )
        .unwrap();
        Lab { dir, conf }
    }

    fn vpnd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vpnd"));
        c.arg("-c").arg(&self.conf).args(args);
        c
    }

    fn start(&self) -> (Child, PathBuf) {
        let log = self.dir.join("vpnd.log");
        let f = std::fs::File::create(&log).unwrap();
        let child = self
            .vpnd(&[])
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        (child, log)
    }
}

fn wait_for(log: &Path, text: &str) {
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        if std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains(text)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "no {text:?} in the vpnd log within 20 s:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

#[test]
fn the_daemon_never_leaves_a_protected_flow_without_its_policy() {
    in_netns(|| async {
        sh("ip link set lo up && ip addr add 192.0.2.1/24 dev lo");
        let x = Xfrm::connect(Owner::default()).unwrap();
        let lab = Lab::new("daemon", 4500 + (std::process::id() % 1000) as u16);
        assert!(lab.vpnd(&["--check"]).status().unwrap().success());
        // What a SIGKILLed run left: its policies for both peers' flows.
        for p in lan_policies(1) {
            x.add_policy(&p).await.unwrap();
        }
        let before = policies(&x).await;

        // Start-up fails after the configuration was accepted (another daemon holds the
        // IKE port): the kernel is exactly as it was found.
        let port = {
            let text = std::fs::read_to_string(&lab.conf).unwrap();
            text.lines()
                .find_map(|l| l.trim().strip_prefix("port: "))
                .unwrap()
                .parse::<u16>()
                .unwrap()
        };
        let squatter = std::net::UdpSocket::bind(("192.0.2.1", port)).unwrap();
        let out = lab.vpnd(&[]).output().unwrap();
        assert!(
            !out.status.success(),
            "vpnd started although its port was taken"
        );
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(said.contains("binding UDP"), "{said}");
        assert_eq!(
            policies(&x).await,
            before,
            "a failed start changed the kernel"
        );
        drop(squatter);

        // A real start: the configured flow keeps a policy (in place, this run's reqid);
        // the pass peer has none.
        let (mut child, log) = lab.start();
        wait_for(&log, "vpnd running");
        let running = policies(&x).await;
        assert_eq!(running.len(), 3, "{running:?}");
        for (k, (_, index)) in &running {
            assert_eq!(
                Some(index),
                before.get(k).map(|b| &b.1),
                "{k}: replaced in place keeps the kernel's index"
            );
        }

        // SIGTERM: vpnd stops, the standing policies stay (the flow stays blocked).
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        assert!(child.wait().unwrap().success());
        assert_eq!(
            policies(&x).await.len(),
            3,
            "stop took the standing policies away"
        );

        // SIGKILL at any point leaves at least as much.
        let (mut child, log) = lab.start();
        wait_for(&log, "vpnd running");
        child.kill().unwrap();
        let _ = child.wait();
        assert_eq!(policies(&x).await.len(), 3);

        // `vpnd --flush` is the explicit way out.
        let out = lab.vpnd(&["--flush"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "removed 3 policies, 0 SAs, 0 routes and 0 interfaces owned by vpnd"
        );
        assert!(policies(&x).await.is_empty());
        let _ = std::fs::remove_dir_all(&lab.dir);
    });
}

#[test]
fn a_flood_of_junk_datagrams_gives_one_warning_a_second() {
    in_netns(|| async {
        sh("ip link set lo up && ip addr add 192.0.2.1/24 dev lo && ip addr add 192.0.2.66/32 dev lo");
        let port = 5500 + (std::process::id() % 1000) as u16;
        let lab = Lab::new("flood", port);
        let (mut child, log) = lab.start();
        wait_for(&log, "vpnd running");
        // 25,000 datagrams that fail the IKE header check, from one address, in two bursts
        // a second apart (the second burst's first line says how many the first held back).
        let junk = std::net::UdpSocket::bind("192.0.2.66:0").unwrap();
        let started = Instant::now();
        for i in 0..25_000u32 {
            if i == 12_500 {
                std::thread::sleep(Duration::from_millis(1100));
            }
            let mut d = vec![0xAB; 40];
            d[..4].copy_from_slice(&i.to_be_bytes());
            let _ = junk.send_to(&d, ("192.0.2.1", port));
        }
        std::thread::sleep(Duration::from_millis(1500));
        let secs = started.elapsed().as_secs() + 1;
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        assert!(child.wait().unwrap().success(), "vpnd survived the flood");
        let text = std::fs::read_to_string(&log).unwrap();
        let from_junk = text
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("192.0.2.66"))
            .count() as u64;
        assert!(
            (1..=secs + 1).contains(&from_junk),
            "{from_junk} warnings for 25,000 junk datagrams in {secs} s (one a second expected)"
        );
        assert!(
            text.contains("more from this address in the last second"),
            "the held-back count is said"
        );
        let _ = std::fs::remove_dir_all(&lab.dir);
    });
}
