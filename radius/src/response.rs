//! What we accept from an accounting server: the checks on a datagram before it may complete a
//! request (RFC 2866 §3, RFC 2865 §3).
//!
//! Written by hand: the `radius` crate's `Packet::is_authentic_response` hashes the whole
//! datagram, including octets past the Length field that RFC 2865 §3 says are padding to
//! ignore, and its client checks nothing at all (it accepted a forged response in our tests).

use md5::{Digest, Md5};
use radius::core::code::Code;
use radius::core::packet::Packet;

pub(crate) const HEADER_LEN: usize = 20;
pub(crate) const MAX_LEN: usize = 4096;

/// Why a datagram was not taken as a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Malformed {
    Short,
    Code(u8),
    Length(usize),
    Attributes,
}

/// A well-formed Accounting-Response, not yet authenticated.
#[derive(Debug)]
pub(crate) struct Candidate<'a> {
    pub identifier: u8,
    /// The datagram cut to its Length field.
    pub bytes: &'a [u8],
}

/// Code, length and attribute framing. Octets past Length are padding and dropped.
pub(crate) fn parse<'a>(datagram: &'a [u8], secret: &[u8]) -> Result<Candidate<'a>, Malformed> {
    if datagram.len() < HEADER_LEN {
        return Err(Malformed::Short);
    }
    // Accounting-Response, or Access-Accept/-Reject/-Challenge: the server task checks the
    // code against the request it answers.
    if ![Code::AccountingResponse as u8, 2, 3, 11].contains(&datagram[0]) {
        return Err(Malformed::Code(datagram[0]));
    }
    let len = u16::from_be_bytes([datagram[2], datagram[3]]) as usize;
    if !(HEADER_LEN..=MAX_LEN).contains(&len) || len > datagram.len() {
        return Err(Malformed::Length(len));
    }
    let bytes = &datagram[..len];
    // The crate's decoder checks every attribute's length against the packet's.
    Packet::decode(bytes, secret).map_err(|_| Malformed::Attributes)?;
    Ok(Candidate {
        identifier: bytes[1],
        bytes,
    })
}

/// MD5(Code + Identifier + Length + Request Authenticator + Attributes + Secret).
pub(crate) fn response_authenticator(
    response: &[u8],
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> [u8; 16] {
    let mut md5 = Md5::new();
    md5.update(&response[..4]);
    md5.update(request_authenticator);
    md5.update(&response[HEADER_LEN..]);
    md5.update(secret);
    md5.finalize().into()
}

/// Whether `candidate` answers the request whose authenticator was `request_authenticator`.
/// Compared in constant time: cheap, and nothing to learn from timing.
pub(crate) fn is_authentic(
    candidate: &Candidate<'_>,
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> bool {
    let expected = response_authenticator(candidate.bytes, request_authenticator, secret);
    let got = &candidate.bytes[4..HEADER_LEN];
    expected
        .iter()
        .zip(got)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}
