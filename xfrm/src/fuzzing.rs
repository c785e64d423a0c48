//! Fuzz target for the counters dump reader (`raw.rs`), not an API (hidden from the docs).
//! Shared by vpnd's bounded run in `cargo test` (`tests/fuzz_targets.rs` at the workspace
//! root) and cargo-fuzz (`fuzz/fuzz_targets/xfrm_dump.rs`).
//!
//! `dump_reader` walks a receive buffer the way `RawSocket::read_replies` does (the same
//! `split_message`, `parse_usersa_info` and `extack_message`; only the socket is left out).
//! Invariants: every message consumes at least a netlink header (no endless loop), and
//! every SA the reader accepts comes back unchanged through an independent encoder written
//! from <linux/xfrm.h> (so no field is read from the wrong offset or width).

use std::net::IpAddr;

use crate::convert::{AF_INET, AF_INET6, XFRM_STATE_ESN};
use crate::error::extack_message;
use crate::raw::{parse_usersa_info, split_message};
use crate::types::{Lifetime, Mark, Mode, SaCounters, SaId, UdpEncap, IPPROTO_ESP, XFRM_INF};

/// The sequence number the seeds' replies answer.
pub const SEQ: u32 = 7;
const NLMSG_HDR: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_MULTI: u16 = 2;
const XFRM_MSG_NEWSA: u16 = 0x10;
const XFRMA_ENCAP: u16 = 4;
const XFRMA_MARK: u16 = 21;
const XFRMA_REPLAY_ESN_VAL: u16 = 23;
const XFRMA_IF_ID: u16 = 31;
const USERSA_INFO_LEN: usize = 224;

/// One receive buffer of replies to request `SEQ`.
pub fn dump_reader(data: &[u8]) {
    let _ = parse_usersa_info(data);
    let _ = extack_message(data);
    let mut rest = data;
    while !rest.is_empty() {
        let Some((kind, seq, payload, next)) = split_message(rest) else {
            return; // read_replies: "truncated netlink message"
        };
        assert!(
            next.len() + NLMSG_HDR <= rest.len(),
            "split_message made no progress"
        );
        assert!(payload.len() + NLMSG_HDR <= rest.len());
        rest = next;
        if seq != SEQ {
            continue;
        }
        match kind {
            NLMSG_DONE => return,
            NLMSG_ERROR => {
                let code = payload
                    .get(0..4)
                    .map(|b| i32::from_ne_bytes(b.try_into().unwrap()));
                if code != Some(0) {
                    let _ = extack_message(payload.get(4..).unwrap_or(&[]));
                }
                return;
            }
            XFRM_MSG_NEWSA => match parse_usersa_info(payload) {
                Some(sa) => {
                    let again = encode_usersa(&sa);
                    assert_eq!(
                        parse_usersa_info(&again).as_ref(),
                        Some(&sa),
                        "an SA read from the dump does not survive re-encoding"
                    );
                }
                None => return, // read_replies: "malformed SA message"
            },
            _ => {}
        }
    }
}

fn put(p: &mut [u8], at: usize, v: &[u8]) {
    p[at..at + v.len()].copy_from_slice(v);
}

fn addr16(ip: &IpAddr) -> [u8; 16] {
    let mut a = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => a[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => a.copy_from_slice(&v6.octets()),
    }
    a
}

fn attr(p: &mut Vec<u8>, kind: u16, value: &[u8]) {
    p.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    p.extend_from_slice(&kind.to_ne_bytes());
    p.extend_from_slice(value);
    while !p.len().is_multiple_of(4) {
        p.push(0);
    }
}

/// `struct xfrm_usersa_info` and attributes for `sa`, as the kernel lays them out.
pub fn encode_usersa(sa: &SaCounters) -> Vec<u8> {
    let mut p = vec![0u8; USERSA_INFO_LEN];
    put(&mut p, 56, &addr16(&sa.id.dst));
    put(&mut p, 72, &sa.id.spi.to_be_bytes());
    p[76] = sa.id.proto;
    put(&mut p, 80, &addr16(&sa.id.src));
    let l = &sa.lifetime;
    for (at, v) in [
        (96, l.soft_bytes),
        (104, l.hard_bytes),
        (112, l.soft_packets),
        (120, l.hard_packets),
        (128, l.soft_seconds),
        (136, l.hard_seconds),
    ] {
        put(&mut p, at, &v.unwrap_or(XFRM_INF).to_ne_bytes());
    }
    put(&mut p, 160, &sa.bytes.to_ne_bytes());
    put(&mut p, 168, &sa.packets.to_ne_bytes());
    put(&mut p, 176, &sa.add_time.to_ne_bytes());
    put(&mut p, 184, &sa.use_time.to_ne_bytes());
    put(&mut p, 196, &sa.replay_dropped.to_ne_bytes());
    put(&mut p, 200, &sa.integrity_failed.to_ne_bytes());
    put(&mut p, 208, &sa.reqid.to_ne_bytes());
    let fam = if sa.id.dst.is_ipv6() {
        AF_INET6
    } else {
        AF_INET
    };
    put(&mut p, 212, &fam.to_ne_bytes());
    p[214] = match sa.mode {
        Some(Mode::Transport) => 0,
        Some(Mode::Tunnel) => 1,
        None => 0xff,
    };
    p[215] = sa.replay_window.min(255) as u8;
    p[216] = if sa.esn { XFRM_STATE_ESN } else { 0 };
    // struct xfrm_replay_state_esn: bmp_len, oseq, seq, oseq_hi, seq_hi, replay_window, bmp[]
    let mut esn = Vec::new();
    for v in [
        1u32,
        sa.oseq as u32,
        sa.seq as u32,
        (sa.oseq >> 32) as u32,
        (sa.seq >> 32) as u32,
        sa.replay_window,
        0,
    ] {
        esn.extend_from_slice(&v.to_ne_bytes());
    }
    attr(&mut p, XFRMA_REPLAY_ESN_VAL, &esn);
    if let Some(m) = sa.id.mark {
        let mut v = m.value.to_ne_bytes().to_vec();
        v.extend_from_slice(&m.mask.to_ne_bytes());
        attr(&mut p, XFRMA_MARK, &v);
    }
    if let Some(e) = sa.encap {
        // struct xfrm_encap_tmpl: type, sport, dport (network order), oa
        let mut v = 2u16.to_ne_bytes().to_vec();
        v.extend_from_slice(&e.sport.to_be_bytes());
        v.extend_from_slice(&e.dport.to_be_bytes());
        v.extend_from_slice(&[0u8; 18]);
        attr(&mut p, XFRMA_ENCAP, &v);
    }
    if let Some(id) = sa.if_id {
        attr(&mut p, XFRMA_IF_ID, &id.to_ne_bytes());
    }
    p
}

