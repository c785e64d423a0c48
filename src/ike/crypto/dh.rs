//! Diffie-Hellman groups for KE payloads (RFC 7296 3.4).
//!
//! - ECP-256/384 (RFC 5903): KE data is x || y without the SEC1 0x04 prefix; the shared secret
//!   is x only. X25519 (RFC 8031): 32-byte u-coordinates; an all-zero secret is refused.
//!   Both via aws-lc-rs `agreement`, which checks that peer points are on the curve.
//! - MODP-2048/3072 (RFC 3526): aws-lc-rs has no finite-field DH, so we call AWS-LC's own DH
//!   through `aws-lc-sys`. Chosen over `crypto-bigint` for speed: AWS-LC's constant-time
//!   Montgomery exponentiation is assembly-optimised (several times faster than a portable
//!   constant-time bignum), it is the same library already linked for everything else, and it
//!   ships the RFC 3526 primes. The unsafe FFI is confined to the `modp` module below.
//!
//! Private keys can be built from known bytes ([`DhGroup::private_key_from_bytes`]) so test
//! vectors and deterministic simulations work; [`DhGroup::generate`] draws those bytes from an
//! [`RngSource`].

use aws_lc_rs::agreement;
use zeroize::Zeroizing;

use super::{CryptoError, RngSource};
use crate::ike::codec::DhGroupId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DhGroup {
    /// MODP 1024 (RFC 2409 6.2, group 2): legacy (Windows' built-in client), only when
    /// configured.
    Modp1024,
    Modp2048,
    Modp3072,
    Ecp256,
    Ecp384,
    Curve25519,
}

/// g^ir, padded to the group's size (RFC 7296 2.14), zeroized on drop.
pub struct SharedSecret(Zeroizing<Vec<u8>>);

impl SharedSecret {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSecret(..)")
    }
}

/// Our half of a key exchange. Kept until the peer's KE arrives; `agree` can be called more
/// than once (e.g. a retransmitted response is processed again).
pub struct DhPrivateKey {
    group: DhGroup,
    inner: Inner,
}

enum Inner {
    Ec(agreement::PrivateKey),
    /// The exponent, big-endian.
    Modp(Zeroizing<Vec<u8>>),
}

impl std::fmt::Debug for DhPrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DhPrivateKey({:?})", self.group)
    }
}

impl DhGroup {
    pub fn from_id(id: DhGroupId) -> Option<Self> {
        match id {
            DhGroupId::MODP_1024 => Some(DhGroup::Modp1024),
            DhGroupId::MODP_2048 => Some(DhGroup::Modp2048),
            DhGroupId::MODP_3072 => Some(DhGroup::Modp3072),
            DhGroupId::ECP_256 => Some(DhGroup::Ecp256),
            DhGroupId::ECP_384 => Some(DhGroup::Ecp384),
            DhGroupId::CURVE25519 => Some(DhGroup::Curve25519),
            _ => None,
        }
    }

    pub fn id(self) -> DhGroupId {
        match self {
            DhGroup::Modp1024 => DhGroupId::MODP_1024,
            DhGroup::Modp2048 => DhGroupId::MODP_2048,
            DhGroup::Modp3072 => DhGroupId::MODP_3072,
            DhGroup::Ecp256 => DhGroupId::ECP_256,
            DhGroup::Ecp384 => DhGroupId::ECP_384,
            DhGroup::Curve25519 => DhGroupId::CURVE25519,
        }
    }

    /// Length of the KE data for this group; a KE payload of any other length is invalid.
    pub fn public_len(self) -> usize {
        match self {
            DhGroup::Modp1024 => 128,
            DhGroup::Modp2048 => 256,
            DhGroup::Modp3072 => 384,
            DhGroup::Ecp256 => 64,
            DhGroup::Ecp384 => 96,
            DhGroup::Curve25519 => 32,
        }
    }

    /// Length of the private key bytes `generate` draws. For MODP this is a short exponent:
    /// RFC 3526 section 8 puts 2048-bit at 220-320 exponent bits and 3072-bit at 260-400; we
    /// use 256 and 384 bits (like strongSwan's short exponents), which keeps the exchange fast.
    pub fn private_len(self) -> usize {
        match self {
            // 160 bits, as strongSwan's short exponent for group 2.
            DhGroup::Modp1024 => 20,
            DhGroup::Modp2048 => 32,
            DhGroup::Modp3072 => 48,
            DhGroup::Ecp256 => 32,
            DhGroup::Ecp384 => 48,
            DhGroup::Curve25519 => 32,
        }
    }

