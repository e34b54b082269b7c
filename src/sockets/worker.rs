//! The cleanup worker's socket duties: one deadline per socket in
//! CLOSE_WAIT; at each deadline a survey of that socket's network
//! namespace, a verdict per socket (policy.rs, serving.rs), and an act pass
//! that destroys what was judged stale only if nothing changed since.
//! Owned and driven by the worker thread (agent/worker.rs).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::host::clock::boot_ns;
use crate::host::escape::Field;
use crate::host::netns::{self, Proc};
use crate::sockets::kernel::{Act, Endpoints, Facts, Seen, SockEvent};
use crate::sockets::metrics::SockMetrics;
use crate::sockets::model::{
    self, idle_text, stale_line, Holder, Method, Named, PortFilter, Scheduler,
};
use crate::sockets::monitor::Reap;
use crate::sockets::policy::{Kept, Limit, Policy, Verdict};
use crate::sockets::serving::{serving, Serving};

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
    /// Seconds until it is looked at again (absent: only a reload).
    #[serde(rename = "reaped_in_s")]
    pub due_in_s: u64,
    /// Machine-readable: "waiting" (its deadline ahead), "served" (kept:
    /// a live process serves it), "kept" (a rule says never, or its
    /// owner is unknown).
    #[serde(default)]
    pub state: String,
    /// How it is served when last looked at ("epoll", "waiter",
    /// "unanswered", "none").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<String>,
}

/// A socket is looked at again this long after it is due, so that clock
/// rounding never makes a visit too early.
const SLACK: Duration = Duration::from_millis(20);
/// A socket that changed between its verdict and the act pass is judged
/// again this soon.
const CHANGED_AGAIN: Duration = Duration::from_millis(100);
/// Full surveys of every namespace catch sockets whose event was lost.
const SURVEY_EVERY: Duration = Duration::from_secs(300);

#[derive(Debug, Default, Clone)]
pub struct SockStats {
    pub destroyed: u64,
    pub failed: u64,
    pub surveys: u64,
}

/// What the worker remembers of one socket in CLOSE_WAIT.
#[derive(Debug, Clone)]
struct Track {
    netns: u64,
    ends: Option<Endpoints>,
    first: Instant,
    /// Since when nobody serves it, when it was served before (its idle
    /// time then counts from here, not from the kernel's clock).
    unserved_since: Option<Instant>,
    was_served: bool,
    serving: Serving,
    /// The reason last logged for keeping it (logged once per change).
    said: Option<Kept>,
    state: &'static str,
}

impl Track {
    /// Its idle time by this look: the kernel's, or, once it was served,
    /// the time since a look first found it served by nobody.
    fn idle(&mut self, kernel: Duration, served: Serving, now: Instant) -> Duration {
        if served.is_served() {
            self.was_served = true;
            self.unserved_since = None;
            kernel
        } else if self.was_served {
            let since = *self.unserved_since.get_or_insert(now);
            kernel.min(now - since)
        } else {
            kernel
        }
    }
}

pub struct SockWork {
    reaper: Box<dyn Reap>,
    sched: Scheduler,
    policy: Policy,
    filter: PortFilter,
    method: Method,
    dry_run: bool,
    /// Stale sockets already logged in a dry run.
    reported: HashSet<u64>,
    last_survey: Instant,
    last_counters: (u64, u64),
    tracked: HashMap<u64, Track>,
    metrics: Arc<SockMetrics>,
    pub stats: SockStats,
}

/// One socket's verdict in a look, with what its log line needs.
struct Judged {
    seen: Seen,
    idle: Duration,
    served: Serving,
    verdict: Verdict,
}

