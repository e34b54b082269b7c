//! How long a CLOSE_WAIT socket may idle: the global timeouts and the
//! operator's per-port and per-program rules, and the verdict they give.
//! Pure: parsed from the command line (`--socket-rule`), unit-tested.
//!
//! Two limits apply to each socket: `timeout`, for one nobody serves, and
//! `serving`, for one a live process still serves (see `serving.rs`; by
//! default never). A rule names one port (local or remote), one program
//! (`comm`, the kernel's 15-byte name, or `exe`, the executable's path)
//! and sets either limit or both; `never` makes it an exclusion. The
//! first rule that matches and sets a limit gives it; otherwise the global
//! one. A socket several processes hold gets the most lenient of their
//! limits. When rules name programs and no holder of the socket can be
//! found, it is kept: which rule applies is unknown.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::sockets::serving::Serving;

/// A limit on idle time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Limit {
    After(Duration),
    Never,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::After(d) => write!(f, "{d:?}"),
            Limit::Never => f.write_str("never"),
        }
    }
}

/// What a rule is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// The socket's local or remote port.
    Port(u16),
    /// A holder's command name (`/proc/PID/comm`, bytes).
    Comm(Vec<u8>),
    /// A holder's executable (`/proc/PID/exe`).
    Exe(PathBuf),
}

impl Match {
    fn names_program(&self) -> bool {
        !matches!(self, Match::Port(_))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub on: Match,
    pub timeout: Option<Limit>,
    pub serving: Option<Limit>,
}

/// A process holding the socket, as far as rules care.
pub use crate::host::netns::Proc as Owner;

/// The limits for one socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub timeout: Limit,
    pub serving: Limit,
}

impl Limits {
    /// The limit that applies to a socket served this way.
    pub fn for_(&self, served: Serving) -> Limit {
        if served.is_served() {
            self.serving
        } else {
            self.timeout
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub timeout: Duration,
    pub serving: Limit,
    pub rules: Vec<Rule>,
}

impl Policy {
    /// Only the global timeout, as before any rule.
    #[cfg(test)]
    pub fn plain(timeout: Duration) -> Self {
        Policy {
            timeout,
            serving: Limit::Never,
            rules: Vec::new(),
        }
    }

    /// Must the holders be known to judge a socket?
    pub fn needs_owner(&self) -> bool {
        self.rules.iter().any(|r| r.on.names_program())
    }

    fn matches(r: &Rule, lport: u16, rport: u16, owner: Option<&Owner>) -> bool {
        match (&r.on, owner) {
            (Match::Port(p), _) => *p == lport || *p == rport,
            (Match::Comm(c), Some(o)) => *c == o.comm,
            (Match::Exe(e), Some(o)) => o.exe.as_ref() == Some(e),
            (_, None) => false,
        }
    }

    /// The limits for a socket on these ports held by `owner` (None: no
    /// holder, only port rules can match).
    fn limits_for(&self, lport: u16, rport: u16, owner: Option<&Owner>) -> Limits {
        let matching = || {
            self.rules
                .iter()
                .filter(move |r| Self::matches(r, lport, rport, owner))
        };
        Limits {
            timeout: matching()
                .find_map(|r| r.timeout)
                .unwrap_or(Limit::After(self.timeout)),
            serving: matching().find_map(|r| r.serving).unwrap_or(self.serving),
        }
    }

    /// The limits for a socket held by `owners`; None when rules name
    /// programs and no holder is known (keep: unknown).
    pub fn limits(&self, lport: u16, rport: u16, owners: &[Owner]) -> Option<Limits> {
        if owners.is_empty() {
            return (!self.needs_owner()).then(|| self.limits_for(lport, rport, None));
        }
        owners
            .iter()
            .map(|o| self.limits_for(lport, rport, Some(o)))
            .reduce(|a, b| Limits {
                timeout: a.timeout.max(b.timeout),
                serving: a.serving.max(b.serving),
            })
    }

    /// The soonest any limit could apply to a socket on these ports,
    /// whoever holds it: when to look at it first.
    pub fn earliest(&self, lport: u16, rport: u16) -> Limit {
        // what the port rules and the defaults give, and any program
        // rule's limits (it may match whoever holds it)
        let base = self.limits_for(lport, rport, None);
        let mut soonest = base.timeout.min(base.serving);
        for r in self.rules.iter().filter(|r| r.on.names_program()) {
            for l in [r.timeout, r.serving].into_iter().flatten() {
                soonest = soonest.min(l);
            }
        }
        soonest
    }
}

impl Policy {
    /// Are the holders of a socket idle for `idle` worth looking up now?
    /// Only when rules name programs and one of them could make it stale.
    pub fn wants_owner(&self, idle: Duration, lport: u16, rport: u16) -> bool {
        self.needs_owner() && matches!(self.earliest(lport, rport), Limit::After(e) if idle >= e)
    }

    /// The verdict for one socket. `owners`: its holders, or None when
    /// they were not looked up (`wants_owner` said no).
    pub fn verdict(
        &self,
        idle: Duration,
        served: Serving,
        lport: u16,
        rport: u16,
        owners: Option<&[Owner]>,
    ) -> Verdict {
        match owners {
            Some(o) => judge(idle, served, self.limits(lport, rport, o)),
            None if !self.needs_owner() => judge(idle, served, self.limits(lport, rport, &[])),
            // no rule can apply yet: look again when the soonest could
            None => match self.earliest(lport, rport) {
                Limit::After(e) => Verdict::Wait(e.saturating_sub(idle)),
                Limit::Never => Verdict::Keep(Kept::Never(served), None),
            },
        }
    }
}

/// What to do with one socket now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Idle past the limit that applies: destroy.
    Destroy { limit: Duration },
    /// Not yet: look again this much later.
    Wait(Duration),
    /// Kept, for this reason; look again this much later (None: only a
    /// reload can change it).
    Keep(Kept, Option<Duration>),
}

/// Why a socket past its idle timeout is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kept {
    /// A live process serves it (and the serving limit is not reached).
    Served(Serving),
    /// A rule (or the serving default) says never.
    Never(Serving),
    /// Rules name programs, and no process holding it was found.
    OwnerUnknown,
}

