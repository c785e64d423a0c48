//! Authentication of IKE_AUTH (RFC 7296 2.15): how we prove our identity and how we check
//! the peer's, by pre-shared key (`psk.rs`) or by signature with an X.509 certificate
//! (`signature.rs` for the AUTH encodings of RFC 7296 3.8, RFC 4754 and RFC 7427, `certs.rs`
//! for our chain and key, the trust points and the peer's certificate path).
//!
//! Both sides sign the same octets (2.15): the signer's IKE_SA_INIT message, the other
//! side's nonce and prf(SK_p, IDx'); only what is done with them differs.
//!
//! The engine is sans-IO, so it reads no clock: certificate validity is checked at the
//! time of day the daemon hands the endpoint ([`crate::ike::Endpoint::set_time_of_day`]).

pub mod certs;
pub mod psk;
pub mod signature;
#[cfg(test)]
pub(crate) mod testca;

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::ike::codec::{AuthMethod, Identity};
use crate::ike::crypto::Prf;

pub use certs::{LocalCert, PeerCert, TrustPoint};
pub use psk::{psk_auth, verify_psk_auth};
pub use signature::{SigHashes, SigningKey};

/// How our side proves its identity.
#[derive(Clone)]
pub enum LocalAuth {
    Psk(Zeroizing<Vec<u8>>),
    /// Our certificate chain and its private key (RSA or ECDSA P-256/P-384).
    Certificate(Arc<LocalCert>),
}

/// How the peer must prove its identity.
#[derive(Clone)]
pub enum RemoteAuth {
    Psk(Zeroizing<Vec<u8>>),
    /// A certificate that chains to one of the trust point's CAs.
    Certificate(Arc<TrustPoint>),
    /// EAP relayed to RADIUS (RFC 7296 2.16), after our own AUTH (PSK or certificate);
    /// responder only.
    Eap(crate::ike::EapIdentity),
}

impl LocalAuth {
    pub fn is_certificate(&self) -> bool {
        matches!(self, LocalAuth::Certificate(_))
    }

    /// What a configuration reload changed of it (the reason SAs are renegotiated), if
    /// anything. Not constant-time: both sides are our own configuration.
    pub fn changed(&self, new: &LocalAuth) -> Option<&'static str> {
        match (self, new) {
            (LocalAuth::Psk(a), LocalAuth::Psk(b)) => (**a != **b).then_some("psk"),
            (LocalAuth::Certificate(a), LocalAuth::Certificate(b)) => {
                (a.chain != b.chain).then_some("certificate")
            }
            _ => Some("auth.local"),
        }
    }
}

impl RemoteAuth {
    pub fn is_certificate(&self) -> bool {
        matches!(self, RemoteAuth::Certificate(_))
    }

    /// As [`LocalAuth::changed`]: a new PSK, trust point (its CAs) or EAP identity source.
    pub fn changed(&self, new: &RemoteAuth) -> Option<&'static str> {
        match (self, new) {
            (RemoteAuth::Psk(a), RemoteAuth::Psk(b)) => (**a != **b).then_some("psk"),
            (RemoteAuth::Certificate(a), RemoteAuth::Certificate(b)) => {
                (a.name != b.name || a.certreq_data() != b.certreq_data()).then_some("trustpoint")
            }
            (RemoteAuth::Eap(a), RemoteAuth::Eap(b)) => (a != b).then_some("auth.eap_identity"),
            _ => Some("auth.remote"),
        }
    }
}

/// Why the peer's authentication was refused: each answered with AUTHENTICATION_FAILED
/// (RFC 7296 2.21.2), logged with its reason, and counted by [`AuthRefusal::kind`]. Text
/// that came from the peer (identities, names in its certificate) is escaped already.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthRefusal {
    #[error("AUTH from {id} does not verify with the PSK (wrong PSK?)")]
    PskMismatch { id: String },
    #[error("peer {id} authenticates with {got}, the configuration wants {want}")]
    WrongMethod {
        id: String,
        got: String,
        want: &'static str,
    },
    #[error("peer identity {got} is not the configured {want}")]
    WrongIdentity { got: String, want: String },
    #[error("peer {id} sent no certificate")]
    NoCertificate { id: String },
    #[error("peer's certificate is unreadable: {0}")]
    BadCertificate(String),
    #[error("certificate of {subject} expired on {not_after}")]
    Expired { subject: String, not_after: String },
    #[error("certificate of {subject} is not valid before {not_before}")]
    NotYetValid { subject: String, not_before: String },
    #[error("certificate of {subject} is issued by an unknown CA: {issuer}")]
    UnknownCa { subject: String, issuer: String },
    #[error("certificate of {subject} (serial {serial}) is revoked")]
    Revoked { subject: String, serial: String },
    #[error("identity {id} does not match certificate of {subject} (alternative names: {sans})")]
    IdentityMismatch {
        id: String,
        subject: String,
        sans: String,
    },
    #[error("certificate of {subject} is not for IKE: {why}")]
    KeyUsage { subject: String, why: String },
    #[error("certificate path of {subject} is invalid: {why}")]
    InvalidPath { subject: String, why: String },
    #[error("AUTH signature of {subject} does not verify ({method})")]
    BadSignature { subject: String, method: String },
    #[error("unsupported AUTH signature: {0}")]
    UnsupportedSignature(String),
    #[error("time of day unknown: certificates cannot be checked")]
    NoTimeOfDay,
    #[error("{0}")]
    Other(String),
}

