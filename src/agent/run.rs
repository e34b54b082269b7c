//! `eghostbuster run`: check everything the user can get wrong, then the
//! host, then start every enabled class (programs loaded and attached),
//! say `ready`, and run one poller thread per ring buffer and the one
//! cleanup worker until SIGINT, SIGTERM or SIGQUIT. SIGHUP reads the
//! config file again and hands what can change to each class's duty;
//! SIGUSR1, SIGUSR2, SIGALRM and SIGPIPE are logged and ignored.

use std::ffi::OsString;
use std::mem::MaybeUninit;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use libbpf_rs::OpenObject;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::unistd::Pid;

use crate::agent::class::{Context, Started};
use crate::agent::config::{self, CliError};
use crate::agent::metrics::{self, Health, Metrics};
use crate::agent::poller;
use crate::agent::status::{self, Header};
use crate::agent::supervisor;
use crate::agent::worker::{Msg, Outputs, Worker};
use crate::cli::{Cli, Command, RunArgs, Usage};
use crate::host::escape::Esc;
use crate::host::{atomic, pins, sysenv};

fn libbpf_log(level: libbpf_rs::PrintLevel, msg: String) {
    let msg = msg.trim_end();
    match level {
        libbpf_rs::PrintLevel::Warn => log::warn!("libbpf: {msg}"),
        libbpf_rs::PrintLevel::Info => log::debug!("libbpf: {msg}"),
        libbpf_rs::PrintLevel::Debug => log::trace!("libbpf: {msg}"),
    }
}

/// Everything the user can get wrong, before anything loads (also
/// `check-config`).
pub fn validate(args: &RunArgs) -> Result<()> {
    let classes: Vec<_> = crate::classes::all()
        .into_iter()
        .filter(|c| c.enabled(args))
        .collect();
    if classes.is_empty() {
        return Err(Usage(
            "nothing to monitor: every class is switched off (--no-locks, --no-sockets, --no-unix-sockets, --no-pid-files)".into(),
        )
        .into());
    }
    for c in &classes {
        c.validate(args)?;
    }
    Ok(())
}

/// The signals the main thread takes with sigwait: the stopping ones, the
/// reload, and those a supervisor or an operator commonly sends, which
/// would otherwise end the daemon without a word (SIGPIPE: std already
/// ignores it).
const STOP: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGQUIT];
const IGNORED: [Signal; 4] = [
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGPIPE,
];

fn signal_set() -> SigSet {
    let mut set = SigSet::empty();
    for s in STOP.iter().chain(&IGNORED).chain(&[Signal::SIGHUP]) {
        set.add(*s);
    }
    set
}

/// sigtimedwait: a signal, or None when `timeout` passed.
fn wait_signal(set: &SigSet, timeout: Option<Duration>) -> Result<Option<Signal>> {
    let Some(t) = timeout else {
        return Ok(Some(set.wait().context("waiting for signals")?));
    };
    let ts = libc::timespec {
        tv_sec: t.as_secs() as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    };
    // SAFETY: a valid set and timespec; no siginfo wanted.
    let r = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &ts) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
            _ => Err(e).context("waiting for signals"),
        };
    }
    Ok(Signal::try_from(r).ok())
}

/// The command line again, with the config file read anew: the new
/// configuration, checked, or why it is refused.
fn reread(argv: &[OsString]) -> Result<RunArgs> {
    match config::parse_command_line(argv) {
        Ok(Cli {
            command: Command::Run(a),
        }) => {
            validate(&a)?;
            Ok(a)
        }
        Ok(_) => Err(anyhow::anyhow!("not a run command line")),
        Err(CliError::Usage(u)) => Err(u.into()),
        Err(CliError::Clap(e)) => Err(anyhow::anyhow!("{}", e.render().to_string().trim_end())),
    }
}