    fn ec_alg(self) -> Option<&'static agreement::Algorithm> {
        match self {
            DhGroup::Ecp256 => Some(&agreement::ECDH_P256),
            DhGroup::Ecp384 => Some(&agreement::ECDH_P384),
            DhGroup::Curve25519 => Some(&agreement::X25519),
            DhGroup::Modp1024 | DhGroup::Modp2048 | DhGroup::Modp3072 => None,
        }
    }

    /// A fresh key pair: the private key and the KE payload data.
    pub fn generate(self, rng: &mut dyn RngSource) -> Result<(DhPrivateKey, Vec<u8>), CryptoError> {
        let mut bytes = Zeroizing::new(vec![0u8; self.private_len()]);
        // ECP scalars at or above the group order are rejected; retrying draws a valid one
        // with overwhelming probability (the order is within 2^-32 of 2^256 / 2^384).
        for _ in 0..16 {
            rng.fill(&mut bytes)?;
            if let Ok(pair) = self.private_key_from_bytes(&bytes) {
                return Ok(pair);
            }
        }
        Err(CryptoError::Rng)
    }

    /// A key pair from known private bytes (test vectors, deterministic tests): a big-endian
    /// scalar for ECP, the RFC 7748 scalar for X25519, the exponent for MODP.
    pub fn private_key_from_bytes(
        self,
        bytes: &[u8],
    ) -> Result<(DhPrivateKey, Vec<u8>), CryptoError> {
        match self.ec_alg() {
            Some(alg) => {
                let key = agreement::PrivateKey::from_private_key(alg, bytes)
                    .map_err(|_| CryptoError::InvalidKeyLength)?;
                let public = key
                    .compute_public_key()
                    .map_err(|_| CryptoError::Internal)?;
                let public = match self {
                    // Strip the SEC1 uncompressed-point prefix (RFC 5903 section 7).
                    DhGroup::Ecp256 | DhGroup::Ecp384 => match public.as_ref().split_first() {
                        Some((0x04, xy)) => xy.to_vec(),
                        _ => return Err(CryptoError::Internal),
                    },
                    _ => public.as_ref().to_vec(),
                };
                Ok((
                    DhPrivateKey {
                        group: self,
                        inner: Inner::Ec(key),
                    },
                    public,
                ))
            }
            None => {
                let public = modp::public_value(self, bytes)?;
                Ok((
                    DhPrivateKey {
                        group: self,
                        inner: Inner::Modp(Zeroizing::new(bytes.to_vec())),
                    },
                    public,
                ))
            }
        }
    }
}

impl DhPrivateKey {
    pub fn group(&self) -> DhGroup {
        self.group
    }

    /// g^ir from the peer's KE data, after validating it (length; MODP: 1 < y < p-1;
    /// ECP: on the curve; X25519: non-zero result).
    pub fn agree(&self, peer_public: &[u8]) -> Result<SharedSecret, CryptoError> {
        if peer_public.len() != self.group.public_len() {
            return Err(CryptoError::InvalidPublicValue);
        }
        match &self.inner {
            Inner::Ec(key) => {
                let alg = self.group.ec_alg().ok_or(CryptoError::Internal)?;
                let mut peer = Vec::with_capacity(peer_public.len() + 1);
                if self.group != DhGroup::Curve25519 {
                    peer.push(0x04);
                }
                peer.extend_from_slice(peer_public);
                let secret = agreement::agree(
                    key,
                    agreement::UnparsedPublicKey::new(alg, &peer),
                    CryptoError::InvalidPublicValue,
                    |s| Ok(Zeroizing::new(s.to_vec())),
                )?;
                // RFC 8031 section 2: an all-zero X25519 result means a small-order point.
                if secret.iter().all(|&b| b == 0) {
                    return Err(CryptoError::InvalidPublicValue);
                }
                Ok(SharedSecret(secret))
            }
            Inner::Modp(x) => modp::agree(self.group, x, peer_public).map(SharedSecret),
        }
    }
}

