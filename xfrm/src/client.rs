//! The handle: one netlink connection to the kernel's XFRM stack, shared by cheap clones.

use std::fmt::Display;
use std::io;
use std::net::IpAddr;

use futures::TryStreamExt;
use netlink_packet_xfrm::{EncapTmpl, XfrmAttrs};
use netlink_sys::AsyncSocket;
use xfrmnetlink::Handle;

use crate::convert::*;
use crate::error::{extack_message, Error, KernelError, Op};
use crate::raw::RawSocket;
use crate::types::*;

/// `UDP_ENCAP_ESPINUDP` (RFC 3948).
const UDP_ENCAP_ESPINUDP: u16 = 2;
/// The kernel's `XFRM_POLICY_ALLOW` / `XFRM_POLICY_BLOCK`.
const POLICY_ALLOW: u8 = 0;
const POLICY_BLOCK: u8 = 1;

/// Runs a bulk read on tokio's blocking pool (the raw socket blocks in recv).
async fn blocking<T: Send + 'static>(
    op: Op,
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Connection {
            op,
            source: io::Error::other(format!("blocking read task failed: {e}")),
        })?
}

/// Which SAs a counters dump returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpScope {
    /// Only SAs whose reqid lies in vpnd's band.
    Owned,
    /// Every SA in the namespace (benchmarks and diagnostics).
    All,
}

/// A typed client for the kernel's XFRM stack. Cloning is cheap: clones share the netlink
/// connection, whose task runs on the tokio runtime `connect` was called in.
#[derive(Clone, Debug)]
pub struct Xfrm {
    handle: Handle,
    owner: Owner,
}

/// Maps xfrmnetlink's error to ours, keeping the errno and the kernel's own message.
fn kernel_err(op: Op, target: impl Display) -> impl Fn(xfrmnetlink::Error) -> Error {
    move |e| match e {
        xfrmnetlink::Error::NetlinkError(msg) => Error::Kernel {
            op,
            target: target.to_string(),
            kernel: KernelError {
                errno: -msg.raw_code(),
                message: extack_message(&msg.header),
            },
        },
        xfrmnetlink::Error::RequestFailed => Error::Connection {
            op,
            source: io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the netlink connection task has stopped",
            ),
        },
        other => Error::Unexpected {
            op,
            target: target.to_string(),
            detail: other.to_string(),
        },
    }
}

impl Xfrm {
    /// Opens a NETLINK_XFRM socket and spawns its connection task on the current tokio
    /// runtime. Extended ACKs are enabled so kernel refusals carry the kernel's reason.
    pub fn connect(owner: Owner) -> Result<Xfrm, Error> {
        let (mut conn, handle, _unsolicited) =
            xfrmnetlink::new_connection().map_err(|source| Error::Connection {
                op: Op::DumpSa,
                source,
            })?;
        let sock = conn.socket_mut().socket_mut();
        // Best effort: kernels without extack still work, only with bare errnos.
        let _ = sock.set_ext_ack(true);
        let _ = sock.set_cap_ack(true);
        // Large dumps arrive one skb per read; a roomy buffer keeps the kernel busy.
        let _ = sock.set_rx_buf_sz(4 << 20);
        tokio::spawn(conn);
        Ok(Xfrm { handle, owner })
    }

    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// Reserves an SPI for an inbound SA (`XFRM_MSG_ALLOCSPI`). The kernel creates a larval
    /// SA; install the real one with [`Xfrm::update_sa`], not [`Xfrm::add_sa`].
    pub async fn alloc_spi(
        &self,
        src: IpAddr,
        dst: IpAddr,
        reqid: u32,
        range: (u32, u32),
    ) -> Result<u32, Error> {
        let target = format!("esp {src}->{dst} reqid {reqid:#x}");
        if !self.owner.owns_reqid(reqid) {
            return Err(Error::invalid(
                "spi allocation",
                format!("{target}: reqid outside vpnd's band"),
            ));
        }
        if range.0 < 256 || range.0 > range.1 {
            return Err(Error::invalid(
                "spi allocation",
                format!(
                    "{target}: range {:#x}..{:#x} is empty or reserved",
                    range.0, range.1
                ),
            ));
        }
        let replies: Vec<_> = self
            .handle
            .state()
            .alloc_spi(src, dst)
            .protocol(IPPROTO_ESP)
            .reqid(reqid)
            .spi_range(range.0, range.1)
            .execute()
            .try_collect()
            .await
            .map_err(kernel_err(Op::AllocSpi, &target))?;
        replies
            .first()
            .map(|m| m.user_sa_info.id.spi)
            .ok_or_else(|| Error::Unexpected {
                op: Op::AllocSpi,
                target,
                detail: "no SA in the reply".into(),
            })
    }

