//! The IKEv2 protocol engine (RFC 7296), sans-IO: no sockets, no clock reads, no tokio.
//! Bytes and `now` go in; bytes, timers and kernel commands come out.
//!
//! - `codec/`: every payload parsed with bounds checks and encoded back.
//! - `crypto/`: PRFs, key derivation, DH groups and the SK payload ciphers (aws-lc-rs inside).

pub mod codec;
pub mod crypto;
pub mod proposal;
