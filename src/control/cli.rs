//! vpnctl's grammar, in IOS words:
//!
//! ```text
//! vpnctl [--json] [--socket PATH] show crypto session [brief|summary|detail]
//!            [local IP [port N]] [remote IP [port N]] [fvrf NAME] [ivrf NAME] [username NAME]
//! vpnctl show crypto isakmp peer
//! vpnctl show ip local pool
//! vpnctl show aaa accounting
//! vpnctl clear crypto session [local IP [port N]] [remote IP [port N]] [fvrf NAME] [ivrf NAME]
//!            [username NAME]
//! vpnctl debug crypto isakmp [aaa] on|off
//! ```
//!
//! As on IOS, every word may be abbreviated to an unambiguous prefix: `sh cr sess det`,
//! `sh cry isa peer`, `cle cr sess rem 192.0.2.2`. The command words are clap subcommands
//! (`infer_subcommands`); the words after `session` and `isakmp` (filters, the view, `aaa`,
//! `on|off`) are parsed here, by [`parse_session_words`] and [`parse_debug_words`], which take
//! the same prefixes and name what was expected when a word does not fit. Filter words may come
//! in any order, each at most once; `port N` must directly follow `local IP` or `remote IP`.
//! Words are case-sensitive (lowercase), like clap's subcommand inference.
//!
//! `--json` and `--socket PATH` are global: accepted before, between or after the words.
//! Usage errors (clap's own and the word parser's) are [`clap::Error`]s whose exit code is
//! [`EXIT_USAGE`] (2); `--help` and `--version` exit 0.

use std::ffi::OsString;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use crate::control::proto;
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};

/// Where vpnd listens for vpnctl unless `--socket` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/vpnd/vpnd.sock";

/// Exit code of a usage error (clap's, and ours).
pub const EXIT_USAGE: u8 = 2;
/// Exit code when the daemon cannot be reached.
pub const EXIT_UNREACHABLE: u8 = 3;

/// One parsed vpnctl invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    /// `--json`: print the model as JSON instead of IOS text.
    pub json: bool,
    /// `--socket PATH`: the daemon's control socket.
    pub socket: PathBuf,
    pub command: Command,
}

/// What the operator asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `show crypto session [brief|summary|detail] [filters]`
    ShowCryptoSession {
        display: SessionDisplay,
        filter: SessionFilter,
    },
    /// `show crypto isakmp peer`
    ShowCryptoIsakmpPeer,
    /// `show crypto isakmp stats`
    ShowCryptoIsakmpStats,
    /// `show aaa accounting`
    ShowAaaAccounting,
    /// `show ip local pool`
    ShowIpLocalPool,
    /// `clear crypto session [filters]`: no filter clears every session.
    ClearCryptoSession { filter: SessionFilter },
    /// `debug crypto isakmp [aaa] on|off`
    DebugCryptoIsakmp { aaa: bool, on: bool },
    /// `reload`: vpnd re-reads its configuration file (not IOS's reboot).
    Reload,
}

pub use crate::control::proto::SessionDisplay;

/// Which sessions a `show` or `clear` applies to (IOS: local/remote address and port, fvrf,
/// ivrf). Every given criterion must hold; the empty filter matches every session.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SessionFilter {
    /// Our IKE address, and optionally our IKE port.
    pub local: Option<(IpAddr, Option<u16>)>,
    /// The peer's IKE address, and optionally its port.
    pub remote: Option<(IpAddr, Option<u16>)>,
    pub fvrf: Option<String>,
    pub ivrf: Option<String>,
    /// The client's identity (IOS `username`): the session's Phase1_id.
    pub username: Option<String>,
}

impl SessionFilter {
    pub fn is_empty(&self) -> bool {
        *self == SessionFilter::default()
    }
}

impl From<&SessionFilter> for proto::Filter {
    fn from(f: &SessionFilter) -> proto::Filter {
        proto::Filter {
            local: f.local.map(|(a, _)| a),
            local_port: f.local.and_then(|(_, p)| p),
            remote: f.remote.map(|(a, _)| a),
            remote_port: f.remote.and_then(|(_, p)| p),
            fvrf: f.fvrf.clone(),
            ivrf: f.ivrf.clone(),
            username: f.username.clone(),
        }
    }
}

impl Invocation {
    /// The request to send: with `--json` a `show` asks for the session list (the stable
    /// schema), without it for the IOS text, which the daemon renders.
    pub fn request(&self) -> proto::Command {
        let mut r = self.command.request();
        if let proto::Command::ShowSessions { text, .. } = &mut r {
            if self.json {
                *text = None;
            }
        }
        r
    }
}

