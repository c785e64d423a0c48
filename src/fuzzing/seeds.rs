//! Valid inputs for every target, made by the code itself: a real handshake and the life of
//! a tunnel between two engines (deterministic randomness, so the same bytes every run),
//! the example configurations, every control request. Mutations of these reach far deeper
//! than random bytes do.

use std::path::Path;

use super::lab::{self, Program, Side};
use super::SkFixture;
use crate::control::proto::{self, Command, Filter, SessionDisplay};
use crate::ike::codec::{Message, PayloadList};
use crate::ike::crypto::SkCipher;

/// The targets, by the names `fuzz/fuzz_targets/` and the corpus directories use.
pub const TARGETS: [&str; 9] = [
    "fragments",
    "ike_message",
    "sk_payload",
    "endpoint",
    "xfrm_dump",
    "radius_response",
    "radius_access",
    "control_line",
    "config",
];

/// Every datagram of a tunnel's life (both suites), and each decrypted inner chain with its
/// first payload type in front.
pub fn ike_messages() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for suite in 0..lab::SUITES.len() as u8 {
        let (_, lab) = lab::honest(suite);
        for (_, _, d) in &lab.transcript {
            if !out.contains(d) {
                out.push(d.clone());
            }
        }
        for r in lab.record.iter().flatten() {
            let mut s = vec![r.first_inner.0];
            s.extend_from_slice(&r.chain);
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out
}

/// The keys of a real IKE SA: fixtures 0/1 are suite 0 (GCM) initiator->responder and
/// responder->initiator, 2/3 suite 1 (CBC + HMAC).
pub(crate) fn sk_fixture(n: u8) -> SkFixture {
    let suite = n / 2;
    let to_responder = n.is_multiple_of(2);
    let mut l = lab::Lab::new(lab::SUITES[usize::from(suite) % lab::SUITES.len()]);
    l.op(7, &[0, 0]); // the initiator starts
    l.deliver(2); // IKE_SA_INIT request and response: the initiator's IKE_AUTH is on the wire
    let (_, auth_req) = l.wire.front().cloned().expect("IKE_AUTH request");
    // The SK keys now: once up, an SA keeps only SK_d (the ciphers hold their own copies).
    let r = l.r.sas().next().expect("the responder's IKE SA");
    let k = &r.keys.as_ref().expect("keys after IKE_SA_INIT").keys;
    let (s, ei, ai, er, ar) = (
        k.suite,
        k.sk_ei.clone(),
        k.sk_ai.clone(),
        k.sk_er.clone(),
        k.sk_ar.clone(),
    );
    l.deliver(1); // the responder answers it
    let (_, auth_resp) = l.wire.front().cloned().expect("IKE_AUTH response");
    let (datagram, e, a) = if to_responder {
        (auth_req.data, &ei, &ai)
    } else {
        (auth_resp.data, &er, &ar)
    };
    let cipher = SkCipher::new(s.encr, s.integ, e, a).expect("the SA's own keys");
    let msg = Message::decode(&datagram).expect("a real IKE_AUTH decodes");
    let sk = msg.payloads.sk().expect("IKE_AUTH is encrypted");
    let prefix = &datagram[..datagram.len() - sk.body.len()];
    let plain = cipher
        .decrypt(prefix, &sk.body)
        .expect("our own keys open it");
    SkFixture {
        header: msg.header,
        first_inner: sk.first_inner,
        auth: datagram.clone(),
        plain,
        cipher,
        encr: s.encr,
        integ: s.integ,
        sk_e: e.to_vec(),
        sk_a: a.to_vec(),
    }
}

/// Real encrypted IKE_AUTH messages (mode 0) and their plaintexts to seal (mode 1), with
/// and without padding.
pub fn sk_inputs() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (n, f) in super::sk_fixtures().iter().enumerate() {
        let mut wire = vec![0u8];
        wire.extend_from_slice(&f.auth);
        out.push(wire);
        for pad in [0u8, 3, 15] {
            let mut p = vec![1u8, n as u8, f.first_inner.0];
            p.extend_from_slice(&f.plain);
            p.extend(std::iter::repeat_n(0, usize::from(pad)));
            p.push(pad);
            out.push(p);
        }
    }
    out
}

