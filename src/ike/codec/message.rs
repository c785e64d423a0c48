//! Whole messages (RFC 7296 3.1, 3.2): the header and the chain of payloads.

use super::header::{check_length, HEADER_LEN};
use super::reader::{patch_u16_len, u16_placeholder};
use super::{
    AuthPayload, Codec, CpPayload, DecodeError, DeletePayload, EncodeError, Header, IdPayload,
    KePayload, NoncePayload, NotifyPayload, NotifyType, PayloadType, Reader, SaPayload, SkPayload,
    SkfPayload, TsPayload, VendorPayload, SKF_FIELDS_LEN,
};

/// Size of the generic payload header (RFC 7296 3.2).
const GENERIC_HEADER_LEN: usize = 4;
const CRITICAL: u8 = 0x80;

/// CERT and CERTREQ bodies (RFC 7296 3.6, 3.7): an encoding and opaque data. Parsed so these
/// known types never count as unknown critical payloads; their contents are the engine's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPayload {
    pub encoding: u8,
    pub data: Vec<u8>,
}

impl Codec for CertPayload {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.encoding);
        out.extend_from_slice(&self.data);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(CertPayload {
            encoding: r.u8()?,
            data: r.rest().to_vec(),
        })
    }
}

/// One payload. Types we do not parse are kept as `Unknown` with their critical bit, so a
/// message re-encodes as received and [`check_critical`] can refuse it (RFC 7296 2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Sa(SaPayload),
    Ke(KePayload),
    IdI(IdPayload),
    IdR(IdPayload),
    Cert(CertPayload),
    CertReq(CertPayload),
    Auth(AuthPayload),
    Nonce(NoncePayload),
    Notify(NotifyPayload),
    Delete(DeletePayload),
    Vendor(VendorPayload),
    TsI(TsPayload),
    TsR(TsPayload),
    Cp(CpPayload),
    /// EAP message (RFC 7296 3.16), raw.
    Eap(Vec<u8>),
    Sk(SkPayload),
    /// Encrypted Fragment (RFC 7383 2.5): like SK, always last.
    Skf(SkfPayload),
    Unknown {
        kind: PayloadType,
        critical: bool,
        body: Vec<u8>,
    },
}

impl Payload {
    pub fn kind(&self) -> PayloadType {
        match self {
            Payload::Sa(_) => PayloadType::SA,
            Payload::Ke(_) => PayloadType::KE,
            Payload::IdI(_) => PayloadType::IDI,
            Payload::IdR(_) => PayloadType::IDR,
            Payload::Cert(_) => PayloadType::CERT,
            Payload::CertReq(_) => PayloadType::CERTREQ,
            Payload::Auth(_) => PayloadType::AUTH,
            Payload::Nonce(_) => PayloadType::NONCE,
            Payload::Notify(_) => PayloadType::NOTIFY,
            Payload::Delete(_) => PayloadType::DELETE,
            Payload::Vendor(_) => PayloadType::VENDOR,
            Payload::TsI(_) => PayloadType::TSI,
            Payload::TsR(_) => PayloadType::TSR,
            Payload::Cp(_) => PayloadType::CP,
            Payload::Eap(_) => PayloadType::EAP,
            Payload::Sk(_) => PayloadType::SK,
            Payload::Skf(_) => PayloadType::SKF,
            Payload::Unknown { kind, .. } => *kind,
        }
    }

    fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            Payload::Sa(p) => p.encode(out),
            Payload::Ke(p) => p.encode(out),
            Payload::IdI(p) | Payload::IdR(p) => p.encode(out),
            Payload::Cert(p) | Payload::CertReq(p) => p.encode(out),
            Payload::Auth(p) => p.encode(out),
            Payload::Nonce(p) => p.encode(out),
            Payload::Notify(p) => p.encode(out),
            Payload::Delete(p) => p.encode(out),
            Payload::Vendor(p) => p.encode(out),
            Payload::TsI(p) | Payload::TsR(p) => p.encode(out),
            Payload::Cp(p) => p.encode(out),
            Payload::Eap(b) | Payload::Unknown { body: b, .. } => out.extend_from_slice(b),
            Payload::Sk(p) => p.encode_body(out),
            Payload::Skf(p) => p.encode_body(out),
        }
    }

    /// Parses one body; every parser must consume the whole body.
    fn read_body(
        kind: PayloadType,
        critical: bool,
        next: PayloadType,
        r: &mut Reader<'_>,
    ) -> Result<Self, DecodeError> {
        fn all<T: Codec>(r: &mut Reader<'_>) -> Result<T, DecodeError> {
            let v = T::read(r)?;
            r.expect_empty("payload")?;
            Ok(v)
        }
        Ok(match kind {
            PayloadType::SA => Payload::Sa(all(r)?),
            PayloadType::KE => Payload::Ke(all(r)?),
            PayloadType::IDI => Payload::IdI(all(r)?),
            PayloadType::IDR => Payload::IdR(all(r)?),
            PayloadType::CERT => Payload::Cert(all(r)?),
            PayloadType::CERTREQ => Payload::CertReq(all(r)?),
            PayloadType::AUTH => Payload::Auth(all(r)?),
            PayloadType::NONCE => Payload::Nonce(all(r)?),
            PayloadType::NOTIFY => Payload::Notify(all(r)?),
            PayloadType::DELETE => Payload::Delete(all(r)?),
            PayloadType::VENDOR => Payload::Vendor(all(r)?),
            PayloadType::TSI => Payload::TsI(all(r)?),
            PayloadType::TSR => Payload::TsR(all(r)?),
            PayloadType::CP => Payload::Cp(all(r)?),
            PayloadType::EAP => Payload::Eap(r.rest().to_vec()),
            PayloadType::SK => Payload::Sk(SkPayload::read_body(next, r)?),
            PayloadType::SKF => Payload::Skf(SkfPayload::read_body(next, r)?),
            _ => Payload::Unknown {
                kind,
                critical,
                body: r.rest().to_vec(),
            },
        })
    }
}

/// Walks a payload chain starting with type `first` until Next Payload is NONE; the chain must
/// use up `r` exactly. An SK payload ends the chain (its Next Payload names the first inner
/// payload) and must be last (RFC 7296 3.14).
fn read_chain(
    first: PayloadType,
    r: &mut Reader<'_>,
    allow_sk: bool,
) -> Result<Vec<Payload>, DecodeError> {
    let mut payloads = Vec::new();
    let mut kind = first;
    while kind != PayloadType::NONE {
        let next = PayloadType(r.u8()?);
        let critical = r.u8()? & CRITICAL != 0;
        let len = usize::from(r.u16()?);
        let body_len = len
            .checked_sub(GENERIC_HEADER_LEN)
            .ok_or(DecodeError::InvalidLength("generic payload header"))?;
        let mut body = r.sub(body_len, "payload")?;
        // SK and SKF (RFC 7383 2.5) alike: last, never inside another, Next Payload inside.
        let encrypted = kind == PayloadType::SK || kind == PayloadType::SKF;
        if encrypted {
            if !allow_sk {
                return Err(DecodeError::InvalidValue("nested SK payload"));
            }
            if !r.is_empty() {
                return Err(DecodeError::InvalidValue("SK payload not last"));
            }
        }
        payloads.push(Payload::read_body(kind, critical, next, &mut body)?);
        kind = if encrypted { PayloadType::NONE } else { next };
    }
    r.expect_empty("payload chain")?;
    Ok(payloads)
}

/// Decodes the payload chain inside a decrypted SK payload; `first` is the SK payload's
/// `first_inner`.
pub fn decode_chain(first: PayloadType, bytes: &[u8]) -> Result<Vec<Payload>, DecodeError> {
    read_chain(first, &mut Reader::new(bytes), false)
}

/// Encodes a payload chain (e.g. the inner payloads of an SK payload) and returns the type of
/// its first payload, which goes in the enclosing Next Payload field.
pub fn encode_chain(payloads: &[Payload]) -> Result<(PayloadType, Vec<u8>), EncodeError> {
    let mut out = Vec::new();
    write_chain(payloads, None, &mut out)?;
    let first = payloads.first().map_or(PayloadType::NONE, Payload::kind);
    Ok((first, out))
}

