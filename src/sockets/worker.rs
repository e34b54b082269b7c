//! The cleanup worker's socket duties: one deadline per socket in
//! CLOSE_WAIT, and at each deadline the reaper in that socket's network
//! namespace, whose verdict (destroyed, stale, not yet) is logged and acted
//! on. Owned and driven by the worker thread (worker.rs).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::host::clock::boot_ns;
use crate::host::escape::Field;
use crate::host::netns;
use crate::sockets::metrics::SockMetrics;
use crate::sockets::model::{
    self, describe, Endpoints, PortFilter, ReapKind, Reaped, Scheduler, SockEvent,
};
use crate::sockets::monitor::Reap;

/// A tracked socket, for `eghostbuster status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SockStatus {
    pub cookie: u64,
    pub netns: u64,
    pub local: Option<String>,
    pub remote: Option<String>,
    /// Seconds since it was first seen in CLOSE_WAIT by this agent.
    #[serde(rename = "in_close_wait_s")]
    pub seen_s: u64,
    /// Seconds until the reaper looks at it again.
    #[serde(rename = "reaped_in_s")]
    pub due_in_s: u64,
    /// Machine-readable: "waiting" (in CLOSE_WAIT, its deadline ahead).
    #[serde(default)]
    pub state: String,
}

/// A pending socket is looked at again this long after the kernel says it
/// becomes stale, so that clock rounding never makes a visit too early.
const SLACK: Duration = Duration::from_millis(20);
/// Full surveys of every namespace catch sockets whose event was lost.
const SURVEY_EVERY: Duration = Duration::from_secs(300);

#[derive(Debug, Default, Clone)]
pub struct SockStats {
    pub destroyed: u64,
    pub failed: u64,
    pub reaper_runs: u64,
}

pub struct SockWork {
    reaper: Box<dyn Reap>,
    sched: Scheduler,
    timeout: Duration,
    filter: PortFilter,
    dry_run: bool,
    /// Stale sockets already logged in a dry run.
    reported: HashSet<u64>,
    last_survey: Instant,
    last_counters: (u64, u64),
    /// Addresses and first sight of tracked sockets, for status.
    seen: HashMap<u64, (Option<Endpoints>, Instant)>,
    metrics: Arc<SockMetrics>,
    pub stats: SockStats,
}

