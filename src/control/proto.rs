//! The control socket protocol between `vpnctl` (and scripts) and the daemon: one JSON
//! object per line each way, versioned, so a script can speak it with `socat` and a future
//! vpnctl can tell an old daemon apart. The JSON schema of the sessions is
//! `session::model`; this file is the envelope.
//!
//! Request:  `{"v":1,"cmd":"show_sessions"}`
//! Response: `{"v":1,"ok":true,"sessions":[...]}` or `{"v":1,"ok":false,"error":"..."}`

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::session::model::{PeerView, SessionView};

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// At most this many bytes in one request line; a client sending more is disconnected.
pub const MAX_REQUEST: usize = 64 * 1024;

/// Which sessions a command applies to; no field set means all (IOS `clear crypto session`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fvrf: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ivrf: Option<String>,
    /// The client's identity as `show` prints it (Phase1_id, IOS `username`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

impl Filter {
    /// Exactly the sessions the filter names (IOS: a local address clears every session
    /// using it as the local crypto endpoint). Addresses compare in canonical form
    /// (`::ffff:192.0.2.1` is `192.0.2.1`); the local port is that of the session's IKE
    /// SAs, so a session without one (UP-NO-IKE) never matches a local port.
    pub fn matches(&self, s: &SessionView) -> bool {
        let same = |a: IpAddr, b: IpAddr| a.to_canonical() == b.to_canonical();
        self.local.is_none_or(|a| same(a, s.local))
            && self
                .local_port
                .is_none_or(|p| s.ike_sas.iter().any(|i| i.local.port() == p))
            && self.remote.is_none_or(|a| same(a, s.key.peer.ip()))
            && self.remote_port.is_none_or(|p| p == s.key.peer.port())
            && self
                .fvrf
                .as_ref()
                .is_none_or(|v| Some(v) == s.key.fvrf.as_ref())
            && self
                .ivrf
                .as_ref()
                .is_none_or(|v| Some(v) == s.key.ivrf.as_ref())
            && self.username.as_ref().is_none_or(|u| {
                Some(u.as_str()) == s.username() || Some(u.as_str()) == s.phase1_id.as_deref()
            })
    }
}

/// The layouts of `show crypto session`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionDisplay {
    /// No keyword: the summary listing.
    #[default]
    Normal,
    Brief,
    Summary,
    Detail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    ShowSessions {
        #[serde(default)]
        filter: Filter,
        /// Ask for IOS text in this layout instead of the session list: the daemon renders
        /// it, so vpnctl does not decode thousands of sessions only to print them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<SessionDisplay>,
    },
    ShowPeers {},
    /// `show crypto isakmp stats`: IKE SA counts and the responder's DoS figures.
    ShowIkeStats {},
    /// `show aaa accounting`: the outbox, its journal and the RADIUS servers.
    ShowAccounting {},
    /// `show ip local pool`: each address pool's figures.
    ShowPools {},
    ClearSessions {
        #[serde(default)]
        filter: Filter,
    },
    /// `debug crypto isakmp [aaa] on|off`: the daemon's log filter, without a restart.
    Debug {
        aaa: bool,
        on: bool,
    },
    /// `reload` (and SIGHUP): re-read the configuration file and apply the difference.
    Reload {},
}

impl Command {
    /// The command in vpnctl's (IOS) words, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Command::ShowSessions { .. } => "show crypto session",
            Command::ShowPeers {} => "show crypto isakmp peer",
            Command::ShowIkeStats {} => "show crypto isakmp stats",
            Command::ShowAccounting {} => "show aaa accounting",
            Command::ShowPools {} => "show ip local pool",
            Command::ClearSessions { .. } => "clear crypto session",
            Command::Debug { .. } => "debug crypto isakmp",
            Command::Reload {} => "reload",
        }
    }

    /// Whether the command changes the daemon's state (sessions, log filter, the
    /// configuration): those need `control.admin_group` (or root),
    /// the others `control.group`. Exhaustive on purpose, so a new command must choose.
    pub fn changes_state(&self) -> bool {
        match self {
            Command::ShowSessions { .. }
            | Command::ShowPeers {}
            | Command::ShowIkeStats {}
            | Command::ShowAccounting {}
            | Command::ShowPools {} => false,
            Command::ClearSessions { .. } | Command::Debug { .. } | Command::Reload {} => true,
        }
    }
}

