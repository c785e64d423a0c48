//! A hand-written, bounds-checked reader for `XFRM_MSG_NEWSA` replies, on a blocking socket.
//!
//! Why not xfrmnetlink here: its dump hands every SA through netlink-proto's per-message
//! channel and builds owned structs with a `Vec` of attributes each; at 20,000 SAs that made
//! one dump only ~5x faster than 20,000 single GETSAs. This reader parses the fixed
//! `xfrm_usersa_info` fields and the five attributes counters need straight out of the
//! receive buffer. It also never panics: netlink-packet-xfrm slices without length checks,
//! this checks every offset (see the truncation tests below).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_sys::{protocols::NETLINK_XFRM, Socket, SocketAddr};

use crate::convert::{AF_INET6, XFRM_STATE_ESN};
use crate::error::{extack_message, Error, KernelError, Op};
use crate::types::*;

const NLMSG_HDR: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const XFRM_MSG_NEWSA: u16 = 0x10;
const XFRM_MSG_GETSA: u16 = 0x12;
// Attribute types, <linux/xfrm.h>.
const XFRMA_ENCAP: u16 = 4;
const XFRMA_REPLAY_VAL: u16 = 10;
const XFRMA_SRCADDR: u16 = 13;
const XFRMA_MARK: u16 = 21;
const XFRMA_REPLAY_ESN_VAL: u16 = 23;
const XFRMA_IF_ID: u16 = 31;
/// sizeof(struct xfrm_usersa_info) on every Linux ABI (64-bit aligned).
const USERSA_INFO_LEN: usize = 224;
/// sizeof(struct xfrm_usersa_id): daddr(16) spi(4) family(2) proto(1) pad(1).
const USERSA_ID_LEN: usize = 24;

/// A blocking NETLINK_XFRM socket used for bulk reads (run it on a blocking thread).
pub(crate) struct RawSocket {
    sock: Socket,
    buf: Vec<u8>,
    seq: u32,
}

fn conn_err(op: Op) -> impl Fn(io::Error) -> Error {
    move |source| Error::Connection { op, source }
}

impl RawSocket {
    pub(crate) fn open(op: Op) -> Result<RawSocket, Error> {
        let mut sock = Socket::new(NETLINK_XFRM).map_err(conn_err(op))?;
        sock.bind_auto().map_err(conn_err(op))?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(conn_err(op))?;
        let _ = sock.set_ext_ack(true);
        let _ = sock.set_cap_ack(true);
        let _ = sock.set_rx_buf_sz(4 << 20);
        // A dump skb is at most 32 KiB; 1 MiB leaves no room for MSG_TRUNC.
        Ok(RawSocket {
            sock,
            buf: vec![0; 1 << 20],
            seq: 0,
        })
    }

