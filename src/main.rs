//! eghostbuster: removes ghost lock files left by dead processes, never one
//! a live process relies on, and destroys TCP sockets left idle in
//! CLOSE_WAIT by applications that never close them. This file is the command line and the wiring;
//! each role lives in its own module.

mod agent;
mod cli;
mod files;
mod host;
mod locks;
mod man;
mod sockets;

use std::io::Write as _;
use std::mem::MaybeUninit;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use libbpf_rs::MapHandle;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::unistd::Pid;

use crate::agent::metrics::{self, Metrics};
use crate::agent::poller;
use crate::agent::status;
use crate::agent::worker::{Msg, Outputs, Worker};
use crate::cli::{Cli, Command, LogFormat, RunArgs, SweepArgs};
use crate::host::sysenv::Unmet;
use crate::host::{pins, sysenv};
use crate::locks::patterns::LockMatcher;
use crate::locks::sweep;
use crate::locks::worker::{LockConfig, LockWork};
use crate::locks::{kernel as events, monitor as lock_monitor};
use crate::sockets::model::Method;
use crate::sockets::monitor::{SockBpfConfig, SockMonitor};
use crate::sockets::sweep as sweep_sockets;
use crate::sockets::worker::SockWork;
use crate::sockets::{model as sockets_model, monitor as sock_monitor};

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
        Command::Status { status_file, json } => {
            return match status::read(&status_file) {
                Ok(doc) => {
                    let mut out = std::io::stdout().lock();
                    let r = if json {
                        serde_json::to_writer_pretty(&mut out, &doc)
                            .map_err(std::io::Error::from)
                            .and_then(|_| writeln!(out))
                    } else {
                        status::print_human(&doc, &mut out)
                    };
                    match r {
                        Ok(()) if doc["running"].as_bool() == Some(true) => ExitCode::SUCCESS,
                        Ok(()) => ExitCode::from(3),
                        Err(e) => exit_for(e.into()),
                    }
                }
                Err(e) => {
                    eprintln!("eghostbuster: {e}");
                    ExitCode::from(3)
                }
            };
        }
        Command::Unpin { pin_dir } => {
            init_logging(LogFormat::Text);
            return match unpin(&pin_dir) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => exit_for(e),
            };
        }
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

/// `unpin`: remove every version's pins under the pin root, once no
/// daemon holds it.
fn unpin(root: &std::path::Path) -> Result<()> {
    if !root.exists() {
        return Ok(());
    }
    if !sysenv::is_bpffs(root) {
        return Err(Usage(format!(
            "{} is not on a bpf filesystem; not touching it",
            root.display()
        ))
        .into());
    }
    let _lock = pins::lock_pin_root(root)?;
    let mut n = 0;
    for entry in std::fs::read_dir(root)?.flatten() {
        if entry.path().is_dir() {
            pins::remove_pins(&entry.path())?;
            n += 1;
        }
    }
    std::fs::remove_dir(root).with_context(|| format!("removing {}", root.display()))?;
    log::info!("unpinned {} ({n} version(s))", root.display());
    Ok(())
}