impl SockWork {
    pub fn new(
        reaper: Box<dyn Reap>,
        timeout: Duration,
        filter: PortFilter,
        dry_run: bool,
        metrics: Arc<SockMetrics>,
    ) -> Self {
        SockWork {
            reaper,
            sched: Scheduler::default(),
            timeout,
            filter,
            dry_run,
            reported: HashSet::new(),
            last_survey: Instant::now(),
            last_counters: (0, 0),
            seen: HashMap::new(),
            metrics,
            stats: SockStats::default(),
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.sched.next_deadline()
    }

    /// The running timeout and port filter.
    pub fn scope(&self) -> (Duration, &PortFilter) {
        (self.timeout, &self.filter)
    }

    /// SIGHUP: a new timeout and port filter, in the programs first, then
    /// here; every namespace is then looked at again, so each tracked
    /// socket's deadline follows the new timeout (and one already stale
    /// by it goes now).
    pub fn set_scope(&mut self, timeout: Duration, filter: PortFilter) -> anyhow::Result<()> {
        self.reaper.set_scope(timeout, &filter)?;
        self.timeout = timeout;
        self.filter = filter;
        let now = Instant::now();
        for (cookie, netns, _) in self.sched.entries().collect::<Vec<_>>() {
            self.sched.schedule(cookie, netns, now);
        }
        self.survey();
        Ok(())
    }

    pub fn on_event(&mut self, ev: SockEvent) {
        match ev {
            SockEvent::Entered {
                cookie,
                netns,
                entered_ns,
                ends,
            } => {
                if !self.filter.allows_ends(&ends) {
                    return;
                }
                log::debug!(
                    "{} -> {} (netns {netns}, cookie {cookie}) entered CLOSE_WAIT",
                    ends.local,
                    ends.remote
                );
                let at = model::deadline(entered_ns, self.timeout, boot_ns(), Instant::now());
                self.sched.schedule(cookie, netns, at + SLACK);
                self.seen.insert(cookie, (Some(ends), Instant::now()));
                self.gauge();
            }
            SockEvent::Left { cookie, netns } => {
                if self.sched.cancel(cookie) {
                    log::debug!("socket cookie {cookie} (netns {netns}) left CLOSE_WAIT");
                }
                self.reported.remove(&cookie);
                self.seen.remove(&cookie);
                self.gauge();
            }
        }
    }

    /// Deadlines reached: run the reaper once per namespace concerned.
    pub fn on_deadline(&mut self) {
        let due = self.sched.take_due(Instant::now());
        for (netns, cookies) in due {
            log::debug!("reaping netns {netns} for {} socket(s)", cookies.len());
            self.reap(netns);
        }
        log::debug!("{} socket(s) in CLOSE_WAIT tracked", self.sched.len());
    }

    /// Look into every namespace: stamps sockets that were in CLOSE_WAIT
    /// before the agent started (or whose event was lost) and schedules them.
    pub fn survey(&mut self) {
        self.last_survey = Instant::now();
        for netns in self.reaper.namespaces() {
            self.reap(netns);
        }
    }

    /// Called on the worker's tick.
    pub fn tick(&mut self) {
        let mut lost = false;
        if let Some((drops, fails)) = self.reaper.counters() {
            let (d0, f0) = self.last_counters;
            if drops > d0 || fails > f0 {
                log::warn!(
                    "{} socket events lost (ring buffer full), {} sockets not stamped (socket storage allocation failed); surveying every namespace",
                    drops - d0,
                    fails - f0
                );
                lost = true;
            }
            self.last_counters = (drops, fails);
        }
        // a lost entry is found again by a survey: the stamp is in the kernel
        if lost || self.last_survey.elapsed() >= SURVEY_EVERY {
            self.survey();
        }
    }

    fn reap(&mut self, netns: u64) {
        self.stats.reaper_runs += 1;
        let recs = match self.reaper.reap(netns) {
            Ok(r) => r,
            Err(e) => {
                // a namespace that vanished took its sockets along
                log::debug!("reaper in netns {netns}: {e:#}");
                return;
            }
        };
        self.handle(recs);
    }

    fn gauge(&self) {
        self.metrics.tracked.store(self.sched.len() as u64, Relaxed);
    }

    /// What the status file shows changed? Hashed in place.
    pub fn status_digest(&self, h: &mut impl std::hash::Hasher) {
        use std::hash::Hash;
        self.sched.len().hash(h);
        for (cookie, _, _) in self.sched.entries() {
            cookie.hash(h);
        }
    }

    /// At most `limit` tracked sockets for the status file (by cookie),
    /// and how many there are.
    pub fn status(&self, limit: usize) -> (Vec<SockStatus>, usize) {
        let now = Instant::now();
        let mut all: Vec<(u64, u64, Instant)> = self.sched.entries().collect();
        if all.len() > limit && limit > 0 {
            all.select_nth_unstable_by_key(limit - 1, |e| e.0);
        }
        all.truncate(limit);
        let mut v: Vec<SockStatus> = all
            .into_iter()
            .map(|(cookie, netns, at)| {
                let (ends, first) = self.seen.get(&cookie).cloned().unwrap_or((None, now));
                SockStatus {
                    cookie,
                    netns,
                    local: ends.as_ref().map(|e| e.local.to_string()),
                    remote: ends.as_ref().map(|e| e.remote.to_string()),
                    seen_s: now.saturating_duration_since(first).as_secs(),
                    due_in_s: at.saturating_duration_since(now).as_secs(),
                    state: "waiting".into(),
                }
            })
            .collect();
        v.sort_by_key(|s| s.cookie);
        (v, self.sched.len())
    }

    fn handle(&mut self, recs: Vec<Reaped>) {
        let stale: HashSet<u64> = recs
            .iter()
            .filter(|r| r.kind != ReapKind::Pending)
            .map(|r| r.ino)
            .collect();
        let holders = if stale.is_empty() {
            HashMap::new()
        } else {
            netns::socket_holders(&stale)
        };
        let now = Instant::now();
        for r in recs {
            match r.kind {
                ReapKind::Pending => {
                    if !self.sched.contains(r.cookie) {
                        log::debug!(
                            "tracking {} -> {} in netns {} (in CLOSE_WAIT, idle {:?})",
                            r.ends.local,
                            r.ends.remote,
                            r.netns,
                            r.idle
                        );
                    }
                    self.sched
                        .schedule(r.cookie, r.netns, now + r.remaining + SLACK);
                    let seen = self.seen.entry(r.cookie).or_insert((None, now));
                    seen.0 = Some(r.ends);
                }
                ReapKind::Destroyed => {
                    self.sched.cancel(r.cookie);
                    self.seen.remove(&r.cookie);
                    self.stats.destroyed += 1;
                    self.metrics.destroyed(r.method);
                    self.metrics
                        .decision_delay
                        .observe(r.idle.saturating_sub(self.timeout));
                    let h = holders.get(&r.ino);
                    log::info!(
                        event = "destroyed", method = r.method.to_string(), netns = r.netns,
                        local = r.ends.local.to_string(), remote = r.ends.remote.to_string(),
                        cookie = r.cookie, inode = r.ino, idle_s = r.idle.as_secs_f64(),
                        pid = h.map(|h| h.pid), comm = h.map(|h| Field::str(&h.comm));
                        "{}", describe(&r, h, false, self.timeout)
                    );
                }
                ReapKind::Failed(e) => {
                    self.sched.cancel(r.cookie);
                    self.seen.remove(&r.cookie);
                    self.stats.failed += 1;
                    self.metrics.failed(r.method);
                    let h = holders.get(&r.ino);
                    log::error!(
                        event = "destroy_failed", method = r.method.to_string(), netns = r.netns,
                        local = r.ends.local.to_string(), remote = r.ends.remote.to_string(),
                        cookie = r.cookie, inode = r.ino, errno = e,
                        pid = h.map(|h| h.pid), comm = h.map(|h| Field::str(&h.comm));
                        "{}", describe(&r, h, false, self.timeout)
                    );
                }
                ReapKind::Stale => {
                    self.sched.cancel(r.cookie);
                    self.seen.remove(&r.cookie);
                    if self.dry_run && self.reported.insert(r.cookie) {
                        let h = holders.get(&r.ino);
                        log::info!(
                            event = "would_destroy", method = r.method.to_string(), netns = r.netns,
                            local = r.ends.local.to_string(), remote = r.ends.remote.to_string(),
                            cookie = r.cookie, inode = r.ino, idle_s = r.idle.as_secs_f64(),
                            pid = h.map(|h| h.pid), comm = h.map(|h| Field::str(&h.comm));
                            "{}", describe(&r, h, true, self.timeout)
                        );
                    }
                }
            }
        }
        self.gauge();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sockets::model::{Endpoints, Method};
    use std::sync::{Arc, Mutex};

    type Script = Arc<Mutex<Vec<(u64, Vec<Reaped>)>>>;

    struct FakeReaper {
        script: Script,
        calls: Arc<Mutex<Vec<u64>>>,
    }

    impl Reap for FakeReaper {
        fn reap(&mut self, netns: u64) -> anyhow::Result<Vec<Reaped>> {
            self.calls.lock().unwrap().push(netns);
            let mut s = self.script.lock().unwrap();
            let i = s.iter().position(|(n, _)| *n == netns);
            Ok(i.map(|i| s.remove(i).1).unwrap_or_default())
        }
        fn namespaces(&self) -> Vec<u64> {
            vec![1, 2]
        }
        fn counters(&self) -> Option<(u64, u64)> {
            None
        }
    }

    fn ends(port: u16) -> Endpoints {
        Endpoints {
            family: model::AF_INET,
            local: format!("127.0.0.1:{port}").parse().unwrap(),
            remote: "127.0.0.1:40000".parse().unwrap(),
            ifindex: 0,
        }
    }

    fn rec(kind: ReapKind, cookie: u64, netns: u64, remaining: Duration) -> Reaped {
        Reaped {
            kind,
            method: Method::Kfunc,
            cookie,
            netns,
            ino: 0,
            idle: Duration::ZERO,
            remaining,
            first_sight: false,
            ends: ends(5000),
        }
    }

    #[test]
    fn deadlines_follow_events_and_reaper_verdicts() {
        let script: Script = Arc::default();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let mut w = SockWork::new(
            Box::new(FakeReaper {
                script: script.clone(),
                calls: calls.clone(),
            }),
            Duration::from_millis(0),
            PortFilter {
                ports: vec![5000],
                exclude: vec![],
            },
            false,
            Arc::new(SockMetrics::default()),
        );
        // out of scope: ignored
        w.on_event(SockEvent::Entered {
            cookie: 9,
            netns: 1,
            entered_ns: 0,
            ends: ends(6000),
        });
        assert_eq!(w.next_deadline(), None);
        // in scope, timeout 0: due at once
        w.on_event(SockEvent::Entered {
            cookie: 1,
            netns: 1,
            entered_ns: boot_ns(),
            ends: ends(5000),
        });
        w.on_event(SockEvent::Entered {
            cookie: 2,
            netns: 2,
            entered_ns: boot_ns(),
            ends: ends(5000),
        });
        w.on_event(SockEvent::Left {
            cookie: 2,
            netns: 2,
        });
        assert!(w.next_deadline().is_some());
        // the reaper says: 1 destroyed, 3 (pre-existing) still young
        script.lock().unwrap().push((
            1,
            vec![
                rec(ReapKind::Destroyed, 1, 1, Duration::ZERO),
                rec(ReapKind::Pending, 3, 1, Duration::from_secs(30)),
            ],
        ));
        std::thread::sleep(SLACK * 2);
        w.on_deadline();
        assert_eq!(*calls.lock().unwrap(), vec![1]); // not netns 2: cookie 2 left
        assert_eq!(w.stats.destroyed, 1);
        let next = w.next_deadline().unwrap();
        assert!(next > Instant::now() + Duration::from_secs(29));
        // a survey visits every namespace
        w.survey();
        assert_eq!(*calls.lock().unwrap(), vec![1, 1, 2]);
    }
}
