//! The Encrypted payload (RFC 7296 3.14) and the Encrypted Fragment payload (RFC 7383 2.5)
//! as raw bytes; protection lives in `crypto::cipher`, reassembly in `ike::fragment`.

use super::{Codec, DecodeError, PayloadType, Reader};

/// SK payload: `first_inner` is its Next Payload field (the type of the first payload inside),
/// `body` is IV || ciphertext || ICV. It is always the last payload of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkPayload {
    pub first_inner: PayloadType,
    pub body: Vec<u8>,
}

impl SkPayload {
    /// Reads the body; `first_inner` comes from the generic payload header.
    pub fn read_body(first_inner: PayloadType, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(SkPayload {
            first_inner,
            body: r.rest().to_vec(),
        })
    }

    pub fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.body);
    }
}

// The generic header carries `first_inner`, so only the body is the Codec part; a bare `read`
// cannot know it and records NONE.
impl Codec for SkPayload {
    fn encode(&self, out: &mut Vec<u8>) {
        self.encode_body(out);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::read_body(PayloadType::NONE, r)
    }
}

/// SKF payload (RFC 7383 2.5): one fragment of an encrypted message. `first_inner` is the type
/// of the first inner payload in fragment 1 and NONE in the others; `body` is IV ||
/// ciphertext || ICV of this fragment's share of the inner payloads. Fragment Number and
/// Total Fragments are kept as received (0 or a number above the total included): the
/// reassembler refuses them and counts why, which a decode error could not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkfPayload {
    pub first_inner: PayloadType,
    pub number: u16,
    pub total: u16,
    pub body: Vec<u8>,
}

/// Fragment Number and Total Fragments precede the IV (RFC 7383 2.5) and are covered by the ICV.
pub const SKF_FIELDS_LEN: usize = 4;

impl SkfPayload {
    pub fn read_body(first_inner: PayloadType, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(SkfPayload {
            first_inner,
            number: r.u16()?,
            total: r.u16()?,
            body: r.rest().to_vec(),
        })
    }

    pub fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.number.to_be_bytes());
        out.extend_from_slice(&self.total.to_be_bytes());
        out.extend_from_slice(&self.body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let sk = SkPayload {
            first_inner: PayloadType::IDI,
            body: vec![9; 40],
        };
        let mut r = Reader::new(&sk.body);
        assert_eq!(SkPayload::read_body(PayloadType::IDI, &mut r).unwrap(), sk);
    }

    #[test]
    fn skf_round_trip_and_truncation() {
        let f = SkfPayload {
            first_inner: PayloadType::NONE,
            number: 2,
            total: 3,
            body: vec![7; 30],
        };
        let mut out = Vec::new();
        f.encode_body(&mut out);
        assert_eq!(&out[..4], &[0, 2, 0, 3]);
        let mut r = Reader::new(&out);
        assert_eq!(SkfPayload::read_body(PayloadType::NONE, &mut r).unwrap(), f);
        for n in 0..4 {
            let mut r = Reader::new(&out[..n]);
            assert!(SkfPayload::read_body(PayloadType::NONE, &mut r).is_err());
        }
    }
}
