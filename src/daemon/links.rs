//! The XFRM interfaces of route-based peers (issue 13): `ip link add NAME type xfrm if_id N`,
//! created at start when missing and brought up; the peer's SAs and policies carry the
//! if_id, and the routing table decides what enters the tunnel.
//!
//! A route-based peer's `ivrf` is a Linux VRF (`ip link add NAME type vrf table N`), also
//! created when missing: its XFRM interface is put in it, so decrypted traffic lands in that
//! VRF and two customers with the same inside subnets stay apart.
//!
//! Fail closed: an XFRM interface stays when vpnd stops (traffic routed into it with no SA
//! is dropped; without it the same routes would be gone and the traffic would follow the
//! next route, in clear). `vpnd --flush` removes the ones vpnd created, which it marks with
//! the alias [`ALIAS`]. An existing interface of the name must be an XFRM interface with the
//! configured if_id: vpnd uses it and never removes it.

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVrf, InfoXfrm, LinkAttribute, LinkInfo, LinkMessage,
};
use rtnetlink::{Handle, LinkUnspec, LinkVrf, LinkXfrm};
use thiserror::Error;
use tracing::info;

/// The alias of the interfaces vpnd created (`ip link show` prints it).
pub const ALIAS: &str = "vpnd: route-based IPsec";

#[derive(Debug, Error)]
pub enum LinkError {
    #[error("netlink: {0}")]
    Netlink(#[from] rtnetlink::Error),
    #[error(
        "interface {name} exists and is not an XFRM interface (it is {kind}): rename one of them"
    )]
    NotXfrm { name: String, kind: String },
    #[error("XFRM interface {name} exists with if_id {found}, the configuration says {want}")]
    WrongIfId { name: String, want: u32, found: u32 },
    #[error("interface {name} exists and is not a VRF (it is {kind}): rename one of them")]
    NotVrf { name: String, kind: String },
    #[error("VRF {name} exists with table {found}, the configuration says {want}")]
    WrongTable { name: String, want: u32, found: u32 },
}

/// What [`Links::ensure_xfrm`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    Created(u32),
    Existing(u32),
}

impl Ensured {
    pub fn index(self) -> u32 {
        match self {
            Ensured::Created(i) | Ensured::Existing(i) => i,
        }
    }
}

pub struct Links {
    handle: Handle,
}

/// An interface as the kernel reports it.
struct Found {
    index: u32,
    kind: Option<InfoKind>,
    if_id: Option<u32>,
    table: Option<u32>,
    controller: Option<u32>,
    alias: Option<String>,
}

