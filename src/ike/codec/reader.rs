//! A bounds-checked cursor over received bytes and the `Codec` trait (the rustls pattern).

use super::DecodeError;

/// A cursor over untrusted bytes. Every read checks what is left and fails instead of panicking.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, offset: 0 }
    }

    /// The next `n` bytes; `what` names the field for the error.
    pub fn take_for(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let rest = self.buf.get(self.offset..).unwrap_or_default();
        let out = rest.get(..n).ok_or(DecodeError::Truncated(what))?;
        self.offset += n;
        Ok(out)
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        self.take_for(n, "field")
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A reader over the next `len` bytes, so a length-prefixed structure cannot read past its
    /// own end.
    pub fn sub(&mut self, len: usize, what: &'static str) -> Result<Reader<'a>, DecodeError> {
        self.take_for(len, what).map(Reader::new)
    }

    /// Everything not yet read.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = self.buf.get(self.offset..).unwrap_or_default();
        self.offset = self.buf.len();
        out
    }

    pub fn is_empty(&self) -> bool {
        self.left() == 0
    }

    pub fn left(&self) -> usize {
        self.buf.len().saturating_sub(self.offset)
    }

    /// How many bytes were read so far.
    pub fn used(&self) -> usize {
        self.offset
    }

    /// Fails when bytes are left over after the structure `what`.
    pub fn expect_empty(&self, what: &'static str) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingData(what))
        }
    }
}

/// A wire structure: `read` consumes exactly its encoding, `encode` appends it.
pub trait Codec: Sized {
    fn encode(&self, out: &mut Vec<u8>);

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    fn get_encoding(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decodes a whole buffer; leftover bytes are an error.
    fn read_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let v = Self::read(&mut r)?;
        r.expect_empty("structure")?;
        Ok(v)
    }
}

/// Appends a 16-bit length placeholder and returns its position for [`patch_u16_len`].
pub(crate) fn u16_placeholder(out: &mut Vec<u8>) -> usize {
    let pos = out.len();
    out.extend_from_slice(&[0, 0]);
    pos
}

/// Writes `out.len() - start` into the placeholder at `pos`. Lengths beyond 16 bits saturate;
/// callers that can get there (whole payloads) check first, see `Message::encode`.
pub(crate) fn patch_u16_len(out: &mut [u8], pos: usize, start: usize) {
    let len = u16::try_from(out.len().saturating_sub(start)).unwrap_or(u16::MAX);
    if let Some(slot) = out.get_mut(pos..pos + 2) {
        slot.copy_from_slice(&len.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_bounds() {
        let mut r = Reader::new(&[1, 0, 2, 0, 0, 0, 3, 9]);
        assert_eq!(r.u8().unwrap(), 1);
        assert_eq!(r.u16().unwrap(), 2);
        assert_eq!(r.u32().unwrap(), 3);
        assert!(r.u16().is_err());
        let mut sub = r.sub(1, "x").unwrap();
        assert_eq!(sub.u8().unwrap(), 9);
        assert!(sub.u8().is_err());
        assert!(r.is_empty());
        assert!(r.sub(1, "x").is_err());
        assert!(Reader::new(&[0; 7]).u64().is_err());
        assert!(Reader::new(&[]).take(usize::MAX).is_err());
    }
}