/// Finite-field DH through AWS-LC's DH API. Every pointer is owned by a guard that frees it.
#[allow(unsafe_code)]
mod modp {
    use std::ptr;

    use aws_lc_sys as sys;
    use zeroize::Zeroizing;

    use super::{CryptoError, DhGroup};

    struct Bn(*mut sys::BIGNUM);

    impl Drop for Bn {
        fn drop(&mut self) {
            // SAFETY: the pointer came from an AWS-LC allocator and is owned by this guard
            // (ownership is released with `into_raw` when handed to a DH object).
            unsafe { sys::BN_clear_free(self.0) }
        }
    }

    impl Bn {
        fn new(p: *mut sys::BIGNUM) -> Result<Bn, CryptoError> {
            if p.is_null() {
                Err(CryptoError::Internal)
            } else {
                Ok(Bn(p))
            }
        }

        fn from_be(bytes: &[u8]) -> Result<Bn, CryptoError> {
            // SAFETY: reads `bytes.len()` bytes from a valid slice; returns a new BIGNUM or null.
            Bn::new(unsafe { sys::BN_bin2bn(bytes.as_ptr(), bytes.len(), ptr::null_mut()) })
        }

        fn into_raw(self) -> *mut sys::BIGNUM {
            let p = self.0;
            std::mem::forget(self);
            p
        }
    }

    struct Dh(*mut sys::DH);

    impl Drop for Dh {
        fn drop(&mut self) {
            // SAFETY: owned DH object from DH_new; DH_free also frees the BIGNUMs it owns.
            unsafe { sys::DH_free(self.0) }
        }
    }

    /// The 1024-bit MODP prime, 2^1024 - 2^960 - 1 + 2^64 * { [2^894 pi] + 129093 }
    /// (RFC 2409 6.2); a test recomputes it from pi.
    pub(super) fn modp1024_prime() -> Vec<u8> {
        const HEX: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1\
            29024E088A67CC74020BBEA63B139B22514A08798E3404DD\
            EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245\
            E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED\
            EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381\
            FFFFFFFFFFFFFFFF";
        let h: Vec<u8> = HEX.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
        h.chunks(2)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
            .collect()
    }

    fn prime(group: DhGroup) -> Result<Bn, CryptoError> {
        // SAFETY: with a null argument these allocate and return a new BIGNUM (or null).
        Bn::new(unsafe {
            match group {
                // AWS-LC has no RFC 2409 primes: group 2's from its hex (RFC 2409 6.2).
                DhGroup::Modp1024 => {
                    let p = modp1024_prime();
                    sys::BN_bin2bn(p.as_ptr(), p.len(), ptr::null_mut())
                }
                DhGroup::Modp2048 => sys::BN_get_rfc3526_prime_2048(ptr::null_mut()),
                DhGroup::Modp3072 => sys::BN_get_rfc3526_prime_3072(ptr::null_mut()),
                _ => ptr::null_mut(),
            }
        })
    }

    /// p as big-endian bytes of the group's length.
    fn prime_bytes(group: DhGroup) -> Result<Vec<u8>, CryptoError> {
        let p = prime(group)?;
        let mut out = vec![0u8; group.public_len()];
        // SAFETY: `out` has `out.len()` writable bytes; p is a valid BIGNUM.
        if unsafe { sys::BN_bn2bin_padded(out.as_mut_ptr(), out.len(), p.0) } != 1 {
            return Err(CryptoError::Internal);
        }
        Ok(out)
    }

    /// A DH object with p, g = 2 (RFC 3526) and the private exponent `x`.
    fn dh_with_private(group: DhGroup, x: &[u8]) -> Result<Dh, CryptoError> {
        // SAFETY: DH_new returns an owned object or null.
        let dh = unsafe { sys::DH_new() };
        if dh.is_null() {
            return Err(CryptoError::Internal);
        }
        let dh = Dh(dh);
        let p = prime(group)?;
        // SAFETY: BN_new returns an owned BIGNUM or null; BN_set_word on a valid BIGNUM.
        let g = Bn::new(unsafe { sys::BN_new() })?;
        if unsafe { sys::BN_set_word(g.0, 2) } != 1 {
            return Err(CryptoError::Internal);
        }
        // SAFETY: on success DH_set0_pqg takes ownership of p and g; on failure they are
        // still ours, so release them only after it succeeds.
        if unsafe { sys::DH_set0_pqg(dh.0, p.0, ptr::null_mut(), g.0) } != 1 {
            return Err(CryptoError::Internal);
        }
        let _ = (p.into_raw(), g.into_raw());
        let priv_key = Bn::from_be(x)?;
        // SAFETY: as above, DH_set0_key takes ownership of priv_key on success.
        if unsafe { sys::DH_set0_key(dh.0, ptr::null_mut(), priv_key.0) } != 1 {
            return Err(CryptoError::Internal);
        }
        let _ = priv_key.into_raw();
        Ok(dh)
    }

