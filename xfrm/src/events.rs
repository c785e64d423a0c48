//! Kernel XFRM events: SA expiry (soft: rekey now; hard: the SA is gone), ACQUIRE (traffic
//! hit a policy with no SA), and SA / policy changes made by anyone.

use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::channel::mpsc::UnboundedReceiver;
use futures::Stream;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_xfrm::constants::{
    XFRMNLGRP_ACQUIRE, XFRMNLGRP_EXPIRE, XFRMNLGRP_MAPPING, XFRMNLGRP_POLICY, XFRMNLGRP_SA,
};
use netlink_packet_xfrm::{XfrmAttrs, XfrmMessage};
use netlink_sys::{AsyncSocket, SocketAddr};

use crate::convert::*;
use crate::error::{Error, Op};
use crate::types::*;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// An SA reached a lifetime limit. `hard`: the kernel has deleted it.
    Expire {
        id: SaId,
        reqid: u32,
        hard: bool,
        bytes: u64,
        packets: u64,
    },
    /// Outbound traffic matched a policy whose template has no SA yet.
    Acquire {
        src: IpAddr,
        dst: IpAddr,
        selector: Selector,
        policy_index: u32,
        dir: Option<Dir>,
        reqid: u32,
        seq: u32,
    },
    SaAdded {
        id: SaId,
        reqid: u32,
    },
    SaUpdated {
        id: SaId,
        reqid: u32,
    },
    /// `src` is unknown when the kernel's notice does not carry it.
    SaDeleted {
        dst: IpAddr,
        spi: u32,
        proto: u8,
        src: Option<IpAddr>,
    },
    PolicyAdded(PolicyKey),
    PolicyDeleted {
        selector: Selector,
        dir: Option<Dir>,
        index: u32,
    },
    PolicyExpire {
        key: PolicyKey,
        hard: bool,
    },
    /// A NAT-T peer's address or port changed (`XFRM_MSG_MAPPING`): an ESP-in-UDP packet
    /// for the inbound SA `dst`/`spi` authenticated but came from `new`, not `old` (the
    /// peer's NAT rebound).
    Mapping {
        dst: IpAddr,
        spi: u32,
        proto: u8,
        reqid: u32,
        old: std::net::SocketAddr,
        new: std::net::SocketAddr,
    },
    SasFlushed,
    PoliciesFlushed,
    /// A message type this crate does not model, by number.
    Other(u16),
}

/// A stream of [`Event`]s from the kernel's XFRM multicast groups.
pub struct Events {
    rx: UnboundedReceiver<(NetlinkMessage<XfrmMessage>, SocketAddr)>,
}

impl Events {
    /// Opens a second netlink socket (requests and notifications don't share one, so a burst
    /// of events can never delay a reply) and joins the EXPIRE, ACQUIRE, SA, POLICY and
    /// MAPPING groups.
    pub fn subscribe() -> Result<Events, Error> {
        let conn_err = |source| Error::Connection {
            op: Op::Subscribe,
            source,
        };
        let (mut conn, _handle, rx) = xfrmnetlink::new_connection().map_err(conn_err)?;
        let sock = conn.socket_mut().socket_mut();
        sock.bind_auto().map_err(conn_err)?;
        // Events that arrive faster than we read must not overflow silently: a big buffer.
        let _ = sock.set_rx_buf_sz(8 << 20);
        for g in [
            XFRMNLGRP_ACQUIRE,
            XFRMNLGRP_EXPIRE,
            XFRMNLGRP_SA,
            XFRMNLGRP_POLICY,
            XFRMNLGRP_MAPPING,
        ] {
            sock.add_membership(g).map_err(conn_err)?;
        }
        tokio::spawn(conn);
        Ok(Events { rx })
    }
}

impl Stream for Events {
    type Item = Event;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        loop {
            match Pin::new(&mut self.rx).poll_next(cx) {
                Poll::Ready(Some((msg, _))) => {
                    if let NetlinkPayload::InnerMessage(m) = msg.payload {
                        return Poll::Ready(Some(event_of(m)));
                    }
                    // NLMSG_DONE/NOOP/overrun notices carry no event.
                }
                other => return other.map(|o| o.map(|_| unreachable!("handled above"))),
            }
        }
    }
}

