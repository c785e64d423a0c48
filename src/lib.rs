//! vpnd: an IKEv2 control plane that installs ESP SAs into the Linux kernel's XFRM stack.
//!
//! The kernel crate lives in `vpnd-xfrm` (`xfrm/`), RADIUS accounting in `vpnd-radius`
//! (`radius/`). `ike` is the sans-IO protocol engine.

pub mod accounting;
pub mod config;
pub mod control;
pub mod daemon;
pub mod escape;
#[doc(hidden)]
pub mod fuzzing;
pub mod ike;
pub mod metrics;
pub mod session;
pub mod syslog;

/// Wall-clock seconds since the Unix epoch: session start times, remaining lifetimes,
/// accounting times. Read at the edges only (the IKE engine takes `now` as an input).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
