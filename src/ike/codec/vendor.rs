//! The Vendor ID payload (RFC 7296 3.12).

use super::{Codec, DecodeError, Reader};

/// Vendor ID: opaque bytes (strongSwan sends an MD5 of its name when configured to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorPayload {
    pub data: Vec<u8>,
}

impl Codec for VendorPayload {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.data);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(VendorPayload {
            data: r.rest().to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let v = VendorPayload {
            data: b"vpnd".to_vec(),
        };
        assert_eq!(VendorPayload::read_bytes(&v.get_encoding()).unwrap(), v);
        assert_eq!(VendorPayload::read_bytes(&[]).unwrap().data, b"");
    }
}
