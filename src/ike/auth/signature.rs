//! Signature AUTH payloads: RSA PKCS#1 (method 1, RFC 7296 3.8), ECDSA with fixed-size
//! r||s (methods 9-11, RFC 4754 7), and the Digital Signature method (14, RFC 7427 3) whose
//! data starts with the ASN.1 AlgorithmIdentifier of the signature. The keys and the
//! signatures themselves are aws-lc-rs's.

use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, KeyPair, RsaKeyPair};
use zeroize::Zeroizing;

use crate::ike::codec::{AuthMethod, AuthPayload};

/// Hash Algorithm Identifiers of SIGNATURE_HASH_ALGORITHMS (RFC 7427 4, IANA "IKEv2 Hash
/// Algorithms").
pub const HASH_SHA1: u16 = 1;
pub const HASH_SHA256: u16 = 2;
pub const HASH_SHA384: u16 = 3;
pub const HASH_SHA512: u16 = 4;

/// What we announce in SIGNATURE_HASH_ALGORITHMS: the hashes we verify (and sign) with.
pub const OUR_HASHES: [u16; 3] = [HASH_SHA256, HASH_SHA384, HASH_SHA512];

/// The notify's data for [`OUR_HASHES`].
pub fn hashes_notify_data() -> Vec<u8> {
    OUR_HASHES.iter().flat_map(|h| h.to_be_bytes()).collect()
}

/// The hashes the peer announced in its SIGNATURE_HASH_ALGORITHMS (RFC 7427 4); empty when
/// it sent none, which means it may not understand method 14.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigHashes(u8);

impl SigHashes {
    /// From the notify's data: a list of 16-bit identifiers; unknown ones are ignored.
    pub fn from_notify(data: &[u8]) -> SigHashes {
        let mut s = 0u8;
        for c in data.chunks_exact(2) {
            let h = u16::from_be_bytes([c[0], c[1]]);
            if (1..=7).contains(&h) {
                s |= 1 << h;
            }
        }
        SigHashes(s)
    }
    pub fn has(self, h: u16) -> bool {
        h < 8 && self.0 & (1 << h) != 0
    }
    pub fn any(self) -> bool {
        self.0 != 0
    }
}

/// RFC 7427 3 and Appendix A: the signature algorithms of method 14 we sign and verify, each
/// with its AlgorithmIdentifier as DER.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    RsaPkcs1Sha256,
    RsaPkcs1Sha384,
    RsaPkcs1Sha512,
    RsaPssSha256,
    RsaPssSha384,
    RsaPssSha512,
    EcdsaSha256,
    EcdsaSha384,
    EcdsaSha512,
}

const OID_RSA_PKCS1: [u8; 8] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
const OID_ECDSA_SHA2: [u8; 7] = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
const OID_SHA2: [u8; 8] = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02];

impl Scheme {
    const ALL: [Scheme; 9] = [
        Scheme::RsaPkcs1Sha256,
        Scheme::RsaPkcs1Sha384,
        Scheme::RsaPkcs1Sha512,
        Scheme::RsaPssSha256,
        Scheme::RsaPssSha384,
        Scheme::RsaPssSha512,
        Scheme::EcdsaSha256,
        Scheme::EcdsaSha384,
        Scheme::EcdsaSha512,
    ];

    /// The IKEv2 hash identifier (RFC 7427 4) this scheme uses.
    pub fn hash(self) -> u16 {
        match self {
            Scheme::RsaPkcs1Sha256 | Scheme::RsaPssSha256 | Scheme::EcdsaSha256 => HASH_SHA256,
            Scheme::RsaPkcs1Sha384 | Scheme::RsaPssSha384 | Scheme::EcdsaSha384 => HASH_SHA384,
            Scheme::RsaPkcs1Sha512 | Scheme::RsaPssSha512 | Scheme::EcdsaSha512 => HASH_SHA512,
        }
    }

