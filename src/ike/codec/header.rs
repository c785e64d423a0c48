//! The IKE header (RFC 7296 3.1).

use super::{DecodeError, ExchangeType, PayloadType, Reader};

/// Size of the fixed IKE header.
pub const HEADER_LEN: usize = 28;

/// The header flags we act on (RFC 7296 3.1); other bits are ignored on receipt and sent as 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    /// I: sent by the original initiator of the IKE SA.
    pub initiator: bool,
    /// V: the sender can speak a higher major version.
    pub version: bool,
    /// R: this message is a response.
    pub response: bool,
}

impl Flags {
    const I: u8 = 0x08;
    const V: u8 = 0x10;
    const R: u8 = 0x20;

    pub fn from_byte(b: u8) -> Self {
        Flags {
            initiator: b & Self::I != 0,
            version: b & Self::V != 0,
            response: b & Self::R != 0,
        }
    }

    pub fn to_byte(self) -> u8 {
        (if self.initiator { Self::I } else { 0 })
            | (if self.version { Self::V } else { 0 })
            | (if self.response { Self::R } else { 0 })
    }
}

/// The IKE header without the fields `Message::encode` computes (Next Payload, Length).
/// SPIs are kept as big-endian integers so they can key maps directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub spi_i: u64,
    pub spi_r: u64,
    pub exchange: ExchangeType,
    pub flags: Flags,
    pub message_id: u32,
}

/// The header as read from the wire, with the computed fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawHeader {
    pub header: Header,
    pub next_payload: PayloadType,
    pub length: u32,
}

impl Header {
    /// Reads just the header of a datagram, with the version and length checks, so the caller can
    /// route by SPI and answer errors (INVALID_MAJOR_VERSION, UNSUPPORTED_CRITICAL_PAYLOAD) with the
    /// right SPIs and message ID even when the rest does not parse.
    pub fn peek(datagram: &[u8]) -> Result<Header, DecodeError> {
        let raw = Self::read_raw(&mut Reader::new(datagram))?;
        check_length(raw.length, datagram.len())?;
        Ok(raw.header)
    }

    pub(crate) fn read_raw(r: &mut Reader<'_>) -> Result<RawHeader, DecodeError> {
        let mut r = r.sub(HEADER_LEN, "IKE header")?;
        let spi_i = r.u64()?;
        let spi_r = r.u64()?;
        let next_payload = PayloadType(r.u8()?);
        let version = r.u8()?;
        // RFC 7296 2.5: reject a higher major version; ignore the minor version.
        let major = version >> 4;
        if major != 2 {
            return Err(DecodeError::UnsupportedMajorVersion(major));
        }
        let exchange = ExchangeType(r.u8()?);
        let flags = Flags::from_byte(r.u8()?);
        let message_id = r.u32()?;
        let length = r.u32()?;
        Ok(RawHeader {
            header: Header {
                spi_i,
                spi_r,
                exchange,
                flags,
                message_id,
            },
            next_payload,
            length,
        })
    }

    pub(crate) fn encode_raw(&self, next_payload: PayloadType, length: u32, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.spi_i.to_be_bytes());
        out.extend_from_slice(&self.spi_r.to_be_bytes());
        out.push(next_payload.0);
        out.push(0x20); // version 2.0
        out.push(self.exchange.0);
        out.push(self.flags.to_byte());
        out.extend_from_slice(&self.message_id.to_be_bytes());
        out.extend_from_slice(&length.to_be_bytes());
    }
}

/// RFC 7296 3.1: Length is the whole message, so it must equal what the datagram carried.
pub(crate) fn check_length(header: u32, datagram: usize) -> Result<(), DecodeError> {
    if usize::try_from(header).ok() != Some(datagram) {
        return Err(DecodeError::LengthMismatch { header, datagram });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            spi_i: 0x0102030405060708,
            spi_r: 0,
            exchange: ExchangeType::IKE_SA_INIT,
            flags: Flags {
                initiator: true,
                version: false,
                response: false,
            },
            message_id: 0,
        }
    }

    #[test]
    fn round_trip() {
        let mut out = Vec::new();
        sample().encode_raw(PayloadType::SA, 28, &mut out);
        assert_eq!(out.len(), HEADER_LEN);
        assert_eq!(out[17], 0x20);
        assert_eq!(out[19], 0x08);
        assert_eq!(Header::peek(&out).unwrap(), sample());
    }

    #[test]
    fn rejects_bad_version_length_and_truncation() {
        let mut out = Vec::new();
        sample().encode_raw(PayloadType::SA, 28, &mut out);
        let mut v3 = out.clone();
        v3[17] = 0x30;
        assert_eq!(
            Header::peek(&v3),
            Err(DecodeError::UnsupportedMajorVersion(3))
        );
        let mut minor = out.clone();
        minor[17] = 0x21;
        assert!(Header::peek(&minor).is_ok());
        let mut long = out.clone();
        long.push(0);
        assert!(matches!(
            Header::peek(&long),
            Err(DecodeError::LengthMismatch { .. })
        ));
        for n in 0..HEADER_LEN {
            assert!(Header::peek(&out[..n]).is_err());
        }
    }
}
