//! Command line: the contract scripts, packages and tests rely on (DESIGN.md).
//! Parsing only; every value that can be wrong is rejected here, before
//! anything loads, so a bad flag exits 2 with one line and touches nothing.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Bad usage found after parsing (globs, combinations): exit 2.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

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

use crate::sockets::model::{PortFilter, MAX_PORTS};
pub use crate::sockets::monitor::DestroyChoice;

#[derive(Debug, Parser)]
#[command(
    name = "eghostbuster",
    version,
    about = "Removes lock files left behind by dead processes, never one a live process relies on, and TCP sockets idle in CLOSE_WAIT",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[allow(clippy::large_enum_variant)] // parsed once, at start
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent as a daemon (runit/systemd); logs to stderr
    Run(RunArgs),
    /// One pass for cron: remove what is stale now; quiet unless it acted
    Sweep(SweepArgs),
    /// Check a config file as `run` and `sweep` would read it (exit 0 or 2)
    CheckConfig {
        /// The file (default /etc/eghostbuster/eghostbuster.toml)
        #[arg(long, value_name = "FILE", default_value = crate::agent::config::DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Show what a running daemon does: programs, features, tracked locks
    Status {
        /// The daemon's status file
        #[arg(long, value_name = "FILE", default_value = crate::agent::status::DEFAULT_STATUS_FILE, value_parser = parse_status_file)]
        status_file: PathBuf,
        /// Print JSON, for scripts
        #[arg(long)]
        json: bool,
    },
    /// Remove everything the daemon pinned (stop the daemon first)
    Unpin {
        #[arg(long, value_name = "DIR", default_value = "/sys/fs/bpf/eghostbuster", value_parser = parse_scope)]
        pin_dir: PathBuf,
    },
    /// Print a shell completion script
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (roff) into DIR: eghostbuster(8) and one per
    /// subcommand (eghostbuster-run(8), ...); prints the paths written
    #[command(hide = true)]
    Manpage {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

/// Shell completions and the man pages (src/man.rs), from this very definition.
pub fn generate(cmd: &Command, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    use clap::CommandFactory;
    let mut app = Cli::command();
    // Into memory first: the generators panic on a failed write.
    let mut buf = Vec::new();
    match cmd {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut app, "eghostbuster", &mut buf)
        }
        Command::Manpage { dir } => return crate::man::write_all(dir, out),
        Command::Run(_)
        | Command::Sweep(_)
        | Command::Status { .. }
        | Command::Unpin { .. }
        | Command::CheckConfig { .. } => {}
    }
    out.write_all(&buf)
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The config file; flags given here win over it
    #[arg(long, value_name = "FILE", default_value = crate::agent::config::DEFAULT_CONFIG)]
    pub config: PathBuf,

    #[command(flatten)]
    pub scope: LockScope,

    /// Also track files created with O_CREAT but without O_EXCL
    #[arg(long)]
    pub non_exclusive: bool,

    #[command(flatten)]
    pub switches: Switches,

    #[command(flatten)]
    pub pid_files: PidFileScope,

    /// Most processes whose exit is watched at once (BPF hash map size)
    #[arg(long, value_name = "N", default_value_t = 16384, value_parser = clap::value_parser!(u32).range(64..=4_194_304))]
    pub max_owners: u32,

    /// Most locks tracked at once in user space
    #[arg(long, value_name = "N", default_value_t = 65536, value_parser = clap::value_parser!(u32).range(64..=16_777_216))]
    pub max_locks: u32,

    /// Size of the lock-event ring buffer (power of two, at least 64K)
    #[arg(long, value_name = "BYTES", default_value = "1M", value_parser = parse_ring_size)]
    pub ring_buffer_size: u32,

    #[command(flatten)]
    pub sockets: SocketScope,

    /// How stale sockets are destroyed: bpf_sock_destroy (kfunc, Linux 6.5+),
    /// sock_diag SOCK_DESTROY (netlink), or auto (kfunc when the kernel has it)
    #[arg(long, value_name = "METHOD", value_enum, default_value_t = DestroyChoice::Auto)]
    pub socket_destroy: DestroyChoice,

    /// Write Prometheus metrics to FILE (atomically, every 5 s and at exit),
    /// e.g. for node_exporter's textfile collector
    #[arg(long, value_name = "FILE", value_parser = parse_textfile)]
    pub metrics_textfile: Option<PathBuf>,

    /// Serve Prometheus metrics over HTTP at ADDR (/metrics). A bare port
    /// means loopback; no value: 127.0.0.1:9633
    #[arg(long, value_name = "ADDR", num_args = 0..=1,
          default_missing_value = "127.0.0.1:9633", value_parser = parse_listen)]
    pub metrics_listen: Option<SocketAddr>,

    #[command(flatten)]
    pub log: LogArgs,

    /// Pin maps and links under DIR (bpffs; mounted at /sys/fs/bpf when
    /// missing), so tracking goes on while the daemon is stopped and the
    /// next start adopts it
    #[arg(long, value_name = "DIR", default_value = "/sys/fs/bpf/eghostbuster", value_parser = parse_scope)]
    pub pin_dir: PathBuf,

    /// Pin nothing: tracking ends when the daemon stops
    #[arg(long)]
    pub no_pin: bool,

    /// Where the daemon keeps its status for `eghostbuster status` (one
    /// daemon per file)
    #[arg(long, value_name = "FILE", default_value = crate::agent::status::DEFAULT_STATUS_FILE, value_parser = parse_status_file)]
    pub status_file: PathBuf,

    /// Detect whole-process exit as kernels without the tracepoint's
    /// group_dead argument do (to test that path on any kernel)
    #[arg(long, hide = true)]
    pub force_exit_fallback: bool,

    /// Age sockets as on hosts whose kernel tick rate (CONFIG_HZ) is
    /// unknown: sends seen by the reaper's visits (to test that path)
    #[arg(long, hide = true)]
    pub force_idle_fallback: bool,
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