pub fn run(args: RunArgs, argv: Vec<OsString>) -> Result<()> {
    // Signals are taken by sigwait in this thread only: blocked before any
    // thread starts (the HTTP listener's among them), so none inherits
    // them unblocked.
    let signals = signal_set();
    signals
        .thread_block()
        .context("blocking the signals the daemon handles")?;
    validate(&args)?;
    let classes: Vec<_> = crate::classes::all()
        .into_iter()
        .filter(|c| c.enabled(&args))
        .collect();
    let http = match args.metrics_listen {
        Some(addr) => Some(
            tiny_http::Server::http(addr)
                .map_err(|e| Usage(format!("--metrics-listen {addr}: cannot listen: {e}")))?,
        ),
        None => None,
    };
    sysenv::check_privileges()?;
    sysenv::check_btf()?;
    if let Some(dir) = args.status_file.parent() {
        atomic::ensure_default_dir(dir, &[Path::new(status::DEFAULT_STATUS_DIR)]).map_err(|e| {
            Usage(format!(
                "--status-file {}: cannot use {}: {e}",
                args.status_file.display(),
                dir.display()
            ))
        })?;
    }
    // one daemon per status file, held until the process ends
    let _owner = status::Owner::take(&args.status_file)?;
    // removals an earlier daemon on this status file left half done: put
    // back before any class starts judging (files/intents.rs)
    let journal = intents_path(&args.status_file);
    match crate::files::intents::open(&journal) {
        Ok(left) => crate::files::intents::recover(left),
        Err(e) => log::warn!(
            "no removal journal ({}: {e}): a stop between hiding a lock and removing it leaves the hidden name for sweep",
            journal.display()
        ),
    }

    for c in &classes {
        c.require(&args)?;
    }
    libbpf_rs::set_print(Some((libbpf_rs::PrintLevel::Debug, libbpf_log)));

    // one pin directory for every class, locked once for this daemon
    let pin_root = if args.no_pin {
        None
    } else {
        Some(pins::PinDir::take(&args.pin_dir)?)
    };
    let pin_dir = pin_root.as_ref().map(|p| p.dir.as_path());
    let ctx = Context {
        args: &args,
        pin_dir,
    };

    // who holds a file: one backend for every file class (BPF iterators,
    // or the /proc walk where they do not load)
    let holders = crate::files::holders::init(args.scope.force_holders_fallback);

    // The skeletons borrow their storage: it lives here, for the run.
    let mut storage: Vec<MaybeUninit<OpenObject>> =
        classes.iter().map(|_| MaybeUninit::uninit()).collect();
    let mut started: Vec<(&'static str, Started<'_>)> = Vec::new();
    for (c, s) in classes.iter().zip(storage.iter_mut()) {
        started.push((c.name(), c.start(s, &ctx)?));
    }

    let mut header = Header {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").into(),
        scope: args.scope.describe(),
        dry_run: args.switches.dry_run,
        pin_dir: pin_dir.map(|p| p.display().to_string()),
        classes: started.iter().map(|(n, _)| n.to_string()).collect(),
        disabled: crate::classes::all()
            .into_iter()
            .filter(|c| !c.enabled(&args))
            .map(|c| c.name().to_string())
            .collect(),
        ..Header::default()
    };
    header.features.insert("holders".into(), holders.clone());
    let mut ready = Vec::new();
    let mut duties = Vec::new();
    let mut events = Vec::new();
    let mut holds = Vec::new();
    let mut collect = Vec::new();
    let mut wakes = Vec::new();
    for (i, (name, s)) in started.into_iter().enumerate() {
        header
            .features
            .extend(s.features.into_iter().map(|(k, v)| (k.to_string(), v)));
        header.attached.extend(s.attached);
        header
            .pinned_links
            .extend(s.pinned_links.iter().map(|p| p.display().to_string()));
        ready.push(s.ready);
        collect.push(s.metrics);
        events.extend(s.events.map(|e| (i, e)));
        let mut duty = s.duty;
        duty.before_ready();
        wakes.extend(duty.wake().map(|w| (i, w)));
        duties.push((name, duty));
        holds.push(s.hold);
    }
    ready.push(format!("holder checks: {holders}"));
    let metrics = Arc::new(Metrics::new(collect, header.features.clone()));
    let health = Arc::new(Health::default());
    let mut worker = Worker::new(
        duties,
        metrics.clone(),
        Outputs {
            metrics_textfile: args.metrics_textfile.clone(),
            status_file: Some(args.status_file.clone()),
            status_header: header,
        },
        health.clone(),
    );

    // a bounded channel allocates (and touches) every slot up front: 65,536
    // of them were 6.6 MiB of the agent's memory at idle. This one grows
    // with the backlog, which the pollers cap (agent/poller.rs)
    let (tx, rx) = crossbeam_channel::unbounded::<Msg>();
    let (ctl_tx, ctl_rx) = crossbeam_channel::unbounded::<Arc<RunArgs>>();
    let stop = AtomicBool::new(false);
    worker.adopt();
    log::info!(
        event = "ready";
        "ready: {}{}{}",
        ready.join("; "),
        http.as_ref()
            .map(|h| format!("; metrics on http://{}/metrics", h.server_addr()))
            .unwrap_or_default(),
        if args.switches.dry_run {
            "; dry run: nothing is removed or destroyed"
        } else {
            ""
        }
    );
    health.ready.store(true, Ordering::Relaxed);
    let notify = supervisor::Notify::from_env();
    notify.ready();

    let outcome = std::thread::scope(|s| -> Result<()> {
        let mut polls = Vec::new();
        for (class, ev) in &events {
            let class = *class;
            let tx = tx.clone(); // dropped when polling ends
            let (stop, dropped) = (&stop, &metrics.user_events_dropped);
            polls.push(s.spawn(move || {
                let decode = |d: &[u8]| (ev.decode)(d).map(|event| Msg { class, event });
                let r = poller::run(&ev.map, decode, &tx, stop, dropped).context(ev.what);
                if r.is_err() {
                    let _ = kill(Pid::this(), Signal::SIGTERM); // wake the main thread
                }
                r
            }));
        }
        for (class, wake) in wakes {
            let tx = tx.clone(); // dropped when waking ends
            let stop = &stop;
            polls.push(s.spawn(move || {
                // blocking: a wake (a process exit) is heard once only
                let send = |event| tx.send(Msg { class, event }).is_ok();
                let r = wake(&send, stop);
                if r.is_err() {
                    let _ = kill(Pid::this(), Signal::SIGTERM); // wake the main thread
                }
                r
            }));
        }
        drop(tx); // the worker stops once every poller has
        let work = s.spawn(move || worker.run(&rx, &ctl_rx));
        if let Some(server) = &http {
            let (metrics, health, stop) = (&metrics, &health, &stop);
            s.spawn(move || metrics::serve(server, metrics, health, stop));
        }
        let mut current = args.clone();
        loop {
            let sig = match wait_signal(&signals, notify.ping_every())? {
                None => {
                    // the watchdog is fed only while the worker turns
                    if health.turning() {
                        notify.watchdog();
                    }
                    continue;
                }
                Some(sig) => sig,
            };
            if STOP.contains(&sig) {
                log::info!(event = "stopping", signal = sig.as_str(); "{sig}: stopping");
                break;
            }
            if sig != Signal::SIGHUP {
                log::info!(event = "signal_ignored", signal = sig.as_str(); "{sig}: ignored (it has no meaning for eghostbuster)");
                continue;
            }
            notify.reloading();
            match reread(&argv) {
                Ok(new) => {
                    let notes = restart_needed(&current, &new);
                    for n in &notes {
                        log::warn!(event = "reload_restart_needed"; "SIGHUP: {n} changed: takes effect at the next start");
                    }
                    if crate::agent::logging::set_level(new.log.log_level) {
                        log::info!("SIGHUP: log level {}", log::max_level());
                    }
                    let new = Arc::new(new);
                    if ctl_tx.send(new.clone()).is_ok() {
                        current = (*new).clone();
                    }
                    log::info!(event = "reloaded"; "SIGHUP: configuration reloaded from {}", Esc::path(&current.config));
                }
                Err(e) => {
                    log::error!(event = "reload_failed"; "SIGHUP: configuration not reloaded, the running one is kept: {e:#}");
                }
            }
            notify.ready();
        }
        notify.stopping();
        health.ready.store(false, Ordering::Relaxed);
        stop.store(true, Ordering::Relaxed);
        let mut polled = Ok(());
        for p in polls {
            let r = p.join().expect("poller thread panicked");
            if polled.is_ok() {
                polled = r;
            }
        }
        drop(ctl_tx);
        work.join().expect("worker thread panicked");
        polled
    });
    let lost = metrics.user_events_dropped.load(Ordering::Relaxed);
    if lost > 0 {
        log::warn!("{lost} events could not be handled (worker queue full or undecodable)");
    }
    drop(holds); // detaches what is not pinned
    outcome
}

