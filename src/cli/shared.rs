//! Flag groups shared by `run` and `sweep` (and read from the config file):
//! logging, which classes run and whether they act, and each class's scope.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::values::{parse_duration, parse_scope};
use crate::sockets::model::{PortFilter, MAX_PORTS};
use crate::sockets::policy::{parse_rule, Limit, Policy, Rule};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Whether log lines carry our own timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogTimestamp {
    /// None under journald (JOURNAL_STREAM names our stderr), else on
    Auto,
    On,
    /// None: the supervisor adds its own (svlogd -tt, journald)
    Off,
}

/// How the daemon logs: shared by the command line and the config file.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log lines as text or as one JSON object per line (with fields)
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Least severe level logged: error, warn, info (default), debug,
    /// trace. RUST_LOG, when set, wins
    #[arg(long, value_name = "LEVEL", value_parser = parse_level)]
    pub log_level: Option<log::LevelFilter>,

    /// Our own timestamp on each line (auto: none under journald)
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = LogTimestamp::Auto)]
    pub log_timestamp: LogTimestamp,
}

fn parse_level(s: &str) -> Result<log::LevelFilter, String> {
    s.parse::<log::LevelFilter>()
        .map_err(|_| format!("{s:?} is not a level (error, warn, info, debug, trace, off)"))
}

/// What runs and whether it acts: shared by `run` and `sweep`.
#[derive(Debug, Clone, Args)]
pub struct Switches {
    /// Run every check and report the verdict (`would remove`, `would
    /// destroy`); remove and destroy nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Leave lock files out
    #[arg(long)]
    pub no_locks: bool,

    /// Leave CLOSE_WAIT sockets out
    #[arg(long)]
    pub no_sockets: bool,

    /// Leave UNIX socket files out
    #[arg(long)]
    pub no_unix_sockets: bool,

    /// Leave PID files out
    #[arg(long)]
    pub no_pid_files: bool,
}

/// Which files are PID files: shared by `run` and `sweep`.
#[derive(Debug, Clone, Args)]
pub struct PidFileScope {
    /// Extra PID-file name patterns (repeatable; default *.pid). A glob
    /// without '/' matches the file name, one with '/' the full path
    #[arg(long = "pid-include", value_name = "GLOB")]
    pub pid_includes: Vec<String>,
}

impl PidFileScope {
    /// The patterns: the default and the user's.
    pub fn patterns(&self) -> Vec<String> {
        let mut v = vec!["*.pid".to_string()];
        v.extend(self.pid_includes.iter().cloned());
        v
    }
}

/// Which lock files: shared by `run` and `sweep`.
#[derive(Debug, Clone, Args)]
pub struct LockScope {
    /// Find holders by walking /proc instead of with the BPF iterators
    /// (to test and measure that path on any kernel)
    #[arg(long, hide = true)]
    pub force_holders_fallback: bool,

    /// Only files (locks, socket files, PID files) under PREFIX (repeatable;
    /// run: default the whole host; sweep: required for lock files, and
    /// socket and PID files are swept only under it)
    #[arg(long = "path", value_name = "PREFIX", value_parser = parse_scope)]
    pub paths: Vec<PathBuf>,

    /// Extra lock-name patterns (repeatable; default *.lock, *.lck). A glob
    /// without '/' matches the file name, one with '/' the full path
    #[arg(long = "include", value_name = "GLOB")]
    pub includes: Vec<String>,

    /// Never touch matching paths (repeatable; adds to the built-in deny list)
    #[arg(long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
}

/// `--socket-destroy`: how stale sockets are destroyed
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DestroyChoice {
    /// bpf_sock_destroy when the kernel has it (6.5+), netlink otherwise
    Auto,
    /// bpf_sock_destroy from the reaper iterator; fail when missing
    Kfunc,
    /// sock_diag SOCK_DESTROY from user space (CONFIG_INET_DIAG_DESTROY)
    Netlink,
}