    /// The DER AlgorithmIdentifier: sha*WithRSAEncryption with NULL parameters (RFC 4055
    /// 5), ecdsa-with-SHA* without parameters (RFC 5758 3.2), RSASSA-PSS with the hash, MGF1
    /// of the same hash and a salt of the hash's length (RFC 4055 3.1, RFC 7427 A.4).
    pub fn algorithm_identifier(self) -> Vec<u8> {
        let h = (self.hash() - 1) as u8; // SHA-256: 1, SHA-384: 2, SHA-512: 3 (id-sha*)
        let rsa = |last: u8| {
            let mut v = vec![0x30, 0x0d, 0x06, 0x09];
            v.extend_from_slice(&OID_RSA_PKCS1);
            v.extend_from_slice(&[last, 0x05, 0x00]);
            v
        };
        match self {
            Scheme::RsaPkcs1Sha256 | Scheme::RsaPkcs1Sha384 | Scheme::RsaPkcs1Sha512 => {
                rsa(0x0a + h)
            }
            Scheme::EcdsaSha256 | Scheme::EcdsaSha384 | Scheme::EcdsaSha512 => {
                let mut v = vec![0x30, 0x0a, 0x06, 0x08];
                v.extend_from_slice(&OID_ECDSA_SHA2);
                v.push(0x01 + h);
                v
            }
            Scheme::RsaPssSha256 | Scheme::RsaPssSha384 | Scheme::RsaPssSha512 => {
                // hashAlgorithm [0] AlgorithmIdentifier { id-sha*, NULL }
                let mut hash_alg = vec![0x30, 0x0d, 0x06, 0x09];
                hash_alg.extend_from_slice(&OID_SHA2);
                hash_alg.extend_from_slice(&[h, 0x05, 0x00]);
                let mut params = vec![0xa0, hash_alg.len() as u8];
                params.extend_from_slice(&hash_alg);
                // maskGenAlgorithm [1] { id-mgf1, hashAlgorithm }
                let mut mgf = vec![0x06, 0x09];
                mgf.extend_from_slice(&OID_RSA_PKCS1);
                mgf.push(0x08);
                mgf.extend_from_slice(&hash_alg);
                params.extend_from_slice(&[0xa1, mgf.len() as u8 + 2, 0x30, mgf.len() as u8]);
                params.extend_from_slice(&mgf);
                // saltLength [2] INTEGER (the hash length)
                let salt = [32u8, 48, 64][h as usize - 1];
                params.extend_from_slice(&[0xa2, 0x03, 0x02, 0x01, salt]);
                let mut v = vec![0x06, 0x09];
                v.extend_from_slice(&OID_RSA_PKCS1);
                v.push(0x0a);
                v.extend_from_slice(&[0x30, params.len() as u8]);
                v.extend_from_slice(&params);
                let mut out = vec![0x30, v.len() as u8];
                out.extend_from_slice(&v);
                out
            }
        }
    }

    /// The scheme of a received AlgorithmIdentifier. sha*WithRSAEncryption is taken with
    /// or without its NULL parameters (RFC 4055 5 asks for NULL, some send none).
    pub fn from_algorithm_identifier(der: &[u8]) -> Option<Scheme> {
        if let Some(s) = Scheme::ALL
            .into_iter()
            .find(|s| s.algorithm_identifier() == der)
        {
            return Some(s);
        }
        // sha*WithRSAEncryption without parameters: 30 0b 06 09 <oid>.
        match der {
            [0x30, 0x0b, 0x06, 0x09, oid @ .., last]
                if oid == OID_RSA_PKCS1 && (0x0b..=0x0d).contains(last) =>
            {
                Some(
                    [
                        Scheme::RsaPkcs1Sha256,
                        Scheme::RsaPkcs1Sha384,
                        Scheme::RsaPkcs1Sha512,
                    ][(*last - 0x0b) as usize],
                )
            }
            _ => None,
        }
    }

