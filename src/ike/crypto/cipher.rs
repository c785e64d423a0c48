//! Protection of the Encrypted (SK) payload (RFC 7296 3.14; RFC 5282 for AES-GCM).
//!
//! SK body = IV || ciphertext || ICV, where the ciphertext covers
//! inner payloads || padding || pad length. The bytes authenticated besides the ciphertext are
//! the whole message from the IKE header up to the IV (the "prefix"):
//! - AES-GCM-16: AAD = prefix, nonce = 4-byte salt || 8-byte explicit IV, ICV = 16-byte tag.
//! - AES-CBC + HMAC: ICV = truncated HMAC over prefix || IV || ciphertext (encrypt-then-MAC),
//!   checked before anything is decrypted.

use aws_lc_rs::{aead, cipher, hmac};

use super::{ct_eq, CryptoError};
use crate::ike::codec::{
    decode_chain, encode_chain, DecodeError, EncodeError, EncrId, Header, IntegId, Message,
    Payload, PayloadList, PayloadType, SkfPayload, Transform,
};

/// The SK payload encryption transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encr {
    /// ENCR_AES_GCM_16 with a 128- or 256-bit key.
    AesGcm16 { key_bits: u16 },
    /// ENCR_AES_CBC with a 128- or 256-bit key; needs an [`Integ`].
    AesCbc { key_bits: u16 },
}

impl Encr {
    /// From a negotiated transform ID and its Key Length attribute (RFC 7296 3.3.5).
    pub fn from_transform(id: EncrId, key_bits: Option<u16>) -> Option<Self> {
        let bits = key_bits.filter(|b| *b == 128 || *b == 256)?;
        match id {
            EncrId::ENCR_AES_GCM_16 => Some(Encr::AesGcm16 { key_bits: bits }),
            EncrId::ENCR_AES_CBC => Some(Encr::AesCbc { key_bits: bits }),
            _ => None,
        }
    }

    /// The SA payload transform for this algorithm.
    pub fn transform(self) -> Transform {
        match self {
            Encr::AesGcm16 { key_bits } => Transform::encr(EncrId::ENCR_AES_GCM_16, Some(key_bits)),
            Encr::AesCbc { key_bits } => Transform::encr(EncrId::ENCR_AES_CBC, Some(key_bits)),
        }
    }

    pub fn is_aead(self) -> bool {
        matches!(self, Encr::AesGcm16 { .. })
    }

    /// Keying material taken from prf+ (SK_e*, or an ESP key): for GCM the AES key plus a
    /// 4-byte salt (RFC 5282 section 7.1; RFC 4106 section 8.1 for ESP).
    pub fn key_len(self) -> usize {
        match self {
            Encr::AesGcm16 { key_bits } => usize::from(key_bits / 8) + 4,
            Encr::AesCbc { key_bits } => usize::from(key_bits / 8),
        }
    }

    /// Length of the explicit IV in the SK payload.
    pub fn iv_len(self) -> usize {
        match self {
            Encr::AesGcm16 { .. } => 8,
            Encr::AesCbc { .. } => 16,
        }
    }
}

/// The SK payload integrity transform (RFC 4868), used with AES-CBC only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Integ {
    /// HMAC-SHA1-96 (RFC 2404): legacy (Windows' built-in client), only when configured.
    HmacSha1_96,
    HmacSha256_128,
    HmacSha384_192,
    HmacSha512_256,
}

impl Integ {
    pub fn from_id(id: IntegId) -> Option<Self> {
        match id {
            IntegId::AUTH_HMAC_SHA1_96 => Some(Integ::HmacSha1_96),
            IntegId::AUTH_HMAC_SHA2_256_128 => Some(Integ::HmacSha256_128),
            IntegId::AUTH_HMAC_SHA2_384_192 => Some(Integ::HmacSha384_192),
            IntegId::AUTH_HMAC_SHA2_512_256 => Some(Integ::HmacSha512_256),
            _ => None,
        }
    }

    pub fn id(self) -> IntegId {
        match self {
            Integ::HmacSha1_96 => IntegId::AUTH_HMAC_SHA1_96,
            Integ::HmacSha256_128 => IntegId::AUTH_HMAC_SHA2_256_128,
            Integ::HmacSha384_192 => IntegId::AUTH_HMAC_SHA2_384_192,
            Integ::HmacSha512_256 => IntegId::AUTH_HMAC_SHA2_512_256,
        }
    }

