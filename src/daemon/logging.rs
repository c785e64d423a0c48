//! The daemon's log filter, switchable at run time: the analogue of IOS's `debug crypto
//! isakmp` and `debug crypto isakmp aaa` (`vpnctl debug crypto isakmp [aaa] on|off`).
//!
//! Debug lines go to two targets that module paths cannot give: [`ISAKMP`] (every IKE
//! datagram in and out, with its exchange and message ID) and [`AAA`] (accounting events).
//! Switching one on adds a `target=debug` directive to the configured base filter through
//! `tracing_subscriber`'s reload layer; nothing restarts.

use tracing_subscriber::{reload, EnvFilter, Registry};

/// The target of `debug crypto isakmp` lines.
pub const ISAKMP: &str = "isakmp";
/// The target of `debug crypto isakmp aaa` lines.
/// (EnvFilter matches targets by prefix: this one must not start with [`ISAKMP`].)
pub const AAA: &str = "aaa";

/// The live filter and which debugs are on.
pub struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
    base: String,
    isakmp: bool,
    aaa: bool,
}

impl LogControl {
    pub fn new(handle: reload::Handle<EnvFilter, Registry>, base: String) -> LogControl {
        LogControl {
            handle,
            base,
            isakmp: false,
            aaa: false,
        }
    }

    /// A reload's `log.level`: the new base filter, with the debugs that are on kept on.
    pub fn set_base(&mut self, base: String) -> Result<(), String> {
        let filter = EnvFilter::try_new(directives(&base, self.isakmp, self.aaa))
            .map_err(|e| format!("log filter: {e}"))?;
        self.handle
            .reload(filter)
            .map_err(|e| format!("log filter: {e}"))?;
        self.base = base;
        Ok(())
    }

    /// `debug crypto isakmp [aaa] on|off`: the IOS confirmation line, or why it failed.
    pub fn set(&mut self, aaa: bool, on: bool) -> Result<String, String> {
        let (mut isakmp, mut acct) = (self.isakmp, self.aaa);
        if aaa {
            acct = on;
        } else {
            isakmp = on;
        }
        let filter = EnvFilter::try_new(directives(&self.base, isakmp, acct))
            .map_err(|e| format!("log filter: {e}"))?;
        self.handle
            .reload(filter)
            .map_err(|e| format!("log filter: {e}"))?;
        (self.isakmp, self.aaa) = (isakmp, acct);
        Ok(confirmation(aaa, on))
    }
}

/// The filter text: the base, plus one directive per debug that is on.
pub fn directives(base: &str, isakmp: bool, aaa: bool) -> String {
    let mut d = base.to_string();
    if isakmp {
        d.push_str(&format!(",{ISAKMP}=debug"));
    }
    if aaa {
        d.push_str(&format!(",{AAA}=debug"));
    }
    d
}

