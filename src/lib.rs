//! vpnd: an IKEv2 control plane that installs ESP SAs into the Linux kernel's XFRM stack.
//!
//! The kernel crate lives in `vpnd-xfrm` (`xfrm/`), RADIUS accounting in `vpnd-radius`
//! (`radius/`). The IKEv2 engine, sessions and the control socket arrive with their issues.