    /// Key length (SK_a*, ESP integrity key): the hash output size (RFC 4868 2.1.1).
    pub fn key_len(self) -> usize {
        match self {
            Integ::HmacSha1_96 => 20,
            Integ::HmacSha256_128 => 32,
            Integ::HmacSha384_192 => 48,
            Integ::HmacSha512_256 => 64,
        }
    }

    /// Truncated ICV length (RFC 4868 2.3): half the hash output; 96 bits for SHA-1
    /// (RFC 2404 2).
    pub fn icv_len(self) -> usize {
        match self {
            Integ::HmacSha1_96 => 12,
            _ => self.key_len() / 2,
        }
    }

    fn alg(self) -> hmac::Algorithm {
        match self {
            Integ::HmacSha1_96 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Integ::HmacSha256_128 => hmac::HMAC_SHA256,
            Integ::HmacSha384_192 => hmac::HMAC_SHA384,
            Integ::HmacSha512_256 => hmac::HMAC_SHA512,
        }
    }
}

const AES_BLOCK: usize = 16;
const GCM_TAG: usize = 16;

enum Engine {
    Gcm {
        key: aead::LessSafeKey,
        salt: [u8; 4],
    },
    Cbc(Box<CbcKeys>),
}

struct CbcKeys {
    enc: cipher::EncryptingKey,
    dec: cipher::DecryptingKey,
    mac: hmac::Key,
    icv_len: usize,
}

/// One direction of SK protection: build it from SK_ei/SK_ai for what the initiator sends and
/// from SK_er/SK_ar for what the responder sends (`IkeKeys::ciphers` does this).
pub struct SkCipher {
    encr: Encr,
    engine: Engine,
}

impl std::fmt::Debug for SkCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SkCipher({:?})", self.encr)
    }
}

