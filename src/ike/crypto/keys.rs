//! Key derivation: IKE SA keys (RFC 7296 2.14), IKE SA rekey (2.18), Child SA KEYMAT (2.17).

use zeroize::Zeroizing;

use super::{CryptoError, Encr, Integ, Prf, SkCipher};

/// The IKE SA's negotiated transforms that shape the key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IkeSuite {
    pub encr: Encr,
    /// None exactly when `encr` is an AEAD (RFC 5282: no integrity transform, no SK_a keys).
    pub integ: Option<Integ>,
    pub prf: Prf,
}

impl IkeSuite {
    /// Refuses AEAD with an integrity transform and CBC without one.
    pub fn new(encr: Encr, integ: Option<Integ>, prf: Prf) -> Result<Self, CryptoError> {
        if encr.is_aead() != integ.is_none() {
            return Err(CryptoError::Unsupported);
        }
        Ok(IkeSuite { encr, integ, prf })
    }

    fn integ_key_len(&self) -> usize {
        self.integ.map_or(0, Integ::key_len)
    }
}

/// {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}. SK_a* are empty for AEAD suites;
/// SK_e* include the GCM salt.
pub struct IkeKeys {
    pub suite: IkeSuite,
    pub sk_d: Zeroizing<Vec<u8>>,
    pub sk_ai: Zeroizing<Vec<u8>>,
    pub sk_ar: Zeroizing<Vec<u8>>,
    pub sk_ei: Zeroizing<Vec<u8>>,
    pub sk_er: Zeroizing<Vec<u8>>,
    pub sk_pi: Zeroizing<Vec<u8>>,
    pub sk_pr: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for IkeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IkeKeys({:?})", self.suite)
    }
}

impl IkeKeys {
    /// Once the SA is up only SK_d derives anything (child keys, 2.17; a rekey's SKEYSEED,
    /// 2.18): the SK payload ciphers hold their own SK_e and SK_a, and SK_p served AUTH
    /// only (2.15). The others are zeroed and freed, and an SA held for days costs less.
    pub fn keep_only_sk_d(&mut self) {
        for k in [
            &mut self.sk_ai,
            &mut self.sk_ar,
            &mut self.sk_ei,
            &mut self.sk_er,
            &mut self.sk_pi,
            &mut self.sk_pr,
        ] {
            *k = Zeroizing::new(Vec::new());
        }
    }

    /// Keys for a new IKE SA from IKE_SA_INIT (RFC 7296 2.14):
    /// SKEYSEED = prf(Ni | Nr, g^ir), then prf+(SKEYSEED, Ni | Nr | SPIi | SPIr).
    pub fn derive(
        suite: IkeSuite,
        shared_secret: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: u64,
        spi_r: u64,
    ) -> Result<Self, CryptoError> {
        let key = Zeroizing::new([ni, nr].concat());
        let skeyseed = suite.prf.prf(&key, shared_secret);
        Self::from_skeyseed(suite, &skeyseed, ni, nr, spi_i, spi_r)
    }

    /// Keys for the IKE SA replacing one rekeyed with CREATE_CHILD_SA (RFC 7296 2.18):
    /// SKEYSEED = prf_old(SK_d (old), g^ir (new) | Ni | Nr) with the old SA's PRF, then
    /// prf+ with the new suite's PRF over the new nonces and SPIs.
    #[allow(clippy::too_many_arguments)]
    pub fn derive_rekey(
        old: &IkeKeys,
        suite: IkeSuite,
        shared_secret: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: u64,
        spi_r: u64,
    ) -> Result<Self, CryptoError> {
        let skeyseed = old.suite.prf.prf_parts(&old.sk_d, &[shared_secret, ni, nr]);
        Self::from_skeyseed(suite, &skeyseed, ni, nr, spi_i, spi_r)
    }

    fn from_skeyseed(
        suite: IkeSuite,
        skeyseed: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: u64,
        spi_r: u64,
    ) -> Result<Self, CryptoError> {
        let prf_len = suite.prf.key_len();
        let a_len = suite.integ_key_len();
        let e_len = suite.encr.key_len();
        let total = 3 * prf_len + 2 * a_len + 2 * e_len;
        let seed = [ni, nr, &spi_i.to_be_bytes(), &spi_r.to_be_bytes()].concat();
        let stream = suite.prf.prf_plus(skeyseed, &seed, total)?;
        let mut split = Splitter(&stream);
        Ok(IkeKeys {
            suite,
            sk_d: split.take(prf_len)?,
            sk_ai: split.take(a_len)?,
            sk_ar: split.take(a_len)?,
            sk_ei: split.take(e_len)?,
            sk_er: split.take(e_len)?,
            sk_pi: split.take(prf_len)?,
            sk_pr: split.take(prf_len)?,
        })
    }

