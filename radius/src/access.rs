//! RADIUS authentication for EAP (RFC 3579): the Access-Request that carries one EAP message,
//! and what we take from the Access-Challenge, -Accept or -Reject that answers it.
//!
//! Encoded and parsed by hand rather than with the `radius` crate: the Message-Authenticator
//! (RFC 3579 3.2) is an HMAC over the finished packet with its own value zeroed, so it needs
//! the attribute's offset in the encoded octets, and EAP-Message must be split into (and
//! rejoined from) 253-octet attributes in order; the crate exposes neither. MS-MPPE keys
//! (RFC 2548 2.4.2/2.4.3) are not in the crate at all.
//!
//! Every Access-Request carries a Message-Authenticator and every answer must carry a valid
//! one, whatever its code (RFC 3579 3.2 requires it with EAP-Message; since BlastRADIUS
//! (CVE-2024-3596) an answer without one is refused outright, so a forged Accept made by an
//! MD5 collision of the Response Authenticator does not count).

use std::fmt;
use std::net::IpAddr;

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use zeroize::Zeroizing;

use crate::response::HEADER_LEN;

pub(crate) const ACCESS_REQUEST: u8 = 1;
pub(crate) const ACCESS_ACCEPT: u8 = 2;
pub(crate) const ACCESS_REJECT: u8 = 3;
pub(crate) const ACCESS_CHALLENGE: u8 = 11;

const USER_NAME: u8 = 1;
const NAS_IP_ADDRESS: u8 = 4;
const NAS_PORT: u8 = 5;
const SERVICE_TYPE: u8 = 6;
const VENDOR_SPECIFIC: u8 = 26;
const STATE: u8 = 24;
const CLASS: u8 = 25;
const SESSION_TIMEOUT: u8 = 27;
const CALLED_STATION_ID: u8 = 30;
const CALLING_STATION_ID: u8 = 31;
const NAS_IDENTIFIER: u8 = 32;
const NAS_PORT_TYPE: u8 = 61;
const EAP_MESSAGE: u8 = 79;
const MESSAGE_AUTHENTICATOR: u8 = 80;
const FRAMED_IP_ADDRESS: u8 = 8;
const FRAMED_POOL: u8 = 88;
const FRAMED_IPV6_POOL: u8 = 100;
const NAS_IPV6_ADDRESS: u8 = 95;

/// Service-Type Framed (RFC 2865 5.6) and NAS-Port-Type Virtual (5.41), as strongSwan's
/// eap-radius sends them.
const SERVICE_FRAMED: u32 = 2;
const PORT_TYPE_VIRTUAL: u32 = 5;

/// Microsoft's enterprise number and its MS-MPPE-Send-Key / Recv-Key (RFC 2548 2.4.2, 2.4.3).
const VENDOR_MICROSOFT: u32 = 311;
const MS_MPPE_SEND_KEY: u8 = 16;
const MS_MPPE_RECV_KEY: u8 = 17;

const MAX_ATTR_VALUE: usize = 253;
const MAX_PACKET: usize = 4096;

/// One Access-Request: an EAP message of the client's, relayed (RFC 3579 3.1).
#[derive(Clone, PartialEq, Eq)]
pub struct AccessRequest {
    /// The EAP identity (RFC 3579 2.1: copied from the EAP-Response/Identity).
    pub user_name: String,
    /// The EAP packet, whole; split into 253-octet EAP-Message attributes on encoding.
    pub eap_message: Vec<u8>,
    /// The State of the previous Access-Challenge, echoed (RFC 2865 5.24).
    pub state: Option<Vec<u8>>,
    pub nas_ip: Option<IpAddr>,
    pub nas_identifier: Option<String>,
    /// A number for the IKE SA (strongSwan sends its unique id).
    pub nas_port: Option<u32>,
    /// Our address and port ("192.0.2.1[4500]" as strongSwan writes it).
    pub called_station_id: Option<String>,
    /// The client's address and port.
    pub calling_station_id: Option<String>,
}

impl fmt::Debug for AccessRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessRequest")
            .field("user_name", &self.user_name)
            .field("eap_len", &self.eap_message.len())
            .field("state", &self.state.is_some())
            .finish_non_exhaustive()
    }
}

