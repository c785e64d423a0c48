//! Parsers for the scalars the YAML writes as text: durations, identities, traffic
//! selectors, peer addresses, octal modes. Each returns a message without location; the
//! caller attaches file, line, column and field.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use crate::ike::codec::Identity;
use crate::ike::proposal::DhGroup;

use super::{PeerAddress, TsSpec};

/// `"30s"`, `"10m"`, `"24h"`, `"1d"`, `"1h30m"` or plain seconds (`"30"`).
pub fn duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration (expected e.g. 30s, 10m, 24h or plain seconds)".into());
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("'{t}': too large"));
    }
    let mut total: u64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "'{t}': not a duration (expected e.g. 30s, 10m, 24h, 1d, 1h30m or plain seconds)"
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("'{t}': too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let mult = match unit {
            "s" | "sec" => 1,
            "m" | "min" => 60,
            "h" => 3600,
            "d" => 86400,
            "" => {
                return Err(format!(
                    "'{t}': a number inside a duration needs a unit (s, m, h or d)"
                ))
            }
            u => return Err(format!("'{t}': unknown unit '{u}' (expected s, m, h or d)")),
        };
        total = n
            .checked_mul(mult)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("'{t}': too large"))?;
    }
    Ok(Duration::from_secs(total))
}

/// An identity as written: `%any`, or a concrete [`Identity`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdSpec {
    /// `%any`: accept any identity (remote_id only).
    Any,
    /// A concrete identity.
    Id(Identity),
}

/// strongSwan-style identity syntax:
/// - an IPv4/IPv6 address → ID_IPV4_ADDR / ID_IPV6_ADDR;
/// - `user@example.com` (or `@@user@example.com`) → ID_RFC822_ADDR;
/// - `@vpn.example.com` or `vpn.example.com` → ID_FQDN;
/// - `keyid:text` (bytes of the text) or `keyid:#0a1b…` (hex) → ID_KEY_ID;
/// - `%any` → any identity.
pub fn identity(s: &str) -> Result<IdSpec, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty identity".into());
    }
    if t.eq_ignore_ascii_case("%any") {
        return Ok(IdSpec::Any);
    }
    if let Some(rest) = t.strip_prefix("keyid:") {
        if rest.is_empty() {
            return Err("'keyid:' needs a value (keyid:text or keyid:#hex)".into());
        }
        if let Some(hex) = rest.strip_prefix('#') {
            return hex_decode(hex)
                .map(|b| IdSpec::Id(Identity::KeyId(b)))
                .map_err(|e| format!("'{t}': {e}"));
        }
        return Ok(IdSpec::Id(Identity::KeyId(rest.as_bytes().to_vec())));
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(IdSpec::Id(match ip {
            IpAddr::V4(a) => Identity::Ipv4(a),
            IpAddr::V6(a) => Identity::Ipv6(a),
        }));
    }
    if let Some(rest) = t.strip_prefix("@@") {
        return user_fqdn(rest).map_err(|e| format!("'{t}': {e}"));
    }
    if let Some(rest) = t.strip_prefix('@') {
        return fqdn(rest).map_err(|e| format!("'{t}': {e}"));
    }
    if t.contains('@') {
        return user_fqdn(t).map_err(|e| format!("'{t}': {e}"));
    }
    fqdn(t).map_err(|e| format!("'{t}': {e}"))
}

fn name_chars_ok(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

fn fqdn(s: &str) -> Result<IdSpec, String> {
    if s.is_empty() {
        return Err("empty name".into());
    }
    if s.len() > 253 {
        return Err("a name is at most 253 characters".into());
    }
    if !name_chars_ok(s) {
        return Err(
            "not an identity: expected an IP address, user@domain, a host name \
                    (letters, digits, '.', '-', '_'), @name or keyid:… \
                    (distinguished names are not supported)"
                .into(),
        );
    }
    Ok(IdSpec::Id(Identity::Fqdn(s.to_string())))
}

fn user_fqdn(s: &str) -> Result<IdSpec, String> {
    let Some((user, domain)) = s.split_once('@') else {
        return Err("expected user@domain".into());
    };
    if user.is_empty() || user.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the user part before '@' is empty or contains spaces".into());
    }
    if domain.is_empty() || !name_chars_ok(domain) {
        return Err("the domain after '@' is empty or not a host name".into());
    }
    Ok(IdSpec::Id(Identity::UserFqdn(s.to_string())))
}

fn hex_decode(h: &str) -> Result<Vec<u8>, String> {
    let h: String = h.chars().filter(|c| *c != ':').collect();
    if h.is_empty() || !h.len().is_multiple_of(2) {
        return Err("hex needs an even, non-zero number of digits".into());
    }
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).map_err(|_| "not hex".to_string()))
        .collect()
}

/// A prefix as written: `10.0.0.0/24` or a single address (host prefix). Host bits must be
/// zero, so `10.0.0.1/24` (probably a typo) is refused with the intended prefix suggested.
pub fn prefix(s: &str) -> Result<IpNet, String> {
    let t = s.trim();
    if t.contains('/') {
        let net: IpNet = t
            .parse()
            .map_err(|_| format!("'{t}': not a prefix (expected e.g. 10.0.0.0/24)"))?;
        if net.trunc() != net {
            return Err(format!(
                "'{t}': host bits are set (did you mean {}?)",
                net.trunc()
            ));
        }
        Ok(net)
    } else {
        t.parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("'{t}': not an IP address or prefix"))
    }
}