/// Which CLOSE_WAIT sockets, and how long they may idle: shared by `run`
/// and `sweep`.
#[derive(Debug, Clone, Args)]
pub struct SocketScope {
    /// Idle time in CLOSE_WAIT before a socket is destroyed (500ms, 90s,
    /// 1m30s, 2h, 1d)
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = parse_duration)]
    pub close_wait_timeout: Duration,

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

/// Where `sweep` remembers CLOSE_WAIT sockets between runs.
pub const DEFAULT_SWEEP_STATE: &str = "/var/lib/eghostbuster/sweep-sockets.state";

#[derive(Debug, Clone, Args)]
pub struct SweepArgs {
    /// The config file; flags given here win over it
    #[arg(long, value_name = "FILE", default_value = crate::agent::config::DEFAULT_CONFIG)]
    pub config: PathBuf,

    #[command(flatten)]
    pub scope: LockScope,

    /// --min-age and --any-content: what the lock sweep needs when there is
    /// no evidence of how a file was made
    #[command(flatten)]
    pub evidence: NoEvidenceArgs,

    #[command(flatten)]
    pub sockets: SocketScope,

    /// Where CLOSE_WAIT sockets seen by earlier runs are remembered (one
    /// run cannot tell how long a socket has waited); only the default
    /// directory is created
    #[arg(long, value_name = "FILE", default_value = DEFAULT_SWEEP_STATE, value_parser = parse_state_file)]
    pub state_file: PathBuf,

    #[command(flatten)]
    pub switches: Switches,

    #[command(flatten)]
    pub pid_files: PidFileScope,

    /// Write Prometheus metrics to FILE (atomically) when done
    #[arg(long, value_name = "FILE", value_parser = parse_textfile)]
    pub metrics_textfile: Option<PathBuf>,
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

/// `--path` must be absolute; `.`/`..` are refused rather than guessed at.
/// An existing prefix is canonicalized, because the kernel reports real paths.
pub fn parse_scope(s: &str) -> Result<PathBuf, String> {
    let p = Path::new(s);
    if !p.is_absolute() {
        return Err(format!("{s:?} is not an absolute path"));
    }
    if p.components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(format!("{s:?} contains '.' or '..'"));
    }
    Ok(std::fs::canonicalize(p).unwrap_or_else(|_| p.components().collect()))
}

/// Where no status file may be: kernel and device filesystems (a
/// `/proc/version` or `/dev/zero` is not a status file, and writing there
/// is not what anyone means).
const NOT_FOR_FILES: [&str; 3] = ["/proc", "/sys", "/dev"];

/// `--status-file`: an absolute file path outside /proc, /sys and /dev,
/// that is not a directory; its directory must exist (only the default
/// one is created, at start).
pub fn parse_status_file(s: &str) -> Result<PathBuf, String> {
    parse_scope(s)?;
    let given = Path::new(s);
    let (Some(dir), Some(name)) = (given.parent(), given.file_name()) else {
        return Err(format!("{s:?} is not a file path"));
    };
    if s.ends_with('/') {
        return Err(format!("{s:?} is not a file path"));
    }
    // the directory canonical, the name as given: a symlink planted at the
    // name is replaced by the status file, never followed (issue 11)
    let p = parse_scope(&dir.to_string_lossy())
        .map(|d| d.join(name))
        .unwrap_or_else(|_| given.to_path_buf());
    if let Some(d) = NOT_FOR_FILES.iter().find(|d| p.starts_with(d)) {
        return Err(format!("{s:?} is in {d}, not a place for a status file"));
    }
    if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
        return Err(format!("{s:?} is a directory"));
    }
    Ok(p)
}