/// What the server answered, authenticated.
#[derive(Clone, PartialEq, Eq)]
pub enum AccessAnswer {
    /// Go on: the next EAP request for the client, and the State to echo.
    Challenge {
        eap_message: Vec<u8>,
        state: Option<Vec<u8>>,
    },
    Accept(Box<Accepted>),
    /// Refused; usually with an EAP-Failure for the client.
    Reject {
        eap_message: Vec<u8>,
    },
}

impl fmt::Debug for AccessAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessAnswer::Challenge { eap_message, .. } => {
                write!(f, "Challenge({} octets of EAP)", eap_message.len())
            }
            AccessAnswer::Accept(a) => write!(f, "Accept({a:?})"),
            AccessAnswer::Reject { .. } => f.write_str("Reject"),
        }
    }
}

/// An Access-Accept: the user is authenticated.
#[derive(Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Usually an EAP-Success.
    pub eap_message: Vec<u8>,
    /// The MSK (RFC 5247): MS-MPPE-Recv-Key || MS-MPPE-Send-Key, as strongSwan's eap-radius
    /// joins them; None when the server sent no keys (the EAP method made none).
    pub msk: Option<Zeroizing<Vec<u8>>>,
    /// Class attributes, to echo in every accounting record of the session (RFC 2865 5.25).
    pub class: Vec<Vec<u8>>,
    /// User-Name if the server set one (RFC 2865 5.1: to be used in accounting).
    pub user_name: Option<String>,
    pub framed_ip: Option<std::net::Ipv4Addr>,
    /// Framed-Pool (RFC 2869 5.23) then Framed-IPv6-Pool (RFC 3162 2.4), as sent.
    pub framed_pools: Vec<String>,
    pub session_timeout: Option<u32>,
}

impl fmt::Debug for Accepted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accepted")
            .field("msk_len", &self.msk.as_ref().map(|m| m.len()))
            .field("class", &self.class.len())
            .field("user_name", &self.user_name)
            .field("framed_ip", &self.framed_ip)
            .field("framed_pools", &self.framed_pools)
            .field("session_timeout", &self.session_timeout)
            .finish()
    }
}

/// Why an authenticated answer was not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("Access-Challenge without EAP-Message")]
    ChallengeWithoutEap,
    #[error("MS-MPPE key attribute malformed")]
    BadMppeKey,
    #[error("not an Access-Accept, -Reject or -Challenge (code {0})")]
    Code(u8),
    #[error("attributes malformed")]
    Attributes,
}

struct Writer {
    out: Vec<u8>,
}

impl Writer {
    fn attr(&mut self, kind: u8, value: &[u8]) {
        debug_assert!(value.len() <= MAX_ATTR_VALUE);
        self.out.push(kind);
        self.out.push((value.len() + 2) as u8);
        self.out.extend_from_slice(value);
    }
    fn u32(&mut self, kind: u8, v: u32) {
        self.attr(kind, &v.to_be_bytes());
    }
    fn string(&mut self, kind: u8, s: &str) {
        let s = cut(s, MAX_ATTR_VALUE);
        if !s.is_empty() {
            self.attr(kind, s.as_bytes());
        }
    }
}

/// `s` cut to at most `max` octets at a UTF-8 boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Why an Access-Request cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("EAP message of {0} octets does not fit a RADIUS packet")]
    TooLong(usize),
    #[error("empty EAP message")]
    EmptyEap,
}

