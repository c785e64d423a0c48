//! X.509 for IKE (RFC 7296 3.6-3.7, RFC 4945): our certificate chain and key, the trust
//! points the peer's certificate must chain to, and the check of that certificate.
//!
//! rustls-webpki builds and checks the path (signatures, validity at the given time, basic
//! constraints, name constraints, CRLs); x509-parser reads what webpki does not expose and
//! IKE needs: the subject DN and the rfc822Name SANs an ID payload is matched to, the key
//! usage bits, the subject public key for the AUTH signature, the names for the log.

use std::time::Duration;

use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use webpki::{CertRevocationList, EndEntityCert, KeyPurposeIdIter};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate, X509Name};
use x509_parser::time::ASN1Time;

use super::signature::{KeyKind, PublicKey, SigningKey};
use super::AuthRefusal;
use crate::escape::peer_text;
use crate::ike::codec::{IdType, Identity};

/// CERT Encoding "X.509 Certificate - Signature" (RFC 7296 3.6): the only one we send and
/// take.
pub const ENCODING_X509_SIGNATURE: u8 = 4;

/// The certificates of a PEM text, in order.
pub fn pem_certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    use rustls_pki_types::pem::PemObject;
    let certs = CertificateDer::pem_slice_iter(pem)
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in the file".into());
    }
    for c in &certs {
        X509Certificate::from_der(c).map_err(|e| format!("bad certificate: {e}"))?;
    }
    Ok(certs)
}

/// The CRLs of a PEM text (or of one DER CRL).
pub fn pem_crls(data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateRevocationListDer;
    let crls = CertificateRevocationListDer::pem_slice_iter(data)
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM: {e}"))?;
    if crls.is_empty() {
        if data.first() == Some(&0x30) {
            return Ok(vec![data.to_vec()]);
        }
        return Err("no CRL in the file".into());
    }
    Ok(crls)
}

/// A DN as text ("C=CH, O=Lab, CN=moon"), escaped; None if it does not parse.
pub fn dn_text(der: &[u8]) -> Option<String> {
    X509Name::from_der(der)
        .ok()
        .map(|(_, n)| peer_text(&n.to_string()))
}

fn time_text(unix: i64) -> String {
    ASN1Time::from_timestamp(unix)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| format!("{unix} (unix time)"))
}

/// The public key of a certificate, as the AUTH verification takes it.
fn public_key(cert: &X509Certificate<'_>) -> Result<PublicKey, String> {
    let spki = cert.public_key();
    let bits = spki.subject_public_key.data.to_vec();
    let kind = match spki.algorithm.algorithm.to_id_string().as_str() {
        "1.2.840.113549.1.1.1" => KeyKind::Rsa,
        // id-ecPublicKey: the curve by the uncompressed point's size (RFC 5480 2.2).
        "1.2.840.10045.2.1" => match bits.len() {
            65 => KeyKind::P256,
            97 => KeyKind::P384,
            133 => KeyKind::P521,
            n => return Err(format!("EC public key of {n} octets")),
        },
        other => return Err(format!("public key algorithm {other} not supported")),
    };
    Ok(PublicKey { kind, bits })
}

/// Our certificate chain (leaf first, then intermediates) and its private key.
#[derive(Debug)]
pub struct LocalCert {
    pub chain: Vec<Vec<u8>>,
    pub key: SigningKey,
    /// The leaf's subject DN (DER): our ID_DER_ASN1_DN when no local_id is configured.
    pub subject: Vec<u8>,
    pub not_after: i64,
}

impl LocalCert {
    /// Checks that the key belongs to the leaf certificate.
    pub fn new(chain: Vec<Vec<u8>>, key: SigningKey) -> Result<LocalCert, String> {
        let leaf = chain.first().ok_or("no certificate")?;
        let (_, cert) =
            X509Certificate::from_der(leaf).map_err(|e| format!("bad certificate: {e}"))?;
        let public = public_key(&cert)?;
        if public.kind != key.kind() || public.bits != key.public_bits() {
            return Err(format!(
                "the private key does not belong to the certificate of {}",
                cert.subject()
            ));
        }
        Ok(LocalCert {
            subject: cert.subject().as_raw().to_vec(),
            not_after: cert.validity().not_after.timestamp(),
            chain,
            key,
        })
    }

    /// Our identity from the certificate: its subject DN (as strongSwan defaults to).
    pub fn subject_identity(&self) -> Identity {
        Identity::Other {
            kind: IdType::DER_ASN1_DN,
            data: self.subject.clone(),
        }
    }