impl AuthRefusal {
    /// A stable name for counters and JSON (`show crypto isakmp stats`).
    pub fn kind(&self) -> &'static str {
        match self {
            AuthRefusal::PskMismatch { .. } => "psk_mismatch",
            AuthRefusal::WrongMethod { .. } => "wrong_method",
            AuthRefusal::WrongIdentity { .. } => "wrong_identity",
            AuthRefusal::NoCertificate { .. } => "no_certificate",
            AuthRefusal::BadCertificate(_) => "bad_certificate",
            AuthRefusal::Expired { .. } => "expired",
            AuthRefusal::NotYetValid { .. } => "not_yet_valid",
            AuthRefusal::UnknownCa { .. } => "unknown_ca",
            AuthRefusal::Revoked { .. } => "revoked",
            AuthRefusal::IdentityMismatch { .. } => "identity_mismatch",
            AuthRefusal::KeyUsage { .. } => "key_usage",
            AuthRefusal::InvalidPath { .. } => "invalid_path",
            AuthRefusal::BadSignature { .. } => "bad_signature",
            AuthRefusal::UnsupportedSignature(_) => "unsupported_signature",
            AuthRefusal::NoTimeOfDay => "no_time_of_day",
            AuthRefusal::Other(_) => "other",
        }
    }
}

impl From<String> for AuthRefusal {
    fn from(s: String) -> Self {
        AuthRefusal::Other(s)
    }
}

impl From<&str> for AuthRefusal {
    fn from(s: &str) -> Self {
        AuthRefusal::Other(s.to_string())
    }
}

/// Refused peer authentications by [`AuthRefusal::kind`], since the endpoint started.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuthStats {
    /// IKE SAs whose peer authenticated (either role).
    pub succeeded: u64,
    pub refused: std::collections::BTreeMap<String, u64>,
}

impl AuthStats {
    pub fn count(&mut self, r: &AuthRefusal) {
        *self.refused.entry(r.kind().to_string()).or_default() += 1;
    }
}

/// An identity as operators write it, escaped (the peer chose it).
pub fn identity_text(id: &Identity) -> String {
    use crate::escape::{peer_bytes, peer_text};
    match id {
        Identity::Ipv4(a) => a.to_string(),
        Identity::Ipv6(a) => a.to_string(),
        Identity::Fqdn(s) | Identity::UserFqdn(s) => peer_text(s),
        Identity::KeyId(k) => format!(
            "keyid:{}",
            k.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
        Identity::Other { kind, data } if *kind == crate::ike::codec::IdType::DER_ASN1_DN => {
            certs::dn_text(data).unwrap_or_else(|| format!("dn:{}", peer_bytes(data)))
        }
        Identity::Other { kind, data } => format!("{kind:?}:{}", peer_bytes(data)),
    }
}

/// The octets AUTH signs or MACs (RFC 7296 2.15): `real_message | peer_nonce |
/// prf(SK_p, IDx')`. `real_message` is the signer's IKE_SA_INIT message, `peer_nonce` the
/// other side's nonce, `sk_p` the signer's SK_pi/SK_pr, `id_body` the signer's ID payload
/// body as sent.
pub fn signed_octets(
    prf: Prf,
    real_message: &[u8],
    peer_nonce: &[u8],
    sk_p: &[u8],
    id_body: &[u8],
) -> Vec<u8> {
    let maced_id = prf.prf(sk_p, id_body);
    let mut v = Vec::with_capacity(real_message.len() + peer_nonce.len() + maced_id.len());
    v.extend_from_slice(real_message);
    v.extend_from_slice(peer_nonce);
    v.extend_from_slice(&maced_id);
    v
}

/// An AUTH method as logs name it.
pub struct MethodName(pub AuthMethod);

impl fmt::Display for MethodName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            AuthMethod::SHARED_KEY_MIC => f.write_str("PSK"),
            AuthMethod::RSA_DIGITAL_SIGNATURE => f.write_str("RSA signature"),
            AuthMethod::ECDSA_SHA256_P256 => f.write_str("ECDSA P-256"),
            AuthMethod::ECDSA_SHA384_P384 => f.write_str("ECDSA P-384"),
            AuthMethod::ECDSA_SHA512_P521 => f.write_str("ECDSA P-521"),
            AuthMethod::DIGITAL_SIGNATURE => f.write_str("digital signature (RFC 7427)"),
            m => write!(f, "auth method {}", m.0),
        }
    }
}
