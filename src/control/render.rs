//! Text output in the Cisco IOS layout ("IP Security VPN Monitoring"): `show crypto session
//! [detail]`, `show crypto isakmp peer` and the `%CRYPTO-5-SESSION_STATUS` syslog line.
//!
//! Pure functions from the session model to text; every line ends with `\n`. Operators and
//! their scripts parse this output, so its spacing and colons are pinned by golden tests
//! against the IOS guide's samples.
//!
//! Where IOS has no sample, vpnd's choices are:
//! - a flow selector given as a prefix prints as IOS does, `addr/netmask`
//!   (`10.10.10.0/255.255.255.0`), a single host as `host 10.1.1.4`; an IPv6 prefix keeps its
//!   prefix length (`2001:db8::/64`, as IOS prints IPv6 flows); a range (`10.0.0.1-10.0.0.6`)
//!   or anything else is printed as given.
//! - an SA without a volume limit shows [`UNLIMITED`] in place of the kilobytes:
//!   `life (KB/Sec) unlimited/2949`.
//! - `show crypto session detail` adds one line per session after its flows (vpnd's own;
//!   neither IOS nor strongSwan shows it):
//!   `  Totals: in <bytes> bytes/<packets> pkts, out <bytes> bytes/<packets> pkts`.
//! - an IPv6 peer in the syslog line is bracketed (`Peer [2001:db8::1]:500`), so the port
//!   stays separable.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use crate::control::proto::SessionDisplay;

use crate::session::model::{FlowDirection, FlowView, IkeSaView, PeerView, SessionView, Status};

/// Shown for an absent value, as IOS does.
pub const NONE: &str = "(none)";

/// Shown in `life (KB/Sec) <kb>/<sec>` when the SA has no volume limit.
pub const UNLIMITED: &str = "unlimited";

/// `show crypto session` in the layout asked for.
pub fn sessions(display: SessionDisplay, sessions: &[SessionView], now: u64) -> String {
    match display {
        SessionDisplay::Normal => crypto_session(sessions, false),
        SessionDisplay::Detail => crypto_session(sessions, true),
        SessionDisplay::Brief => crypto_session_brief(sessions, now),
        SessionDisplay::Summary => crypto_session_summary(sessions),
    }
}

/// `show crypto session` (`detail == false`) or `show crypto session detail`.
pub fn crypto_session(sessions: &[SessionView], detail: bool) -> String {
    let mut out = String::from("Crypto session current status\n");
    for s in sessions {
        out.push('\n');
        session(&mut out, s, detail);
    }
    out
}

fn session(out: &mut String, s: &SessionView, detail: bool) {
    let peer = s.key.peer;
    let _ = writeln!(out, "Interface: {}", s.interface.as_deref().unwrap_or(NONE));
    let _ = writeln!(out, "Session status: {}", s.status);
    if detail {
        let _ = writeln!(
            out,
            "Peer: {} port {} fvrf: {} ivrf: {}",
            peer.ip(),
            peer.port(),
            s.key.fvrf.as_deref().unwrap_or(NONE),
            s.key.ivrf.as_deref().unwrap_or(NONE)
        );
        let _ = writeln!(out, "  Desc: {}", s.description.as_deref().unwrap_or(NONE));
        let _ = writeln!(
            out,
            "  Phase1_id: {}",
            s.phase1_id.as_deref().unwrap_or(NONE)
        );
        // A remote-access client: its user and the address it was given (IOS Easy VPN).
        if let Some(u) = s.username() {
            let _ = writeln!(out, "  Username: {u}");
        }
        let assigned: Vec<String> = [s.assigned_ip, s.assigned_ip6]
            .into_iter()
            .flatten()
            .map(|a| a.to_string())
            .collect();
        if !assigned.is_empty() {
            let _ = writeln!(out, "  Assigned address: {}", assigned.join(", "));
        }
        if let Some(t) = s.session_timeout_s {
            let _ = writeln!(out, "  Session timeout: {} left (RADIUS)", hms(t));
        }
    } else {
        let _ = writeln!(out, "Peer: {}", slash(peer));
    }
    for sa in &s.ike_sas {
        ike_sa(out, sa, detail);
    }
    for f in &s.flows {
        flow(out, f, detail);
    }
    if detail {
        let t = &s.totals;
        let _ = writeln!(
            out,
            "  Totals: in {} bytes/{} pkts, out {} bytes/{} pkts",
            t.bytes_in, t.packets_in, t.bytes_out, t.packets_out
        );
    }
}

fn ike_sa(out: &mut String, sa: &IkeSaView, detail: bool) {
    let _ = writeln!(
        out,
        "  IKE SA: local {} remote {} {}",
        slash(sa.local),
        slash(sa.remote),
        sa.state
    );
    if detail {
        let caps = if sa.capabilities.is_empty() {
            NONE.to_string()
        } else {
            sa.capabilities.join(",")
        };
        let _ = writeln!(
            out,
            "    Capabilities:{caps} connid:{} lifetime:{}",
            sa.connid,
            hms(sa.lifetime_remaining_s)
        );
    }
}

fn flow(out: &mut String, f: &FlowView, detail: bool) {
    let proto = match f.protocol {
        0 => "ip".to_string(),
        p => p.to_string(),
    };
    let _ = writeln!(
        out,
        "  IPSEC FLOW: permit {proto} {} {}",
        selector(&f.local),
        selector(&f.remote)
    );
    let _ = writeln!(
        out,
        "    Active SAs: {}, origin: {}",
        f.active_sas, f.origin
    );
    if detail {
        let _ = writeln!(out, "    Inbound:  #pkts dec'ed {}", direction(&f.inbound));
        let _ = writeln!(out, "    Outbound: #pkts enc'ed {}", direction(&f.outbound));
    }
}