    pub fn subject_text(&self) -> String {
        dn_text(&self.subject).unwrap_or_default()
    }
}

/// A named set of CAs and CRLs (an IOS trustpoint, strongSwan's cacerts): a peer's
/// certificate must chain to one of the CAs and must not be revoked by the CRLs.
pub struct TrustPoint {
    pub name: String,
    anchors: Vec<TrustAnchor<'static>>,
    crls: Vec<CertRevocationList<'static>>,
    /// SHA-1 of each CA's SubjectPublicKeyInfo: the CERTREQ data (RFC 7296 3.7).
    certreq: Vec<u8>,
    pub ca_names: Vec<String>,
}

impl std::fmt::Debug for TrustPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustPoint")
            .field("name", &self.name)
            .field("cas", &self.ca_names)
            .field("crls", &self.crls.len())
            .finish()
    }
}

/// Extended key usage for IKE: certificates often carry none, or serverAuth/clientAuth
/// (Windows and macOS want serverAuth on a gateway), or id-kp-ipsecIKE (RFC 4945 5.1.3.12),
/// or anyExtendedKeyUsage. A certificate whose EKUs name none of these is for something
/// else.
struct IkeEku;

const IKE_EKUS: [&[usize]; 7] = [
    &[1, 3, 6, 1, 5, 5, 7, 3, 1],  // serverAuth
    &[1, 3, 6, 1, 5, 5, 7, 3, 2],  // clientAuth
    &[1, 3, 6, 1, 5, 5, 7, 3, 17], // id-kp-ipsecIKE (RFC 4945)
    &[1, 3, 6, 1, 5, 5, 7, 3, 5],  // ipsecEndSystem
    &[1, 3, 6, 1, 5, 5, 7, 3, 6],  // ipsecTunnel
    &[1, 3, 6, 1, 5, 5, 7, 3, 7],  // ipsecUser
    &[2, 5, 29, 37, 0],            // anyExtendedKeyUsage
];

impl webpki::ExtendedKeyUsageValidator for IkeEku {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        let mut empty = true;
        for id in iter {
            empty = false;
            let oid = id?.to_decoded_oid();
            if IKE_EKUS.contains(&oid.as_slice()) {
                return Ok(());
            }
        }
        if empty {
            Ok(())
        } else {
            // The variant with context wants a KeyUsage we do not have: ours is a set.
            #[allow(deprecated)]
            Err(webpki::Error::RequiredEkuNotFound)
        }
    }
}

/// What a verified peer certificate gives the AUTH check and the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCert {
    /// Escaped subject DN.
    pub subject: String,
    pub public: PublicKey,
}

