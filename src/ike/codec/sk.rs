//! The Encrypted payload (RFC 7296 3.14) as raw bytes; protection lives in `crypto::cipher`.

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
}