/// `4 drop 0 life (KB/Sec) 4605665/2949`
fn direction(d: &FlowDirection) -> String {
    let kb = d.life_kb.map_or(UNLIMITED.to_string(), |kb| kb.to_string());
    format!(
        "{} drop {} life (KB/Sec) {kb}/{}",
        d.packets, d.dropped, d.life_s
    )
}

/// The status letters of `show crypto session brief` (IOS's legend: A Active, U Up, D Down,
/// I Idle, N Negotiating, K No IKE).
pub fn status_letters(s: Status) -> &'static str {
    match s {
        Status::UpActive => "UA",
        Status::UpIdle => "UI",
        Status::UpNoIke => "UK",
        Status::DownNegotiating => "DN",
        Status::Down => "D",
    }
}

/// `show crypto session brief`: one line per session, grouped by ivrf, as IOS lays it out.
/// `Username` is a remote-access client's user (its EAP identity, else the identity of a
/// client given an address), empty for site-to-site peers; `Uptime` counts from the session's first IPsec
/// SA pair (`hh:mm:ss`, or `NdHHh` past a day, as IOS abbreviates), `-` while it has none.
pub fn crypto_session_brief(sessions: &[SessionView], now: u64) -> String {
    let mut out = String::from(
        "Status: A- Active, U - Up, D - Down, I - Idle, S - Standby, N - Negotiating\n        K - No IKE\n",
    );
    let mut by_ivrf: std::collections::BTreeMap<Option<&str>, Vec<&SessionView>> =
        std::collections::BTreeMap::new();
    for s in sessions {
        by_ivrf.entry(s.key.ivrf.as_deref()).or_default().push(s);
    }
    for (ivrf, list) in by_ivrf {
        let _ = writeln!(out, "ivrf = {}", ivrf.unwrap_or(NONE));
        let _ = writeln!(
            out,
            "{:<15} {:<12} {:<15} {:<24} {:<8} Status",
            "Peer", "I/F", "Username", "Group/Phase1_id", "Uptime"
        );
        for s in list {
            let uptime = s
                .up_since
                .map_or_else(|| "-".to_string(), |t| uptime(now.saturating_sub(t)));
            let _ = writeln!(
                out,
                "{:<15} {:<12} {:<15} {:<24} {:<8} {}",
                s.key.peer.ip(),
                s.interface.as_deref().unwrap_or("-"),
                s.username().unwrap_or(""),
                s.phase1_id.as_deref().unwrap_or("-"),
                uptime,
                status_letters(s.status)
            );
        }
    }
    out
}

