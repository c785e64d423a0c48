//! Algorithms and proposals as the operator writes them, in strongSwan's proposal syntax
//! (`aes256gcm16-prfsha256-x25519`, `aes128-sha256-modp2048`), which sysadmins moving from
//! strongSwan already know. The engine maps these to transform IDs (RFC 7296 3.3.2).

use std::fmt;

use thiserror::Error;

/// Encryption algorithms (RFC 7296 3.3.2 transform type 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encr {
    /// AES-CBC (RFC 3602) with a key of 128 or 256 bits.
    AesCbc(u16),
    /// AES-GCM with a 16-byte ICV (RFC 4106 / RFC 5282), 128 or 256 bits.
    AesGcm16(u16),
}

impl Encr {
    pub fn is_aead(self) -> bool {
        matches!(self, Encr::AesGcm16(_))
    }
    pub fn key_bits(self) -> u16 {
        match self {
            Encr::AesCbc(b) | Encr::AesGcm16(b) => b,
        }
    }
}

/// Integrity algorithms (transform type 3), truncated per RFC 4868.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Integ {
    HmacSha256_128,
    HmacSha384_192,
    HmacSha512_256,
}

/// Pseudo-random functions (transform type 2), RFC 4868.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Prf {
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

/// Diffie-Hellman groups (transform type 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Group {
    Modp2048,
    Modp3072,
    Ecp256,
    Ecp384,
    Curve25519,
}

impl Group {
    /// The IANA number (RFC 7296 3.3.2, RFC 5903, RFC 8031).
    pub fn number(self) -> u16 {
        match self {
            Group::Modp2048 => 14,
            Group::Modp3072 => 15,
            Group::Ecp256 => 19,
            Group::Ecp384 => 20,
            Group::Curve25519 => 31,
        }
    }
    pub fn from_number(n: u16) -> Option<Group> {
        Some(match n {
            14 => Group::Modp2048,
            15 => Group::Modp3072,
            19 => Group::Ecp256,
            20 => Group::Ecp384,
            31 => Group::Curve25519,
            _ => return None,
        })
    }
}

/// One proposal: every listed algorithm of a kind is acceptable (RFC 7296 3.3: transforms
/// of the same type are alternatives, types are combined).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Proposal {
    pub encr: Vec<Encr>,
    pub integ: Vec<Integ>,
    pub prf: Vec<Prf>,
    pub groups: Vec<Group>,
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
                "aes128" => p.encr.push(Encr::AesCbc(128)),
                "aes256" => p.encr.push(Encr::AesCbc(256)),
                "aes128gcm16" | "aes128gcm" => p.encr.push(Encr::AesGcm16(128)),
                "aes256gcm16" | "aes256gcm" => p.encr.push(Encr::AesGcm16(256)),
                "sha256" | "sha2_256" => p.integ.push(Integ::HmacSha256_128),
                "sha384" | "sha2_384" => p.integ.push(Integ::HmacSha384_192),
                "sha512" | "sha2_512" => p.integ.push(Integ::HmacSha512_256),
                "prfsha256" => p.prf.push(Prf::HmacSha256),
                "prfsha384" => p.prf.push(Prf::HmacSha384),
                "prfsha512" => p.prf.push(Prf::HmacSha512),
                "modp2048" => p.groups.push(Group::Modp2048),
                "modp3072" => p.groups.push(Group::Modp3072),
                "ecp256" => p.groups.push(Group::Ecp256),
                "ecp384" => p.groups.push(Group::Ecp384),
                "x25519" | "curve25519" => p.groups.push(Group::Curve25519),
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

impl fmt::Display for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        for e in &self.encr {
            parts.push(match e {
                Encr::AesCbc(b) => format!("aes{b}"),
                Encr::AesGcm16(b) => format!("aes{b}gcm16"),
            });
        }
        for i in &self.integ {
            parts.push(
                match i {
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
                    Group::Modp2048 => "modp2048",
                    Group::Modp3072 => "modp3072",
                    Group::Ecp256 => "ecp256",
                    Group::Ecp384 => "ecp384",
                    Group::Curve25519 => "x25519",
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
        assert_eq!(p.encr, vec![Encr::AesGcm16(256)]);
        assert!(p.integ.is_empty());
        assert_eq!(p.prf, vec![Prf::HmacSha256]);
        assert_eq!(p.groups, vec![Group::Curve25519]);

        let p = Proposal::parse("aes128-sha256-modp2048", ProposalKind::Ike).unwrap();
        assert_eq!(
            (p.encr[0], p.integ[0], p.prf[0], p.groups[0]),
            (
                Encr::AesCbc(128),
                Integ::HmacSha256_128,
                Prf::HmacSha256,
                Group::Modp2048
            )
        );

        let p = Proposal::parse("aes256-sha384-ecp384", ProposalKind::Ike).unwrap();
        assert_eq!((p.prf[0], p.groups[0]), (Prf::HmacSha384, Group::Ecp384));
        assert_eq!(p.to_string(), "aes256-sha384-prfsha384-ecp384");
    }

    #[test]
    fn esp_proposals_default_to_no_esn() {
        let p = Proposal::parse("aes256gcm16", ProposalKind::Esp).unwrap();
        assert_eq!(p.esn, vec![false]);
        let p = Proposal::parse("aes128-sha256-esn-modp2048", ProposalKind::Esp).unwrap();
        assert_eq!(p.esn, vec![true]);
        assert_eq!(p.groups, vec![Group::Modp2048]);
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