/// Endpoint programs (`[suite][op][len][body]...`): the honest life of a tunnel; the same
/// with each encrypted message dropped on the wire and injected again, sealed afresh (the
/// mutation point for the exchange handlers); a lossy wire; replays of real datagrams,
/// intact and with one byte changed; raw datagrams from a stranger.
pub fn endpoint_programs() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for suite in 0..lab::SUITES.len() as u8 {
        let (honest, l) = lab::honest(suite);
        out.push(honest.encode(suite));
        for rec in l.record.iter().flatten().take(16) {
            let mut p = Program(honest.0[..rec.op].to_vec());
            p.0.push((3, vec![0]));
            p.0.push(lab::sealed_op(rec));
            p.0.extend_from_slice(&honest.0[rec.op + 1..]);
            out.push(p.encode(suite));
        }
        // Lossy: the first datagram of each side is lost, retransmitted on the timer.
        let lossy = Program(vec![
            (7, vec![0, 0]),
            (3, vec![0]),
            (4, vec![]),
            (2, vec![1]),
            (3, vec![0]),
            (4, vec![]),
            (2, vec![0]),
            (4, vec![0, 31]),
            (2, vec![0]),
        ]);
        out.push(lossy.encode(suite));
        // The handshake again, then replays of what crossed the wire.
        let mut replays = Program(honest.0[..6.min(honest.0.len())].to_vec());
        for k in 0..6u8 {
            replays.0.push((8, vec![k, 0, 0, 0]));
            replays.0.push((8, vec![k, 0, 40 + k, 0x01]));
            replays.0.push((2, vec![0]));
        }
        out.push(replays.encode(suite));
        // Raw datagrams: the real IKE_SA_INIT from each source, and garbage.
        let init = l
            .transcript
            .iter()
            .find(|(to, _, _)| *to == Side::R)
            .map(|(_, _, d)| d.clone())
            .unwrap_or_default();
        let mut raw = Program::default();
        for src in 0..4u8 {
            let mut body = vec![src];
            body.extend_from_slice(&init);
            raw.0.push((0, body));
            raw.0.push((2, vec![0]));
        }
        raw.0.push((0, vec![3, 0, 1, 2, 3]));
        raw.0.push((1, vec![0; 40]));
        out.push(raw.encode(suite));
    }
    out
}

/// Every request the protocol has, as `request_line` writes it, and vpnctl command lines.
pub fn control_lines() -> Vec<Vec<u8>> {
    let full = Filter {
        local: Some("192.0.2.1".parse().unwrap()),
        local_port: Some(500),
        remote: Some("2001:db8::2".parse().unwrap()),
        remote_port: Some(4500),
        fvrf: Some("name10".into()),
        ivrf: Some("name20".into()),
        username: Some("joe@cclient".into()),
    };
    let mut cmds = vec![
        Command::ShowSessions {
            filter: Filter::default(),
            text: None,
        },
        Command::ShowSessions {
            filter: full.clone(),
            text: Some(SessionDisplay::Detail),
        },
        Command::ShowPeers {},
        Command::ShowAccounting {},
        Command::ShowPools {},
        Command::ClearSessions {
            filter: full.clone(),
        },
        Command::Debug {
            aaa: true,
            on: false,
        },
    ];
    for d in [
        SessionDisplay::Normal,
        SessionDisplay::Brief,
        SessionDisplay::Summary,
    ] {
        cmds.push(Command::ShowSessions {
            filter: Filter::default(),
            text: Some(d),
        });
    }
    let mut out: Vec<Vec<u8>> = cmds
        .into_iter()
        .map(|c| proto::request_line(c).into_bytes())
        .collect();
    for l in [
        "{\"v\":2,\"cmd\":\"show_peers\"}",
        "{\"v\":1,\"cmd\":\"show_sessions\",\"filter\":{\"remote\":\"::ffff:192.0.2.2\"},\"x\":1}",
        "show crypto session detail remote 192.0.2.2 port 500",
        "sh cr sess br",
        "show crypto session summary",
        "clear crypto session local 192.0.2.1 port 500 fvrf name10 ivrf name20",
        "--json show crypto session remote 2001:db8::2",
        "show crypto isakmp peer",
        "show aaa accounting",
        "debug crypto isakmp aaa on",
        "debug crypto isakmp off",
    ] {
        out.push(l.as_bytes().to_vec());
    }
    out
}

