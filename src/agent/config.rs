//! The config file (`/etc/eghostbuster/eghostbuster.toml`, `--config`):
//! every option of `run` and `sweep`, by section. It is turned into the
//! command-line arguments it stands for and parsed, together with the
//! real command line, by the one CLI definition (src/cli.rs): a value in
//! the file is checked exactly as the same flag is, and a flag given on
//! the command line wins over the file (a list given on the command line
//! replaces the file's list). A switch (`dry_run`, `enabled = false`, …)
//! can be turned on by either.
//!
//! `SIGHUP` reads the file again the same way (see agent::run); a file
//! that does not parse is logged and the running configuration is kept.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use serde::Deserialize;

use crate::cli::{Cli, Command, Usage};

pub const DEFAULT_CONFIG: &str = "/etc/eghostbuster/eghostbuster.toml";
/// A config file is a few KiB; anything larger is not one.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub locks: Locks,
    #[serde(default)]
    pub sockets: Sockets,
    #[serde(default)]
    pub run: Run,
    #[serde(default)]
    pub sweep: Sweep,
    #[serde(default)]
    pub log: Log,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Locks {
    pub enabled: Option<bool>,
    pub paths: Option<Vec<String>>,
    pub include: Option<Vec<String>>,
    pub exclude: Option<Vec<String>>,
    pub non_exclusive: Option<bool>,
    pub max_owners: Option<u32>,
    pub max_locks: Option<u32>,
    pub ring_buffer_size: Option<String>,
    pub min_age: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sockets {
    pub enabled: Option<bool>,
    pub close_wait_timeout: Option<String>,
    /// `--close-wait-serving-timeout`: DUR or "never".
    pub serving_timeout: Option<String>,
    /// `[[sockets.rule]]` tables: each one `--socket-rule`.
    pub rule: Option<Vec<SocketRule>>,
    pub ports: Option<Vec<u16>>,
    pub exclude_ports: Option<Vec<u16>>,
    pub destroy: Option<String>,
    pub state_file: Option<String>,
}

/// One `[[sockets.rule]]`: `port`, `comm` or `exe`, and `timeout` and/or
/// `serving_timeout` (DUR or "never").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketRule {
    pub port: Option<u16>,
    pub comm: Option<String>,
    pub exe: Option<String>,
    pub timeout: Option<String>,
    pub serving_timeout: Option<String>,
}

impl SocketRule {
    /// The `--socket-rule` value it stands for (checked by its parser).
    fn spec(&self) -> String {
        let mut parts = Vec::new();
        if let Some(p) = self.port {
            parts.push(format!("port={p}"));
        }
        if let Some(c) = &self.comm {
            parts.push(format!("comm={c}"));
        }
        if let Some(e) = &self.exe {
            parts.push(format!("exe={e}"));
        }
        if let Some(t) = &self.timeout {
            parts.push(format!("timeout={t}"));
        }
        if let Some(t) = &self.serving_timeout {
            parts.push(format!("serving-timeout={t}"));
        }
        parts.join(",")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    pub dry_run: Option<bool>,
    pub status_file: Option<String>,
    pub pin: Option<bool>,
    pub pin_dir: Option<String>,
    pub metrics_listen: Option<String>,
    pub metrics_textfile: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sweep {
    pub dry_run: Option<bool>,
    pub metrics_textfile: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    pub format: Option<String>,
    pub level: Option<String>,
    pub timestamp: Option<String>,
}

/// Read and parse a config file (bounded). `Ok(None)`: the default file
/// is absent, which is fine; an absent file named with `--config` is not.
pub fn load(path: &Path, explicit: bool) -> Result<Option<Config>, String> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(None),
        Err(e) => return Err(format!("config {}: {e}", path.display())),
    };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err(format!("config {}: not a regular file", path.display()));
    }
    let mut text = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| format!("config {}: {e}", path.display()))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(format!(
            "config {}: larger than {} KiB, not a config file",
            path.display(),
            MAX_CONFIG_BYTES >> 10
        ));
    }
    let text = String::from_utf8(text)
        .map_err(|_| format!("config {}: not UTF-8 text", path.display()))?;
    parse(&text).map(Some).map_err(|e| {
        format!(
            "config {}: {}",
            path.display(),
            e.trim_end().replace('\n', " ")
        )
    })
}

