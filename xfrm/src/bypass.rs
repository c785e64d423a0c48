//! Per-socket policy bypass for the IKE sockets.
//!
//! A transport-mode policy between the two gateways, or any policy whose selector covers
//! their addresses, also matches IKE's own UDP 500/4500 datagrams: without a bypass they
//! would be sent inside ESP, or dropped for want of an SA, and no IKE SA could ever be set up
//! or deleted. Every IKE daemon therefore gives its sockets a per-socket policy (RFC 4301
//! 5.1: IKE traffic is BYPASS) with `IP_XFRM_POLICY` / `IPV6_XFRM_POLICY`: an ALLOW policy
//! with no template, in and out, that the kernel consults before the SPD.

use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::Emitable;
use netlink_packet_xfrm::{
    UserPolicyInfo, XFRM_POLICY_ALLOW, XFRM_POLICY_IN, XFRM_POLICY_OUT, XFRM_USER_POLICY_INFO_LEN,
};

/// Sets the bypass policies (in and out) on a UDP socket of family v4 or v6.
pub fn bypass_socket(fd: BorrowedFd<'_>, ipv6: bool) -> std::io::Result<()> {
    let (level, name, family) = if ipv6 {
        (libc::IPPROTO_IPV6, libc::IPV6_XFRM_POLICY, libc::AF_INET6)
    } else {
        (libc::IPPROTO_IP, libc::IP_XFRM_POLICY, libc::AF_INET)
    };
    for dir in [XFRM_POLICY_OUT, XFRM_POLICY_IN] {
        let mut p = UserPolicyInfo::default();
        p.selector.family = family as u16;
        p.direction = dir;
        p.action = XFRM_POLICY_ALLOW;
        let mut buf = [0u8; XFRM_USER_POLICY_INFO_LEN];
        p.emit(&mut buf);
        // SAFETY: buf is a valid, initialised xfrm_userpolicy_info of the length passed; the
        // kernel copies it and keeps no pointer.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                level,
                name,
                buf.as_ptr().cast(),
                buf.len() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
