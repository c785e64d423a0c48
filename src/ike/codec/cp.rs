//! The Configuration payload (RFC 7296 3.15), minimal: attributes as type and bytes.

use super::reader::{patch_u16_len, u16_placeholder};
use super::{Codec, DecodeError, Reader};

/// CFG Type (RFC 7296 3.15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CfgType(pub u8);

impl CfgType {
    pub const REQUEST: Self = Self(1);
    pub const REPLY: Self = Self(2);
    pub const SET: Self = Self(3);
    pub const ACK: Self = Self(4);
}

/// A configuration attribute (RFC 7296 3.15.1); e.g. INTERNAL_IP4_ADDRESS is type 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpAttribute {
    /// Attribute type (15 bits; the reserved top bit is dropped).
    pub kind: u16,
    pub value: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpPayload {
    pub cfg_type: CfgType,
    pub attributes: Vec<CpAttribute>,
}

impl CpPayload {
    pub const INTERNAL_IP4_ADDRESS: u16 = 1;
    pub const INTERNAL_IP4_NETMASK: u16 = 2;
    pub const INTERNAL_IP4_DNS: u16 = 3;
    /// Ignored by the responder (3.15.1: a client's version string, nothing to answer).
    pub const APPLICATION_VERSION: u16 = 7;
    pub const INTERNAL_IP6_ADDRESS: u16 = 8;
    pub const INTERNAL_IP6_DNS: u16 = 10;
}

impl Codec for CpPayload {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.cfg_type.0);
        out.extend_from_slice(&[0, 0, 0]);
        for a in &self.attributes {
            out.extend_from_slice(&(a.kind & 0x7fff).to_be_bytes());
            let pos = u16_placeholder(out);
            let start = out.len();
            out.extend_from_slice(&a.value);
            patch_u16_len(out, pos, start);
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let cfg_type = CfgType(r.u8()?);
        let _reserved = r.take(3)?;
        let mut attributes = Vec::new();
        while !r.is_empty() {
            let kind = r.u16()? & 0x7fff;
            let len = usize::from(r.u16()?);
            let value = r.take_for(len, "configuration attribute")?.to_vec();
            attributes.push(CpAttribute { kind, value });
        }
        Ok(CpPayload {
            cfg_type,
            attributes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let cp = CpPayload {
            cfg_type: CfgType::REQUEST,
            attributes: vec![
                CpAttribute {
                    kind: CpPayload::INTERNAL_IP4_ADDRESS,
                    value: vec![],
                },
                CpAttribute {
                    kind: CpPayload::INTERNAL_IP4_DNS,
                    value: vec![10, 0, 0, 1],
                },
            ],
        };
        let b = cp.get_encoding();
        assert_eq!(CpPayload::read_bytes(&b).unwrap(), cp);
        assert!(CpPayload::read_bytes(&b[..b.len() - 1]).is_err());
        assert!(CpPayload::read_bytes(&b[..2]).is_err());
    }
}