    /// Installs a new SA (`XFRM_MSG_NEWSA`).
    pub async fn add_sa(&self, spec: &SaSpec) -> Result<(), Error> {
        self.modify_sa(spec, false).await
    }

    /// Replaces an SA, or fills in the larval SA left by [`Xfrm::alloc_spi`] (`XFRM_MSG_UPDSA`).
    pub async fn update_sa(&self, spec: &SaSpec) -> Result<(), Error> {
        self.modify_sa(spec, true).await
    }

    async fn modify_sa(&self, spec: &SaSpec, update: bool) -> Result<(), Error> {
        spec.validate(&self.owner)?;
        let op = if update { Op::UpdateSa } else { Op::AddSa };
        let id = &spec.id;
        let err = |e| kernel_err(op, id)(e);
        let state = self.handle.state();
        // A tunnel SA without a selector carries either inner family (IPv4 in IPv6 and the
        // reverse): an unspecified selector, and the flag that keeps the kernel from filling
        // in the outer family (xfrm_user's copy_from_user_state), as strongSwan installs them.
        let tunnel_any = spec.selector.is_none() && spec.mode == Mode::Tunnel;
        let mut req = if update {
            state.update(id.src, id.dst)
        } else {
            state.add(id.src, id.dst)
        }
        .protocol(IPPROTO_ESP)
        .spi(id.spi)
        .mode(spec.mode.to_kernel())
        .reqid(spec.reqid)
        .flags(
            if spec.esn { XFRM_STATE_ESN } else { 0 }
                | if tunnel_any { XFRM_STATE_AF_UNSPEC } else { 0 },
        )
        // After flags: the builder picks the ESN replay attribute from them.
        .replay_window(spec.replay_window, 0, 0, 0, 0);
        req = match &spec.algorithms {
            Algorithms::AesGcm16 { key } => req
                .encryption_aead("rfc4106(gcm(aes))", &key.0, 128)
                .map_err(err)?,
            Algorithms::AesCbc {
                key,
                integ,
                integ_key,
            } => req
                .encryption("cbc(aes)", &key.0)
                .map_err(err)?
                .authentication_trunc(integ.kernel_name(), &integ_key.0, integ.trunc_bits())
                .map_err(err)?,
        };
        if let Some(m) = id.mark {
            req = req.mark(m.value, m.mask);
        }
        if let Some(v) = spec.if_id {
            req = req.ifid(v);
        }
        let msg = req.message_mut();
        msg.user_sa_info.lifetime_cfg = lifetime_to_nl(&spec.lifetime);
        msg.user_sa_info.selector = match &spec.selector {
            Some(sel) => selector_to_nl(sel),
            None if tunnel_any => netlink_packet_xfrm::Selector::default(),
            None => any_selector(family_of(&id.src)),
        };
        if let Some(e) = spec.encap {
            msg.nlas.push(XfrmAttrs::EncapsulationTemplate(EncapTmpl {
                encap_type: UDP_ENCAP_ESPINUDP,
                encap_sport: e.sport,
                encap_dport: e.dport,
                encap_oa: Default::default(),
            }));
        }
        req.execute().await.map_err(kernel_err(op, id))
    }

    /// Deletes one SA (`XFRM_MSG_DELSA`).
    pub async fn delete_sa(&self, id: &SaId) -> Result<(), Error> {
        let mut req = self
            .handle
            .state()
            .delete(id.src, id.dst)
            .protocol(id.proto)
            .spi(id.spi);
        if let Some(m) = id.mark {
            req = req.mark(m.value, m.mask);
        }
        req.execute().await.map_err(kernel_err(Op::DeleteSa, id))
    }

    /// Reads one SA (`XFRM_MSG_GETSA`). This is one round trip per SA: use
    /// [`Xfrm::dump_counters`] to read many.
    pub async fn get_sa(&self, id: &SaId) -> Result<SaCounters, Error> {
        let id = *id;
        blocking(Op::GetSa, move || RawSocket::open(Op::GetSa)?.get_sa(&id)).await
    }

    /// Reads the given SAs one `XFRM_MSG_GETSA` round trip after another on one socket: the
    /// way strongSwan queries SA usage. Kept for comparison with [`Xfrm::dump_counters`].
    pub async fn get_sas_one_by_one(&self, ids: Vec<SaId>) -> Result<Vec<SaCounters>, Error> {
        blocking(Op::GetSa, move || {
            let mut sock = RawSocket::open(Op::GetSa)?;
            ids.iter().map(|id| sock.get_sa(id)).collect()
        })
        .await
    }

