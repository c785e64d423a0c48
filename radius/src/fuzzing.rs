//! Fuzz target for what we accept from an accounting server (`response.rs`), not an API
//! (hidden from the docs). Shared by vpnd's bounded run in `cargo test`
//! (`tests/fuzz_targets.rs` at the workspace root) and cargo-fuzz
//! (`fuzz/fuzz_targets/radius_response.rs`).
//!
//! `response` runs a datagram through the server task's checks in order (`parse`: code,
//! Length, attribute framing by the `radius` crate; then `is_authentic` against a real
//! Accounting-Request's authenticator). Invariants: a candidate is exactly the datagram cut
//! to its Length field; it is authentic exactly when an independent MD5 over RFC 2866 §3's
//! fields says so (octets past Length, padding, never count).

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime};

use md5::{Digest, Md5};

use crate::record::{AccountingRecord, AcctStatus};
use crate::response::{is_authentic, parse, HEADER_LEN, MAX_LEN};

pub const SECRET: &[u8] = b"fuzz-shared-secret";
const IDENTIFIER: u8 = 42;

/// A real Accounting-Request (a Start with IOS's attributes) as the client sends it.
pub fn request() -> Vec<u8> {
    let mut r = AccountingRecord::new(
        AcctStatus::Start,
        "0000002A",
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    );
    r.user_name = Some("peer1.lab.example".into());
    r.nas_ip = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
    r.nas_port = Some(500);
    r.cisco_avpairs = vec![
        "isakmp-initator-ip=192.0.2.2".into(),
        "isakmp-phase1-id=peer1.lab.example".into(),
    ];
    r.encode(IDENTIFIER, SECRET, 0)
}

fn request_authenticator() -> [u8; 16] {
    let req = request();
    req[4..20].try_into().expect("a request has a header")
}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// One datagram from the server's address.
pub fn response(data: &[u8]) {
    thread_local! {
        static AUTH: [u8; 16] = request_authenticator();
    }
    let auth = AUTH.with(|a| *a);
    let Ok(c) = parse(data, SECRET) else {
        return;
    };
    let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
    assert!((HEADER_LEN..=MAX_LEN).contains(&len));
    assert_eq!(
        c.bytes,
        &data[..len],
        "candidate is not the datagram cut to Length"
    );
    assert_eq!(c.identifier, data[1]);
    assert!(
        [2, 3, 5, 11].contains(&data[0]),
        "only Accounting-Response and Access answers are candidates"
    );
    let expected = md5(&[&data[..4], &auth, &data[HEADER_LEN..len], SECRET]);
    assert_eq!(
        is_authentic(&c, &auth, SECRET),
        expected[..] == data[4..HEADER_LEN],
        "Response Authenticator check disagrees with RFC 2866 §3"
    );
}

fn signed(code: u8, attrs: &[u8], auth: &[u8; 16], padding: usize) -> Vec<u8> {
    let len = (HEADER_LEN + attrs.len()) as u16;
    let mut r = vec![code, IDENTIFIER];
    r.extend_from_slice(&len.to_be_bytes());
    r.extend_from_slice(&md5(&[&r[..4], auth, attrs, SECRET]));
    r.extend_from_slice(attrs);
    r.extend(std::iter::repeat_n(0, padding));
    r
}

