//! The Security Association payload (RFC 7296 3.3): proposals, transforms, attributes.

use super::reader::{patch_u16_len, u16_placeholder};
use super::{
    Codec, DecodeError, DhGroupId, EncrId, EsnId, IntegId, PrfId, ProtocolId, Reader, TransformType,
};

/// Last Substruc values (RFC 7296 3.3.1, 3.3.2).
const MORE_PROPOSALS: u8 = 2;
const MORE_TRANSFORMS: u8 = 3;
const LAST: u8 = 0;

/// Transform attribute type Key Length (RFC 7296 3.3.5).
pub const ATTR_KEY_LENGTH: u16 = 14;

/// SA payload body: the proposals, in order of preference.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SaPayload {
    pub proposals: Vec<Proposal>,
}

/// One proposal: a protocol, its SPI (empty in IKE_SA_INIT, 8 bytes for IKE rekeys, 4 for
/// ESP/AH) and the transforms offered (an OR within a type, an AND across types).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub number: u8,
    pub protocol: ProtocolId,
    pub spi: Vec<u8>,
    pub transforms: Vec<Transform>,
}

/// One transform. The ID is kept raw because its meaning depends on `kind`; the typed
/// constructors and getters below cover the types we negotiate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    pub kind: TransformType,
    pub id: u16,
    pub attributes: Vec<TransformAttr>,
}

/// A transform attribute (RFC 7296 3.3.5): TV when the AF bit is set, TLV otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformAttr {
    /// Attribute type without the AF bit.
    pub kind: u16,
    pub value: AttrValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrValue {
    Tv(u16),
    Tlv(Vec<u8>),
}

impl Transform {
    pub fn new(kind: TransformType, id: u16) -> Self {
        Transform {
            kind,
            id,
            attributes: Vec::new(),
        }
    }

    /// An encryption transform; AES needs `key_bits` (RFC 7296 3.3.5).
    pub fn encr(id: EncrId, key_bits: Option<u16>) -> Self {
        let mut t = Transform::new(TransformType::ENCR, id.0);
        if let Some(bits) = key_bits {
            t.attributes.push(TransformAttr {
                kind: ATTR_KEY_LENGTH,
                value: AttrValue::Tv(bits),
            });
        }
        t
    }

    pub fn prf(id: PrfId) -> Self {
        Transform::new(TransformType::PRF, id.0)
    }

    pub fn integ(id: IntegId) -> Self {
        Transform::new(TransformType::INTEG, id.0)
    }

    pub fn dh(id: DhGroupId) -> Self {
        Transform::new(TransformType::DH, id.0)
    }

    pub fn esn(id: EsnId) -> Self {
        Transform::new(TransformType::ESN, id.0)
    }

    /// The Key Length attribute in bits, if present.
    pub fn key_length(&self) -> Option<u16> {
        self.attributes.iter().find_map(|a| match a.value {
            AttrValue::Tv(v) if a.kind == ATTR_KEY_LENGTH => Some(v),
            _ => None,
        })
    }

    /// True when an attribute other than Key Length is present: RFC 7296 3.3.6 says such a
    /// transform must be rejected, not negotiated without the attribute.
    pub fn has_unknown_attributes(&self) -> bool {
        self.attributes.iter().any(|a| a.kind != ATTR_KEY_LENGTH)
    }

    fn encode_with_last(&self, last: bool, out: &mut Vec<u8>) {
        let start = out.len();
        out.push(if last { LAST } else { MORE_TRANSFORMS });
        out.push(0);
        let len_pos = u16_placeholder(out);
        out.push(self.kind.0);
        out.push(0);
        out.extend_from_slice(&self.id.to_be_bytes());
        for a in &self.attributes {
            match &a.value {
                AttrValue::Tv(v) => {
                    out.extend_from_slice(&(0x8000 | (a.kind & 0x7fff)).to_be_bytes());
                    out.extend_from_slice(&v.to_be_bytes());
                }
                AttrValue::Tlv(v) => {
                    out.extend_from_slice(&(a.kind & 0x7fff).to_be_bytes());
                    let pos = u16_placeholder(out);
                    let vstart = out.len();
                    out.extend_from_slice(v);
                    patch_u16_len(out, pos, vstart);
                }
            }
        }
        patch_u16_len(out, len_pos, start);
    }

