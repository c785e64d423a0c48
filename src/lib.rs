//! vpnd: an IKEv2 control plane that installs ESP SAs into the Linux kernel's XFRM stack.
//!
//! The kernel crate lives in `vpnd-xfrm` (`xfrm/`), RADIUS accounting in `vpnd-radius`
//! (`radius/`). `ike` is the sans-IO protocol engine.

pub mod accounting;
pub mod config;
pub mod control;
pub mod daemon;
pub mod ike;
pub mod session;
pub mod syslog;
