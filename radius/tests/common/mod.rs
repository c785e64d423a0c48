//! Test helpers written from RFC 2865/2866 directly (md-5 and byte slicing), so that they
//! check our encoder instead of repeating it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use md5::{Digest, Md5};
use tokio::net::UdpSocket;

pub fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// RFC 2866 §3: MD5(Code + Identifier + Length + 16 zero octets + Attributes + Secret).
pub fn request_authenticator(packet: &[u8], secret: &[u8]) -> [u8; 16] {
    md5(&[&packet[..4], &[0u8; 16], &packet[20..], secret])
}

/// An Accounting-Response to `request` with `identifier`, signed with `secret`.
pub fn response_with(request: &[u8], identifier: u8, code: u8, secret: &[u8]) -> Vec<u8> {
    let mut resp = vec![code, identifier, 0, 20];
    let auth = md5(&[&resp[..4], &request[4..20], secret]);
    resp.extend_from_slice(&auth);
    resp
}

pub fn response(request: &[u8], secret: &[u8]) -> Vec<u8> {
    response_with(request, request[1], 5, secret)
}

/// Attributes as (type, value), parsed by hand.
pub fn attributes(packet: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let len = u16::from_be_bytes([packet[2], packet[3]]) as usize;
    assert_eq!(len, packet.len(), "Length field");
    let mut out = Vec::new();
    let mut i = 20;
    while i < len {
        let (t, l) = (packet[i], packet[i + 1] as usize);
        assert!(l >= 2 && i + l <= len, "attribute framing at {i}");
        out.push((t, packet[i + 2..i + l].to_vec()));
        i += l;
    }
    out
}

pub fn u32_attr(packet: &[u8], typ: u8) -> Option<u32> {
    attributes(packet)
        .into_iter()
        .find(|(t, _)| *t == typ)
        .map(|(_, v)| u32::from_be_bytes(v.try_into().expect("4 octets")))
}

pub fn session_id(packet: &[u8]) -> String {
    let v = attributes(packet)
        .into_iter()
        .find(|(t, _)| *t == 44)
        .expect("Acct-Session-Id")
        .1;
    String::from_utf8(v).unwrap()
}

pub fn delay(packet: &[u8]) -> u32 {
    u32_attr(packet, 41).expect("Acct-Delay-Time")
}

/// A fake accounting server on 127.0.0.1.
pub struct Fake {
    pub sock: UdpSocket,
    pub secret: Vec<u8>,
}

impl Fake {
    pub async fn bind(secret: &[u8]) -> Fake {
        Fake {
            sock: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            secret: secret.to_vec(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// The next request (checked: Accounting-Request with a valid Request Authenticator).
    pub async fn recv(&self) -> (Vec<u8>, SocketAddr) {
        let mut buf = vec![0u8; 4096];
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), self.sock.recv_from(&mut buf))
            .await
            .expect("a request within 5 s")
            .unwrap();
        buf.truncate(n);
        assert_eq!(buf[0], 4, "Accounting-Request");
        assert_eq!(
            &buf[4..20],
            &request_authenticator(&buf, &self.secret),
            "Request Authenticator"
        );
        (buf, from)
    }

    /// Nothing arrives within `wait`.
    pub async fn quiet(&self, wait: Duration) -> bool {
        let mut buf = vec![0u8; 4096];
        tokio::time::timeout(wait, self.sock.recv_from(&mut buf))
            .await
            .is_err()
    }

    pub async fn send(&self, bytes: &[u8], to: SocketAddr) {
        self.sock.send_to(bytes, to).await.unwrap();
    }

    pub async fn answer(&self, request: &[u8], to: SocketAddr) {
        self.send(&response(request, &self.secret), to).await;
    }
}
