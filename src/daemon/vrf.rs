//! Front-door VRFs (IOS `fvrf`, issue 13): a peer whose uplink is in a Linux VRF talks IKE
//! through sockets bound to that VRF device (SO_BINDTODEVICE: without it a socket receives
//! nothing from a VRF's interfaces while `net.ipv4.udp_l3mdev_accept` is 0, the default,
//! and its replies are routed in the main table), and its XFRM interface has the VRF as its
//! link, so the kernel routes the ESP packets in the VRF's table (the outer route lookup of
//! an XFRM interface's bundle uses the L3 master of its link).
//!
//! Addresses to VRFs through sysfs (`/sys/class/net/IF/master`): the VRFs that matter are
//! the configured ones, so a name is enough and no netlink dump is needed per datagram.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use nix::sys::socket::{setsockopt, sockopt};

/// The device `ifname` is enslaved to (a VRF, a bridge, a bond), if any.
pub fn master_of(ifname: &str) -> Option<String> {
    let link = std::fs::read_link(format!("/sys/class/net/{ifname}/master")).ok()?;
    Some(link.file_name()?.to_string_lossy().into_owned())
}

/// The VRF among `vrfs` that holds local address `ip`, if any.
pub fn of_address<'a>(ip: IpAddr, mut vrfs: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let master = master_of(&super::iface::interface_of(ip)?)?;
    vrfs.find(|v| *v == master)
}

/// Binds `s` to device `dev` (SO_BINDTODEVICE).
pub fn bind_to_device(s: &impl std::os::fd::AsFd, dev: &str) -> std::io::Result<()> {
    setsockopt(s, sockopt::BindToDevice, &OsString::from(dev)).map_err(|e| {
        std::io::Error::new(
            std::io::Error::from(e).kind(),
            format!("binding to device {dev}: {e}"),
        )
    })
}

/// The local address the kernel would use towards `remote`, in VRF `vrf` or the main
/// table (a connected UDP socket's source address: the route lookup, nothing is sent).
pub fn source_towards(remote: IpAddr, vrf: Option<&str>) -> Option<IpAddr> {
    let any: SocketAddr = if remote.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = std::net::UdpSocket::bind(any).ok()?;
    if let Some(v) = vrf {
        bind_to_device(&s, v).ok()?;
    }
    s.connect((remote, 9)).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_no_master_and_a_missing_vrf_is_an_error() {
        assert_eq!(master_of("lo"), None);
        assert_eq!(
            of_address(Ipv4Addr::LOCALHOST.into(), ["lo"].into_iter()),
            None
        );
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let e = bind_to_device(&s, "vpnd-no-such-vrf").unwrap_err();
        assert!(e.to_string().contains("vpnd-no-such-vrf"), "{e}");
        assert_eq!(
            source_towards(Ipv4Addr::LOCALHOST.into(), None),
            Some(Ipv4Addr::LOCALHOST.into())
        );
        assert_eq!(
            source_towards(Ipv4Addr::LOCALHOST.into(), Some("vpnd-no-such-vrf")),
            None
        );
    }
}