/// Why an SK payload could not be opened. `Crypto` means drop silently (RFC 7296 2.21.2);
/// `Decode` means the peer is authenticated but sent a malformed inner chain (INVALID_SYNTAX).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("message has no SK payload")]
    NotEncrypted,
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl SkCipher {
    /// `encr_key` is `encr.key_len()` bytes (including the GCM salt); `integ` must be None for
    /// GCM and Some for CBC, with `integ_key` of `integ.key_len()` bytes.
    pub fn new(
        encr: Encr,
        integ: Option<Integ>,
        encr_key: &[u8],
        integ_key: &[u8],
    ) -> Result<Self, CryptoError> {
        if encr_key.len() != encr.key_len() {
            return Err(CryptoError::InvalidKeyLength);
        }
        let engine = match (encr, integ) {
            (Encr::AesGcm16 { key_bits }, None) => {
                let alg = if key_bits == 128 {
                    &aead::AES_128_GCM
                } else {
                    &aead::AES_256_GCM
                };
                let split = encr_key.len() - 4;
                let (k, s) = encr_key.split_at(split);
                let salt: [u8; 4] = s.try_into().map_err(|_| CryptoError::InvalidKeyLength)?;
                let key =
                    aead::UnboundKey::new(alg, k).map_err(|_| CryptoError::InvalidKeyLength)?;
                Engine::Gcm {
                    key: aead::LessSafeKey::new(key),
                    salt,
                }
            }
            (Encr::AesCbc { key_bits }, Some(integ)) => {
                if integ_key.len() != integ.key_len() {
                    return Err(CryptoError::InvalidKeyLength);
                }
                let alg = if key_bits == 128 {
                    &cipher::AES_128
                } else {
                    &cipher::AES_256
                };
                let unbound = || {
                    cipher::UnboundCipherKey::new(alg, encr_key)
                        .map_err(|_| CryptoError::InvalidKeyLength)
                };
                Engine::Cbc(Box::new(CbcKeys {
                    enc: cipher::EncryptingKey::cbc(unbound()?)
                        .map_err(|_| CryptoError::Internal)?,
                    dec: cipher::DecryptingKey::cbc(unbound()?)
                        .map_err(|_| CryptoError::Internal)?,
                    mac: hmac::Key::new(integ.alg(), integ_key),
                    icv_len: integ.icv_len(),
                }))
            }
            _ => return Err(CryptoError::Unsupported),
        };
        Ok(SkCipher { encr, engine })
    }

    pub fn iv_len(&self) -> usize {
        self.encr.iv_len()
    }

    pub fn icv_len(&self) -> usize {
        match &self.engine {
            Engine::Gcm { .. } => GCM_TAG,
            Engine::Cbc(k) => k.icv_len,
        }
    }

    /// Padding + pad length byte for a plaintext of `len` bytes: CBC pads to the AES block;
    /// GCM is a stream mode and needs only the pad length byte (RFC 5282 section 3).
    fn pad_len(&self, len: usize) -> usize {
        match self.engine {
            Engine::Gcm { .. } => 0,
            Engine::Cbc(_) => (AES_BLOCK - (len + 1) % AES_BLOCK) % AES_BLOCK,
        }
    }

    /// The SK body size for `plaintext_len` bytes of inner payloads, needed up front because the
    /// header and SK lengths are part of what the ICV covers.
    pub fn body_len(&self, plaintext_len: usize) -> usize {
        self.iv_len() + plaintext_len + self.pad_len(plaintext_len) + 1 + self.icv_len()
    }

    /// Encrypts inner payload bytes into an SK body. `prefix` is the message up to the IV
    /// with final length fields (see `Message::encode_sk_prefix`). The IV must never repeat
    /// under one key: a counter is fine for GCM, CBC needs unpredictable (random) IVs.
    pub fn encrypt(
        &self,
        prefix: &[u8],
        plaintext: &[u8],
        iv: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        if iv.len() != self.iv_len() {
            return Err(CryptoError::InvalidKeyLength);
        }
        let pad = self.pad_len(plaintext.len());
        let mut body = Vec::with_capacity(self.body_len(plaintext.len()));
        body.extend_from_slice(iv);
        body.extend_from_slice(plaintext);
        body.resize(body.len() + pad, 0);
        body.push(u8::try_from(pad).map_err(|_| CryptoError::Internal)?);
        match &self.engine {
            Engine::Gcm { key, salt } => {
                let nonce = gcm_nonce(salt, iv)?;
                let ct = body.get_mut(iv.len()..).ok_or(CryptoError::Internal)?;
                let tag = key
                    .seal_in_place_separate_tag(nonce, aead::Aad::from(prefix), ct)
                    .map_err(|_| CryptoError::Internal)?;
                body.extend_from_slice(tag.as_ref());
            }
            Engine::Cbc(k) => {
                let CbcKeys {
                    enc, mac, icv_len, ..
                } = &**k;
                let iv16: [u8; 16] = iv.try_into().map_err(|_| CryptoError::InvalidKeyLength)?;
                let ct = body.get_mut(iv.len()..).ok_or(CryptoError::Internal)?;
                enc.less_safe_encrypt(ct, cipher::EncryptionContext::Iv128(iv16.into()))
                    .map_err(|_| CryptoError::Internal)?;
                let mut ctx = hmac::Context::with_key(mac);
                ctx.update(prefix);
                ctx.update(&body);
                let tag = ctx.sign();
                body.extend_from_slice(tag.as_ref().get(..*icv_len).ok_or(CryptoError::Internal)?);
            }
        }
        Ok(body)
    }

    /// Verifies and decrypts an SK body; returns the inner payload bytes without padding.
    /// A bad ICV is [`CryptoError::IntegrityCheckFailed`]: drop the message.
    pub fn decrypt(&self, prefix: &[u8], body: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let iv_len = self.iv_len();
        let icv_len = self.icv_len();
        // At least IV, one byte (the pad length) and the ICV; CBC also needs whole blocks.
        let min = iv_len + 1 + icv_len;
        if body.len() < min {
            return Err(CryptoError::MalformedCiphertext);
        }
        let (iv, rest) = body.split_at(iv_len);
        let (ct, icv) = rest.split_at(rest.len() - icv_len);
        let mut plain = match &self.engine {
            Engine::Gcm { key, salt } => {
                let nonce = gcm_nonce(salt, iv)?;
                let mut buf = rest.to_vec();
                let len = key
                    .open_in_place(nonce, aead::Aad::from(prefix), &mut buf)
                    .map_err(|_| CryptoError::IntegrityCheckFailed)?
                    .len();
                buf.truncate(len);
                buf
            }
            Engine::Cbc(k) => {
                let CbcKeys { dec, mac, .. } = &**k;
                if ct.is_empty() || ct.len() % AES_BLOCK != 0 {
                    return Err(CryptoError::MalformedCiphertext);
                }
                let mut ctx = hmac::Context::with_key(mac);
                ctx.update(prefix);
                ctx.update(iv);
                ctx.update(ct);
                let tag = ctx.sign();
                let expected = tag.as_ref().get(..icv_len).ok_or(CryptoError::Internal)?;
                if !ct_eq(expected, icv) {
                    return Err(CryptoError::IntegrityCheckFailed);
                }
                let iv16: [u8; 16] = iv.try_into().map_err(|_| CryptoError::InvalidKeyLength)?;
                let mut buf = ct.to_vec();
                let len = dec
                    .decrypt(&mut buf, cipher::DecryptionContext::Iv128(iv16.into()))
                    .map_err(|_| CryptoError::MalformedCiphertext)?
                    .len();
                buf.truncate(len);
                buf
            }
        };
        // RFC 7296 3.14: the last byte is the pad length; the padding must fit.
        let pad = usize::from(*plain.last().ok_or(CryptoError::MalformedCiphertext)?);
        let keep = plain
            .len()
            .checked_sub(pad + 1)
            .ok_or(CryptoError::MalformedCiphertext)?;
        plain.truncate(keep);
        Ok(plain)
    }

    /// Builds a whole encrypted datagram: `header` plus one SK payload holding `inner`
    /// (e.g. IDi, AUTH, SA, TSi, TSr for IKE_AUTH).
    pub fn seal(
        &self,
        header: &Header,
        inner: &[Payload],
        iv: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let (first, plaintext) = encode_chain(inner)?;
        let shell = Message {
            header: *header,
            payloads: Vec::new(),
        };
        let mut out = shell.encode_sk_prefix(first, self.body_len(plaintext.len()))?;
        let body = self.encrypt(&out, &plaintext, iv)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens the SK payload of `msg`, which was decoded from `datagram`, and decodes the inner
    /// chain. Check the result with `codec::check_critical` like an unencrypted message.
    pub fn open(&self, datagram: &[u8], msg: &Message) -> Result<Vec<Payload>, OpenError> {
        let sk = msg.payloads.sk().ok_or(OpenError::NotEncrypted)?;
        // The SK payload is last, so its body ends the datagram and the prefix is the rest.
        let prefix_len = datagram
            .len()
            .checked_sub(sk.body.len())
            .ok_or(CryptoError::MalformedCiphertext)?;
        let (prefix, body) = datagram.split_at(prefix_len);
        if body != sk.body.as_slice() {
            return Err(CryptoError::MalformedCiphertext.into());
        }
        let plain = self.decrypt(prefix, body)?;
        Ok(decode_chain(sk.first_inner, &plain)?)
    }
}

impl SkCipher {
    /// The most inner payload bytes whose SK (or SKF) body fits `body_room` bytes: what one
    /// fragment can carry (RFC 7383 2.5.1). None if not even one byte fits.
    pub fn plaintext_room(&self, body_room: usize) -> Option<usize> {
        let ct = body_room.checked_sub(self.iv_len() + self.icv_len())?;
        // CBC: whole blocks of plaintext || padding || pad length; GCM: any length.
        let ct = match self.engine {
            Engine::Gcm { .. } => ct,
            Engine::Cbc(_) => ct - ct % AES_BLOCK,
        };
        ct.checked_sub(1).filter(|n| *n > 0)
    }

    /// One Encrypted Fragment message (RFC 7383 2.5): `header` with an SKF payload holding
    /// `chunk`, this fragment's share of the encoded inner payloads, under its own IV and
    /// ICV. `first_inner` is the first inner payload's type for fragment 1, NONE after.
    pub fn seal_fragment(
        &self,
        header: &Header,
        first_inner: PayloadType,
        number: u16,
        total: u16,
        chunk: &[u8],
        iv: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let shell = Message {
            header: *header,
            payloads: Vec::new(),
        };
        let mut out =
            shell.encode_skf_prefix(first_inner, number, total, self.body_len(chunk.len()))?;
        let body = self.encrypt(&out, chunk, iv)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Verifies and decrypts the SKF payload `skf` of a message decoded from `datagram`: its
    /// share of the inner payload bytes, still undecoded (only the whole set decodes).
    pub fn open_fragment(&self, datagram: &[u8], skf: &SkfPayload) -> Result<Vec<u8>, CryptoError> {
        // The SKF payload is last: the ICV covers everything before its IV.
        let prefix_len = datagram
            .len()
            .checked_sub(skf.body.len())
            .ok_or(CryptoError::MalformedCiphertext)?;
        let (prefix, body) = datagram.split_at(prefix_len);
        if body != skf.body.as_slice() {
            return Err(CryptoError::MalformedCiphertext);
        }
        self.decrypt(prefix, body)
    }
}

/// Why [`SkCipher::seal`] failed (only on our own bad input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

fn gcm_nonce(salt: &[u8; 4], iv: &[u8]) -> Result<aead::Nonce, CryptoError> {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(salt);
    n.get_mut(4..)
        .filter(|s| s.len() == iv.len())
        .ok_or(CryptoError::InvalidKeyLength)?
        .copy_from_slice(iv);
    Ok(aead::Nonce::assume_unique_for_key(n))
}

#[cfg(test)]
mod tests {
    use super::super::test_util::hex;
    use super::*;
    use crate::ike::codec::{
        AuthMethod, AuthPayload, ExchangeType, Flags, IdPayload, Identity, NotifyPayload,
        NotifyType,
    };

    // McGrew & Viega, "The Galois/Counter Mode of Operation", test case 16 (AES-256, 96-bit
    // IV, with AAD). IKE's nonce is salt || IV, so the salt is the first 4 IV bytes.
    #[test]
    fn gcm_256_test_case_16() {
        let key = hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
        let iv = hex("cafebabefacedbaddecaf888");
        let pt = hex(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
             1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        );
        let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let ct = hex(
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
             8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
        );
        let tag = hex("76fc6ece0f4e1768cddf8853bb2d551b");
        let mut material = key.clone();
        material.extend_from_slice(&iv[..4]);
        let c = SkCipher::new(Encr::AesGcm16 { key_bits: 256 }, None, &material, &[]).unwrap();
        // Through SkCipher (which appends the pad length byte): same keystream, so the
        // ciphertext starts with the vector's.
        let body = c.encrypt(&aad, &pt, &iv[4..]).unwrap();
        assert_eq!(&body[..8], &iv[4..]);
        assert_eq!(&body[8..8 + ct.len()], ct.as_slice());
        assert_eq!(c.decrypt(&aad, &body).unwrap(), pt);
        // The exact vector, tag included, through the AEAD primitive.
        let k = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_256_GCM, &key).unwrap());
        let mut buf = pt.clone();
        let t = k
            .seal_in_place_separate_tag(
                aead::Nonce::try_assume_unique_for_key(&iv).unwrap(),
                aead::Aad::from(&aad),
                &mut buf,
            )
            .unwrap();
        assert_eq!(buf, ct);
        assert_eq!(t.as_ref(), tag.as_slice());
    }

    // RFC 3602 section 4, case 3 (AES-128-CBC, two blocks).
    #[test]
    fn aes_cbc_rfc3602_case_3() {
        let key = hex("c286696d887c9aa0611bbb3e2025a45a");
        let iv = hex("562e17996d093d28ddb3ba695a2e6f58");
        let pt = hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
        let ct = hex("d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1");
        let enc = cipher::EncryptingKey::cbc(
            cipher::UnboundCipherKey::new(&cipher::AES_128, &key).unwrap(),
        )
        .unwrap();
        let mut buf = pt.clone();
        let iv16: [u8; 16] = iv.clone().try_into().unwrap();
        enc.less_safe_encrypt(&mut buf, cipher::EncryptionContext::Iv128(iv16.into()))
            .unwrap();
        assert_eq!(buf, ct);
        // Through SkCipher: a 16-byte plaintext gets a second block (padding + pad length),
        // so its first block matches the vector's.
        let c = SkCipher::new(
            Encr::AesCbc { key_bits: 128 },
            Some(Integ::HmacSha256_128),
            &key,
            &[7; 32],
        )
        .unwrap();
        let body = c.encrypt(b"prefix", &pt[..16], &iv).unwrap();
        assert_eq!(&body[16..32], &ct[..16]);
        assert_eq!(body.len(), c.body_len(16));
        assert_eq!(c.decrypt(b"prefix", &body).unwrap(), &pt[..16]);
    }

    fn suites() -> Vec<SkCipher> {
        let mut v = Vec::new();
        for bits in [128u16, 256] {
            let e = Encr::AesGcm16 { key_bits: bits };
            v.push(SkCipher::new(e, None, &vec![3; e.key_len()], &[]).unwrap());
            for i in [
                Integ::HmacSha1_96,
                Integ::HmacSha256_128,
                Integ::HmacSha384_192,
                Integ::HmacSha512_256,
            ] {
                let e = Encr::AesCbc { key_bits: bits };
                v.push(
                    SkCipher::new(e, Some(i), &vec![4; e.key_len()], &vec![5; i.key_len()])
                        .unwrap(),
                );
            }
        }
        v
    }

    #[test]
    fn round_trip_tamper_and_padding() {
        for c in suites() {
            for len in [0usize, 1, 15, 16, 17, 100] {
                let pt: Vec<u8> = (0..len as u8).collect();
                let iv = vec![9u8; c.iv_len()];
                let body = c.encrypt(b"hdr", &pt, &iv).unwrap();
                assert_eq!(body.len(), c.body_len(len), "{c:?} {len}");
                assert_eq!(c.decrypt(b"hdr", &body).unwrap(), pt);
                // Any flipped bit, in the body or the prefix, fails the ICV.
                for at in [0, body.len() / 2, body.len() - 1] {
                    let mut bad = body.clone();
                    bad[at] ^= 0x01;
                    assert_eq!(
                        c.decrypt(b"hdr", &bad),
                        Err(CryptoError::IntegrityCheckFailed)
                    );
                }
                assert_eq!(
                    c.decrypt(b"hdR", &body),
                    Err(CryptoError::IntegrityCheckFailed)
                );
                // Truncated bodies never panic.
                for n in 0..body.len() {
                    assert!(c.decrypt(b"hdr", &body[..n]).is_err());
                }
            }
            assert!(c.encrypt(b"", b"x", &[0; 3]).is_err());
        }
    }

    #[test]
    fn rejects_bad_keys_and_combinations() {
        let gcm = Encr::AesGcm16 { key_bits: 256 };
        let cbc = Encr::AesCbc { key_bits: 128 };
        assert!(SkCipher::new(gcm, None, &[0; 32], &[]).is_err());
        assert!(SkCipher::new(gcm, Some(Integ::HmacSha256_128), &[0; 36], &[0; 32]).is_err());
        assert!(SkCipher::new(cbc, None, &[0; 16], &[]).is_err());
        assert!(SkCipher::new(cbc, Some(Integ::HmacSha256_128), &[0; 16], &[0; 16]).is_err());
        assert_eq!(
            Encr::from_transform(EncrId::ENCR_AES_GCM_16, Some(192)),
            None
        );
        assert_eq!(Encr::from_transform(EncrId::ENCR_AES_CBC, None), None);
        assert_eq!(gcm.key_len(), 36);
    }

    #[test]
    fn bad_padding_is_an_error_not_a_panic() {
        // A valid tag over a plaintext whose pad length (0xff) exceeds the plaintext, built
        // with the AEAD primitive since `encrypt` always writes a consistent pad length.
        let e = Encr::AesGcm16 { key_bits: 128 };
        let c = SkCipher::new(e, None, &[1; 20], &[]).unwrap();
        let body = c.encrypt(b"p", &[0xff; 3], &[0; 8]).unwrap();
        assert_eq!(c.decrypt(b"p", &body).unwrap(), vec![0xff; 3]);
        let Engine::Gcm { key, salt } = &c.engine else {
            unreachable!()
        };
        let mut buf = vec![0xffu8; 4];
        let tag = key
            .seal_in_place_separate_tag(
                gcm_nonce(salt, &[0; 8]).unwrap(),
                aead::Aad::from(b"p"),
                &mut buf,
            )
            .unwrap();
        let mut bad = vec![0u8; 8];
        bad.extend_from_slice(&buf);
        bad.extend_from_slice(tag.as_ref());
        assert_eq!(c.decrypt(b"p", &bad), Err(CryptoError::MalformedCiphertext));
    }

    #[test]
    fn seal_and_open_ike_auth() {
        let header = Header {
            spi_i: 0x1111,
            spi_r: 0x2222,
            exchange: ExchangeType::IKE_AUTH,
            flags: Flags {
                initiator: true,
                ..Flags::default()
            },
            message_id: 1,
        };
        let inner = vec![
            Payload::IdI(IdPayload::new(Identity::Fqdn("a.example".into()))),
            Payload::Auth(AuthPayload {
                method: AuthMethod::SHARED_KEY_MIC,
                data: vec![1; 32],
            }),
            Payload::Notify(NotifyPayload::new(NotifyType::INITIAL_CONTACT, vec![])),
        ];
        for c in suites() {
            let iv = vec![0x42; c.iv_len()];
            let datagram = c.seal(&header, &inner, &iv).unwrap();
            let msg = Message::decode(&datagram).unwrap();
            assert_eq!(msg.header, header);
            assert_eq!(c.open(&datagram, &msg).unwrap(), inner);
            let mut bad = datagram.clone();
            bad[20] ^= 1; // message ID is covered by the ICV
            let msg = Message::decode(&bad).unwrap();
            assert_eq!(
                c.open(&bad, &msg),
                Err(OpenError::Crypto(CryptoError::IntegrityCheckFailed))
            );
        }
    }
}