/// Which CLOSE_WAIT sockets, and how long they may idle: shared by `run`
/// and `sweep`.
#[derive(Debug, Clone, Args)]
pub struct SocketScope {
    /// Idle time in CLOSE_WAIT before a socket nobody serves is destroyed
    /// (500ms, 90s, 1m30s, 2h, 1d)
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = parse_duration)]
    pub close_wait_timeout: Duration,

    /// Idle time in CLOSE_WAIT before a socket a live process still
    /// serves is destroyed: one an event loop watches (epoll, poll) or a
    /// thread waits on, or a server's with a request it has not answered.
    /// DUR or never
    #[arg(long, value_name = "DUR|never", default_value = "never", value_parser = parse_limit)]
    pub close_wait_serving_timeout: Limit,

    /// A timeout or exclusion for one port or program (repeatable; the
    /// first rule that matches wins): port=N, comm=NAME or exe=/PATH, then
    /// timeout=DUR|never and/or serving-timeout=DUR|never, comma-separated
    /// (e.g. port=8080,timeout=10m or comm=java,timeout=never)
    #[arg(long = "socket-rule", value_name = "RULE", value_parser = parse_rule)]
    pub rules: Vec<Rule>,

    /// Only sockets whose local or remote port is PORT (repeatable; at most 32)
    #[arg(long = "port", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub ports: Vec<u16>,

    /// Never touch sockets whose local or remote port is PORT (repeatable; at most 32)
    #[arg(long = "exclude-port", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub exclude_ports: Vec<u16>,
}

impl LockScope {
    /// "the whole host", or the --path list.
    pub fn describe(&self) -> String {
        if self.paths.is_empty() {
            "the whole host".to_string()
        } else {
            let v: Vec<String> = self.paths.iter().map(|p| p.display().to_string()).collect();
            v.join(", ")
        }
    }
}

impl SocketScope {
    /// The port filter, once the lists and the timeout are checked.
    pub fn filter(&self) -> Result<PortFilter, String> {
        if self.ports.len() > MAX_PORTS || self.exclude_ports.len() > MAX_PORTS {
            return Err(format!(
                "at most {MAX_PORTS} --port and {MAX_PORTS} --exclude-port"
            ));
        }
        if self.close_wait_timeout.is_zero() {
            return Err("--close-wait-timeout must be more than 0".into());
        }
        Ok(PortFilter {
            ports: self.ports.clone(),
            exclude: self.exclude_ports.clone(),
        })
    }
}

/// `DUR` or `never`.
fn parse_limit(s: &str) -> Result<Limit, String> {
    if s == "never" {
        return Ok(Limit::Never);
    }
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("{s:?}: must be more than 0 (or never)")),
        d => Ok(Limit::After(d)),
    }
}

impl SocketScope {
    /// The timeouts and rules.
    pub fn policy(&self) -> Policy {
        Policy {
            timeout: self.close_wait_timeout,
            serving: self.close_wait_serving_timeout,
            rules: self.rules.clone(),
        }
    }
}

/// What lets `sweep` remove a lock file whose creation it never saw.
#[derive(Debug, Clone, Copy, Args)]
pub struct NoEvidenceArgs {
    /// An empty lock file (with --any-content: one with no PID in it) is
    /// removed only when unchanged for this long (and nothing holds it)
    #[arg(long, value_name = "DUR", default_value = "1h", value_parser = parse_duration)]
    pub min_age: Duration,

    /// Also judge lock files whose content is not an owner record (a PID,
    /// host:PID, a short key=value or JSON record with a pid): by the PID
    /// on their first line, or by --min-age. Without it such files are
    /// data and kept
    #[arg(long)]
    pub any_content: bool,
}

impl From<NoEvidenceArgs> for crate::locks::sweep::NoEvidence {
    fn from(a: NoEvidenceArgs) -> Self {
        Self {
            min_age: a.min_age,
            any_content: a.any_content,
        }
    }
}
