//! The Key Exchange payload (RFC 7296 3.4).

use super::{Codec, DecodeError, DhGroupId, Reader};

/// KE payload body: the DH group and the sender's public value. The value's length is checked
/// against the group by `crypto::dh` (it is group specific).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KePayload {
    pub group: DhGroupId,
    pub data: Vec<u8>,
}

impl Codec for KePayload {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.group.0.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.data);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let group = DhGroupId(r.u16()?);
        let _reserved = r.u16()?;
        let data = r.rest().to_vec();
        if data.is_empty() {
            return Err(DecodeError::InvalidLength("KE data"));
        }
        Ok(KePayload { group, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let ke = KePayload {
            group: DhGroupId::CURVE25519,
            data: vec![7; 32],
        };
        let b = ke.get_encoding();
        assert_eq!(&b[..4], &[0, 31, 0, 0]);
        assert_eq!(KePayload::read_bytes(&b).unwrap(), ke);
        assert!(KePayload::read_bytes(&b[..4]).is_err());
        assert!(KePayload::read_bytes(&b[..3]).is_err());
        assert!(KePayload::read_bytes(&[]).is_err());
    }
}