/// RFC 7296 2.5: an unknown payload with the critical bit set makes the whole message
/// unacceptable; answer with [`DecodeError::notify`] / [`DecodeError::notify_data`].
pub fn check_critical(payloads: &[Payload]) -> Result<(), DecodeError> {
    match payloads.iter().find_map(|p| match p {
        Payload::Unknown {
            kind,
            critical: true,
            ..
        } => Some(*kind),
        _ => None,
    }) {
        Some(kind) => Err(DecodeError::UnsupportedCriticalPayload(kind)),
        None => Ok(()),
    }
}

/// Writes generic headers and bodies; `tail` is the type of a payload that follows the chain
/// (the SK payload when building an encrypted message).
fn write_chain(
    payloads: &[Payload],
    tail: Option<PayloadType>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    for (i, p) in payloads.iter().enumerate() {
        let next = match (p, payloads.get(i + 1)) {
            (Payload::Sk(sk), None) if tail.is_none() => sk.first_inner,
            (Payload::Skf(f), None) if tail.is_none() => f.first_inner,
            (Payload::Sk(_) | Payload::Skf(_), _) => return Err(EncodeError::SkNotLast),
            (_, Some(n)) => n.kind(),
            (_, None) => tail.unwrap_or(PayloadType::NONE),
        };
        let critical = matches!(p, Payload::Unknown { critical: true, .. });
        let start = out.len();
        out.push(next.0);
        out.push(if critical { CRITICAL } else { 0 });
        let pos = u16_placeholder(out);
        p.encode_body(out);
        let len = out.len().saturating_sub(start);
        if len > usize::from(u16::MAX) {
            return Err(EncodeError::PayloadTooLong(p.kind(), len));
        }
        patch_u16_len(out, pos, start);
    }
    Ok(())
}

/// A decoded IKE message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub payloads: Vec<Payload>,
}

impl Message {
    /// Decodes a datagram (without the non-ESP marker of port 4500). Unknown critical
    /// payloads are kept; call [`Message::check_critical`] before acting on the message.
    pub fn decode(datagram: &[u8]) -> Result<Message, DecodeError> {
        let mut r = Reader::new(datagram);
        let raw = Header::read_raw(&mut r)?;
        check_length(raw.length, datagram.len())?;
        let payloads = read_chain(raw.next_payload, &mut r, true)?;
        Ok(Message {
            header: raw.header,
            payloads,
        })
    }