impl TrustPoint {
    /// From the CA certificates and CRLs (DER) of the configuration.
    pub fn new(name: &str, cas: &[Vec<u8>], crls: &[Vec<u8>]) -> Result<TrustPoint, String> {
        let mut anchors = Vec::new();
        let mut certreq = Vec::new();
        let mut ca_names = Vec::new();
        for der in cas {
            let (_, c) =
                X509Certificate::from_der(der).map_err(|e| format!("bad CA certificate: {e}"))?;
            let a = webpki::anchor_from_trusted_cert(&CertificateDer::from(der.as_slice()))
                .map_err(|e| format!("CA certificate {} unusable: {e:?}", c.subject()))?
                .to_owned();
            anchors.push(a);
            let h = aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
                c.public_key().raw,
            );
            certreq.extend_from_slice(h.as_ref());
            ca_names.push(c.subject().to_string());
        }
        if anchors.is_empty() {
            return Err("no CA certificate".into());
        }
        let crls = crls
            .iter()
            .map(|d| {
                webpki::OwnedCertRevocationList::from_der(d)
                    .map(CertRevocationList::from)
                    .map_err(|e| format!("bad CRL: {e:?}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustPoint {
            name: name.to_string(),
            anchors,
            crls,
            certreq,
            ca_names,
        })
    }

    /// CERTREQ data (RFC 7296 3.7): the concatenated SHA-1 hashes of our CAs' public keys.
    pub fn certreq_data(&self) -> &[u8] {
        &self.certreq
    }

    /// Checks the peer's certificates (end entity first, then intermediates, as in its CERT
    /// payloads, RFC 7296 3.6) at `unix_time` and that `id` (its ID payload) is one the
    /// certificate names (RFC 4945 3.1): a dNSName for ID_FQDN, an rfc822Name for
    /// ID_RFC822_ADDR, an iPAddress for ID_IPV4/6_ADDR, the subject for ID_DER_ASN1_DN.
    pub fn verify(
        &self,
        certs: &[&[u8]],
        id: &Identity,
        unix_time: u64,
    ) -> Result<PeerCert, AuthRefusal> {
        let Some(leaf_der) = certs.first() else {
            return Err(AuthRefusal::NoCertificate {
                id: super::identity_text(id),
            });
        };
        let (_, leaf) = X509Certificate::from_der(leaf_der)
            .map_err(|e| AuthRefusal::BadCertificate(e.to_string()))?;
        let subject = peer_text(&leaf.subject().to_string());
        let leaf_cert = CertificateDer::from(*leaf_der);
        let ee = EndEntityCert::try_from(&leaf_cert)
            .map_err(|e| AuthRefusal::BadCertificate(format!("{e:?}")))?;
        let intermediates: Vec<CertificateDer<'_>> = certs[1..]
            .iter()
            .map(|c| CertificateDer::from(*c))
            .collect();
        let refs: Vec<&CertRevocationList<'_>> = self.crls.iter().collect();
        let revocation = webpki::RevocationOptionsBuilder::new(&refs).ok().map(|b| {
            b.with_depth(webpki::RevocationCheckDepth::Chain)
                // A CA without a CRL in the configuration is not checked for revocation.
                .with_status_policy(webpki::UnknownStatusPolicy::Allow)
                .build()
        });
        let time = UnixTime::since_unix_epoch(Duration::from_secs(unix_time));
        if let Err(e) = ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.anchors,
            &intermediates,
            time,
            IkeEku,
            revocation,
            None,
        ) {
            let subject = subject.clone();
            return Err(match e {
                webpki::Error::CertExpired { not_after, .. } => AuthRefusal::Expired {
                    subject,
                    not_after: time_text(not_after.as_secs() as i64),
                },
                webpki::Error::CertNotValidYet { not_before, .. } => AuthRefusal::NotYetValid {
                    subject,
                    not_before: time_text(not_before.as_secs() as i64),
                },
                webpki::Error::UnknownIssuer => {
                    // The top of what the peer sent names the CA we do not know.
                    let top = certs
                        .last()
                        .and_then(|d| X509Certificate::from_der(d).ok())
                        .map(|(_, c)| peer_text(&c.issuer().to_string()));
                    AuthRefusal::UnknownCa {
                        subject,
                        issuer: top.unwrap_or_default(),
                    }
                }
                webpki::Error::CertRevoked => AuthRefusal::Revoked {
                    subject,
                    serial: leaf.raw_serial_as_string(),
                },
                #[allow(deprecated)]
                webpki::Error::RequiredEkuNotFound
                | webpki::Error::RequiredEkuNotFoundContext(_) => AuthRefusal::KeyUsage {
                    subject,
                    why: "its extended key usage names neither IKE nor TLS server/client".into(),
                },
                webpki::Error::InvalidSignatureForPublicKey => AuthRefusal::InvalidPath {
                    subject,
                    why: "a certificate's signature does not verify with its issuer's key".into(),
                },
                other => AuthRefusal::InvalidPath {
                    subject,
                    why: format!("{other:?}"),
                },
            });
        }
        // RFC 4945 5.1.3.2: digitalSignature or nonRepudiation, when key usage is present.
        if let Ok(Some(ku)) = leaf.key_usage() {
            if !ku.value.digital_signature() && !ku.value.non_repudiation() {
                return Err(AuthRefusal::KeyUsage {
                    subject,
                    why: "its key usage does not allow digitalSignature".into(),
                });
            }
        }
        let sans: Vec<GeneralName<'_>> = match leaf.subject_alternative_name() {
            Ok(Some(s)) => s.value.general_names.clone(),
            Ok(None) => Vec::new(),
            Err(e) => return Err(AuthRefusal::BadCertificate(e.to_string())),
        };
        let matched = match id {
            Identity::Fqdn(name) => sans
                .iter()
                .any(|g| matches!(g, GeneralName::DNSName(d) if d.eq_ignore_ascii_case(name))),
            Identity::UserFqdn(mail) => sans
                .iter()
                .any(|g| matches!(g, GeneralName::RFC822Name(m) if m.eq_ignore_ascii_case(mail))),
            Identity::Ipv4(a) => sans
                .iter()
                .any(|g| matches!(g, GeneralName::IPAddress(b) if *b == a.octets())),
            Identity::Ipv6(a) => sans
                .iter()
                .any(|g| matches!(g, GeneralName::IPAddress(b) if *b == a.octets())),
            Identity::Other { kind, data } if *kind == IdType::DER_ASN1_DN => {
                data.as_slice() == leaf.subject().as_raw()
            }
            _ => false,
        };
        if !matched {
            return Err(AuthRefusal::IdentityMismatch {
                id: super::identity_text(id),
                subject,
                sans: san_text(&sans),
            });
        }
        let public = public_key(&leaf).map_err(AuthRefusal::UnsupportedSignature)?;
        Ok(PeerCert { subject, public })
    }
}