/// IOS's answer to a debug command.
pub fn confirmation(aaa: bool, on: bool) -> String {
    let what = if aaa {
        "Crypto ISAKMP AAA"
    } else {
        "Crypto ISAKMP"
    };
    format!("{what} debugging is {}", if on { "on" } else { "off" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn switching_a_debug_changes_what_is_enabled() {
        let (layer, handle) = reload::Layer::new(EnvFilter::new("info"));
        let subscriber = tracing_subscriber::registry().with(layer);
        let mut ctl = LogControl::new(handle, "info".into());
        tracing::subscriber::with_default(subscriber, || {
            let isakmp = || tracing::enabled!(target: "isakmp", tracing::Level::DEBUG);
            let aaa = || tracing::enabled!(target: "aaa", tracing::Level::DEBUG);
            tracing::callsite::rebuild_interest_cache();
            assert!(!isakmp() && !aaa());
            assert_eq!(
                ctl.set(false, true).unwrap(),
                "Crypto ISAKMP debugging is on"
            );
            tracing::callsite::rebuild_interest_cache();
            assert!(isakmp() && !aaa());
            assert_eq!(
                ctl.set(true, true).unwrap(),
                "Crypto ISAKMP AAA debugging is on"
            );
            tracing::callsite::rebuild_interest_cache();
            assert!(isakmp() && aaa());
            ctl.set(false, false).unwrap();
            tracing::callsite::rebuild_interest_cache();
            assert!(!isakmp() && aaa(), "aaa stays on when isakmp goes off");
        });
    }

    #[test]
    fn directives_add_to_the_base() {
        assert_eq!(directives("warn", false, false), "warn");
        assert_eq!(
            directives("info", true, true),
            "info,isakmp=debug,aaa=debug"
        );
    }
}

/// How the daemon's log lines look, chosen from where stderr goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogStyle {
    /// ANSI colours: only for a person at a terminal (and not with `NO_COLOR`).
    pub ansi: bool,
    /// A timestamp per line, except in the journal, which stamps every line itself.
    pub time: bool,
}

impl LogStyle {
    pub fn choose(stderr_is_terminal: bool, no_color: bool, journal: bool) -> LogStyle {
        LogStyle {
            ansi: stderr_is_terminal && !no_color,
            time: !journal,
        }
    }

    /// For this process: stderr, `NO_COLOR` (no-color.org), and `JOURNAL_STREAM`, which
    /// systemd sets when stderr is connected to the journal.
    pub fn detect() -> LogStyle {
        use std::io::IsTerminal;
        LogStyle::choose(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            std::env::var_os("JOURNAL_STREAM").is_some(),
        )
    }
}

/// A writer that keeps every event on one line: the formatter hands it one whole event per
/// write, and a line break inside one (a multi-line error, a peer's text) is written as
/// `\n`, so a log reader (or grep) never takes a continuation for an event of its own.
pub struct OneLine<W>(pub W);

impl<W: std::io::Write> std::io::Write for OneLine<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let body = buf.strip_suffix(b"\n").unwrap_or(buf);
        if !body.contains(&b'\n') {
            self.0.write_all(buf)?;
            return Ok(buf.len());
        }
        let mut out = Vec::with_capacity(buf.len() + 8);
        for &b in body {
            if b == b'\n' {
                out.extend_from_slice(b"\\n");
            } else {
                out.push(b);
            }
        }
        if body.len() < buf.len() {
            out.push(b'\n');
        }
        self.0.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The daemon's stderr, one line per event.
pub fn stderr_one_line() -> OneLine<std::io::Stderr> {
    OneLine(std::io::stderr())
}

#[cfg(test)]
mod style_tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn colours_only_for_a_terminal_and_no_timestamps_in_the_journal() {
        // journal / log file / pipe: no ANSI codes.
        assert!(!LogStyle::choose(false, false, true).ansi);
        assert!(!LogStyle::choose(false, false, false).ansi);
        assert!(LogStyle::choose(true, false, false).ansi);
        assert!(!LogStyle::choose(true, true, false).ansi, "NO_COLOR");
        assert!(!LogStyle::choose(false, false, true).time);
        assert!(LogStyle::choose(false, false, false).time);
    }

    #[test]
    fn an_event_with_line_breaks_stays_on_one_line() {
        let mut w = OneLine(Vec::new());
        w.write_all(b"ERROR configuration refused:\nvpnd.yaml:3:5: bad\n")
            .unwrap();
        w.write_all(b"INFO plain\n").unwrap();
        assert_eq!(
            String::from_utf8(w.0).unwrap(),
            "ERROR configuration refused:\\nvpnd.yaml:3:5: bad\nINFO plain\n"
        );
    }

    #[test]
    fn the_formatter_writes_no_escape_codes_when_told_not_to() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let style = LogStyle::choose(false, false, true);
        let w = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(style.ansi)
            .with_target(false)
            .with_writer(move || OneLine(w.clone()))
            .without_time()
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(peer = "site-b", remote = %"192.0.2.2:500", "IKE SA down\nsecond line");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains('\x1b'), "{text:?}");
        assert_eq!(text.lines().count(), 1, "{text:?}");
        assert!(
            text.contains("IKE SA down\\nsecond line peer=\"site-b\" remote=192.0.2.2:500"),
            "{text:?}"
        );
    }
}
