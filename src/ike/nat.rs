//! NAT traversal (RFC 7296 2.23, RFC 3948): the NAT_DETECTION_*_IP hashes of IKE_SA_INIT,
//! what they reveal, and the UDP encapsulation it implies for the IKE SA and its children.
//!
//! Each NAT-D notify carries SHA-1(SPIi | SPIr | IP | port) of the message's own header SPIs
//! (SPIr is zero in the request) and of the address the sender used (SOURCE) or sent to
//! (DESTINATION). A receiver that computes a different SOURCE hash from the datagram's real
//! source knows a NAT sits in front of the sender; a different DESTINATION hash, in front
//! of itself.

use std::net::{IpAddr, SocketAddr};

use aws_lc_rs::digest;

use super::codec::{NotifyPayload, NotifyType, Payload, PayloadList};

/// SHA-1(SPIi | SPIr | IP | port) (RFC 7296 2.23): IPv4 as 4 octets, IPv6 as 16, the port
/// in network order.
pub fn nat_hash(spi_i: u64, spi_r: u64, addr: SocketAddr) -> [u8; 20] {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(&spi_i.to_be_bytes());
    ctx.update(&spi_r.to_be_bytes());
    match addr.ip() {
        IpAddr::V4(a) => ctx.update(&a.octets()),
        IpAddr::V6(a) => ctx.update(&a.octets()),
    }
    ctx.update(&addr.port().to_be_bytes());
    let mut out = [0; 20];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// What the NAT-D exchange of an IKE SA found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatState {
    /// Both ends sent NAT-D: NAT traversal is possible at all.
    pub supported: bool,
    /// A NAT is in front of us (the peer saw another address than ours): we keep the
    /// mapping alive (RFC 3948 2.3).
    pub local: bool,
    /// A NAT is in front of the peer (or it fakes one, strongSwan's `encap = yes`): we
    /// follow its address (RFC 7296 2.23).
    pub remote: bool,
    /// We were told to encapsulate anyway (`encap: true`).
    pub forced: bool,
}

impl NatState {
    /// Whether the IKE SA runs on the NAT-T port and its children are UDP-encapsulated.
    pub fn in_use(&self) -> bool {
        self.supported && (self.local || self.remote || self.forced)
    }
}

/// The UDP ports of ESP-in-UDP (RFC 3948): the IKE SA's current ports, ours and the peer's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UdpEncap {
    pub local_port: u16,
    pub remote_port: u16,
}

/// The two NAT-D notifies of a message with these header SPIs, from `local` to `remote`.
/// `fake`: a SOURCE hash no real address gives (port 0 of the unspecified address), so the
/// peer believes we are behind a NAT and floats as well (forced encapsulation).
pub(crate) fn notifies(
    spi_i: u64,
    spi_r: u64,
    local: SocketAddr,
    remote: SocketAddr,
    fake: bool,
) -> [Payload; 2] {
    let source = if fake {
        let none = match local.ip() {
            IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        };
        SocketAddr::new(none, 0)
    } else {
        local
    };
    [
        Payload::Notify(NotifyPayload::new(
            NotifyType::NAT_DETECTION_SOURCE_IP,
            nat_hash(spi_i, spi_r, source).to_vec(),
        )),
        Payload::Notify(NotifyPayload::new(
            NotifyType::NAT_DETECTION_DESTINATION_IP,
            nat_hash(spi_i, spi_r, remote).to_vec(),
        )),
    ]
}

/// Reads the peer's NAT-D notifies of a message with these header SPIs that arrived from
/// `remote` at `local`. None when the peer sent none (it does not do NAT-T, 2.23). A sender
/// may list several SOURCE hashes (one per address it has): any match means no NAT.
pub(crate) fn detect(
    payloads: &[Payload],
    spi_i: u64,
    spi_r: u64,
    local: SocketAddr,
    remote: SocketAddr,
    forced: bool,
) -> Option<NatState> {
    let hashes = |kind| {
        payloads
            .notifies()
            .filter(move |n| n.kind == kind)
            .map(|n| n.data.as_slice())
            .collect::<Vec<_>>()
    };
    let source = hashes(NotifyType::NAT_DETECTION_SOURCE_IP);
    let dest = hashes(NotifyType::NAT_DETECTION_DESTINATION_IP);
    if source.is_empty() || dest.is_empty() {
        return None;
    }
    let theirs = nat_hash(spi_i, spi_r, remote);
    let ours = nat_hash(spi_i, spi_r, local);
    Some(NatState {
        supported: true,
        local: !dest.iter().any(|h| *h == ours),
        remote: !source.iter().any(|h| *h == theirs),
        forced,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_hash_is_sha1_of_spis_address_and_port() {
        // Known answers computed apart: python3 hashlib.sha1 of
        // 0102030405060708 0000000000000000 c0000201 01f4, and of
        // 0000000000000001 0000000000000002 20010db8000000000000000000000001 1194.
        let h = nat_hash(0x0102030405060708, 0, a("192.0.2.1:500"));
        assert_eq!(hex(&h), KNOWN_V4);
        // IPv6 takes all 16 octets; a different port gives a different hash.
        let h6 = nat_hash(1, 2, a("[2001:db8::1]:4500"));
        assert_eq!(hex(&h6), KNOWN_V6);
        assert_ne!(h, nat_hash(0x0102030405060708, 0, a("192.0.2.1:4500")));
    }

    const KNOWN_V4: &str = "644b4575455bd6fcc1efe2be8162a9218e448e5f";
    const KNOWN_V6: &str = "8682f79c96ab5c8788875b2097ecc527bb43b4b2";

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn no_nat_when_the_addresses_match() {
        let (i, r) = (a("192.0.2.2:500"), a("192.0.2.1:500"));
        let sent = notifies(7, 0, i, r, false);
        let n = detect(&sent, 7, 0, r, i, false).unwrap();
        assert!(n.supported && !n.local && !n.remote && !n.in_use());
    }

    #[test]
    fn a_nat_in_front_of_the_sender_or_the_receiver() {
        // The initiator sent from its private address; the responder sees the public one.
        let (private, public, r) = (a("10.0.0.2:500"), a("203.0.113.9:1024"), a("192.0.2.1:500"));
        let sent = notifies(7, 0, private, r, false);
        let at_responder = detect(&sent, 7, 0, r, public, false).unwrap();
        assert!(at_responder.remote && !at_responder.local && at_responder.in_use());
        // The responder answers to the public address; the initiator sees its own private
        // one as the destination: the NAT is in front of itself.
        let answer = notifies(7, 9, r, public, false);
        let at_initiator = detect(&answer, 7, 9, private, r, false).unwrap();
        assert!(at_initiator.local && !at_initiator.remote);
    }

    #[test]
    fn a_faked_source_looks_like_a_nat_and_no_nat_d_is_none() {
        let (i, r) = (a("192.0.2.2:500"), a("192.0.2.1:500"));
        let sent = notifies(7, 0, i, r, true);
        assert!(detect(&sent, 7, 0, r, i, false).unwrap().remote);
        assert_eq!(detect(&[], 7, 0, r, i, true), None);
        let forced = detect(&notifies(7, 0, i, r, false), 7, 0, r, i, true).unwrap();
        assert!(forced.in_use() && !forced.local && !forced.remote);
    }
}