fn message(kind: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(NLMSG_HDR + payload.len() + 3);
    m.extend_from_slice(&((NLMSG_HDR + payload.len()) as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&NLM_F_MULTI.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&4242u32.to_ne_bytes());
    m.extend_from_slice(payload);
    while m.len() % 4 != 0 {
        m.push(0);
    }
    m
}

fn samples() -> Vec<SaCounters> {
    let v4 = |s: &str| s.parse::<IpAddr>().unwrap();
    let mut a = SaCounters::usage(
        SaId {
            src: v4("192.0.2.1"),
            dst: v4("192.0.2.2"),
            spi: 0xc001_0001,
            proto: IPPROTO_ESP,
            mark: Some(Mark {
                value: 1,
                mask: u32::MAX,
            }),
        },
        420,
        5,
    );
    a.reqid = 0x7670_0001;
    a.mode = Some(Mode::Tunnel);
    a.add_time = 1_700_000_000;
    a.integrity_failed = 2;
    a.esn = true;
    a.oseq = (1 << 32) | 7;
    a.seq = 9;
    a.replay_window = 128;
    a.encap = Some(UdpEncap {
        sport: 4500,
        dport: 4501,
    });
    a.lifetime = Lifetime {
        hard_seconds: Some(3600),
        soft_bytes: Some(1 << 30),
        ..Default::default()
    };
    let mut b = SaCounters::usage(
        SaId {
            src: v4("2001:db8::1"),
            dst: v4("2001:db8::2"),
            spi: 0x0000_0100,
            proto: IPPROTO_ESP,
            mark: None,
        },
        u64::MAX,
        1 << 40,
    );
    b.mode = Some(Mode::Transport);
    b.replay_window = 32;
    b.if_id = Some(7);
    b.use_time = 1_700_000_100;
    let mut c = a.clone();
    c.id.spi = 0xdead_beef;
    c.id.mark = None;
    c.encap = None;
    c.esn = false;
    c.mode = None;
    vec![a, b, c]
}

/// Receive buffers as the kernel fills them: a dump of three SAs and DONE; a GETSA reply;
/// an error with the extended ACK text; a stale reply to an earlier request first.
pub fn seed_dumps() -> Vec<Vec<u8>> {
    let sas = samples();
    let mut dump = Vec::new();
    for sa in &sas {
        dump.extend(message(XFRM_MSG_NEWSA, SEQ, &encode_usersa(sa)));
    }
    dump.extend(message(NLMSG_DONE, SEQ, &0i32.to_ne_bytes()));
    let single = message(XFRM_MSG_NEWSA, SEQ, &encode_usersa(&sas[1]));
    let mut err = (-22i32).to_ne_bytes().to_vec();
    err.extend(message(0x10, SEQ, &[])); // the echoed request header
    let text = b"Requested AEAD algorithm not found\0";
    err.extend_from_slice(&((4 + text.len()) as u16).to_ne_bytes());
    err.extend_from_slice(&1u16.to_ne_bytes()); // NLMSGERR_ATTR_MSG
    err.extend_from_slice(text);
    let error = message(NLMSG_ERROR, SEQ, &err);
    let mut stale = message(XFRM_MSG_NEWSA, SEQ - 1, &encode_usersa(&sas[2]));
    stale.extend(message(NLMSG_ERROR, SEQ, &0i32.to_ne_bytes()));
    vec![dump, single, error, stale]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_parse_and_round_trip() {
        for sa in samples() {
            assert_eq!(parse_usersa_info(&encode_usersa(&sa)), Some(sa));
        }
        for s in seed_dumps() {
            dump_reader(&s);
        }
    }
}
