//! Algorithms and proposals as the operator writes them, in strongSwan's proposal syntax
//! (`aes256gcm16-prfsha256-x25519`, `aes128-sha256-modp2048`), which sysadmins moving from
//! strongSwan already know. The algorithms are the crypto module's own enums
//! ([`Encr`], [`Integ`], [`Prf`], [`DhGroup`]); `negotiate.rs` maps them to transform IDs
//! (RFC 7296 3.3.2).

use std::fmt;

use thiserror::Error;

// The engine's one set of algorithm enums, shared with the crypto that runs them and the
// negotiation that maps them to transform IDs (RFC 7296 3.3.2).
pub use super::crypto::{DhGroup, Encr, Integ, Prf};

/// One proposal: every listed algorithm of a kind is acceptable (RFC 7296 3.3: transforms
/// of the same type are alternatives, types are combined).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Proposal {
    pub encr: Vec<Encr>,
    pub integ: Vec<Integ>,
    pub prf: Vec<Prf>,
    pub groups: Vec<DhGroup>,
    /// ESP only: extended sequence numbers. Empty means "no ESN".
    pub esn: Vec<bool>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProposalError {
    #[error("unknown algorithm '{0}' (expected e.g. aes256gcm16, aes128, sha256, prfsha384, modp2048, ecp384, x25519, esn)")]
    Unknown(String),
    #[error("'{0}': no encryption algorithm")]
    NoEncr(String),
    #[error("'{0}': AES-CBC needs an integrity algorithm (sha256, sha384 or sha512)")]
    NoInteg(String),
    #[error("'{0}': an AEAD cipher (GCM) takes no integrity algorithm")]
    AeadWithInteg(String),
    #[error(
        "'{0}': an IKE proposal needs a DH group (modp2048, modp3072, ecp256, ecp384, x25519)"
    )]
    NoGroup(String),
    #[error("'{0}': an IKE proposal needs a PRF (prfsha256..512, or implied by sha256..512)")]
    NoPrf(String),
    #[error("'{0}': esn/noesn only applies to ESP proposals")]
    EsnInIke(String),
}

/// Whether a proposal is for the IKE SA or for ESP (child SAs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProposalKind {
    Ike,
    Esp,
}

impl Proposal {
    /// Parses `aes256gcm16-prfsha256-x25519`, `aes128-sha256-modp2048`, `aes256gcm16-esn`…
    /// For IKE, a PRF is implied by the integrity algorithm when none is given (as
    /// strongSwan does); for ESP, a DH group means PFS on rekeys and in CREATE_CHILD_SA.
    pub fn parse(s: &str, kind: ProposalKind) -> Result<Proposal, ProposalError> {
        let mut p = Proposal::default();
        for tok in s.split('-').map(str::trim) {
            let t = tok.to_ascii_lowercase();
            match t.as_str() {
                "aes128" => p.encr.push(Encr::AesCbc { key_bits: 128 }),
                "aes256" => p.encr.push(Encr::AesCbc { key_bits: 256 }),
                "aes128gcm16" | "aes128gcm" => p.encr.push(Encr::AesGcm16 { key_bits: 128 }),
                "aes256gcm16" | "aes256gcm" => p.encr.push(Encr::AesGcm16 { key_bits: 256 }),
                // Legacy (Windows' defaults): parsed, but the configuration refuses them
                // unless the peer's `ike.allow_legacy` is set (`Proposal::legacy`).
                "sha1" => p.integ.push(Integ::HmacSha1_96),
                "prfsha1" => p.prf.push(Prf::HmacSha1),
                "modp1024" => p.groups.push(DhGroup::Modp1024),
                "sha256" | "sha2_256" => p.integ.push(Integ::HmacSha256_128),
                "sha384" | "sha2_384" => p.integ.push(Integ::HmacSha384_192),
                "sha512" | "sha2_512" => p.integ.push(Integ::HmacSha512_256),
                "prfsha256" => p.prf.push(Prf::HmacSha256),
                "prfsha384" => p.prf.push(Prf::HmacSha384),
                "prfsha512" => p.prf.push(Prf::HmacSha512),
                "modp2048" => p.groups.push(DhGroup::Modp2048),
                "modp3072" => p.groups.push(DhGroup::Modp3072),
                "ecp256" => p.groups.push(DhGroup::Ecp256),
                "ecp384" => p.groups.push(DhGroup::Ecp384),
                "x25519" | "curve25519" => p.groups.push(DhGroup::Curve25519),
                "esn" => p.esn.push(true),
                "noesn" => p.esn.push(false),
                _ => return Err(ProposalError::Unknown(tok.to_string())),
            }
        }
        let whole = || s.to_string();
        if p.encr.is_empty() {
            return Err(ProposalError::NoEncr(whole()));
        }
        let aead = p.encr.iter().any(|e| e.is_aead());
        let cbc = p.encr.iter().any(|e| !e.is_aead());
        if aead && !p.integ.is_empty() && !cbc {
            return Err(ProposalError::AeadWithInteg(whole()));
        }
        if cbc && p.integ.is_empty() {
            return Err(ProposalError::NoInteg(whole()));
        }
        match kind {
            ProposalKind::Ike => {
                if !p.esn.is_empty() {
                    return Err(ProposalError::EsnInIke(whole()));
                }
                if p.prf.is_empty() {
                    p.prf = p
                        .integ
                        .iter()
                        .map(|i| match i {
                            Integ::HmacSha1_96 => Prf::HmacSha1,
                            Integ::HmacSha256_128 => Prf::HmacSha256,
                            Integ::HmacSha384_192 => Prf::HmacSha384,
                            Integ::HmacSha512_256 => Prf::HmacSha512,
                        })
                        .collect();
                }
                if p.prf.is_empty() {
                    return Err(ProposalError::NoPrf(whole()));
                }
                if p.groups.is_empty() {
                    return Err(ProposalError::NoGroup(whole()));
                }
            }
            ProposalKind::Esp => {
                if p.esn.is_empty() {
                    p.esn.push(false);
                }
            }
        }
        Ok(p)
    }
}