impl AccessRequest {
    /// The Access-Request under `identifier` with Request Authenticator `authenticator` (16
    /// random octets, RFC 2865 3), Message-Authenticator last (RFC 3579 3.2: HMAC-MD5 keyed by
    /// the secret over the packet with the attribute's value zeroed).
    pub fn encode(
        &self,
        identifier: u8,
        authenticator: &[u8; 16],
        secret: &[u8],
    ) -> Result<Vec<u8>, RequestError> {
        if self.eap_message.is_empty() {
            return Err(RequestError::EmptyEap);
        }
        let mut w = Writer {
            out: Vec::with_capacity(HEADER_LEN + self.eap_message.len() + 200),
        };
        w.out.extend_from_slice(&[ACCESS_REQUEST, identifier, 0, 0]);
        w.out.extend_from_slice(authenticator);
        w.string(USER_NAME, &self.user_name);
        w.u32(NAS_PORT_TYPE, PORT_TYPE_VIRTUAL);
        w.u32(SERVICE_TYPE, SERVICE_FRAMED);
        if let Some(p) = self.nas_port {
            w.u32(NAS_PORT, p);
        }
        match self.nas_ip {
            Some(IpAddr::V4(ip)) => w.attr(NAS_IP_ADDRESS, &ip.octets()),
            Some(IpAddr::V6(ip)) => w.attr(NAS_IPV6_ADDRESS, &ip.octets()),
            None => {}
        }
        if let Some(s) = &self.called_station_id {
            w.string(CALLED_STATION_ID, s);
        }
        if let Some(s) = &self.calling_station_id {
            w.string(CALLING_STATION_ID, s);
        }
        if let Some(s) = &self.nas_identifier {
            w.string(NAS_IDENTIFIER, s);
        }
        for chunk in self.eap_message.chunks(MAX_ATTR_VALUE) {
            w.attr(EAP_MESSAGE, chunk);
        }
        if let Some(state) = &self.state {
            for chunk in state.chunks(MAX_ATTR_VALUE).take(1) {
                w.attr(STATE, chunk);
            }
        }
        let ma_at = w.out.len();
        w.attr(MESSAGE_AUTHENTICATOR, &[0u8; 16]);
        let len = w.out.len();
        if len > MAX_PACKET {
            return Err(RequestError::TooLong(self.eap_message.len()));
        }
        w.out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        let mac = hmac_md5(secret, &w.out);
        w.out[ma_at + 2..ma_at + 18].copy_from_slice(&mac);
        Ok(w.out)
    }
}

fn hmac_md5(key: &[u8], data: &[u8]) -> [u8; 16] {
    let mut m = <Hmac<Md5> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().into()
}

/// The attributes of a packet (already cut to its Length), in order; None if their framing
/// is broken.
fn attributes(packet: &[u8]) -> Option<Vec<(u8, usize, &[u8])>> {
    let mut out = Vec::new();
    let mut at = HEADER_LEN;
    while at < packet.len() {
        let len = *packet.get(at + 1)? as usize;
        if len < 2 || at + len > packet.len() {
            return None;
        }
        out.push((packet[at], at, &packet[at + 2..at + len]));
        at += len;
    }
    Some(out)
}