    /// Returns the transform and whether it said it was the last one.
    fn read_with_last(r: &mut Reader<'_>) -> Result<(Self, bool), DecodeError> {
        let last = match r.u8()? {
            LAST => true,
            MORE_TRANSFORMS => false,
            _ => return Err(DecodeError::InvalidValue("transform last substruc")),
        };
        let _reserved = r.u8()?;
        let len = usize::from(r.u16()?);
        let body_len = len
            .checked_sub(4)
            .ok_or(DecodeError::InvalidLength("transform"))?;
        let mut body = r.sub(body_len, "transform")?;
        let kind = TransformType(body.u8()?);
        let _reserved = body.u8()?;
        let id = body.u16()?;
        let mut attributes = Vec::new();
        while !body.is_empty() {
            let t = body.u16()?;
            let kind = t & 0x7fff;
            let value = if t & 0x8000 != 0 {
                AttrValue::Tv(body.u16()?)
            } else {
                let n = usize::from(body.u16()?);
                AttrValue::Tlv(body.take_for(n, "transform attribute")?.to_vec())
            };
            if kind == ATTR_KEY_LENGTH && !matches!(value, AttrValue::Tv(_)) {
                return Err(DecodeError::InvalidValue("key length attribute format"));
            }
            attributes.push(TransformAttr { kind, value });
        }
        Ok((
            Transform {
                kind,
                id,
                attributes,
            },
            last,
        ))
    }
}