impl Kept {
    pub fn label(self) -> &'static str {
        match self {
            Kept::Served(s) | Kept::Never(s) if s.is_served() => s.label(),
            Kept::Served(_) | Kept::Never(_) => "rule",
            Kept::OwnerUnknown => "owner_unknown",
        }
    }
}

/// How often a kept socket that is served is looked at again (it may stop
/// being served): its idle timeout, within these bounds.
const RELOOK_MIN: Duration = Duration::from_secs(1);
const RELOOK_MAX: Duration = Duration::from_secs(60);

/// The verdict for a socket idle for `idle`, served as `served`, under
/// `limits` (None: unknown, see `Policy::limits`).
pub fn judge(idle: Duration, served: Serving, limits: Option<Limits>) -> Verdict {
    let Some(limits) = limits else {
        return Verdict::Keep(Kept::OwnerUnknown, Some(RELOOK_MAX));
    };
    let relook = match limits.timeout {
        Limit::After(t) => t.clamp(RELOOK_MIN, RELOOK_MAX),
        Limit::Never => RELOOK_MAX,
    };
    match limits.for_(served) {
        Limit::After(limit) if idle >= limit => Verdict::Destroy { limit },
        Limit::After(limit) if served.is_served() => {
            // served: looked at again soon, in case it stops being served
            let again = (limit - idle).min(relook);
            match limits.timeout {
                Limit::After(t) if idle >= t => Verdict::Keep(Kept::Served(served), Some(again)),
                _ => Verdict::Wait(again),
            }
        }
        Limit::After(limit) => Verdict::Wait(limit - idle),
        Limit::Never if served.is_served() => match limits.timeout {
            Limit::After(t) if idle < t => Verdict::Wait((t - idle).min(relook)),
            _ => Verdict::Keep(Kept::Served(served), Some(relook)),
        },
        Limit::Never => Verdict::Keep(Kept::Never(served), None),
    }
}