    /// Encodes with Next Payload and Length fields computed.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(512);
        let first = self
            .payloads
            .first()
            .map_or(PayloadType::NONE, Payload::kind);
        self.header.encode_raw(first, 0, &mut out);
        write_chain(&self.payloads, None, &mut out)?;
        patch_message_len(&mut out, 0)?;
        Ok(out)
    }

    /// Encodes the header, `self.payloads` (unencrypted, usually none) and the generic header
    /// of a trailing SK payload whose body will be `sk_body_len` bytes: exactly the bytes the
    /// SK payload's AAD/ICV covers. `crypto::cipher::SkCipher::seal` appends the body.
    pub fn encode_sk_prefix(
        &self,
        first_inner: PayloadType,
        sk_body_len: usize,
    ) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(HEADER_LEN + GENERIC_HEADER_LEN + sk_body_len);
        let first = self.payloads.first().map_or(PayloadType::SK, Payload::kind);
        self.header.encode_raw(first, 0, &mut out);
        write_chain(&self.payloads, Some(PayloadType::SK), &mut out)?;
        let sk_len = sk_body_len
            .checked_add(GENERIC_HEADER_LEN)
            .and_then(|n| u16::try_from(n).ok())
            .ok_or(EncodeError::PayloadTooLong(PayloadType::SK, sk_body_len))?;
        out.push(first_inner.0);
        out.push(0);
        out.extend_from_slice(&sk_len.to_be_bytes());
        patch_message_len(&mut out, sk_body_len)?;
        Ok(out)
    }

    /// The bytes an Encrypted Fragment's ICV covers (RFC 7383 2.5): the header (Next Payload
    /// SKF, the fragment's Length), the SKF generic header, Fragment Number and Total
    /// Fragments; `self.payloads` must be empty. The fragment's IV || ciphertext || ICV of
    /// `body_len` bytes follows.
    pub fn encode_skf_prefix(
        &self,
        first_inner: PayloadType,
        number: u16,
        total: u16,
        body_len: usize,
    ) -> Result<Vec<u8>, EncodeError> {
        if !self.payloads.is_empty() {
            return Err(EncodeError::SkNotLast);
        }
        let mut out = Vec::with_capacity(HEADER_LEN + GENERIC_HEADER_LEN + 4 + body_len);
        self.header.encode_raw(PayloadType::SKF, 0, &mut out);
        let inner_len = body_len + SKF_FIELDS_LEN;
        let skf_len = inner_len
            .checked_add(GENERIC_HEADER_LEN)
            .and_then(|n| u16::try_from(n).ok())
            .ok_or(EncodeError::PayloadTooLong(PayloadType::SKF, inner_len))?;
        out.push(first_inner.0);
        out.push(0);
        out.extend_from_slice(&skf_len.to_be_bytes());
        out.extend_from_slice(&number.to_be_bytes());
        out.extend_from_slice(&total.to_be_bytes());
        patch_message_len(&mut out, body_len)?;
        Ok(out)
    }

    /// See [`check_critical`].
    pub fn check_critical(&self) -> Result<(), DecodeError> {
        check_critical(&self.payloads)
    }

    pub fn find_notify(&self, kind: NotifyType) -> Option<&NotifyPayload> {
        self.payloads.find_notify(kind)
    }
}

fn patch_message_len(out: &mut [u8], extra: usize) -> Result<(), EncodeError> {
    let len = out
        .len()
        .checked_add(extra)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(EncodeError::MessageTooLong)?;
    if let Some(slot) = out.get_mut(24..28) {
        slot.copy_from_slice(&len.to_be_bytes());
    }
    Ok(())
}

/// Lookups over a payload list: a decoded message's payloads or a decrypted inner chain.
pub trait PayloadList {
    fn find_notify(&self, kind: NotifyType) -> Option<&NotifyPayload>;
    fn notifies(&self) -> impl Iterator<Item = &NotifyPayload>;
    /// The first error notify (type below 16384), which fails a response (RFC 7296 3.10.1).
    fn error_notify(&self) -> Option<&NotifyPayload>;
    fn sa(&self) -> Option<&SaPayload>;
    fn ke(&self) -> Option<&KePayload>;
    fn nonce(&self) -> Option<&NoncePayload>;
    fn id_i(&self) -> Option<&IdPayload>;
    fn id_r(&self) -> Option<&IdPayload>;
    fn auth(&self) -> Option<&AuthPayload>;
    fn ts_i(&self) -> Option<&TsPayload>;
    fn ts_r(&self) -> Option<&TsPayload>;
    fn cp(&self) -> Option<&CpPayload>;
    fn deletes(&self) -> impl Iterator<Item = &DeletePayload>;
    fn sk(&self) -> Option<&SkPayload>;
    fn skf(&self) -> Option<&SkfPayload>;
}

macro_rules! first_of {
    ($s:expr, $v:ident) => {
        $s.iter().find_map(|p| match p {
            Payload::$v(x) => Some(x),
            _ => None,
        })
    };
}