    /// Counters for every SA, in one `XFRM_MSG_GETSA` dump: one request, however many SAs.
    pub async fn dump_counters(&self, scope: DumpScope) -> Result<Vec<SaCounters>, Error> {
        let owner = self.owner;
        blocking(Op::DumpSa, move || {
            let mut out = Vec::new();
            RawSocket::open(Op::DumpSa)?.dump_sas(&mut |sa| {
                if scope == DumpScope::All || owner.owns_reqid(sa.reqid) {
                    out.push(sa);
                }
            })?;
            Ok(out)
        })
        .await
    }

    /// Installs a policy (`XFRM_MSG_NEWPOLICY`).
    pub async fn add_policy(&self, spec: &PolicySpec) -> Result<(), Error> {
        self.modify_policy(spec, false).await
    }

    /// Adds or replaces a policy (`XFRM_MSG_UPDPOLICY`).
    pub async fn update_policy(&self, spec: &PolicySpec) -> Result<(), Error> {
        self.modify_policy(spec, true).await
    }

    async fn modify_policy(&self, spec: &PolicySpec, update: bool) -> Result<(), Error> {
        spec.validate(&self.owner)?;
        let op = if update {
            Op::UpdatePolicy
        } else {
            Op::AddPolicy
        };
        let sel = &spec.selector;
        let (s, d) = (sel.src, sel.dst);
        let policy = self.handle.policy();
        let mut req = if update {
            policy.update(s.addr(), s.prefix_len(), d.addr(), d.prefix_len())
        } else {
            policy.add(s.addr(), s.prefix_len(), d.addr(), d.prefix_len())
        }
        .direction(spec.dir.to_kernel())
        .action(match spec.action {
            Action::Allow => POLICY_ALLOW,
            Action::Block => POLICY_BLOCK,
        })
        .priority(spec.priority);
        for t in &spec.templates {
            req = req.add_template(template_to_nl(t));
        }
        if let Some(m) = spec.mark {
            req = req.mark(m.value, m.mask);
        }
        if let Some(v) = spec.if_id {
            req = req.ifid(v);
        }
        let msg = req.message_mut();
        msg.user_policy_info.selector = selector_to_nl(sel);
        msg.user_policy_info.lifetime_cfg = lifetime_to_nl(&Lifetime::default());
        req.execute().await.map_err(kernel_err(op, spec.key()))
    }

    /// Deletes a policy by selector, direction, mark and if_id (`XFRM_MSG_DELPOLICY`).
    pub async fn delete_policy(&self, key: &PolicyKey) -> Result<(), Error> {
        key.selector.validate("policy selector")?;
        let (s, d) = (key.selector.src, key.selector.dst);
        let mut req = self
            .handle
            .policy()
            .delete(s.addr(), s.prefix_len(), d.addr(), d.prefix_len())
            .direction(key.dir.to_kernel());
        if let Some(m) = key.mark {
            req = req.mark(m.value, m.mask);
        }
        if let Some(v) = key.if_id {
            req = req.ifid(v);
        }
        req.message_mut().user_policy_id.selector = selector_to_nl(&key.selector);
        req.execute()
            .await
            .map_err(kernel_err(Op::DeletePolicy, key))
    }

    /// Every policy in the SPD, in one dump.
    pub async fn dump_policies(&self, scope: DumpScope) -> Result<Vec<PolicyInfo>, Error> {
        let owner = self.owner;
        self.handle
            .policy()
            .get_dump()
            .execute()
            .map_err(kernel_err(Op::DumpPolicy, "(all)"))
            .try_filter_map(|m| {
                let p = policy_from_nl(&m.user_policy_info, &m.nlas);
                let p = p.filter(|p| scope == DumpScope::All || p.is_owned_by(&owner));
                futures::future::ready(Ok(p))
            })
            .try_collect()
            .await
    }

    /// Removes every policy and SA that vpnd owns, and nothing else: policies first, so no
    /// packet matches a policy whose SA is already gone and leaves in clear or is dropped
    /// half-way. Unlike `ip xfrm state flush`, a foreign daemon's SAs are never touched.
    pub async fn flush_owned(&self) -> Result<FlushReport, Error> {
        let mut report = FlushReport::default();
        for p in self.dump_policies(DumpScope::Owned).await? {
            match self.delete_policy(&p.key).await {
                Ok(()) => report.policies += 1,
                // Deleted meanwhile by someone else (or the kernel): nothing left to do.
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        for sa in self.dump_counters(DumpScope::Owned).await? {
            match self.delete_sa(&sa.id).await {
                Ok(()) => report.sas += 1,
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }
}

/// What [`Xfrm::flush_owned`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushReport {
    pub policies: usize,
    pub sas: usize,
}