impl Command {
    /// The control-socket request that carries this command; a `show crypto session` asks
    /// for its IOS layout as text.
    pub fn request(&self) -> proto::Command {
        match self {
            Command::ShowCryptoSession { filter, display } => proto::Command::ShowSessions {
                filter: filter.into(),
                text: Some(*display),
            },
            Command::ShowCryptoIsakmpPeer => proto::Command::ShowPeers {},
            Command::ShowCryptoIsakmpStats => proto::Command::ShowIkeStats {},
            Command::ShowAaaAccounting => proto::Command::ShowAccounting {},
            Command::ShowIpLocalPool => proto::Command::ShowPools {},
            Command::ClearCryptoSession { filter } => proto::Command::ClearSessions {
                filter: filter.into(),
            },
            Command::DebugCryptoIsakmp { aaa, on } => proto::Command::Debug { aaa: *aaa, on: *on },
            Command::Reload => proto::Command::Reload {},
        }
    }
}

/// A word after `session` or `isakmp` that does not fit the grammar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WordError {
    /// Not a keyword, nor a prefix of one allowed here.
    Unknown {
        word: String,
        expected: Vec<&'static str>,
    },
    /// A prefix of more than one keyword.
    Ambiguous {
        word: String,
        candidates: Vec<&'static str>,
    },
    /// A keyword given a second time.
    Repeated { keyword: &'static str },
    /// A keyword that cannot stand where it is (`port` not after an address, two views).
    Misplaced {
        keyword: &'static str,
        reason: &'static str,
    },
    /// A keyword's value is missing.
    MissingValue {
        keyword: &'static str,
        what: &'static str,
    },
    /// A keyword's value does not parse.
    BadValue {
        keyword: &'static str,
        value: String,
        what: &'static str,
    },
    /// The command stopped before a required word.
    Incomplete { expected: Vec<&'static str> },
    /// A word after the end of the command.
    Trailing { word: String, after: &'static str },
}

impl fmt::Display for WordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WordError::Unknown { word, expected } if expected.is_empty() => {
                write!(f, "unknown word '{word}': nothing more is expected")
            }
            WordError::Unknown { word, expected } => write!(
                f,
                "unknown word '{word}': expected one of: {}",
                expected.join(", ")
            ),
            WordError::Ambiguous { word, candidates } => write!(
                f,
                "ambiguous word '{word}': could be any of: {}",
                candidates.join(", ")
            ),
            WordError::Repeated { keyword } => write!(f, "'{keyword}' given twice"),
            WordError::Misplaced { keyword, reason } => write!(f, "'{keyword}' {reason}"),
            WordError::MissingValue { keyword, what } => {
                write!(f, "'{keyword}' needs {what}")
            }
            WordError::BadValue {
                keyword,
                value,
                what,
            } => write!(f, "'{value}' after '{keyword}' is not {what}"),
            WordError::Incomplete { expected } => write!(
                f,
                "incomplete command: expected one of: {}",
                expected.join(", ")
            ),
            WordError::Trailing { word, after } => {
                write!(
                    f,
                    "unexpected word '{word}': the command ends after '{after}'"
                )
            }
        }
    }
}

impl std::error::Error for WordError {}

const VIEWS: [&str; 3] = ["brief", "summary", "detail"];
const FILTERS: [&str; 5] = ["local", "remote", "fvrf", "ivrf", "username"];
const PORT: &str = "port";

/// Resolves `word` to the keyword it names in `vocabulary`: an exact match, or the one keyword
/// it is a prefix of. `expected` is what the error lists for an unknown word.
fn keyword(
    word: &str,
    vocabulary: &[&'static str],
    expected: impl FnOnce() -> Vec<&'static str>,
) -> Result<&'static str, WordError> {
    if let Some(k) = vocabulary.iter().find(|k| **k == word) {
        return Ok(k);
    }
    let candidates: Vec<&'static str> = if word.is_empty() {
        vec![]
    } else {
        vocabulary
            .iter()
            .copied()
            .filter(|k| k.starts_with(word))
            .collect()
    };
    match candidates.as_slice() {
        [k] => Ok(k),
        [] => Err(WordError::Unknown {
            word: word.to_string(),
            expected: expected(),
        }),
        _ => Err(WordError::Ambiguous {
            word: word.to_string(),
            candidates,
        }),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Local,
    Remote,
}

