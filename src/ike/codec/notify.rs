//! The Notify payload (RFC 7296 3.10).

use super::{Codec, DecodeError, NotifyType, ProtocolId, Reader};

/// Notify body. `spi` is empty unless the notification concerns a Child SA (e.g. REKEY_SA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyPayload {
    pub protocol: ProtocolId,
    pub spi: Vec<u8>,
    pub kind: NotifyType,
    pub data: Vec<u8>,
}

impl NotifyPayload {
    /// A notification about the IKE SA or the exchange: no protocol, no SPI.
    pub fn new(kind: NotifyType, data: Vec<u8>) -> Self {
        NotifyPayload {
            protocol: ProtocolId::NONE,
            spi: Vec::new(),
            kind,
            data,
        }
    }
}

impl Codec for NotifyPayload {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.protocol.0);
        out.push(u8::try_from(self.spi.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(&self.kind.0.to_be_bytes());
        out.extend_from_slice(&self.spi);
        out.extend_from_slice(&self.data);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let protocol = ProtocolId(r.u8()?);
        let spi_size = usize::from(r.u8()?);
        let kind = NotifyType(r.u16()?);
        let spi = r.take_for(spi_size, "notify SPI")?.to_vec();
        let data = r.rest().to_vec();
        Ok(NotifyPayload {
            protocol,
            spi,
            kind,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let n = NotifyPayload {
            protocol: ProtocolId::ESP,
            spi: vec![1, 2, 3, 4],
            kind: NotifyType::REKEY_SA,
            data: vec![],
        };
        let b = n.get_encoding();
        assert_eq!(NotifyPayload::read_bytes(&b).unwrap(), n);
        let c = NotifyPayload::new(NotifyType::COOKIE, vec![5; 16]);
        assert_eq!(NotifyPayload::read_bytes(&c.get_encoding()).unwrap(), c);
        assert!(NotifyPayload::read_bytes(&b[..6]).is_err());
        assert!(NotifyPayload::read_bytes(&b[..3]).is_err());
    }
}
