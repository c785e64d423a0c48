//! Certificates made in the tests (rcgen): a lab CA, leaves with the SANs IKE identities
//! match, an expired one, one from another CA, a CRL.

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SanType, SerialNumber, SignatureAlgorithm,
};

use super::{LocalCert, SigningKey, TrustPoint};

/// 2026-06-01 00:00 UTC: the tests' time of day.
pub const NOW: u64 = 1_780_272_000;

pub struct Ca {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

pub fn ca(cn: &str) -> Ca {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "vpnd lab");
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = rcgen::date_time_ymd(2025, 1, 1);
    p.not_after = rcgen::date_time_ymd(2035, 1, 1);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = p.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// What a leaf looks like.
pub struct Leaf<'a> {
    pub cn: &'a str,
    pub dns: &'a [&'a str],
    pub email: &'a [&'a str],
    pub ip: &'a [IpAddr],
    pub serial: u64,
    pub from: (i32, u8, u8),
    pub to: (i32, u8, u8),
    pub alg: &'static SignatureAlgorithm,
    pub eku: Vec<ExtendedKeyUsagePurpose>,
    pub key_usage: Vec<KeyUsagePurpose>,
}

impl Default for Leaf<'_> {
    fn default() -> Self {
        Leaf {
            cn: "moon",
            dns: &["moon.example"],
            email: &[],
            ip: &[],
            serial: 7,
            from: (2026, 1, 1),
            to: (2027, 1, 1),
            alg: &rcgen::PKCS_ECDSA_P256_SHA256,
            eku: Vec::new(),
            key_usage: vec![KeyUsagePurpose::DigitalSignature],
        }
    }
}

/// A leaf signed by `ca`: its DER and its private key (PEM).
pub fn leaf(ca: &Ca, l: &Leaf<'_>) -> (Vec<u8>, String) {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "vpnd lab");
    dn.push(DnType::CommonName, l.cn);
    p.distinguished_name = dn;
    p.subject_alt_names = l
        .dns
        .iter()
        .map(|d| SanType::DnsName((*d).try_into().unwrap()))
        .chain(
            l.email
                .iter()
                .map(|e| SanType::Rfc822Name((*e).try_into().unwrap())),
        )
        .chain(l.ip.iter().map(|a| SanType::IpAddress(*a)))
        .collect();
    p.serial_number = Some(SerialNumber::from(l.serial));
    p.not_before = rcgen::date_time_ymd(l.from.0, l.from.1, l.from.2);
    p.not_after = rcgen::date_time_ymd(l.to.0, l.to.1, l.to.2);
    p.extended_key_usages = l.eku.clone();
    p.key_usages = l.key_usage.clone();
    let key = KeyPair::generate_for(l.alg).unwrap();
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.der().to_vec(), key.serialize_pem())
}

pub fn local_cert(ca: &Ca, l: &Leaf<'_>) -> Arc<LocalCert> {
    let (der, key) = leaf(ca, l);
    Arc::new(LocalCert::new(vec![der], SigningKey::from_pem(key.as_bytes()).unwrap()).unwrap())
}

pub fn trust(ca: &Ca, crls: &[Vec<u8>]) -> Arc<TrustPoint> {
    Arc::new(TrustPoint::new("lab", &[ca.cert.der().to_vec()], crls).unwrap())
}

/// A CRL of `ca` revoking `serials`.
pub fn crl(ca: &Ca, serials: &[u64]) -> Vec<u8> {
    CertificateRevocationListParams {
        this_update: rcgen::date_time_ymd(2026, 1, 1),
        next_update: rcgen::date_time_ymd(2027, 1, 1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from(*s),
                revocation_time: rcgen::date_time_ymd(2026, 2, 1),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&ca.cert, &ca.key)
    .unwrap()
    .der()
    .to_vec()
}
