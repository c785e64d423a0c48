//! Crypto sessions: one IKE SA plus the IPsec SA pairs it created, per peer (issue 4).
//! `model` is what operators and scripts see; `table` owns the sessions (one owner: the
//! daemon's main task) and reports each session's Up and Down exactly once.

pub mod model;
pub mod table;
