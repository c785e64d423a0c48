//! The control socket: the protocol (`proto`), the vpnctl grammar (`cli`) and the IOS-style
//! text (`render`).

pub mod proto;