    fn verification(self, key: KeyKind) -> Option<&'static dyn sig::VerificationAlgorithm> {
        Some(match (self, key) {
            (Scheme::RsaPkcs1Sha256, KeyKind::Rsa) => &sig::RSA_PKCS1_2048_8192_SHA256,
            (Scheme::RsaPkcs1Sha384, KeyKind::Rsa) => &sig::RSA_PKCS1_2048_8192_SHA384,
            (Scheme::RsaPkcs1Sha512, KeyKind::Rsa) => &sig::RSA_PKCS1_2048_8192_SHA512,
            (Scheme::RsaPssSha256, KeyKind::Rsa) => &sig::RSA_PSS_2048_8192_SHA256,
            (Scheme::RsaPssSha384, KeyKind::Rsa) => &sig::RSA_PSS_2048_8192_SHA384,
            (Scheme::RsaPssSha512, KeyKind::Rsa) => &sig::RSA_PSS_2048_8192_SHA512,
            (Scheme::EcdsaSha256, KeyKind::P256) => &sig::ECDSA_P256_SHA256_ASN1,
            (Scheme::EcdsaSha384, KeyKind::P256) => &sig::ECDSA_P256_SHA384_ASN1,
            (Scheme::EcdsaSha256, KeyKind::P384) => &sig::ECDSA_P384_SHA256_ASN1,
            (Scheme::EcdsaSha384, KeyKind::P384) => &sig::ECDSA_P384_SHA384_ASN1,
            (Scheme::EcdsaSha512, KeyKind::P521) => &sig::ECDSA_P521_SHA512_ASN1,
            (Scheme::EcdsaSha256, KeyKind::P521) => &sig::ECDSA_P521_SHA256_ASN1,
            (Scheme::EcdsaSha384, KeyKind::P521) => &sig::ECDSA_P521_SHA384_ASN1,
            _ => return None,
        })
    }
}

/// The kind of a public key (from a certificate's SubjectPublicKeyInfo).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    P256,
    P384,
    P521,
}

/// A public key to verify AUTH with: its kind and the subjectPublicKey bits (an
/// RSAPublicKey DER for RSA, the uncompressed point for ECDSA), as aws-lc-rs takes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    pub kind: KeyKind,
    pub bits: Vec<u8>,
}

/// Why a signature AUTH did not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("{0}")]
    Unsupported(String),
    #[error("signature does not verify")]
    Bad,
}

/// Checks a signature AUTH payload over `octets` with the peer's public key. `peer_hashes`
/// are the hashes we announced (method 14's hash must be one of them, RFC 7427 4).
pub fn verify(key: &PublicKey, auth: &AuthPayload, octets: &[u8]) -> Result<(), VerifyError> {
    let (alg, signature): (&dyn sig::VerificationAlgorithm, &[u8]) = match (auth.method, key.kind) {
        // RFC 7296 3.8: RSASSA-PKCS1-v1_5; in practice with SHA-1 (strongSwan, Windows).
        (AuthMethod::RSA_DIGITAL_SIGNATURE, KeyKind::Rsa) => (
            &sig::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            &auth.data,
        ),
        // RFC 4754 7: r||s, each the size of the curve's order.
        (AuthMethod::ECDSA_SHA256_P256, KeyKind::P256) => {
            (&sig::ECDSA_P256_SHA256_FIXED, &auth.data)
        }
        (AuthMethod::ECDSA_SHA384_P384, KeyKind::P384) => {
            (&sig::ECDSA_P384_SHA384_FIXED, &auth.data)
        }
        (AuthMethod::ECDSA_SHA512_P521, KeyKind::P521) => {
            (&sig::ECDSA_P521_SHA512_FIXED, &auth.data)
        }
        (AuthMethod::DIGITAL_SIGNATURE, kind) => {
            // RFC 7427 3: one octet of length, the AlgorithmIdentifier, the signature.
            let Some((&len, rest)) = auth.data.split_first() else {
                return Err(VerifyError::Unsupported("empty AUTH data".into()));
            };
            let len = len as usize;
            if rest.len() <= len {
                return Err(VerifyError::Unsupported(
                    "AlgorithmIdentifier longer than the AUTH data".into(),
                ));
            }
            let (ai, signature) = rest.split_at(len);
            let scheme = Scheme::from_algorithm_identifier(ai).ok_or_else(|| {
                VerifyError::Unsupported(format!(
                    "unknown signature AlgorithmIdentifier {}",
                    hex(ai)
                ))
            })?;
            if !OUR_HASHES.contains(&scheme.hash()) {
                return Err(VerifyError::Unsupported(format!(
                    "{scheme:?} uses a hash we did not announce"
                )));
            }
            let alg = scheme.verification(kind).ok_or_else(|| {
                VerifyError::Unsupported(format!("{scheme:?} with a {kind:?} key"))
            })?;
            (alg, signature)
        }
        (m, k) => {
            return Err(VerifyError::Unsupported(format!(
                "{} with a {k:?} key",
                super::MethodName(m)
            )))
        }
    };
    sig::UnparsedPublicKey::new(alg, &key.bits)
        .verify(octets, signature)
        .map_err(|_| VerifyError::Bad)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Our private key. ECDSA keys are held twice by aws-lc-rs, once per signature encoding:
/// RFC 4754's fixed r||s and RFC 7427's DER.
pub enum SigningKey {
    Rsa(RsaKeyPair),
    Ecdsa {
        kind: KeyKind,
        fixed: EcdsaKeyPair,
        der: EcdsaKeyPair,
    },
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({:?})", self.kind())
    }
}

