//! Command line: the contract scripts, packages and tests rely on (DESIGN.md).
//! Parsing only; every value that can be wrong is rejected here, before
//! anything loads, so a bad flag exits 2 with one line and touches nothing.
//!
//! `mod.rs` holds the commands and their own flags; `shared.rs` the flag
//! groups `run`, `sweep` and the config file share; `values.rs` the parsers
//! of single values (paths, durations, sizes, addresses).

mod shared;
mod values;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use shared::{
    DestroyChoice, LockScope, LogArgs, LogFormat, LogTimestamp, NoEvidenceArgs, PidFileScope,
    SocketScope, Switches,
};
pub use values::parse_duration;
use values::{
    parse_listen, parse_ring_size, parse_scope, parse_state_file, parse_status_file, parse_textfile,
};

/// Bad usage found after parsing (globs, combinations): exit 2.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

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

    /// Most locks tracked at once (the kernel's table, preallocated: about
    /// 376 bytes a slot; at most 1048576, 394 MiB)
    #[arg(long, value_name = "N", default_value_t = 16384, value_parser = clap::value_parser!(u32).range(64..=1_048_576))]
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
