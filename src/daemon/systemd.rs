//! systemd's notify protocol (`Type=notify`): READY=1 and STOPPING=1 are sent by the daemon
//! at start and stop, RELOADING=1 (with MONOTONIC_USEC) and READY=1 around a reload; here, STATUS= with the sessions up and down (on change, at most once
//! a second) and the watchdog (WATCHDOG=1 every half `WatchdogSec=`). Both are sent from
//! the daemon loop itself, the task that drives the IKE engine: a loop that hangs stops the
//! pings and systemd restarts vpnd, whatever the rest of the runtime still does. Nothing
//! is sent when systemd did not ask (no `NOTIFY_SOCKET`, no `WATCHDOG_USEC`).

use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tracing::{debug, info};

/// STATUS= changes at most this often.
const STATUS_EVERY: Duration = Duration::from_secs(1);

pub struct Notifier {
    /// `NOTIFY_SOCKET` is set.
    enabled: bool,
    /// Half the watchdog timeout systemd gave, if it gave one.
    ping_every: Option<Duration>,
    next_ping: Option<Instant>,
    status: String,
    status_sent: String,
    status_at: Option<Instant>,
}

impl Notifier {
    pub fn from_env() -> Notifier {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some();
        let ping_every = watchdog_usec(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        )
        .filter(|_| enabled)
        .map(|usec| Duration::from_micros(usec / 2).max(Duration::from_millis(10)));
        if let Some(p) = ping_every {
            info!(
                every_ms = p.as_millis() as u64,
                "systemd watchdog: pinging from the daemon loop"
            );
        }
        Notifier {
            enabled,
            ping_every,
            next_ping: ping_every.map(|_| Instant::now()),
            status: String::new(),
            status_sent: String::new(),
            status_at: None,
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The text for STATUS=; sent by [`Notifier::tick`] when it changed.
    pub fn set_status(&mut self, text: String) {
        self.status = text;
    }

    /// Called on every turn of the daemon loop: pings the watchdog when due, and sends a
    /// changed status when the last one is at least a second old.
    pub fn tick(&mut self, now: Instant) {
        if !self.enabled {
            return;
        }
        if let (Some(every), Some(at)) = (self.ping_every, self.next_ping) {
            if now >= at {
                send(&[NotifyState::Watchdog]);
                self.next_ping = Some(now + every);
            }
        }
        if self.status != self.status_sent && self.status_at.is_none_or(|t| now >= t + STATUS_EVERY)
        {
            send(&[NotifyState::Status(&self.status)]);
            self.status_sent.clone_from(&self.status);
            self.status_at = Some(now);
        }
    }

    /// RELOADING=1 with MONOTONIC_USEC: `Type=notify-reload` (systemd 253) waits for
    /// these; older systemd shows the unit "reloading" until READY=1.
    pub fn reloading(&mut self) {
        if !self.enabled {
            return;
        }
        match NotifyState::monotonic_usec_now() {
            Ok(m) => send(&[NotifyState::Reloading, m]),
            Err(e) => {
                debug!("CLOCK_MONOTONIC: {e}");
                send(&[NotifyState::Reloading]);
            }
        }
    }

    /// READY=1: running again after a reload.
    pub fn ready(&mut self) {
        if self.enabled {
            send(&[NotifyState::Ready]);
        }
    }

    /// When the loop must next turn for [`Notifier::tick`], if ever.
    pub fn next_wake(&self) -> Option<Instant> {
        if !self.enabled {
            return None;
        }
        let status = (self.status != self.status_sent).then(|| {
            self.status_at
                .map_or_else(Instant::now, |t| t + STATUS_EVERY)
        });
        [self.next_ping, status].into_iter().flatten().min()
    }
}

/// sd_watchdog_enabled(3): the timeout when WATCHDOG_USEC is a positive number and
/// WATCHDOG_PID, if set, is this process (a watchdog meant for another is not ours).
/// (sd-notify 0.4's `watchdog_enabled` wrongly requires WATCHDOG_PID.)
fn watchdog_usec(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<u64> {
    let usec = usec?.parse::<u64>().ok().filter(|u| *u > 0)?;
    match pid {
        Some(p) if p.parse::<u32>().ok() != Some(me) => None,
        _ => Some(usec),
    }
}

fn send(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, state) {
        debug!("systemd notify: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_ours_only_when_systemd_says_so() {
        assert_eq!(
            watchdog_usec(Some("30000000"), Some("42"), 42),
            Some(30_000_000)
        );
        assert_eq!(watchdog_usec(Some("30000000"), None, 42), Some(30_000_000));
        assert_eq!(watchdog_usec(Some("30000000"), Some("41"), 42), None);
        assert_eq!(watchdog_usec(Some("0"), None, 42), None);
        assert_eq!(watchdog_usec(Some("x"), None, 42), None);
        assert_eq!(watchdog_usec(None, Some("42"), 42), None);
    }
}
