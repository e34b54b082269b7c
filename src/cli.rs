//! Command line: the contract scripts, packages and tests rely on (DESIGN.md).
//! Parsing only; every value that can be wrong is rejected here, before
//! anything loads, so a bad flag exits 2 with one line and touches nothing.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub use crate::sock_monitor::DestroyChoice;

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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent as a daemon (runit/systemd); logs to stderr
    Run(RunArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Only lock files under PREFIX (repeatable; default: the whole host)
    #[arg(long = "path", value_name = "PREFIX", value_parser = parse_scope)]
    pub paths: Vec<PathBuf>,

    /// Extra lock-name patterns (repeatable; default *.lock, *.lck). A glob
    /// without '/' matches the file name, one with '/' the full path
    #[arg(long = "include", value_name = "GLOB")]
    pub includes: Vec<String>,

    /// Never touch matching paths (repeatable; adds to the built-in deny list)
    #[arg(long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,

    /// Also track files created with O_CREAT but without O_EXCL
    #[arg(long)]
    pub non_exclusive: bool,

    /// Run every check and log the verdict; remove nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Do not monitor lock files
    #[arg(long)]
    pub no_locks: bool,

    /// Do not monitor sockets
    #[arg(long)]
    pub no_sockets: bool,

    /// Most processes whose exit is watched at once (BPF hash map size)
    #[arg(long, value_name = "N", default_value_t = 16384, value_parser = clap::value_parser!(u32).range(64..=4_194_304))]
    pub max_owners: u32,

    /// Most locks tracked at once in user space
    #[arg(long, value_name = "N", default_value_t = 65536, value_parser = clap::value_parser!(u32).range(64..=16_777_216))]
    pub max_locks: u32,

    /// Size of the lock-event ring buffer (power of two, at least 64K)
    #[arg(long, value_name = "BYTES", default_value = "1M", value_parser = parse_ring_size)]
    pub ring_buffer_size: u32,

    /// Idle time in CLOSE_WAIT before a socket is destroyed (500ms, 5s, 2m, 1h)
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = parse_duration)]
    pub close_wait_timeout: Duration,

    /// Only sockets whose local or remote port is PORT (repeatable; at most 32)
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,

    /// Never touch sockets whose local or remote port is PORT (repeatable; at most 32)
    #[arg(long = "exclude-port", value_name = "PORT")]
    pub exclude_ports: Vec<u16>,

    /// How stale sockets are destroyed: bpf_sock_destroy (kfunc, Linux 6.5+),
    /// sock_diag SOCK_DESTROY (netlink), or auto (kfunc when the kernel has it)
    #[arg(long, value_name = "METHOD", value_enum, default_value_t = DestroyChoice::Auto)]
    pub socket_destroy: DestroyChoice,

    /// Age sockets as on hosts whose kernel tick rate (CONFIG_HZ) is
    /// unknown: sends seen by the reaper's visits (to test that path)
    #[arg(long, hide = true)]
    pub force_idle_fallback: bool,
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

/// Durations: a number and a unit, `500ms`, `5s`, `2m`, `1h` (no unit: seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(format!("{s:?} is not a duration (e.g. 500ms, 5s, 2m, 1h)"));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (number too large)"))?;
    let ms = match unit {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    }
    .ok_or_else(|| format!("{s:?} is too long"))?;
    Ok(Duration::from_millis(ms))
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
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "s", "5x", "-1s", "1.5s", "99999999999999999999s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
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
        let Command::Run(a) = cli.command;
        assert_eq!(a.close_wait_timeout, Duration::from_secs(2));
        assert_eq!(a.ports, vec![5000, 6000]);
        assert_eq!(a.exclude_ports, vec![22]);
        assert_eq!(a.socket_destroy, DestroyChoice::Netlink);
        let Command::Run(d) = Cli::try_parse_from(["eghostbuster", "run"])
            .unwrap()
            .command;
        assert_eq!(d.close_wait_timeout, Duration::from_secs(60));
        assert_eq!(d.socket_destroy, DestroyChoice::Auto);
        for bad in [
            &["--close-wait-timeout", "soon"][..],
            &["--port", "70000"],
            &["--socket-destroy", "ss"],
        ] {
            let mut args = vec!["eghostbuster", "run"];
            args.extend_from_slice(bad);
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