impl Proposal {
    /// The transform IDs offered for `kind`, in order.
    pub fn ids(&self, kind: TransformType) -> impl Iterator<Item = &Transform> + '_ {
        self.transforms.iter().filter(move |t| t.kind == kind)
    }

    fn encode_with_last(&self, last: bool, out: &mut Vec<u8>) {
        let start = out.len();
        out.push(if last { LAST } else { MORE_PROPOSALS });
        out.push(0);
        let len_pos = u16_placeholder(out);
        out.push(self.number);
        out.push(self.protocol.0);
        out.push(u8::try_from(self.spi.len()).unwrap_or(u8::MAX));
        out.push(u8::try_from(self.transforms.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(&self.spi);
        let n = self.transforms.len();
        for (i, t) in self.transforms.iter().enumerate() {
            t.encode_with_last(i + 1 == n, out);
        }
        patch_u16_len(out, len_pos, start);
    }

    fn read_with_last(r: &mut Reader<'_>) -> Result<(Self, bool), DecodeError> {
        let last = match r.u8()? {
            LAST => true,
            MORE_PROPOSALS => false,
            _ => return Err(DecodeError::InvalidValue("proposal last substruc")),
        };
        let _reserved = r.u8()?;
        let len = usize::from(r.u16()?);
        let body_len = len
            .checked_sub(4)
            .ok_or(DecodeError::InvalidLength("proposal"))?;
        let mut body = r.sub(body_len, "proposal")?;
        let number = body.u8()?;
        let protocol = ProtocolId(body.u8()?);
        let spi_size = usize::from(body.u8()?);
        let count = usize::from(body.u8()?);
        // RFC 7296 3.3.1: SPI size is 0 or 8 for IKE (8 when rekeying), 4 for AH/ESP.
        let spi_ok = match protocol {
            ProtocolId::IKE => spi_size == 0 || spi_size == 8,
            ProtocolId::AH | ProtocolId::ESP => spi_size == 4,
            _ => true,
        };
        if !spi_ok {
            return Err(DecodeError::InvalidValue("proposal SPI size"));
        }
        let spi = body.take_for(spi_size, "proposal SPI")?.to_vec();
        let mut transforms = Vec::new();
        let mut saw_last = false;
        while !body.is_empty() {
            if saw_last {
                return Err(DecodeError::InvalidValue("transform after last"));
            }
            let (t, last) = Transform::read_with_last(&mut body)?;
            saw_last = last;
            transforms.push(t);
        }
        if transforms.len() != count || (count > 0 && !saw_last) {
            return Err(DecodeError::InvalidValue("number of transforms"));
        }
        Ok((
            Proposal {
                number,
                protocol,
                spi,
                transforms,
            },
            last,
        ))
    }
}

impl Codec for SaPayload {
    fn encode(&self, out: &mut Vec<u8>) {
        let n = self.proposals.len();
        for (i, p) in self.proposals.iter().enumerate() {
            p.encode_with_last(i + 1 == n, out);
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut proposals: Vec<Proposal> = Vec::new();
        let mut saw_last = false;
        while !r.is_empty() {
            if saw_last {
                return Err(DecodeError::InvalidValue("proposal after last"));
            }
            let (p, last) = Proposal::read_with_last(r)?;
            // RFC 7296 3.3.1: the first proposal is number 1 and each next one is one more;
            // a reply carries the single accepted proposal under its original number.
            let ok = match (proposals.first(), proposals.last()) {
                (Some(first), Some(prev)) => {
                    first.number == 1 && prev.number.checked_add(1) == Some(p.number)
                }
                _ => p.number != 0,
            };
            if !ok {
                return Err(DecodeError::InvalidValue("proposal number"));
            }
            saw_last = last;
            proposals.push(p);
        }
        if proposals.is_empty() || !saw_last {
            return Err(DecodeError::InvalidValue("SA payload without proposals"));
        }
        Ok(SaPayload { proposals })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn ike_proposal() -> SaPayload {
        SaPayload {
            proposals: vec![Proposal {
                number: 1,
                protocol: ProtocolId::IKE,
                spi: vec![],
                transforms: vec![
                    Transform::encr(EncrId::ENCR_AES_GCM_16, Some(256)),
                    Transform::prf(PrfId::PRF_HMAC_SHA2_256),
                    Transform::dh(DhGroupId::CURVE25519),
                ],
            }],
        }
    }

    #[test]
    fn round_trip() {
        let mut sa = ike_proposal();
        sa.proposals.push(Proposal {
            number: 2,
            protocol: ProtocolId::IKE,
            spi: vec![],
            transforms: vec![
                Transform::encr(EncrId::ENCR_AES_CBC, Some(128)),
                Transform::prf(PrfId::PRF_HMAC_SHA2_384),
                Transform::integ(IntegId::AUTH_HMAC_SHA2_384_192),
                Transform {
                    kind: TransformType::DH,
                    id: 14,
                    attributes: vec![TransformAttr {
                        kind: 99,
                        value: AttrValue::Tlv(vec![1, 2, 3]),
                    }],
                },
            ],
        });
        let bytes = sa.get_encoding();
        let back = SaPayload::read_bytes(&bytes).unwrap();
        assert_eq!(back, sa);
        assert_eq!(back.proposals[0].transforms[0].key_length(), Some(256));
        assert!(back.proposals[1].transforms[3].has_unknown_attributes());

        let esp = SaPayload {
            proposals: vec![Proposal {
                number: 3,
                protocol: ProtocolId::ESP,
                spi: vec![1, 2, 3, 4],
                transforms: vec![
                    Transform::encr(EncrId::ENCR_AES_GCM_16, Some(128)),
                    Transform::esn(EsnId::NO_ESN),
                ],
            }],
        };
        assert_eq!(SaPayload::read_bytes(&esp.get_encoding()).unwrap(), esp);
    }

    #[test]
    fn rejects_malformed() {
        let good = ike_proposal().get_encoding();
        for n in 0..good.len() {
            assert!(SaPayload::read_bytes(&good[..n]).is_err(), "prefix {n}");
        }
        // Last-substruc says more proposals follow, but none do.
        let mut b = good.clone();
        b[0] = MORE_PROPOSALS;
        assert!(SaPayload::read_bytes(&b).is_err());
        // Bad last-substruc value.
        let mut b = good.clone();
        b[0] = 7;
        assert!(SaPayload::read_bytes(&b).is_err());
        // Proposal number 0.
        let mut b = good.clone();
        b[4] = 0;
        assert!(SaPayload::read_bytes(&b).is_err());
        // Wrong transform count.
        let mut b = good.clone();
        b[7] = 2;
        assert!(SaPayload::read_bytes(&b).is_err());
        // ESP with an 8-byte SPI size.
        let mut b = good.clone();
        b[5] = 3;
        assert!(SaPayload::read_bytes(&b).is_err());
        // Proposal length below its header.
        let mut b = good.clone();
        b[2] = 0;
        b[3] = 3;
        assert!(SaPayload::read_bytes(&b).is_err());
        // Second proposal numbered 3.
        let mut sa = ike_proposal();
        let mut p = sa.proposals[0].clone();
        p.number = 3;
        sa.proposals.push(p);
        assert!(SaPayload::read_bytes(&sa.get_encoding()).is_err());
    }
}