impl SockWork {
    pub fn new(
        reaper: Box<dyn Reap>,
        policy: Policy,
        filter: PortFilter,
        method: Method,
        dry_run: bool,
        metrics: Arc<SockMetrics>,
    ) -> Self {
        SockWork {
            reaper,
            sched: Scheduler::default(),
            policy,
            filter,
            method,
            dry_run,
            reported: HashSet::new(),
            last_survey: Instant::now(),
            last_counters: (0, 0),
            tracked: HashMap::new(),
            metrics,
            stats: SockStats::default(),
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.sched.next_deadline()
    }

    /// The running policy and port filter.
    pub fn scope(&self) -> (&Policy, &PortFilter) {
        (&self.policy, &self.filter)
    }

    /// SIGHUP: a new policy and port filter, in the programs first, then
    /// here; every namespace is then looked at again, so each tracked
    /// socket follows the new limits (and one already stale by them goes now).
    pub fn set_scope(&mut self, policy: Policy, filter: PortFilter) -> anyhow::Result<()> {
        self.reaper.set_scope(&filter)?;
        self.policy = policy;
        self.filter = filter;
        for t in self.tracked.values_mut() {
            t.said = None;
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
                let now = Instant::now();
                if let Limit::After(first) =
                    self.policy.earliest(ends.local.port(), ends.remote.port())
                {
                    let at = model::deadline(entered_ns, first, boot_ns(), now);
                    self.sched.schedule(cookie, netns, at + SLACK);
                }
                let t = self.track(cookie, netns, now);
                t.ends = Some(ends);
                self.gauge();
            }
            SockEvent::Left { cookie, netns } => {
                if self.sched.cancel(cookie) {
                    log::debug!("socket cookie {cookie} (netns {netns}) left CLOSE_WAIT");
                }
                self.reported.remove(&cookie);
                self.tracked.remove(&cookie);
                self.gauge();
            }
        }
    }

    fn track(&mut self, cookie: u64, netns: u64, now: Instant) -> &mut Track {
        Self::entry(&mut self.tracked, cookie, netns, now)
    }

    fn entry(
        tracked: &mut HashMap<u64, Track>,
        cookie: u64,
        netns: u64,
        now: Instant,
    ) -> &mut Track {
        tracked.entry(cookie).or_insert(Track {
            netns,
            ends: None,
            first: now,
            unserved_since: None,
            was_served: false,
            serving: Serving::No,
            said: None,
            state: "waiting",
        })
    }

    /// Deadlines reached: look into each namespace concerned once.
    pub fn on_deadline(&mut self) {
        let due = self.sched.take_due(Instant::now());
        for (netns, cookies) in due {
            log::debug!("looking into netns {netns} for {} socket(s)", cookies.len());
            self.look(netns);
        }
        log::debug!("{} socket(s) in CLOSE_WAIT tracked", self.tracked.len());
    }