/// `sweep`: exit 0 when nothing went wrong, 1 when a removal or a
/// destruction failed.
fn sweep(args: SweepArgs) -> Result<u8> {
    let s = &args.scope;
    let matcher = LockMatcher::new(&s.includes, &s.excludes, &s.paths).map_err(Usage)?;
    if args.no_locks && args.no_sockets {
        return Err(Usage("nothing to sweep: both --no-locks and --no-sockets".into()).into());
    }
    if !args.no_locks && s.paths.is_empty() {
        return Err(Usage(
            "sweep needs at least one --path for lock files (it never scans the whole host; --no-locks sweeps sockets only)".into(),
        )
        .into());
    }
    let filter = args.sockets.filter().map_err(Usage)?;
    sysenv::check_privileges()?;
    if !args.no_sockets {
        sweep_sockets::prepare_state_file(&args.state_file).map_err(Usage)?;
    }
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
    if !args.no_sockets {
        let summary = sweep_sockets::sweep_sockets(
            &sweep_sockets::SweepSockets {
                filter: &filter,
                timeout: args.sockets.close_wait_timeout,
                state_file: &args.state_file,
                dry_run: args.dry_run,
            },
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        );
        for _ in 0..summary.destroyed {
            metrics.socket_destroyed("netlink");
        }
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

/// Ring-buffer sample to worker message.
type Decode = fn(&[u8]) -> Result<Msg, String>;

fn run(args: RunArgs) -> Result<()> {
    // Everything the user can get wrong is checked before anything loads.
    let matcher = LockMatcher::new(
        &args.scope.includes,
        &args.scope.excludes,
        &args.scope.paths,
    )
    .map_err(Usage)?;
    if args.no_locks && args.no_sockets {
        return Err(Usage(
            "nothing to monitor: --no-locks and --no-sockets leave no monitor".into(),
        )
        .into());
    }
    let filter = args.sockets.filter().map_err(Usage)?;
    let close_wait_timeout = args.sockets.close_wait_timeout;
    let http = match args.metrics_listen {
        Some(addr) => Some(
            tiny_http::Server::http(addr)
                .map_err(|e| Usage(format!("--metrics-listen {addr}: cannot listen: {e}")))?,
        ),
        None => None,
    };
    sysenv::check_privileges()?;
    sysenv::check_btf()?;
    if !args.no_locks {
        sysenv::ensure_tracefs()?;
    }
    libbpf_rs::set_print(Some((libbpf_rs::PrintLevel::Debug, libbpf_log)));

    // Signals are taken by sigwait in this thread only.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.thread_block().context("blocking SIGINT/SIGTERM")?;

    // one pin directory for both monitors, locked once for this daemon
    let pin_root = if args.no_pin {
        None
    } else {
        Some(pins::PinDir::take(&args.pin_dir)?)
    };
    let pin_dir = pin_root.as_ref().map(|p| p.dir.clone());

    let mut lock_storage = MaybeUninit::uninit();
    let lock_monitor = if args.no_locks {
        None
    } else {
        Some(lock_monitor::load(
            &mut lock_storage,
            &lock_monitor::LockBpfConfig {
                non_exclusive: args.non_exclusive,
                names: matcher.kernel_filter(),
                max_owners: args.max_owners,
                max_locks: args.max_locks,
                ring_buffer_size: args.ring_buffer_size,
                force_exit_fallback: args.force_exit_fallback,
                pin_dir: pin_dir.clone(),
            },
        )?)
    };
    let mut sock_storage = MaybeUninit::uninit();
    let sock_monitor = if args.no_sockets {
        None
    } else {
        Some(sock_monitor::load(
            &mut sock_storage,
            &SockBpfConfig {
                timeout: close_wait_timeout,
                filter: filter.clone(),
                destroy: args.socket_destroy,
                dry_run: args.dry_run,
                force_idle_fallback: args.force_idle_fallback,
                pin_dir: pin_dir.clone(),
            },
        )?)
    };

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
    let mut ready = Vec::new();
    let mut header = serde_json::json!({
        "pid": std::process::id(),
        "version": env!("CARGO_PKG_VERSION"),
        "scope": scope,
        "dry_run": args.dry_run,
        "features": {},
    });
    header["pin_dir"] = serde_json::json!(pin_dir.as_ref().map(|p| p.display().to_string()));
    let mut pinned_links = Vec::new();
    let mut lock_events = None;
    let mut locks = None;
    if let Some(m) = &lock_monitor {
        lock_events =
            Some(MapHandle::try_from(&m.skel.maps.lock_events).context("lock_events map")?);
        locks = Some(
            LockWork::new(
                LockConfig {
                    dry_run: args.dry_run,
                    matcher,
                },
                lock_monitor::LockMaps::of(&m.skel)?,
                metrics.clone(),
            )
            .context("reading this process's namespaces")?,
        );
        pinned_links.extend(m.pinned_links.iter().cloned());
        header["attached"] = serde_json::json!(m.attached);
        header["features"]["exit"] = serde_json::json!(m.exit_hook);
        header["features"]["lock_events"] = serde_json::json!("ring buffer");
        header["features"]["paths"] = serde_json::json!("bpf_loop dentry walk");
        ready.push(format!(
            "lock monitor attached ({}); scope: {scope}{}",
            m.attached.join(", "),
            pin_dir
                .as_ref()
                .map(|d| format!("; pinned in {}", d.display()))
                .unwrap_or_default()
        ));
    }

    let mut sock_events = None;
    let mut sockets_work = None;
    let _sock_skel; // the socket programs stay attached while it lives
    if let Some(m) = sock_monitor {
        let SockMonitor {
            skel,
            links,
            reaper,
            pinned_links: sock_pins,
        } = m;
        pinned_links.extend(sock_pins);
        sock_events = Some(MapHandle::try_from(&skel.maps.sock_events).context("sock_events map")?);
        let method = match reaper.method {
            Method::Kfunc => "kfunc (bpf_sock_destroy)",
            Method::Netlink => "netlink (sock_diag SOCK_DESTROY)",
        };
        header["features"]["socket_destroy"] = serde_json::json!(method);
        ready.push(format!(
            "socket monitor attached (inet_sock_set_state, tcp reaper); destroy method: {method}; close-wait timeout {:?}; ports: {}{}{}",
            close_wait_timeout,
            if filter.ports.is_empty() {
                "all".to_string()
            } else {
                format!("{:?}", filter.ports)
            },
            if filter.exclude.is_empty() {
                String::new()
            } else {
                format!(", except {:?}", filter.exclude)
            },
            pin_dir
                .as_ref()
                .map(|d| format!("; stamps pinned in {}", d.display()))
                .unwrap_or_default()
        ));
        let mut work = SockWork::new(
            Box::new(reaper),
            close_wait_timeout,
            filter,
            args.dry_run,
            metrics.clone(),
        );
        // sockets already in CLOSE_WAIT are stamped before we say ready
        work.survey();
        sockets_work = Some(work);
        _sock_skel = (skel, links);
    }
    header["pinned_links"] = serde_json::json!(pinned_links
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>());
    let mut worker = Worker::new(
        locks,
        sockets_work,
        metrics.clone(),
        Outputs {
            metrics_textfile: args.metrics_textfile.clone(),
            status_file: Some(args.status_file.clone()),
            status_header: header,
        },
    );

    let (tx, rx) = crossbeam_channel::bounded::<Msg>(65536);
    let stop = AtomicBool::new(false);
    log::info!(
        "ready: {}{}{}",
        ready.join("; "),
        http.as_ref()
            .map(|h| format!("; metrics on http://{}/metrics", h.server_addr()))
            .unwrap_or_default(),
        if args.dry_run {
            "; dry run: nothing is removed or destroyed"
        } else {
            ""
        }
    );

    let outcome = std::thread::scope(|s| -> Result<()> {
        let mut polls = Vec::new();
        let pollers: [(Option<&MapHandle>, &str, Decode); 2] = [
            (lock_events.as_ref(), "lock events", |d| {
                events::decode(d).map(Msg::Lock)
            }),
            (sock_events.as_ref(), "socket events", |d| {
                sockets_model::decode_event(d).map(Msg::Sock)
            }),
        ];
        for (map, what, decode) in pollers {
            let Some(map) = map else { continue };
            let tx = tx.clone(); // dropped when polling ends
            let (stop, dropped) = (&stop, &metrics.user_events_dropped);
            polls.push(s.spawn(move || {
                let r = poller::run(map, decode, &tx, stop, dropped).context(what);
                if r.is_err() {
                    let _ = kill(Pid::this(), Signal::SIGTERM); // wake the main thread
                }
                r
            }));
        }
        drop(tx); // the worker stops once every poller has
        let work = s.spawn(move || worker.run(&rx));
        if let Some(server) = &http {
            s.spawn(|| metrics::serve(server, &metrics, &stop));
        }
        let sig = signals.wait().context("waiting for signals")?;
        log::info!("{sig}: stopping");
        stop.store(true, Ordering::Relaxed);
        let mut polled = Ok(());
        for p in polls {
            let r = p.join().expect("poller thread panicked");
            if polled.is_ok() {
                polled = r;
            }
        }
        work.join().expect("worker thread panicked");
        polled
    });
    let lost = metrics.user_events_dropped.load(Ordering::Relaxed);
    if lost > 0 {
        log::warn!("{lost} events could not be handled (worker queue full or undecodable)");
    }
    outcome
}
