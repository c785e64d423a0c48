//! The name of the interface that holds a local address: IOS's `Interface:` and the
//! accounting records' cisco-nas-port (IOS sends the interface the crypto map sits on,
//! e.g. "FastEthernet0/0.1").
//!
//! Through nix's getifaddrs(3) and if_nametoindex(3).

use std::net::IpAddr;

/// The interface with address `ip`, if any.
pub fn interface_of(ip: IpAddr) -> Option<String> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    for a in addrs {
        let Some(s) = a.address else { continue };
        let found = if let Some(v4) = s.as_sockaddr_in() {
            IpAddr::V4(v4.ip())
        } else if let Some(v6) = s.as_sockaddr_in6() {
            IpAddr::V6(v6.ip())
        } else {
            continue;
        };
        if found == ip {
            return Some(a.interface_name);
        }
    }
    None
}

/// The index of the interface the kernel would send to `remote` from (its route's source
/// address's interface): the underlying link of an XFRM interface.
pub fn index_towards(remote: IpAddr) -> Option<u32> {
    let name = interface_of(super::vrf::source_towards(remote, None)?)?;
    nix::net::if_::if_nametoindex(name.as_str()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_on_lo_and_a_foreign_address_nowhere() {
        assert_eq!(
            interface_of("127.0.0.1".parse().unwrap()).as_deref(),
            Some("lo")
        );
        assert_eq!(interface_of("203.0.113.254".parse().unwrap()), None);
    }
}
