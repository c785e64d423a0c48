//! Conversions between this crate's types and netlink-packet-xfrm's wire structs.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_xfrm::{
    Address, LifetimeConfig, Selector as NlSelector, UserPolicyInfo, UserSaInfo, UserTemplate,
    XfrmAttrs,
};

use crate::types::*;

pub(crate) const AF_INET: u16 = 2;
pub(crate) const AF_INET6: u16 = 10;
/// `XFRM_STATE_ESN` in `xfrm_usersa_info.flags`.
pub(crate) const XFRM_STATE_ESN: u8 = 128;
/// `XFRM_STATE_AF_UNSPEC`: the selector's family is left unspecified (inter-family tunnels).
pub(crate) const XFRM_STATE_AF_UNSPEC: u8 = 32;

pub(crate) fn family_of(ip: &IpAddr) -> u16 {
    if ip.is_ipv4() {
        AF_INET
    } else {
        AF_INET6
    }
}

pub(crate) fn ip_of(addr: &Address, family: u16) -> IpAddr {
    if family == AF_INET6 {
        IpAddr::V6(addr.to_ipv6())
    } else {
        IpAddr::V4(addr.to_ipv4())
    }
}

fn net_of(addr: &Address, family: u16, prefix: u8) -> IpNet {
    let ip = ip_of(addr, family);
    // A prefix the kernel reports is within range; clamp anyway rather than panic.
    let max = if ip.is_ipv4() { 32 } else { 128 };
    IpNet::new(ip, prefix.min(max)).expect("prefix clamped to the family's width")
}

pub(crate) fn selector_to_nl(sel: &Selector) -> NlSelector {
    let mut s = NlSelector::default();
    s.source_prefix(&sel.src.addr(), sel.src.prefix_len());
    s.destination_prefix(&sel.dst.addr(), sel.dst.prefix_len());
    s.proto = sel.proto;
    if let Some(p) = sel.sport {
        s.sport = p;
        s.sport_mask = u16::MAX;
    }
    if let Some(p) = sel.dport {
        s.dport = p;
        s.dport_mask = u16::MAX;
    }
    s
}

/// An "any" selector of the given family (what tunnel-mode SAs carry).
pub(crate) fn any_selector(family: u16) -> NlSelector {
    NlSelector {
        family,
        ..Default::default()
    }
}

pub(crate) fn selector_from_nl(s: &NlSelector) -> Selector {
    Selector {
        src: net_of(&s.saddr, s.family, s.prefixlen_s),
        dst: net_of(&s.daddr, s.family, s.prefixlen_d),
        proto: s.proto,
        sport: (s.sport_mask != 0).then_some(s.sport),
        dport: (s.dport_mask != 0).then_some(s.dport),
    }
}

fn limit(v: Option<u64>) -> u64 {
    v.unwrap_or(XFRM_INF)
}

pub(crate) fn lifetime_to_nl(l: &Lifetime) -> LifetimeConfig {
    LifetimeConfig {
        soft_byte_limit: limit(l.soft_bytes),
        hard_byte_limit: limit(l.hard_bytes),
        soft_packet_limit: limit(l.soft_packets),
        hard_packet_limit: limit(l.hard_packets),
        // 0 means "no time limit" for the add/use expiry fields.
        soft_add_expires_seconds: l.soft_seconds.unwrap_or(0),
        hard_add_expires_seconds: l.hard_seconds.unwrap_or(0),
        soft_use_expires_seconds: 0,
        hard_use_expires_seconds: 0,
    }
}

pub(crate) fn sa_id_from_info(info: &UserSaInfo, nlas: &[XfrmAttrs]) -> SaId {
    SaId {
        src: ip_of(&info.saddr, info.family),
        dst: ip_of(&info.id.daddr, info.family),
        spi: info.id.spi,
        proto: info.id.proto,
        mark: mark_of(nlas),
    }
}

pub(crate) fn mark_of(nlas: &[XfrmAttrs]) -> Option<Mark> {
    nlas.iter().find_map(|a| match a {
        XfrmAttrs::Mark(m) => Some(Mark {
            value: m.value,
            mask: m.mask,
        }),
        _ => None,
    })
}

pub(crate) fn if_id_of(nlas: &[XfrmAttrs]) -> Option<u32> {
    nlas.iter().find_map(|a| match a {
        XfrmAttrs::IfId(v) => Some(*v),
        _ => None,
    })
}

pub(crate) fn template_to_nl(t: &Template) -> UserTemplate {
    let mut u = UserTemplate::default();
    u.source(&t.src);
    u.destination(&t.dst);
    u.protocol(IPPROTO_ESP);
    u.mode(t.mode.to_kernel());
    u.reqid = t.reqid;
    // Accept any algorithm: the SA found by reqid decides (as `ip xfrm` defaults).
    u.aalgos = u32::MAX;
    u.ealgos = u32::MAX;
    u.calgos = u32::MAX;
    u
}

pub(crate) fn template_from_nl(u: &UserTemplate) -> Template {
    Template {
        src: ip_of(&u.saddr, u.family),
        dst: ip_of(&u.id.daddr, u.family),
        mode: Mode::from_kernel(u.mode).unwrap_or(Mode::Tunnel),
        reqid: u.reqid,
    }
}

pub(crate) fn policy_from_nl(info: &UserPolicyInfo, nlas: &[XfrmAttrs]) -> Option<PolicyInfo> {
    let dir = Dir::from_kernel(info.direction)?;
    let templates = nlas
        .iter()
        .find_map(|a| match a {
            XfrmAttrs::Template(t) => Some(t.iter().map(template_from_nl).collect()),
            _ => None,
        })
        .unwrap_or_default();
    Some(PolicyInfo {
        key: PolicyKey {
            selector: selector_from_nl(&info.selector),
            dir,
            mark: mark_of(nlas),
            if_id: if_id_of(nlas),
        },
        action: if info.action == 1 {
            Action::Block
        } else {
            Action::Allow
        },
        priority: info.priority,
        index: info.index,
        templates,
        add_time: info.lifetime_cur.add_time,
        use_time: info.lifetime_cur.use_time,
    })
}