    fn send(&mut self, op: Op, kind: u16, flags: u16, payload: &[u8]) -> Result<u32, Error> {
        self.seq = self.seq.wrapping_add(1);
        let len = NLMSG_HDR + payload.len();
        let mut msg = Vec::with_capacity(len);
        msg.extend_from_slice(&(len as u32).to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(payload);
        self.sock.send(&msg, 0).map_err(conn_err(op))?;
        Ok(self.seq)
    }

    /// Reads replies to request `seq` until DONE (dumps) or the first SA / error (gets),
    /// handing each SA to `each`.
    fn read_replies(
        &mut self,
        op: Op,
        target: &dyn Fn() -> String,
        seq: u32,
        dump: bool,
        each: &mut dyn FnMut(SaCounters),
    ) -> Result<(), Error> {
        loop {
            let n = {
                let mut slice: &mut [u8] = &mut self.buf[..];
                self.sock.recv(&mut slice, 0).map_err(conn_err(op))?
            };
            let mut data = &self.buf[..n];
            while !data.is_empty() {
                let (kind, msg_seq, payload, rest) =
                    split_message(data).ok_or_else(|| Error::Unexpected {
                        op,
                        target: target(),
                        detail: format!("truncated netlink message ({} bytes left)", data.len()),
                    })?;
                data = rest;
                if msg_seq != seq {
                    continue; // a reply to an earlier, abandoned request
                }
                match kind {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        let code = read_i32(payload, 0).unwrap_or(-libc_eio());
                        if code == 0 {
                            return Ok(());
                        }
                        return Err(Error::Kernel {
                            op,
                            target: target(),
                            kernel: KernelError {
                                errno: -code,
                                message: extack_message(payload.get(4..).unwrap_or(&[])),
                            },
                        });
                    }
                    XFRM_MSG_NEWSA => {
                        let sa = parse_usersa_info(payload).ok_or_else(|| Error::Unexpected {
                            op,
                            target: target(),
                            detail: format!("malformed SA message ({} bytes)", payload.len()),
                        })?;
                        each(sa);
                        if !dump {
                            return Ok(());
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Every SA, in one `XFRM_MSG_GETSA` dump.
    pub(crate) fn dump_sas(&mut self, each: &mut dyn FnMut(SaCounters)) -> Result<(), Error> {
        let seq = self.send(Op::DumpSa, XFRM_MSG_GETSA, NLM_F_DUMP, &[])?;
        self.read_replies(Op::DumpSa, &|| "(all)".to_string(), seq, true, each)
    }

    /// One SA by id: one request, one reply (the per-SA way).
    pub(crate) fn get_sa(&mut self, id: &SaId) -> Result<SaCounters, Error> {
        let mut p = Vec::with_capacity(USERSA_ID_LEN + 40);
        p.extend_from_slice(&addr16(&id.dst));
        p.extend_from_slice(&id.spi.to_be_bytes());
        p.extend_from_slice(&family(&id.dst).to_ne_bytes());
        p.push(id.proto);
        p.push(0);
        push_attr(&mut p, XFRMA_SRCADDR, &addr16(&id.src));
        if let Some(m) = id.mark {
            let mut v = m.value.to_ne_bytes().to_vec();
            v.extend_from_slice(&m.mask.to_ne_bytes());
            push_attr(&mut p, XFRMA_MARK, &v);
        }
        let seq = self.send(Op::GetSa, XFRM_MSG_GETSA, 0, &p)?;
        let mut got = None;
        self.read_replies(Op::GetSa, &|| id.to_string(), seq, false, &mut |sa| {
            got = Some(sa)
        })?;
        got.ok_or_else(|| Error::Unexpected {
            op: Op::GetSa,
            target: id.to_string(),
            detail: "no SA in the reply".into(),
        })
    }
}

fn libc_eio() -> i32 {
    5
}

fn family(ip: &IpAddr) -> u16 {
    crate::convert::family_of(ip)
}

fn addr16(ip: &IpAddr) -> [u8; 16] {
    let mut a = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => a[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => a.copy_from_slice(&v6.octets()),
    }
    a
}

fn push_attr(p: &mut Vec<u8>, kind: u16, value: &[u8]) {
    p.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    p.extend_from_slice(&kind.to_ne_bytes());
    p.extend_from_slice(value);
    while !p.len().is_multiple_of(4) {
        p.push(0);
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn read_be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn read_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn read_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn read_addr(b: &[u8], at: usize, fam: u16) -> Option<IpAddr> {
    let raw: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
    Some(if fam == AF_INET6 {
        IpAddr::V6(Ipv6Addr::from(raw))
    } else {
        IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))
    })
}

/// Splits one netlink message off `data`: (type, seq, payload, rest). None if truncated.
pub(crate) fn split_message(data: &[u8]) -> Option<(u16, u32, &[u8], &[u8])> {
    let len = read_u32(data, 0)? as usize;
    if len < NLMSG_HDR || len > data.len() {
        return None;
    }
    let kind = read_u16(data, 4)?;
    let seq = read_u32(data, 8)?;
    let rest = data.get(align4(len)..).unwrap_or(&[]);
    Some((kind, seq, &data[NLMSG_HDR..len], rest))
}

/// Parses `struct xfrm_usersa_info` and its attributes (offsets from <linux/xfrm.h>).
pub(crate) fn parse_usersa_info(p: &[u8]) -> Option<SaCounters> {
    if p.len() < USERSA_INFO_LEN {
        return None;
    }
    let fam = read_u16(p, 212)?;
    let limit = |at| read_u64(p, at).map(|v| (v != XFRM_INF && v != 0).then_some(v));
    let mut sa = SaCounters {
        id: SaId {
            src: read_addr(p, 80, fam)?,
            dst: read_addr(p, 56, fam)?,
            spi: u32::from_be_bytes(p.get(72..76)?.try_into().ok()?),
            proto: p[76],
            mark: None,
        },
        reqid: read_u32(p, 208)?,
        mode: Mode::from_kernel(p[214]),
        bytes: read_u64(p, 160)?,
        packets: read_u64(p, 168)?,
        add_time: read_u64(p, 176)?,
        use_time: read_u64(p, 184)?,
        replay_dropped: read_u32(p, 196)?,
        integrity_failed: read_u32(p, 200)?,
        replay_window: p[215] as u32,
        oseq: 0,
        seq: 0,
        lifetime: Lifetime {
            soft_bytes: limit(96)?,
            hard_bytes: limit(104)?,
            soft_packets: limit(112)?,
            hard_packets: limit(120)?,
            soft_seconds: limit(128)?,
            hard_seconds: limit(136)?,
        },
        esn: p[216] & XFRM_STATE_ESN != 0,
        encap: None,
        if_id: None,
    };
    let mut attrs = p.get(USERSA_INFO_LEN..)?;
    while attrs.len() >= 4 {
        let len = read_u16(attrs, 0)? as usize;
        let kind = read_u16(attrs, 2)? & 0x3fff;
        if len < 4 || len > attrs.len() {
            return None;
        }
        let v = &attrs[4..len];
        match kind {
            XFRMA_MARK => {
                sa.id.mark = Some(Mark {
                    value: read_u32(v, 0)?,
                    mask: read_u32(v, 4)?,
                })
            }
            XFRMA_REPLAY_VAL => {
                sa.oseq = read_u32(v, 0)? as u64;
                sa.seq = read_u32(v, 4)? as u64;
            }
            XFRMA_REPLAY_ESN_VAL => {
                // bmp_len, oseq, seq, oseq_hi, seq_hi, replay_window, bmp[]
                sa.oseq = (read_u32(v, 12)? as u64) << 32 | read_u32(v, 4)? as u64;
                sa.seq = (read_u32(v, 16)? as u64) << 32 | read_u32(v, 8)? as u64;
                sa.replay_window = read_u32(v, 20)?;
            }
            // struct xfrm_encap_tmpl: type (u16), sport, dport (be16)
            XFRMA_ENCAP => {
                sa.encap = Some(UdpEncap {
                    sport: read_be16(v, 2)?,
                    dport: read_be16(v, 4)?,
                })
            }
            XFRMA_IF_ID => sa.if_id = Some(read_u32(v, 0)?),
            _ => {}
        }
        attrs = attrs.get(align4(len)..).unwrap_or(&[]);
    }
    Some(sa)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `xfrm_usersa_info` as the kernel lays it out, for 192.0.2.1 -> 192.0.2.2.
    fn sample() -> Vec<u8> {
        let mut p = vec![0u8; USERSA_INFO_LEN];
        p[56..60].copy_from_slice(&[192, 0, 2, 2]); // id.daddr
        p[72..76].copy_from_slice(&0xc001_0001u32.to_be_bytes()); // id.spi
        p[76] = IPPROTO_ESP;
        p[80..84].copy_from_slice(&[192, 0, 2, 1]); // saddr
        for off in (96..128).step_by(8) {
            p[off..off + 8].copy_from_slice(&XFRM_INF.to_ne_bytes());
        }
        p[136..144].copy_from_slice(&3600u64.to_ne_bytes()); // hard_add_expires_seconds
        p[160..168].copy_from_slice(&420u64.to_ne_bytes());
        p[168..176].copy_from_slice(&5u64.to_ne_bytes());
        p[176..184].copy_from_slice(&1_700_000_000u64.to_ne_bytes());
        p[200..204].copy_from_slice(&2u32.to_ne_bytes()); // integrity_failed
        p[208..212].copy_from_slice(&0x7670_0001u32.to_ne_bytes());
        p[212..214].copy_from_slice(&2u16.to_ne_bytes()); // AF_INET
        p[214] = 1; // tunnel
        p[215] = 32;
        p[216] = XFRM_STATE_ESN;
        let mut esn = Vec::new();
        for v in [4u32, 7, 9, 1, 0, 128] {
            esn.extend_from_slice(&v.to_ne_bytes());
        }
        esn.extend_from_slice(&[0u8; 16]);
        push_attr(&mut p, XFRMA_REPLAY_ESN_VAL, &esn);
        push_attr(&mut p, XFRMA_MARK, &[1, 0, 0, 0, 255, 255, 255, 255]);
        let mut encap = 2u16.to_ne_bytes().to_vec();
        encap.extend_from_slice(&4500u16.to_be_bytes());
        encap.extend_from_slice(&4501u16.to_be_bytes());
        encap.extend_from_slice(&[0u8; 18]);
        push_attr(&mut p, XFRMA_ENCAP, &encap);
        p
    }

    #[test]
    fn parses_kernel_layout() {
        let sa = parse_usersa_info(&sample()).unwrap();
        assert_eq!(
            sa.id,
            SaId {
                src: "192.0.2.1".parse().unwrap(),
                dst: "192.0.2.2".parse().unwrap(),
                spi: 0xc001_0001,
                proto: 50,
                mark: Some(Mark {
                    value: 1,
                    mask: u32::MAX
                })
            }
        );
        assert_eq!(
            (sa.bytes, sa.packets, sa.add_time, sa.use_time),
            (420, 5, 1_700_000_000, 0)
        );
        assert_eq!(sa.reqid, 0x7670_0001);
        assert_eq!(sa.mode, Some(Mode::Tunnel));
        assert_eq!(sa.integrity_failed, 2);
        assert!(sa.esn);
        assert_eq!((sa.oseq, sa.seq, sa.replay_window), ((1 << 32) | 7, 9, 128));
        assert_eq!(
            sa.encap,
            Some(UdpEncap {
                sport: 4500,
                dport: 4501
            })
        );
        assert_eq!(
            sa.lifetime,
            Lifetime {
                hard_seconds: Some(3600),
                ..Default::default()
            }
        );
    }

    #[test]
    fn every_truncation_is_refused_without_panic() {
        let full = sample();
        for cut in 0..full.len() {
            let r = parse_usersa_info(&full[..cut]);
            // Cutting inside the fixed struct or inside an attribute must fail; cutting
            // exactly between attributes yields a valid, shorter message.
            if cut < USERSA_INFO_LEN {
                assert!(r.is_none(), "cut at {cut}");
            }
        }
    }

    #[test]
    fn attribute_lengths_are_checked() {
        let mut p = sample();
        // Corrupt the first attribute's length to run past the end.
        p[USERSA_INFO_LEN..USERSA_INFO_LEN + 2].copy_from_slice(&4000u16.to_ne_bytes());
        assert!(parse_usersa_info(&p).is_none());
        // And to a length shorter than the value it must hold.
        let mut q = sample();
        q[USERSA_INFO_LEN..USERSA_INFO_LEN + 2].copy_from_slice(&8u16.to_ne_bytes());
        assert!(parse_usersa_info(&q).is_none());
    }

    #[test]
    fn split_message_checks_lengths() {
        assert!(split_message(&[]).is_none());
        assert!(split_message(&[200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_none());
        let mut m = vec![20, 0, 0, 0, 3, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        m.extend_from_slice(&[0xff; 3]);
        let (kind, seq, payload, rest) = split_message(&m).unwrap();
        assert_eq!(
            (kind, seq, payload, rest.len()),
            (3, 9, &[1u8, 2, 3, 4][..], 3)
        );
    }
}