    /// Big-endian comparison of equal-length values (public data only: not constant time).
    fn less(a: &[u8], b: &[u8]) -> bool {
        a < b
    }

    /// `p - 1` in bytes (p is odd, so only the last byte changes).
    fn p_minus_1(mut p: Vec<u8>) -> Vec<u8> {
        if let Some(last) = p.last_mut() {
            *last &= 0xfe;
        }
        p
    }

    fn is_one(v: &[u8]) -> bool {
        match v.split_last() {
            Some((1, rest)) => rest.iter().all(|&b| b == 0),
            _ => false,
        }
    }

    pub(super) fn public_value(group: DhGroup, x: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let plen = group.public_len();
        // 2 <= x < p - 1: a longer value, zero or one is not a usable exponent.
        if x.is_empty() || x.len() > plen || x.iter().all(|&b| b == 0) {
            return Err(CryptoError::InvalidKeyLength);
        }
        let mut padded = Zeroizing::new(vec![0u8; plen - x.len()]);
        padded.extend_from_slice(x);
        if is_one(&padded) || !less(&padded, &p_minus_1(prime_bytes(group)?)) {
            return Err(CryptoError::InvalidKeyLength);
        }
        let dh = dh_with_private(group, x)?;
        // SAFETY: dh is valid with p, g and priv_key set; this computes pub_key = g^x mod p.
        if unsafe { sys::DH_generate_key(dh.0) } != 1 {
            return Err(CryptoError::Internal);
        }
        // SAFETY: returns a pointer owned by dh (valid while dh lives) or null.
        let y = unsafe { sys::DH_get0_pub_key(dh.0) };
        if y.is_null() {
            return Err(CryptoError::Internal);
        }
        let mut out = vec![0u8; plen];
        // SAFETY: `out` has `plen` writable bytes; y is valid.
        if unsafe { sys::BN_bn2bin_padded(out.as_mut_ptr(), plen, y) } != 1 {
            return Err(CryptoError::Internal);
        }
        Ok(out)
    }

    pub(super) fn agree(
        group: DhGroup,
        x: &[u8],
        peer: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let plen = group.public_len();
        // RFC 7296 3.4 / SP 800-56A: the peer's value must satisfy 1 < y < p - 1.
        let p1 = p_minus_1(prime_bytes(group)?);
        if peer.len() != plen || peer.iter().all(|&b| b == 0) || is_one(peer) || !less(peer, &p1) {
            return Err(CryptoError::InvalidPublicValue);
        }
        let dh = dh_with_private(group, x)?;
        let y = Bn::from_be(peer)?;
        let mut out = Zeroizing::new(vec![0u8; plen]);
        // SAFETY: `out` has DH_size(dh) = plen writable bytes; the result is left-padded to
        // the prime length, which is what IKE wants for g^ir (RFC 7296 2.14).
        let n = unsafe { sys::DH_compute_key_padded(out.as_mut_ptr(), y.0, dh.0) };
        if usize::try_from(n).ok() != Some(plen) {
            return Err(CryptoError::InvalidPublicValue);
        }
        Ok(out)
    }