/// `show crypto isakmp stats`: the engine's IKE SAs and its DoS counters (RFC 7296 2.6),
/// with the bounds they are measured against.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IkeStatsView {
    /// IKE SAs the engine holds (any state), and how many of them are established.
    pub ike_sas: u64,
    pub established: u64,
    #[serde(flatten)]
    pub dos: crate::ike::DosStats,
    pub cookie_threshold: u32,
    pub block_threshold: u32,
    pub half_open_limit: u32,
    /// Seconds.
    pub half_open_timeout: u64,
    /// IKE fragmentation (RFC 7383): fragments sent, received, reassembled and dropped.
    #[serde(default)]
    pub fragments: crate::ike::FragStats,
    /// Peer authentications in IKE_AUTH: succeeded, and refused by reason
    /// (`expired`, `unknown_ca`, `identity_mismatch`, `psk_mismatch`, ...).
    #[serde(default)]
    pub auth: crate::ike::AuthStats,
}

/// One located problem of a configuration file (`file:line:column: field: message`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemView {
    pub file: String,
    /// 1-based; 0 when the parser could not tell (then column is 0 too).
    pub line: u64,
    pub column: u64,
    /// The key path (`peers[0].psk`); empty for YAML syntax errors.
    pub field: String,
    pub message: String,
}

impl From<&crate::config::Problem> for ProblemView {
    fn from(p: &crate::config::Problem) -> ProblemView {
        ProblemView {
            file: p.file.display().to_string(),
            line: p.line,
            column: p.column,
            field: p.field.clone(),
            message: p.message.clone(),
        }
    }
}

/// A peer and the fields that changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerFields {
    pub name: String,
    pub fields: Vec<String>,
}

/// `reload`: what changed and what was done, or why nothing was.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadView {
    /// The file read.
    pub file: String,
    /// False: refused whole, the running configuration stays.
    pub applied: bool,
    /// Why it was refused: located problems of the file (empty when it could not be read,
    /// see `error`), or changes only a restart can make (`refused`).
    pub problems: Vec<ProblemView>,
    pub refused: Vec<String>,
    /// Peers started (initiated, or waited for), deleted with their peer, renegotiated
    /// (IKE SAs deleted, then brought up again as `start` says), updated in place (their
    /// SAs carry on).
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub renegotiated: Vec<PeerFields>,
    pub updated: Vec<PeerFields>,
    /// Sections applied live.
    pub live: Vec<String>,
    /// Sections that changed but keep their running values until vpnd restarts.
    pub restart_needed: Vec<String>,
    /// Live parts that failed as they were applied (the metrics endpoint could not bind
    /// its new address): their running values stay; the rest of the reload applied.
    #[serde(default)]
    pub not_applied: Vec<String>,
    /// The new file's warnings.
    pub warnings: Vec<ProblemView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub v: u32,
    #[serde(flatten)]
    pub command: Command,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Body {
    Sessions {
        sessions: Vec<SessionView>,
    },
    Peers {
        peers: Vec<PeerView>,
    },
    Cleared {
        cleared: usize,
    },
    /// The answer to `debug crypto isakmp [aaa] on|off`, in IOS words.
    Debug {
        debug: String,
    },
    /// A `show` already rendered as IOS text.
    Text {
        text: String,
    },
    Accounting {
        accounting: Box<crate::accounting::AccountingView>,
    },
    IkeStats {
        ike_stats: Box<IkeStatsView>,
    },
    Pools {
        pools: Vec<crate::ike::PoolStats>,
        /// Clients refused because RADIUS named a pool that is not configured.
        #[serde(default)]
        unknown_pool_refused: u64,
        /// Leases kept with their sessions outside every pool (a reload shrank or removed
        /// theirs), or fixed by RADIUS outside every pool.
        #[serde(default)]
        leases_outside_pools: u32,
    },
    /// What a reload did, or (with `ok: false`) why it was refused.
    Reload {
        reload: Box<ReloadView>,
    },
    Done {},
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub v: u32,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Body>,
}

