//! The Traffic Selector payloads TSi and TSr (RFC 7296 3.13).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::reader::{patch_u16_len, u16_placeholder};
use super::{Codec, DecodeError, Reader, TsType};

/// An address-range selector (TS_IPV4_ADDR_RANGE / TS_IPV6_ADDR_RANGE, RFC 7296 3.13.1).
/// Both addresses are of one family; the constructor and the decoder ensure it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrafficSelector {
    /// IP protocol number, 0 = any.
    pub ip_protocol: u8,
    pub start_port: u16,
    pub end_port: u16,
    start_addr: IpAddr,
    end_addr: IpAddr,
}

impl TrafficSelector {
    /// None when the two addresses are of different families.
    pub fn new(
        ip_protocol: u8,
        start_port: u16,
        end_port: u16,
        start_addr: IpAddr,
        end_addr: IpAddr,
    ) -> Option<Self> {
        (start_addr.is_ipv4() == end_addr.is_ipv4()).then_some(TrafficSelector {
            ip_protocol,
            start_port,
            end_port,
            start_addr,
            end_addr,
        })
    }

    pub fn start_addr(&self) -> IpAddr {
        self.start_addr
    }

    pub fn end_addr(&self) -> IpAddr {
        self.end_addr
    }

    pub fn ts_type(&self) -> TsType {
        if self.start_addr.is_ipv4() {
            TsType::IPV4_ADDR_RANGE
        } else {
            TsType::IPV6_ADDR_RANGE
        }
    }
}

/// One selector as received: an address range, or a type we do not interpret (kept so the
/// engine can narrow it away rather than fail the whole payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TsEntry {
    Ip(TrafficSelector),
    Other { ts_type: TsType, body: Vec<u8> },
}

/// TSi / TSr body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TsPayload {
    pub entries: Vec<TsEntry>,
}

impl TsPayload {
    pub fn from_selectors(ts: impl IntoIterator<Item = TrafficSelector>) -> Self {
        TsPayload {
            entries: ts.into_iter().map(TsEntry::Ip).collect(),
        }
    }

    /// The address-range selectors, skipping unknown types.
    pub fn ip_selectors(&self) -> impl Iterator<Item = &TrafficSelector> + '_ {
        self.entries.iter().filter_map(|e| match e {
            TsEntry::Ip(ts) => Some(ts),
            TsEntry::Other { .. } => None,
        })
    }
}

fn read_addr(r: &mut Reader<'_>, v4: bool) -> Result<IpAddr, DecodeError> {
    Ok(if v4 {
        IpAddr::V4(Ipv4Addr::from(r.array::<4>()?))
    } else {
        IpAddr::V6(Ipv6Addr::from(r.array::<16>()?))
    })
}

fn put_addr(a: IpAddr, out: &mut Vec<u8>) {
    match a {
        IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
    }
}

impl Codec for TsPayload {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::try_from(self.entries.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(&[0, 0, 0]);
        for e in &self.entries {
            let start = out.len();
            match e {
                TsEntry::Ip(ts) => {
                    out.push(ts.ts_type().0);
                    out.push(ts.ip_protocol);
                    let pos = u16_placeholder(out);
                    out.extend_from_slice(&ts.start_port.to_be_bytes());
                    out.extend_from_slice(&ts.end_port.to_be_bytes());
                    put_addr(ts.start_addr, out);
                    put_addr(ts.end_addr, out);
                    patch_u16_len(out, pos, start);
                }
                TsEntry::Other { ts_type, body } => {
                    out.push(ts_type.0);
                    let Some((first, rest)) = body.split_first() else {
                        out.extend_from_slice(&[0, 0, 4]);
                        continue;
                    };
                    // `body` holds everything after the TS Type and Selector Length except the
                    // octet between them, which is stored first.
                    out.push(*first);
                    let pos = u16_placeholder(out);
                    out.extend_from_slice(rest);
                    patch_u16_len(out, pos, start);
                }
            }
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let count = usize::from(r.u8()?);
        let _reserved = r.take(3)?;
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let ts_type = TsType(r.u8()?);
            let second = r.u8()?;
            let len = usize::from(r.u16()?);
            let body_len = len
                .checked_sub(4)
                .ok_or(DecodeError::InvalidLength("traffic selector"))?;
            let mut body = r.sub(body_len, "traffic selector")?;
            let v4 = match ts_type {
                TsType::IPV4_ADDR_RANGE => Some(true),
                TsType::IPV6_ADDR_RANGE => Some(false),
                _ => None,
            };
            let entry = match v4 {
                Some(v4) => {
                    let start_port = body.u16()?;
                    let end_port = body.u16()?;
                    let start_addr = read_addr(&mut body, v4)?;
                    let end_addr = read_addr(&mut body, v4)?;
                    body.expect_empty("traffic selector")?;
                    TsEntry::Ip(TrafficSelector {
                        ip_protocol: second,
                        start_port,
                        end_port,
                        start_addr,
                        end_addr,
                    })
                }
                None => {
                    let mut b = vec![second];
                    b.extend_from_slice(body.rest());
                    TsEntry::Other { ts_type, body: b }
                }
            };
            entries.push(entry);
        }
        r.expect_empty("traffic selectors")?;
        Ok(TsPayload { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TsPayload {
        let mut p = TsPayload::from_selectors([
            TrafficSelector::new(
                0,
                0,
                65535,
                "10.0.0.0".parse().unwrap(),
                "10.0.0.255".parse().unwrap(),
            )
            .unwrap(),
            TrafficSelector::new(
                17,
                500,
                500,
                "2001:db8::".parse().unwrap(),
                "2001:db8::ffff".parse().unwrap(),
            )
            .unwrap(),
        ]);
        p.entries.push(TsEntry::Other {
            ts_type: TsType(10),
            body: vec![0, 1, 2, 3],
        });
        p
    }

    #[test]
    fn round_trip() {
        let p = sample();
        let b = p.get_encoding();
        assert_eq!(b[0], 3);
        assert_eq!(TsPayload::read_bytes(&b).unwrap(), p);
        assert_eq!(p.ip_selectors().count(), 2);
        assert!(
            TrafficSelector::new(0, 0, 0, "10.0.0.1".parse().unwrap(), "::1".parse().unwrap())
                .is_none()
        );
    }

    #[test]
    fn rejects_malformed() {
        let b = sample().get_encoding();
        for n in 0..b.len() {
            assert!(TsPayload::read_bytes(&b[..n]).is_err(), "prefix {n}");
        }
        // Count larger than the selectors present.
        let mut c = b.clone();
        c[0] = 4;
        assert!(TsPayload::read_bytes(&c).is_err());
        // Count smaller: trailing data.
        let mut c = b.clone();
        c[0] = 1;
        assert!(TsPayload::read_bytes(&c).is_err());
        // IPv4 selector claiming the IPv6 length.
        let mut c = b.clone();
        c[7] = 40;
        assert!(TsPayload::read_bytes(&c).is_err());
    }
}
