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