impl Response {
    pub fn ok(body: Body) -> Response {
        Response {
            v: VERSION,
            ok: true,
            error: None,
            body: Some(body),
        }
    }
    pub fn error(message: impl Into<String>) -> Response {
        Response {
            v: VERSION,
            ok: false,
            error: Some(message.into()),
            body: None,
        }
    }
}

/// Why a request line was refused (the connection is then closed; the daemon carries on).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("request longer than {MAX_REQUEST} bytes")]
    TooLong,
    #[error("not a request: {0}")]
    Malformed(String),
    #[error("protocol version {0} not supported (this daemon speaks {VERSION})")]
    Version(u32),
}

/// Parses one request line.
pub fn parse_request(line: &[u8]) -> Result<Command, RequestError> {
    if line.len() > MAX_REQUEST {
        return Err(RequestError::TooLong);
    }
    // The version first, so an unknown command from a newer client says "version"; then the
    // command alone, strictly (serde cannot deny unknown fields through `flatten`).
    let mut value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| RequestError::Malformed(e.to_string()))?;
    let obj = value
        .as_object_mut()
        .ok_or_else(|| RequestError::Malformed("not a JSON object".into()))?;
    let v = obj
        .remove("v")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| RequestError::Malformed("no protocol version \"v\"".into()))?;
    if v != u64::from(VERSION) {
        return Err(RequestError::Version(u32::try_from(v).unwrap_or(u32::MAX)));
    }
    serde_json::from_value(value).map_err(|e| RequestError::Malformed(e.to_string()))
}

