use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::parse::{self, IdSpec};
use super::*;
use crate::ike::proposal::DhGroup;

const FILE: &str = "/etc/vpnd/vpnd.yaml";

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_str(text, FILE)
}

fn problems(text: &str) -> Vec<Problem> {
    match load(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.problems().to_vec(),
    }
}

/// The warnings of a configuration that must load.
fn warnings(text: &str) -> Vec<Problem> {
    load(text)
        .unwrap_or_else(|e| panic!("{e}\nin:\n{text}"))
        .warnings
}

/// Two group names that exist in this host's /etc/group (the control groups are checked
/// there, as the daemon resolves them).
fn two_local_groups() -> (String, String) {
    let text = std::fs::read_to_string("/etc/group").expect("/etc/group");
    let names: Vec<String> = text
        .lines()
        .filter_map(|l| l.split(':').next())
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect();
    assert!(names.len() >= 2, "/etc/group lists fewer than 2 groups");
    (
        names[names.len() - 1].clone(),
        names[names.len() - 2].clone(),
    )
}

/// A fresh directory for files a test writes.
fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("vpnd-config-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_mode(path: &std::path::Path, bytes: &[u8], mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Asserts one problem is at `line:column`, for `field`, with `msg` in its message, and that
/// its Display names file, line, column and field.
#[track_caller]
fn has(ps: &[Problem], line: u64, column: u64, field: &str, msg: &str) {
    let found = ps.iter().any(|p| {
        p.line == line && p.column == column && p.field == field && p.message.contains(msg)
    });
    assert!(
        found,
        "no problem {line}:{column} {field}: ..{msg}.. in:\n{}",
        ps.iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let p = ps
        .iter()
        .find(|p| p.line == line && p.field == field)
        .unwrap();
    assert!(p
        .to_string()
        .starts_with(&format!("{FILE}:{line}:{column}: {field}: ")));
}

/// A valid file; tests replace a line to break it. Line numbers matter.
const BASE: &str = "\
local:
  addresses: [192.0.2.1]
peers:
  - name: site-b
    address: 192.0.2.2
    psk: secret-0123
    children:
      - name: net
        local_ts: [10.1.0.0/16]
        remote_ts: [10.2.0.0/16]
";

fn with(extra_peer_keys: &str, extra_child_keys: &str) -> String {
    let mut s = String::from(
        "local:\n  addresses: [192.0.2.1]\npeers:\n  - name: site-b\n    address: 192.0.2.2\n",
    );
    s.push_str(extra_peer_keys);
    s.push_str("    children:\n      - name: net\n");
    s.push_str(extra_child_keys);
    s
}

#[test]
fn base_is_valid_and_defaults_apply() {
    let c = load(BASE).unwrap();
    assert_eq!(c.local.port, 500);
    assert_eq!(c.local.nat_t_port, 4500);
    assert_eq!(c.local.nas_ip, Some("192.0.2.1".parse().unwrap()));
    assert_eq!(c.local.reqid_base, 0x7670_0000);
    assert_eq!(
        c.control.socket,
        std::path::Path::new("/run/vpnd/vpnd.sock")
    );
    assert_eq!(c.control.group, None);
    assert_eq!(c.control.mode, 0o660);
    assert_eq!(c.control.admin_group, None);
    assert_eq!(c.control.max_clients, 64);
    assert_eq!(c.accounting.when_full, WhenFull::Accept);
    // What loads but deserves a look: 192.0.2.1 is not this host's, an 11-byte key.
    let w: Vec<(u64, u64, &str)> = c
        .warnings
        .iter()
        .map(|p| (p.line, p.column, p.field.as_str()))
        .collect();
    assert_eq!(
        w,
        [(2, 15, "local.addresses[0]"), (6, 10, "peers[0].psk")],
        "{:?}",
        c.warnings
    );
    assert!(c.warnings[0]
        .message
        .contains("not an address of this host"));
    assert!(c.warnings[1].message.starts_with("11 bytes"));
    assert_eq!(c.log.level, LogLevel::Info);
    assert!(c.syslog.local);
    assert_eq!(c.syslog.facility, Facility::Local4);
    assert_eq!(c.radius.timeout, Duration::from_secs(5));
    assert_eq!(c.radius.retransmit, 3);
    assert_eq!(c.radius.dead_time, Duration::from_secs(60));
    assert!(!c.radius.vsa_send_accounting);
    assert!(c.radius.groups.is_empty());
    assert_eq!(c.accounting.update_periodic, None);
    assert_eq!(
        c.accounting.journal,
        std::path::Path::new("/var/lib/vpnd/accounting.journal")
    );
    assert_eq!(c.accounting.outbox_limit, 100_000);
    let p = &c.peers[0];
    assert_eq!(p.port, 500);
    assert_eq!(p.start, StartAction::Respond);
    assert_eq!(p.local_id, Identity::Ipv4(Ipv4Addr::new(192, 0, 2, 1)));
    assert_eq!(
        p.remote_id,
        Some(Identity::Ipv4(Ipv4Addr::new(192, 0, 2, 2)))
    );
    assert!(matches!(&p.auth.local, LocalAuthConfig::Psk(k) if k.expose() == b"secret-0123"));
    assert_eq!(p.ike.proposals.len(), 2);
    assert_eq!(p.ike.proposals[0].groups, vec![DhGroup::Curve25519]);
    assert_eq!(p.ike.lifetime, Duration::from_secs(86400));
    assert_eq!(p.ike.dpd, Some(Duration::from_secs(30)));
    assert_eq!(p.ike.retransmit.timeout, Duration::from_secs(2));
    assert_eq!(p.ike.retransmit.base, 1.8);
    assert_eq!(p.ike.retransmit.tries, 5);
    let ch = &p.children[0];
    assert_eq!(ch.mode, Mode::Tunnel);
    assert_eq!(ch.esp.len(), 3);
    assert_eq!(ch.pfs, None);
    assert_eq!(ch.lifetime_seconds, 3600);
    assert_eq!(ch.lifetime_kilobytes, None);
    assert_eq!(ch.replay_window, 64);
}

#[test]
fn empty_file_is_all_defaults() {
    let c = load("# nothing yet\n").unwrap();
    assert!(c.peers.is_empty());
    assert!(c.local.addresses.is_empty());
    assert_eq!(c.local.nas_ip, None);
}

#[test]
fn everything_set() {
    let (g1, g2) = two_local_groups();
    let text = "\
local:
  addresses: [192.0.2.1, 2001:db8::1]
  port: 1500
  nat_t_port: 14500
  nas_ip: 192.0.2.9
  reqid_base: 0x10000
control:
  socket: /tmp/v.sock
  group: GROUP1
  admin_group: GROUP2
  mode: 0666
  max_clients: 10
log:
  level: debug
syslog:
  local: false
  facility: daemon
  servers:
    - address: 192.0.2.20
    - address: 192.0.2.21
      port: 6514
      transport: tcp
radius:
  servers:
    - name: r1
      address: 192.0.2.30
      key: k1
    - address: 192.0.2.31
      key: k2
  timeout: 3s
  retransmit: 2
  dead_time: 5m
  vsa_send_accounting: true
  groups:
    g1: [r1, 192.0.2.31]
accounting:
  update_periodic: 90
  journal: /tmp/acct.journal
  outbox_limit: 10
  when_full: refuse
  lists:
    l1: { mode: stop-only, broadcast: true, groups: [g1, radius] }
ike_defaults:
  proposals: [aes128gcm16-prfsha384-ecp384]
  lifetime: 8h
  dpd: 0
  retransmit: { timeout: 1s, base: 2, tries: 3 }
peers:
  - name: v6
    address: 2001:db8::2
    port: 4501
    local_id: '@gw.example.net'
    remote_id: 'user@example.org'
    psk: long-enough-secret
    start: initiate
    fvrf: outside
    ivrf: inside
    group: g
    accounting: l1
    ike:
      lifetime: 1h
    children:
      - name: c
        local_ts: ['fd00:1::/64', 10.0.0.0/8]
        remote_ts: ['fd00:2::/64[tcp/443]', 10.1.0.0/16]
        esp: [aes256gcm16-esn]
        pfs: ecp256
        lifetime: { seconds: 2h, kilobytes: 4608000 }
        replay_window: 0
"
    .replace("GROUP1", &g1)
    .replace("GROUP2", &g2);
    let c = load(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.local.port, 1500);
    assert_eq!(c.local.nat_t_port, 14500);
    assert_eq!(c.local.nas_ip, Some("192.0.2.9".parse().unwrap()));
    assert_eq!(c.local.reqid_base, 0x10000);
    assert_eq!(c.control.group.as_deref(), Some(g1.as_str()));
    assert_eq!(c.control.admin_group.as_deref(), Some(g2.as_str()));
    assert_eq!(c.control.mode, 0o666);
    assert_eq!(c.control.max_clients, 10);
    assert_eq!(c.accounting.when_full, WhenFull::Refuse);
    assert_eq!(c.log.level, LogLevel::Debug);
    assert!(!c.syslog.local);
    assert_eq!(c.syslog.facility.code(), 3);
    assert_eq!(c.syslog.servers[0].port, 514);
    assert_eq!(c.syslog.servers[1].transport, SyslogTransport::Tcp);
    assert_eq!(c.radius.servers[1].name, "192.0.2.31");
    assert_eq!(c.radius.dead_time, Duration::from_secs(300));
    assert_eq!(c.radius.groups["radius"].len(), 2);
    assert_eq!(c.radius.group_servers("g1").unwrap()[1].key.expose(), b"k2");
    assert_eq!(c.accounting.update_periodic, Some(Duration::from_secs(90)));
    assert_eq!(c.accounting.lists["l1"].mode, AccountingMode::StopOnly);
    assert!(c.accounting.lists["l1"].broadcast);
    let p = &c.peers[0];
    assert_eq!(p.local_id, Identity::Fqdn("gw.example.net".into()));
    assert_eq!(
        p.remote_id,
        Some(Identity::UserFqdn("user@example.org".into()))
    );
    assert_eq!(p.port, 4501);
    assert_eq!(p.fvrf.as_deref(), Some("outside"));
    // Peer ike: lifetime overridden, the rest from ike_defaults.
    assert_eq!(p.ike.lifetime, Duration::from_secs(3600));
    assert_eq!(p.ike.dpd, None);
    assert_eq!(p.ike.proposals[0].groups, vec![DhGroup::Ecp384]);
    assert_eq!(p.ike.retransmit.base, 2.0);
    let ch = &p.children[0];
    assert_eq!(ch.remote_ts[0].proto, 6);
    assert_eq!(ch.remote_ts[0].ports, (443, 443));
    assert_eq!(ch.pfs, Some(DhGroup::Ecp256));
    assert_eq!(ch.esp[0].esn, vec![true]);
    assert_eq!(ch.lifetime_seconds, 7200);
    assert_eq!(ch.lifetime_kilobytes, Some(4_608_000));
    assert_eq!(ch.replay_window, 0);
}

#[test]
fn unknown_key_is_an_error_with_location() {
    let text = BASE.replace(
        "    psk: secret-0123\n",
        "    psk: secret-0123\n    descripton: x\n",
    );
    let e = load(&text).unwrap_err();
    let ConfigError::Syntax(p) = &e else {
        panic!("{e:?}")
    };
    assert_eq!((p.line, p.column), (7, 5));
    assert!(
        p.message.contains("unknown field `descripton`"),
        "{}",
        p.message
    );
    assert!(
        e.to_string()
            .starts_with(&format!("{FILE}:7:5: unknown field")),
        "{e}"
    );
    // A typo in a nested section too.
    let e = load("radius:\n  timout: 5s\n").unwrap_err();
    assert_eq!((e.problems()[0].line, e.problems()[0].column), (2, 3));
}

#[test]
fn wrong_type_and_bad_enum_are_located() {
    let e = load("log:\n  level: loud\n").unwrap_err();
    let p = &e.problems()[0];
    assert_eq!((p.line, p.column), (2, 10));
    assert!(p.message.contains("loud"), "{}", p.message);
    let e = load(&BASE.replace("192.0.2.2\n", "192.0.2.2\n    port: 70000\n")).unwrap_err();
    assert_eq!(e.problems()[0].line, 6);
}

#[test]
fn description_at_most_80_characters() {
    let ok = with(
        &format!(
            "    psk: long-enough-secret\n    description: {}\n",
            "é".repeat(80)
        ),
        "        local_ts: [10.1.0.0/16]\n        remote_ts: [10.2.0.0/16]\n",
    );
    assert_eq!(
        load(&ok).unwrap().peers[0]
            .description
            .as_ref()
            .unwrap()
            .chars()
            .count(),
        80
    );
    let bad = with(
        &format!(
            "    psk: long-enough-secret\n    description: {}\n",
            "a".repeat(81)
        ),
        "        local_ts: [10.1.0.0/16]\n        remote_ts: [10.2.0.0/16]\n",
    );
    let ps = problems(&bad);
    has(
        &ps,
        7,
        18,
        "peers[0].description",
        "81 characters, at most 80",
    );
    assert_eq!(
        ps[0].to_string(),
        format!("{FILE}:7:18: peers[0].description: 81 characters, at most 80")
    );
}

#[test]
fn duplicate_peer_and_child_names() {
    let text = format!(
        "{BASE}  - name: site-b\n    address: 192.0.2.3\n    psk: long-enough-secret\n    children:\n      - name: a\n        local_ts: [10.1.0.0/16]\n        remote_ts: [10.3.0.0/16]\n      - name: a\n        local_ts: [10.1.0.0/16]\n        remote_ts: [10.4.0.0/16]\n"
    );
    let ps = problems(&text);
    has(
        &ps,
        11,
        11,
        "peers[1].name",
        "duplicate peer name 'site-b' (first on line 4)",
    );
    has(
        &ps,
        18,
        15,
        "peers[1].children[1].name",
        "duplicate child name 'a'",
    );
    assert_eq!(ps.len(), 2);
}

#[test]
fn ts_families_must_match_in_tunnel_mode() {
    let ps = problems(&BASE.replace("[10.2.0.0/16]", "['fd00::/64', 10.2.0.0/16, 'fd01::/64']"));
    has(
        &ps,
        10,
        21,
        "peers[0].children[0].remote_ts[0]",
        "IPv6 but local_ts has no IPv6",
    );
    has(&ps, 10, 47, "peers[0].children[0].remote_ts[2]", "IPv6");
    assert_eq!(ps.len(), 2);
    // The other way round.
    let ps = problems(&BASE.replace("[10.1.0.0/16]", "['fd00::/64']"));
    has(
        &ps,
        9,
        20,
        "peers[0].children[0].local_ts[0]",
        "remote_ts has no IPv6",
    );
}

#[test]
fn transport_mode_ts_are_the_hosts() {
    // Defaults: the two addresses.
    let c = load(&with(
        "    psk: long-enough-secret\n",
        "        mode: transport\n",
    ))
    .unwrap();
    let ch = &c.peers[0].children[0];
    assert_eq!(ch.local_ts[0].net, "192.0.2.1/32".parse().unwrap());
    assert_eq!(ch.remote_ts[0].net, "192.0.2.2/32".parse().unwrap());
    // Explicit, with a port.
    let c = load(&with(
        "    psk: long-enough-secret\n",
        "        mode: transport\n        local_ts: [192.0.2.1]\n        remote_ts: ['192.0.2.2/32[udp/1701]']\n",
    ))
    .unwrap();
    assert_eq!(c.peers[0].children[0].remote_ts[0].proto, 17);
    // Outside the hosts.
    let ps = problems(&with(
        "    psk: long-enough-secret\n",
        "        mode: transport\n        local_ts: [10.0.0.0/8]\n        remote_ts: [192.0.2.0/24]\n",
    ));
    has(
        &ps,
        10,
        20,
        "peers[0].children[0].local_ts[0]",
        "not one of local.addresses",
    );
    has(
        &ps,
        11,
        21,
        "peers[0].children[0].remote_ts[0]",
        "not within the peer address 192.0.2.2/32",
    );
    // Tunnel mode needs them.
    let ps = problems(&with("    psk: long-enough-secret\n", ""));
    has(
        &ps,
        8,
        9,
        "peers[0].children[0].local_ts",
        "required in tunnel mode",
    );
    has(
        &ps,
        8,
        9,
        "peers[0].children[0].remote_ts",
        "required in tunnel mode",
    );
}

#[test]
fn proposals_must_parse() {
    let ps = problems(&BASE.replace(
        "    psk: secret-0123\n",
        "    psk: secret-0123\n    ike:\n      proposals: [aes128-sha1-modp1024, aes256gcm16-prfsha256]\n",
    ));
    has(
        &ps,
        8,
        19,
        "peers[0].ike.proposals[0]",
        "sha1 and prfsha1 and modp1024 is legacy",
    );
    has(
        &ps,
        8,
        41,
        "peers[0].ike.proposals[1]",
        "an IKE proposal needs a DH group",
    );
    let ps = problems(&BASE.replace("[10.2.0.0/16]\n", "[10.2.0.0/16]\n        esp: [aes128]\n"));
    has(
        &ps,
        11,
        15,
        "peers[0].children[0].esp[0]",
        "AES-CBC needs an integrity algorithm",
    );
    let ps = problems("ike_defaults:\n  proposals: []\n");
    has(
        &ps,
        2,
        14,
        "ike_defaults.proposals",
        "at least one proposal",
    );
}

#[test]
fn psk_xor_psk_file() {
    let ps = problems(&BASE.replace(
        "    psk: secret-0123\n",
        "    psk: secret-0123\n    psk_file: /x\n",
    ));
    has(&ps, 7, 15, "peers[0].psk_file", "not both");
    let ps = problems(&BASE.replace("    psk: secret-0123\n", ""));
    has(&ps, 4, 5, "peers[0].psk", "required: psk or psk_file");
    let ps = problems(&BASE.replace("    psk: secret-0123\n", "    psk: ''\n"));
    has(&ps, 6, 10, "peers[0].psk", "must not be empty");
}

#[test]
fn psk_file_is_read_relative_to_the_config() {
    let dir = temp_dir("relative");
    write_mode(&dir.join("b.psk"), b"from-file\r\n", 0o600);
    write_mode(&dir.join("empty.psk"), b"\n", 0o600);
    let cfg_path = dir.join("vpnd.yaml");
    let text = BASE.replace("    psk: secret-0123\n", "    psk_file: b.psk\n");
    let c = Config::from_str(&text, &cfg_path).unwrap();
    assert!(
        matches!(&c.peers[0].auth.remote, RemoteAuthConfig::Psk(k) if k.expose() == b"from-file")
    );
    // Written to disk, through load().
    std::fs::write(&cfg_path, &text).unwrap();
    assert_eq!(
        psk_of(&Config::load(&cfg_path).unwrap().peers[0]),
        b"from-file"
    );

    let e = Config::from_str(
        &BASE.replace("    psk: secret-0123\n", "    psk_file: missing.psk\n"),
        &cfg_path,
    )
    .unwrap_err();
    let p = &e.problems()[0];
    assert_eq!(
        (p.line, p.column, p.field.as_str()),
        (6, 15, "peers[0].psk_file")
    );
    assert!(
        p.message
            .contains(&dir.join("missing.psk").display().to_string()),
        "{}",
        p.message
    );
    let e = Config::from_str(
        &BASE.replace("    psk: secret-0123\n", "    psk_file: empty.psk\n"),
        &cfg_path,
    )
    .unwrap_err();
    assert!(e.problems()[0].message.contains("is empty"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unreadable_config_file() {
    let e = Config::load("/nonexistent/vpnd.yaml").unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(e
        .to_string()
        .starts_with("/nonexistent/vpnd.yaml: cannot read"));
}

const ACCT: &str = "\
radius:
  servers:
    - name: r1
      address: 192.0.2.30
      key: k
  groups:
    g1: [r1, r2]
accounting:
  lists:
    l1:
      mode: start-stop
      groups: [g1, nope, radius]
";

#[test]
fn accounting_references() {
    let ps = problems(ACCT);
    has(
        &ps,
        7,
        14,
        "radius.groups.g1[1]",
        "no RADIUS server named 'r2'",
    );
    has(
        &ps,
        12,
        20,
        "accounting.lists.l1.groups[1]",
        "no RADIUS group 'nope'",
    );
    assert_eq!(ps.len(), 2, "{ps:?}");
    // A peer naming a list that does not exist.
    let ps = problems(&BASE.replace(
        "    psk: secret-0123\n",
        "    psk: secret-0123\n    accounting: acc\n",
    ));
    has(
        &ps,
        7,
        17,
        "peers[0].accounting",
        "no accounting list 'acc'",
    );
    // "radius" without servers.
    let ps = problems("accounting:\n  lists:\n    l: { mode: start-stop, groups: [radius] }\n");
    has(
        &ps,
        3,
        37,
        "accounting.lists.l.groups[0]",
        "radius.servers defines none",
    );
    // Mode and groups are required.
    let ps = problems("accounting:\n  lists:\n    l: {}\n");
    has(&ps, 3, 8, "accounting.lists.l.mode", "required");
    has(&ps, 3, 8, "accounting.lists.l.groups", "required");
}

#[test]
fn radius_key_required_and_not_empty() {
    let ps = problems(
        "radius:\n  servers:\n    - address: 192.0.2.1\n    - address: 192.0.2.2\n      key: ''\n",
    );
    has(&ps, 3, 7, "radius.servers[0].key", "required");
    has(&ps, 5, 12, "radius.servers[1].key", "must not be empty");
}

#[test]
fn lifetimes_at_least_60_seconds() {
    let ps = problems(&BASE.replace(
        "[10.2.0.0/16]\n",
        "[10.2.0.0/16]\n        lifetime: { seconds: 59 }\n",
    ));
    has(
        &ps,
        11,
        30,
        "peers[0].children[0].lifetime.seconds",
        "59 s is too short",
    );
    let ps = problems("ike_defaults:\n  lifetime: 30s\n");
    has(&ps, 2, 13, "ike_defaults.lifetime", "at least 60 s");
    assert!(load("ike_defaults:\n  lifetime: 1m\n").is_ok());
}

#[test]
fn initiate_needs_a_single_address() {
    for addr in ["any", "10.0.0.0/8"] {
        let ps = problems(&BASE.replace(
            "    address: 192.0.2.2\n",
            &format!("    address: {addr}\n    remote_id: '%any'\n    start: initiate\n"),
        ));
        has(
            &ps,
            7,
            12,
            "peers[0].start",
            "a single peer address, not 'any' or a prefix",
        );
    }
    // Respond-only: fine, and remote_id defaults to any.
    let c = load(&BASE.replace("192.0.2.2\n", "10.0.0.0/8\n")).unwrap();
    assert_eq!(
        c.peers[0].remote,
        PeerAddress::Prefix("10.0.0.0/8".parse().unwrap())
    );
    assert_eq!(c.peers[0].remote_id, None);
    assert!(c.peers[0].remote.matches("10.9.9.9".parse().unwrap()));
}

#[test]
fn port_zero_is_an_error() {
    let ps = problems(&BASE.replace(
        "    psk: secret-0123\n",
        "    psk: secret-0123\n    port: 0\n",
    ));
    has(&ps, 7, 11, "peers[0].port", "port 0");
    let ps = problems(
        "local:\n  nat_t_port: 0\nsyslog:\n  servers:\n    - { address: 192.0.2.1, port: 0 }\n",
    );
    has(&ps, 2, 15, "local.nat_t_port", "port 0");
    has(&ps, 5, 35, "syslog.servers[0].port", "port 0");
}

#[test]
fn all_problems_are_collected_in_file_order() {
    let text = "\
local:
  addresses: [192.0.2.1]
  reqid_base: 0
control:
  mode: 0999
peers:
  - name: 'bad name'
    address: host.example.com
    psk: long-enough-secret
    children:
      - name: c
        local_ts: [10.0.0.1/24]
        remote_ts: ['10.2.0.0/16[/80]']
        pfs: modp1024
        replay_window: 100000
";
    let e = load(text).unwrap_err();
    let ps = e.problems();
    has(ps, 3, 15, "local.reqid_base", "0 is not usable");
    has(ps, 5, 9, "control.mode", "octal");
    has(ps, 7, 11, "peers[0].name", "only letters");
    has(ps, 8, 14, "peers[0].address", "host names are not resolved");
    has(
        ps,
        12,
        20,
        "peers[0].children[0].local_ts[0]",
        "did you mean 10.0.0.0/24?",
    );
    has(
        ps,
        13,
        21,
        "peers[0].children[0].remote_ts[0]",
        "a port needs a protocol",
    );
    has(ps, 14, 14, "peers[0].children[0].pfs", "unknown DH group");
    has(
        ps,
        15,
        24,
        "peers[0].children[0].replay_window",
        "at most 4096",
    );
    assert_eq!(ps.len(), 8);
    let lines: Vec<u64> = ps.iter().map(|p| p.line).collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(e.to_string().lines().count(), 8);
}

#[test]
fn local_id_needs_an_address_to_default_to() {
    let ps = problems(&BASE.replace("local:\n  addresses: [192.0.2.1]\n", ""));
    has(
        &ps,
        2,
        5,
        "peers[0].local_id",
        "required when local.addresses is not set",
    );
    let c = load(
        &BASE
            .replace("local:\n  addresses: [192.0.2.1]\n", "")
            .replace(
                "    psk: secret-0123\n",
                "    psk: secret-0123\n    local_id: 'keyid:#0102'\n",
            ),
    )
    .unwrap();
    assert_eq!(c.peers[0].local_id, Identity::KeyId(vec![1, 2]));
    let ps = problems(&BASE.replace(
        "    psk: secret-0123\n",
        "    psk: secret-0123\n    local_id: '%any'\n",
    ));
    has(&ps, 7, 15, "peers[0].local_id", "only for remote_id");
}

#[test]
fn pfs_in_one_place_only() {
    let ps = problems(&BASE.replace(
        "[10.2.0.0/16]\n",
        "[10.2.0.0/16]\n        esp: [aes256gcm16-modp2048]\n        pfs: x25519\n",
    ));
    has(&ps, 12, 14, "peers[0].children[0].pfs", "in one place");
}

#[test]
fn secrets_are_not_printed() {
    let text = ACCT
        .replace(", nope", "")
        .replace(", r2", "")
        .replace("key: k", "key: radius-secret-xyz")
        + "peers:\n  - name: p\n    address: 192.0.2.2\n    local_id: a.example\n    psk: peer-secret-xyz\n    children:\n      - { name: c, local_ts: [10.0.0.0/8], remote_ts: [10.1.0.0/16] }\n";
    let c = load(&text).unwrap();
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("secret-xyz"), "{dbg}");
    assert!(dbg.contains("Secret(<redacted>)"));
}

#[test]
fn durations() {
    let d = |s: &str| parse::duration(s).map(|d| d.as_secs());
    assert_eq!(d("30"), Ok(30));
    assert_eq!(d("30s"), Ok(30));
    assert_eq!(d("10m"), Ok(600));
    assert_eq!(d("24h"), Ok(86400));
    assert_eq!(d("1d"), Ok(86400));
    assert_eq!(d("1h30m"), Ok(5400));
    assert_eq!(d(" 5s "), Ok(5));
    assert_eq!(d("0"), Ok(0));
    assert!(d("").is_err());
    assert!(d("5x").unwrap_err().contains("unknown unit 'x'"));
    assert!(d("1h30").unwrap_err().contains("needs a unit"));
    assert!(d("-5s").is_err());
    assert!(d("1.5h").is_err());
    assert!(d("99999999999999999999").is_err());
    assert!(d("9999999999999999d").unwrap_err().contains("too large"));
    // In a file, an integer or a string.
    let c = load("radius:\n  timeout: 7\n  dead_time: 2m\n").unwrap();
    assert_eq!(c.radius.timeout, Duration::from_secs(7));
    assert_eq!(c.radius.dead_time, Duration::from_secs(120));
    let ps = problems("radius:\n  timeout: soon\n");
    has(&ps, 2, 12, "radius.timeout", "not a duration");
}

#[test]
fn identities() {
    let id = |s: &str| parse::identity(s);
    assert_eq!(
        id("192.0.2.1"),
        Ok(IdSpec::Id(Identity::Ipv4(Ipv4Addr::new(192, 0, 2, 1))))
    );
    assert_eq!(
        id("2001:db8::1"),
        Ok(IdSpec::Id(Identity::Ipv6("2001:db8::1".parse().unwrap())))
    );
    assert_eq!(
        id("user@example.com"),
        Ok(IdSpec::Id(Identity::UserFqdn("user@example.com".into())))
    );
    assert_eq!(
        id("@@user@example.com"),
        Ok(IdSpec::Id(Identity::UserFqdn("user@example.com".into())))
    );
    assert_eq!(
        id("@vpn.example.com"),
        Ok(IdSpec::Id(Identity::Fqdn("vpn.example.com".into())))
    );
    assert_eq!(
        id("vpn.example.com"),
        Ok(IdSpec::Id(Identity::Fqdn("vpn.example.com".into())))
    );
    assert_eq!(
        id("keyid:abc"),
        Ok(IdSpec::Id(Identity::KeyId(b"abc".to_vec())))
    );
    assert_eq!(
        id("keyid:#0aff"),
        Ok(IdSpec::Id(Identity::KeyId(vec![0x0a, 0xff])))
    );
    assert_eq!(id("%any"), Ok(IdSpec::Any));
    assert!(id("").is_err());
    assert!(id("@").is_err());
    assert!(id("keyid:").is_err());
    assert!(id("keyid:#abc").is_err());
    assert!(id("keyid:#zz").is_err());
    assert!(id("C=CH, O=Example")
        .unwrap_err()
        .contains("distinguished names"));
    assert!(id("@user@").is_err());
    assert!(id("a@b@c").is_err());
    // In a file: remote_id %any means any.
    let c = load(&BASE.replace(
        "    psk: secret-0123\n",
        "    psk: secret-0123\n    remote_id: '%any'\n",
    ))
    .unwrap();
    assert_eq!(c.peers[0].remote_id, None);
}

#[test]
fn traffic_selectors() {
    let t = |s: &str| parse::ts(s);
    let x = t("10.0.0.0/24[tcp/443]").unwrap();
    assert_eq!(x.net, "10.0.0.0/24".parse().unwrap());
    assert_eq!((x.proto, x.ports), (6, (443, 443)));
    assert_eq!(x.to_string(), "10.0.0.0/24[tcp/443]");
    let x = t("10.0.0.0/24[udp/1000-2000]").unwrap();
    assert_eq!((x.proto, x.ports), (17, (1000, 2000)));
    let x = t("10.0.0.0/24[tcp]").unwrap();
    assert_eq!((x.proto, x.ports), (6, (0, 65535)));
    let x = t("10.0.0.0/24[tcp/%any]").unwrap();
    assert_eq!((x.proto, x.ports), (6, (0, 65535)));
    let x = t("fd00::/64[58]").unwrap();
    assert_eq!(x.proto, 58);
    let x = t("10.20.20.20").unwrap();
    assert_eq!(x.net, "10.20.20.20/32".parse().unwrap());
    assert_eq!((x.proto, x.ports), (0, (0, 65535)));
    assert_eq!(x.to_string(), "10.20.20.20/32");
    assert!(t("10.0.0.0/24[tcp/443")
        .unwrap_err()
        .contains("missing ']'"));
    assert!(t("10.0.0.0/24[foo]")
        .unwrap_err()
        .contains("unknown protocol"));
    assert!(t("10.0.0.0/24[tcp/2000-1000]")
        .unwrap_err()
        .contains("reversed"));
    assert!(t("10.0.0.0/24[tcp/70000]").is_err());
    assert!(t("10.0.0.0/33").is_err());
    assert!(t("10.0.0.5/24")
        .unwrap_err()
        .contains("did you mean 10.0.0.0/24?"));
    assert!(t("[tcp/443]").is_err());
}

#[test]
fn scalars() {
    assert_eq!(parse::mode("0660"), Ok(0o660));
    assert_eq!(parse::mode("600"), Ok(0o600));
    assert_eq!(parse::mode("0o640"), Ok(0o640));
    assert!(parse::mode("0999").is_err());
    assert!(parse::mode("01777").is_err());
    assert_eq!(parse::u32_number("0x76700000"), Ok(0x7670_0000));
    assert_eq!(parse::u32_number("1000"), Ok(1000));
    assert!(parse::u32_number("0x1_0000_0000").is_err());
    assert_eq!(parse::peer_address("any"), Ok(PeerAddress::Any));
    assert_eq!(parse::peer_address("%any"), Ok(PeerAddress::Any));
    assert_eq!(
        parse::peer_address("192.0.2.1/32"),
        Ok(PeerAddress::Single("192.0.2.1".parse().unwrap()))
    );
    assert_eq!(parse::pfs("none"), Ok(None));
    assert_eq!(parse::pfs("x25519"), Ok(Some(DhGroup::Curve25519)));
    assert_eq!(parse::pfs("modp3072"), Ok(Some(DhGroup::Modp3072)));
}

/// A value of u64::MAX seconds passed `--check` and overflowed an `Instant` at the first IKE
/// SA; every duration now has a bound, reported at its location.
#[test]
fn every_duration_is_bounded() {
    const HUGE: &str = "18446744073709551615";
    let ps = problems(&format!(
        "ike_defaults:\n  lifetime: {HUGE}\n  dpd: {HUGE}\n"
    ));
    has(
        &ps,
        2,
        13,
        "ike_defaults.lifetime",
        "18446744073709551615 s is too long (at most 2592000 s, 30d)",
    );
    has(&ps, 3, 8, "ike_defaults.dpd", "at most 3600 s, 1h");
    let ps = problems(&BASE.replace(
        "    psk: secret-0123\n",
        &format!("    psk: secret-0123\n    ike:\n      lifetime: {HUGE}\n      dpd: 3601\n      retransmit: {{ timeout: 61s }}\n"),
    ));
    has(&ps, 8, 17, "peers[0].ike.lifetime", "at most 2592000 s");
    has(&ps, 9, 12, "peers[0].ike.dpd", "3601 s is too long");
    has(
        &ps,
        10,
        30,
        "peers[0].ike.retransmit.timeout",
        "at most 60 s",
    );
    let ps = problems(&BASE.replace(
        "[10.2.0.0/16]\n",
        "[10.2.0.0/16]\n        lifetime: { seconds: 31d, kilobytes: 4294967296 }\n",
    ));
    has(
        &ps,
        11,
        30,
        "peers[0].children[0].lifetime.seconds",
        "at most 2592000 s",
    );
    has(
        &ps,
        11,
        46,
        "peers[0].children[0].lifetime.kilobytes",
        "at most 4294967295",
    );
    let ps = problems(&format!(
        "radius:\n  timeout: 61s\n  dead_time: 1441m\naccounting:\n  update_periodic: {HUGE}\n"
    ));
    has(&ps, 2, 12, "radius.timeout", "at most 60 s");
    has(&ps, 3, 14, "radius.dead_time", "at most 86400 s, 1d");
    has(
        &ps,
        5,
        20,
        "accounting.update_periodic",
        "at most 4294920 s, 71582m",
    );
    // The largest accepted values load, as written.
    let c = load(&BASE.replace(
        "[10.2.0.0/16]\n",
        "[10.2.0.0/16]\n        lifetime: { seconds: 30d, kilobytes: 4294967295 }\n",
    ))
    .unwrap();
    assert_eq!(c.peers[0].children[0].lifetime_seconds, 30 * 86400);
    assert_eq!(
        c.peers[0].children[0].lifetime_kilobytes,
        Some(u32::MAX as u64)
    );
    let c = load(
        "ike_defaults:\n  lifetime: 30d\n  dpd: 1h\n  retransmit: { timeout: 60s }\n\
         radius:\n  timeout: 60\n  dead_time: 1d\naccounting:\n  update_periodic: 71582m\n",
    )
    .unwrap();
    assert_eq!(c.radius.timeout, MAX_RADIUS_TIMEOUT);
    assert_eq!(c.radius.dead_time, Duration::from_secs(86400));
    assert_eq!(
        c.accounting.update_periodic,
        Some(Duration::from_secs(71_582 * 60))
    );
    // 0 still means "off" where it did.
    let c = load("radius:\n  dead_time: 0\naccounting:\n  update_periodic: 0\n").unwrap();
    assert_eq!(c.radius.dead_time, Duration::ZERO);
    assert_eq!(c.accounting.update_periodic, None);
    let c = load(&BASE.replace(
        "    psk: secret-0123\n",
        "    psk: secret-0123\n    ike:\n      dpd: 0\n      lifetime: 30d\n",
    ))
    .unwrap();
    assert_eq!(c.peers[0].ike.dpd, None);
    assert_eq!(c.peers[0].ike.lifetime, MAX_LIFETIME);
}

#[test]
fn short_keys_are_refused_and_shortish_ones_warned() {
    let ps = problems(&BASE.replace("psk: secret-0123", "psk: '1234567'"));
    has(
        &ps,
        6,
        10,
        "peers[0].psk",
        "7 bytes is too short a pre-shared key (at least 8",
    );
    let w = warnings(&BASE.replace("psk: secret-0123", "psk: '12345678'"));
    let p = w.iter().find(|p| p.field == "peers[0].psk").unwrap();
    assert_eq!((p.line, p.column), (6, 10));
    assert!(
        p.message.starts_with("8 bytes: a pre-shared key of 20"),
        "{p}"
    );
    let w = warnings(&BASE.replace("psk: secret-0123", "psk: 0123456789abcdefghij"));
    assert!(!w.iter().any(|p| p.field == "peers[0].psk"), "{w:?}");
    // The same rule for a key from a file.
    let dir = temp_dir("shortkey");
    write_mode(&dir.join("k"), b"short\n", 0o600);
    let e = Config::from_str(
        &BASE.replace("    psk: secret-0123\n", "    psk_file: k\n"),
        dir.join("vpnd.yaml"),
    )
    .unwrap_err();
    let p = &e.problems()[0];
    assert_eq!(
        (p.line, p.column, p.field.as_str()),
        (6, 15, "peers[0].psk_file")
    );
    assert!(p.message.starts_with("5 bytes is too short"), "{p}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_key_file_must_be_a_private_regular_file_of_bounded_size() {
    let dir = temp_dir("keyfile");
    let cfg = dir.join("vpnd.yaml");
    let with_file =
        |f: &str| BASE.replace("    psk: secret-0123\n", &format!("    psk_file: {f}\n"));
    let refused = |f: &str| -> Problem {
        let e = Config::from_str(&with_file(f), &cfg).unwrap_err();
        let p = e.problems()[0].clone();
        assert_eq!(
            (p.line, p.column, p.field.as_str()),
            (6, 15, "peers[0].psk_file"),
            "{p}"
        );
        p
    };
    let key = b"a-key-of-twenty-bytes-or-more\n";
    write_mode(&dir.join("world"), key, 0o644);
    assert!(refused("world")
        .message
        .contains("is readable by every user (mode 0644)"));
    write_mode(&dir.join("writable"), key, 0o602);
    assert!(refused("writable")
        .message
        .contains("writable by every user (mode 0602)"));
    write_mode(&dir.join("long"), &[b'k'; 4097], 0o600);
    assert!(refused("long").message.contains("longer than 4096 bytes"));
    write_mode(&dir.join("max"), &[b'k'; 4096], 0o600);
    assert_eq!(
        psk_of(&Config::from_str(&with_file("max"), &cfg).unwrap().peers[0]).len(),
        4096
    );
    assert!(refused(&dir.display().to_string())
        .message
        .contains("is not a regular file"));
    // Group-readable: loads, with a warning at the key.
    write_mode(&dir.join("group"), key, 0o640);
    let c = Config::from_str(&with_file("group"), &cfg).unwrap();
    assert_eq!(psk_of(&c.peers[0]), &key[..key.len() - 1]);
    let w = c
        .warnings
        .iter()
        .find(|p| p.field == "peers[0].psk_file")
        .unwrap();
    assert_eq!((w.line, w.column), (6, 15));
    assert!(
        w.message.contains("readable by its group (mode 0640)"),
        "{w}"
    );
    write_mode(&dir.join("private"), key, 0o400);
    let c = Config::from_str(&with_file("private"), &cfg).unwrap();
    assert!(!c.warnings.iter().any(|p| p.field == "peers[0].psk_file"));

    // A device or a FIFO must not hang the check: refused without reading.
    let fifo = dir.join("fifo");
    let c_path = std::ffi::CString::new(fifo.display().to_string()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let (tx, rx) = std::sync::mpsc::channel();
    let texts = [
        with_file("/dev/zero"),
        with_file(&fifo.display().to_string()),
    ];
    let cfg2 = cfg.clone();
    std::thread::spawn(move || {
        for t in texts {
            let r = Config::from_str(&t, &cfg2)
                .map(|_| ())
                .map_err(|e| e.to_string());
            tx.send(r).unwrap();
        }
    });
    for what in ["/dev/zero", "a FIFO"] {
        let r = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("reading {what} as a key file hangs"));
        let e = r.unwrap_err();
        assert!(e.contains("is not a regular file"), "{what}: {e}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn two_peers_with_one_address_port_and_fvrf_are_refused() {
    let second = |addr: &str, extra: &str| {
        format!(
            "{BASE}  - name: site-c\n    address: {addr}\n    psk: secret-4567\n{extra}    \
             children:\n      - name: net\n        local_ts: [10.1.0.0/16]\n        \
             remote_ts: [10.3.0.0/16]\n"
        )
    };
    let ps = problems(&second("192.0.2.2", ""));
    has(
        &ps,
        12,
        14,
        "peers[1].address",
        "peer address 192.0.2.2 port 500 is also peer 'site-b''s (at /etc/vpnd/vpnd.yaml:5:14)",
    );
    assert_eq!(ps.len(), 1, "{ps:?}");
    // The same address written another way.
    let ps = problems(&second("'::ffff:192.0.2.2'", ""));
    has(&ps, 12, 14, "peers[1].address", "is also peer 'site-b''s");
    // Another port or another front-door VRF is another peer.
    assert!(load(&second("192.0.2.2", "    port: 4500\n")).is_ok());
    assert!(load(&second("192.0.2.2", "    fvrf: blue\n")).is_ok());
    // Two catch-all peers: the second could never be chosen.
    let any = |s: String| s.replace("address: 192.0.2.2", "address: any\n    remote_id: '%any'");
    let text = any(BASE.to_string())
        + "  - name: site-c\n    address: any\n    psk: secret-4567\n    children:\n      \
           - name: net\n        local_ts: [10.1.0.0/16]\n        remote_ts: [10.3.0.0/16]\n";
    let ps = problems(&text);
    has(&ps, 13, 14, "peers[1].address", "peer address any port 500");
}

#[test]
fn no_peers_is_a_warning() {
    let c = load("local:\n  addresses: [127.0.0.1]\n").unwrap();
    assert!(c.peers.is_empty());
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert_eq!(
        c.warnings[0].to_string(),
        "/etc/vpnd/vpnd.yaml: peers: no peers: vpnd will start and negotiate nothing (only its \
         control socket runs)"
    );
}

#[test]
fn local_addresses_this_host_lacks_are_a_warning() {
    let w = warnings(&BASE.replace("[192.0.2.1]", "[127.0.0.1, 192.0.2.1]"));
    let local: Vec<&Problem> = w.iter().filter(|p| p.field.starts_with("local.")).collect();
    assert_eq!(local.len(), 1, "{w:?}");
    assert_eq!(
        (local[0].line, local[0].column, local[0].field.as_str()),
        (2, 26, "local.addresses[1]")
    );
    assert!(local[0]
        .message
        .starts_with("192.0.2.1 is not an address of this host now"));
}

#[test]
fn control_socket_groups_mode_and_limits() {
    let (g1, g2) = two_local_groups();
    let ctl = |body: &str| format!("control:\n{body}peers: []\n");
    // Defaults: 0660 without a group, 0666 with one (the credentials decide then).
    let c = load(&ctl("  socket: /run/vpnd/vpnd.sock\n")).unwrap();
    assert_eq!((c.control.mode, c.control.group.as_ref()), (0o660, None));
    let c = load(&ctl(&format!("  group: {g1}\n"))).unwrap();
    assert_eq!(c.control.mode, 0o666);
    assert_eq!(c.control.group.as_deref(), Some(g1.as_str()));
    let c = load(&ctl(&format!("  admin_group: {g2}\n"))).unwrap();
    assert_eq!(
        (c.control.mode, c.control.admin_group.as_deref()),
        (0o666, Some(g2.as_str()))
    );

    let ps = problems(&ctl(
        "  group: no-such-group-xyz\n  admin_group: nor-this-one\n",
    ));
    has(
        &ps,
        2,
        10,
        "control.group",
        "no group 'no-such-group-xyz' in /etc/group",
    );
    has(&ps, 3, 16, "control.admin_group", "no group 'nor-this-one'");
    let ps = problems(&ctl(&format!("  group: {g1}\n  mode: 0660\n")));
    has(
        &ps,
        3,
        9,
        "control.mode",
        "0660: with control.group or control.admin_group the socket must be 0666",
    );
    let ps = problems(&ctl("  mode: 0770\n"));
    has(
        &ps,
        2,
        9,
        "control.mode",
        "0770: execute and special bits mean nothing",
    );
    let ps = problems(&ctl("  mode: 0066\n"));
    has(
        &ps,
        2,
        9,
        "control.mode",
        "0066: the owner (vpnd's own user) needs read and write",
    );
    let w = warnings(&ctl("  mode: 0666\n"));
    let p = w.iter().find(|p| p.field == "control.mode").unwrap();
    assert_eq!((p.line, p.column), (2, 9));
    assert!(p
        .message
        .contains("every user may connect, and is refused unless root"));
    let w = warnings(&ctl(&format!("  group: {g1}\n  admin_group: {g1}\n")));
    assert!(w
        .iter()
        .any(|p| p.field == "control.admin_group" && p.message.contains("the same group")));

    let ps = problems(&ctl("  max_clients: 0\n"));
    has(&ps, 2, 16, "control.max_clients", "must be 1 to 512");
    let ps = problems(&ctl("  max_clients: 513\n"));
    has(&ps, 2, 16, "control.max_clients", "must be 1 to 512");
    assert_eq!(
        load(&ctl("  max_clients: 512\n"))
            .unwrap()
            .control
            .max_clients,
        512
    );
}

#[test]
fn control_socket_path_must_be_bindable() {
    let dir = temp_dir("socketpath");
    let ctl = |p: &str| format!("control:\n  socket: {p}\npeers: []\n");
    let long = format!("/run/{}/vpnd.sock", "d".repeat(100));
    let ps = problems(&ctl(&long));
    has(
        &ps,
        2,
        11,
        "control.socket",
        "115 bytes long; a Unix socket path is at most 107",
    );
    let file = dir.join("vpnd.yaml");
    std::fs::write(&file, b"precious").unwrap();
    let ps = problems(&ctl(&file.display().to_string()));
    has(&ps, 2, 11, "control.socket", "exists and is not a socket");
    let under = file.join("vpnd.sock");
    let ps = problems(&ctl(&under.display().to_string()));
    has(&ps, 2, 11, "control.socket", "is not a directory, so");
    // A directory still to be made is fine; outside /run/vpnd, the unit's warning.
    let w = warnings(&ctl(&dir.join("a/b/vpnd.sock").display().to_string()));
    let p = w.iter().find(|p| p.field == "control.socket").unwrap();
    assert_eq!((p.line, p.column), (2, 11));
    assert!(
        p.message.contains("outside /run/vpnd and /var/lib/vpnd"),
        "{p}"
    );
    let w = warnings(&ctl("/run/vpnd/other.sock"));
    assert!(!w.iter().any(|p| p.field == "control.socket"), "{w:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn accounting_journal_path_and_when_full() {
    let dir = temp_dir("journal");
    let text = |journal: &str, accounting_peer: bool| {
        format!(
            "radius:\n  servers:\n    - {{ name: r, address: 192.0.2.30, key: k }}\n\
             accounting:\n  journal: {journal}\n  lists:\n    l: {{ mode: start-stop, groups: [radius] }}\n{}",
            BASE.replace(
                "    psk: secret-0123\n",
                if accounting_peer {
                    "    psk: secret-0123\n    accounting: l\n"
                } else {
                    "    psk: secret-0123\n"
                }
            )
        )
    };
    let d = dir.display().to_string();
    let ps = problems(&text(&d, true));
    has(&ps, 5, 12, "accounting.journal", "is a directory");
    std::fs::write(dir.join("file"), b"").unwrap();
    let under = format!("{d}/file/acct.journal");
    let ps = problems(&text(&under, true));
    has(&ps, 5, 12, "accounting.journal", "is not a directory, so");
    let dev = problems(&text("/dev/null", true));
    has(
        &dev,
        5,
        12,
        "accounting.journal",
        "/dev/null exists and is not a regular file",
    );
    // Not used by any peer: the accounting task does not start, nothing to check.
    assert!(load(&text(&d, false)).is_ok());
    let c = load(&text(&format!("{d}/new/acct.journal"), true)).unwrap();
    let w = c
        .warnings
        .iter()
        .find(|p| p.field == "accounting.journal")
        .unwrap();
    assert_eq!((w.line, w.column), (5, 12));
    assert!(
        w.message.contains("outside /run/vpnd and /var/lib/vpnd"),
        "{w}"
    );
    assert_eq!(c.accounting.when_full, WhenFull::Accept);
    let c = load("accounting:\n  when_full: refuse\n").unwrap();
    assert_eq!(c.accounting.when_full, WhenFull::Refuse);
    let ps = problems("accounting:\n  when_full: maybe\n");
    assert_eq!(ps[0].line, 2, "{ps:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reverse_route_is_a_flag_or_its_options() {
    let base = "peers:\n  - name: p1\n    address: 192.0.2.2\n    psk: lab-secret-0123456789\n    local_id: \"@gw\"\n    children:\n      - { name: lan, local_ts: [198.51.100.0/25], remote_ts: [203.0.113.0/26] }\n";
    let with = |rr: &str| format!("{base}    reverse_route: {rr}\n");
    let c = Config::from_str(base, "t.yaml").unwrap();
    assert_eq!(c.peers[0].reverse_route, None, "off unless asked");
    let c = Config::from_str(&with("true"), "t.yaml").unwrap();
    assert_eq!(
        c.peers[0].reverse_route,
        Some(ReverseRoute {
            table: MAIN_TABLE,
            metric: 0,
            remote_peer: false
        })
    );
    let c = Config::from_str(
        &with("{ table: 220, metric: 50, remote_peer: true }"),
        "t.yaml",
    )
    .unwrap();
    assert_eq!(
        c.peers[0].reverse_route,
        Some(ReverseRoute {
            table: 220,
            metric: 50,
            remote_peer: true
        })
    );
    assert_eq!(
        Config::from_str(&with("false"), "t.yaml").unwrap().peers[0].reverse_route,
        None
    );
    let e = Config::from_str(&with("{ table: 255 }"), "t.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("t.yaml:8:") && e.contains("reverse_route.table") && e.contains("reserved"),
        "{e}"
    );
    let e = Config::from_str(&with("{ tabel: 220 }"), "t.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("tabel"), "{e}");
}

#[test]
fn route_based_peers_name_an_interface_and_its_if_id() {
    let peer = |name: &str, addr: &str, extra: &str| {
        format!("  - name: {name}\n    address: {addr}\n    psk: lab-secret-0123456789\n    local_id: \"@gw\"\n{extra}    children:\n      - {{ name: lan, local_ts: [0.0.0.0/0], remote_ts: [0.0.0.0/0] }}\n")
    };
    let ok = format!(
        "peers:\n{}{}",
        peer("a", "192.0.2.2", "    interface: ipsec1\n    if_id: 7\n"),
        peer("b", "192.0.2.3", "    interface: ipsec1\n    if_id: 7\n")
    );
    let c = Config::from_str(&ok, "t.yaml").unwrap();
    assert_eq!(
        c.peers[1].interface,
        Some(XfrmInterface {
            name: "ipsec1".into(),
            if_id: 7
        }),
        "two peers may share one interface"
    );
    let bad = |a: &str, b: &str| {
        Config::from_str(
            &format!(
                "peers:\n{}{}",
                peer("a", "192.0.2.2", a),
                peer("b", "192.0.2.3", b)
            ),
            "t.yaml",
        )
        .unwrap_err()
        .to_string()
    };
    let e = bad(
        "    interface: ipsec1\n    if_id: 7\n",
        "    interface: ipsec2\n    if_id: 7\n",
    );
    assert!(
        e.contains("t.yaml:15:12") && e.contains("if_id 7 is interface ipsec1's"),
        "{e}"
    );
    let e = bad(
        "    interface: ipsec1\n    if_id: 7\n",
        "    interface: ipsec1\n    if_id: 8\n",
    );
    assert!(e.contains("interface ipsec1 has if_id 7 already"), "{e}");
    let e = bad("    interface: ipsec1\n", "");
    assert!(
        e.contains("peers[0].if_id") && e.contains("required with interface"),
        "{e}"
    );
    let e = bad("    if_id: 3\n", "");
    assert!(e.contains("needs interface"), "{e}");
    let e = bad("    interface: a/b\n    if_id: 1\n", "");
    assert!(e.contains("not an interface name"), "{e}");
    let e = bad("    interface: ipsec1\n    if_id: 0\n", "");
    assert!(e.contains("use 1 or more"), "{e}");
}

#[test]
fn a_route_based_peers_ivrf_is_a_vrf_with_a_table() {
    let doc = |vrfs: &str, ivrf: &str| {
        format!("{vrfs}peers:\n  - name: a\n    address: 192.0.2.2\n    psk: lab-secret-0123456789\n    local_id: \"@gw\"\n    interface: ipsec1\n    if_id: 1\n    ivrf: {ivrf}\n    children:\n      - {{ name: lan, local_ts: [0.0.0.0/0], remote_ts: [0.0.0.0/0] }}\n")
    };
    let c = Config::from_str(&doc("vrfs:\n  cust-a: 1001\n", "cust-a"), "t.yaml").unwrap();
    assert_eq!(c.vrfs.get("cust-a"), Some(&1001));
    let e = Config::from_str(&doc("", "cust-a"), "t.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("t.yaml:8:") && e.contains("must be in vrfs"),
        "{e}"
    );
    let e = Config::from_str(&doc("vrfs:\n  cust-a: 254\n", "cust-a"), "t.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("vrfs.cust-a") && e.contains("the kernel's"),
        "{e}"
    );
    let e = Config::from_str(
        &doc("vrfs:\n  cust-a: 7\n  cust-b: 7\n", "cust-a"),
        "t.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("table 7 is VRF cust-a's"), "{e}");
}

#[test]
fn a_route_based_peer_may_have_reverse_routes() {
    let doc = |rr: &str| {
        format!("vrfs:\n  cust-a: 1001\npeers:\n  - name: a\n    address: 192.0.2.2\n    psk: lab-secret-0123456789\n    local_id: \"@gw\"\n    interface: ipsec1\n    if_id: 1\n    ivrf: cust-a\n    reverse_route: {rr}\n    children:\n      - {{ name: lan, local_ts: [0.0.0.0/0], remote_ts: [0.0.0.0/0] }}\n")
    };
    let c = Config::from_str(&doc("{ metric: 5, remote_peer: true }"), "t.yaml").unwrap();
    assert_eq!(
        c.peers[0].reverse_route,
        Some(ReverseRoute {
            table: MAIN_TABLE,
            metric: 5,
            remote_peer: true
        })
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // With an ivrf the routes go in its table: a table of reverse_route's own is said unused.
    let c = Config::from_str(&doc("{ table: 220 }"), "t.yaml").unwrap();
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    let w = c.warnings[0].to_string();
    assert!(
        w.contains("t.yaml:11:") && w.contains("reverse_route.table") && w.contains("ivrf"),
        "{w}"
    );
}

#[test]
fn a_front_door_vrf_in_vrfs_needs_a_route_based_peer() {
    let doc = |route_based: &str| {
        format!("vrfs:\n  outside: 100\npeers:\n  - name: a\n    address: 192.0.2.2\n    psk: lab-secret-0123456789\n    local_id: \"@gw\"\n{route_based}    fvrf: outside\n    children:\n      - {{ name: lan, local_ts: [0.0.0.0/0], remote_ts: [0.0.0.0/0] }}\n")
    };
    let c = Config::from_str(&doc("    interface: ipsec1\n    if_id: 1\n"), "t.yaml").unwrap();
    assert_eq!(c.front_vrf(&c.peers[0]), Some("outside"));
    let e = Config::from_str(&doc(""), "t.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("t.yaml:8:") && e.contains("needs a route-based peer"),
        "{e}"
    );
    // An fvrf that is not a VRF of `vrfs` stays a label (sessions, syslog, RADIUS).
    let label = doc("").replace("vrfs:\n  outside: 100\n", "");
    let c = Config::from_str(&label, "t.yaml").unwrap();
    assert_eq!(c.peers[0].fvrf.as_deref(), Some("outside"));
    assert_eq!(c.front_vrf(&c.peers[0]), None);
}

/// The configuration builds the engine's policy itself (issue 9): the daemon only passes
/// it on.
#[test]
fn a_peer_builds_its_engine_policy() {
    let c = load(&with(
        "    psk: secret-0123\n",
        "        local_ts: [192.0.2.1/32]\n        remote_ts: [192.0.2.2/32]\n        mode: transport\n",
    ))
    .unwrap();
    let e = c.peers[0].engine_policy();
    assert_eq!(e.name, "site-b");
    assert_eq!(
        e.remote,
        crate::ike::RemoteMatch::Single("192.0.2.2".parse().unwrap())
    );
    // The file counts retransmissions, the engine counts sends.
    assert_eq!(e.retransmit.tries, c.peers[0].ike.retransmit.tries + 1);
    assert_eq!(e.ike_proposals, c.peers[0].ike.proposals);
    let ch = &e.children[0];
    assert_eq!(ch.mode, crate::ike::Mode::Transport);
    assert_eq!(ch.lifetime, std::time::Duration::from_secs(3600));
    assert_eq!(ch.lifetime_bytes, None);
    assert_eq!(ch.local_ts.len(), 1);
    assert!(e.initial_contact);
}

#[test]
fn metrics_are_off_by_default_and_listen_on_tcp_or_a_unix_socket() {
    assert_eq!(load("peers: []\n").unwrap().metrics, None);
    let c = load("metrics:\n  listen: 127.0.0.1:9469\npeers: []\n").unwrap();
    assert_eq!(
        c.metrics.unwrap().listen,
        MetricsListen::Tcp("127.0.0.1:9469".parse().unwrap())
    );
    let c = load("metrics:\n  listen: /run/vpnd/metrics.sock\npeers: []\n").unwrap();
    assert_eq!(
        c.metrics.unwrap().listen,
        MetricsListen::Unix("/run/vpnd/metrics.sock".into())
    );
    // Reachable from other hosts: loads, with a warning at the value.
    let w = warnings("metrics:\n  listen: 0.0.0.0:9469\npeers: []\n");
    let p = w.iter().find(|p| p.field == "metrics.listen").unwrap();
    assert_eq!((p.line, p.column), (2, 11), "{p}");
    assert!(p.message.contains("without authentication"), "{p}");
}

#[test]
fn a_bad_metrics_listen_is_refused_with_its_location() {
    let ps = problems("metrics:\n  listen: localhost\npeers: []\n");
    has(&ps, 2, 11, "metrics.listen", "not an address and port");
    let ps = problems("metrics:\n  listen: 127.0.0.1\npeers: []\n");
    has(&ps, 2, 11, "metrics.listen", "not an address and port");
    let ps = problems("metrics: {}\npeers: []\n");
    assert_eq!(ps[0].field, "metrics.listen", "{ps:?}");
    assert!(ps[0].message.contains("missing"), "{ps:?}");
    let long = format!("/run/{}.sock", "x".repeat(120));
    let ps = problems(&format!("metrics:\n  listen: {long}\npeers: []\n"));
    has(
        &ps,
        2,
        11,
        "metrics.listen",
        "a Unix socket path is at most",
    );
    let ps = problems("metrics:\n  listen: /run/vpnd/vpnd.sock\npeers: []\n");
    has(&ps, 2, 11, "metrics.listen", "the control socket's path");
    let ps = problems("metrics:\n  listen: 127.0.0.1:9469\n  tls: yes\npeers: []\n");
    assert!(ps[0].message.contains("tls"), "{ps:?}");
}

#[test]
fn a_psk_file_the_units_user_cannot_read_is_told() {
    use super::validate::unit_user_can_read;
    let vpnd = (998, 997);
    assert!(
        unit_user_can_read(vpnd, 998, 0, 0o600),
        "vpnd's own 0600 file"
    );
    assert!(unit_user_can_read(vpnd, 0, 997, 0o640), "root:vpnd 0640");
    assert!(
        !unit_user_can_read(vpnd, 0, 0, 0o600),
        "root's 0600: vpnd cannot read it"
    );
    assert!(!unit_user_can_read(vpnd, 0, 997, 0o600), "root:vpnd 0600");
    assert!(
        !unit_user_can_read(vpnd, 998, 0, 0o200),
        "vpnd's, write-only"
    );
}

#[test]
fn dos_defaults_are_strongswans() {
    let c = load(BASE).unwrap();
    assert_eq!(c.dos, crate::ike::DosConfig::default());
    assert_eq!(c.dos.cookie_threshold, 10);
    assert_eq!(c.dos.block_threshold, 5);
    assert_eq!(c.dos.half_open_timeout, Duration::from_secs(30));
}

#[test]
fn dos_section_sets_every_bound() {
    let c = load(&format!(
        "{BASE}dos:\n  cookie_threshold: 50\n  block_threshold: 0\n  half_open_limit: 20000\n  \
         half_open_timeout: 1m\n  cookie_secret_lifetime: 5m\n  cookie_secret_uses: 500\n"
    ))
    .unwrap();
    assert_eq!(
        c.dos,
        crate::ike::DosConfig {
            cookie_threshold: 50,
            block_threshold: 0,
            half_open_limit: 20_000,
            half_open_timeout: Duration::from_secs(60),
            cookie_secret_lifetime: Duration::from_secs(300),
            cookie_secret_uses: 500,
        }
    );
    assert!(
        !c.warnings.iter().any(|w| w.field.starts_with("dos")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn dos_values_are_checked_where_written() {
    let ps = problems(&format!(
        "{BASE}dos:\n  cookie_threshold: 2000000\n  half_open_timeout: 0s\n  \
         cookie_secret_uses: 0\n  cookie_secret_lifetime: 2d\n"
    ));
    has(&ps, 12, 21, "dos.cookie_threshold", "must be 0 to 1000000");
    has(&ps, 13, 22, "dos.half_open_timeout", "at least 1 s");
    has(
        &ps,
        14,
        23,
        "dos.cookie_secret_uses",
        "must be 1 to 1000000",
    );
    has(&ps, 15, 27, "dos.cookie_secret_lifetime", "at most");
    let ps = problems(&format!("{BASE}dos:\n  cookie_threshold: -1\n"));
    assert!(ps.iter().any(|p| p.line == 12), "{ps:?}");
    let ps = problems(&format!("{BASE}dos:\n  cookies: 10\n"));
    assert!(
        ps.iter()
            .any(|p| p.line == 12 && p.message.contains("cookies")),
        "{ps:?}"
    );
}

#[test]
fn dos_bounds_that_defeat_cookies_are_warned_about() {
    let w = warnings(&format!(
        "{BASE}dos:\n  cookie_threshold: 0\n  block_threshold: 5\n"
    ));
    has(&w, 13, 20, "dos.block_threshold", "unproven");
    let w = warnings(&format!("{BASE}dos:\n  half_open_limit: 10\n"));
    has(
        &w,
        12,
        20,
        "dos.half_open_limit",
        "reached before cookie_threshold",
    );
}

/// NAT traversal (issue 11): `encap` and `nat_keepalive` under `ike_defaults:` or a peer's
/// `ike:`, the peer's own winning; 0 turns keepalives off; errors at their location.
#[test]
fn nat_traversal_options_default_inherit_and_are_checked() {
    let c = load(BASE).unwrap();
    assert!(!c.peers[0].ike.encap);
    assert_eq!(c.peers[0].ike.nat_keepalive, Some(Duration::from_secs(20)));
    let e = c.peers[0].engine_policy();
    assert_eq!(
        (e.nat.encap, e.nat.keepalive),
        (false, Some(Duration::from_secs(20)))
    );
    let text = format!(
        "ike_defaults:\n  encap: true\n  nat_keepalive: 45s\n{}",
        BASE.replace(
            "    psk: secret-0123\n",
            "    psk: secret-0123\n    ike:\n      nat_keepalive: 0\n",
        )
    );
    let c = load(&text).unwrap();
    assert!(c.peers[0].ike.encap, "inherited from ike_defaults");
    assert_eq!(c.peers[0].ike.nat_keepalive, None, "0: off");
    let e = c.peers[0].engine_policy();
    assert!(e.nat.encap && e.nat.keepalive.is_none());
    let ps = problems(&BASE.replace(
        "    psk: secret-0123\n",
        "    psk: secret-0123\n    ike:\n      nat_keepalive: 2h\n",
    ));
    has(&ps, 8, 22, "peers[0].ike.nat_keepalive", "at most 3600 s");
    let ps = problems("ike_defaults:\n  nat_keepalive: often\n");
    has(&ps, 2, 18, "ike_defaults.nat_keepalive", "");
    let ps = problems("ike_defaults:\n  encap: maybe\n");
    assert!(ps.iter().any(|p| p.line == 2), "{ps:?}");
}

/// IKE fragmentation (issue 11, RFC 7383): `fragmentation` and `fragment_size` under
/// `ike_defaults:` or a peer's `ike:`, on at 1280 by default; sizes outside 576..65535 refused
/// at their location.
#[test]
fn fragmentation_options_default_inherit_and_are_checked() {
    let c = load(BASE).unwrap();
    let e = c.peers[0].engine_policy();
    assert_eq!((e.frag.enabled, e.frag.size), (true, 1280));
    let text = format!(
        "ike_defaults:\n  fragment_size: 1400\n{}",
        BASE.replace(
            "    psk: secret-0123\n",
            "    psk: secret-0123\n    ike:\n      fragmentation: false\n",
        )
    );
    let e = load(&text).unwrap().peers[0].engine_policy();
    assert_eq!(
        (e.frag.enabled, e.frag.size),
        (false, 1400),
        "size inherited"
    );
    let ps = problems(&BASE.replace(
        "    psk: secret-0123\n",
        "    psk: secret-0123\n    ike:\n      fragment_size: 500\n",
    ));
    has(
        &ps,
        8,
        22,
        "peers[0].ike.fragment_size",
        "between 576 and 65535",
    );
    let ps = problems("ike_defaults:\n  fragment_size: 70000\n");
    has(
        &ps,
        2,
        18,
        "ike_defaults.fragment_size",
        "between 576 and 65535",
    );
    let ps = problems("ike_defaults:\n  fragmentation: sometimes\n");
    assert!(ps.iter().any(|p| p.line == 2), "{ps:?}");
}

const REMOTE_ACCESS: &str = "local:
  addresses: [192.0.2.1]
pools:
  addressA:
    begin: 10.13.13.1
    end: 10.13.13.253
  guests:
    begin: 10.14.0.1
    end: 10.14.0.9
peers:
  - name: cclient
    address: any
    remote_id: '*@cclient'
    psk: cclient-secret-0123456789
    group: cclient
    pool: addressA
    dns: [198.51.100.53, '2001:db8::53']
    children:
      - name: rw
        local_ts: [198.51.100.0/25]
        remote_ts: [0.0.0.0/0]
  - name: guests
    address: any
    remote_id: '*@guest'
    psk: guest-secret-0123456789
    pool: guests
    children:
      - name: rw
        local_ts: [198.51.100.0/25]
        remote_ts: [0.0.0.0/0]
";

#[test]
fn pools_and_remote_access_profiles_load() {
    let c = load(REMOTE_ACCESS).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.pools.len(), 2);
    assert_eq!(c.pools[0].name, "addressA");
    assert_eq!(c.pools[0].first, IpAddr::V4(Ipv4Addr::new(10, 13, 13, 1)));
    assert_eq!(c.pools[0].last, IpAddr::V4(Ipv4Addr::new(10, 13, 13, 253)));
    let p = &c.peers[0];
    assert_eq!(p.remote_id, None, "a pattern is no single identity");
    let ra = &p.remote_access;
    assert_eq!(ra.identity.as_ref().map(|i| i.as_str()), Some("*@cclient"));
    assert_eq!(ra.pool.as_deref(), Some("addressA"));
    assert_eq!(ra.dns.len(), 2);
    // Two profiles at `any`, told apart by identity: not the "same address twice" error.
    assert_eq!(c.peers.len(), 2);
    let e = c.peers[0].engine_policy();
    assert!(e
        .identity_fit(&crate::ike::codec::Identity::UserFqdn("joe@cclient".into()))
        .is_some());
    assert!(e
        .identity_fit(&crate::ike::codec::Identity::UserFqdn("joe@guest".into()))
        .is_none());
}

#[test]
fn ipv6_pools_by_range_or_prefix_and_a_dual_stack_profile() {
    let text = REMOTE_ACCESS
        .replace(
            "  guests:\n",
            "  v6:\n    prefix: '2001:db8:77::/64'\n  v6r:\n    begin: '2001:db8:78::10'\n    end: '2001:db8:78::1f'\n  v4p:\n    prefix: 10.20.0.0/24\n  guests:\n",
        )
        .replace("pool: addressA\n", "pool: addressA\n    ipv6_pool: v6\n");
    let c = load(&text).unwrap_or_else(|e| panic!("{e}"));
    let by = |n: &str| c.pools.iter().find(|p| p.name == n).unwrap().clone();
    assert_eq!(
        (by("v6").first, by("v6").last),
        (
            "2001:db8:77::1".parse().unwrap(),
            "2001:db8:77::ffff:ffff:ffff:ffff".parse().unwrap()
        )
    );
    assert_eq!(by("v6r").last, "2001:db8:78::1f".parse::<IpAddr>().unwrap());
    assert_eq!(
        (by("v4p").first, by("v4p").last),
        ("10.20.0.1".parse().unwrap(), "10.20.0.254".parse().unwrap())
    );
    let ra = &c.peers[0].remote_access;
    assert_eq!(
        (ra.pool.as_deref(), ra.pool6.as_deref()),
        (Some("addressA"), Some("v6"))
    );
    // The wrong family, a prefix too large, both forms at once, overlapping IPv6 pools.
    let ps = problems(&text.replace("ipv6_pool: v6", "ipv6_pool: addressA"));
    assert!(
        ps.iter().any(|p| p.field == "peers[0].ipv6_pool"
            && p.message.contains("'addressA' is not an IPv6 pool")),
        "{ps:?}"
    );
    let ps = problems(&text.replace("pool: addressA\n", "pool: v6\n"));
    assert!(ps.iter().any(|p| p.field == "peers[0].pool"), "{ps:?}");
    let ps = problems(&text.replace("2001:db8:77::/64", "2001:db8:77::/48"));
    assert!(
        ps.iter()
            .any(|p| p.field == "pools.v6.prefix" && p.message.contains("/64 to /126")),
        "{ps:?}"
    );
    let ps = problems(&text.replace(
        "    prefix: 10.20.0.0/24\n",
        "    prefix: 10.20.0.0/24\n    begin: 10.20.0.1\n",
    ));
    assert!(ps.iter().any(|p| p.message.contains("not both")), "{ps:?}");
    let ps = problems(
        &text
            .replace("2001:db8:78::10", "2001:db8:77::10")
            .replace("2001:db8:78::1f", "2001:db8:77::1f"),
    );
    assert!(
        ps.iter().any(|p| p.message.contains("overlaps pool 'v6'")),
        "{ps:?}"
    );
}

#[test]
fn bad_pools_are_refused_with_their_location() {
    let text = REMOTE_ACCESS
        .replace("begin: 10.14.0.1", "begin: 10.13.13.200")
        .replace("end: 10.14.0.9", "end: 10.13.14.9");
    let ps = problems(&text);
    assert!(
        ps.iter()
            .any(|p| p.field == "pools.guests" && p.message.contains("overlaps pool 'addressA'")),
        "{ps:?}"
    );
    let ps = problems(&REMOTE_ACCESS.replace("end: 10.14.0.9", "end: 10.13.0.1"));
    assert!(
        ps.iter()
            .any(|p| p.field == "pools.guests.end" && p.message.contains("before begin")),
        "{ps:?}"
    );
    let ps = problems(&REMOTE_ACCESS.replace("end: 10.14.0.9", "end: '2001:db8::9'"));
    assert!(
        ps.iter().any(|p| p.message.contains("different families")),
        "{ps:?}"
    );
    let ps = problems(&REMOTE_ACCESS.replace("end: 10.14.0.9", "end: 10.255.0.0"));
    assert!(
        ps.iter().any(|p| p.message.contains("at most 1048576")),
        "{ps:?}"
    );
    let ps = problems(&REMOTE_ACCESS.replace("pool: guests", "pool: nope"));
    let p = ps
        .iter()
        .find(|p| p.field == "peers[1].pool")
        .expect("pool problem");
    assert_eq!(p.line, 26);
    assert!(
        p.message
            .contains("no IPv4 pool 'nope' in pools (defined: addressA, guests)"),
        "{p}"
    );
    let ps = problems(&REMOTE_ACCESS.replace("dns: [198.51.100.53,", "dns: [dns.example,"));
    assert!(ps.iter().any(|p| p.field == "peers[0].dns[0]"), "{ps:?}");
    let ps = problems(&REMOTE_ACCESS.replace("  guests:\n", "  'bad name':\n"));
    assert!(
        ps.iter().any(|p| p.message.contains("a pool name is")),
        "{ps:?}"
    );
}

#[test]
fn two_catch_all_profiles_without_identities_are_still_refused() {
    let text = REMOTE_ACCESS
        .replace("    remote_id: '*@cclient'\n", "")
        .replace("    remote_id: '*@guest'\n", "");
    let ps = problems(&text);
    assert!(
        ps.iter()
            .any(|p| p.message.contains("peer address any port 500")),
        "{ps:?}"
    );
}

/// `auth: {remote: eap-radius}`: the peer's EAP goes to a RADIUS group (IOS `client
/// authentication list`), on its servers' auth_port.
#[test]
fn eap_radius_auth_needs_a_group_with_servers_and_a_responder() {
    let radius = "radius:\n  servers:\n    - { name: r1, address: 192.0.2.10, key: testing123 }\n";
    let ok = format!(
        "{}{radius}",
        with(
            "    psk: secret-0123\n    auth: { remote: eap-radius }\n",
            "        local_ts: [10.1.0.0/16]\n        remote_ts: [10.2.0.0/16]\n"
        )
    );
    let c = load(&ok).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.peers[0].auth.remote,
        RemoteAuthConfig::Eap(crate::ike::EapIdentity::IkeId)
    );
    assert_eq!(c.peers[0].auth_group.as_deref(), Some("radius"));
    assert_eq!(c.radius.servers[0].auth_port, 1812);
    assert!(matches!(
        c.peers[0].engine_policy().remote_auth,
        crate::ike::RemoteAuth::Eap(crate::ike::EapIdentity::IkeId)
    ));
    let c = load(&ok.replace("eap-radius }", "eap-radius, eap_identity: request }")).unwrap();
    assert_eq!(
        c.peers[0].auth.remote,
        RemoteAuthConfig::Eap(crate::ike::EapIdentity::Request)
    );
    // No such group; no servers at all.
    let ps = problems(&ok.replace(
        "{ remote: eap-radius }",
        "{ remote: eap-radius, radius_group: nosuch }",
    ));
    has(
        &ps,
        7,
        47,
        "peers[0].auth.radius_group",
        "no RADIUS server group 'nosuch'",
    );
    let ps = problems(&with(
        "    psk: secret-0123\n    auth: { remote: eap-radius }\n",
        "        local_ts: [10.1.0.0/16]\n        remote_ts: [10.2.0.0/16]\n",
    ));
    assert!(
        ps.iter().any(|p| p.field == "peers[0].auth.radius_group"),
        "{ps:?}"
    );
    // The client initiates, never the gateway.
    let ps = problems(&ok.replace("    auth:", "    start: initiate\n    auth:"));
    assert!(
        ps.iter()
            .any(|p| p.field == "peers[0].start" && p.message.contains("only responds")),
        "{ps:?}"
    );
    // radius_group only with EAP; an unknown method is refused where it is written.
    let ps = problems(&ok.replace("remote: eap-radius", "remote: psk, radius_group: radius"));
    assert!(
        ps.iter().any(|p| p.field == "peers[0].auth.radius_group"),
        "{ps:?}"
    );
    assert!(load(&ok.replace("eap-radius", "eap-tls")).is_err());
    // Without auth: PSK, as before.
    let c = load(BASE).unwrap();
    assert!(matches!(c.peers[0].auth.remote, RemoteAuthConfig::Psk(_)));
    assert_eq!(c.peers[0].auth_group, None);
}

fn psk_of(p: &PeerConfig) -> &[u8] {
    match &p.auth.local {
        LocalAuthConfig::Psk(k) => k.expose(),
        LocalAuthConfig::Certificate { .. } => panic!("no psk"),
    }
}

/// `auth: pubkey` both ways: certificate, key and trustpoint files (made by rcgen), read
/// relative to the configuration; each mistake reported at its line.
#[test]
fn certificates_and_trustpoints() {
    use crate::ike::auth::testca::{ca, leaf, Leaf};
    let dir = temp_dir("certs");
    let lab = ca("Lab CA");
    let (der, key) = leaf(&lab, &Leaf::default());
    let (_, other_key) = leaf(&lab, &Leaf::default());
    let cert_pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        b64(&der)
    );
    write_mode(&dir.join("gw.pem"), cert_pem.as_bytes(), 0o644);
    write_mode(&dir.join("gw.key"), key.as_bytes(), 0o600);
    write_mode(&dir.join("other.key"), other_key.as_bytes(), 0o600);
    write_mode(&dir.join("open.key"), key.as_bytes(), 0o644);
    write_mode(&dir.join("ca.pem"), lab.cert.pem().as_bytes(), 0o644);
    let cfg = dir.join("vpnd.yaml");
    let text = |key: &str, tp: &str| {
        format!(
            "local:\n  addresses: [192.0.2.1]\n\
             trustpoints:\n  - name: lab\n    cas: [ca.pem]\n\
             peers:\n  - name: site-b\n    address: 192.0.2.2\n\
             \x20   auth: {{ local: pubkey, remote: pubkey }}\n\
             \x20   certificate: gw.pem\n    private_key: {key}\n    trustpoint: {tp}\n\
             \x20   children:\n      - name: net\n        local_ts: [10.1.0.0/16]\n        remote_ts: [10.2.0.0/16]\n"
        )
    };
    let c = Config::from_str(&text("gw.key", "lab"), &cfg).unwrap();
    let p = &c.peers[0];
    assert!(matches!(&p.auth.local, LocalAuthConfig::Certificate { .. }));
    assert!(matches!(&p.auth.remote, RemoteAuthConfig::Certificate(t) if t.name == "lab"));
    assert_eq!(p.remote_id, None, "any identity the certificate names");
    assert!(
        matches!(&p.local_id, Identity::Other { kind, .. } if *kind == crate::ike::codec::IdType::DER_ASN1_DN),
        "our identity defaults to the certificate's subject"
    );
    let policy = p.engine_policy();
    assert!(policy.local_auth.is_certificate() && policy.remote_auth.is_certificate());

    let errs = |t: &str| match Config::from_str(t, &cfg) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.problems().to_vec(),
    };
    let ps = errs(&text("other.key", "lab"));
    at(&ps, 11, 18, "peers[0].private_key", "does not belong");
    let ps = errs(&text("open.key", "lab"));
    at(&ps, 11, 18, "peers[0].private_key", "chmod o-rw");
    let ps = errs(&text("missing.key", "lab"));
    at(&ps, 11, 18, "peers[0].private_key", "cannot read");
    let ps = errs(&text("gw.key", "nope"));
    at(&ps, 12, 17, "peers[0].trustpoint", "no trustpoint named");
    let ps = errs(&text("gw.key", "lab").replace("remote: pubkey", "remote: cert"));
    at(
        &ps,
        9,
        36,
        "peers[0].auth.remote",
        "psk, pubkey or eap-radius",
    );
    assert_eq!(ps.len(), 1, "one mistake, one problem: {ps:?}");
    // A PSK given where no side uses one.
    let ps = errs(&text("gw.key", "lab").replace(
        "    trustpoint: lab\n",
        "    trustpoint: lab\n    psk: secret-0123\n",
    ));
    at(
        &ps,
        13,
        10,
        "peers[0].psk",
        "no side authenticates with psk",
    );
    // Certificate one way, PSK the other: the PSK is required.
    let mixed = text("gw.key", "lab").replace("remote: pubkey", "remote: psk");
    let ps = errs(&mixed);
    at(
        &ps,
        12,
        17,
        "peers[0].trustpoint",
        "only with auth: { remote: pubkey }",
    );
    let ps = errs(&mixed.replace("    trustpoint: lab\n", ""));
    at(&ps, 7, 5, "peers[0].psk", "required: psk or psk_file");
    // An expired certificate of ours loads, with a warning at its line.
    let (old, old_key) = leaf(
        &lab,
        &Leaf {
            from: (2020, 1, 1),
            to: (2021, 1, 1),
            ..Default::default()
        },
    );
    write_mode(
        &dir.join("gw.pem"),
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            b64(&old)
        )
        .as_bytes(),
        0o644,
    );
    write_mode(&dir.join("gw.key"), old_key.as_bytes(), 0o600);
    let c = Config::from_str(&text("gw.key", "lab"), &cfg).unwrap();
    assert!(
        c.warnings.iter().any(|w| w.line == 10
            && w.field == "peers[0].certificate"
            && w.message.contains("not valid now")),
        "{:?}",
        c.warnings
    );
}

/// As `has`, for a file of another name.
#[track_caller]
fn at(ps: &[Problem], line: u64, column: u64, field: &str, msg: &str) {
    assert!(
        ps.iter().any(|p| p.line == line
            && p.column == column
            && p.field == field
            && p.message.contains(msg)),
        "no problem {line}:{column} {field}: ..{msg}.. in:\n{}",
        ps.iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Base64 for PEM bodies in tests.
fn b64(b: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s.as_bytes()
        .chunks(64)
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Windows' legacy proposal (issue 12 item 7): refused unless the peer opts in, for IKE and
/// for its children's ESP; `ike_defaults.allow_legacy` is inherited; never in the defaults.
#[test]
fn legacy_proposals_only_when_allowed() {
    let legacy_ike = "    psk: secret-0123\n    ike:\n      proposals: [aes256-sha1-modp1024]\n";
    let ps = problems(&BASE.replace("    psk: secret-0123\n", legacy_ike));
    has(
        &ps,
        8,
        19,
        "peers[0].ike.proposals[0]",
        "NegotiateDH2048_AES256",
    );
    let allowed = "    psk: secret-0123\n    ike:\n      allow_legacy: true\n      proposals: [aes256-sha1-modp1024]\n";
    let text = BASE.replace("    psk: secret-0123\n", allowed).replace(
        "[10.2.0.0/16]\n",
        "[10.2.0.0/16]\n        esp: [aes256-sha1]\n",
    );
    let c = load(&text).unwrap();
    let p = &c.peers[0];
    assert!(p.ike.allow_legacy);
    assert_eq!(
        p.ike.proposals[0].to_string(),
        "aes256-sha1-prfsha1-modp1024"
    );
    assert_eq!(p.children[0].esp[0].to_string(), "aes256-sha1");
    // ESP of a peer that did not opt in.
    let ps = problems(&BASE.replace(
        "[10.2.0.0/16]\n",
        "[10.2.0.0/16]\n        esp: [aes256-sha1]\n",
    ));
    has(&ps, 11, 15, "peers[0].children[0].esp[0]", "sha1 is legacy");
    // Inherited from ike_defaults.
    let text = format!(
        "ike_defaults:\n  allow_legacy: true\n{}",
        BASE.replace("    psk: secret-0123\n", legacy_ike)
    );
    assert!(load(&text).unwrap().peers[0].ike.allow_legacy);
    // The defaults name none of it.
    let c = load(BASE).unwrap();
    assert!(!c.peers[0].ike.allow_legacy);
    assert!(c.peers[0]
        .ike
        .proposals
        .iter()
        .all(|p| p.legacy().is_empty()));
    assert!(c.peers[0].children[0]
        .esp
        .iter()
        .all(|p| p.legacy().is_empty()));
}
