//! The IKE sockets: UDP `port` (500) and `nat_t_port` (4500) on each configured address, or
//! on the wildcard of each family. Each gets a per-socket IPsec policy bypass, or a
//! transport-mode child between the gateways would swallow IKE itself.
//!
//! A wildcard socket learns the local address of every datagram from IP_PKTINFO /
//! IPV6_RECVPKTINFO and sends from that address, so a multi-homed gateway answers from the
//! address it was asked at (before: a bind+connect per received datagram to guess it, and a
//! getsockname per send).
//!
//! The NAT-T socket (RFC 3948): IKE on it starts with the four-zero-octet non-ESP marker
//! (2.2), stripped here on receive and added on send, so the engine sees the same IKE
//! messages on either port; a one-octet 0xFF datagram is a NAT keepalive (2.3) and carries
//! nothing. UDP_ENCAP_ESPINUDP hands everything else (ESP in UDP) to the kernel's XFRM stack.
//!
//! nix's recvmsg/sendmsg with typed control messages do the ancillary data; tokio's
//! readiness (`try_io`) drives them.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};

use nix::sys::socket::{
    bind, recvmsg, sendmsg, setsockopt, socket, sockopt, AddressFamily, ControlMessage,
    ControlMessageOwned, MsgFlags, SockFlag, SockType, SockaddrStorage,
};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// RFC 3948 2.2: the non-ESP marker before IKE on the NAT-T port.
const NON_ESP_MARKER: [u8; 4] = [0; 4];
/// RFC 3948 2.3: a NAT keepalive.
const KEEPALIVE: u8 = 0xFF;

/// One received IKE message (marker stripped), with the address it was sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub data: Vec<u8>,
}

pub struct IkeSocket {
    sock: UdpSocket,
    bound: SocketAddr,
    nat_t: bool,
    /// The front-door VRF device it is bound to (SO_BINDTODEVICE), if any.
    vrf: Option<String>,
}