/// Accounting-Responses with a correct authenticator: bare, with Proxy-State and a
/// Cisco VSA, with padding past Length; one signed with the wrong secret; the request.
pub fn seed_responses() -> Vec<Vec<u8>> {
    let auth = request_authenticator();
    let mut attrs = vec![33, 6, 1, 2, 3, 4]; // Proxy-State
    attrs.extend_from_slice(&[26, 12, 0, 0, 0, 9, 1, 6, b'a', b'=', b'b', b'c']); // Cisco-AVPair
    attrs.extend_from_slice(&[18, 7, b'h', b'e', b'l', b'l', b'o']); // Reply-Message
    let mut forged = signed(5, &[], &auth, 0);
    forged[4] ^= 1;
    vec![
        signed(5, &[], &auth, 0),
        signed(5, &attrs, &auth, 0),
        signed(5, &attrs, &auth, 13),
        forged,
        request(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_authentic_responses() {
        let auth = request_authenticator();
        let seeds = seed_responses();
        for s in &seeds[..3] {
            let c = parse(s, SECRET).expect("well-formed");
            assert!(is_authentic(&c, &auth, SECRET));
            response(s);
        }
        let c = parse(&seeds[3], SECRET).unwrap();
        assert!(!is_authentic(&c, &auth, SECRET));
        assert!(parse(&seeds[4], SECRET).is_err());
    }
}

/// An Access-Request for EAP as the relay sends it (fixed authenticator, for the target).
pub fn access_request() -> (Vec<u8>, [u8; 16]) {
    let auth = [0x3c; 16];
    let req = crate::access::AccessRequest {
        user_name: "joe@cclient".into(),
        eap_message: b"\x02\x01\x00\x10\x01joe@cclient".to_vec(),
        state: Some(b"fuzz-state".to_vec()),
        nas_ip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
        nas_identifier: Some("vpnd".into()),
        nas_port: Some(1),
        called_station_id: None,
        calling_station_id: None,
    };
    (req.encode(7, &auth, SECRET).expect("fits"), auth)
}

/// One answer to an Access-Request, through the server task's checks and then the reader
/// (`access.rs`). Invariants: a candidate with a valid Message-Authenticator has exactly one,
/// and it equals an independent HMAC-MD5 over RFC 3579 3.2's octets; the reader never
/// panics, and an MPPE key it returns is never longer than its attribute.
pub fn access_answer(data: &[u8]) {
    use hmac::{Hmac, Mac};
    thread_local! {
        static REQ: (Vec<u8>, [u8; 16]) = access_request();
    }
    let (_, auth) = REQ.with(|r| r.clone());
    let Ok(c) = parse(data, SECRET) else {
        return;
    };
    let valid = crate::access::has_valid_message_authenticator(c.bytes, &auth, SECRET);
    if valid {
        let attrs = crate::access::attribute_list(c.bytes).expect("framed");
        let mas: Vec<&(u8, Vec<u8>)> = attrs.iter().filter(|a| a.0 == 80).collect();
        assert_eq!(
            mas.len(),
            1,
            "valid with {} Message-Authenticators",
            mas.len()
        );
        // Recompute: the packet with the Request Authenticator in place and MA zeroed.
        let mut copy = c.bytes.to_vec();
        copy[4..HEADER_LEN].copy_from_slice(&auth);
        let mut at = HEADER_LEN;
        while at < copy.len() {
            let len = copy[at + 1] as usize;
            if copy[at] == 80 {
                copy[at + 2..at + len].fill(0);
            }
            at += len;
        }
        let mut m = <Hmac<Md5> as Mac>::new_from_slice(SECRET).expect("any key");
        m.update(&copy);
        let want: [u8; 16] = m.finalize().into_bytes().into();
        assert_eq!(
            mas[0].1, want,
            "Message-Authenticator check disagrees with RFC 3579"
        );
    }
    if let Ok(crate::access::AccessAnswer::Accept(a)) =
        crate::access::read_answer(c.bytes, &auth, SECRET)
    {
        if let Some(msk) = &a.msk {
            assert!(msk.len() <= 2 * 253, "MSK longer than two attributes");
        }
    }
}

/// Access answers to [`access_request`]: a Challenge, an Accept with MPPE keys and a Class,
/// a Reject, one without Message-Authenticator, the request itself.
pub fn seed_access_answers() -> Vec<Vec<u8>> {
    use crate::access::{attr, build_answer, encrypt_mppe_key};
    let (req, auth) = access_request();
    let eap = (attr::EAP_MESSAGE, vec![1, 2, 0, 6, 26, 1]);
    vec![
        build_answer(
            attr::ACCESS_CHALLENGE,
            &req,
            &[eap.clone(), (attr::STATE, b"st".to_vec())],
            SECRET,
            true,
        ),
        build_answer(
            attr::ACCESS_ACCEPT,
            &req,
            &[
                (attr::EAP_MESSAGE, vec![3, 2, 0, 4]),
                (attr::CLASS, b"gold".to_vec()),
                (
                    attr::VENDOR_SPECIFIC,
                    attr::mppe(
                        attr::MS_MPPE_RECV_KEY,
                        &encrypt_mppe_key(&[1; 32], [0x80, 1], &auth, SECRET),
                    ),
                ),
                (
                    attr::VENDOR_SPECIFIC,
                    attr::mppe(
                        attr::MS_MPPE_SEND_KEY,
                        &encrypt_mppe_key(&[2; 32], [0x80, 2], &auth, SECRET),
                    ),
                ),
            ],
            SECRET,
            true,
        ),
        build_answer(
            attr::ACCESS_REJECT,
            &req,
            &[(attr::EAP_MESSAGE, vec![4, 2, 0, 4])],
            SECRET,
            true,
        ),
        build_answer(attr::ACCESS_ACCEPT, &req, &[eap], SECRET, false),
        req,
    ]
}

#[cfg(test)]
mod access_tests {
    use super::*;

    #[test]
    fn access_seeds_pass_the_checks() {
        let (_, auth) = access_request();
        let seeds = seed_access_answers();
        for s in &seeds[..3] {
            let c = parse(s, SECRET).expect("well-formed");
            assert!(crate::access::has_valid_message_authenticator(
                c.bytes, &auth, SECRET
            ));
            access_answer(s);
        }
        let c = parse(&seeds[3], SECRET).unwrap();
        assert!(!crate::access::has_valid_message_authenticator(
            c.bytes, &auth, SECRET
        ));
    }
}