    /// (outbound, inbound) SK ciphers for our role: the initiator sends with SK_ei/SK_ai and
    /// receives with SK_er/SK_ar; the responder the other way round.
    pub fn ciphers(&self, we_are_initiator: bool) -> Result<(SkCipher, SkCipher), CryptoError> {
        let s = &self.suite;
        let i = SkCipher::new(s.encr, s.integ, &self.sk_ei, &self.sk_ai)?;
        let r = SkCipher::new(s.encr, s.integ, &self.sk_er, &self.sk_ar)?;
        Ok(if we_are_initiator { (i, r) } else { (r, i) })
    }
}

/// Child SA keys in RFC 7296 2.17 order, ready for the kernel (GCM keys include the salt).
pub struct ChildKeys {
    /// Initiator → responder.
    pub encr_i: Zeroizing<Vec<u8>>,
    pub integ_i: Zeroizing<Vec<u8>>,
    /// Responder → initiator.
    pub encr_r: Zeroizing<Vec<u8>>,
    pub integ_r: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ChildKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ChildKeys(encr {} bytes, integ {} bytes)",
            self.encr_i.len(),
            self.integ_i.len()
        )
    }
}

impl ChildKeys {
    /// KEYMAT = prf+(SK_d, Ni | Nr), or prf+(SK_d, g^ir (new) | Ni | Nr) with PFS in
    /// CREATE_CHILD_SA (RFC 7296 2.17). Each direction takes its encryption key first, then
    /// its integrity key; initiator→responder first. Lengths are the ESP transforms' key sizes
    /// (`Encr::key_len`, `Integ::key_len`; integ 0 for AEAD).
    pub fn derive(
        prf: Prf,
        sk_d: &[u8],
        pfs_shared_secret: Option<&[u8]>,
        ni: &[u8],
        nr: &[u8],
        encr_len: usize,
        integ_len: usize,
    ) -> Result<Self, CryptoError> {
        let seed = Zeroizing::new([pfs_shared_secret.unwrap_or_default(), ni, nr].concat());
        let stream = prf.prf_plus(sk_d, &seed, 2 * (encr_len + integ_len))?;
        let mut split = Splitter(&stream);
        Ok(ChildKeys {
            encr_i: split.take(encr_len)?,
            integ_i: split.take(integ_len)?,
            encr_r: split.take(encr_len)?,
            integ_r: split.take(integ_len)?,
        })
    }
}

struct Splitter<'a>(&'a [u8]);