pub fn request_line(command: Command) -> String {
    let mut s = serde_json::to_string(&Request {
        v: VERSION,
        command,
    })
    .expect("requests always serialize");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_with_a_stable_wire_form() {
        let line = request_line(Command::ShowSessions {
            filter: Filter {
                remote: Some("10.1.1.3".parse().unwrap()),
                ..Default::default()
            },
            text: None,
        });
        assert_eq!(
            line,
            "{\"v\":1,\"cmd\":\"show_sessions\",\"filter\":{\"remote\":\"10.1.1.3\"}}\n"
        );
        assert_eq!(
            parse_request(line.trim_end().as_bytes()),
            Ok(Command::ShowSessions {
                filter: Filter {
                    remote: Some("10.1.1.3".parse().unwrap()),
                    ..Default::default()
                },
                text: None,
            })
        );
        // The IOS text of a layout, rendered by the daemon.
        let line = request_line(Command::ShowSessions {
            filter: Filter::default(),
            text: Some(SessionDisplay::Brief),
        });
        assert_eq!(
            line,
            "{\"v\":1,\"cmd\":\"show_sessions\",\"filter\":{},\"text\":\"brief\"}\n"
        );
        assert!(parse_request(br#"{"v":1,"cmd":"show_sessions","text":"fancy"}"#).is_err());
        assert_eq!(
            parse_request(br#"{"v":1,"cmd":"show_peers"}"#),
            Ok(Command::ShowPeers {})
        );
        assert_eq!(
            parse_request(br#"{"v":1,"cmd":"debug","aaa":true,"on":false}"#),
            Ok(Command::Debug {
                aaa: true,
                on: false
            })
        );
        assert_eq!(
            parse_request(br#"{"v":1,"cmd":"clear_sessions"}"#),
            Ok(Command::ClearSessions {
                filter: Filter::default()
            })
        );
    }

    #[test]
    fn only_show_commands_leave_the_daemon_unchanged() {
        let show = [
            Command::ShowSessions {
                filter: Filter::default(),
                text: None,
            },
            Command::ShowPeers {},
            Command::ShowAccounting {},
        ];
        for c in &show {
            assert!(!c.changes_state(), "{c:?}");
            assert!(c.name().starts_with("show "), "{}", c.name());
        }
        let change = [
            Command::ClearSessions {
                filter: Filter::default(),
            },
            Command::Debug {
                aaa: true,
                on: true,
            },
        ];
        for c in &change {
            assert!(c.changes_state(), "{c:?}");
        }
        assert_eq!(change[0].name(), "clear crypto session");
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert!(matches!(
            parse_request(b"hello"),
            Err(RequestError::Malformed(_))
        ));
        assert!(matches!(
            parse_request(br#"{"v":1,"cmd":"reboot"}"#),
            Err(RequestError::Malformed(_))
        ));
        assert!(matches!(
            parse_request(br#"{"v":1,"cmd":"show_peers","extra":1}"#),
            Err(RequestError::Malformed(_))
        ));
        assert_eq!(
            parse_request(br#"{"v":2,"cmd":"future"}"#),
            Err(RequestError::Version(2))
        );
        assert_eq!(
            parse_request(&vec![b' '; MAX_REQUEST + 1]),
            Err(RequestError::TooLong)
        );
    }

    #[test]
    fn responses_carry_either_a_body_or_an_error() {
        let ok = serde_json::to_string(&Response::ok(Body::Cleared { cleared: 2 })).unwrap();
        assert_eq!(ok, r#"{"v":1,"ok":true,"cleared":2}"#);
        let err = serde_json::to_string(&Response::error("no such peer")).unwrap();
        assert_eq!(err, r#"{"v":1,"ok":false,"error":"no such peer"}"#);
        let back: Response = serde_json::from_str(&ok).unwrap();
        assert_eq!(back.body, Some(Body::Cleared { cleared: 2 }));
    }

    #[test]
    fn filters_match_exactly_the_named_sessions() {
        use crate::session::table::{PeerInfo, SessionTable};
        let mut t = SessionTable::new();
        let peer = |name: &str, ivrf: Option<&str>| PeerInfo {
            name: name.into(),
            description: None,
            fvrf: None,
            ivrf: ivrf.map(str::to_string),
            dynamic: false,
            interface: None,
        };
        t.ike_up(
            1,
            peer("a", None),
            "192.0.2.1:500".parse().unwrap(),
            "192.0.2.2:500".parse().unwrap(),
            None,
            true,
            0,
        );
        t.ike_up(
            2,
            peer("b", Some("blue")),
            "192.0.2.1:500".parse().unwrap(),
            "192.0.2.3:4500".parse().unwrap(),
            None,
            true,
            0,
        );
        let views = t.views(0);
        let names = |f: &Filter| {
            views
                .iter()
                .filter(|s| f.matches(s))
                .map(|s| s.peer_name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&Filter::default()),
            ["a", "b"],
            "no filter: every session"
        );
        assert_eq!(
            names(&Filter {
                remote: Some("192.0.2.3".parse().unwrap()),
                ..Default::default()
            }),
            ["b"]
        );
        assert_eq!(
            names(&Filter {
                remote: Some("192.0.2.3".parse().unwrap()),
                remote_port: Some(500),
                ..Default::default()
            }),
            Vec::<String>::new()
        );
        assert_eq!(
            names(&Filter {
                local: Some("192.0.2.1".parse().unwrap()),
                ..Default::default()
            }),
            ["a", "b"]
        );
        assert_eq!(
            names(&Filter {
                ivrf: Some("blue".into()),
                ..Default::default()
            }),
            ["b"]
        );
        assert_eq!(
            names(&Filter {
                fvrf: Some("blue".into()),
                ..Default::default()
            }),
            Vec::<String>::new()
        );
    }
}