const EXAMPLES: [&str; 3] = [
    include_str!("../../examples/site-to-site.yaml"),
    include_str!("../../examples/ios-accounting-crypto-map.yaml"),
    include_str!("../../examples/ios-accounting-isakmp-profile.yaml"),
];

/// The example configurations, one with a relative `psk_file`, and the README's sections.
pub fn configs() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = EXAMPLES.iter().map(|e| e.as_bytes().to_vec()).collect();
    out.push(
        EXAMPLES[0]
            .replace(
                "psk: \"replace-with-a-long-random-secret\"",
                "psk_file: site.psk",
            )
            .into_bytes(),
    );
    out.push(
        "local:\n  addresses: [192.0.2.1, 2001:db8::1]\n\
         syslog:\n  local: true\n  facility: local7\n  servers:\n\
         \x20   - { address: 192.0.2.20, port: 514, transport: udp }\n\
         \x20   - { address: 192.0.2.21, port: 6514, transport: tcp }\n\
         radius:\n  servers:\n\
         \x20   - { name: aaa1, address: 192.0.2.10, acct_port: 1813, key: \"secret-1\" }\n\
         \x20   - { name: aaa2, address: 192.0.2.11, acct_port: 1813, key: \"secret-2\" }\n\
         \x20 timeout: 5s\n  retransmit: 3\n  dead_time: 60s\n  vsa_send_accounting: true\n\
         \x20 groups: { billing: [aaa1], audit: [aaa2] }\n\
         accounting:\n  update_periodic: 15m\n  journal: /var/lib/vpnd/accounting.journal\n\
         \x20 outbox_limit: 100000\n  lists:\n\
         \x20   acc: { mode: start-stop, broadcast: true, groups: [billing, audit] }\n\
         peers:\n  - name: site-b\n    address: 192.0.2.2\n    psk: \"0123456789abcdef\"\n\
         \x20   accounting: acc\n    group: branch-offices\n    start: respond\n\
         \x20   children:\n      - name: lan\n        local_ts: [198.51.100.0/25]\n\
         \x20       remote_ts: [203.0.113.0/26]\n        esp: [aes256gcm16]\n\
         \x20 - name: rw\n    address: 198.18.0.0/15\n    psk: \"0123456789abcdef\"\n\
         \x20   start: respond\n    children:\n      - name: any\n\
         \x20       local_ts: [\"0.0.0.0/0\"]\n        remote_ts: [\"10.0.0.0/8\"]\n"
            .as_bytes()
            .to_vec(),
    );
    out
}

/// Tokens for the mutator's dictionary (and cargo-fuzz's `-dict=`).
pub fn dictionary(target: &str) -> Vec<&'static [u8]> {
    let t: &[&str] = match target {
        "control_line" => &[
            "\"v\":1",
            "\"cmd\":",
            "\"show_sessions\"",
            "\"show_peers\"",
            "\"show_accounting\"",
            "\"clear_sessions\"",
            "\"debug\"",
            "\"filter\":{",
            "\"local\":\"192.0.2.1\"",
            "\"remote\":\"::1\"",
            "\"local_port\":65535",
            "\"remote_port\":70000",
            "\"fvrf\":\"\"",
            "\"ivrf\":null",
            "\"text\":\"brief\"",
            "\"aaa\":true",
            "\"on\":false",
            "[[[[[[[[",
            "{\"a\":{\"a\":{",
            "1e999",
            "\\u0000",
            "\\ud800",
            " session ",
            " remote ",
            " local ",
            " port ",
            " detail",
            " fvrf ",
            " ivrf ",
            " isakmp ",
            " aaa ",
            "--json ",
        ],
        "config" => &[
            ": ",
            "\n  - ",
            "[]",
            "{}",
            "~",
            "''",
            "\"\"",
            "&a ",
            "*a",
            "<<: *a",
            "!!binary ",
            "!!str ",
            "0",
            "-1",
            "99999999999999999999",
            "0x10",
            "0o777",
            "1s",
            "0s",
            "36500d",
            "1h30m",
            "255.255.255.255",
            "::",
            "0.0.0.0/0",
            "::/0",
            "192.0.2.1/33",
            "aes256gcm16-prfsha256-x25519",
            "aes128-sha256-modp2048-esn",
            "psk_file: site.psk",
            "start: initiate",
            "start: respond",
            "mode: 0660",
            "transport: tcp",
            "accounting: acc",
            "groups: [radius]",
            "local_ts: [10.0.0.0/8]",
            "tcp/443",
            "fqdn:a.example",
            "\u{feff}",
            "\t",
        ],
        _ => &[],
    };
    t.iter().map(|s| s.as_bytes()).collect()
}

