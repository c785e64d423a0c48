//! The IKEv2 protocol engine (RFC 7296), sans-IO: no sockets, no clock reads, no tokio.
//! Bytes and `now` go in; bytes, timers and kernel commands come out.
//!
//! - `codec/`: every payload parsed with bounds checks and encoded back.
//! - `crypto/`: PRFs, key derivation, DH groups and the SK payload ciphers (aws-lc-rs inside).
//! - `proposal.rs` / `policy.rs`: what the operator configured, in the engine's terms.
//! - `auth/`: PSK and signature AUTH (RFC 7296 2.15, RFC 7427), certificates and trust
//!   points.
//! - `refusal.rs`: what we refuse (typed, mapped to the Notify answered) and why an IKE SA
//!   never came up.
//! - `negotiate.rs`: proposal choice (RFC 7296 2.7) and traffic selector narrowing (2.9).
//! - `endpoint.rs`: routes datagrams to IKE SAs and queues outputs for the daemon.
//! - `fragment.rs`: IKE fragmentation (RFC 7383): SKF sets out, bounded reassembly in.
//! - `pool.rs`: address pools and their leases, one per IKE SA (RFC 7296 3.15.4).
//! - `half_open.rs`: the responder's DoS bounds (RFC 7296 2.6): cookies, half-open limits.
//! - `sa.rs`: one IKE SA: its state, message-ID windows, retransmissions and task queue.
//! - `exchange/`: IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL, one file each, each
//!   with its initiator task (the state its response needs) and its responder side.

pub mod auth;
pub mod codec;
pub mod crypto;
pub mod endpoint;
pub(crate) mod exchange;
pub mod fragment;
pub mod half_open;
pub mod nat;
pub mod negotiate;
pub mod policy;
pub mod pool;
pub mod proposal;
pub mod refusal;
pub mod sa;

pub use auth::{AuthRefusal, AuthStats, LocalAuth, RemoteAuth};
pub use endpoint::{
    ChildId, ChildInstall, ChildMoved, ChildRemove, CommandError, Endpoint, Fatal, IkeSaId, Output,
    PeerChanges, Transmit,
};
pub use exchange::eap::{AuthenticatedUser, EapAnswer, EapRelay};
pub use fragment::{FragPolicy, FragStats};
pub use half_open::{DosConfig, DosStats};
pub use nat::{NatState, UdpEncap};
pub use policy::{
    ChildPolicy, EapIdentity, IdPattern, Mode, NatPolicy, PeerPolicy, RemoteAccess, RemoteMatch,
    Retransmit,
};
pub use pool::{AddressPool, AddressRequest, LeaseError, PoolStats, Pools};
pub use refusal::{Failure, Refusal};
pub use sa::DownReason;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_pool;