impl PayloadList for [Payload] {
    fn find_notify(&self, kind: NotifyType) -> Option<&NotifyPayload> {
        self.notifies().find(|n| n.kind == kind)
    }
    fn notifies(&self) -> impl Iterator<Item = &NotifyPayload> {
        self.iter().filter_map(|p| match p {
            Payload::Notify(n) => Some(n),
            _ => None,
        })
    }
    fn error_notify(&self) -> Option<&NotifyPayload> {
        self.notifies().find(|n| n.kind.is_error())
    }
    fn sa(&self) -> Option<&SaPayload> {
        first_of!(self, Sa)
    }
    fn ke(&self) -> Option<&KePayload> {
        first_of!(self, Ke)
    }
    fn nonce(&self) -> Option<&NoncePayload> {
        first_of!(self, Nonce)
    }
    fn id_i(&self) -> Option<&IdPayload> {
        first_of!(self, IdI)
    }
    fn id_r(&self) -> Option<&IdPayload> {
        first_of!(self, IdR)
    }
    fn auth(&self) -> Option<&AuthPayload> {
        first_of!(self, Auth)
    }
    fn ts_i(&self) -> Option<&TsPayload> {
        first_of!(self, TsI)
    }
    fn ts_r(&self) -> Option<&TsPayload> {
        first_of!(self, TsR)
    }
    fn cp(&self) -> Option<&CpPayload> {
        first_of!(self, Cp)
    }
    fn deletes(&self) -> impl Iterator<Item = &DeletePayload> {
        self.iter().filter_map(|p| match p {
            Payload::Delete(d) => Some(d),
            _ => None,
        })
    }
    fn sk(&self) -> Option<&SkPayload> {
        first_of!(self, Sk)
    }
    fn skf(&self) -> Option<&SkfPayload> {
        first_of!(self, Skf)
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;

    /// Hex with whitespace and comments (`#` to end of line) to bytes.
    fn hex(s: &str) -> Vec<u8> {
        let digits: String = s
            .lines()
            .map(|l| l.split('#').next().unwrap_or(""))
            .flat_map(|l| l.chars().filter(|c| c.is_ascii_hexdigit()))
            .collect();
        (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
            .collect()
    }

    /// An IKE_SA_INIT request laid out as strongSwan sends it (aes256gcm16-prfsha256-x25519).
    fn strongswan_sa_init() -> Vec<u8> {
        let ke = "a5".repeat(32);
        let nonce = "4e".repeat(32);
        let nat_src = "11".repeat(20);
        let nat_dst = "22".repeat(20);
        hex(&format!(
            "
            1122334455667788 0000000000000000   # SPIi, SPIr
            21 20 22 08 00000000 000000d8       # next SA, v2.0, IKE_SA_INIT, I, msgid 0, len 216
            22 00 0028                          # SA, next KE, len 40
              00 00 0024 01 01 00 03            # last proposal, len 36, #1, IKE, no SPI, 3 transforms
                03 00 000c 01 00 0014 800e 0100 # ENCR_AES_GCM_16, key length 256
                03 00 0008 02 00 0005           # PRF_HMAC_SHA2_256
                00 00 0008 04 00 001f           # DH 31 (Curve25519)
            28 00 0028 001f 0000 {ke}           # KE, next Nonce, len 40, group 31
            29 00 0024 {nonce}                  # Nonce, next N, len 36
            29 00 001c 00 00 4004 {nat_src}     # N(NAT_DETECTION_SOURCE_IP)
            29 00 001c 00 00 4005 {nat_dst}     # N(NAT_DETECTION_DESTINATION_IP)
            00 00 0010 00 00 402f 0002 0003 0004 0005 # N(SIGNATURE_HASH_ALGORITHMS)
            "
        ))
    }

    #[test]
    fn strongswan_ike_sa_init_round_trip() {
        let bytes = strongswan_sa_init();
        assert_eq!(bytes.len(), 216);
        let m = Message::decode(&bytes).unwrap();
        m.check_critical().unwrap();
        assert_eq!(m.header.spi_i, 0x1122334455667788);
        assert_eq!(m.header.exchange, ExchangeType::IKE_SA_INIT);
        assert!(m.header.flags.initiator && !m.header.flags.response);
        assert_eq!(m.payloads.len(), 6);
        let sa = m.payloads.sa().unwrap();
        let p = &sa.proposals[0];
        assert_eq!(p.protocol, ProtocolId::IKE);
        assert_eq!(p.transforms[0].id, EncrId::ENCR_AES_GCM_16.0);
        assert_eq!(p.transforms[0].key_length(), Some(256));
        assert_eq!(p.transforms[2].id, DhGroupId::CURVE25519.0);
        assert_eq!(m.payloads.ke().unwrap().group, DhGroupId::CURVE25519);
        assert_eq!(m.payloads.nonce().unwrap().data.len(), 32);
        assert!(m.find_notify(NotifyType::NAT_DETECTION_SOURCE_IP).is_some());
        assert!(m
            .find_notify(NotifyType::NAT_DETECTION_DESTINATION_IP)
            .is_some());
        assert_eq!(
            m.find_notify(NotifyType::SIGNATURE_HASH_ALGORITHMS)
                .unwrap()
                .data,
            vec![0, 2, 0, 3, 0, 4, 0, 5]
        );
        assert_eq!(m.encode().unwrap(), bytes);
    }

    #[test]
    fn build_and_encode_sa_init() {
        let m = Message {
            header: Header {
                spi_i: 1,
                spi_r: 0,
                exchange: ExchangeType::IKE_SA_INIT,
                flags: Flags {
                    initiator: true,
                    ..Flags::default()
                },
                message_id: 0,
            },
            payloads: vec![
                Payload::Sa(SaPayload {
                    proposals: vec![Proposal {
                        number: 1,
                        protocol: ProtocolId::IKE,
                        spi: vec![],
                        transforms: vec![
                            Transform::encr(EncrId::ENCR_AES_GCM_16, Some(256)),
                            Transform::prf(PrfId::PRF_HMAC_SHA2_256),
                            Transform::dh(DhGroupId::CURVE25519),
                        ],
                    }],
                }),
                Payload::Ke(KePayload {
                    group: DhGroupId::CURVE25519,
                    data: vec![0xa5; 32],
                }),
                Payload::Nonce(NoncePayload {
                    data: vec![0x4e; 32],
                }),
                Payload::Notify(NotifyPayload::new(
                    NotifyType::NAT_DETECTION_SOURCE_IP,
                    vec![0x11; 20],
                )),
                Payload::Notify(NotifyPayload::new(
                    NotifyType::NAT_DETECTION_DESTINATION_IP,
                    vec![0x22; 20],
                )),
                Payload::Notify(NotifyPayload::new(
                    NotifyType::SIGNATURE_HASH_ALGORITHMS,
                    vec![0, 2, 0, 3, 0, 4, 0, 5],
                )),
            ],
        };
        let mut expected = strongswan_sa_init();
        expected[..8].copy_from_slice(&1u64.to_be_bytes());
        assert_eq!(m.encode().unwrap(), expected);
        assert_eq!(Message::decode(&expected).unwrap(), m);
    }

    fn ike_auth_inner() -> Vec<Payload> {
        vec![
            Payload::IdI(IdPayload::new(Identity::Fqdn("client.example".into()))),
            Payload::Notify(NotifyPayload::new(NotifyType::INITIAL_CONTACT, vec![])),
            Payload::Auth(AuthPayload {
                method: AuthMethod::SHARED_KEY_MIC,
                data: vec![3; 32],
            }),
            Payload::Cp(CpPayload {
                cfg_type: CfgType::REQUEST,
                attributes: vec![CpAttribute {
                    kind: CpPayload::INTERNAL_IP4_ADDRESS,
                    value: vec![],
                }],
            }),
            Payload::Sa(SaPayload {
                proposals: vec![Proposal {
                    number: 1,
                    protocol: ProtocolId::ESP,
                    spi: vec![0xc0, 0, 0, 1],
                    transforms: vec![
                        Transform::encr(EncrId::ENCR_AES_GCM_16, Some(256)),
                        Transform::esn(EsnId::NO_ESN),
                    ],
                }],
            }),
            Payload::TsI(TsPayload::from_selectors([TrafficSelector::new(
                0,
                0,
                65535,
                "0.0.0.0".parse().unwrap(),
                "255.255.255.255".parse().unwrap(),
            )
            .unwrap()])),
            Payload::TsR(TsPayload::from_selectors([TrafficSelector::new(
                0,
                0,
                65535,
                "0.0.0.0".parse().unwrap(),
                "255.255.255.255".parse().unwrap(),
            )
            .unwrap()])),
            Payload::Delete(DeletePayload {
                protocol: ProtocolId::ESP,
                spis: vec![vec![1, 2, 3, 4]],
            }),
            Payload::Vendor(VendorPayload {
                data: vec![1, 2, 3],
            }),
            Payload::Cert(CertPayload {
                encoding: 4,
                data: vec![0x30],
            }),
            Payload::CertReq(CertPayload {
                encoding: 4,
                data: vec![],
            }),
            Payload::Eap(vec![1, 1, 0, 4]),
            Payload::Unknown {
                kind: PayloadType(200),
                critical: false,
                body: vec![9, 9],
            },
        ]
    }

    #[test]
    fn inner_chain_round_trip() {
        let inner = ike_auth_inner();
        let (first, bytes) = encode_chain(&inner).unwrap();
        assert_eq!(first, PayloadType::IDI);
        let back = decode_chain(first, &bytes).unwrap();
        assert_eq!(back, inner);
        assert!(check_critical(&back).is_ok());
        assert!(back.id_i().is_some() && back.auth().is_some() && back.ts_r().is_some());
        // Wrong first type: the IDi body does not parse as an SA.
        assert!(decode_chain(PayloadType::SA, &bytes).is_err());
        // Chain claims more payloads than bytes.
        assert!(decode_chain(first, &bytes[..bytes.len() - 1]).is_err());
        // Bytes after the last payload.
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode_chain(first, &extra).is_err());
        assert_eq!(decode_chain(PayloadType::NONE, &[]).unwrap(), vec![]);
    }

    #[test]
    fn sk_message_layout() {
        let header = Header {
            spi_i: 1,
            spi_r: 2,
            exchange: ExchangeType::IKE_AUTH,
            flags: Flags {
                initiator: true,
                ..Flags::default()
            },
            message_id: 1,
        };
        let shell = Message {
            header,
            payloads: vec![],
        };
        let body = vec![0x55; 60];
        let mut bytes = shell
            .encode_sk_prefix(PayloadType::IDI, body.len())
            .unwrap();
        assert_eq!(bytes.len(), 32);
        bytes.extend_from_slice(&body);
        let m = Message::decode(&bytes).unwrap();
        let sk = m.payloads.sk().unwrap();
        assert_eq!(sk.first_inner, PayloadType::IDI);
        assert_eq!(sk.body, body);
        let full = Message {
            header,
            payloads: vec![Payload::Sk(sk.clone())],
        };
        assert_eq!(full.encode().unwrap(), bytes);
        // SK anywhere but last is refused both ways.
        let bad = Message {
            header,
            payloads: vec![Payload::Sk(sk.clone()), Payload::Eap(vec![])],
        };
        assert_eq!(bad.encode(), Err(EncodeError::SkNotLast));
        let mut trailing = bytes[..28].to_vec();
        trailing[16] = PayloadType::SK.0;
        trailing.extend_from_slice(&[0x30, 0, 0, 8, 1, 2, 3, 4]); // SK, first inner EAP
        trailing.extend_from_slice(&[0, 0, 0, 4]); // another payload after SK
        let len = trailing.len() as u32;
        trailing[24..28].copy_from_slice(&len.to_be_bytes());
        assert!(Message::decode(&trailing).is_err());
        // Nested SK in an inner chain is refused.
        assert!(decode_chain(PayloadType::SK, &[0, 0, 0, 4]).is_err());
    }

    #[test]
    fn unknown_critical_payload() {
        let mut bytes = strongswan_sa_init();
        // Append an unknown payload type 99 with the critical bit after the last notify.
        let last_notify = bytes.len() - 16;
        bytes[last_notify] = 99;
        bytes.extend_from_slice(&[0, 0x80, 0, 6, 0xde, 0xad]);
        let len = bytes.len() as u32;
        bytes[24..28].copy_from_slice(&len.to_be_bytes());
        let m = Message::decode(&bytes).unwrap();
        let err = m.check_critical().unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnsupportedCriticalPayload(PayloadType(99))
        );
        assert_eq!(err.notify(), NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD);
        assert_eq!(err.notify_data(), vec![99]);
        assert_eq!(m.encode().unwrap(), bytes);
        // Not critical: accepted.
        let crit = bytes.len() - 5;
        bytes[crit] = 0;
        assert!(Message::decode(&bytes).unwrap().check_critical().is_ok());
        // The critical bit on a known type is ignored (RFC 7296 2.5).
        let mut known = strongswan_sa_init();
        known[29] = 0x80;
        assert!(Message::decode(&known).unwrap().check_critical().is_ok());
    }

