//! The Delete payload (RFC 7296 3.11).

use super::{Codec, DecodeError, ProtocolId, Reader};

/// Delete body: the IKE SA itself (protocol IKE, no SPIs) or Child SAs by their inbound SPI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletePayload {
    pub protocol: ProtocolId,
    pub spis: Vec<Vec<u8>>,
}

impl Codec for DeletePayload {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.protocol.0);
        let size = self.spis.first().map_or(0, Vec::len);
        out.push(u8::try_from(size).unwrap_or(u8::MAX));
        out.extend_from_slice(
            &u16::try_from(self.spis.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes(),
        );
        for spi in &self.spis {
            out.extend_from_slice(spi);
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let protocol = ProtocolId(r.u8()?);
        let spi_size = usize::from(r.u8()?);
        let count = usize::from(r.u16()?);
        // RFC 7296 3.11: IKE deletes carry no SPI; ESP/AH SPIs are 4 octets.
        let size_ok = match protocol {
            ProtocolId::IKE => spi_size == 0 && count == 0,
            ProtocolId::AH | ProtocolId::ESP => spi_size == 4,
            _ => false,
        };
        if !size_ok {
            return Err(DecodeError::InvalidValue("delete SPI size"));
        }
        if spi_size.checked_mul(count) != Some(r.left()) {
            return Err(DecodeError::InvalidLength("delete SPIs"));
        }
        let mut spis = Vec::with_capacity(count);
        for _ in 0..count {
            spis.push(r.take(spi_size)?.to_vec());
        }
        Ok(DeletePayload { protocol, spis })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let d = DeletePayload {
            protocol: ProtocolId::ESP,
            spis: vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8]],
        };
        let b = d.get_encoding();
        assert_eq!(DeletePayload::read_bytes(&b).unwrap(), d);
        let ike = DeletePayload {
            protocol: ProtocolId::IKE,
            spis: vec![],
        };
        assert_eq!(ike.get_encoding(), vec![1, 0, 0, 0]);
        assert_eq!(DeletePayload::read_bytes(&[1, 0, 0, 0]).unwrap(), ike);
        assert!(DeletePayload::read_bytes(&b[..b.len() - 1]).is_err());
        assert!(DeletePayload::read_bytes(&[3, 4, 0xff, 0xff]).is_err());
        assert!(DeletePayload::read_bytes(&[3, 8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }
}