fn san_text(sans: &[GeneralName<'_>]) -> String {
    if sans.is_empty() {
        return "none".into();
    }
    sans.iter()
        .map(|g| match g {
            GeneralName::DNSName(d) => format!("DNS:{}", peer_text(d)),
            GeneralName::RFC822Name(m) => format!("email:{}", peer_text(m)),
            GeneralName::IPAddress(b) => match b.len() {
                4 => format!(
                    "IP:{}",
                    std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).unwrap())
                ),
                16 => format!(
                    "IP:{}",
                    std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).unwrap())
                ),
                _ => "IP:?".into(),
            },
            other => peer_text(&format!("{other:?}")),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use rcgen::{ExtendedKeyUsagePurpose, KeyUsagePurpose};

    use super::super::testca::{ca, crl, leaf, trust, Leaf, NOW};
    use super::*;

    fn check(tp: &TrustPoint, der: &[u8], id: Identity) -> Result<PeerCert, AuthRefusal> {
        tp.verify(&[der], &id, NOW)
    }

    fn fqdn(s: &str) -> Identity {
        Identity::Fqdn(s.into())
    }

    #[test]
    fn a_good_certificate_matches_each_kind_of_identity() {
        let lab = ca("Lab CA");
        let tp = trust(&lab, &[]);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let ip6: IpAddr = "2001:db8::7".parse().unwrap();
        let (der, _) = leaf(
            &lab,
            &Leaf {
                dns: &["moon.example"],
                email: &["moon@example.org"],
                ip: &[ip, ip6],
                ..Default::default()
            },
        );
        let pc = check(&tp, &der, fqdn("MOON.example")).unwrap();
        assert_eq!(pc.subject, "O=vpnd lab, CN=moon");
        assert_eq!(pc.public.kind, KeyKind::P256);
        check(&tp, &der, Identity::UserFqdn("moon@example.org".into())).unwrap();
        check(&tp, &der, Identity::Ipv4("192.0.2.7".parse().unwrap())).unwrap();
        check(&tp, &der, Identity::Ipv6("2001:db8::7".parse().unwrap())).unwrap();
        let (_, c) = X509Certificate::from_der(&der).unwrap();
        let dn = Identity::Other {
            kind: IdType::DER_ASN1_DN,
            data: c.subject().as_raw().to_vec(),
        };
        assert_eq!(super::super::identity_text(&dn), "O=vpnd lab, CN=moon");
        check(&tp, &der, dn).unwrap();
        // A hostile CN reaches the log escaped.
        let (evil, _) = leaf(
            &lab,
            &Leaf {
                cn: "moon\x1b[2J",
                ..Default::default()
            },
        );
        let e = check(&tp, &evil, fqdn("sun.example"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("CN=moon\\x1b[2J") && !e.contains('\x1b'), "{e}");
        assert_eq!(
            tp.certreq_data().len(),
            20,
            "one SHA-1 per CA (RFC 7296 3.7)"
        );
    }

    use std::net::IpAddr;

    #[test]
    fn each_refusal_names_its_reason() {
        let lab = ca("Lab CA");
        let tp = trust(&lab, &[crl(&lab, &[66])]);
        // Expired, with its date.
        let (old, _) = leaf(
            &lab,
            &Leaf {
                from: (2025, 1, 1),
                to: (2026, 1, 1),
                ..Default::default()
            },
        );
        let e = check(&tp, &old, fqdn("moon.example")).unwrap_err();
        assert_eq!(e.kind(), "expired");
        assert!(
            e.to_string().contains("expired on Jan  1 00:00:00 2026"),
            "{e}"
        );
        // Not yet valid.
        let (young, _) = leaf(
            &lab,
            &Leaf {
                from: (2027, 1, 1),
                to: (2028, 1, 1),
                ..Default::default()
            },
        );
        assert_eq!(
            check(&tp, &young, fqdn("moon.example")).unwrap_err().kind(),
            "not_yet_valid"
        );
        // Another CA, named.
        let other = ca("Other CA");
        let (stranger, _) = leaf(&other, &Leaf::default());
        let e = check(&tp, &stranger, fqdn("moon.example")).unwrap_err();
        assert_eq!(
            e,
            AuthRefusal::UnknownCa {
                subject: "O=vpnd lab, CN=moon".into(),
                issuer: "O=vpnd lab, CN=Other CA".into()
            }
        );
        // Identity mismatch, both named.
        let (good, _) = leaf(&lab, &Leaf::default());
        let e = check(&tp, &good, fqdn("sun.example")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "identity sun.example does not match certificate of O=vpnd lab, CN=moon \
             (alternative names: DNS:moon.example)"
        );
        assert_eq!(
            check(&tp, &good, Identity::KeyId(vec![1]))
                .unwrap_err()
                .kind(),
            "identity_mismatch"
        );
        assert_eq!(
            check(&tp, &good, Identity::UserFqdn("moon.example".into()))
                .unwrap_err()
                .kind(),
            "identity_mismatch",
            "an FQDN SAN does not stand for an email identity"
        );
        // Revoked by the CRL.
        let (revoked, _) = leaf(
            &lab,
            &Leaf {
                serial: 66,
                ..Default::default()
            },
        );
        let e = check(&tp, &revoked, fqdn("moon.example")).unwrap_err();
        assert_eq!(e.kind(), "revoked", "{e}");
        // For e-mail only: not for IKE.
        let (mail, _) = leaf(
            &lab,
            &Leaf {
                eku: vec![ExtendedKeyUsagePurpose::EmailProtection],
                ..Default::default()
            },
        );
        assert_eq!(
            check(&tp, &mail, fqdn("moon.example")).unwrap_err().kind(),
            "key_usage"
        );
        // serverAuth is fine (what Windows and macOS want on a gateway).
        let (tls, _) = leaf(
            &lab,
            &Leaf {
                eku: vec![ExtendedKeyUsagePurpose::ServerAuth],
                ..Default::default()
            },
        );
        check(&tp, &tls, fqdn("moon.example")).unwrap();
        // Key usage without digitalSignature.
        let (enc, _) = leaf(
            &lab,
            &Leaf {
                key_usage: vec![KeyUsagePurpose::KeyEncipherment],
                ..Default::default()
            },
        );
        assert_eq!(
            check(&tp, &enc, fqdn("moon.example")).unwrap_err().kind(),
            "key_usage"
        );
        // Garbage and nothing.
        assert_eq!(
            check(&tp, &[0x30, 0x03, 1, 2, 3], fqdn("x"))
                .unwrap_err()
                .kind(),
            "bad_certificate"
        );
        assert_eq!(
            tp.verify(&[], &fqdn("x"), NOW).unwrap_err().kind(),
            "no_certificate"
        );
    }

    #[test]
    fn an_intermediate_sent_by_the_peer_completes_the_path() {
        let root = ca("Root CA");
        // An intermediate CA signed by the root.
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "Sub CA");
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.not_before = rcgen::date_time_ymd(2025, 1, 1);
        p.not_after = rcgen::date_time_ymd(2035, 1, 1);
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let sub = super::super::testca::Ca {
            cert: p.signed_by(&key, &root.cert, &root.key).unwrap(),
            key,
        };
        let (der, _) = leaf(&sub, &Leaf::default());
        let tp = trust(&root, &[]);
        let id = fqdn("moon.example");
        assert_eq!(
            tp.verify(&[&der], &id, NOW).unwrap_err().kind(),
            "unknown_ca"
        );
        tp.verify(&[&der, sub.cert.der()], &id, NOW).unwrap();
    }

    #[test]
    fn our_key_must_belong_to_our_certificate() {
        let lab = ca("Lab CA");
        let (der, key) = leaf(&lab, &Leaf::default());
        let (_, other_key) = leaf(&lab, &Leaf::default());
        LocalCert::new(
            vec![der.clone()],
            SigningKey::from_pem(key.as_bytes()).unwrap(),
        )
        .unwrap();
        let e = LocalCert::new(
            vec![der],
            SigningKey::from_pem(other_key.as_bytes()).unwrap(),
        )
        .unwrap_err();
        assert!(e.contains("does not belong"), "{e}");
        assert!(SigningKey::from_pem(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        )
        .is_err());
    }
}