/// The seeds of a target by name.
/// Reassembler programs (see `fuzzing::fragments`): sets in order, reversed, with copies, a
/// re-fragmented one, and one left to time out.
pub fn fragment_programs() -> Vec<Vec<u8>> {
    let rec = |n: u16, total: u16, first: u8, id: u8, step: u8, body: &[u8]| {
        let mut v = Vec::new();
        v.extend_from_slice(&n.to_be_bytes());
        v.extend_from_slice(&total.to_be_bytes());
        v.extend_from_slice(&[first, id, step, body.len() as u8]);
        v.extend_from_slice(body);
        v
    };
    let body = [0x2bu8; 40];
    vec![
        [
            rec(1, 3, 35, 1, 0, &body),
            rec(2, 3, 0, 1, 0, &body),
            rec(3, 3, 0, 1, 0, &body),
        ]
        .concat(),
        [
            rec(3, 3, 0, 2, 1, &body),
            rec(2, 3, 0, 2, 1, &body),
            rec(2, 3, 0, 2, 0, &body),
            rec(1, 3, 35, 2, 1, &body),
        ]
        .concat(),
        [
            rec(1, 2, 35, 3, 0, &body),
            rec(2, 4, 0, 3, 0, &body),
            rec(1, 4, 35, 3, 0, &body),
            rec(3, 4, 0, 3, 0, &body),
            rec(4, 4, 0, 3, 0, &body),
        ]
        .concat(),
        [
            rec(1, 2, 35, 4, 0, &body),
            rec(2, 2, 0, 4, 31, &body),
            rec(0, 2, 0, 5, 0, &body),
            rec(3, 2, 0, 5, 0, &body),
        ]
        .concat(),
    ]
}

pub fn for_target(target: &str) -> Vec<Vec<u8>> {
    match target {
        "ike_message" => ike_messages(),
        "sk_payload" => sk_inputs(),
        "endpoint" => endpoint_programs(),
        "xfrm_dump" => vpnd_xfrm::fuzzing::seed_dumps(),
        "radius_response" => vpnd_radius::fuzzing::seed_responses(),
        "radius_access" => vpnd_radius::fuzzing::seed_access_answers(),
        "control_line" => control_lines(),
        "config" => configs(),
        "fragments" => fragment_programs(),
        _ => Vec::new(),
    }
}

/// Writes `dir/<target>/seed-NNN` for every target (cargo-fuzz's corpus layout) and
/// `dir/../dict/<target>.dict` where the target has a dictionary.
pub fn write_corpus(dir: &Path) -> std::io::Result<usize> {
    let mut n = 0;
    for t in TARGETS {
        let d = dir.join(t);
        std::fs::create_dir_all(&d)?;
        for (i, s) in for_target(t).iter().enumerate() {
            std::fs::write(d.join(format!("seed-{i:03}")), s)?;
            n += 1;
        }
        let dict = dictionary(t);
        if !dict.is_empty() {
            let dd = dir.parent().unwrap_or(dir).join("dict");
            std::fs::create_dir_all(&dd)?;
            let text: String = dict
                .iter()
                .map(|tok| {
                    let esc: String = tok
                        .iter()
                        .map(|&b| match b {
                            b'"' | b'\\' => format!("\\{}", b as char),
                            0x20..=0x7e => (b as char).to_string(),
                            _ => format!("\\x{b:02x}"),
                        })
                        .collect();
                    format!("\"{esc}\"\n")
                })
                .collect();
            std::fs::write(dd.join(format!("{t}.dict")), text)?;
        }
    }
    Ok(n)
}