    #[test]
    fn malformed_messages() {
        let good = strongswan_sa_init();
        // Every truncation fails (length mismatch), and so does an overlong datagram.
        for n in 0..good.len() {
            assert!(Message::decode(&good[..n]).is_err());
        }
        let mut long = good.clone();
        long.push(0);
        assert!(Message::decode(&long).is_err());
        // Header length fixed up to a truncated chain: still an error.
        let mut short = good[..good.len() - 3].to_vec();
        let len = short.len() as u32;
        short[24..28].copy_from_slice(&len.to_be_bytes());
        assert!(Message::decode(&short).is_err());
        // A zero-length payload.
        let mut zero = good.clone();
        zero[30] = 0;
        zero[31] = 0;
        assert_eq!(
            Message::decode(&zero),
            Err(DecodeError::InvalidLength("generic payload header"))
        );
        // A payload length running past the end.
        let mut over = good.clone();
        over[30] = 0xff;
        assert!(Message::decode(&over).is_err());
        // Wrong version.
        let mut v1 = good.clone();
        v1[17] = 0x10;
        let err = Message::decode(&v1).unwrap_err();
        assert_eq!(err.notify(), NotifyType::INVALID_MAJOR_VERSION);
        assert_eq!(
            Message::decode(&[]),
            Err(DecodeError::Truncated("IKE header"))
        );
        // A header-only message is fine.
        let mut bare = good[..28].to_vec();
        bare[16] = 0;
        bare[24..28].copy_from_slice(&28u32.to_be_bytes());
        assert_eq!(Message::decode(&bare).unwrap().payloads, vec![]);
        assert_eq!(
            Message::decode(&short).unwrap_err().notify(),
            NotifyType::INVALID_SYNTAX
        );
    }