pub(crate) fn event_of(m: XfrmMessage) -> Event {
    match m {
        XfrmMessage::Expire(e) => {
            let s = &e.expire.state;
            Event::Expire {
                id: sa_id_from_info(s, &[]),
                reqid: s.reqid,
                hard: e.expire.hard != 0,
                bytes: s.lifetime_cur.bytes,
                packets: s.lifetime_cur.packets,
            }
        }
        XfrmMessage::Acquire(a) => {
            let q = &a.acquire;
            let reqid = a
                .nlas
                .iter()
                .find_map(|n| match n {
                    XfrmAttrs::Template(t) => t.first().map(|t| t.reqid),
                    _ => None,
                })
                .unwrap_or(0);
            Event::Acquire {
                src: ip_of(&q.saddr, q.selector.family.max(q.policy.selector.family)),
                dst: ip_of(&q.id.daddr, q.selector.family.max(q.policy.selector.family)),
                selector: selector_from_nl(&q.selector),
                policy_index: q.policy.index,
                dir: Dir::from_kernel(q.policy.direction),
                reqid,
                seq: q.seq,
            }
        }
        XfrmMessage::AddSa(m) => Event::SaAdded {
            id: sa_id_from_info(&m.user_sa_info, &m.nlas),
            reqid: m.user_sa_info.reqid,
        },
        XfrmMessage::UpdateSa(m) => Event::SaUpdated {
            id: sa_id_from_info(&m.user_sa_info, &m.nlas),
            reqid: m.user_sa_info.reqid,
        },
        XfrmMessage::DeleteSa(m) => {
            let id = &m.user_sa_id;
            let src = m.nlas.iter().find_map(|n| match n {
                XfrmAttrs::SrcAddr(a) => Some(ip_of(a, id.family)),
                XfrmAttrs::SaInfo(i) => Some(ip_of(&i.saddr, i.family)),
                _ => None,
            });
            Event::SaDeleted {
                dst: ip_of(&id.daddr, id.family),
                spi: id.spi,
                proto: id.proto,
                src,
            }
        }
        XfrmMessage::AddPolicy(p) | XfrmMessage::UpdatePolicy(p) => {
            match policy_from_nl(&p.user_policy_info, &p.nlas) {
                Some(info) => Event::PolicyAdded(info.key),
                None => Event::Other(XfrmMessage::AddPolicy(p).message_type()),
            }
        }
        XfrmMessage::DeletePolicy(p) => Event::PolicyDeleted {
            selector: selector_from_nl(&p.user_policy_id.selector),
            dir: Dir::from_kernel(p.user_policy_id.direction),
            index: p.user_policy_id.index,
        },
        XfrmMessage::PolicyExpire(p) => match policy_from_nl(&p.expire.pol, &p.nlas) {
            Some(info) => Event::PolicyExpire {
                key: info.key,
                hard: p.expire.hard != 0,
            },
            None => Event::Other(netlink_packet_xfrm::constants::XFRM_MSG_POLEXPIRE),
        },
        XfrmMessage::Mapping(m) => {
            let (map, family) = (&m.map, m.map.id.family);
            // The kernel's ports are in network order, which the crate keeps as read.
            let at = |a, port: u16| std::net::SocketAddr::new(ip_of(a, family), u16::from_be(port));
            Event::Mapping {
                dst: ip_of(&map.id.daddr, family),
                spi: map.id.spi,
                proto: map.id.proto,
                reqid: map.reqid,
                old: at(&map.old_saddr, map.old_sport),
                new: at(&map.new_saddr, map.new_sport),
            }
        }
        XfrmMessage::FlushSa(_) => Event::SasFlushed,
        XfrmMessage::FlushPolicy(_) => Event::PoliciesFlushed,
        other => Event::Other(other.message_type()),
    }
}