/// A traffic selector in strongSwan syntax: `10.0.0.0/24`, `10.0.0.0/24[tcp/443]`,
/// `10.0.0.0/24[udp/1000-2000]`, `10.0.0.0/24[tcp]`, `fd00::/64[58]`.
pub fn ts(s: &str) -> Result<TsSpec, String> {
    let t = s.trim();
    let (net_s, sel) = match t.find('[') {
        Some(i) => {
            let Some(inner) = t[i + 1..].strip_suffix(']') else {
                return Err(format!(
                    "'{t}': missing ']' (expected e.g. 10.0.0.0/24[tcp/443])"
                ));
            };
            (&t[..i], Some(inner))
        }
        None => (t, None),
    };
    let net = prefix(net_s)?;
    let mut spec = TsSpec {
        net,
        proto: 0,
        ports: (0, 65535),
    };
    let Some(sel) = sel else {
        return Ok(spec);
    };
    let (proto_s, port_s) = match sel.split_once('/') {
        Some((a, b)) => (a.trim(), Some(b.trim())),
        None => (sel.trim(), None),
    };
    spec.proto = match proto_s.to_ascii_lowercase().as_str() {
        "" | "%any" | "any" => 0,
        "icmp" => 1,
        "tcp" => 6,
        "udp" => 17,
        "gre" => 47,
        "icmpv6" | "ipv6-icmp" => 58,
        "sctp" => 132,
        n => n.parse::<u8>().map_err(|_| {
            format!(
                "'{t}': unknown protocol '{proto_s}' (expected tcp, udp, icmp, icmpv6, sctp, \
                 gre or a number 0..255)"
            )
        })?,
    };
    if let Some(p) = port_s {
        if !(p.is_empty() || p.eq_ignore_ascii_case("%any")) {
            let port = |x: &str| {
                x.trim()
                    .parse::<u16>()
                    .map_err(|_| format!("'{t}': port '{x}' is not a number 0..65535"))
            };
            spec.ports = match p.split_once('-') {
                Some((a, b)) => (port(a)?, port(b)?),
                None => {
                    let v = port(p)?;
                    (v, v)
                }
            };
            if spec.ports.0 > spec.ports.1 {
                return Err(format!("'{t}': port range is reversed"));
            }
            if spec.proto == 0 {
                return Err(format!("'{t}': a port needs a protocol (e.g. [tcp/{p}])"));
            }
        }
    }
    Ok(spec)
}

/// `any`/`%any`, a prefix (respond-only), or one address. A host prefix (/32, /128) is
/// the single address.
pub fn peer_address(s: &str) -> Result<PeerAddress, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("any") || t.eq_ignore_ascii_case("%any") {
        return Ok(PeerAddress::Any);
    }
    if t.contains('/') {
        let net = prefix(t)?;
        if net.prefix_len() == net.max_prefix_len() {
            return Ok(PeerAddress::Single(net.addr()));
        }
        return Ok(PeerAddress::Prefix(net));
    }
    t.parse::<IpAddr>().map(PeerAddress::Single).map_err(|_| {
        format!("'{t}': expected an IP address, a prefix or 'any' (host names are not resolved)")
    })
}

pub fn ip(s: &str) -> Result<IpAddr, String> {
    let t = s.trim();
    t.parse::<IpAddr>()
        .map_err(|_| format!("'{t}': not an IP address (host names are not resolved)"))
}

/// An unsigned number in decimal, `0x` hex or `0o` octal.
pub fn u32_number(s: &str) -> Result<u32, String> {
    let t = s.trim().replace('_', "");
    let r = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u32::from_str_radix(h, 16)
    } else if let Some(o) = t.strip_prefix("0o") {
        u32::from_str_radix(o, 8)
    } else {
        t.parse::<u32>()
    };
    r.map_err(|_| format!("'{t}': not a number 0..=0xffffffff (decimal or 0x hex)"))
}

/// A file mode, always octal as with chmod: `0660`, `660`, `0o660`.
pub fn mode(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o777 && !digits.is_empty() => Ok(m),
        _ => Err(format!(
            "'{t}': expected an octal permission mode such as 0660 (at most 0777)"
        )),
    }
}

/// The PFS group for CREATE_CHILD_SA: `none` or a group name.
pub fn pfs(s: &str) -> Result<Option<DhGroup>, String> {
    Ok(Some(match s.trim().to_ascii_lowercase().as_str() {
        "none" | "" => return Ok(None),
        "modp2048" => DhGroup::Modp2048,
        "modp3072" => DhGroup::Modp3072,
        "ecp256" => DhGroup::Ecp256,
        "ecp384" => DhGroup::Ecp384,
        "x25519" | "curve25519" => DhGroup::Curve25519,
        other => {
            return Err(format!(
                "'{other}': unknown DH group (expected none, modp2048, modp3072, ecp256, ecp384 \
                 or x25519)"
            ))
        }
    }))
}
