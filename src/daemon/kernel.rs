//! The XFRM install: the engine's child SA commands become kernel SAs and policies.
//!
//! Order matters so that no packet leaves in clear and none is dropped (RFC 4301 spirit):
//! SAs go in before the policies that use them, and on removal policies go out before
//! their SAs. Policies are keyed by a reqid per (peer, child, remote address) slot, so a
//! rekeyed child's new SAs are picked up by the existing policies and the policies leave
//! only with the slot's last child.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Subnets, Ipv6Subnets};
use vpnd_xfrm::{
    Action, Algorithms, Dir, Integ as XInteg, Key, Lifetime, Mode as XMode, PolicySpec, SaId,
    SaSpec, Selector, Template, Xfrm,
};

use crate::ike::codec::TrafficSelector;
use crate::ike::crypto::cipher::{Encr, Integ};
use crate::ike::{ChildId, ChildInstall, ChildRemove, Mode};

/// Priority of vpnd's tunnel policies: below the kernel default (0 is highest), with more
/// specific selectors first (lower value), as strongSwan orders them.
const PRIORITY_BASE: u32 = 200_000;

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("child {child} of {peer}: {source}")]
    Kernel {
        peer: String,
        child: ChildId,
        source: vpnd_xfrm::Error,
    },
    #[error("child {child} of {peer}: traffic selector {ts:?} has a port range the kernel cannot match (only one port or all)")]
    PortRange {
        peer: String,
        child: ChildId,
        ts: TrafficSelector,
    },
}

/// The selectors of one traffic selector: its address range as prefixes, with its
/// protocol and (single) port.
fn selectors_of(ts: &TrafficSelector) -> Option<Vec<(IpNet, u8, Option<u16>)>> {
    let port = match (ts.start_port, ts.end_port) {
        (0, 65535) => None,
        (a, b) if a == b => Some(a),
        _ => return None,
    };
    let nets: Vec<IpNet> = match (ts.start_addr(), ts.end_addr()) {
        (IpAddr::V4(a), IpAddr::V4(b)) => Ipv4Subnets::new(a, b, 0).map(IpNet::V4).collect(),
        (IpAddr::V6(a), IpAddr::V6(b)) => Ipv6Subnets::new(a, b, 0).map(IpNet::V6).collect(),
        _ => return None,
    };
    Some(
        nets.into_iter()
            .map(|n| (n, ts.ip_protocol, port))
            .collect(),
    )
}

fn kernel_algorithms(
    encr: Encr,
    integ: Option<Integ>,
    encr_key: &[u8],
    integ_key: &[u8],
) -> Algorithms {
    match (encr, integ) {
        (Encr::AesGcm16 { .. }, _) => Algorithms::AesGcm16 {
            key: Key::new(encr_key.to_vec()),
        },
        (Encr::AesCbc { .. }, i) => Algorithms::AesCbc {
            key: Key::new(encr_key.to_vec()),
            integ: match i {
                Some(Integ::HmacSha384_192) => XInteg::HmacSha384_192,
                Some(Integ::HmacSha512_256) => XInteg::HmacSha512_256,
                _ => XInteg::HmacSha256_128,
            },
            integ_key: Key::new(integ_key.to_vec()),
        },
    }
}

fn xmode(m: Mode) -> XMode {
    match m {
        Mode::Tunnel => XMode::Tunnel,
        Mode::Transport => XMode::Transport,
    }
}

/// One policy slot: the policies of a child configuration towards one remote address.
#[derive(Default)]
struct Slot {
    reqid: u32,
    policies: Vec<PolicySpec>,
    children: BTreeSet<ChildId>,
}

/// Owns vpnd's kernel state bookkeeping (only the daemon's main task touches it).
pub struct Kernel {
    xfrm: Xfrm,
    slots: HashMap<(String, String, IpAddr), Slot>,
    /// Outbound SAs of rekeyed children waiting for their predecessor's delete.
    deferred: HashMap<ChildId, SaSpec>,
    next_reqid: u32,
}

