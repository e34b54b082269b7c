//! eghostbuster: removes ghost lock files left by dead processes, never one
//! a live process relies on. This file is the command line and the wiring;
//! each role lives in its own module.

mod bpf;
mod cli;
mod events;
mod lock_monitor;
mod lockfile;
mod metrics;
mod patterns;
mod poller;
mod procfs;
mod removal;
mod sweep;
mod sysenv;
mod verdict;
mod worker;

use std::mem::MaybeUninit;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use libbpf_rs::{MapCore, MapFlags, MapHandle};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::unistd::Pid;

use crate::cli::{Cli, Command, LogFormat, RunArgs, SweepArgs};
use crate::metrics::Metrics;
use crate::patterns::LockMatcher;
use crate::sysenv::Unmet;
use crate::worker::{KernelCounters, Msg, Worker, WorkerConfig};

/// Exit codes (README): 0 success, 1 runtime failure, 2 bad usage or an
/// unmet requirement.
const EXIT_RUNTIME: u8 = 1;
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            eprintln!("eghostbuster: a subcommand is required: run (see --help)");
            return ExitCode::from(EXIT_USAGE);
        }
        Err(e) => {
            let text = e.render().to_string();
            let line = text.lines().next().unwrap_or("bad usage");
            eprintln!("eghostbuster: {}", line.trim_start_matches("error: "));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let args = match cli.command {
        Command::Run(args) => args,
        Command::Sweep(args) => {
            init_logging(LogFormat::Text);
            return match sweep(args) {
                Ok(code) => ExitCode::from(code),
                Err(e) => exit_for(e),
            };
        }
        other => {
            return match cli::generate(&other, &mut std::io::stdout().lock()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("eghostbuster: {e}");
                    ExitCode::from(EXIT_RUNTIME)
                }
            };
        }
    };
    init_logging(args.log_format);

    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => exit_for(e),
    }
}

/// One line on stderr, and the documented exit code.
fn exit_for(e: anyhow::Error) -> ExitCode {
    if let Some(u) = e.downcast_ref::<Unmet>() {
        eprintln!("eghostbuster: {u}");
        ExitCode::from(EXIT_USAGE)
    } else if let Some(u) = e.downcast_ref::<Usage>() {
        eprintln!("eghostbuster: {}", u.0);
        ExitCode::from(EXIT_USAGE)
    } else {
        eprintln!("eghostbuster: {e:#}");
        ExitCode::from(EXIT_RUNTIME)
    }
}