    /// Look into every namespace: stamps sockets that were in CLOSE_WAIT
    /// before the agent started (or whose event was lost) and schedules them.
    pub fn survey(&mut self) {
        self.last_survey = Instant::now();
        for netns in self.reaper.namespaces() {
            self.look(netns);
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

    fn gauge(&self) {
        self.metrics
            .tracked
            .store(self.tracked.len() as u64, Relaxed);
    }

    /// One namespace: survey, judge, act.
    fn look(&mut self, netns: u64) {
        self.stats.surveys += 1;
        let survey = match self.reaper.survey(netns) {
            Ok(s) => s,
            Err(e) => {
                // a namespace that vanished took its sockets along
                log::debug!("survey of netns {netns}: {e:#}");
                return;
            }
        };
        let now = Instant::now();
        let mut pre = Vec::with_capacity(survey.seen.len());
        for seen in survey.seen {
            let passive = survey.listening.contains(&seen.ends.local.port());
            let served = serving(&seen.facts, seen.data_received, passive);
            let f = &seen.facts;
            log::trace!(
                "survey: {} -> {} cookie {}: idle {:?}, passive {passive}, received {}, watched {}, epoll {}, unread {}, data segments out {}: {}",
                seen.ends.local, seen.ends.remote, seen.cookie, seen.idle, seen.data_received,
                f.watched, f.epoll, f.rcv_nxt.wrapping_sub(f.copied_seq), f.data_segs_out,
                served.label()
            );
            let t = self.track(seen.cookie, seen.netns, now);
            t.ends = Some(seen.ends);
            t.serving = served;
            let idle = t.idle(seen.idle, served, now);
            pre.push((seen, idle, served));
        }
        // holders: only of sockets a program rule could make stale now
        let wanted: HashSet<u64> = pre
            .iter()
            .filter(|(s, idle, _)| {
                self.policy
                    .wants_owner(*idle, s.ends.local.port(), s.ends.remote.port())
            })
            .map(|(s, _, _)| s.ino)
            .collect();
        let mut owners = netns::socket_procs(&wanted);
        let judged: Vec<Judged> = pre
            .into_iter()
            .map(|(seen, idle, served)| {
                let o = wanted
                    .contains(&seen.ino)
                    .then(|| owners.get(&seen.ino).map_or(&[][..], Vec::as_slice));
                let verdict = self.policy.verdict(
                    idle,
                    served,
                    seen.ends.local.port(),
                    seen.ends.remote.port(),
                    o,
                );
                Judged {
                    seen,
                    idle,
                    served,
                    verdict,
                }
            })
            .collect();
        let stale: Vec<&Judged> = judged
            .iter()
            .filter(|j| matches!(j.verdict, Verdict::Destroy { .. }))
            .collect();
        // the owners named in the lines (looked up once, before the act)
        let missing: HashSet<u64> = judged
            .iter()
            .filter(|j| {
                matches!(j.verdict, Verdict::Destroy { .. })
                    || matches!(j.verdict, Verdict::Keep(k, _) if self.tracked.get(&j.seen.cookie).is_some_and(|t| t.said != Some(k)))
            })
            .map(|j| j.seen.ino)
            .filter(|i| !owners.contains_key(i))
            .collect();
        owners.extend(netns::socket_procs(&missing));
        let holder = |ino: u64| owners.get(&ino).and_then(|v| v.first()).map(Proc::holder);

        let mut acted: HashMap<u64, Act> = HashMap::new();
        if !stale.is_empty() && !self.dry_run {
            let list: Vec<(u64, Facts)> = stale
                .iter()
                .map(|j| (j.seen.cookie, j.seen.facts))
                .collect();
            match self.reaper.act(netns, &list) {
                Ok(v) => acted.extend(v.into_iter().map(|(a, s)| (s.cookie, a))),
                Err(e) => log::debug!("act pass in netns {netns}: {e:#}"),
            }
        }
        for j in judged {
            let cookie = j.seen.cookie;
            match j.verdict {
                Verdict::Wait(d) => {
                    self.sched.schedule(cookie, j.seen.netns, now + d + SLACK);
                    if let Some(t) = self.tracked.get_mut(&cookie) {
                        t.state = "waiting";
                    }
                }
                Verdict::Keep(why, again) => {
                    match again {
                        Some(d) => self.sched.schedule(cookie, j.seen.netns, now + d + SLACK),
                        None => {
                            self.sched.cancel(cookie);
                        }
                    }
                    let t = self.tracked.get_mut(&cookie).expect("tracked above");
                    t.state = if matches!(why, Kept::Served(_)) {
                        "served"
                    } else {
                        "kept"
                    };
                    if t.said != Some(why) {
                        t.said = Some(why);
                        self.metrics.kept(why.label());
                        let h = holder(j.seen.ino);
                        self.say_kept(&j, why, h.as_ref());
                    }
                }
                Verdict::Destroy { limit } => {
                    let h = holder(j.seen.ino);
                    if self.dry_run {
                        self.sched.cancel(cookie);
                        if self.reported.insert(cookie) {
                            self.say(
                                &j,
                                "would destroy (dry run)",
                                limit,
                                h.as_ref(),
                                log::Level::Info,
                                "would_destroy",
                            );
                        }
                        continue;
                    }
                    match acted.get(&cookie) {
                        Some(Act::Destroyed) => {
                            self.sched.cancel(cookie);
                            self.tracked.remove(&cookie);
                            self.stats.destroyed += 1;
                            self.metrics.destroyed(self.method);
                            self.metrics
                                .decision_delay
                                .observe(j.idle.saturating_sub(limit));
                            self.say(
                                &j,
                                "destroyed",
                                limit,
                                h.as_ref(),
                                log::Level::Info,
                                "destroyed",
                            );
                        }
                        Some(Act::Failed(e)) => {
                            self.sched.cancel(cookie);
                            self.tracked.remove(&cookie);
                            self.stats.failed += 1;
                            self.metrics.failed(self.method);
                            let what = format!(
                                "failed to destroy ({})",
                                std::io::Error::from_raw_os_error(*e)
                            );
                            self.say(
                                &j,
                                &what,
                                limit,
                                h.as_ref(),
                                log::Level::Error,
                                "destroy_failed",
                            );
                        }
                        // changed since judged (or gone): judged again soon
                        Some(Act::Changed) | Some(Act::Confirmed) | None => {
                            log::debug!("socket cookie {cookie}: changed between its verdict and the act pass; judged again");
                            self.sched
                                .schedule(cookie, j.seen.netns, now + CHANGED_AGAIN);
                        }
                    }
                }
            }
        }
        self.gauge();
    }

    fn named(&self, s: &Seen) -> Named {
        Named {
            local: s.ends.local,
            remote: s.ends.remote,
            netns: s.netns,
            ino: s.ino,
            cookie: s.cookie,
            method: self.method,
        }
    }

    /// The line for a socket destroyed (or to be, or not destroyed).
    fn say(
        &self,
        j: &Judged,
        what: &str,
        limit: Duration,
        h: Option<&Holder>,
        level: log::Level,
        event: &str,
    ) {
        let s = &j.seen;
        let line = stale_line(
            what,
            &self.named(s),
            &idle_text(j.idle, s.first_sight, limit),
            h,
        );
        log::log!(
            level,
            event = event, method = self.method.to_string(), netns = s.netns,
            local = s.ends.local.to_string(), remote = s.ends.remote.to_string(),
            cookie = s.cookie, inode = s.ino, idle_s = j.idle.as_secs_f64(),
            serving = j.served.label(),
            pid = h.map(|h| h.pid), comm = h.map(|h| Field::str(&h.comm));
            "{line}"
        );
    }

    /// The line for a socket past its idle timeout that is kept.
    fn say_kept(&self, j: &Judged, why: Kept, h: Option<&Holder>) {
        let s = &j.seen;
        let reason = match why {
            Kept::Served(sv) => sv.describe().to_string(),
            Kept::Never(sv) if sv.is_served() => {
                format!("{}; its serving timeout is never", sv.describe())
            }
            Kept::Never(_) => "a rule says never".to_string(),
            Kept::OwnerUnknown => {
                "no process holding it was found, so which --socket-rule applies is unknown"
                    .to_string()
            }
        };
        let owner = match h {
            Some(h) => format!("pid {} ({})", h.pid, crate::host::escape::Esc::str(&h.comm)),
            None => "no process found".to_string(),
        };
        log::info!(
            event = "kept", netns = s.netns,
            local = s.ends.local.to_string(), remote = s.ends.remote.to_string(),
            cookie = s.cookie, inode = s.ino, idle_s = j.idle.as_secs_f64(),
            reason = why.label(),
            pid = h.map(|h| h.pid), comm = h.map(|h| Field::str(&h.comm));
            "kept CLOSE_WAIT socket {} -> {} in netns {}: idle {:.1}s, {reason}; owner {owner}; socket inode {}, cookie {}",
            s.ends.local, s.ends.remote, s.netns, j.idle.as_secs_f64(), s.ino, s.cookie
        );
    }

    /// What the status file shows changed? Hashed in place.
    pub fn status_digest(&self, h: &mut impl std::hash::Hasher) {
        use std::hash::Hash;
        self.tracked.len().hash(h);
        let mut v: Vec<(&u64, &'static str)> =
            self.tracked.iter().map(|(c, t)| (c, t.state)).collect();
        v.sort_unstable();
        v.hash(h);
    }

    /// At most `limit` tracked sockets for the status file (by cookie),
    /// and how many there are.
    pub fn status(&self, limit: usize) -> (Vec<SockStatus>, usize) {
        let now = Instant::now();
        let due: HashMap<u64, Instant> = self.sched.entries().map(|(c, _, at)| (c, at)).collect();
        let mut all: Vec<(&u64, &Track)> = self.tracked.iter().collect();
        if all.len() > limit && limit > 0 {
            all.select_nth_unstable_by_key(limit - 1, |e| *e.0);
        }
        all.truncate(limit);
        let mut v: Vec<SockStatus> = all
            .into_iter()
            .map(|(&cookie, t)| SockStatus {
                cookie,
                netns: t.netns,
                local: t.ends.as_ref().map(|e| e.local.to_string()),
                remote: t.ends.as_ref().map(|e| e.remote.to_string()),
                seen_s: now.saturating_duration_since(t.first).as_secs(),
                due_in_s: due
                    .get(&cookie)
                    .map_or(0, |at| at.saturating_duration_since(now).as_secs()),
                state: t.state.into(),
                serving: Some(t.serving.label().into()),
            })
            .collect();
        v.sort_by_key(|s| s.cookie);
        (v, self.tracked.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sockets::kernel::AF_INET;
    use crate::sockets::monitor::Survey;
    use std::sync::Mutex;

    type Script = Arc<Mutex<Vec<(u64, Survey)>>>;

    #[derive(Default)]
    struct FakeReaper {
        script: Script,
        calls: Arc<Mutex<Vec<u64>>>,
        /// What the act pass was given, and what it answers.
        acted: Arc<Mutex<Vec<(u64, u64)>>>,
        change: Arc<Mutex<HashSet<u64>>>,
    }

    impl Reap for FakeReaper {
        fn survey(&mut self, netns: u64) -> anyhow::Result<Survey> {
            self.calls.lock().unwrap().push(netns);
            let mut s = self.script.lock().unwrap();
            let i = s.iter().position(|(n, _)| *n == netns);
            Ok(i.map(|i| s.remove(i).1).unwrap_or_default())
        }
        fn act(&mut self, netns: u64, judged: &[(u64, Facts)]) -> anyhow::Result<Vec<(Act, Seen)>> {
            let change = self.change.lock().unwrap();
            Ok(judged
                .iter()
                .map(|(c, _)| {
                    self.acted.lock().unwrap().push((netns, *c));
                    let a = if change.contains(c) {
                        Act::Changed
                    } else {
                        Act::Destroyed
                    };
                    (a, seen(*c, netns, 5000, Duration::ZERO))
                })
                .collect())
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
            family: AF_INET,
            local: format!("127.0.0.1:{port}").parse().unwrap(),
            remote: "127.0.0.1:40000".parse().unwrap(),
            ifindex: 0,
        }
    }

    fn seen(cookie: u64, netns: u64, port: u16, idle: Duration) -> Seen {
        Seen {
            cookie,
            netns,
            ino: 0,
            idle,
            first_sight: false,
            data_received: 0,
            facts: Facts::default(),
            ends: ends(port),
        }
    }

    fn survey(seen: Vec<Seen>, listening: &[u16]) -> Survey {
        Survey {
            seen,
            listening: listening.iter().copied().collect(),
        }
    }

    fn work(fake: FakeReaper, timeout: Duration) -> SockWork {
        SockWork::new(
            Box::new(fake),
            Policy::plain(timeout),
            PortFilter {
                ports: vec![5000],
                exclude: vec![],
            },
            Method::Kfunc,
            false,
            Arc::new(SockMetrics::default()),
        )
    }

    #[test]
    fn deadlines_follow_events_and_verdicts() {
        let fake = FakeReaper::default();
        let (script, calls, acted) = (fake.script.clone(), fake.calls.clone(), fake.acted.clone());
        let mut w = work(fake, Duration::from_secs(30));
        // out of scope: ignored
        w.on_event(SockEvent::Entered {
            cookie: 9,
            netns: 1,
            entered_ns: 0,
            ends: ends(6000),
        });
        assert_eq!(w.next_deadline(), None);
        // in scope, entered 30 s ago (boot clock): due at once
        for (cookie, netns) in [(1, 1), (2, 2)] {
            w.on_event(SockEvent::Entered {
                cookie,
                netns,
                entered_ns: boot_ns().saturating_sub(31_000_000_000),
                ends: ends(5000),
            });
        }
        w.on_event(SockEvent::Left {
            cookie: 2,
            netns: 2,
        });
        assert!(w.next_deadline().is_some());
        // the survey: 1 idle past the timeout, 3 (pre-existing) young
        script.lock().unwrap().push((
            1,
            survey(
                vec![
                    seen(1, 1, 5000, Duration::from_secs(31)),
                    seen(3, 1, 5000, Duration::from_secs(1)),
                ],
                &[],
            ),
        ));
        std::thread::sleep(SLACK * 2);
        w.on_deadline();
        assert_eq!(*calls.lock().unwrap(), vec![1]); // not netns 2: cookie 2 left
        assert_eq!(*acted.lock().unwrap(), vec![(1, 1)]);
        assert_eq!(w.stats.destroyed, 1);
        let next = w.next_deadline().unwrap();
        assert!(next > Instant::now() + Duration::from_secs(28));
        // a survey visits every namespace
        w.survey();
        assert_eq!(*calls.lock().unwrap(), vec![1, 1, 2]);
    }

    #[test]
    fn served_sockets_are_kept_and_destroyed_once_nobody_serves_them() {
        let fake = FakeReaper::default();
        let (script, acted, change) =
            (fake.script.clone(), fake.acted.clone(), fake.change.clone());
        let mut w = work(fake, Duration::from_secs(3));
        let mut watched = seen(1, 1, 5000, Duration::from_secs(10));
        watched.facts.watched = 1;
        watched.facts.epoll = 1;
        let mut unanswered = seen(2, 1, 5000, Duration::from_secs(10));
        unanswered.data_received = 100;
        // the same, but this end is the client: nobody owes a reply
        let mut client = unanswered.clone();
        client.cookie = 3;
        client.ends.local = "127.0.0.1:41000".parse().unwrap();
        client.ends.remote = "127.0.0.1:5000".parse().unwrap();
        script.lock().unwrap().push((
            1,
            survey(vec![watched.clone(), unanswered.clone(), client], &[5000]),
        ));
        w.survey();
        assert_eq!(*acted.lock().unwrap(), vec![(1, 3)]);
        let (st, total) = w.status(10);
        assert_eq!(total, 2);
        assert_eq!(
            st.iter()
                .map(|s| (s.state.as_str(), s.serving.as_deref()))
                .collect::<Vec<_>>(),
            vec![("served", Some("epoll")), ("served", Some("unanswered"))]
        );
        // cookie 1 is no longer watched: its idle counts from that look,
        // not from the kernel's 10 s
        watched.facts.watched = 0;
        watched.facts.epoll = 0;
        script
            .lock()
            .unwrap()
            .push((1, survey(vec![watched.clone()], &[5000])));
        w.survey();
        assert_eq!(acted.lock().unwrap().len(), 1);
        assert_eq!(w.status(10).0[0].state, "waiting");
        // changed between verdict and act: not destroyed, judged again soon
        w.tracked.get_mut(&1).unwrap().unserved_since =
            Some(Instant::now() - Duration::from_secs(4));
        change.lock().unwrap().insert(1);
        script
            .lock()
            .unwrap()
            .push((1, survey(vec![watched], &[5000])));
        w.survey();
        assert_eq!(acted.lock().unwrap().len(), 2);
        assert_eq!(w.stats.destroyed, 1);
        assert!(w.next_deadline().unwrap() < Instant::now() + Duration::from_secs(1));
    }
}