pub fn parse(text: &str) -> Result<Config, String> {
    toml::from_str(text).map_err(|e| e.message().to_string() + &at(text, e.span()))
}

/// " (line N)" for an error span.
fn at(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    span.map(|s| {
        let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
        format!(" (line {line})")
    })
    .unwrap_or_default()
}

/// The flags a config stands for, for `sub` ("run" or "sweep"), leaving
/// out every option `given` on the command line.
pub fn to_args(cfg: &Config, sub: &str, given: &dyn Fn(&str) -> bool) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let run = sub == "run";
    let one = |a: &mut Vec<String>, id: &str, flag: &str, v: Option<&String>| {
        if let Some(v) = v.filter(|_| !given(id)) {
            a.push(format!("--{flag}={v}"));
        }
    };
    let many = |a: &mut Vec<String>, id: &str, flag: &str, v: Option<Vec<String>>| {
        if let Some(v) = v.filter(|_| !given(id)) {
            for x in v {
                a.push(format!("--{flag}={x}"));
            }
        }
    };
    let switch = |a: &mut Vec<String>, id: &str, flag: &str, on: bool| {
        if on && !given(id) {
            a.push(format!("--{flag}"));
        }
    };
    let l = &cfg.locks;
    switch(&mut a, "no_locks", "no-locks", l.enabled == Some(false));
    many(&mut a, "paths", "path", l.paths.clone());
    many(&mut a, "includes", "include", l.include.clone());
    many(&mut a, "excludes", "exclude", l.exclude.clone());
    let s = &cfg.sockets;
    switch(&mut a, "no_sockets", "no-sockets", s.enabled == Some(false));
    one(
        &mut a,
        "close_wait_timeout",
        "close-wait-timeout",
        s.close_wait_timeout.as_ref(),
    );
    one(
        &mut a,
        "close_wait_serving_timeout",
        "close-wait-serving-timeout",
        s.serving_timeout.as_ref(),
    );
    many(
        &mut a,
        "rules",
        "socket-rule",
        s.rule
            .as_ref()
            .map(|r| r.iter().map(SocketRule::spec).collect()),
    );
    let ports = |v: &Option<Vec<u16>>| v.as_ref().map(|p| p.iter().map(u16::to_string).collect());
    many(&mut a, "ports", "port", ports(&s.ports));
    many(
        &mut a,
        "exclude_ports",
        "exclude-port",
        ports(&s.exclude_ports),
    );
    if run {
        switch(
            &mut a,
            "non_exclusive",
            "non-exclusive",
            l.non_exclusive == Some(true),
        );
        let num = |v: Option<u32>| v.map(|n| n.to_string());
        one(
            &mut a,
            "max_owners",
            "max-owners",
            num(l.max_owners).as_ref(),
        );
        one(&mut a, "max_locks", "max-locks", num(l.max_locks).as_ref());
        one(
            &mut a,
            "ring_buffer_size",
            "ring-buffer-size",
            l.ring_buffer_size.as_ref(),
        );
        one(
            &mut a,
            "socket_destroy",
            "socket-destroy",
            s.destroy.as_ref(),
        );
        let r = &cfg.run;
        switch(&mut a, "dry_run", "dry-run", r.dry_run == Some(true));
        one(&mut a, "status_file", "status-file", r.status_file.as_ref());
        switch(&mut a, "no_pin", "no-pin", r.pin == Some(false));
        one(&mut a, "pin_dir", "pin-dir", r.pin_dir.as_ref());
        one(
            &mut a,
            "metrics_listen",
            "metrics-listen",
            r.metrics_listen.as_ref(),
        );
        one(
            &mut a,
            "metrics_textfile",
            "metrics-textfile",
            r.metrics_textfile.as_ref(),
        );
        let g = &cfg.log;
        one(&mut a, "log_format", "log-format", g.format.as_ref());
        one(&mut a, "log_level", "log-level", g.level.as_ref());
        one(
            &mut a,
            "log_timestamp",
            "log-timestamp",
            g.timestamp.as_ref(),
        );
    } else {
        one(&mut a, "min_age", "min-age", l.min_age.as_ref());
        one(&mut a, "state_file", "state-file", s.state_file.as_ref());
        let w = &cfg.sweep;
        switch(&mut a, "dry_run", "dry-run", w.dry_run == Some(true));
        one(
            &mut a,
            "metrics_textfile",
            "metrics-textfile",
            w.metrics_textfile.as_ref(),
        );
    }
    a
}