    /// xorshift64*: deterministic and dependency-free.
    struct Prng(u64);
    impl Prng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn decode_never_panics() {
        let good = strongswan_sa_init();
        for n in 0..=good.len() {
            let _ = Message::decode(&good[..n]);
            // Also with the header length matching the prefix, to reach the payload parsers.
            if n >= 28 {
                let mut p = good[..n].to_vec();
                p[24..28].copy_from_slice(&(n as u32).to_be_bytes());
                let _ = Message::decode(&p);
            }
        }
        let (first, inner) = encode_chain(&ike_auth_inner()).unwrap();
        let mut rng = Prng(0x9e37_79b9_7f4a_7c15);
        let mut decoded = 0;
        for i in 0..20_000 {
            let base = if i % 2 == 0 { &good } else { &inner };
            let mut m = base.clone();
            for _ in 0..=rng.below(4) {
                match rng.below(4) {
                    0 | 1 => {
                        let at = rng.below(m.len());
                        m[at] = rng.next() as u8;
                    }
                    2 => {
                        let at = rng.below(m.len());
                        m[at] ^= 1 << rng.below(8);
                    }
                    _ => {
                        let at = rng.below(m.len());
                        m.truncate(at.max(1));
                    }
                }
            }
            if i % 2 == 0 {
                if m.len() >= 28 && rng.below(4) != 0 {
                    let len = m.len() as u32;
                    m[24..28].copy_from_slice(&len.to_be_bytes());
                }
                if let Ok(msg) = Message::decode(&m) {
                    decoded += 1;
                    let _ = msg.check_critical();
                    // Whatever decodes must re-encode and decode to the same thing.
                    let again = msg.encode().unwrap();
                    assert_eq!(Message::decode(&again).unwrap(), msg);
                }
            } else if let Ok(chain) = decode_chain(first, &m) {
                decoded += 1;
                let (f, again) = encode_chain(&chain).unwrap();
                assert_eq!(decode_chain(f, &again).unwrap(), chain);
            }
        }
        assert!(decoded > 100, "mutations too destructive: {decoded}");
    }
}