impl IkeSocket {
    /// Binds `addr`; `nat_t`: the NAT-T port (marker, UDP encapsulation in the kernel);
    /// `vrf`: the front-door VRF device it serves (see `super::vrf`); `shared`: the port is
    /// also bound in a VRF. Needs a tokio runtime.
    pub fn bind(
        addr: SocketAddr,
        nat_t: bool,
        vrf: Option<&str>,
        shared: bool,
    ) -> io::Result<IkeSocket> {
        let family = if addr.is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        let fd = socket(
            family,
            SockType::Datagram,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        if addr.is_ipv6() {
            // The IPv4 wildcard has its own socket: no v4-mapped addresses here.
            setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
        }
        if let Some(v) = vrf {
            super::vrf::bind_to_device(&fd, v)?;
        }
        if shared {
            // A wildcard bound to a device and one bound to none conflict in bind(2) unless
            // both set SO_REUSEADDR. Nothing is shared in delivery: with udp_l3mdev_accept 0
            // a VRF's datagrams match only the socket bound to it, the main table's only the
            // other. Port 500/4500 needs CAP_NET_BIND_SERVICE, so no stranger joins.
            setsockopt(&fd, sockopt::ReuseAddr, &true)?;
        }
        bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
        let std = std::net::UdpSocket::from(fd);
        let fd = std.as_fd();
        if addr.is_ipv4() {
            setsockopt(&fd, sockopt::Ipv4PacketInfo, &true)?;
        } else {
            setsockopt(&fd, sockopt::Ipv6RecvPacketInfo, &true)?;
        }
        if nat_t {
            udp_encap(&std)?;
        }
        vpnd_xfrm::bypass_socket(fd, addr.is_ipv6()).map_err(io::Error::other)?;
        let bound = std.local_addr()?;
        Ok(IkeSocket {
            sock: UdpSocket::from_std(std)?,
            bound,
            nat_t,
            vrf: vrf.map(str::to_string),
        })
    }

    pub fn vrf(&self) -> Option<&str> {
        self.vrf.as_deref()
    }

    pub fn bound(&self) -> SocketAddr {
        self.bound
    }

    /// Whether this socket sends from `local` (its own address, or any of its family on a
    /// wildcard socket of the same port).
    pub fn serves(&self, local: SocketAddr) -> bool {
        self.bound == local
            || (self.bound.ip().is_unspecified()
                && self.bound.port() == local.port()
                && self.bound.is_ipv4() == local.is_ipv4())
    }

    /// The next IKE message; keepalives and datagrams that are not IKE are skipped.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        loop {
            self.sock.readable().await?;
            match self.sock.try_io(Interest::READABLE, || self.recv_now(buf)) {
                Ok(Some(r)) => return Ok(r),
                Ok(None) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn recv_now(&self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo);
        let mut iov = [IoSliceMut::new(buf)];
        let (n, remote, local_ip) = {
            let msg = recvmsg::<SockaddrStorage>(
                self.sock.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::empty(),
            )?;
            let mut local_ip = self.bound.ip();
            for c in msg.cmsgs()? {
                match c {
                    ControlMessageOwned::Ipv4PacketInfo(p) => {
                        local_ip = IpAddr::V4(Ipv4Addr::from(u32::from_be(p.ipi_addr.s_addr)));
                    }
                    ControlMessageOwned::Ipv6PacketInfo(p) => {
                        local_ip = IpAddr::V6(Ipv6Addr::from(p.ipi6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            (msg.bytes, msg.address.and_then(socket_addr), local_ip)
        };
        let Some(remote) = remote else {
            return Ok(None);
        };
        let data = &buf[..n];
        let data = if self.nat_t {
            match data {
                [KEEPALIVE] => return Ok(None),
                [0, 0, 0, 0, ike @ ..] => ike,
                // Not IKE: ESP the kernel did not take (no SA), or junk.
                _ => return Ok(None),
            }
        } else {
            data
        };
        Ok(Some(Received {
            local: SocketAddr::new(local_ip, self.bound.port()),
            remote,
            data: data.to_vec(),
        }))
    }

    /// Sends `data` to `remote` from `local` (which this socket `serves`).
    pub async fn send(&self, local: IpAddr, remote: SocketAddr, data: &[u8]) -> io::Result<()> {
        loop {
            self.sock.writable().await?;
            match self
                .sock
                .try_io(Interest::WRITABLE, || self.send_now(local, remote, data))
            {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return r,
            }
        }
    }

    /// Sends a NAT keepalive (RFC 3948 2.3): the one octet 0xFF, without the non-ESP
    /// marker, which is for IKE only. Only the NAT-T socket sends one.
    pub async fn send_keepalive(&self, local: IpAddr, remote: SocketAddr) -> io::Result<()> {
        if !self.nat_t {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a NAT keepalive goes from the NAT-T port only",
            ));
        }
        loop {
            self.sock.writable().await?;
            match self.sock.try_io(Interest::WRITABLE, || {
                self.send_raw(local, remote, &[], &[KEEPALIVE])
            }) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return r,
            }
        }
    }

    fn send_now(&self, local: IpAddr, remote: SocketAddr, data: &[u8]) -> io::Result<()> {
        let marker: &[u8] = if self.nat_t { &NON_ESP_MARKER } else { &[] };
        self.send_raw(local, remote, marker, data)
    }

    fn send_raw(
        &self,
        local: IpAddr,
        remote: SocketAddr,
        marker: &[u8],
        data: &[u8],
    ) -> io::Result<()> {
        let iov = [IoSlice::new(marker), IoSlice::new(data)];
        let dest = SockaddrStorage::from(remote);
        let fd = self.sock.as_raw_fd();
        // Only a wildcard socket needs the source named; a bound one has it.
        let pick = self.bound.ip().is_unspecified() && !local.is_unspecified();
        match local {
            IpAddr::V4(a) if pick => {
                let info = libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from(a).to_be(),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                let c = [ControlMessage::Ipv4PacketInfo(&info)];
                sendmsg(fd, &iov, &c, MsgFlags::empty(), Some(&dest))?;
            }
            IpAddr::V6(a) if pick => {
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: a.octets(),
                    },
                    ipi6_ifindex: 0,
                };
                let c = [ControlMessage::Ipv6PacketInfo(&info)];
                sendmsg(fd, &iov, &c, MsgFlags::empty(), Some(&dest))?;
            }
            _ => {
                sendmsg(fd, &iov, &[], MsgFlags::empty(), Some(&dest))?;
            }
        }
        Ok(())
    }
}

fn socket_addr(s: SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    let v6 = s.as_sockaddr_in6()?;
    Some(SocketAddr::new(IpAddr::V6(v6.ip()), v6.port()))
}

/// UDP_ENCAP_ESPINUDP (RFC 3948): the kernel decapsulates ESP arriving on this socket and
/// passes only what starts with the non-ESP marker (IKE) and keepalives up to us.
fn udp_encap(s: &std::net::UdpSocket) -> io::Result<()> {
    // linux/udp.h (not in the libc crate): draft-ietf-ipsec-udp-encaps-06, i.e. RFC 3948.
    const UDP_ENCAP_ESPINUDP: libc::c_int = 2;
    let v = UDP_ENCAP_ESPINUDP;
    // SAFETY: a valid socket, an int option of the right size.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_ENCAP,
            std::ptr::addr_of!(v).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loopback has 127.0.0.0/8: a wildcard socket answers from the address it was asked
    /// at, and the NAT-T socket adds and strips the marker and skips keepalives.
    #[tokio::test]
    async fn a_wildcard_socket_answers_from_the_address_it_was_asked_at() {
        let s = IkeSocket::bind("0.0.0.0:0".parse().unwrap(), false, None, false).unwrap();
        let port = s.bound().port();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut buf = vec![0u8; 2048];
        for asked in ["127.0.0.1", "127.0.0.5"] {
            let to = SocketAddr::new(asked.parse().unwrap(), port);
            client.send_to(b"hello", to).await.unwrap();
            let r = s.recv(&mut buf).await.unwrap();
            assert_eq!(r.local, to, "the address it was sent to");
            assert_eq!(r.data, b"hello");
            assert!(s.serves(r.local));
            s.send(r.local.ip(), r.remote, b"answer").await.unwrap();
            let (n, from) = client.recv_from(&mut buf).await.unwrap();
            assert_eq!((&buf[..n], from), (&b"answer"[..], to), "answered from it");
        }
    }

    #[tokio::test]
    async fn the_nat_t_socket_carries_the_non_esp_marker() {
        // UDP_ENCAP needs no privilege; the bypass policy does (CAP_NET_ADMIN).
        let s = match IkeSocket::bind("127.0.0.1:0".parse().unwrap(), true, None, false) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return,
            Err(e) => panic!("{e}"),
        };
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut buf = vec![0u8; 2048];
        client.send_to(&[KEEPALIVE], s.bound()).await.unwrap();
        client
            .send_to(&[0, 0, 0, 0, 1, 2, 3], s.bound())
            .await
            .unwrap();
        let r = s.recv(&mut buf).await.unwrap();
        assert_eq!(
            r.data,
            [1, 2, 3],
            "the keepalive skipped, the marker stripped"
        );
        s.send(r.local.ip(), r.remote, &[9, 9]).await.unwrap();
        let (n, _) = client.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], [0, 0, 0, 0, 9, 9], "the marker added");
        s.send_keepalive(r.local.ip(), r.remote).await.unwrap();
        let (n, _) = client.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], [KEEPALIVE], "a keepalive has no marker");
    }
}