/// `--socket-rule SPEC`: `KEY=VALUE` pairs separated by commas: exactly
/// one of `port=N`, `comm=NAME`, `exe=/PATH`, and `timeout=DUR|never`
/// and/or `serving-timeout=DUR|never`.
pub fn parse_rule(spec: &str) -> Result<Rule, String> {
    use crate::cli::parse_duration;
    let limit = |v: &str| -> Result<Limit, String> {
        if v == "never" {
            Ok(Limit::Never)
        } else {
            parse_duration(v).and_then(|d| {
                if d.is_zero() {
                    Err(format!("{v:?}: a timeout must be more than 0"))
                } else {
                    Ok(Limit::After(d))
                }
            })
        }
    };
    let mut on = None;
    let (mut timeout, mut serving) = (None, None);
    for part in spec.split(',') {
        let Some((k, v)) = part.split_once('=') else {
            return Err(format!(
                "{spec:?}: {part:?} is not KEY=VALUE (e.g. port=8080,timeout=5m)"
            ));
        };
        let m = match k.trim() {
            "port" => Some(Match::Port(
                v.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("{spec:?}: {v:?} is not a port (1-65535)"))?,
            )),
            "comm" => {
                if v.is_empty() || v.len() > 15 || v.contains('/') {
                    return Err(format!(
                        "{spec:?}: comm {v:?} must be 1 to 15 bytes without '/' (the kernel's process name)"
                    ));
                }
                Some(Match::Comm(v.as_bytes().to_vec()))
            }
            "exe" => {
                let p = PathBuf::from(v);
                if !p.is_absolute() {
                    return Err(format!("{spec:?}: exe {v:?} is not an absolute path"));
                }
                Some(Match::Exe(p))
            }
            "timeout" => {
                timeout = Some(limit(v).map_err(|e| format!("{spec:?}: {e}"))?);
                None
            }
            "serving-timeout" => {
                serving = Some(limit(v).map_err(|e| format!("{spec:?}: {e}"))?);
                None
            }
            other => {
                return Err(format!(
                    "{spec:?}: unknown key {other:?} (port, comm, exe, timeout, serving-timeout)"
                ))
            }
        };
        if let Some(m) = m {
            if on.replace(m).is_some() {
                return Err(format!(
                    "{spec:?}: one of port, comm or exe per rule (give several rules)"
                ));
            }
        }
    }
    let Some(on) = on else {
        return Err(format!("{spec:?}: names no port, comm or exe"));
    };
    if timeout.is_none() && serving.is_none() {
        return Err(format!(
            "{spec:?}: sets no timeout (timeout=DUR|never, serving-timeout=DUR|never)"
        ));
    }
    Ok(Rule {
        on,
        timeout,
        serving,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn owner(comm: &str, exe: &str) -> Owner {
        Owner {
            pid: 1,
            comm: comm.as_bytes().to_vec(),
            exe: Some(PathBuf::from(exe)),
        }
    }

    #[test]
    fn rules_parse_or_say_why_not() {
        assert_eq!(
            parse_rule("port=8080,timeout=5m").unwrap(),
            Rule {
                on: Match::Port(8080),
                timeout: Some(Limit::After(s(300))),
                serving: None
            }
        );
        assert_eq!(
            parse_rule("comm=java,serving-timeout=10m,timeout=never").unwrap(),
            Rule {
                on: Match::Comm(b"java".to_vec()),
                timeout: Some(Limit::Never),
                serving: Some(Limit::After(s(600)))
            }
        );
        assert!(parse_rule("exe=/usr/sbin/nginx,timeout=1m").is_ok());
        for bad in [
            "",
            "port=8080",
            "timeout=5m",
            "port=0,timeout=5m",
            "port=70000,timeout=5m",
            "port=80,comm=x,timeout=5m",
            "comm=a-name-longer-than-15,timeout=1s",
            "exe=nginx,timeout=1s",
            "port=80,timeout=5",
            "port=80,timeout=0s",
            "port=80,color=red",
            "port=80 timeout=5m",
        ] {
            let e = parse_rule(bad).unwrap_err();
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn first_matching_rule_wins_and_owners_pick_the_most_lenient() {
        let p = Policy {
            timeout: s(60),
            serving: Limit::Never,
            rules: vec![
                parse_rule("comm=java,timeout=never").unwrap(),
                parse_rule("port=8080,timeout=5s,serving-timeout=10m").unwrap(),
                parse_rule("port=8080,timeout=1s").unwrap(),
                parse_rule("exe=/usr/bin/slow,timeout=1h").unwrap(),
            ],
        };
        assert!(p.needs_owner());
        let py = owner("python3", "/usr/bin/python3.11");
        let l = p.limits(8080, 40000, std::slice::from_ref(&py)).unwrap();
        assert_eq!(l.timeout, Limit::After(s(5)));
        assert_eq!(l.serving, Limit::After(s(600)));
        // the remote port counts too
        let l = p.limits(40000, 8080, std::slice::from_ref(&py)).unwrap();
        assert_eq!(l.timeout, Limit::After(s(5)));
        // java is excluded on any port
        let l = p.limits(8080, 1, &[owner("java", "/opt/j")]).unwrap();
        assert_eq!(l.timeout, Limit::Never);
        // two holders: the most lenient
        let l = p
            .limits(9000, 1, &[py.clone(), owner("slow", "/usr/bin/slow")])
            .unwrap();
        assert_eq!(l.timeout, Limit::After(s(3600)));
        // the defaults
        let l = p.limits(9000, 1, &[py]).unwrap();
        assert_eq!((l.timeout, l.serving), (Limit::After(s(60)), Limit::Never));
        // unknown holder, program rules: unknown
        assert_eq!(p.limits(9000, 1, &[]), None);
        // the first look: the soonest any rule allows for the ports
        // (the second 8080 rule's timeout is shadowed by the first's)
        assert_eq!(p.earliest(8080, 1), Limit::After(s(5)));
        assert_eq!(p.earliest(9000, 1), Limit::After(s(60)));
        let ports_only = Policy {
            timeout: s(60),
            serving: Limit::Never,
            rules: vec![parse_rule("port=22,timeout=never").unwrap()],
        };
        assert!(!ports_only.needs_owner());
        assert_eq!(ports_only.limits(22, 1, &[]).unwrap().timeout, Limit::Never);
        assert_eq!(ports_only.earliest(22, 1), Limit::Never);
    }

    #[test]
    fn verdicts() {
        let l = |t: Limit, sv: Limit| {
            Some(Limits {
                timeout: t,
                serving: sv,
            })
        };
        let (a, never) = (Limit::After(s(3)), Limit::Never);
        let ep = Serving::Watched { epoll: true };
        // nobody serves it: the timeout
        assert_eq!(judge(s(1), Serving::No, l(a, never)), Verdict::Wait(s(2)));
        assert_eq!(
            judge(s(3), Serving::No, l(a, never)),
            Verdict::Destroy { limit: s(3) }
        );
        // served, serving limit never: waits for the timeout, then kept
        // and looked at again every timeout
        assert_eq!(judge(s(1), ep, l(a, never)), Verdict::Wait(s(2)));
        assert_eq!(
            judge(s(30), ep, l(a, never)),
            Verdict::Keep(Kept::Served(ep), Some(s(3)))
        );
        // served, serving limit 10 s
        let ten = Limit::After(s(10));
        assert_eq!(
            judge(s(4), Serving::Unanswered, l(a, ten)),
            Verdict::Keep(Kept::Served(Serving::Unanswered), Some(s(3)))
        );
        assert_eq!(
            judge(s(10), Serving::Unanswered, l(a, ten)),
            Verdict::Destroy { limit: s(10) }
        );
        // an exclusion
        assert_eq!(
            judge(s(99), Serving::No, l(never, never)),
            Verdict::Keep(Kept::Never(Serving::No), None)
        );
        assert_eq!(Kept::Never(Serving::No).label(), "rule");
        // unknown holder
        assert!(matches!(
            judge(s(99), Serving::No, None),
            Verdict::Keep(Kept::OwnerUnknown, Some(_))
        ));
    }
}