impl SigningKey {
    /// From a PKCS#8, SEC1 or PKCS#1 private key in PEM (as openssl and strongSwan's pki
    /// write them).
    pub fn from_pem(pem: &[u8]) -> Result<SigningKey, String> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::PrivateKeyDer;
        let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("no private key: {e}"))?;
        let der = Zeroizing::new(key.secret_der().to_vec());
        match key {
            PrivateKeyDer::Pkcs1(_) => RsaKeyPair::from_der(&der)
                .map(SigningKey::Rsa)
                .map_err(|e| format!("RSA key rejected: {e}")),
            PrivateKeyDer::Sec1(_) | PrivateKeyDer::Pkcs8(_) => {
                if let Ok(k) = RsaKeyPair::from_pkcs8(&der) {
                    return Ok(SigningKey::Rsa(k));
                }
                type Algs = (
                    KeyKind,
                    &'static sig::EcdsaSigningAlgorithm,
                    &'static sig::EcdsaSigningAlgorithm,
                );
                let curves: [Algs; 2] = [
                    (
                        KeyKind::P256,
                        &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
                        &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
                    ),
                    (
                        KeyKind::P384,
                        &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
                        &sig::ECDSA_P384_SHA384_ASN1_SIGNING,
                    ),
                ];
                for (kind, fixed, asn1) in curves {
                    if let (Ok(fixed), Ok(der)) = (
                        EcdsaKeyPair::from_private_key_der(fixed, &der),
                        EcdsaKeyPair::from_private_key_der(asn1, &der),
                    ) {
                        return Ok(SigningKey::Ecdsa { kind, fixed, der });
                    }
                }
                Err("not an RSA, ECDSA P-256 or P-384 private key".into())
            }
            _ => Err("unsupported private key format".into()),
        }
    }

    pub fn kind(&self) -> KeyKind {
        match self {
            SigningKey::Rsa(_) => KeyKind::Rsa,
            SigningKey::Ecdsa { kind, .. } => *kind,
        }
    }

    /// The public key's bits as a certificate carries them (to check the pair).
    pub fn public_bits(&self) -> &[u8] {
        match self {
            SigningKey::Rsa(k) => k.public_key().as_ref(),
            SigningKey::Ecdsa { fixed, .. } => fixed.public_key().as_ref(),
        }
    }

    /// Signs `octets` as AUTH: method 14 (RFC 7427) when the peer announced a hash we can
    /// use, else RFC 4754's ECDSA methods. RSA needs method 14: method 1 means SHA-1,
    /// which aws-lc-rs does not sign with (and which should not be used anymore).
    pub fn sign(&self, peer: SigHashes, octets: &[u8]) -> Result<AuthPayload, String> {
        // aws-lc-rs signs with its own randomness (RSA-PSS salts; its ECDSA nonces are
        // deterministic-plus-random): a signature is not an engine decision to replay.
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pick = |want: &[Scheme]| want.iter().copied().find(|s| peer.has(s.hash()));
        match self {
            SigningKey::Rsa(k) => {
                let Some(scheme) = pick(&[
                    Scheme::RsaPkcs1Sha256,
                    Scheme::RsaPkcs1Sha384,
                    Scheme::RsaPkcs1Sha512,
                ]) else {
                    return Err("the peer announced no RFC 7427 hash (SIGNATURE_HASH_ALGORITHMS) we sign with; RSA signatures of method 1 (SHA-1) are not offered".into());
                };
                let enc: &'static dyn sig::RsaEncoding = match scheme {
                    Scheme::RsaPkcs1Sha384 => &sig::RSA_PKCS1_SHA384,
                    Scheme::RsaPkcs1Sha512 => &sig::RSA_PKCS1_SHA512,
                    _ => &sig::RSA_PKCS1_SHA256,
                };
                let mut s = vec![0; k.public_modulus_len()];
                k.sign(enc, &rng, octets, &mut s)
                    .map_err(|_| "RSA signing failed".to_string())?;
                Ok(digital_signature(scheme, &s))
            }
            SigningKey::Ecdsa { kind, fixed, der } => {
                let (scheme, method) = match kind {
                    KeyKind::P384 => (Scheme::EcdsaSha384, AuthMethod::ECDSA_SHA384_P384),
                    _ => (Scheme::EcdsaSha256, AuthMethod::ECDSA_SHA256_P256),
                };
                if peer.has(scheme.hash()) {
                    let s = der
                        .sign(&rng, octets)
                        .map_err(|_| "ECDSA signing failed".to_string())?;
                    Ok(digital_signature(scheme, s.as_ref()))
                } else {
                    let s = fixed
                        .sign(&rng, octets)
                        .map_err(|_| "ECDSA signing failed".to_string())?;
                    Ok(AuthPayload {
                        method,
                        data: s.as_ref().to_vec(),
                    })
                }
            }
        }
    }
}