/// The config file a command line names (or the default), and whether it
/// was named.
pub fn path_of(m: &ArgMatches) -> (PathBuf, bool) {
    let explicit = m.value_source("config") == Some(ValueSource::CommandLine);
    let p = m
        .get_one::<PathBuf>("config")
        .cloned()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    (p, explicit)
}

/// Parse `argv` (the real command line) merged with the config file it
/// names, for `run` and `sweep`; other commands as they are. A usage error
/// on the command line itself is clap's (full text); one the config
/// brought in names the file.
pub fn parse_command_line(argv: &[std::ffi::OsString]) -> Result<Cli, CliError> {
    let m = Cli::command()
        .try_get_matches_from(argv)
        .map_err(CliError::Clap)?;
    let Some((sub, sm)) = m.subcommand() else {
        return Cli::from_arg_matches(&m).map_err(CliError::Clap);
    };
    if sub != "run" && sub != "sweep" {
        return Cli::from_arg_matches(&m).map_err(CliError::Clap);
    }
    let (path, explicit) = path_of(sm);
    let cfg = match load(&path, explicit).map_err(|e| CliError::Usage(Usage(e)))? {
        Some(c) => c,
        None => return Cli::from_arg_matches(&m).map_err(CliError::Clap),
    };
    let given = |id: &str| sm.value_source(id) == Some(ValueSource::CommandLine);
    let extra = to_args(&cfg, sub, &given);
    let mut merged: Vec<std::ffi::OsString> = Vec::with_capacity(argv.len() + extra.len());
    merged.extend(argv.iter().take(1).cloned());
    merged.push(sub.into());
    merged.extend(extra.into_iter().map(Into::into));
    // the real arguments after the subcommand's name
    let pos = argv
        .iter()
        .position(|a| a == sub)
        .expect("the subcommand is on the command line");
    merged.extend(argv[pos + 1..].iter().cloned());
    let m2 = Cli::command().try_get_matches_from(&merged).map_err(|e| {
        let text = e.render().to_string();
        let line = text.lines().next().unwrap_or("bad value");
        CliError::Usage(Usage(format!(
            "config {}: {}",
            path.display(),
            line.trim_start_matches("error: ")
        )))
    })?;
    Cli::from_arg_matches(&m2).map_err(CliError::Clap)
}

#[derive(Debug)]
pub enum CliError {
    /// Clap's own error: printed as clap renders it (suggestions, allowed
    /// values), exit 2 (or 0 for --help/--version).
    Clap(clap::Error),
    Usage(Usage),
}