impl Proposal {
    /// The legacy algorithms it names (SHA-1, MODP 1024: what Windows' built-in client
    /// proposes by default), which a peer must opt into.
    pub fn legacy(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.integ.contains(&Integ::HmacSha1_96) {
            v.push("sha1");
        }
        if self.prf.contains(&Prf::HmacSha1) {
            v.push("prfsha1");
        }
        if self.groups.contains(&DhGroup::Modp1024) {
            v.push("modp1024");
        }
        v
    }
}

impl fmt::Display for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        for e in &self.encr {
            parts.push(match e {
                Encr::AesCbc { key_bits: b } => format!("aes{b}"),
                Encr::AesGcm16 { key_bits: b } => format!("aes{b}gcm16"),
            });
        }
        for i in &self.integ {
            parts.push(
                match i {
                    Integ::HmacSha1_96 => "sha1",
                    Integ::HmacSha256_128 => "sha256",
                    Integ::HmacSha384_192 => "sha384",
                    Integ::HmacSha512_256 => "sha512",
                }
                .into(),
            );
        }
        for p in &self.prf {
            parts.push(
                match p {
                    Prf::HmacSha1 => "prfsha1",
                    Prf::HmacSha256 => "prfsha256",
                    Prf::HmacSha384 => "prfsha384",
                    Prf::HmacSha512 => "prfsha512",
                }
                .into(),
            );
        }
        for g in &self.groups {
            parts.push(
                match g {
                    DhGroup::Modp1024 => "modp1024",
                    DhGroup::Modp2048 => "modp2048",
                    DhGroup::Modp3072 => "modp3072",
                    DhGroup::Ecp256 => "ecp256",
                    DhGroup::Ecp384 => "ecp384",
                    DhGroup::Curve25519 => "x25519",
                }
                .into(),
            );
        }
        if self.esn.contains(&true) {
            parts.push("esn".into());
        }
        f.write_str(&parts.join("-"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_lab_proposals() {
        let p = Proposal::parse("aes256gcm16-prfsha256-x25519", ProposalKind::Ike).unwrap();
        assert_eq!(p.encr, vec![Encr::AesGcm16 { key_bits: 256 }]);
        assert!(p.integ.is_empty());
        assert_eq!(p.prf, vec![Prf::HmacSha256]);
        assert_eq!(p.groups, vec![DhGroup::Curve25519]);

        let p = Proposal::parse("aes128-sha256-modp2048", ProposalKind::Ike).unwrap();
        assert_eq!(
            (p.encr[0], p.integ[0], p.prf[0], p.groups[0]),
            (
                Encr::AesCbc { key_bits: 128 },
                Integ::HmacSha256_128,
                Prf::HmacSha256,
                DhGroup::Modp2048
            )
        );

        let p = Proposal::parse("aes256-sha384-ecp384", ProposalKind::Ike).unwrap();
        assert_eq!((p.prf[0], p.groups[0]), (Prf::HmacSha384, DhGroup::Ecp384));
        assert_eq!(p.to_string(), "aes256-sha384-prfsha384-ecp384");
    }

    #[test]
    fn esp_proposals_default_to_no_esn() {
        let p = Proposal::parse("aes256gcm16", ProposalKind::Esp).unwrap();
        assert_eq!(p.esn, vec![false]);
        let p = Proposal::parse("aes128-sha256-esn-modp2048", ProposalKind::Esp).unwrap();
        assert_eq!(p.esn, vec![true]);
        assert_eq!(p.groups, vec![DhGroup::Modp2048]);
    }

    #[test]
    fn rejects_what_cannot_be_negotiated() {
        use ProposalError::*;
        let ike = |s| Proposal::parse(s, ProposalKind::Ike).unwrap_err();
        assert_eq!(
            ike("aes256gcm16-prfsha256"),
            NoGroup("aes256gcm16-prfsha256".into())
        );
        assert_eq!(
            ike("aes256gcm16-x25519"),
            NoPrf("aes256gcm16-x25519".into())
        );
        assert_eq!(ike("aes128-modp2048"), NoInteg("aes128-modp2048".into()));
        assert_eq!(
            ike("aes256gcm16-sha256-x25519"),
            AeadWithInteg("aes256gcm16-sha256-x25519".into())
        );
        assert_eq!(ike("3des-sha1-modp1024"), Unknown("3des".into()));
        // Windows' default: parsed, and marked legacy (the configuration gates it).
        let w = Proposal::parse("aes256-sha1-modp1024", ProposalKind::Ike).unwrap();
        assert_eq!(w.prf, vec![Prf::HmacSha1], "implied by sha1");
        assert_eq!(w.legacy(), vec!["sha1", "prfsha1", "modp1024"]);
        assert!(
            Proposal::parse("aes256gcm16-prfsha256-x25519", ProposalKind::Ike)
                .unwrap()
                .legacy()
                .is_empty()
        );
        assert_eq!(
            ike("aes128-sha256-modp2048-esn"),
            EsnInIke("aes128-sha256-modp2048-esn".into())
        );
        assert_eq!(
            Proposal::parse("sha256", ProposalKind::Esp).unwrap_err(),
            NoEncr("sha256".into())
        );
    }
}
