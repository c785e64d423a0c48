//! The Nonce payload (RFC 7296 3.9).

use super::{Codec, DecodeError, Reader};

/// RFC 7296 3.9: nonces are 16 to 256 octets.
pub const NONCE_MIN: usize = 16;
pub const NONCE_MAX: usize = 256;

/// Ni or Nr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoncePayload {
    pub data: Vec<u8>,
}

impl Codec for NoncePayload {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.data);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let data = r.rest();
        if !(NONCE_MIN..=NONCE_MAX).contains(&data.len()) {
            return Err(DecodeError::InvalidLength("nonce"));
        }
        Ok(NoncePayload {
            data: data.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bounds() {
        for len in [16, 32, 256] {
            let n = NoncePayload {
                data: vec![0xab; len],
            };
            assert_eq!(NoncePayload::read_bytes(&n.get_encoding()).unwrap(), n);
        }
        assert!(NoncePayload::read_bytes(&[0; 15]).is_err());
        assert!(NoncePayload::read_bytes(&[0; 257]).is_err());
        assert!(NoncePayload::read_bytes(&[]).is_err());
    }
}
