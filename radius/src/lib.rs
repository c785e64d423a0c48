//! `vpnd-radius`: RADIUS accounting (RFC 2866) for vpnd, with IOS's IPsec VPN Accounting
//! attributes and a crash-proof outbox.
//!
//! - [`record`]: an [`AccountingRecord`] (serde, so it can be journalled) and its encoding as
//!   an Accounting-Request with the `radius` crate: Cisco-AVPair and cisco-nas-port VSAs,
//!   64-bit counters split into octets + gigawords (RFC 2869), Acct-Delay-Time per
//!   transmission.
//! - [`client`]: a [`Group`] of servers tried in order with failover and dead time, over one
//!   owner task per server (`server.rs`) holding its UDP socket, identifiers and in-flight
//!   requests; responses are authenticated (`response.rs`) before they count.
//! - [`journal`]: the outbox. The daemon appends a record (fsynced) before sending it and acks
//!   it once a server answered, so a crash or an unreachable server loses nothing.
//!
//! The daemon's loop: `journal.append(&rec)?` → `group.send(&rec).await` → on `Ok`,
//! `journal.ack(seq)?`; on `Err`, keep it pending and retry later; at start, resend what
//! [`Journal::open`] returned.

pub mod access;
pub mod client;
#[doc(hidden)]
pub mod fuzzing;
pub mod journal;
pub mod record;
mod response;
mod server;

pub use access::{Accepted, AccessAnswer, AccessRequest};
pub use client::{
    Attempt, ClientConfig, Delivered, Error, Failure, Group, ServerSpec, ServerStats,
};
pub use journal::{Journal, JournalError, Recovery, Seq};
pub use record::{terminate_cause, AccountingRecord, AcctStatus};

/// Splits a 64-bit octet counter into the 32-bit Acct-*-Octets value (the low 32 bits) and
/// the Acct-*-Gigawords value (how many times it wrapped 2^32), RFC 2869 §5.1-5.2.
pub fn gigawords(octets: u64) -> (u32, u32) {
    (octets as u32, (octets >> 32) as u32)
}
