//! `eghostbuster run`: check everything the user can get wrong, then the
//! host, then start every enabled class (programs loaded and attached),
//! say `ready`, and run one poller thread per ring buffer and the one
//! cleanup worker until SIGINT or SIGTERM.

use std::mem::MaybeUninit;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use libbpf_rs::OpenObject;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::unistd::Pid;

use crate::agent::class::{Context, Started};
use crate::agent::metrics::{self, Metrics};
use crate::agent::poller;
use crate::agent::status::{self, Header};
use crate::agent::worker::{Msg, Outputs, Worker};
use crate::cli::{RunArgs, Usage};
use crate::host::{atomic, pins, sysenv};

fn libbpf_log(level: libbpf_rs::PrintLevel, msg: String) {
    let msg = msg.trim_end();
    match level {
        libbpf_rs::PrintLevel::Warn => log::warn!("libbpf: {msg}"),
        libbpf_rs::PrintLevel::Info => log::debug!("libbpf: {msg}"),
        libbpf_rs::PrintLevel::Debug => log::trace!("libbpf: {msg}"),
    }
}

pub fn run(args: RunArgs) -> Result<()> {
    let classes: Vec<_> = crate::classes::all()
        .into_iter()
        .filter(|c| c.enabled(&args))
        .collect();
    // Everything the user can get wrong is checked before anything loads.
    if classes.is_empty() {
        return Err(Usage(
            "nothing to monitor: every class is switched off (--no-locks, --no-sockets, --no-unix-sockets, --no-pid-files)".into(),
        )
        .into());
    }
    for c in &classes {
        c.validate(&args)?;
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
    if let Some(dir) = args.status_file.parent() {
        atomic::ensure_default_dir(dir, &[Path::new(status::DEFAULT_STATUS_DIR)]).map_err(|e| {
            Usage(format!(
                "--status-file {}: cannot use {}: {e}",
                args.status_file.display(),
                dir.display()
            ))
        })?;
    }

    for c in &classes {
        c.require(&args)?;
    }
    libbpf_rs::set_print(Some((libbpf_rs::PrintLevel::Debug, libbpf_log)));

    // Signals are taken by sigwait in this thread only.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.thread_block().context("blocking SIGINT/SIGTERM")?;

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
        ..Header::default()
    };
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
    let metrics = Arc::new(Metrics::new(collect));
    let mut worker = Worker::new(
        duties,
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
        if args.switches.dry_run {
            "; dry run: nothing is removed or destroyed"
        } else {
            ""
        }
    );

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
    drop(holds); // detaches what is not pinned
    outcome
}
