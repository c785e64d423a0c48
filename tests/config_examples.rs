//! Every file in examples/ must load; the known ones are checked field by field.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vpnd::config::{AccountingMode, Config, Mode, PeerAddress, StartAction, TsSpec, WhenFull};
use vpnd::ike::codec::Identity;
use vpnd::ike::proposal::{DhGroup, Encr, Integ, Proposal, ProposalKind};

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    v.sort();
    v
}

fn load(name: &str) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    Config::load(&path).unwrap_or_else(|e| panic!("{}:\n{e}", path.display()))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ts(s: &str) -> TsSpec {
    TsSpec {
        net: s.parse().unwrap(),
        proto: 0,
        ports: (0, 65535),
    }
}

#[test]
fn every_example_loads() {
    let files = examples();
    assert!(files.len() >= 3, "examples: {files:?}");
    let mut failed = Vec::new();
    for f in &files {
        match Config::load(f) {
            Ok(cfg) => {
                assert!(!cfg.peers.is_empty(), "{}: no peers", f.display());
                // The examples use documentation addresses, which this host does not have;
                // nothing else may need a look.
                let other: Vec<String> = cfg
                    .warnings
                    .iter()
                    .filter(|w| !w.field.starts_with("local.addresses"))
                    .map(|w| w.to_string())
                    .collect();
                assert!(other.is_empty(), "{}", other.join("\n"));
            }
            Err(e) => failed.push(format!("{e}")),
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn site_to_site() {
    let c = load("site-to-site.yaml");
    assert_eq!(c.local.addresses, vec![ip("192.0.2.1")]);
    assert_eq!(c.local.port, 500);
    assert_eq!(c.local.nat_t_port, 4500);
    assert_eq!(c.local.nas_ip, Some(ip("192.0.2.1")));
    assert_eq!(c.local.reqid_base, 0x7670_0000);
    assert_eq!(c.control.socket, Path::new("/run/vpnd/vpnd.sock"));
    assert_eq!(c.control.mode, 0o660);
    assert_eq!(c.control.group, None);
    assert_eq!(c.control.admin_group, None);
    assert_eq!(c.control.max_clients, 64);
    assert_eq!(c.accounting.when_full, WhenFull::Accept);
    assert!(c.radius.servers.is_empty());
    assert!(c.accounting.lists.is_empty());
    assert_eq!(c.peers.len(), 1);
    let p = &c.peers[0];
    assert_eq!(p.name, "site-b");
    assert_eq!(p.remote, PeerAddress::Single(ip("192.0.2.2")));
    assert_eq!(p.start, StartAction::Initiate);
    assert_eq!(p.local_id, Identity::Ipv4("192.0.2.1".parse().unwrap()));
    assert_eq!(
        p.remote_id,
        Some(Identity::Ipv4("192.0.2.2".parse().unwrap()))
    );
    assert!(
        matches!(&p.auth.local, vpnd::config::LocalAuthConfig::Psk(k) if !k.expose().is_empty())
    );
    assert_eq!(p.accounting, None);
    // ike_defaults built in.
    assert_eq!(p.ike.proposals.len(), 2);
    assert_eq!(p.ike.lifetime, Duration::from_secs(86400));
    assert_eq!(p.ike.dpd, Some(Duration::from_secs(30)));
    assert_eq!(p.children.len(), 1);
    let ch = &p.children[0];
    assert_eq!(ch.local_ts, vec![ts("198.51.100.0/25")]);
    assert_eq!(ch.remote_ts, vec![ts("203.0.113.0/26")]);
    assert_eq!(ch.mode, Mode::Tunnel);
    assert_eq!(ch.esp.len(), 3);
    assert_eq!(ch.lifetime_seconds, 3600);
    assert_eq!(ch.replay_window, 64);
}

/// What the two IOS examples share: RADIUS, accounting, the IKE policy and transform set.
fn check_ios_common(c: &Config) {
    assert_eq!(c.local.addresses, vec![ip("172.28.100.1")]);
    assert_eq!(c.radius.servers.len(), 1);
    let r = &c.radius.servers[0];
    assert_eq!(r.address, ip("172.27.162.206"));
    assert_eq!(r.auth_port, 1645);
    assert_eq!(r.acct_port, 1646);
    assert_eq!(r.key.expose(), b"cisco123");
    assert_eq!(c.radius.retransmit, 3);
    assert!(c.radius.vsa_send_accounting);
    assert_eq!(c.radius.groups["radius"], vec![r.name.clone()]);
    assert_eq!(c.accounting.update_periodic, Some(Duration::from_secs(60)));
    assert_eq!(c.radius.timeout, Duration::from_secs(5));
    assert_eq!(c.control.mode, 0o660);
    let l = &c.accounting.lists["ipsecaaa"];
    assert_eq!(l.mode, AccountingMode::StartStop);
    assert!(!l.broadcast);
    assert_eq!(l.groups, vec!["radius".to_string()]);
    assert_eq!(c.radius.group_servers("radius").unwrap().len(), 1);

    assert_eq!(c.peers.len(), 1);
    let p = &c.peers[0];
    assert_eq!(p.remote, PeerAddress::Single(ip("172.31.100.2")));
    assert!(
        matches!(&p.auth.remote, vpnd::config::RemoteAuthConfig::Psk(k) if k.expose() == b"cisco-example-key-0123")
    );
    assert_eq!(p.accounting.as_deref(), Some("ipsecaaa"));
    assert_eq!(
        p.ike.proposals,
        vec![Proposal::parse("aes128-sha256-modp2048", ProposalKind::Ike).unwrap()]
    );
    assert_eq!(
        p.ike.proposals[0].encr,
        vec![Encr::AesCbc { key_bits: 128 }]
    );
    assert_eq!(p.ike.proposals[0].groups, vec![DhGroup::Modp2048]);
    assert_eq!(p.ike.lifetime, Duration::from_secs(86400));
    let ch = &p.children[0];
    assert_eq!(ch.lifetime_seconds, 120);
    assert_eq!(ch.lifetime_kilobytes, None);
    assert_eq!(ch.esp.len(), 1);
    assert_eq!(ch.esp[0].encr, vec![Encr::AesCbc { key_bits: 128 }]);
    assert_eq!(ch.esp[0].integ, vec![Integ::HmacSha256_128]);
    assert_eq!(ch.mode, Mode::Tunnel);
}

#[test]
fn ios_accounting_isakmp_profile() {
    let c = load("ios-accounting-isakmp-profile.yaml");
    check_ios_common(&c);
    let p = &c.peers[0];
    assert_eq!(p.start, StartAction::Respond);
    assert_eq!(p.ivrf.as_deref(), Some("cisco"));
    assert_eq!(p.fvrf, None);
    assert_eq!(p.group.as_deref(), Some("cclient"));
    assert_eq!(p.local_id, Identity::Ipv4("172.28.100.1".parse().unwrap()));
    assert!(p.description.as_deref().unwrap().len() <= 80);
    assert_eq!(p.children[0].local_ts, vec![ts("0.0.0.0/0")]);
}

#[test]
fn ios_accounting_crypto_map() {
    let c = load("ios-accounting-crypto-map.yaml");
    check_ios_common(&c);
    let p = &c.peers[0];
    assert_eq!(p.start, StartAction::Initiate);
    assert_eq!(p.group, None);
    assert_eq!(p.ivrf, None);
    let ch = &p.children[0];
    assert_eq!(ch.local_ts, vec![ts("10.20.20.20/32")]);
    assert_eq!(ch.remote_ts, vec![ts("10.10.10.10/32")]);
}