impl Splitter<'_> {
    fn take(&mut self, n: usize) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if n > self.0.len() {
            return Err(CryptoError::Internal);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(Zeroizing::new(head.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gcm_suite() -> IkeSuite {
        IkeSuite::new(Encr::AesGcm16 { key_bits: 256 }, None, Prf::HmacSha256).unwrap()
    }

    fn cbc_suite() -> IkeSuite {
        IkeSuite::new(
            Encr::AesCbc { key_bits: 128 },
            Some(Integ::HmacSha384_192),
            Prf::HmacSha512,
        )
        .unwrap()
    }

    #[test]
    fn ike_keys_follow_rfc7296_2_14() {
        let (ni, nr, gir) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        let (spi_i, spi_r) = (0x0102030405060708u64, 0x1112131415161718u64);
        for suite in [gcm_suite(), cbc_suite()] {
            let keys = IkeKeys::derive(suite, &gir, &ni, &nr, spi_i, spi_r).unwrap();
            let prf = suite.prf;
            let skeyseed = prf.prf(&[ni, nr].concat(), &gir);
            let mut seed = [ni, nr].concat();
            seed.extend_from_slice(&spi_i.to_be_bytes());
            seed.extend_from_slice(&spi_r.to_be_bytes());
            let (p, a, e) = (
                prf.key_len(),
                suite.integ.map_or(0, Integ::key_len),
                suite.encr.key_len(),
            );
            let all = prf
                .prf_plus(&skeyseed, &seed, 3 * p + 2 * a + 2 * e)
                .unwrap();
            let expect = [
                &all[..p],
                &all[p..p + a],
                &all[p + a..p + 2 * a],
                &all[p + 2 * a..p + 2 * a + e],
                &all[p + 2 * a + e..p + 2 * a + 2 * e],
                &all[p + 2 * a + 2 * e..2 * p + 2 * a + 2 * e],
                &all[2 * p + 2 * a + 2 * e..],
            ];
            let got = [
                &keys.sk_d[..],
                &keys.sk_ai[..],
                &keys.sk_ar[..],
                &keys.sk_ei[..],
                &keys.sk_er[..],
                &keys.sk_pi[..],
                &keys.sk_pr[..],
            ];
            assert_eq!(got, expect);
            if suite.encr.is_aead() {
                assert!(keys.sk_ai.is_empty());
                assert_eq!(keys.sk_ei.len(), 36);
            }

            // The initiator's outbound cipher is the responder's inbound one.
            let (i_out, _) = keys.ciphers(true).unwrap();
            let (_, r_in) = keys.ciphers(false).unwrap();
            let iv = vec![0; i_out.iv_len()];
            let body = i_out.encrypt(b"aad", b"hello", &iv).unwrap();
            assert_eq!(r_in.decrypt(b"aad", &body).unwrap(), b"hello");
            let (r_out, _) = keys.ciphers(false).unwrap();
            assert!(r_out.decrypt(b"aad", &body).is_err());
        }
        assert!(IkeSuite::new(
            Encr::AesGcm16 { key_bits: 128 },
            Some(Integ::HmacSha256_128),
            Prf::HmacSha256
        )
        .is_err());
        assert!(IkeSuite::new(Encr::AesCbc { key_bits: 128 }, None, Prf::HmacSha256).is_err());
    }

    #[test]
    fn rekey_uses_old_sk_d_and_old_prf() {
        let old = IkeKeys::derive(cbc_suite(), &[9; 48], &[1; 32], &[2; 32], 1, 2).unwrap();
        let new_suite = gcm_suite();
        let (ni, nr, gir) = ([4u8; 32], [5u8; 32], [6u8; 32]);
        let new = IkeKeys::derive_rekey(&old, new_suite, &gir, &ni, &nr, 3, 4).unwrap();
        // SKEYSEED with the old PRF (HMAC-SHA-512), the rest with the new (HMAC-SHA-256).
        let skeyseed = Prf::HmacSha512.prf(&old.sk_d, &[&gir[..], &ni, &nr].concat());
        let reference = IkeKeys::from_skeyseed(new_suite, &skeyseed, &ni, &nr, 3, 4).unwrap();
        assert_eq!(*new.sk_d, *reference.sk_d);
        assert_eq!(*new.sk_pr, *reference.sk_pr);
        assert_eq!(new.sk_d.len(), 32);
    }

    #[test]
    fn child_keymat_order() {
        let prf = Prf::HmacSha256;
        let sk_d = [7u8; 32];
        let (ni, nr) = ([1u8; 16], [2u8; 16]);
        // AES-CBC-128 + HMAC-SHA-256-128 ESP.
        let k = ChildKeys::derive(prf, &sk_d, None, &ni, &nr, 16, 32).unwrap();
        let km = prf.prf_plus(&sk_d, &[ni, nr].concat(), 96).unwrap();
        assert_eq!(*k.encr_i, km[..16]);
        assert_eq!(*k.integ_i, km[16..48]);
        assert_eq!(*k.encr_r, km[48..64]);
        assert_eq!(*k.integ_r, km[64..96]);
        // AES-GCM-256 with PFS: 36-byte keys, no integrity keys.
        let gir = [8u8; 32];
        let k = ChildKeys::derive(prf, &sk_d, Some(&gir), &ni, &nr, 36, 0).unwrap();
        let km = prf
            .prf_plus(&sk_d, &[&gir[..], &ni, &nr].concat(), 72)
            .unwrap();
        assert_eq!(*k.encr_i, km[..36]);
        assert_eq!(*k.encr_r, km[36..]);
        assert!(k.integ_i.is_empty() && k.integ_r.is_empty());
    }
}