/// `--metrics-listen`: `HOST:PORT`, `[V6]:PORT`, or a bare port on loopback.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .map_err(|_| format!("{s:?} is not an address (e.g. 127.0.0.1:9633, [::1]:9633, 9633)"))
}

/// `--metrics-textfile`: an absolute path in an existing directory.
fn parse_textfile(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    if !p.is_absolute() || p.file_name().is_none() {
        return Err(format!("{s:?} is not an absolute file path"));
    }
    match p.parent() {
        Some(d) if d.is_dir() => Ok(p),
        _ => Err(format!("{s:?}: its directory does not exist")),
    }
}

/// `--state-file`: an absolute file path without '.'/'..' components.
fn parse_state_file(s: &str) -> Result<PathBuf, String> {
    let p = Path::new(s);
    if !p.is_absolute() || s.ends_with('/') || p.file_name().is_none() {
        return Err(format!("{s:?} is not an absolute file path"));
    }
    if p.components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(format!("{s:?} contains '.' or '..'"));
    }
    Ok(p.to_path_buf())
}

/// Durations, in jiff's "friendly" format: `500ms`, `90s`, `1m30s`,
/// `1.5m`, `2h`, `1d` (a day is 24 hours here). A bare number is refused
/// with the fix spelled out: `5` could mean seconds or milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!(
            "{s:?} has no unit: write {t}s for seconds (or {t}ms, {t}m, {t}h)"
        ));
    }
    let bad = || format!("{s:?} is not a duration (e.g. 500ms, 90s, 1m30s, 2h, 1d)");
    let span: jiff::Span = t.parse().map_err(|_| bad())?;
    let d = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|_| format!("{s:?}: use units up to days (weeks, months, years vary)"))?;
    if d.is_negative() {
        return Err(format!("{s:?} is negative"));
    }
    Duration::try_from(d).map_err(|_| bad())
}

/// Sizes: bytes with an optional K/M/G suffix (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 65536, 256K, 4M)"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

