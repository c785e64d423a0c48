//! The control socket: the protocol (`proto`), the vpnctl grammar (`cli`) and the IOS-style
//! text (`render`).

pub mod cli;
pub mod client;
pub mod proto;
pub mod render;
pub mod server;

use crate::session::model::SessionView;

/// The answer to `show crypto session`: the sessions that pass `filter`, as the list (for
/// `--json`) or rendered in the IOS layout asked for.
pub fn show_sessions(
    all: Vec<SessionView>,
    filter: &proto::Filter,
    text: Option<proto::SessionDisplay>,
    now: u64,
) -> proto::Response {
    let sessions: Vec<SessionView> = all.into_iter().filter(|s| filter.matches(s)).collect();
    proto::Response::ok(match text {
        Some(display) => proto::Body::Text {
            text: render::sessions(display, &sessions, now),
        },
        None => proto::Body::Sessions { sessions },
    })
}

/// The figures of `show crypto isakmp stats`, read from the engine.
pub fn ike_stats(e: &crate::ike::Endpoint) -> proto::IkeStatsView {
    let dos = e.dos();
    proto::IkeStatsView {
        ike_sas: e.sas().count() as u64,
        established: e.sas().filter(|s| s.is_established()).count() as u64,
        dos: e.dos_stats(),
        cookie_threshold: dos.cookie_threshold,
        block_threshold: dos.block_threshold,
        half_open_limit: dos.half_open_limit,
        half_open_timeout: dos.half_open_timeout.as_secs(),
        fragments: e.frag_stats(),
        auth: e.auth_stats().clone(),
    }
}