/// The words after `show crypto session` (`allow_display`) or `clear crypto session`.
pub fn parse_session_words<S: AsRef<str>>(
    words: &[S],
    allow_display: bool,
) -> Result<(SessionDisplay, SessionFilter), WordError> {
    let vocabulary: Vec<&'static str> = if allow_display {
        VIEWS
            .iter()
            .chain(&FILTERS)
            .chain(&[PORT])
            .copied()
            .collect()
    } else {
        FILTERS.iter().chain(&[PORT]).copied().collect()
    };
    let mut display: Option<SessionDisplay> = None;
    let mut filter = SessionFilter::default();
    // The address just read, still open for `port N`.
    let mut open: Option<Side> = None;
    let mut words = words.iter().map(AsRef::as_ref);

    while let Some(word) = words.next() {
        let expected = || {
            let mut e = Vec::new();
            if open.is_some() {
                e.push(PORT);
            }
            if allow_display && display.is_none() {
                e.extend(VIEWS);
            }
            let used = [
                filter.local.is_some(),
                filter.remote.is_some(),
                filter.fvrf.is_some(),
                filter.ivrf.is_some(),
                filter.username.is_some(),
            ];
            e.extend(
                FILTERS
                    .iter()
                    .zip(used)
                    .filter(|(_, u)| !u)
                    .map(|(k, _)| *k),
            );
            e
        };
        let k = keyword(word, &vocabulary, expected)?;
        let was_open = open.take();
        match k {
            "brief" | "summary" | "detail" => {
                if display.is_some() {
                    return Err(WordError::Misplaced {
                        keyword: k,
                        reason: "conflicts with an earlier view: give only one of brief, summary, detail",
                    });
                }
                display = Some(match k {
                    "brief" => SessionDisplay::Brief,
                    "summary" => SessionDisplay::Summary,
                    _ => SessionDisplay::Detail,
                });
            }
            "local" | "remote" => {
                let (side, slot) = if k == "local" {
                    (Side::Local, &mut filter.local)
                } else {
                    (Side::Remote, &mut filter.remote)
                };
                if slot.is_some() {
                    return Err(WordError::Repeated { keyword: k });
                }
                let value = words.next().ok_or(WordError::MissingValue {
                    keyword: k,
                    what: "an IP address",
                })?;
                let ip = value.parse::<IpAddr>().map_err(|_| WordError::BadValue {
                    keyword: k,
                    value: value.to_string(),
                    what: "an IP address",
                })?;
                *slot = Some((ip, None));
                open = Some(side);
            }
            "port" => {
                let Some(side) = was_open else {
                    return Err(WordError::Misplaced {
                        keyword: PORT,
                        reason: "must directly follow 'local IP' or 'remote IP'",
                    });
                };
                let what = "a port number (1-65535)";
                let value = words.next().ok_or(WordError::MissingValue {
                    keyword: PORT,
                    what,
                })?;
                let port =
                    value
                        .parse::<u16>()
                        .ok()
                        .filter(|p| *p != 0)
                        .ok_or(WordError::BadValue {
                            keyword: PORT,
                            value: value.to_string(),
                            what,
                        })?;
                let slot = match side {
                    Side::Local => &mut filter.local,
                    Side::Remote => &mut filter.remote,
                };
                if let Some((_, p)) = slot {
                    *p = Some(port);
                }
            }
            _ => {
                let (slot, what) = match k {
                    "fvrf" => (&mut filter.fvrf, "a VRF name"),
                    "ivrf" => (&mut filter.ivrf, "a VRF name"),
                    _ => (
                        &mut filter.username,
                        "a user name (the client's IKE identity)",
                    ),
                };
                if slot.is_some() {
                    return Err(WordError::Repeated { keyword: k });
                }
                let value = words
                    .next()
                    .ok_or(WordError::MissingValue { keyword: k, what })?;
                *slot = Some(value.to_string());
            }
        }
    }
    Ok((display.unwrap_or_default(), filter))
}

/// The words after `debug crypto isakmp`: `[aaa] on|off`; returns `(aaa, on)`.
pub fn parse_debug_words<S: AsRef<str>>(words: &[S]) -> Result<(bool, bool), WordError> {
    const ALL: [&str; 3] = ["aaa", "on", "off"];
    const SWITCH: [&str; 2] = ["on", "off"];
    let mut aaa = false;
    let mut words = words.iter().map(AsRef::as_ref);
    let mut next = words.next();
    if let Some(w) = next {
        if keyword(w, &ALL, || ALL.to_vec())? == "aaa" {
            aaa = true;
            next = words.next();
        }
    }
    let Some(w) = next else {
        return Err(WordError::Incomplete {
            expected: if aaa { SWITCH.to_vec() } else { ALL.to_vec() },
        });
    };
    let on = match keyword(w, &ALL, || SWITCH.to_vec())? {
        "on" => true,
        "off" => false,
        k => return Err(WordError::Repeated { keyword: k }),
    };
    if let Some(w) = words.next() {
        return Err(WordError::Trailing {
            word: w.to_string(),
            after: if on { "on" } else { "off" },
        });
    }
    Ok((aaa, on))
}

// ---- clap: the command words ------------------------------------------------------------

