//! The Authentication payload (RFC 7296 3.8).

use super::{AuthMethod, Codec, DecodeError, Reader};

/// AUTH payload body. For SHARED_KEY_MIC the data is computed by `crypto::auth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPayload {
    pub method: AuthMethod,
    pub data: Vec<u8>,
}

impl Codec for AuthPayload {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.method.0);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&self.data);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let method = AuthMethod(r.u8()?);
        let _reserved = r.take(3)?;
        let data = r.rest().to_vec();
        if data.is_empty() {
            return Err(DecodeError::InvalidLength("AUTH data"));
        }
        Ok(AuthPayload { method, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let a = AuthPayload {
            method: AuthMethod::SHARED_KEY_MIC,
            data: vec![1; 32],
        };
        let b = a.get_encoding();
        assert_eq!(AuthPayload::read_bytes(&b).unwrap(), a);
        assert!(AuthPayload::read_bytes(&b[..4]).is_err());
        assert!(AuthPayload::read_bytes(&b[..2]).is_err());
    }
}