impl Kernel {
    pub fn new(xfrm: Xfrm) -> Kernel {
        Kernel {
            xfrm,
            slots: HashMap::new(),
            deferred: HashMap::new(),
            next_reqid: 1,
        }
    }

    pub fn xfrm(&self) -> &Xfrm {
        &self.xfrm
    }

    fn policies(c: &ChildInstall, reqid: u32) -> Result<Vec<PolicySpec>, InstallError> {
        let sel = |ts: &TrafficSelector| {
            selectors_of(ts).ok_or_else(|| InstallError::PortRange {
                peer: c.peer.clone(),
                child: c.child,
                ts: *ts,
            })
        };
        let mut out = Vec::new();
        for l in &c.local_ts {
            for r in &c.remote_ts {
                for (ln, lproto, lport) in sel(l)? {
                    for (rn, rproto, rport) in sel(r)? {
                        if ln.addr().is_ipv4() != rn.addr().is_ipv4() {
                            continue;
                        }
                        let proto = lproto.max(rproto);
                        let specificity = u32::from(ln.prefix_len()) + u32::from(rn.prefix_len());
                        let priority = PRIORITY_BASE
                            - 256 * specificity
                            - u32::from(proto != 0) * 64
                            - u32::from(lport.is_some() || rport.is_some()) * 32;
                        let out_sel = Selector {
                            src: ln,
                            dst: rn,
                            proto,
                            sport: lport,
                            dport: rport,
                        };
                        let in_sel = Selector {
                            src: rn,
                            dst: ln,
                            proto,
                            sport: rport,
                            dport: lport,
                        };
                        let t_out = vec![Template {
                            src: c.local,
                            dst: c.remote,
                            mode: xmode(c.mode),
                            reqid,
                        }];
                        let t_in = vec![Template {
                            src: c.remote,
                            dst: c.local,
                            mode: xmode(c.mode),
                            reqid,
                        }];
                        let p = |selector, dir, templates| PolicySpec {
                            selector,
                            dir,
                            action: Action::Allow,
                            priority,
                            templates,
                            mark: None,
                            if_id: None,
                        };
                        out.push(p(out_sel, Dir::Out, t_out));
                        out.push(p(in_sel, Dir::In, t_in.clone()));
                        if c.mode == Mode::Tunnel {
                            out.push(p(in_sel, Dir::Fwd, t_in));
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Installs both SAs, then (update-or-add) the slot's policies.
    pub async fn install(&mut self, c: &ChildInstall) -> Result<(), InstallError> {
        let key = (c.peer.clone(), c.child_name.clone(), c.remote);
        let reqid = match self.slots.get(&key) {
            Some(s) => s.reqid,
            None => {
                let r = self.xfrm.owner().reqid(self.next_reqid);
                self.next_reqid += 1;
                r
            }
        };
        let policies = Self::policies(c, reqid)?;
        let kerr = |source| InstallError::Kernel {
            peer: c.peer.clone(),
            child: c.child,
            source,
        };
        let lifetime = Lifetime {
            // Soft at 90%: the kernel's soft EXPIRE is the rekey trigger.
            soft_seconds: Some(c.lifetime.as_secs() * 9 / 10),
            hard_seconds: Some(c.lifetime.as_secs().max(1)),
            soft_bytes: c.lifetime_bytes.map(|b| b * 9 / 10),
            hard_bytes: c.lifetime_bytes,
            ..Default::default()
        };
        let sa = |id: SaId, encr_key: &[u8], integ_key: &[u8]| SaSpec {
            id,
            reqid,
            mode: xmode(c.mode),
            selector: None,
            algorithms: kernel_algorithms(c.encr, c.integ, encr_key, integ_key),
            esn: c.esn,
            replay_window: if c.esn {
                c.replay_window.max(1)
            } else {
                c.replay_window
            },
            encap: None,
            if_id: None,
            lifetime,
        };
        let inbound = SaId::esp(c.remote, c.local, c.inbound_spi);
        let outbound = SaId::esp(c.local, c.remote, c.outbound_spi);
        self.xfrm
            .add_sa(&sa(inbound, &c.inbound_encr_key, &c.inbound_integ_key))
            .await
            .map_err(kerr)?;
        let out_spec = sa(outbound, &c.outbound_encr_key, &c.outbound_integ_key);
        if c.defer_outbound {
            // The old outbound SA keeps carrying traffic until the engine says so.
            self.deferred.insert(c.child, out_spec);
        } else if let Err(e) = self.xfrm.add_sa(&out_spec).await {
            let _ = self.xfrm.delete_sa(&inbound).await;
            return Err(kerr(e));
        }
        for p in &policies {
            if let Err(e) = self.xfrm.update_policy(p).await {
                let _ = self.xfrm.delete_sa(&outbound).await;
                let _ = self.xfrm.delete_sa(&inbound).await;
                return Err(kerr(e));
            }
        }
        let slot = self.slots.entry(key).or_default();
        slot.reqid = reqid;
        slot.policies = policies;
        slot.children.insert(c.child);
        Ok(())
    }

    /// Removes a child's SAs; its slot's policies go first when it was the slot's last child.
    /// Already-gone objects (a hard expire raced us) are not errors.
    /// Installs a child's deferred outbound SA: from now on traffic leaves through it.
    pub async fn activate_outbound(&mut self, child: ChildId) -> Result<(), vpnd_xfrm::Error> {
        match self.deferred.remove(&child) {
            Some(spec) => self.xfrm.add_sa(&spec).await,
            None => Ok(()),
        }
    }

    pub async fn remove(&mut self, c: &ChildRemove, child_name: &str) -> Vec<vpnd_xfrm::Error> {
        self.deferred.remove(&c.child);
        let mut errors = Vec::new();
        let key = (c.peer.clone(), child_name.to_string(), c.remote);
        let last = match self.slots.get_mut(&key) {
            Some(s) => {
                s.children.remove(&c.child);
                s.children.is_empty()
            }
            None => false,
        };
        if last {
            if let Some(slot) = self.slots.remove(&key) {
                for p in &slot.policies {
                    if let Err(e) = self.xfrm.delete_policy(&p.key()).await {
                        if !e.is_not_found() {
                            errors.push(e);
                        }
                    }
                }
            }
        }
        for id in [
            SaId::esp(c.remote, c.local, c.inbound_spi),
            SaId::esp(c.local, c.remote, c.outbound_spi),
        ] {
            if let Err(e) = self.xfrm.delete_sa(&id).await {
                if !e.is_not_found() {
                    errors.push(e);
                }
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_become_minimal_prefixes() {
        let ts = TrafficSelector::new(
            0,
            0,
            65535,
            "198.51.100.0".parse().unwrap(),
            "198.51.100.127".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(
            selectors_of(&ts).unwrap(),
            vec![("198.51.100.0/25".parse().unwrap(), 0, None)]
        );
        let odd = TrafficSelector::new(
            6,
            443,
            443,
            "10.0.0.1".parse().unwrap(),
            "10.0.0.6".parse().unwrap(),
        )
        .unwrap();
        let nets: Vec<String> = selectors_of(&odd)
            .unwrap()
            .iter()
            .map(|(n, p, port)| format!("{n}/{p}/{port:?}"))
            .collect();
        assert_eq!(
            nets,
            [
                "10.0.0.1/32/6/Some(443)",
                "10.0.0.2/31/6/Some(443)",
                "10.0.0.4/31/6/Some(443)",
                "10.0.0.6/32/6/Some(443)"
            ]
        );
        let range = TrafficSelector::new(
            6,
            1000,
            2000,
            "10.0.0.1".parse().unwrap(),
            "10.0.0.1".parse().unwrap(),
        )
        .unwrap();
        assert!(
            selectors_of(&range).is_none(),
            "the kernel has no port ranges"
        );
    }
}