#[derive(Parser, Debug)]
#[command(
    name = "vpnctl",
    version,
    about = "Operate vpnd in Cisco IOS words (every word may be abbreviated: sh cr sess det)",
    infer_subcommands = true
)]
struct Cli {
    /// Print JSON instead of IOS text.
    #[arg(long, global = true)]
    json: bool,
    /// vpnd's control socket.
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    #[command(subcommand)]
    command: Top,
}

#[derive(Subcommand, Debug)]
enum Top {
    /// Show crypto state.
    Show {
        #[command(subcommand)]
        what: ShowCrypto,
    },
    /// Clear crypto state.
    Clear {
        #[command(subcommand)]
        what: ClearCrypto,
    },
    /// Switch debugging output on or off.
    Debug {
        #[command(subcommand)]
        what: DebugCrypto,
    },
    /// Re-read vpnd's configuration file and apply the difference (as `systemctl reload
    /// vpnd`); a file with errors is refused whole. Unlike IOS's reload, nothing restarts.
    Reload,
}

#[derive(Subcommand, Debug)]
enum ShowCrypto {
    Crypto {
        #[command(subcommand)]
        what: ShowWhat,
    },
    /// IP state: address pools.
    Ip {
        #[command(subcommand)]
        what: IpWhat,
    },
    /// AAA state.
    Aaa {
        #[command(subcommand)]
        what: AaaWhat,
    },
}

#[derive(Subcommand, Debug)]
enum IpWhat {
    Local {
        #[command(subcommand)]
        what: LocalWhat,
    },
}

#[derive(Subcommand, Debug)]
enum LocalWhat {
    /// Address pools: begin, end, free and in-use addresses (IOS show ip local pool).
    Pool,
}

#[derive(Subcommand, Debug)]
enum AaaWhat {
    /// RADIUS accounting: the outbox, its journal and the servers.
    Accounting,
}

#[derive(Subcommand, Debug)]
enum ShowWhat {
    /// Crypto sessions: IKE SAs and the IPsec flows they serve.
    #[command(
        override_usage = "vpnctl show crypto session [brief|summary|detail] [local IP [port N]] [remote IP [port N]] [fvrf NAME] [ivrf NAME] [username NAME]"
    )]
    Session {
        /// [brief|summary|detail] [local IP [port N]] [remote IP [port N]] [fvrf NAME] [ivrf NAME] [username NAME]
        #[arg(value_name = "WORDS")]
        words: Vec<String>,
    },
    /// IKE peers.
    Isakmp {
        #[command(subcommand)]
        what: IsakmpWhat,
    },
}

#[derive(Subcommand, Debug)]
enum IsakmpWhat {
    /// Configured IKE peers and their descriptions (`peers`: the guide's spelling).
    #[command(alias = "peers")]
    Peer,
    /// IKE SA counts and the responder's flood defence: half-open SAs, cookies, drops
    /// (IOS: show crypto ikev2 stats).
    #[command(alias = "statistics")]
    Stats,
}

#[derive(Subcommand, Debug)]
enum ClearCrypto {
    Crypto {
        #[command(subcommand)]
        what: ClearWhat,
    },
}

#[derive(Subcommand, Debug)]
enum ClearWhat {
    /// Delete crypto sessions (IKE and IPsec SAs); without a filter, every session.
    #[command(
        override_usage = "vpnctl clear crypto session [local IP [port N]] [remote IP [port N]] [fvrf NAME] [ivrf NAME] [username NAME]"
    )]
    Session {
        /// [local IP [port N]] [remote IP [port N]] [fvrf NAME] [ivrf NAME] [username NAME]
        #[arg(value_name = "WORDS")]
        words: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum DebugCrypto {
    Crypto {
        #[command(subcommand)]
        what: DebugWhat,
    },
}

#[derive(Subcommand, Debug)]
enum DebugWhat {
    /// IKE debugging (aaa: its AAA exchanges).
    #[command(override_usage = "vpnctl debug crypto isakmp [aaa] on|off")]
    Isakmp {
        /// [aaa] on|off
        #[arg(value_name = "WORDS")]
        words: Vec<String>,
    },
}

/// A word-parser error as a clap usage error, with the subcommand's usage line.
fn usage_error(path: &[&str], e: WordError) -> clap::Error {
    let mut cmd = Cli::command();
    cmd.build();
    let mut sub = &mut cmd;
    for name in path {
        sub = sub
            .find_subcommand_mut(name)
            .expect("the path names existing subcommands");
    }
    sub.error(ErrorKind::ValueValidation, e)
}

/// Parses a whole command line (`args[0]` is the program name).
pub fn parse_from<I, T>(args: I) -> Result<Invocation, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::try_parse_from(args)?;
    let command = match cli.command {
        Top::Show {
            what: ShowCrypto::Crypto { what },
        } => match what {
            ShowWhat::Session { words } => {
                let (display, filter) = parse_session_words(&words, true)
                    .map_err(|e| usage_error(&["show", "crypto", "session"], e))?;
                Command::ShowCryptoSession { display, filter }
            }
            ShowWhat::Isakmp {
                what: IsakmpWhat::Peer,
            } => Command::ShowCryptoIsakmpPeer,
            ShowWhat::Isakmp {
                what: IsakmpWhat::Stats,
            } => Command::ShowCryptoIsakmpStats,
        },
        Top::Show {
            what: ShowCrypto::Aaa {
                what: AaaWhat::Accounting,
            },
        } => Command::ShowAaaAccounting,
        Top::Show {
            what:
                ShowCrypto::Ip {
                    what:
                        IpWhat::Local {
                            what: LocalWhat::Pool,
                        },
                },
        } => Command::ShowIpLocalPool,
        Top::Clear {
            what:
                ClearCrypto::Crypto {
                    what: ClearWhat::Session { words },
                },
        } => {
            let (_, filter) = parse_session_words(&words, false)
                .map_err(|e| usage_error(&["clear", "crypto", "session"], e))?;
            Command::ClearCryptoSession { filter }
        }
        Top::Debug {
            what:
                DebugCrypto::Crypto {
                    what: DebugWhat::Isakmp { words },
                },
        } => {
            let (aaa, on) = parse_debug_words(&words)
                .map_err(|e| usage_error(&["debug", "crypto", "isakmp"], e))?;
            Command::DebugCryptoIsakmp { aaa, on }
        }
        Top::Reload => Command::Reload,
    };
    Ok(Invocation {
        json: cli.json,
        socket: cli.socket,
        command,
    })
}

