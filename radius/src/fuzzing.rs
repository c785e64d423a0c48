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
    r.extend(std::iter::repeat(0).take(padding));
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