fn parse_ring_size(s: &str) -> Result<u32, String> {
    let n = parse_size(s)?;
    if !(65536..=(1 << 30)).contains(&n) || !n.is_power_of_two() {
        return Err(format!(
            "{s:?}: the ring buffer size must be a power of two from 64K to 1G"
        ));
    }
    Ok(n as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = |s: &str, d: Duration| assert_eq!(parse_duration(s), Ok(d), "{s}");
        ok("500ms", Duration::from_millis(500));
        ok("5s", Duration::from_secs(5));
        ok("90s", Duration::from_secs(90));
        ok("1m30s", Duration::from_secs(90));
        ok("1.5m", Duration::from_secs(90));
        ok("2m", Duration::from_secs(120));
        ok("1h", Duration::from_secs(3600));
        ok("2h", Duration::from_secs(7200));
        ok("1d", Duration::from_secs(86400));
        ok("1.5s", Duration::from_millis(1500));
        for bad in ["", "s", "5x", "-1s", "1mo", "99999999999999999999s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        let e = parse_duration("7").unwrap_err();
        assert!(e.contains("no unit") && e.contains("7s"), "{e}");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4M"), Ok(4 << 20));
        assert_eq!(parse_size("256K"), Ok(256 << 10));
        assert_eq!(parse_size("65536"), Ok(65536));
        assert!(parse_size("4Q").is_err());
        assert!(parse_ring_size("1M").is_ok());
        assert!(parse_ring_size("3M").is_err());
        assert!(parse_ring_size("4K").is_err());
    }

    #[test]
    fn scopes() {
        assert!(parse_scope("relative/dir").is_err());
        assert!(parse_scope("/tmp/../etc").is_err());
        assert_eq!(
            parse_scope("/nonexistent-eghostbuster//x/").unwrap(),
            PathBuf::from("/nonexistent-eghostbuster/x")
        );
    }

    #[test]
    fn socket_options() {
        let cli = Cli::try_parse_from([
            "eghostbuster",
            "run",
            "--close-wait-timeout",
            "2s",
            "--port",
            "5000",
            "--port",
            "6000",
            "--exclude-port",
            "22",
            "--socket-destroy",
            "netlink",
        ])
        .unwrap();
        let Command::Run(a) = cli.command else {
            panic!("not run")
        };
        assert_eq!(a.sockets.close_wait_timeout, Duration::from_secs(2));
        assert_eq!(a.sockets.ports, vec![5000, 6000]);
        assert_eq!(a.sockets.exclude_ports, vec![22]);
        assert_eq!(a.socket_destroy, DestroyChoice::Netlink);
        let Command::Run(d) = Cli::try_parse_from(["eghostbuster", "run"])
            .unwrap()
            .command
        else {
            panic!("not run")
        };
        assert_eq!(d.sockets.close_wait_timeout, Duration::from_secs(60));
        assert_eq!(d.socket_destroy, DestroyChoice::Auto);
        for bad in [
            &["--close-wait-timeout", "soon"][..],
            &["--port", "70000"],
            &["--port", "0"],
            &["--exclude-port", "0"],
            &["--close-wait-timeout", "5"],
            &["--socket-destroy", "ss"],
        ] {
            let mut args = vec!["eghostbuster", "run"];
            args.extend_from_slice(bad);
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn sweep_socket_options() {
        let cli = Cli::try_parse_from([
            "eghostbuster",
            "sweep",
            "--no-locks",
            "--close-wait-timeout",
            "5s",
            "--port",
            "80",
            "--exclude-port",
            "22",
            "--state-file",
            "/tmp/egb/x.state",
        ])
        .unwrap();
        let Command::Sweep(a) = cli.command else {
            panic!("not sweep")
        };
        assert_eq!(a.sockets.close_wait_timeout, Duration::from_secs(5));
        let f = a.sockets.filter().unwrap();
        assert_eq!((f.ports, f.exclude), (vec![80], vec![22]));
        assert_eq!(a.state_file, PathBuf::from("/tmp/egb/x.state"));
        let Command::Sweep(d) = Cli::try_parse_from(["eghostbuster", "sweep"])
            .unwrap()
            .command
        else {
            panic!("not sweep")
        };
        assert_eq!(d.state_file, PathBuf::from(DEFAULT_SWEEP_STATE));
        assert_eq!(d.sockets.close_wait_timeout, Duration::from_secs(60));
        for bad in ["rel.state", "/tmp/../x", "/tmp/dir/", ""] {
            assert!(parse_state_file(bad).is_err(), "{bad:?} accepted");
        }
        let mut zero = d.sockets.clone();
        zero.close_wait_timeout = Duration::ZERO;
        assert!(zero.filter().is_err());
        let mut many = d.sockets.clone();
        many.ports = (1..=33).collect();
        assert!(many.filter().is_err());
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen("9633").unwrap().to_string(), "127.0.0.1:9633");
        assert_eq!(parse_listen("[::1]:80").unwrap().to_string(), "[::1]:80");
        assert_eq!(parse_listen("0.0.0.0:9").unwrap().to_string(), "0.0.0.0:9");
        assert!(parse_listen("localhost").is_err());
        assert!(parse_listen("99999").is_err());
        assert!(parse_textfile("rel.prom").is_err());
        assert!(parse_textfile("/nonexistent-dir-egb/x.prom").is_err());
        assert!(parse_textfile("/tmp/x.prom").is_ok());
    }

    #[test]
    fn status_files() {
        for bad in [
            "/proc/version",
            "/dev/zero",
            "/sys/kernel/x",
            "rel.json",
            "/tmp/",
            "/tmp",
        ] {
            assert!(parse_status_file(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_status_file("/run/eghostbuster/status.json").is_ok());
    }

    #[test]
    fn file_class_switches_and_patterns() {
        let Command::Run(a) = Cli::try_parse_from([
            "eghostbuster",
            "run",
            "--no-unix-sockets",
            "--pid-include",
            "pidfile",
            "--pid-include",
            "/run/**/*.PID",
        ])
        .unwrap()
        .command
        else {
            panic!("not run")
        };
        assert!(a.switches.no_unix_sockets && !a.switches.no_pid_files);
        assert_eq!(
            a.pid_files.patterns(),
            vec!["*.pid", "pidfile", "/run/**/*.PID"]
        );
        let Command::Sweep(s) = Cli::try_parse_from(["eghostbuster", "sweep", "--no-pid-files"])
            .unwrap()
            .command
        else {
            panic!("not sweep")
        };
        assert!(s.switches.no_pid_files && !s.switches.no_unix_sockets);
        assert_eq!(s.pid_files.patterns(), vec!["*.pid"]);
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