/// Method 14's AUTH data (RFC 7427 3).
fn digital_signature(scheme: Scheme, signature: &[u8]) -> AuthPayload {
    let ai = scheme.algorithm_identifier();
    let mut data = vec![ai.len() as u8];
    data.extend_from_slice(&ai);
    data.extend_from_slice(signature);
    AuthPayload {
        method: AuthMethod::DIGITAL_SIGNATURE,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 7427 Appendix A's blobs.
    #[test]
    fn algorithm_identifiers_are_rfc_7427_appendix_a() {
        assert_eq!(
            Scheme::RsaPkcs1Sha256.algorithm_identifier(),
            unhex("30 0d 06 09 2a 86 48 86 f7 0d 01 01 0b 05 00")
        );
        assert_eq!(
            Scheme::RsaPkcs1Sha512.algorithm_identifier(),
            unhex("30 0d 06 09 2a 86 48 86 f7 0d 01 01 0d 05 00")
        );
        assert_eq!(
            Scheme::EcdsaSha256.algorithm_identifier(),
            unhex("30 0a 06 08 2a 86 48 ce 3d 04 03 02")
        );
        assert_eq!(
            Scheme::EcdsaSha384.algorithm_identifier(),
            unhex("30 0a 06 08 2a 86 48 ce 3d 04 03 03")
        );
        // A.4.1: RSASSA-PSS with SHA-256, MGF1-SHA-256, salt 32.
        assert_eq!(
            Scheme::RsaPssSha256.algorithm_identifier(),
            unhex(
                "30 41 06 09 2a 86 48 86 f7 0d 01 01 0a 30 34 a0 0f 30 0d 06 09 60 86 48 01
                 65 03 04 02 01 05 00 a1 1c 30 1a 06 09 2a 86 48 86 f7 0d 01 01 08 30 0d 06
                 09 60 86 48 01 65 03 04 02 01 05 00 a2 03 02 01 20"
            )
        );
        for s in Scheme::ALL {
            assert_eq!(
                Scheme::from_algorithm_identifier(&s.algorithm_identifier()),
                Some(s)
            );
        }
        assert_eq!(
            Scheme::from_algorithm_identifier(&unhex("30 0b 06 09 2a 86 48 86 f7 0d 01 01 0c")),
            Some(Scheme::RsaPkcs1Sha384),
            "sha384WithRSAEncryption without its NULL"
        );
        assert_eq!(Scheme::from_algorithm_identifier(&[0x30, 0x00]), None);
    }

    #[test]
    fn hash_notify_round_trip() {
        let h = SigHashes::from_notify(&hashes_notify_data());
        assert!(h.has(HASH_SHA256) && h.has(HASH_SHA384) && h.has(HASH_SHA512));
        assert!(!h.has(HASH_SHA1));
        assert!(!SigHashes::from_notify(&[0, 1, 0xff, 0xff, 0]).has(HASH_SHA256));
        assert!(!SigHashes::default().any());
    }

    fn ecdsa_key(alg: &'static rcgen::SignatureAlgorithm) -> (SigningKey, PublicKey) {
        let kp = rcgen::KeyPair::generate_for(alg).unwrap();
        let key = SigningKey::from_pem(kp.serialize_pem().as_bytes()).unwrap();
        let kind = key.kind();
        let bits = key.public_bits().to_vec();
        (key, PublicKey { kind, bits })
    }

    #[test]
    fn ecdsa_signs_method_9_10_and_14_and_verifies() {
        let octets = b"signed octets of IKE_AUTH";
        for (alg, method) in [
            (
                &rcgen::PKCS_ECDSA_P256_SHA256,
                AuthMethod::ECDSA_SHA256_P256,
            ),
            (
                &rcgen::PKCS_ECDSA_P384_SHA384,
                AuthMethod::ECDSA_SHA384_P384,
            ),
        ] {
            let (key, public) = ecdsa_key(alg);
            let legacy = key.sign(SigHashes::default(), octets).unwrap();
            assert_eq!(legacy.method, method);
            let n = if method == AuthMethod::ECDSA_SHA256_P256 {
                64
            } else {
                96
            };
            assert_eq!(legacy.data.len(), n, "RFC 4754: r||s");
            verify(&public, &legacy, octets).unwrap();
            let modern = key
                .sign(SigHashes::from_notify(&hashes_notify_data()), octets)
                .unwrap();
            assert_eq!(modern.method, AuthMethod::DIGITAL_SIGNATURE);
            verify(&public, &modern, octets).unwrap();
            assert_eq!(
                verify(&public, &modern, b"other octets"),
                Err(VerifyError::Bad)
            );
            let mut bad = modern.clone();
            *bad.data.last_mut().unwrap() ^= 1;
            assert!(verify(&public, &bad, octets).is_err());
            // A truncated or oversized length octet never panics.
            for cut in 0..modern.data.len().min(20) {
                let t = AuthPayload {
                    method: AuthMethod::DIGITAL_SIGNATURE,
                    data: modern.data[..cut].to_vec(),
                };
                assert!(verify(&public, &t, octets).is_err());
            }
            // Method 9 with a P-384 key (and the reverse) is refused as unsupported.
            let wrong = AuthPayload {
                method: if method == AuthMethod::ECDSA_SHA256_P256 {
                    AuthMethod::ECDSA_SHA384_P384
                } else {
                    AuthMethod::ECDSA_SHA256_P256
                },
                data: legacy.data.clone(),
            };
            assert!(matches!(
                verify(&public, &wrong, octets),
                Err(VerifyError::Unsupported(_))
            ));
        }
    }

    #[test]
    fn rsa_signs_pkcs1_with_rfc_7427_and_verifies_pss() {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let key = SigningKey::from_pem(kp.serialize_pem().as_bytes()).unwrap();
        let public = PublicKey {
            kind: KeyKind::Rsa,
            bits: key.public_bits().to_vec(),
        };
        let octets = b"signed octets";
        assert!(
            key.sign(SigHashes::default(), octets).is_err(),
            "no method 1 (SHA-1) signing"
        );
        let a = key.sign(SigHashes::from_notify(&[0, 2]), octets).unwrap();
        assert_eq!(a.method, AuthMethod::DIGITAL_SIGNATURE);
        assert_eq!(
            &a.data[1..16],
            &Scheme::RsaPkcs1Sha256.algorithm_identifier()[..]
        );
        verify(&public, &a, octets).unwrap();
        // An RSA-PSS signature made by aws-lc-rs directly, framed as RFC 7427 A.4.1.
        let SigningKey::Rsa(k) = &key else { panic!() };
        let mut s = vec![0; k.public_modulus_len()];
        k.sign(
            &sig::RSA_PSS_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            octets,
            &mut s,
        )
        .unwrap();
        let pss = digital_signature(Scheme::RsaPssSha256, &s);
        verify(&public, &pss, octets).unwrap();
        assert_eq!(verify(&public, &pss, b"x"), Err(VerifyError::Bad));
    }
}