/// `show ip local pool`, IOS's layout: each pool's range, free and in-use addresses; vpnd
/// adds the clients refused because the pool was full. IPv6 pools follow in a table of
/// their own with room for their addresses (IOS has `show ipv6 local pool`); then the
/// refusals for pools RADIUS named and nobody configured, and leases a reload left outside
/// every pool, when there are any.
pub fn local_pools(
    pools: &[crate::ike::PoolStats],
    unknown_pool_refused: u64,
    leases_outside_pools: u32,
) -> String {
    use crate::ike::pool::Family;
    let mut out = String::new();
    for (family, width) in [(Family::Ipv4, 15), (Family::Ipv6, 39)] {
        let of: Vec<_> = pools.iter().filter(|p| p.family == family).collect();
        if of.is_empty() && (family == Family::Ipv6 || pools.iter().any(|p| p.family != family)) {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        let _ = writeln!(
            out,
            " {:<24} {:<width$} {:<width$} {:>7} {:>7} {:>8}",
            "Pool", "Begin", "End", "Free", "In use", "Refused"
        );
        for p in of {
            let _ = writeln!(
                out,
                " {:<24} {:<width$} {:<width$} {:>7} {:>7} {:>8}",
                p.name,
                p.begin.to_string(),
                p.end.to_string(),
                p.free,
                p.in_use,
                p.refused
            );
        }
    }
    if unknown_pool_refused > 0 {
        let _ = writeln!(
            out,
            "\n Refused for a pool RADIUS named that is not configured: {unknown_pool_refused}"
        );
    }
    if leases_outside_pools > 0 {
        let _ = writeln!(
            out,
            " Leases outside every pool (kept until their sessions end): {leases_outside_pools}"
        );
    }
    out
}

/// IOS's uptime: `hh:mm:ss` below a day, `1d02h` from then on.
fn uptime(s: u64) -> String {
    if s < 86_400 {
        hms(s)
    } else {
        format!("{}d{:02}h", s / 86_400, s / 3600 % 24)
    }
}

/// `show crypto session summary` (no IOS sample: vpnd's layout): how many sessions are in
/// each state, and the total of IKE SAs and IPsec SAs behind them.
pub fn crypto_session_summary(sessions: &[SessionView]) -> String {
    let count = |st: Status| sessions.iter().filter(|s| s.status == st).count();
    let ike: usize = sessions.iter().map(|s| s.ike_sas.len()).sum();
    let ipsec: u64 = sessions
        .iter()
        .flat_map(|s| &s.flows)
        .map(|f| u64::from(f.active_sas))
        .sum();
    let mut out = String::from("Crypto session summary\n");
    let _ = writeln!(out, "Total sessions: {}", sessions.len());
    for st in [
        Status::UpActive,
        Status::UpIdle,
        Status::UpNoIke,
        Status::DownNegotiating,
        Status::Down,
    ] {
        let _ = writeln!(out, "  {:<17} {}", format!("{st}:"), count(st));
    }
    let _ = writeln!(out, "IKE SAs: {ike}, IPsec SAs: {ipsec}");
    out
}

/// `show crypto isakmp stats`, after IOS's `show crypto ikev2 stats`: the IKE SAs, the
/// responder's half-open SAs against their bounds, and what the flood defence did
/// (RFC 7296 2.6 cookies, per-address and global drops).
/// `reload`: one line per change (peer names and file text are the operator's own, but
/// escaped anyway: a file may hold anything).
pub fn reload(r: &super::proto::ReloadView) -> String {
    use crate::escape::peer_text as e;
    use std::fmt::Write;
    let mut out = String::new();
    let list = |v: &[String]| v.iter().map(|s| e(s)).collect::<Vec<_>>().join(", ");
    let fields = |v: &[super::proto::PeerFields]| {
        v.iter()
            .map(|p| format!("{} ({})", e(&p.name), p.fields.join(", ")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !r.applied {
        let _ = writeln!(
            out,
            "{}: reload refused, the running configuration stays",
            e(&r.file)
        );
        for p in &r.problems {
            let field = if p.field.is_empty() {
                String::new()
            } else {
                format!(" {}:", e(&p.field))
            };
            let _ = writeln!(
                out,
                "  {}:{}:{}:{} {}",
                e(&p.file),
                p.line,
                p.column,
                field,
                e(&p.message)
            );
        }
        for x in &r.refused {
            let _ = writeln!(out, "  {}", e(x));
        }
        return out;
    }
    let _ = writeln!(out, "{}: reloaded", e(&r.file));
    for (what, text) in [
        ("added", list(&r.added)),
        ("removed", list(&r.removed)),
        ("renegotiated", fields(&r.renegotiated)),
        ("updated", fields(&r.updated)),
        ("applied live", list(&r.live)),
        (
            "needs a restart (running values kept)",
            list(&r.restart_needed),
        ),
        ("NOT applied (running values kept)", list(&r.not_applied)),
    ] {
        if !text.is_empty() {
            let _ = writeln!(out, "  {what}: {text}");
        }
    }
    for w in &r.warnings {
        let _ = writeln!(
            out,
            "  warning: {}:{}:{}: {} {}",
            e(&w.file),
            w.line,
            w.column,
            e(&w.field),
            e(&w.message)
        );
    }
    out
}

pub fn isakmp_stats(s: &super::proto::IkeStatsView) -> String {
    let d = &s.dos;
    let off = |n: u32| {
        if n == 0 {
            "off".to_string()
        } else {
            n.to_string()
        }
    };
    let mut out = String::from("Crypto IKEv2 SA statistics\n");
    let _ = writeln!(
        out,
        "Total IKE SAs: {:<10} established: {:<10} half-open (responder): {} (peak {})",
        s.ike_sas, s.established, d.half_open, d.half_open_peak
    );
    let _ = writeln!(
        out,
        "Half-open bounds: cookie threshold {}, per address {}, in all {}, timeout {} s",
        off(s.cookie_threshold),
        off(s.block_threshold),
        off(s.half_open_limit),
        s.half_open_timeout
    );
    let _ = writeln!(
        out,
        "Incoming IKE_SA_INIT cookie challenges sent: {}",
        d.cookies_sent
    );
    let _ = writeln!(
        out,
        "                  accepted: {:<10} rejected: {:<10}",
        d.cookies_valid, d.cookies_invalid
    );
    let _ = writeln!(
        out,
        "IKE_SA_INIT dropped: per address: {:<6} half-open limit: {:<6} malformed: {:<6} no such peer: {}",
        d.dropped_blocked, d.dropped_limit, d.dropped_malformed, d.dropped_unknown_peer
    );
    let _ = writeln!(
        out,
        "Half-open SAs ended without IKE_AUTH: {}",
        d.half_open_failed
    );
    let f = &s.fragments;
    let _ = writeln!(
        out,
        "IKE fragmentation: messages fragmented: {:<6} fragments sent: {:<6} received: {:<6} reassembled: {:<6} held now: {} bytes",
        f.messages_fragmented, f.fragments_sent, f.fragments_received, f.reassembled, f.held_bytes
    );
    let _ = writeln!(
        out,
        "Fragments dropped: duplicate: {:<6} invalid: {:<6} bad ICV: {:<6} over bounds: {:<6} timed out: {:<6} restarted: {}",
        f.dropped_duplicate, f.dropped_invalid, f.dropped_icv, f.dropped_limit, f.timed_out, f.restarted
    );
    let refused: u64 = s.auth.refused.values().sum();
    let _ = write!(
        out,
        "Peer authentications: succeeded: {:<10} refused: {}",
        s.auth.succeeded, refused
    );
    let reasons: Vec<String> = s
        .auth
        .refused
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if !reasons.is_empty() {
        let _ = write!(out, " ({})", reasons.join(", "));
    }
    out.push('\n');
    out
}

/// `show aaa accounting` (vpnd's layout: IOS has no outbox to show).
pub fn aaa_accounting(a: &crate::accounting::AccountingView) -> String {
    let mut out = String::from("RADIUS accounting\n");
    let _ = writeln!(out, "Active sessions: {}", a.active_sessions);
    let _ = writeln!(
        out,
        "Interim updates: {}",
        a.interim_s
            .map_or("off".to_string(), |s| format!("every {s} s"))
    );
    let _ = writeln!(
        out,
        "Outbox: {} queued of {} max, {} in flight (window {}), journal {}",
        a.queued, a.limit, a.in_flight, a.window, a.journal
    );
    let o = &a.outbox;
    let _ = writeln!(
        out,
        "  delivered {}, undelivered rounds {}, refused (outbox full) {}, journal errors {}",
        o.delivered, o.undelivered_rounds, o.refused_full, o.journal_errors
    );
    let _ = writeln!(
        out,
        "  interims skipped {}, waiting for the journal {}, acks not yet journalled {}",
        o.interims_skipped, a.waiting, o.unrecorded_acks
    );
    if a.full {
        let _ = writeln!(
            out,
            "  FULL: new sessions are {}",
            if a.refuses_when_full {
                "refused (accounting.when_full: refuse)"
            } else {
                "accepted without accounting (accounting.when_full: accept)"
            }
        );
    }
    if o.sessions_unaccounted > 0 {
        let _ = writeln!(
            out,
            "  WARNING: {} sessions were NOT accounted (outbox full); see the log",
            o.sessions_unaccounted
        );
    }
    if a.without_crash_stop > 0 {
        let _ = writeln!(
            out,
            "  WARNING: {} active sessions have no durable crash Stop yet (journal writes failing)",
            a.without_crash_stop
        );
    }
    if let Some(s) = a.retry_in_s {
        let _ = writeln!(out, "  no server answered: next try in {s} s");
    }
    if let Some(e) = &o.last_error {
        let _ = writeln!(out, "  last error: {e}");
    }
    for s in &a.servers {
        let _ = writeln!(
            out,
            "Server {} {}: {}",
            s.name,
            s.addr,
            if s.dead { "DEAD" } else { "UP" }
        );
        let _ = writeln!(
            out,
            "  requests {}, retransmissions {}, responses {}, timeouts {}, failed {}",
            s.requests, s.retransmissions, s.responses, s.timeouts, s.failed
        );
        let _ = writeln!(
            out,
            "  ignored responses: forged {}, malformed {}, unmatched {}; in flight {}{}",
            s.forged,
            s.malformed,
            s.unmatched,
            s.in_flight,
            s.last_rtt_us
                .map_or(String::new(), |us| format!(", last RTT {us} us"))
        );
    }
    out
}

/// IOS's `address/port` (no brackets for IPv6).
fn slash(a: SocketAddr) -> String {
    format!("{}/{}", a.ip(), a.port())
}

/// Seconds as `hh:mm:ss` (hours grow past 99 rather than wrap).
fn hms(s: u64) -> String {
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// A traffic selector in IOS words: `host a`, `a/netmask` (IPv4), `a/len` (IPv6), or as given.
pub fn selector(sel: &str) -> String {
    let sel = sel.trim();
    if let Ok(addr) = sel.parse::<IpAddr>() {
        return format!("host {addr}");
    }
    match sel.parse::<IpNet>() {
        Ok(net) if net.prefix_len() == net.max_prefix_len() => format!("host {}", net.addr()),
        Ok(IpNet::V4(net)) => format!("{}/{}", net.addr(), net.netmask()),
        Ok(net @ IpNet::V6(_)) => net.to_string(),
        Err(_) => sel.to_string(),
    }
}

/// `show crypto isakmp peer`.
pub fn isakmp_peers(peers: &[PeerView]) -> String {
    let mut out = String::new();
    for p in peers {
        let _ = writeln!(out, "Peer: {} Port: {}", p.address, p.port);
        if let Some(d) = &p.description {
            let _ = writeln!(out, "  Description: {d}");
        }
        let flags = if p.flags.is_empty() {
            NONE.to_string()
        } else {
            p.flags.join(" ")
        };
        let _ = writeln!(out, "  flags: {flags}");
    }
    out
}

/// The `%CRYPTO-5-SESSION_STATUS` line logged when a session comes up or goes down (no
/// trailing newline). `fvrf=`, `ivrf=`, `Description:` and `Id:` (the phase 1 id) are left out
/// when the session has none.
pub fn session_status_syslog(up: bool, s: &SessionView) -> String {
    let mut out = format!(
        "%CRYPTO-5-SESSION_STATUS: Crypto session is {}. Peer {}",
        if up { "UP" } else { "DOWN" },
        s.key.peer
    );
    if let Some(v) = &s.key.fvrf {
        let _ = write!(out, " fvrf={v}");
    }
    if let Some(v) = &s.key.ivrf {
        let _ = write!(out, " ivrf={v}");
    }
    if let Some(d) = &s.description {
        let _ = write!(out, " Description: {d}");
    }
    if let Some(id) = &s.phase1_id {
        let _ = write!(out, " Id: {id}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::model::{SessionKey, Totals};

    #[test]
    fn a_reload_answer_in_lines_and_escaped() {
        use super::super::proto::{PeerFields, ProblemView, ReloadView};
        let refused = ReloadView {
            file: "/etc/vpnd/vpnd.yaml".into(),
            problems: vec![ProblemView {
                file: "/etc/vpnd/vpnd.yaml".into(),
                line: 12,
                column: 7,
                field: "peers[0].description".into(),
                message: "bad \x1b[2J text".into(),
            }],
            ..ReloadView::default()
        };
        let text = reload(&refused);
        assert_eq!(
            text,
            "/etc/vpnd/vpnd.yaml: reload refused, the running configuration stays\n  \
             /etc/vpnd/vpnd.yaml:12:7: peers[0].description: bad \\x1b[2J text\n"
        );
        let applied = ReloadView {
            file: "/etc/vpnd/vpnd.yaml".into(),
            applied: true,
            added: vec!["b".into()],
            updated: vec![PeerFields {
                name: "a".into(),
                fields: vec!["description".into()],
            }],
            restart_needed: vec!["metrics".into()],
            ..ReloadView::default()
        };
        assert_eq!(
            reload(&applied),
            "/etc/vpnd/vpnd.yaml: reloaded\n  added: b\n  updated: a (description)\n  \
             needs a restart (running values kept): metrics\n"
        );
    }

    // The IOS guide's samples, verbatim (IP Security VPN Monitoring, "show crypto session
    // Command Output Examples", "Verifying Peer Descriptions", the syslog notifications).
    // The guide prints the session block right under the header, and its detail sample omits
    // the header; IOS itself (and vpnd) prints the header, then a blank line before every
    // session: `header()` adds exactly that and nothing else.
    const GUIDE_BRIEF: &str = "\
Interface: FastEthernet0/1
Session status: UP-ACTIVE
Peer: 172.0.0.2/500
  IKE SA: local 172.0.0.1/500 remote 172.0.0.2/500 Active
  IPSEC FLOW: permit ip 10.10.10.0/255.255.255.0 10.30.30.0/255.255.255.0
    Active SAs: 2, origin: crypto map
";

    const GUIDE_DETAIL: &str = "\
Interface: Tunnel0
Session status: UP-ACTIVE
Peer: 10.1.1.3 port 500 fvrf: (none) ivrf: (none)
  Desc: this is my peer at 10.1.1.3:500 Green
  Phase1_id: 10.1.1.3
  IKE SA: local 10.1.1.4/500 remote 10.1.1.3/500 Active
    Capabilities:(none) connid:3 lifetime:22:03:24
  IPSEC FLOW: permit 47 host 10.1.1.4 host 10.1.1.3
    Active SAs: 0, origin: crypto map
    Inbound:  #pkts dec'ed 0 drop 0 life (KB/Sec) 0/0
    Outbound: #pkts enc'ed 0 drop 0 life (KB/Sec) 0/0
  IPSEC FLOW: permit ip host 10.1.1.4 host 10.1.1.3
    Active SAs: 4, origin: crypto map
    Inbound:  #pkts dec'ed 4 drop 0 life (KB/Sec) 4605665/2949
    Outbound: #pkts enc'ed 4 drop 1 life (KB/Sec) 4605665/2949
";

    const GUIDE_PEER: &str = "\
Peer: 10.2.2.9 Port: 500
  Description: connection from site A
  flags: PEER_POLICY
";

    // The guide wraps these at 80 columns; the message is one line.
    const GUIDE_SYSLOG_UP: &str = "%CRYPTO-5-SESSION_STATUS: Crypto session is UP. Peer 10.6.6.1:500 fvrf=name10 ivrf=name20 Description: SJC24-2-VPN-Gateway Id: 10.5.5.2";
    const GUIDE_SYSLOG_DOWN: &str = "%CRYPTO-5-SESSION_STATUS: Crypto session is DOWN. Peer 10.6.6.1:500 fvrf=name10 ivrf=name20 Description: SJC24-2-VPN-Gateway Id: 10.5.5.2";

    fn header(blocks: &[&str]) -> String {
        let mut s = String::from("Crypto session current status\n");
        for b in blocks {
            s.push('\n');
            s.push_str(b);
        }
        s
    }

    fn sock(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn dir(packets: u64, dropped: u64, life_kb: Option<u64>, life_s: u64) -> FlowDirection {
        FlowDirection {
            packets,
            dropped,
            life_kb,
            life_s,
        }
    }

    fn flow(protocol: u8, local: &str, remote: &str, active_sas: u32) -> FlowView {
        FlowView {
            protocol,
            local: local.into(),
            remote: remote.into(),
            active_sas,
            origin: "crypto map".into(),
            inbound: FlowDirection::default(),
            outbound: FlowDirection::default(),
        }
    }

    fn session(peer: &str) -> SessionView {
        let peer = sock(peer);
        SessionView {
            key: SessionKey {
                peer,
                fvrf: None,
                ivrf: None,
            },
            peer_name: "test".into(),
            interface: None,
            status: Status::UpActive,
            description: None,
            phase1_id: None,
            user: None,
            local: "192.0.2.1".parse().unwrap(),
            ike_sas: vec![],
            flows: vec![],
            totals: Totals::default(),
            up_since: None,
            assigned_ip: None,
            assigned_ip6: None,
            session_timeout_s: None,
        }
    }

    /// The guide's `show crypto session` sample.
    fn brief_sample() -> SessionView {
        let mut s = session("172.0.0.2:500");
        s.interface = Some("FastEthernet0/1".into());
        s.local = "172.0.0.1".parse().unwrap();
        s.ike_sas.push(IkeSaView {
            local: sock("172.0.0.1:500"),
            remote: sock("172.0.0.2:500"),
            state: "Active".into(),
            connid: 1,
            lifetime_remaining_s: 86_000,
            capabilities: vec![],
        });
        s.flows.push(flow(0, "10.10.10.0/24", "10.30.30.0/24", 2));
        s
    }

    /// The guide's `show crypto session detail` sample.
    fn detail_sample() -> SessionView {
        let mut s = session("10.1.1.3:500");
        s.interface = Some("Tunnel0".into());
        s.description = Some("this is my peer at 10.1.1.3:500 Green".into());
        s.phase1_id = Some("10.1.1.3".into());
        s.local = "10.1.1.4".parse().unwrap();
        s.ike_sas.push(IkeSaView {
            local: sock("10.1.1.4:500"),
            remote: sock("10.1.1.3:500"),
            state: "Active".into(),
            connid: 3,
            lifetime_remaining_s: 22 * 3600 + 3 * 60 + 24,
            capabilities: vec![],
        });
        let mut gre = flow(47, "10.1.1.4/32", "10.1.1.3/32", 0);
        gre.inbound = dir(0, 0, Some(0), 0);
        gre.outbound = dir(0, 0, Some(0), 0);
        let mut ip = flow(0, "10.1.1.4/32", "10.1.1.3/32", 4);
        ip.inbound = dir(4, 0, Some(4_605_665), 2949);
        ip.outbound = dir(4, 1, Some(4_605_665), 2949);
        s.flows = vec![gre, ip];
        s.totals = Totals {
            bytes_in: 480,
            bytes_out: 520,
            packets_in: 4,
            packets_out: 4,
        };
        s
    }

    fn syslog_sample() -> SessionView {
        let mut s = session("10.6.6.1:500");
        s.key.fvrf = Some("name10".into());
        s.key.ivrf = Some("name20".into());
        s.description = Some("SJC24-2-VPN-Gateway".into());
        s.phase1_id = Some("10.5.5.2".into());
        s
    }

    /// Line-by-line first (a readable failure), then the whole text (trailing newlines).
    fn assert_text(got: &str, want: &str) {
        let (g, w): (Vec<_>, Vec<_>) = (got.lines().collect(), want.lines().collect());
        for (i, (g, w)) in g.iter().zip(&w).enumerate() {
            assert_eq!(g, w, "line {}", i + 1);
        }
        assert_eq!(got, want);
    }

    #[test]
    fn show_crypto_session_matches_the_guide() {
        assert_text(
            &crypto_session(&[brief_sample()], false),
            &header(&[GUIDE_BRIEF]),
        );
    }

    #[test]
    fn show_crypto_session_detail_matches_the_guide_plus_totals() {
        let got = crypto_session(&[detail_sample()], true);
        let totals = "  Totals: in 480 bytes/4 pkts, out 520 bytes/4 pkts\n";
        // vpnd's own line comes last in the session block; the rest is the guide's sample.
        let (ios, ours) = got.split_at(got.len() - totals.len());
        assert_eq!(ours, totals);
        assert_text(ios, &header(&[GUIDE_DETAIL]));
    }

    #[test]
    fn no_sessions_is_just_the_header() {
        assert_eq!(
            crypto_session(&[], false),
            "Crypto session current status\n"
        );
        assert_eq!(crypto_session(&[], true), "Crypto session current status\n");
    }

    #[test]
    fn sessions_are_separated_by_a_blank_line() {
        let got = crypto_session(&[brief_sample(), brief_sample()], false);
        assert_text(&got, &header(&[GUIDE_BRIEF, GUIDE_BRIEF]));
    }

    #[test]
    fn detail_of_the_brief_sample_fills_none_and_ranges() {
        let mut s = brief_sample();
        s.interface = None;
        s.key.fvrf = Some("blue".into());
        s.ike_sas[0].capabilities = vec!["D".into(), "N".into()];
        s.ike_sas[0].lifetime_remaining_s = 100 * 3600 + 59;
        s.flows[0].local = "10.0.0.1-10.0.0.6".into();
        s.flows[0].inbound = dir(7, 0, None, 3600);
        s.flows[0].outbound = dir(9, 2, Some(10), 60);
        let want = header(&["\
Interface: (none)
Session status: UP-ACTIVE
Peer: 172.0.0.2 port 500 fvrf: blue ivrf: (none)
  Desc: (none)
  Phase1_id: (none)
  IKE SA: local 172.0.0.1/500 remote 172.0.0.2/500 Active
    Capabilities:D,N connid:1 lifetime:100:00:59
  IPSEC FLOW: permit ip 10.0.0.1-10.0.0.6 10.30.30.0/255.255.255.0
    Active SAs: 2, origin: crypto map
    Inbound:  #pkts dec'ed 7 drop 0 life (KB/Sec) unlimited/3600
    Outbound: #pkts enc'ed 9 drop 2 life (KB/Sec) 10/60
  Totals: in 0 bytes/0 pkts, out 0 bytes/0 pkts
"]);
        assert_text(&crypto_session(&[s], true), &want);
    }

    #[test]
    fn selectors_in_ios_words() {
        assert_eq!(selector("10.10.10.0/24"), "10.10.10.0/255.255.255.0");
        assert_eq!(selector("0.0.0.0/0"), "0.0.0.0/0.0.0.0");
        assert_eq!(selector("10.1.1.4/32"), "host 10.1.1.4");
        assert_eq!(selector("10.1.1.4"), "host 10.1.1.4");
        assert_eq!(selector("2001:db8::1/128"), "host 2001:db8::1");
        assert_eq!(selector("2001:db8::/64"), "2001:db8::/64");
        assert_eq!(selector("10.0.0.1-10.0.0.6"), "10.0.0.1-10.0.0.6");
    }

    #[test]
    fn ipv6_peer_is_address_slash_port() {
        let mut s = brief_sample();
        s.key.peer = sock("[2001:db8::2]:4500");
        s.ike_sas[0].local = sock("[2001:db8::1]:4500");
        s.ike_sas[0].remote = sock("[2001:db8::2]:4500");
        let got = crypto_session(&[s], false);
        assert!(got.contains("\nPeer: 2001:db8::2/4500\n"), "{got}");
        assert!(
            got.contains("\n  IKE SA: local 2001:db8::1/4500 remote 2001:db8::2/4500 Active\n"),
            "{got}"
        );
    }

    #[test]
    fn show_crypto_isakmp_peer_matches_the_guide() {
        let peer = PeerView {
            name: "siteA".into(),
            address: "10.2.2.9".into(),
            port: 500,
            description: Some("connection from site A".into()),
            flags: vec!["PEER_POLICY".into()],
        };
        assert_text(&isakmp_peers(std::slice::from_ref(&peer)), GUIDE_PEER);

        let bare = PeerView {
            description: None,
            flags: vec![],
            ..peer.clone()
        };
        assert_text(
            &isakmp_peers(&[peer, bare]),
            &format!("{GUIDE_PEER}Peer: 10.2.2.9 Port: 500\n  flags: (none)\n"),
        );
        assert_eq!(isakmp_peers(&[]), "");
    }

    #[test]
    fn syslog_up_and_down_match_the_guide() {
        let s = syslog_sample();
        assert_eq!(session_status_syslog(true, &s), GUIDE_SYSLOG_UP);
        assert_eq!(session_status_syslog(false, &s), GUIDE_SYSLOG_DOWN);
    }

    #[test]
    fn syslog_omits_what_the_session_lacks() {
        // The guide's peer-description sample, with "session" (this module's wording).
        let mut s = session("10.2.2.9:500");
        s.description = Some("connection from site A".into());
        s.phase1_id = Some("ezvpn".into());
        assert_eq!(
            session_status_syslog(true, &s),
            "%CRYPTO-5-SESSION_STATUS: Crypto session is UP. Peer 10.2.2.9:500 Description: connection from site A Id: ezvpn"
        );
        let mut s = session("[2001:db8::9]:4500");
        s.key.ivrf = Some("inside".into());
        assert_eq!(
            session_status_syslog(false, &s),
            "%CRYPTO-5-SESSION_STATUS: Crypto session is DOWN. Peer [2001:db8::9]:4500 ivrf=inside"
        );
    }

    #[test]
    fn brief_is_one_line_per_session_grouped_by_ivrf() {
        let mut a = detail_sample();
        a.up_since = Some(1_000_000);
        let mut b = syslog_sample();
        b.status = Status::UpNoIke;
        b.up_since = Some(1_000_000 - 2 * 86_400 - 3 * 3600);
        let mut c = session("192.0.2.9:500");
        c.status = Status::DownNegotiating;
        let got = crypto_session_brief(&[a, b, c], 1_000_014);
        let want = "\
Status: A- Active, U - Up, D - Down, I - Idle, S - Standby, N - Negotiating
        K - No IKE
ivrf = (none)
Peer            I/F          Username        Group/Phase1_id          Uptime   Status
10.1.1.3        Tunnel0                      10.1.1.3                 00:00:14 UA
192.0.2.9       -                            -                        -        DN
ivrf = name20
Peer            I/F          Username        Group/Phase1_id          Uptime   Status
10.6.6.1        -                            10.5.5.2                 2d03h    UK
";
        assert_text(&got, want);
    }

    /// A remote-access client: its user in brief's Username column, its address in detail.
    #[test]
    fn a_client_shows_its_username_and_assigned_address() {
        let mut s = session("192.0.2.2:500");
        s.interface = Some("t0".into());
        s.phase1_id = Some("joe@cclient".into());
        s.assigned_ip = Some("203.0.113.200".parse().unwrap());
        s.up_since = Some(1000);
        let brief = crypto_session_brief(std::slice::from_ref(&s), 1010);
        assert!(
            brief.contains(
                "192.0.2.2       t0           joe@cclient     joe@cclient              00:00:10 UA\n"
            ),
            "{brief}"
        );
        let detail = crypto_session(std::slice::from_ref(&s), true);
        assert!(detail.contains("  Phase1_id: joe@cclient\n  Username: joe@cclient\n  Assigned address: 203.0.113.200\n"), "{detail}");
        assert!(!detail.contains("Session timeout"), "{detail}");
        // Dual-stack, with a RADIUS Session-Timeout running.
        s.assigned_ip6 = Some("2001:db8:77::1".parse().unwrap());
        s.session_timeout_s = Some(75);
        let detail = crypto_session(&[s], true);
        assert!(detail.contains("  Assigned address: 203.0.113.200, 2001:db8:77::1\n  Session timeout: 00:01:15 left (RADIUS)\n"), "{detail}");
    }

    /// An EAP client's user is its EAP identity, not its IKE identity (Windows sends its
    /// address as IDi); a client and its user found by `username` either way.
    #[test]
    fn an_eap_client_shows_its_eap_user() {
        let mut s = session("192.0.2.30:4500");
        s.phase1_id = Some("192.0.2.30".into());
        s.user = Some(crate::session::model::SessionUser {
            username: "joe@cclient".into(),
            class: vec![],
            radius_server: "r1".into(),
        });
        let brief = crypto_session_brief(std::slice::from_ref(&s), 1010);
        assert!(
            brief.contains("192.0.2.30      -            joe@cclient     192.0.2.30 "),
            "{brief}"
        );
        let detail = crypto_session(std::slice::from_ref(&s), true);
        assert!(detail.contains("  Username: joe@cclient\n"), "{detail}");
        assert!(!detail.contains("Assigned address"), "{detail}");
        let f = |u: &str| crate::control::proto::Filter {
            username: Some(u.into()),
            ..Default::default()
        };
        assert!(f("joe@cclient").matches(&s) && !f("ann@cclient").matches(&s));
    }

    #[test]
    fn show_ip_local_pool_layout() {
        use crate::ike::pool::Family;
        let mut pools = vec![crate::ike::PoolStats {
            name: "addressA".into(),
            family: Family::Ipv4,
            begin: "192.168.1.1".parse().unwrap(),
            end: "192.168.1.253".parse().unwrap(),
            free: 251,
            in_use: 2,
            refused: 1,
        }];
        let want = concat!(
            " Pool                     Begin           End                Free  In use  Refused\n",
            " addressA                 192.168.1.1     192.168.1.253       251       2        1\n",
        );
        assert_text(&local_pools(&pools, 0, 0), want);
        let j = serde_json::to_value(&pools[0]).unwrap();
        assert_eq!(j["in_use"], 2);
        assert_eq!(j["free"], 251);
        assert_eq!(j["refused"], 1);
        assert_eq!(j["family"], "ipv4");
        pools.push(crate::ike::PoolStats {
            name: "v6".into(),
            family: Family::Ipv6,
            begin: "2001:db8:77::1".parse().unwrap(),
            end: "2001:db8:77::ffff:ffff:ffff:ffff".parse().unwrap(),
            free: u64::MAX - 1,
            in_use: 1,
            refused: 0,
        });
        let got = local_pools(&pools, 2, 1);
        assert!(got.contains(" Pool                     Begin                                   End                                        Free  In use  Refused\n v6                       2001:db8:77::1                          2001:db8:77:0:ffff:ffff:ffff:ffff       18446744073709551614       1        0\n"), "{got}");
        assert!(got.contains("not configured: 2\n"), "{got}");
        assert!(
            got.contains("(kept until their sessions end): 1\n"),
            "{got}"
        );
        // An answer from a vpnd before IPv6 pools: no family, IPv4.
        let old: crate::ike::PoolStats = serde_json::from_str(
            r#"{"name":"a","begin":"10.0.0.1","end":"10.0.0.2","free":2,"in_use":0,"refused":0}"#,
        )
        .unwrap();
        assert_eq!(old.family, Family::Ipv4);
    }

    #[test]
    fn summary_counts_each_state_and_the_sas() {
        let mut idle = session("192.0.2.7:500");
        idle.status = Status::UpIdle;
        idle.ike_sas = brief_sample().ike_sas;
        let got = crypto_session_summary(&[brief_sample(), detail_sample(), idle]);
        let want = "\
Crypto session summary
Total sessions: 3
  UP-ACTIVE:        2
  UP-IDLE:          1
  UP-NO-IKE:        0
  DOWN-NEGOTIATING: 0
  DOWN:             0
IKE SAs: 3, IPsec SAs: 6
";
        assert_text(&got, want);
        assert_eq!(
            crypto_session_summary(&[]).lines().nth(1),
            Some("Total sessions: 0")
        );
    }

    #[test]
    fn isakmp_stats_layout() {
        let v = crate::control::proto::IkeStatsView {
            ike_sas: 12,
            established: 1,
            dos: crate::ike::DosStats {
                half_open: 11,
                half_open_peak: 11,
                cookies_sent: 19_990,
                cookies_valid: 1,
                cookies_invalid: 2,
                dropped_blocked: 0,
                dropped_limit: 0,
                dropped_malformed: 0,
                dropped_unknown_peer: 4,
                half_open_failed: 0,
            },
            cookie_threshold: 10,
            block_threshold: 0,
            half_open_limit: 10_000,
            half_open_timeout: 30,
            fragments: crate::ike::FragStats {
                messages_fragmented: 2,
                fragments_sent: 6,
                fragments_received: 3,
                reassembled: 1,
                dropped_duplicate: 1,
                dropped_invalid: 4,
                ..Default::default()
            },
            auth: crate::ike::AuthStats {
                succeeded: 3,
                refused: [("expired".to_string(), 1), ("unknown_ca".to_string(), 2)].into(),
            },
        };
        let text = isakmp_stats(&v);
        assert!(
            text.contains("messages fragmented: 2      fragments sent: 6"),
            "{text}"
        );
        assert!(
            text.contains("reassembled: 1      held now: 0 bytes\n"),
            "{text}"
        );
        assert!(text.contains("duplicate: 1      invalid: 4"), "{text}");
        assert!(text.starts_with("Crypto IKEv2 SA statistics\n"), "{text}");
        assert!(
            text.contains("half-open (responder): 11 (peak 11)"),
            "{text}"
        );
        assert!(
            text.contains("cookie threshold 10, per address off, in all 10000"),
            "{text}"
        );
        assert!(text.contains("cookie challenges sent: 19990"), "{text}");
        assert!(text.contains("accepted: 1          rejected: 2"), "{text}");
        assert!(text.contains("no such peer: 4"), "{text}");
        assert!(
            text.contains("succeeded: 3          refused: 3 (expired 1, unknown_ca 2)"),
            "{text}"
        );
        // The JSON carries the counters flat beside the bounds, and reads back.
        let j = serde_json::to_value(&v).unwrap();
        assert_eq!(j["cookies_sent"], 19_990);
        assert_eq!(j["cookie_threshold"], 10);
        assert_eq!(j["fragments"]["reassembled"], 1);
        let back: crate::control::proto::IkeStatsView = serde_json::from_value(j).unwrap();
        assert_eq!(back, v);
    }
}