/// `eghostbuster check-config [--config FILE]`: parse the file and check
/// it as `run` and `sweep` would (without the host checks). 0 when valid,
/// 2 with one line naming the problem otherwise.
pub fn check(path: &Path, explicit: bool) -> Result<String, Usage> {
    let cfg = load(path, explicit).map_err(Usage)?;
    let Some(cfg) = cfg else {
        return Ok(format!(
            "{}: no such file; the built-in defaults apply",
            path.display()
        ));
    };
    // sweep needs --path for lock files: a file without [locks] paths is
    // for a command line that gives them (or --no-locks)
    let sweep_paths =
        cfg.locks.enabled == Some(false) || cfg.locks.paths.as_ref().is_some_and(|p| !p.is_empty());
    for sub in ["run", "sweep"] {
        let mut argv = vec!["eghostbuster".to_string(), sub.to_string()];
        argv.extend(to_args(&cfg, sub, &|_| false));
        let cli = Cli::try_parse_from(&argv).map_err(|e| {
            let text = e.render().to_string();
            let line = text.lines().next().unwrap_or("bad value").to_string();
            Usage(format!(
                "config {}: {}",
                path.display(),
                line.trim_start_matches("error: ")
            ))
        })?;
        let checked = match cli.command {
            Command::Run(a) => crate::agent::run::validate(&a),
            Command::Sweep(mut a) => {
                if !sweep_paths {
                    a.switches.no_locks = true; // paths come from the command line
                }
                if a.switches.no_locks && a.switches.no_sockets {
                    Ok(())
                } else {
                    crate::agent::sweep::validate(&a)
                }
            }
            _ => Ok(()),
        };
        checked.map_err(|e| Usage(format!("config {}: {e:#}", path.display())))?;
    }
    Ok(format!("{}: valid", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_becomes_its_flag() {
        let cfg = parse(
            r#"
[locks]
enabled = true
paths = ["/srv", "/var/tmp"]
include = ["*.pid.lock"]
exclude = ["/srv/keep/**"]
non_exclusive = true
max_owners = 1024
max_locks = 2048
ring_buffer_size = "4M"
min_age = "2h"

[sockets]
close_wait_timeout = "1m30s"
serving_timeout = "10m"
ports = [8080, 8443]
exclude_ports = [22]
destroy = "netlink"
state_file = "/var/lib/eghostbuster/x.state"

[[sockets.rule]]
port = 9000
timeout = "never"

[[sockets.rule]]
comm = "java"
timeout = "5m"
serving_timeout = "30m"

[run]
dry_run = true
status_file = "/run/eghostbuster/s.json"
pin = false
metrics_listen = "9633"
metrics_textfile = "/tmp/x.prom"

[sweep]
metrics_textfile = "/tmp/y.prom"

[log]
format = "json"
level = "debug"
timestamp = "off"
"#,
        )
        .unwrap();
        let run = to_args(&cfg, "run", &|_| false);
        let mut argv = vec!["eghostbuster".to_string(), "run".to_string()];
        argv.extend(run.clone());
        let Command::Run(a) = Cli::try_parse_from(&argv).unwrap().command else {
            panic!()
        };
        assert_eq!(a.scope.paths.len(), 2);
        assert_eq!(a.sockets.ports, vec![8080, 8443]);
        assert_eq!(
            a.sockets.close_wait_timeout,
            std::time::Duration::from_secs(90)
        );
        assert!(a.switches.dry_run && a.no_pin && a.non_exclusive);
        assert_eq!(a.max_locks, 2048);
        assert_eq!(
            a.sockets.close_wait_serving_timeout,
            crate::sockets::policy::Limit::After(std::time::Duration::from_secs(600))
        );
        assert_eq!(a.sockets.rules.len(), 2);
        assert_eq!(
            a.sockets.rules[1],
            crate::sockets::policy::parse_rule("comm=java,timeout=5m,serving-timeout=30m").unwrap()
        );
        assert_eq!(a.log.log_level, Some(log::LevelFilter::Debug));
        // a flag given on the command line is left out
        let some = to_args(&cfg, "run", &|id| id == "paths" || id == "dry_run");
        assert!(!some.iter().any(|x| x.starts_with("--path=")));
        assert!(!some.iter().any(|x| x == "--dry-run"));
        let sweep = to_args(&cfg, "sweep", &|_| false);
        assert!(sweep.contains(&"--min-age=2h".to_string()));
        assert!(sweep.contains(&"--metrics-textfile=/tmp/y.prom".to_string()));
        assert!(!sweep.iter().any(|x| x.starts_with("--max-locks")));
    }

    #[test]
    fn unknown_keys_and_bad_types_are_errors_with_a_line() {
        let e = parse("[locks]\npath = [\"/srv\"]\n").unwrap_err();
        assert!(e.contains("unknown field") && e.contains("line 2"), "{e}");
        let e = parse("[sockets]\nports = [\"x\"]\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        assert!(parse("").is_ok());
    }
}
