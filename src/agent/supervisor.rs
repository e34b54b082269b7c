//! Telling the supervisor how the daemon is (systemd's notify protocol,
//! through the `sd-notify` crate: one datagram to $NOTIFY_SOCKET, which it
//! sends to abstract and path sockets alike): READY=1 once every monitor
//! is attached, RELOADING=1 … READY=1 around a SIGHUP reload, STOPPING=1
//! on the way out, and WATCHDOG=1 pings every half of $WATCHDOG_USEC while
//! the worker loop turns. Without $NOTIFY_SOCKET (runit, a shell) every
//! call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;

pub struct Notify {
    /// Half the watchdog interval, when the supervisor asked for pings.
    ping: Option<Duration>,
}

impl Notify {
    pub fn from_env() -> Self {
        Notify {
            ping: sd_notify::watchdog_enabled().map(|d| (d / 2).max(Duration::from_millis(10))),
        }
    }

    fn send(&self, what: &[NotifyState<'_>]) {
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            return;
        }
        if let Err(e) = sd_notify::notify(what) {
            log::warn!("telling the supervisor ($NOTIFY_SOCKET): {e}");
        }
    }

    pub fn ready(&self) {
        self.send(&[NotifyState::Ready, NotifyState::Status("running")]);
    }

    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    /// How often the main thread must wake to ping (None: never).
    pub fn ping_every(&self) -> Option<Duration> {
        self.ping
    }
}
