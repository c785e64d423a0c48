//! IKEv2 cryptography on aws-lc-rs: PRFs and key derivation (RFC 7296 2.13-2.18), DH groups,
//! and SK payload protection (RFC 7296 3.14, RFC 5282). Authentication is `ike::auth`.
//!
//! Sans-IO like the rest of `ike`: randomness comes in through [`RngSource`], so tests and the
//! engine's simulations can be deterministic.

pub mod cipher;
pub mod dh;
pub mod keys;
pub mod prf;

pub use cipher::{Encr, Integ, OpenError, SealError, SkCipher};
pub use dh::{DhGroup, DhPrivateKey, SharedSecret};
pub use keys::{ChildKeys, IkeKeys, IkeSuite};
pub use prf::Prf;

/// Why a crypto operation failed. Every variant means "drop or refuse", never "retry".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The ICV did not verify: drop the message (RFC 7296 2.21.2, no reply).
    #[error("integrity check failed")]
    IntegrityCheckFailed,
    /// Decrypted padding is inconsistent, or the SK body has an impossible size.
    #[error("malformed encrypted payload")]
    MalformedCiphertext,
    /// The peer's KE value is invalid for the group (wrong length, out of range, off the curve,
    /// or a degenerate shared secret).
    #[error("invalid peer public value")]
    InvalidPublicValue,
    /// A key or IV has the wrong size for the algorithm.
    #[error("invalid key or IV length")]
    InvalidKeyLength,
    /// prf+ can produce at most 255 blocks (RFC 7296 2.13).
    #[error("prf+ output too long")]
    PrfPlusTooLong,
    /// A PSK AUTH value did not verify: answer AUTHENTICATION_FAILED.
    #[error("authentication failed")]
    AuthenticationFailed,
    /// The transform combination is not one we implement.
    #[error("unsupported algorithm")]
    Unsupported,
    /// The random source failed.
    #[error("random source failed")]
    Rng,
    /// The crypto library reported an unexpected failure.
    #[error("crypto library failure")]
    Internal,
}

/// Where randomness comes from: the system in production, a seeded generator in tests.
pub trait RngSource {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), CryptoError>;
}

/// [`RngSource`] backed by aws-lc's `SystemRandom` (the OS CSPRNG).
#[derive(Debug, Default)]
pub struct SystemRng(aws_lc_rs::rand::SystemRandom);

impl SystemRng {
    pub fn new() -> Self {
        Self::default()
    }
}

impl RngSource for SystemRng {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), CryptoError> {
        use aws_lc_rs::rand::SecureRandom;
        self.0.fill(dest).map_err(|_| CryptoError::Rng)
    }
}

/// Constant-time equality, for ICVs and AUTH values.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// A deterministic xorshift byte stream, so a test, a simulation or a fuzz program replays
/// exactly. Never for keys: the daemon uses [`SystemRng`].
#[doc(hidden)]
pub struct XorShiftRng(pub u64);

impl RngSource for XorShiftRng {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), CryptoError> {
        for b in dest {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = self.0 as u8;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    pub use super::XorShiftRng as TestRng;

    pub fn hex(s: &str) -> Vec<u8> {
        let d: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        d.chunks(2)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
            .collect()
    }
}