/// `sweep`: exit 0 when nothing went wrong, 1 when a removal failed.
fn sweep(args: SweepArgs) -> Result<u8> {
    let s = &args.scope;
    let matcher = LockMatcher::new(&s.includes, &s.excludes, &s.paths).map_err(Usage)?;
    if args.no_locks && args.no_sockets {
        return Err(Usage("nothing to sweep: both --no-locks and --no-sockets".into()).into());
    }
    if !args.no_locks && s.paths.is_empty() {
        return Err(Usage(
            "sweep needs at least one --path for lock files (it never scans the whole host)".into(),
        )
        .into());
    }
    sysenv::check_privileges()?;
    let metrics = Metrics::default();
    let mut failed = 0;
    if !args.no_locks {
        let summary = sweep::sweep_locks(
            &matcher,
            &s.paths,
            args.min_age,
            args.dry_run,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        );
        metrics
            .locks_removed_total
            .fetch_add(summary.removed, Ordering::Relaxed);
        metrics
            .lock_removal_failures_total
            .fetch_add(summary.failed, Ordering::Relaxed);
        failed += summary.failed;
    }
    if let Some(path) = &args.metrics_textfile {
        metrics
            .write_textfile(path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if failed > 0 { EXIT_RUNTIME } else { 0 })
}

/// Bad usage found after parsing (globs, combinations).
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

fn init_logging(format: LogFormat) {
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    b.format_target(false);
    if format == LogFormat::Json {
        b.format(|buf, record| {
            use std::io::Write;
            writeln!(
                buf,
                "{{\"ts\":\"{}\",\"level\":\"{}\",\"msg\":{}}}",
                buf.timestamp_millis(),
                record.level().as_str().to_ascii_lowercase(),
                json_string(&record.args().to_string())
            )
        });
    }
    b.init();
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn libbpf_log(level: libbpf_rs::PrintLevel, msg: String) {
    let msg = msg.trim_end();
    match level {
        libbpf_rs::PrintLevel::Warn => log::warn!("libbpf: {msg}"),
        libbpf_rs::PrintLevel::Info => log::debug!("libbpf: {msg}"),
        libbpf_rs::PrintLevel::Debug => log::trace!("libbpf: {msg}"),
    }
}

struct BssCounters(MapHandle);

impl KernelCounters for BssCounters {
    fn read(&self) -> Option<(u64, u64)> {
        let bytes = self.0.lookup(&0u32.to_ne_bytes(), MapFlags::ANY).ok()??;
        let mut c = bpf::locks::types::lock_counters::default();
        plain::copy_from_bytes(&mut c, &bytes).ok()?;
        Some((c.ringbuf_drops, c.owners_full))
    }
}

fn run(args: RunArgs) -> Result<()> {
    // Everything the user can get wrong is checked before anything loads.
    let matcher = LockMatcher::new(
        &args.scope.includes,
        &args.scope.excludes,
        &args.scope.paths,
    )
    .map_err(Usage)?;
    if args.no_locks {
        return Err(Usage("nothing to monitor: --no-locks leaves no monitor (the socket monitor is not built yet)".into()).into());
    }
    let http = match args.metrics_listen {
        Some(addr) => Some(
            tiny_http::Server::http(addr)
                .map_err(|e| Usage(format!("--metrics-listen {addr}: cannot listen: {e}")))?,
        ),
        None => None,
    };
    sysenv::check_privileges()?;
    sysenv::check_btf()?;
    sysenv::ensure_tracefs()?;
    libbpf_rs::set_print(Some((libbpf_rs::PrintLevel::Debug, libbpf_log)));

    // Signals are taken by sigwait in this thread only.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.thread_block().context("blocking SIGINT/SIGTERM")?;

    let mut storage = MaybeUninit::uninit();
    let monitor = lock_monitor::load(
        &mut storage,
        &lock_monitor::LockBpfConfig {
            non_exclusive: args.non_exclusive,
            suffixes: matcher.kernel_suffixes(),
            max_owners: args.max_owners,
            ring_buffer_size: args.ring_buffer_size,
            force_exit_fallback: args.force_exit_fallback,
        },
    )?;
    let maps = &monitor.skel.maps;
    let owners = MapHandle::try_from(&maps.owners).context("owners map")?;
    let events = MapHandle::try_from(&maps.lock_events).context("lock_events map")?;
    let bss = MapHandle::try_from(&maps.bss).context(".bss map")?;

    let scope = if args.scope.paths.is_empty() {
        "the whole host".to_string()
    } else {
        args.scope
            .paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let metrics = Arc::new(Metrics::default());
    let mut worker = Worker::new(
        WorkerConfig {
            dry_run: args.dry_run,
            matcher,
            max_locks: args.max_locks as usize,
            metrics_textfile: args.metrics_textfile.clone(),
        },
        owners,
        BssCounters(bss),
        metrics.clone(),
    )
    .context("reading this process's namespaces")?;

    let (tx, rx) = crossbeam_channel::bounded::<Msg>(65536);
    let stop = AtomicBool::new(false);
    log::info!(
        "ready: lock monitor attached ({}); scope: {scope}{}{}",
        monitor.attached.join(", "),
        http.as_ref()
            .map(|h| format!("; metrics on http://{}/metrics", h.server_addr()))
            .unwrap_or_default(),
        if args.dry_run {
            "; dry run: nothing is removed"
        } else {
            ""
        }
    );

    let outcome = std::thread::scope(|s| -> Result<()> {
        let poll = s.spawn(|| {
            let tx = tx; // dropped when polling ends: the worker then stops
            let r = poller::run(
                &events,
                |d| events::decode(d).map(Msg::Lock),
                &tx,
                &stop,
                &metrics.user_events_dropped,
            );
            if r.is_err() {
                let _ = kill(Pid::this(), Signal::SIGTERM); // wake the main thread
            }
            r
        });
        let work = s.spawn(move || worker.run(&rx));
        if let Some(server) = &http {
            s.spawn(|| metrics::serve(server, &metrics, &stop));
        }
        let sig = signals.wait().context("waiting for signals")?;
        log::info!("{sig}: stopping");
        stop.store(true, Ordering::Relaxed);
        let polled = poll.join().expect("poller thread panicked");
        work.join().expect("worker thread panicked");
        polled
    });
    let lost = metrics.user_events_dropped.load(Ordering::Relaxed);
    if lost > 0 {
        log::warn!("{lost} lock events could not be handled (worker queue full or undecodable)");
    }
    outcome
}
