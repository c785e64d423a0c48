//! The Identification payloads IDi and IDr (RFC 7296 3.5).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Codec, DecodeError, IdType, Reader};

/// A typed identity. Text identities that are not UTF-8, and types we do not interpret, are
/// kept as `Other` so they still compare and re-encode byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    Fqdn(String),
    /// ID_RFC822_ADDR (user@fqdn).
    UserFqdn(String),
    KeyId(Vec<u8>),
    Other {
        kind: IdType,
        data: Vec<u8>,
    },
}

impl Identity {
    pub fn id_type(&self) -> IdType {
        match self {
            Identity::Ipv4(_) => IdType::IPV4_ADDR,
            Identity::Ipv6(_) => IdType::IPV6_ADDR,
            Identity::Fqdn(_) => IdType::FQDN,
            Identity::UserFqdn(_) => IdType::RFC822_ADDR,
            Identity::KeyId(_) => IdType::KEY_ID,
            Identity::Other { kind, .. } => *kind,
        }
    }

    /// The Identification Data field.
    pub fn data(&self) -> Vec<u8> {
        match self {
            Identity::Ipv4(a) => a.octets().to_vec(),
            Identity::Ipv6(a) => a.octets().to_vec(),
            Identity::Fqdn(s) | Identity::UserFqdn(s) => s.as_bytes().to_vec(),
            Identity::KeyId(d) | Identity::Other { data: d, .. } => d.clone(),
        }
    }

    fn parse(kind: IdType, data: &[u8]) -> Result<Self, DecodeError> {
        Ok(match kind {
            IdType::IPV4_ADDR => {
                let o: [u8; 4] = data
                    .try_into()
                    .map_err(|_| DecodeError::InvalidLength("ID_IPV4_ADDR"))?;
                Identity::Ipv4(Ipv4Addr::from(o))
            }
            IdType::IPV6_ADDR => {
                let o: [u8; 16] = data
                    .try_into()
                    .map_err(|_| DecodeError::InvalidLength("ID_IPV6_ADDR"))?;
                Identity::Ipv6(Ipv6Addr::from(o))
            }
            IdType::FQDN | IdType::RFC822_ADDR => match std::str::from_utf8(data) {
                Ok(s) if kind == IdType::FQDN => Identity::Fqdn(s.to_owned()),
                Ok(s) => Identity::UserFqdn(s.to_owned()),
                Err(_) => Identity::Other {
                    kind,
                    data: data.to_vec(),
                },
            },
            IdType::KEY_ID => Identity::KeyId(data.to_vec()),
            _ => Identity::Other {
                kind,
                data: data.to_vec(),
            },
        })
    }
}

/// IDi / IDr body. The encoding of this struct is the `IDx'` that PSK AUTH signs (RFC 7296 2.15),
/// so the reserved octets are kept as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPayload {
    pub identity: Identity,
    pub reserved: [u8; 3],
}

impl IdPayload {
    pub fn new(identity: Identity) -> Self {
        IdPayload {
            identity,
            reserved: [0; 3],
        }
    }
}

impl Codec for IdPayload {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.identity.id_type().0);
        out.extend_from_slice(&self.reserved);
        out.extend_from_slice(&self.identity.data());
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let kind = IdType(r.u8()?);
        let reserved = r.array()?;
        let data = r.rest();
        if data.is_empty() {
            return Err(DecodeError::InvalidLength("identification data"));
        }
        Ok(IdPayload {
            identity: Identity::parse(kind, data)?,
            reserved,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_all_types() {
        let ids = [
            Identity::Ipv4(Ipv4Addr::new(192, 0, 2, 1)),
            Identity::Ipv6("2001:db8::1".parse().unwrap()),
            Identity::Fqdn("vpn.example.com".into()),
            Identity::UserFqdn("alice@example.com".into()),
            Identity::KeyId(vec![1, 2, 3]),
            Identity::Other {
                kind: IdType::DER_ASN1_DN,
                data: vec![0x30, 0],
            },
            Identity::Other {
                kind: IdType::FQDN,
                data: vec![0xff, 0xfe],
            },
        ];
        for id in ids {
            let p = IdPayload::new(id);
            assert_eq!(IdPayload::read_bytes(&p.get_encoding()).unwrap(), p);
        }
    }

    #[test]
    fn rejects_bad_lengths() {
        assert!(IdPayload::read_bytes(&[1, 0, 0, 0, 1, 2, 3]).is_err());
        assert!(IdPayload::read_bytes(&[5, 0, 0, 0, 1, 2, 3, 4]).is_err());
        assert!(IdPayload::read_bytes(&[2, 0, 0, 0]).is_err());
        assert!(IdPayload::read_bytes(&[2, 0]).is_err());
    }
}
