//! The control socket: the protocol (`proto`), the vpnctl grammar (`cli`) and the IOS-style
//! text (`render`).

pub mod cli;
pub mod client;
pub mod proto;
pub mod render;
pub mod server;