/// The clap definition, for generated documentation (man page, shell completions).
pub fn command() -> clap::Command {
    Cli::command()
}

/// Parses the process's arguments; on a usage error prints it and exits 2 (`--help`: 0).
pub fn parse() -> Invocation {
    parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::model::SessionView;
    use crate::session::model::{IkeSaView, SessionKey, Status, Totals};
    use std::net::SocketAddr;

    fn parse(line: &str) -> Result<Invocation, clap::Error> {
        parse_from(std::iter::once("vpnctl").chain(line.split_whitespace()))
    }

    fn command(line: &str) -> Command {
        match parse(line) {
            Ok(inv) => inv.command,
            Err(e) => panic!("`{line}`: {e}"),
        }
    }

    /// The error's own message, without clap's "error: " and usage decoration.
    fn usage_err(line: &str) -> String {
        let e = parse(line).expect_err(line);
        assert_eq!(e.exit_code(), i32::from(EXIT_USAGE), "`{line}`: {e}");
        e.to_string()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn show(display: SessionDisplay, filter: SessionFilter) -> Command {
        Command::ShowCryptoSession { display, filter }
    }

    fn words(s: &str) -> Vec<&str> {
        s.split_whitespace().collect()
    }

    #[test]
    fn reload_and_its_abbreviations() {
        for line in ["reload", "rel", "r"] {
            assert_eq!(command(line), Command::Reload, "{line}");
        }
        assert_eq!(Command::Reload.request(), proto::Command::Reload {});
        assert!(proto::Command::Reload {}.changes_state(), "admin only");
        assert!(parse("reload now").is_err(), "no arguments");
    }

    #[test]
    fn full_words() {
        assert_eq!(
            command("show crypto session"),
            show(SessionDisplay::Normal, SessionFilter::default())
        );
        assert_eq!(
            command("show crypto session detail"),
            show(SessionDisplay::Detail, SessionFilter::default())
        );
        assert_eq!(
            command("show crypto isakmp peer"),
            Command::ShowCryptoIsakmpPeer
        );
        assert_eq!(
            command("clear crypto session"),
            Command::ClearCryptoSession {
                filter: SessionFilter::default()
            }
        );
        assert_eq!(
            command("debug crypto isakmp on"),
            Command::DebugCryptoIsakmp {
                aaa: false,
                on: true
            }
        );
        assert_eq!(
            command("debug crypto isakmp aaa off"),
            Command::DebugCryptoIsakmp {
                aaa: true,
                on: false
            }
        );
    }

    /// Every abbreviation the docs promise. A new subcommand sharing a prefix with an existing
    /// one makes clap's inference fail without a word: this test is what notices.
    #[test]
    fn promised_abbreviations() {
        let detail = show(SessionDisplay::Detail, SessionFilter::default());
        for line in [
            "sh cr sess det",
            "s c s d",
            "sho cry sessio deta",
            "show crypto session det",
        ] {
            assert_eq!(command(line), detail, "{line}");
        }
        for line in [
            "sh cry isa peer",
            "s c i p",
            "sh cr isakmp pe",
            "show crypto isakmp peers",
        ] {
            assert_eq!(command(line), Command::ShowCryptoIsakmpPeer, "{line}");
        }
        for line in [
            "show crypto isakmp stats",
            "sh cry isa stat",
            "s c i s",
            "show crypto isakmp statistics",
        ] {
            assert_eq!(command(line), Command::ShowCryptoIsakmpStats, "{line}");
        }
        assert_eq!(
            Command::ShowCryptoIsakmpStats.request(),
            proto::Command::ShowIkeStats {}
        );
        for line in ["show ip local pool", "sh ip loc po", "s i l p"] {
            assert_eq!(command(line), Command::ShowIpLocalPool, "{line}");
        }
        assert_eq!(
            Command::ShowIpLocalPool.request(),
            proto::Command::ShowPools {}
        );
        let joe = SessionFilter {
            username: Some("joe@cclient".into()),
            ..Default::default()
        };
        for line in [
            "show crypto session username joe@cclient",
            "sh cr sess user joe@cclient",
            "s c s u joe@cclient",
        ] {
            assert_eq!(
                command(line),
                show(SessionDisplay::Normal, joe.clone()),
                "{line}"
            );
        }
        assert_eq!(
            command("cle cr sess us joe@cclient"),
            Command::ClearCryptoSession {
                filter: joe.clone()
            }
        );
        assert_eq!(
            command("sh cr sess det u joe@cclient"),
            show(SessionDisplay::Detail, joe.clone())
        );
        let remote = SessionFilter {
            remote: Some((ip("192.0.2.2"), None)),
            ..Default::default()
        };
        for line in [
            "cle cr sess rem 192.0.2.2",
            "c c s r 192.0.2.2",
            "clear crypto session remote 192.0.2.2",
        ] {
            assert_eq!(
                command(line),
                Command::ClearCryptoSession {
                    filter: remote.clone()
                },
                "{line}"
            );
        }
        for line in [
            "deb cr isa aaa on",
            "d c i a on",
            "debug crypto isakmp aa of",
        ] {
            assert!(
                matches!(command(line), Command::DebugCryptoIsakmp { aaa: true, .. }),
                "{line}"
            );
        }
        assert_eq!(
            command("sh cr sess b"),
            show(SessionDisplay::Brief, SessionFilter::default())
        );
        assert_eq!(
            command("sh cr sess sum"),
            show(SessionDisplay::Summary, SessionFilter::default())
        );
    }

    #[test]
    fn unknown_or_ambiguous_command_words_are_usage_errors() {
        for line in [
            "",
            "shw crypto session",
            "show crypt0 session",
            "show crypto sessions",
            "sh cr isa",
            "sh cr",
            "clear crypto isakmp",
            "SH CR SESS",
            "sh cr sess -x",
            "debug crypto session on",
        ] {
            usage_err(line);
        }
    }

    #[test]
    fn help_exits_zero() {
        for line in ["--help", "sh cr sess --help", "--version"] {
            assert_eq!(parse(line).unwrap_err().exit_code(), 0, "{line}");
        }
    }

    #[test]
    fn session_filters_in_full() {
        let got = command(
            "show crypto session detail local 192.0.2.1 port 4500 remote 2001:db8::2 port 500 fvrf outside ivrf inside",
        );
        let want = show(
            SessionDisplay::Detail,
            SessionFilter {
                local: Some((ip("192.0.2.1"), Some(4500))),
                remote: Some((ip("2001:db8::2"), Some(500))),
                fvrf: Some("outside".into()),
                ivrf: Some("inside".into()),
                username: None,
            },
        );
        assert_eq!(got, want);
        // Any order, abbreviated; the view may come last (IOS accepts it there too).
        assert_eq!(
            command(
                "sh cr sess iv inside f outside rem 2001:db8::2 p 500 loc 192.0.2.1 po 4500 det"
            ),
            want
        );
    }

    #[test]
    fn vrf_names_are_taken_literally() {
        let (_, f) = parse_session_words(&words("fvrf detail ivrf remote"), true).unwrap();
        assert_eq!(f.fvrf.as_deref(), Some("detail"));
        assert_eq!(f.ivrf.as_deref(), Some("remote"));
    }

    #[test]
    fn word_errors_name_what_was_expected() {
        let err = |s: &str, show: bool| {
            parse_session_words(&words(s), show)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("remot3", true),
            "unknown word 'remot3': expected one of: brief, summary, detail, local, remote, fvrf, ivrf, username"
        );
        assert_eq!(
            err("detail remote 192.0.2.2 x", true),
            "unknown word 'x': expected one of: port, local, fvrf, ivrf, username"
        );
        assert_eq!(
            err("det", false),
            "unknown word 'det': expected one of: local, remote, fvrf, ivrf, username"
        );
        assert_eq!(err("remote", true), "'remote' needs an IP address");
        assert_eq!(
            err("remote 192.0.2", true),
            "'192.0.2' after 'remote' is not an IP address"
        );
        assert_eq!(
            err("rem 192.0.2.2 port 0", true),
            "'0' after 'port' is not a port number (1-65535)"
        );
        assert_eq!(
            err("rem 192.0.2.2 port 65536", true),
            "'65536' after 'port' is not a port number (1-65535)"
        );
        assert_eq!(
            err("rem 192.0.2.2 port", true),
            "'port' needs a port number (1-65535)"
        );
        assert_eq!(
            err("port 500", true),
            "'port' must directly follow 'local IP' or 'remote IP'"
        );
        assert_eq!(
            err("rem 192.0.2.2 fvrf a port 500", true),
            "'port' must directly follow 'local IP' or 'remote IP'"
        );
        assert_eq!(
            err("rem 192.0.2.2 port 500 port 501", true),
            "'port' must directly follow 'local IP' or 'remote IP'"
        );
        assert_eq!(
            err("rem 192.0.2.2 rem 192.0.2.3", true),
            "'remote' given twice"
        );
        assert_eq!(err("ivrf", true), "'ivrf' needs a VRF name");
        assert_eq!(
            err("brief detail", true),
            "'detail' conflicts with an earlier view: give only one of brief, summary, detail"
        );
        // An empty word (`vpnctl sh cr sess ""`) is a prefix of everything, and names nothing.
        assert_eq!(
            parse_session_words(&[""], true).unwrap_err().to_string(),
            "unknown word '': expected one of: brief, summary, detail, local, remote, fvrf, ivrf, username"
        );
    }

    #[test]
    fn word_errors_are_usage_errors_of_the_subcommand() {
        let e = usage_err("cle cr sess remot3 192.0.2.2");
        assert!(
            e.contains(
                "unknown word 'remot3': expected one of: local, remote, fvrf, ivrf, username"
            ),
            "{e}"
        );
        assert!(e.contains("vpnctl clear crypto session [local IP"), "{e}");
        let e = usage_err("sh cr sess detail brief");
        assert!(e.contains("give only one of brief, summary, detail"), "{e}");
        usage_err("sh cr sess rem 192.0.2.2 port x");
    }

    #[test]
    fn debug_words() {
        let err = |s: &str| parse_debug_words(&words(s)).unwrap_err().to_string();
        assert_eq!(parse_debug_words(&words("on")), Ok((false, true)));
        assert_eq!(parse_debug_words(&words("of")), Ok((false, false)));
        assert_eq!(parse_debug_words(&words("a on")), Ok((true, true)));
        assert_eq!(err("o"), "ambiguous word 'o': could be any of: on, off");
        assert_eq!(err("a o"), "ambiguous word 'o': could be any of: on, off");
        assert_eq!(err(""), "incomplete command: expected one of: aaa, on, off");
        assert_eq!(err("aaa"), "incomplete command: expected one of: on, off");
        assert_eq!(err("aaa aaa"), "'aaa' given twice");
        assert_eq!(
            err("yes"),
            "unknown word 'yes': expected one of: aaa, on, off"
        );
        assert_eq!(
            err("aaa yes"),
            "unknown word 'yes': expected one of: on, off"
        );
        assert_eq!(
            err("on off"),
            "unexpected word 'off': the command ends after 'on'"
        );
        let e = usage_err("deb cr isa o");
        assert!(e.contains("ambiguous word 'o'"), "{e}");
        usage_err("debug crypto isakmp");
    }

    #[test]
    fn global_flags_anywhere() {
        let plain = parse("sh cr sess").unwrap();
        assert!(!plain.json);
        assert_eq!(plain.socket, PathBuf::from(DEFAULT_SOCKET));
        for line in [
            "--json sh cr sess det rem 192.0.2.2",
            "sh --json cr sess det rem 192.0.2.2",
            "sh cr --json sess det rem 192.0.2.2",
            "sh cr sess --json det rem 192.0.2.2",
            "sh cr sess det --json rem 192.0.2.2",
            "sh cr sess det rem 192.0.2.2 --json",
        ] {
            let inv = parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert!(inv.json, "{line}");
            assert_eq!(
                inv.command,
                show(
                    SessionDisplay::Detail,
                    SessionFilter {
                        remote: Some((ip("192.0.2.2"), None)),
                        ..Default::default()
                    }
                ),
                "{line}"
            );
        }
        for line in [
            "--socket /tmp/v.sock sh cry isa peer",
            "sh cry isa peer --socket /tmp/v.sock",
            "cle cr sess --socket /tmp/v.sock rem 192.0.2.2",
            "deb cr isa aaa --socket=/tmp/v.sock on",
        ] {
            let inv = parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(inv.socket, PathBuf::from("/tmp/v.sock"), "{line}");
            assert!(!inv.json);
        }
        usage_err("sh cr sess --socket");
    }

    #[test]
    fn commands_map_to_protocol_requests() {
        assert_eq!(
            command("sh cr sess det loc 192.0.2.1 port 4500 rem 192.0.2.2 fvrf o").request(),
            proto::Command::ShowSessions {
                filter: proto::Filter {
                    local: Some(ip("192.0.2.1")),
                    local_port: Some(4500),
                    remote: Some(ip("192.0.2.2")),
                    remote_port: None,
                    fvrf: Some("o".into()),
                    ivrf: None,
                    username: None,
                },
                text: Some(SessionDisplay::Detail),
            }
        );
        assert_eq!(
            command("sh aaa acc").request(),
            proto::Command::ShowAccounting {}
        );
        let json = parse("--json sh cr sess brief").unwrap();
        assert_eq!(
            json.request(),
            proto::Command::ShowSessions {
                filter: proto::Filter::default(),
                text: None
            },
            "--json asks for the session list"
        );
        assert_eq!(
            command("cle cr sess").request(),
            proto::Command::ClearSessions {
                filter: proto::Filter::default()
            }
        );
        assert_eq!(
            command("sh cr isa peer").request(),
            proto::Command::ShowPeers {}
        );
        assert_eq!(
            command("deb cr isa aaa off").request(),
            proto::Command::Debug {
                aaa: true,
                on: false
            }
        );
    }

    fn view(peer: &str, local: &str, local_port: u16) -> SessionView {
        let peer: SocketAddr = peer.parse().unwrap();
        let local = ip(local);
        SessionView {
            key: SessionKey {
                peer,
                fvrf: None,
                ivrf: None,
            },
            peer_name: "p".into(),
            interface: None,
            status: Status::UpActive,
            description: None,
            phase1_id: None,
            user: None,
            local,
            ike_sas: vec![IkeSaView {
                local: SocketAddr::new(local, local_port),
                remote: peer,
                state: "Active".into(),
                connid: 1,
                lifetime_remaining_s: 1,
                capabilities: vec![],
            }],
            flows: vec![],
            totals: Totals::default(),
            up_since: None,
            assigned_ip: None,
            assigned_ip6: None,
            session_timeout_s: None,
        }
    }

    #[test]
    fn filter_selects_exactly_the_matching_sessions() {
        let a = view("192.0.2.2:500", "192.0.2.1", 500);
        let b = view("192.0.2.3:4500", "192.0.2.1", 4500);
        let mut c = view("198.51.100.7:500", "198.51.100.1", 500);
        c.key.fvrf = Some("outside".into());
        c.key.ivrf = Some("inside".into());
        let mut no_ike = view("192.0.2.2:4500", "192.0.2.1", 4500);
        no_ike.ike_sas.clear();
        let mut b = b;
        b.phase1_id = Some("joe@cclient".into());
        let all = [a, b, c, no_ike];

        let selected = |s: &str| -> Vec<usize> {
            let (_, f) = parse_session_words(&words(s), false).unwrap();
            // One matcher, the daemon's: the filter as it goes over the socket.
            let f = proto::Filter::from(&f);
            (0..all.len()).filter(|i| f.matches(&all[*i])).collect()
        };
        assert!(SessionFilter::default().is_empty());
        assert_eq!(selected(""), [0, 1, 2, 3]);
        assert_eq!(selected("remote 192.0.2.2"), [0, 3]);
        assert_eq!(selected("remote 192.0.2.2 port 500"), [0]);
        assert_eq!(selected("remote 192.0.2.2 port 4500"), [3]);
        assert_eq!(selected("remote ::ffff:192.0.2.2 port 4500"), [3]);
        assert_eq!(selected("remote 192.0.2.9"), Vec::<usize>::new());
        assert_eq!(selected("username joe@cclient"), [1]);
        assert_eq!(selected("username joe@other"), Vec::<usize>::new());
        assert_eq!(selected("local 192.0.2.1"), [0, 1, 3]);
        // The local port is the IKE SA's: the session without one has none to match.
        assert_eq!(selected("local 192.0.2.1 port 4500"), [1]);
        assert_eq!(selected("local 192.0.2.1 remote 192.0.2.3"), [1]);
        assert_eq!(selected("fvrf outside"), [2]);
        assert_eq!(selected("ivrf inside"), [2]);
        assert_eq!(selected("fvrf inside"), Vec::<usize>::new());
        assert_eq!(selected("fvrf Outside"), Vec::<usize>::new());
        assert_eq!(selected("fvrf outside ivrf other"), Vec::<usize>::new());
        assert_eq!(selected("local 198.51.100.1 fvrf outside ivrf inside"), [2]);
    }
}