fn found(m: &LinkMessage) -> Found {
    let mut f = Found {
        index: m.header.index,
        kind: None,
        if_id: None,
        table: None,
        controller: None,
        alias: None,
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfAlias(s) => f.alias = Some(s.clone()),
            LinkAttribute::Controller(c) => f.controller = Some(*c),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    match i {
                        LinkInfo::Kind(k) => f.kind = Some(k.clone()),
                        LinkInfo::Data(InfoData::Xfrm(x)) => {
                            for d in x {
                                if let InfoXfrm::IfId(id) = d {
                                    f.if_id = Some(*id);
                                }
                            }
                        }
                        LinkInfo::Data(InfoData::Vrf(v)) => {
                            for d in v {
                                if let InfoVrf::TableId(t) = d {
                                    f.table = Some(*t);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    f
}

/// A link vpnd needs, with the number that makes it the right one.
#[derive(Clone, Copy)]
enum Wanted {
    Xfrm { if_id: u32, underlying: u32 },
    Vrf { table: u32 },
}

impl Wanted {
    fn kind_and_number(self) -> (InfoKind, u32) {
        match self {
            Wanted::Xfrm { if_id, .. } => (InfoKind::Xfrm, if_id),
            Wanted::Vrf { table } => (InfoKind::Vrf, table),
        }
    }

    fn message(self, name: &str) -> LinkMessage {
        match self {
            Wanted::Xfrm { if_id, underlying } => xfrm_message(name, if_id, underlying),
            Wanted::Vrf { table } => LinkVrf::new(name, table).build(),
        }
    }

    fn wrong_kind(self, name: &str, kind: String) -> LinkError {
        let name = name.into();
        match self {
            Wanted::Xfrm { .. } => LinkError::NotXfrm { name, kind },
            Wanted::Vrf { .. } => LinkError::NotVrf { name, kind },
        }
    }

    fn wrong_number(self, name: &str, found: u32) -> LinkError {
        let name = name.into();
        match self {
            Wanted::Xfrm { if_id, .. } => LinkError::WrongIfId {
                name,
                want: if_id,
                found,
            },
            Wanted::Vrf { table } => LinkError::WrongTable {
                name,
                want: table,
                found,
            },
        }
    }
}

impl Links {
    pub fn connect() -> std::io::Result<Links> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(conn);
        Ok(Links { handle })
    }

    async fn by_name(&self, name: &str) -> Result<Option<Found>, rtnetlink::Error> {
        let r: Result<Vec<LinkMessage>, _> = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute()
            .try_collect()
            .await;
        match r {
            Ok(v) => Ok(v.first().map(found)),
            Err(rtnetlink::Error::NetlinkError(e))
                if e.code.map(|c| -c.get()) == Some(libc::ENODEV) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The XFRM interface `name` with `if_id`, up; created (on `underlying`, 0: none) if
    /// missing.
    pub async fn ensure_xfrm(
        &mut self,
        name: &str,
        if_id: u32,
        underlying: u32,
    ) -> Result<Ensured, LinkError> {
        self.ensure(name, Wanted::Xfrm { if_id, underlying }).await
    }

    /// The VRF device `name` with `table`, up; created if missing.
    pub async fn ensure_vrf(&mut self, name: &str, table: u32) -> Result<Ensured, LinkError> {
        self.ensure(name, Wanted::Vrf { table }).await
    }

    /// One link of the wanted kind and number, up: the existing one if it matches, a new
    /// one if there is none, an error naming the difference otherwise.
    async fn ensure(&mut self, name: &str, want: Wanted) -> Result<Ensured, LinkError> {
        let (kind, number) = want.kind_and_number();
        let ensured = match self.by_name(name).await? {
            Some(f) => {
                let found_number = match want {
                    Wanted::Xfrm { .. } => f.if_id,
                    Wanted::Vrf { .. } => f.table,
                };
                if f.kind.as_ref() != Some(&kind) {
                    let found = f.kind.map_or("of no kind".into(), |k| k.to_string());
                    return Err(want.wrong_kind(name, found));
                }
                if found_number != Some(number) {
                    return Err(want.wrong_number(name, found_number.unwrap_or(0)));
                }
                Ensured::Existing(f.index)
            }
            None => {
                self.handle.link().add(want.message(name)).execute().await?;
                let f = self.by_name(name).await?.ok_or_else(|| {
                    want.wrong_kind(name, "gone right after it was created".into())
                })?;
                info!(link = name, kind = %kind, number, "created");
                Ensured::Created(f.index)
            }
        };
        self.up(ensured).await?;
        Ok(ensured)
    }

    /// Puts interface `index` into the VRF `vrf` (an index), unless it is there already.
    pub async fn enslave(&mut self, name: &str, index: u32, vrf: u32) -> Result<(), LinkError> {
        if self.by_name(name).await?.and_then(|f| f.controller) == Some(vrf) {
            return Ok(());
        }
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).controller(vrf).build())
            .execute()
            .await?;
        Ok(())
    }

    /// Up; a link vpnd created gets its alias (the kernel takes IFLA_IFALIAS only on a
    /// change, not with the creation).
    async fn up(&self, e: Ensured) -> Result<(), rtnetlink::Error> {
        let mut b = LinkUnspec::new_with_index(e.index()).up();
        if let Ensured::Created(_) = e {
            b = b.append_extra_attribute(LinkAttribute::IfAlias(ALIAS.into()));
        }
        self.handle.link().set(b.build()).execute().await
    }

    /// `vpnd --flush`: the XFRM interfaces and VRFs vpnd created (by their alias).
    pub async fn remove_created(&mut self) -> Result<usize, LinkError> {
        let all: Vec<LinkMessage> = self.handle.link().get().execute().try_collect().await?;
        let mut n = 0;
        for f in all.iter().map(found) {
            let ours = matches!(f.kind, Some(InfoKind::Xfrm) | Some(InfoKind::Vrf));
            if ours && f.alias.as_deref() == Some(ALIAS) {
                self.handle.link().del(f.index).execute().await?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// The message for a new XFRM interface (`dev` only when there is an underlying link).
fn xfrm_message(name: &str, if_id: u32, underlying: u32) -> LinkMessage {
    let b = rtnetlink::LinkMessageBuilder::<LinkXfrm>::new(name).if_id(if_id);
    if underlying == 0 {
        b.build()
    } else {
        b.dev(underlying).build()
    }
}