    #[cfg(test)]
    pub(super) fn p_bytes(group: DhGroup) -> Vec<u8> {
        prime_bytes(group).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{hex, TestRng};
    use super::*;

    fn check_vector(group: DhGroup, i: &str, gi: &str, r: &str, gr: &str, gir: &str) {
        let (ki, pi) = group.private_key_from_bytes(&hex(i)).unwrap();
        let (kr, pr) = group.private_key_from_bytes(&hex(r)).unwrap();
        assert_eq!(pi, hex(gi), "{group:?} initiator public");
        assert_eq!(pr, hex(gr), "{group:?} responder public");
        assert_eq!(ki.agree(&pr).unwrap().as_bytes(), hex(gir).as_slice());
        assert_eq!(kr.agree(&pi).unwrap().as_bytes(), hex(gir).as_slice());
    }

    // RFC 5903 section 8.1.
    #[test]
    fn rfc5903_ecp256() {
        check_vector(
            DhGroup::Ecp256,
            "C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433",
            "DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180\
             5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3",
            "C6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53",
            "D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63\
             56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB",
            "D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE",
        );
    }

    // RFC 5903 section 8.2.
    #[test]
    fn rfc5903_ecp384() {
        check_vector(
            DhGroup::Ecp384,
            "099F3C7034D4A2C699884D73A375A67F7624EF7C6B3C0F160647B67414DCE655\
             E35B538041E649EE3FAEF896783AB194",
            "667842D7D180AC2CDE6F74F37551F55755C7645C20EF73E31634FE72B4C55EE6\
             DE3AC808ACB4BDB4C88732AEE95F41AA9482ED1FC0EEB9CAFC4984625CCFC23F\
             65032149E0E144ADA024181535A0F38EEB9FCFF3C2C947DAE69B4C634573A81C",
            "41CB0779B4BDB85D47846725FBEC3C9430FAB46CC8DC5060855CC9BDA0AA2942\
             E0308312916B8ED2960E4BD55A7448FC",
            "E558DBEF53EECDE3D3FCCFC1AEA08A89A987475D12FD950D83CFA41732BC509D\
             0D1AC43A0336DEF96FDA41D0774A3571DCFBEC7AACF3196472169E838430367F\
             66EEBE3C6E70C416DD5F0C68759DD1FFF83FA40142209DFF5EAAD96DB9E6386C",
            "11187331C279962D93D604243FD592CB9D0A926F422E47187521287E7156C5C4\
             D603135569B9E9D09CF5D4A270F59746",
        );
    }

    // RFC 7748 section 6.1.
    #[test]
    fn rfc7748_x25519() {
        check_vector(
            DhGroup::Curve25519,
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
            "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
            "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
            "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742",
        );
    }

    #[test]
    fn ec_rejects_bad_peer_values() {
        let mut rng = TestRng(7);
        for g in [DhGroup::Ecp256, DhGroup::Ecp384, DhGroup::Curve25519] {
            let (k, public) = g.generate(&mut rng).unwrap();
            assert_eq!(public.len(), g.public_len());
            assert_eq!(
                k.agree(&public[1..]).unwrap_err(),
                CryptoError::InvalidPublicValue
            );
            let mut long = public.clone();
            long.push(0);
            assert!(k.agree(&long).is_err());
        }
        // A point off the curve.
        let (k, mut public) = DhGroup::Ecp256.generate(&mut rng).unwrap();
        public[63] ^= 1;
        assert_eq!(
            k.agree(&public).unwrap_err(),
            CryptoError::InvalidPublicValue
        );
        // X25519 small-order point (u = 0) gives an all-zero secret.
        let (k, _) = DhGroup::Curve25519.generate(&mut rng).unwrap();
        assert!(k.agree(&[0u8; 32]).is_err());
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(k.agree(&one).is_err());
    }

    /// RFC 2409 6.2's prime, recomputed: 2^1024 - 2^960 - 1 + 2^64 * ([2^894 pi] + 129093),
    /// pi from Machin's formula in integers.
    #[test]
    fn modp1024_prime_is_rfc_2409s() {
        fn mul_small(a: &mut Vec<u32>, m: u32, add: u32) {
            let mut carry = add as u64;
            for d in a.iter_mut() {
                let v = *d as u64 * m as u64 + carry;
                *d = v as u32;
                carry = v >> 32;
            }
            if carry > 0 {
                a.push(carry as u32);
            }
        }
        // Big numbers as little-endian u32 limbs; enough for 2^960 + 2^894 pi.
        fn div_small(a: &[u32], d: u32) -> Vec<u32> {
            let mut out = vec![0u32; a.len()];
            let mut rem = 0u64;
            for i in (0..a.len()).rev() {
                let v = (rem << 32) | a[i] as u64;
                out[i] = (v / d as u64) as u32;
                rem = v % d as u64;
            }
            out
        }
        fn add(a: &mut [u32], b: &[u32], sub: bool) {
            let mut carry = 0i64;
            for (i, d) in a.iter_mut().enumerate() {
                let x = *b.get(i).unwrap_or(&0) as i64;
                let v = *d as i64 + carry + if sub { -x } else { x };
                *d = v.rem_euclid(1 << 32) as u32;
                carry = v.div_euclid(1 << 32);
            }
        }
        fn is_zero(a: &[u32]) -> bool {
            a.iter().all(|&x| x == 0)
        }
        // arctan(1/x) * 2^(894+64), by its series.
        let prec_limbs = (894 + 64 + 32) / 32 + 2;
        let arctan = |x: u32| {
            let mut one = vec![0u32; prec_limbs];
            one[(894 + 64) / 32] = 1 << ((894 + 64) % 32);
            let mut term = div_small(&one, x);
            let mut sum = term.clone();
            let mut n = 1u32;
            let mut neg = true;
            while !is_zero(&term) {
                term = div_small(&term, x * x);
                n += 2;
                add(&mut sum, &div_small(&term, n), neg);
                neg = !neg;
            }
            sum
        };
        // pi = 16 arctan(1/5) - 4 arctan(1/239)
        let mut pi = arctan(5);
        mul_small(&mut pi, 16, 0);
        let mut b = arctan(239);
        mul_small(&mut b, 4, 0);
        pi.resize(pi.len().max(b.len()), 0);
        add(&mut pi, &b, true);
        // Drop the 64 guard bits: floor(2^894 pi).
        let mut f = vec![0u32; pi.len()];
        f[..pi.len() - 2].copy_from_slice(&pi[2..]);
        // 2^64 * (f + 129093): shift by two limbs.
        mul_small(&mut f, 1, 129093);
        let mut p = vec![0u32; 33];
        for (i, &l) in f.iter().enumerate() {
            if i + 2 < p.len() {
                p[i + 2] = l;
            }
        }
        // + 2^1024 - 2^960 - 1
        let mut top = vec![0u32; 33];
        top[32] = 1;
        let mut mid = vec![0u32; 33];
        mid[30] = 1;
        let one = [1u32];
        add(&mut p, &top, false);
        add(&mut p, &mid, true);
        add(&mut p, &one, true);
        assert_eq!(p[32], 0, "p < 2^1024");
        let be: Vec<u8> = p[..32].iter().rev().flat_map(|l| l.to_be_bytes()).collect();
        assert_eq!(be, modp::modp1024_prime());
    }

    #[test]
    fn modp_agreement_and_validation() {
        let mut rng = TestRng(42);
        for g in [DhGroup::Modp1024, DhGroup::Modp2048, DhGroup::Modp3072] {
            let (a, pa) = g.generate(&mut rng).unwrap();
            let (b, pb) = g.generate(&mut rng).unwrap();
            assert_eq!(pa.len(), g.public_len());
            let sa = a.agree(&pb).unwrap();
            let sb = b.agree(&pa).unwrap();
            assert_eq!(sa.as_bytes(), sb.as_bytes());
            assert_eq!(sa.as_bytes().len(), g.public_len());

            let p = modp::p_bytes(g);
            assert_eq!(p.len(), g.public_len());
            assert_eq!(p[0], 0xff);
            let mut one = vec![0u8; g.public_len()];
            *one.last_mut().unwrap() = 1;
            let mut p_minus_1 = p.clone();
            *p_minus_1.last_mut().unwrap() -= 1;
            for bad in [
                vec![0u8; g.public_len()],
                one,
                p_minus_1,
                p.clone(),
                vec![0xff; g.public_len()],
            ] {
                assert_eq!(a.agree(&bad).unwrap_err(), CryptoError::InvalidPublicValue);
            }
            assert!(a.agree(&pb[1..]).is_err());
            // Known exponent 2: g^2 = 4.
            let (_, four) = g.private_key_from_bytes(&[2]).unwrap();
            assert!(four[..four.len() - 1].iter().all(|&b| b == 0));
            assert_eq!(four.last(), Some(&4));
            assert!(g.private_key_from_bytes(&[1]).is_err());
            assert!(g.private_key_from_bytes(&[]).is_err());
        }
    }
}