/// What a reload cannot change (it is fixed in the loaded programs or the
/// process), by flag.
fn restart_needed(old: &RunArgs, new: &RunArgs) -> Vec<&'static str> {
    let mut v = Vec::new();
    let mut differs = |name: &'static str, d: bool| {
        if d {
            v.push(name);
        }
    };
    differs("--no-locks", old.switches.no_locks != new.switches.no_locks);
    differs(
        "--no-sockets",
        old.switches.no_sockets != new.switches.no_sockets,
    );
    differs(
        "--no-unix-sockets",
        old.switches.no_unix_sockets != new.switches.no_unix_sockets,
    );
    differs(
        "--no-pid-files",
        old.switches.no_pid_files != new.switches.no_pid_files,
    );
    differs("--dry-run", old.switches.dry_run != new.switches.dry_run);
    differs("--non-exclusive", old.non_exclusive != new.non_exclusive);
    differs("--max-owners", old.max_owners != new.max_owners);
    differs("--max-locks", old.max_locks != new.max_locks);
    differs(
        "--ring-buffer-size",
        old.ring_buffer_size != new.ring_buffer_size,
    );
    differs("--socket-destroy", old.socket_destroy != new.socket_destroy);
    differs(
        "--metrics-textfile",
        old.metrics_textfile != new.metrics_textfile,
    );
    differs("--metrics-listen", old.metrics_listen != new.metrics_listen);
    differs("--log-format", old.log.log_format != new.log.log_format);
    differs(
        "--log-timestamp",
        old.log.log_timestamp != new.log.log_timestamp,
    );
    differs(
        "--pin-dir",
        old.pin_dir != new.pin_dir || old.no_pin != new.no_pin,
    );
    differs("--status-file", old.status_file != new.status_file);
    v
}

/// The removal journal beside the status file: `<status-file>.intents`.
pub fn intents_path(status_file: &Path) -> std::path::PathBuf {
    let mut p = status_file.as_os_str().to_os_string();
    p.push(".intents");
    p.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn run_args(extra: &[&str]) -> RunArgs {
        let argv = ["eghostbuster", "run"].iter().chain(extra).copied();
        match crate::cli::Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::Run(a) => a,
            _ => panic!("not run"),
        }
    }

    /// A reload cannot switch a class on or off: every class switch is
    /// named as needing a restart.
    #[test]
    fn every_class_switch_needs_a_restart() {
        let base = run_args(&[]);
        for flag in [
            "--no-locks",
            "--no-sockets",
            "--no-unix-sockets",
            "--no-pid-files",
        ] {
            assert_eq!(restart_needed(&base, &run_args(&[flag])), vec![flag]);
        }
        assert!(restart_needed(&base, &run_args(&[])).is_empty());
    }
}
