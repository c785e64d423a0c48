//! The negotiated PRF and prf+ (RFC 7296 2.13). HMAC-SHA2 PRFs (RFC 4868), and HMAC-SHA1
//! (RFC 2104) for Windows' legacy proposal only (opt-in: `ike.allow_legacy`): for all of them
//! the preferred key length equals the output length and any key length is accepted.

use aws_lc_rs::hmac;
use zeroize::Zeroizing;

use super::CryptoError;
use crate::ike::codec::PrfId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prf {
    /// Legacy (Windows' built-in client), only when configured.
    HmacSha1,
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl Prf {
    pub fn from_id(id: PrfId) -> Option<Self> {
        match id {
            PrfId::PRF_HMAC_SHA1 => Some(Prf::HmacSha1),
            PrfId::PRF_HMAC_SHA2_256 => Some(Prf::HmacSha256),
            PrfId::PRF_HMAC_SHA2_384 => Some(Prf::HmacSha384),
            PrfId::PRF_HMAC_SHA2_512 => Some(Prf::HmacSha512),
            _ => None,
        }
    }

    pub fn id(self) -> PrfId {
        match self {
            Prf::HmacSha1 => PrfId::PRF_HMAC_SHA1,
            Prf::HmacSha256 => PrfId::PRF_HMAC_SHA2_256,
            Prf::HmacSha384 => PrfId::PRF_HMAC_SHA2_384,
            Prf::HmacSha512 => PrfId::PRF_HMAC_SHA2_512,
        }
    }

    pub(crate) fn hmac_alg(self) -> hmac::Algorithm {
        match self {
            Prf::HmacSha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Prf::HmacSha256 => hmac::HMAC_SHA256,
            Prf::HmacSha384 => hmac::HMAC_SHA384,
            Prf::HmacSha512 => hmac::HMAC_SHA512,
        }
    }

    /// Output size in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Prf::HmacSha1 => 20,
            Prf::HmacSha256 => 32,
            Prf::HmacSha384 => 48,
            Prf::HmacSha512 => 64,
        }
    }

    /// The preferred key length: the size of SK_d, SK_pi and SK_pr (RFC 7296 2.14, RFC 4868 2.1.2).
    pub fn key_len(self) -> usize {
        self.output_len()
    }

    /// prf(key, data).
    pub fn prf(self, key: &[u8], data: &[u8]) -> Zeroizing<Vec<u8>> {
        self.prf_parts(key, &[data])
    }

    /// prf(key, part1 | part2 | ...), without building the concatenation.
    pub fn prf_parts(self, key: &[u8], parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
        let key = hmac::Key::new(self.hmac_alg(), key);
        let mut ctx = hmac::Context::with_key(&key);
        for p in parts {
            ctx.update(p);
        }
        Zeroizing::new(ctx.sign().as_ref().to_vec())
    }

    /// prf+(key, seed) truncated to `len` bytes (RFC 7296 2.13):
    /// T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n), at most 255 blocks.
    pub fn prf_plus(
        self,
        key: &[u8],
        seed: &[u8],
        len: usize,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let block = self.output_len();
        if len > 255 * block {
            return Err(CryptoError::PrfPlusTooLong);
        }
        let hkey = hmac::Key::new(self.hmac_alg(), key);
        let mut out = Zeroizing::new(Vec::with_capacity(len + block));
        let mut prev_start = 0;
        let mut counter: u8 = 1;
        while out.len() < len {
            let mut ctx = hmac::Context::with_key(&hkey);
            ctx.update(out.get(prev_start..).unwrap_or_default());
            ctx.update(seed);
            ctx.update(&[counter]);
            prev_start = out.len();
            out.extend_from_slice(ctx.sign().as_ref());
            counter = counter.wrapping_add(1);
        }
        out.truncate(len);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::hex;
    use super::*;

    // RFC 4231 test cases 1 and 2 (and RFC 2202's, same inputs, for HMAC-SHA1).
    #[test]
    fn rfc4231_vectors() {
        let key1 = [0x0b; 20];
        let data1 = b"Hi There";
        let key2 = b"Jefe";
        let data2 = b"what do ya want for nothing?";
        let cases = [
            (
                Prf::HmacSha1,
                "b617318655057264e28bc0b6fb378c8ef146be00",
                "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
            ),
            (
                Prf::HmacSha256,
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                Prf::HmacSha384,
                "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c\
                 faea9ea9076ede7f4af152e8b2fa9cb6",
                "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
                 8e2240ca5e69e2c78b3239ecfab21649",
            ),
            (
                Prf::HmacSha512,
                "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde\
                 daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
                "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
                 9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
            ),
        ];
        for (prf, t1, t2) in cases {
            assert_eq!(*prf.prf(&key1, data1), hex(t1), "{prf:?} case 1");
            assert_eq!(*prf.prf(key2, data2), hex(t2), "{prf:?} case 2");
            assert_eq!(
                *prf.prf_parts(key2, &[b"what do ya ", b"", b"want for nothing?"]),
                hex(t2)
            );
        }
    }

    #[test]
    fn prf_plus_matches_hand_expansion() {
        for prf in [
            Prf::HmacSha1,
            Prf::HmacSha256,
            Prf::HmacSha384,
            Prf::HmacSha512,
        ] {
            let k = b"prf+ key";
            let s = b"seed bytes";
            let h = prf.output_len();
            let t1 = prf.prf(k, &[&s[..], &[1]].concat());
            let t2 = prf.prf(k, &[&t1[..], &s[..], &[2]].concat());
            let t3 = prf.prf(k, &[&t2[..], &s[..], &[3]].concat());
            let expected = [&t1[..], &t2[..], &t3[..]].concat();
            let out = prf.prf_plus(k, s, 3 * h).unwrap();
            assert_eq!(*out, expected);
            let part = prf.prf_plus(k, s, h + 5).unwrap();
            assert_eq!(*part, expected[..h + 5]);
            assert_eq!(prf.prf_plus(k, s, 0).unwrap().len(), 0);
            assert_eq!(prf.prf_plus(k, s, 255 * h).unwrap().len(), 255 * h);
            assert_eq!(
                prf.prf_plus(k, s, 255 * h + 1),
                Err(CryptoError::PrfPlusTooLong)
            );
        }
    }
}