/// Whether an answer (cut to its Length) carries exactly one valid Message-Authenticator
/// (RFC 3579 3.2): HMAC-MD5 over the answer with the Request Authenticator in place of the
/// Response Authenticator and the attribute's value zeroed. Constant-time comparison.
pub(crate) fn has_valid_message_authenticator(
    answer: &[u8],
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> bool {
    let Some(attrs) = attributes(answer) else {
        return false;
    };
    let mut found = attrs.iter().filter(|a| a.0 == MESSAGE_AUTHENTICATOR);
    let (Some(&(_, at, value)), None) = (found.next(), found.next()) else {
        return false;
    };
    if value.len() != 16 {
        return false;
    }
    let mut copy = answer.to_vec();
    copy[4..HEADER_LEN].copy_from_slice(request_authenticator);
    copy[at + 2..at + 18].fill(0);
    let want = hmac_md5(secret, &copy);
    want.iter()
        .zip(value)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// Reads an authenticated answer (the transport checked its Response Authenticator and
/// Message-Authenticator) against the request it answers.
pub fn read_answer(
    answer: &[u8],
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> Result<AccessAnswer, AnswerError> {
    let attrs = attributes(answer).ok_or(AnswerError::Attributes)?;
    let mut eap = Vec::new();
    let mut state = None;
    let mut class = Vec::new();
    let mut user_name = None;
    let mut framed_ip = None;
    let (mut framed_pool, mut framed_ipv6_pool) = (None, None);
    let mut session_timeout = None;
    let (mut send, mut recv) = (None, None);
    for &(kind, _, value) in &attrs {
        match kind {
            EAP_MESSAGE => eap.extend_from_slice(value),
            STATE => state = Some(value.to_vec()),
            CLASS => class.push(value.to_vec()),
            USER_NAME => user_name = Some(String::from_utf8_lossy(value).into_owned()),
            FRAMED_IP_ADDRESS if value.len() == 4 => {
                framed_ip = Some(std::net::Ipv4Addr::new(
                    value[0], value[1], value[2], value[3],
                ))
            }
            FRAMED_POOL if !value.is_empty() => {
                framed_pool = Some(String::from_utf8_lossy(value).into_owned())
            }
            FRAMED_IPV6_POOL if !value.is_empty() => {
                framed_ipv6_pool = Some(String::from_utf8_lossy(value).into_owned())
            }
            SESSION_TIMEOUT if value.len() == 4 => {
                session_timeout = Some(u32::from_be_bytes([value[0], value[1], value[2], value[3]]))
            }
            VENDOR_SPECIFIC if value.len() >= 6 => {
                let vendor = u32::from_be_bytes([value[0], value[1], value[2], value[3]]);
                let (vtype, vlen) = (value[4], value[5] as usize);
                if vendor != VENDOR_MICROSOFT || vlen < 2 || vlen != value.len() - 4 {
                    continue;
                }
                let body = &value[6..];
                match vtype {
                    MS_MPPE_SEND_KEY => {
                        send = Some(decrypt_mppe_key(body, request_authenticator, secret)?)
                    }
                    MS_MPPE_RECV_KEY => {
                        recv = Some(decrypt_mppe_key(body, request_authenticator, secret)?)
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    match answer[0] {
        ACCESS_CHALLENGE if eap.is_empty() => Err(AnswerError::ChallengeWithoutEap),
        ACCESS_CHALLENGE => Ok(AccessAnswer::Challenge {
            eap_message: eap,
            state,
        }),
        ACCESS_REJECT => Ok(AccessAnswer::Reject { eap_message: eap }),
        ACCESS_ACCEPT => {
            let msk = match (recv, send) {
                (Some(r), Some(s)) => {
                    let mut m = Zeroizing::new(Vec::with_capacity(r.len() + s.len()));
                    m.extend_from_slice(&r);
                    m.extend_from_slice(&s);
                    Some(m)
                }
                _ => None,
            };
            Ok(AccessAnswer::Accept(Box::new(Accepted {
                eap_message: eap,
                msk,
                class,
                user_name,
                framed_ip,
                framed_pools: framed_pool.into_iter().chain(framed_ipv6_pool).collect(),
                session_timeout,
            })))
        }
        other => Err(AnswerError::Code(other)),
    }
}

/// Decrypts an MS-MPPE-Send-Key or -Recv-Key value (Salt, then the String; RFC 2548
/// 2.4.2): b(1) = MD5(S + R + A), b(i) = MD5(S + c(i-1)), p(i) = c(i) xor b(i); the
/// plaintext is a key length octet, the key, and padding.
pub fn decrypt_mppe_key(
    value: &[u8],
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> Result<Zeroizing<Vec<u8>>, AnswerError> {
    if value.len() < 2 + 16 {
        return Err(AnswerError::BadMppeKey);
    }
    let (salt, c) = value.split_at(2);
    // The salt's high bit is always set (2.4.2); the String is a multiple of 16 octets.
    if salt[0] & 0x80 == 0 || c.len() % 16 != 0 {
        return Err(AnswerError::BadMppeKey);
    }
    let mut p = Zeroizing::new(Vec::with_capacity(c.len()));
    let mut prev: &[u8] = &[];
    for (i, block) in c.chunks(16).enumerate() {
        let mut md5 = Md5::new();
        md5.update(secret);
        if i == 0 {
            md5.update(request_authenticator);
            md5.update(salt);
        } else {
            md5.update(prev);
        }
        let b: [u8; 16] = md5.finalize().into();
        p.extend(block.iter().zip(b).map(|(c, b)| c ^ b));
        prev = block;
    }
    let key_len = p[0] as usize;
    if key_len + 1 > p.len() {
        return Err(AnswerError::BadMppeKey);
    }
    Ok(Zeroizing::new(p[1..1 + key_len].to_vec()))
}

/// Encrypts an MS-MPPE key as a server does (RFC 2548 2.4.2): for the tests' servers.
#[doc(hidden)]
pub fn encrypt_mppe_key(
    key: &[u8],
    salt: [u8; 2],
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> Vec<u8> {
    let mut p = vec![key.len() as u8];
    p.extend_from_slice(key);
    while p.len() % 16 != 0 {
        p.push(0);
    }
    let mut out = salt.to_vec();
    for (i, block) in p.chunks(16).enumerate() {
        let mut md5 = Md5::new();
        md5.update(secret);
        if i == 0 {
            md5.update(request_authenticator);
            md5.update(salt);
        } else {
            md5.update(&out[out.len() - 16..]);
        }
        let b: [u8; 16] = md5.finalize().into();
        let c: Vec<u8> = block.iter().zip(b).map(|(p, b)| p ^ b).collect();
        out.extend_from_slice(&c);
    }
    out
}

/// Builds a server's answer to `request` (code, attributes as `(type, value)`), with a
/// Message-Authenticator unless `with_ma` is false, and the Response Authenticator: for the
/// tests' servers, and a model of what a RADIUS server does (RFC 2865 3, RFC 3579 3.2).
#[doc(hidden)]
pub fn build_answer(
    code: u8,
    request: &[u8],
    attrs: &[(u8, Vec<u8>)],
    secret: &[u8],
    with_ma: bool,
) -> Vec<u8> {
    let mut w = Writer { out: Vec::new() };
    w.out.extend_from_slice(&[code, request[1], 0, 0]);
    w.out.extend_from_slice(&request[4..HEADER_LEN]);
    for (k, v) in attrs {
        w.attr(*k, v);
    }
    let ma_at = w.out.len();
    if with_ma {
        w.attr(MESSAGE_AUTHENTICATOR, &[0u8; 16]);
    }
    let len = w.out.len();
    w.out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    if with_ma {
        // Over the packet with the Request Authenticator in place (RFC 3579 3.2).
        let mac = hmac_md5(secret, &w.out);
        w.out[ma_at + 2..ma_at + 18].copy_from_slice(&mac);
    }
    let mut md5 = Md5::new();
    md5.update(&w.out);
    md5.update(secret);
    let ra: [u8; 16] = md5.finalize().into();
    w.out[4..HEADER_LEN].copy_from_slice(&ra);
    w.out
}

/// Attribute numbers a test server needs.
#[doc(hidden)]
pub mod attr {
    pub const EAP_MESSAGE: u8 = super::EAP_MESSAGE;
    pub const STATE: u8 = super::STATE;
    pub const CLASS: u8 = super::CLASS;
    pub const USER_NAME: u8 = super::USER_NAME;
    pub const FRAMED_POOL: u8 = super::FRAMED_POOL;
    pub const FRAMED_IPV6_POOL: u8 = super::FRAMED_IPV6_POOL;
    pub const SESSION_TIMEOUT: u8 = super::SESSION_TIMEOUT;
    pub const VENDOR_SPECIFIC: u8 = super::VENDOR_SPECIFIC;
    pub const MESSAGE_AUTHENTICATOR: u8 = super::MESSAGE_AUTHENTICATOR;
    pub const ACCESS_ACCEPT: u8 = super::ACCESS_ACCEPT;
    pub const ACCESS_REJECT: u8 = super::ACCESS_REJECT;
    pub const ACCESS_CHALLENGE: u8 = super::ACCESS_CHALLENGE;

    /// A Microsoft VSA carrying an encrypted MPPE key.
    pub fn mppe(vendor_type: u8, encrypted: &[u8]) -> Vec<u8> {
        let mut v = super::VENDOR_MICROSOFT.to_be_bytes().to_vec();
        v.push(vendor_type);
        v.push((encrypted.len() + 2) as u8);
        v.extend_from_slice(encrypted);
        v
    }
    pub const MS_MPPE_SEND_KEY: u8 = super::MS_MPPE_SEND_KEY;
    pub const MS_MPPE_RECV_KEY: u8 = super::MS_MPPE_RECV_KEY;
}

/// Every attribute's `(type, value)` of a packet cut to its Length: for tests.
#[doc(hidden)]
pub fn attribute_list(packet: &[u8]) -> Option<Vec<(u8, Vec<u8>)>> {
    Some(
        attributes(packet)?
            .into_iter()
            .map(|(k, _, v)| (k, v.to_vec()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"testing123";

    fn request() -> AccessRequest {
        AccessRequest {
            user_name: "joe@cclient".into(),
            eap_message: vec![2, 1, 0, 16, 1]
                .into_iter()
                .chain(b"joe@cclient".iter().copied())
                .collect(),
            state: None,
            nas_ip: Some("192.0.2.1".parse().unwrap()),
            nas_identifier: Some("vpnd".into()),
            nas_port: Some(7),
            called_station_id: Some("192.0.2.1[4500]".into()),
            calling_station_id: Some("198.51.100.2[4500]".into()),
        }
    }

    #[test]
    fn hmac_md5_matches_rfc2104_vector() {
        // RFC 2104 appendix: key 0x0b * 16, "Hi There".
        assert_eq!(
            hmac_md5(&[0x0b; 16], b"Hi There"),
            [
                0x92, 0x94, 0x72, 0x7a, 0x36, 0x38, 0xbb, 0x1c, 0x13, 0xf4, 0x8e, 0xf8, 0x15, 0x8b,
                0xfc, 0x9d
            ]
        );
    }

    #[test]
    fn access_request_carries_a_valid_message_authenticator() {
        let auth = [7u8; 16];
        let bytes = request().encode(9, &auth, SECRET).unwrap();
        assert_eq!(bytes[0], ACCESS_REQUEST);
        assert_eq!(bytes[1], 9);
        assert_eq!(
            u16::from_be_bytes([bytes[2], bytes[3]]) as usize,
            bytes.len()
        );
        // For a request, the HMAC covers the packet as sent (its own authenticator in place).
        assert!(has_valid_message_authenticator(&bytes, &auth, SECRET));
        assert!(!has_valid_message_authenticator(&bytes, &auth, b"other"));
        let attrs = attribute_list(&bytes).unwrap();
        let get = |k| attrs.iter().find(|a| a.0 == k).map(|a| a.1.clone());
        assert_eq!(get(USER_NAME).unwrap(), b"joe@cclient");
        assert_eq!(get(NAS_PORT_TYPE).unwrap(), 5u32.to_be_bytes());
        assert_eq!(get(SERVICE_TYPE).unwrap(), 2u32.to_be_bytes());
        assert_eq!(get(NAS_IP_ADDRESS).unwrap(), [192, 0, 2, 1]);
        assert_eq!(get(CALLING_STATION_ID).unwrap(), b"198.51.100.2[4500]");
        assert_eq!(get(EAP_MESSAGE).unwrap(), request().eap_message);
        // The radius crate decodes it too (independent framing check).
        radius::core::packet::Packet::decode(&bytes, SECRET).unwrap();
    }

    #[test]
    fn long_eap_message_is_split_into_253_octet_attributes_and_state_echoed() {
        let mut r = request();
        r.eap_message = (0..1000u32).map(|i| i as u8).collect();
        r.state = Some(b"state-1".to_vec());
        let bytes = r.encode(1, &[1; 16], SECRET).unwrap();
        let attrs = attribute_list(&bytes).unwrap();
        let eap: Vec<&(u8, Vec<u8>)> = attrs.iter().filter(|a| a.0 == EAP_MESSAGE).collect();
        assert_eq!(
            eap.iter().map(|a| a.1.len()).collect::<Vec<_>>(),
            [253, 253, 253, 241]
        );
        let joined: Vec<u8> = eap.iter().flat_map(|a| a.1.clone()).collect();
        assert_eq!(joined, r.eap_message);
        assert!(attrs.iter().any(|a| a.0 == STATE && a.1 == b"state-1"));
        // Message-Authenticator is there, once.
        assert_eq!(
            attrs
                .iter()
                .filter(|a| a.0 == MESSAGE_AUTHENTICATOR)
                .count(),
            1
        );
        let mut huge = request();
        huge.eap_message = vec![0; 5000];
        assert!(matches!(
            huge.encode(1, &[1; 16], SECRET),
            Err(RequestError::TooLong(5000))
        ));
    }

    #[test]
    fn mppe_keys_round_trip_and_make_the_msk_recv_then_send() {
        let ra = [0x42u8; 16];
        let recv: Vec<u8> = (0..32).collect();
        let send: Vec<u8> = (100..132).collect();
        let req = request().encode(3, &ra, SECRET).unwrap();
        let answer = build_answer(
            ACCESS_ACCEPT,
            &req,
            &[
                (EAP_MESSAGE, vec![3, 5, 0, 4]),
                (CLASS, b"cclient-class".to_vec()),
                (
                    VENDOR_SPECIFIC,
                    attr::mppe(
                        MS_MPPE_SEND_KEY,
                        &encrypt_mppe_key(&send, [0x80, 0x01], &ra, SECRET),
                    ),
                ),
                (
                    VENDOR_SPECIFIC,
                    attr::mppe(
                        MS_MPPE_RECV_KEY,
                        &encrypt_mppe_key(&recv, [0x80, 0x02], &ra, SECRET),
                    ),
                ),
            ],
            SECRET,
            true,
        );
        assert!(has_valid_message_authenticator(&answer, &ra, SECRET));
        let AccessAnswer::Accept(a) = read_answer(&answer, &ra, SECRET).unwrap() else {
            panic!("not an Accept");
        };
        let mut want = recv.clone();
        want.extend_from_slice(&send);
        assert_eq!(a.msk.as_deref().map(|m| m.as_slice()), Some(&want[..]));
        assert_eq!(a.class, vec![b"cclient-class".to_vec()]);
        assert_eq!(a.eap_message, [3, 5, 0, 4]);
    }

    /// RFC 2548 2.4.2's construction checked by hand for one block: the first 16 octets of
    /// the String are the plaintext xor MD5(secret + Request Authenticator + salt).
    #[test]
    fn mppe_first_block_is_the_rfc2548_construction() {
        let ra = [0x11u8; 16];
        let key = [0xAAu8; 15];
        let enc = encrypt_mppe_key(&key, [0x85, 0x99], &ra, SECRET);
        assert_eq!(enc.len(), 2 + 16);
        let mut md5 = Md5::new();
        md5.update(SECRET);
        md5.update(ra);
        md5.update([0x85, 0x99]);
        let b: [u8; 16] = md5.finalize().into();
        assert_eq!(enc[2] ^ b[0], 15, "length octet first");
        assert!(enc[3..18].iter().zip(&b[1..]).all(|(c, b)| c ^ b == 0xAA));
        assert_eq!(&*decrypt_mppe_key(&enc, &ra, SECRET).unwrap(), &key);
        // A salt without its high bit, a String not a multiple of 16, a key length past the
        // plaintext: refused.
        let mut bad = enc.clone();
        bad[0] = 0x05;
        assert_eq!(
            decrypt_mppe_key(&bad, &ra, SECRET),
            Err(AnswerError::BadMppeKey)
        );
        assert_eq!(
            decrypt_mppe_key(&enc[..17], &ra, SECRET),
            Err(AnswerError::BadMppeKey)
        );
        let mut long = enc.clone();
        long[2] ^= 15 ^ 200; // length octet now 200
        assert_eq!(
            decrypt_mppe_key(&long, &ra, SECRET),
            Err(AnswerError::BadMppeKey)
        );
    }

    #[test]
    fn answers_without_or_with_a_wrong_message_authenticator_are_not_valid() {
        let ra = [5u8; 16];
        let req = request().encode(3, &ra, SECRET).unwrap();
        let attrs = [(EAP_MESSAGE, vec![1, 2, 0, 4])];
        let good = build_answer(ACCESS_CHALLENGE, &req, &attrs, SECRET, true);
        assert!(has_valid_message_authenticator(&good, &ra, SECRET));
        let missing = build_answer(ACCESS_CHALLENGE, &req, &attrs, SECRET, false);
        assert!(!has_valid_message_authenticator(&missing, &ra, SECRET));
        let mut tampered = good.clone();
        let n = tampered.len();
        tampered[n - 1] ^= 1;
        assert!(!has_valid_message_authenticator(&tampered, &ra, SECRET));
        assert!(!has_valid_message_authenticator(&good, &[6u8; 16], SECRET));
        // Two Message-Authenticators: refused, not "one of them is fine".
        let mut two = build_answer(
            ACCESS_CHALLENGE,
            &req,
            &[
                (EAP_MESSAGE, vec![1, 2, 0, 4]),
                (MESSAGE_AUTHENTICATOR, vec![0; 16]),
            ],
            SECRET,
            true,
        );
        assert!(!has_valid_message_authenticator(&two, &ra, SECRET));
        two.truncate(HEADER_LEN + 1);
        assert!(!has_valid_message_authenticator(&two, &ra, SECRET));
        assert_eq!(
            read_answer(
                &build_answer(ACCESS_CHALLENGE, &req, &[], SECRET, true),
                &ra,
                SECRET
            ),
            Err(AnswerError::ChallengeWithoutEap)
        );
    }
}
