//! `vpnd-xfrm`: a typed async client for the Linux kernel's XFRM (IPsec) stack.
//!
//! Built on `xfrmnetlink` (request builders) and `netlink-packet-xfrm` (wire structs), in the
//! handle style of rust-netlink: [`Xfrm::connect`] spawns the connection task and returns a
//! cheap, cloneable handle. What this crate adds:
//!
//! - **Typed specs** ([`SaSpec`], [`PolicySpec`]) validated before they reach the kernel, and
//!   the lifetime defaults the raw builders get wrong (a zero byte limit expires an SA on
//!   its first packet; the kernel's "no limit" is `XFRM_INF`).
//! - **Ownership**: everything vpnd installs carries a reqid in vpnd's band ([`Owner`]), so
//!   [`Xfrm::flush_owned`] and [`DumpScope::Owned`] never touch another daemon's SAs.
//! - **Counters in one dump** ([`Xfrm::dump_counters`]): bytes, packets, add/use time, replay
//!   and integrity drops for every SA in a single `XFRM_MSG_GETSA` dump.
//! - **Errors that say what failed** ([`Error`]): the operation, the SA or policy, the errno
//!   and the kernel's extended-ACK text.
//! - **Events** ([`Events`]): EXPIRE, ACQUIRE and SA/policy changes as a stream.
//!
//! Only the kernel's replies are ever parsed: netlink-packet-xfrm panics on truncated input,
//! so no bytes from the network or a user reach its parsers through this crate.

mod bypass;
mod client;
mod convert;
mod error;
mod events;
#[doc(hidden)]
pub mod fuzzing;
mod raw;
#[doc(hidden)]
pub mod testing;
mod types;

pub use bypass::bypass_socket;
pub use client::{DumpScope, FlushReport, Xfrm};
pub use error::{Error, KernelError, Op};
pub use events::{Event, Events};
pub use types::*;
