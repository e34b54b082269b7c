//! The cleanup worker: one thread, the only place that decides and acts.
//! It takes events from the pollers, timer ticks and the classes' deadlines
//! in one `select!` and hands each to the duty of the class it belongs to;
//! it also writes the metrics textfile and the status file that
//! `eghostbuster status` reads.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{at, never, select, tick, Receiver};

use crate::agent::class::{Duty, Event};
use crate::agent::metrics::{Health, Metrics};
use crate::agent::status::{self, Header};
use crate::cli::RunArgs;

/// What reaches the worker: an event, and the index of the class (in the
/// worker's duty list) whose poller decoded it.
pub struct Msg {
    pub class: usize,
    pub event: Event,
}

pub struct Outputs {
    /// Rewritten every few seconds and on the way out.
    pub metrics_textfile: Option<PathBuf>,
    /// Rewritten when what is tracked changes (at most once a second) and
    /// every 10 s, removed on the way out.
    pub status_file: Option<PathBuf>,
    /// What does not change while running: version, features, programs.
    pub status_header: Header,
}

pub struct Worker {
    /// (class name, its duty), in registry order.
    duties: Vec<(&'static str, Box<dyn Duty>)>,
    metrics: Arc<Metrics>,
    out: Outputs,
    textfile_due: Instant,
    status_digest: Option<u64>,
    status_due: Instant,
    health: Arc<Health>,
}

const TICK: Duration = Duration::from_secs(1);
const TEXTFILE_EVERY: Duration = Duration::from_secs(5);
const STATUS_EVERY: Duration = Duration::from_secs(10);
/// Events handled in one batch at most.
const BATCH: usize = 4096;

impl Worker {
    pub fn new(
        duties: Vec<(&'static str, Box<dyn Duty>)>,
        metrics: Arc<Metrics>,
        out: Outputs,
        health: Arc<Health>,
    ) -> Self {
        Self {
            duties,
            metrics,
            out,
            textfile_due: Instant::now(),
            status_digest: None,
            status_due: Instant::now(),
            health,
        }
    }

    /// Until every sender is gone. `ctl` brings reloaded configurations
    /// (SIGHUP), each handed to every duty.
    /// What pinned tables hold from before this start (records and exits
    /// recorded while no agent ran): before `ready`, so that a lock made
    /// after the ready line is never taken for an adopted one.
    pub fn adopt(&mut self) {
        for (_, d) in &mut self.duties {
            d.adopt();
        }
    }

    pub fn run(&mut self, rx: &Receiver<Msg>, ctl: &Receiver<Arc<RunArgs>>) {
        let mut ctl = Some(ctl);
        self.write_status();
        let ticker = tick(TICK);
        let closed = never();
        loop {
            self.health.beat();
            let deadline = self
                .duties
                .iter()
                .filter_map(|(_, d)| d.next_deadline())
                .min();
            let timer = deadline.map(at).unwrap_or_else(never);
            select! {
                recv(rx) -> msg => {
                    let Ok(first) = msg else { break };
                    let mut batch = vec![first];
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(m) => batch.push(m),
                            Err(_) => break,
                        }
                    }
                    self.handle(batch);
                }
                recv(ticker) -> _ => {
                    for (_, d) in &mut self.duties {
                        d.tick();
                    }
                    self.write_status();
                    crate::host::memory::trim();
                }
                recv(ctl.unwrap_or(&closed)) -> args => match args {
                    Ok(args) => {
                        for (_, d) in &mut self.duties {
                            d.reload(&args);
                        }
                        self.status_digest = None;
                        self.write_status();
                    }
                    Err(_) => ctl = None,
                },
                recv(timer) -> _ => {
                    let now = Instant::now();
                    for (_, d) in &mut self.duties {
                        if d.next_deadline().is_some_and(|t| t <= now) {
                            d.on_deadline();
                        }
                    }
                }
            }
            if Instant::now() >= self.textfile_due {
                self.write_textfile();
                self.textfile_due = Instant::now() + TEXTFILE_EVERY;
            }
        }
        self.write_textfile();
        if let Some(p) = &self.out.status_file {
            let _ = std::fs::remove_file(p);
        }
        crate::files::intents::close();
        for (_, d) in &mut self.duties {
            d.finish();
        }
    }

    /// Each class's events, in arrival order, as one batch per class.
    fn handle(&mut self, batch: Vec<Msg>) {
        let mut per_class: Vec<Vec<Event>> = self.duties.iter().map(|_| Vec::new()).collect();
        for m in batch {
            if let Some(v) = per_class.get_mut(m.class) {
                v.push(m.event);
            }
        }
        for ((_, d), events) in self.duties.iter_mut().zip(per_class) {
            if !events.is_empty() {
                d.handle(events);
            }
        }
    }

    fn write_textfile(&self) {
        if let Some(path) = &self.out.metrics_textfile {
            if let Err(e) = self.metrics.write_textfile(path) {
                log::warn!("writing metrics to {}: {e}", path.display());
            }
        }
    }

    /// Rewritten when what is tracked changes, and every STATUS_EVERY
    /// otherwise (ages move on): a write-and-rename a second would be
    /// needless I/O on a host whose /run is on disk.
    fn write_status(&mut self) {
        let Some(path) = &self.out.status_file else {
            return;
        };
        // what is tracked, hashed in place: nothing is built per entry
        // unless the file is rewritten, and then only what it lists
        let digest = {
            use std::hash::Hasher;
            let mut h = std::collections::hash_map::DefaultHasher::new();
            for (n, d) in &self.duties {
                h.write(n.as_bytes());
                d.status_digest(&mut h);
            }
            h.finish()
        };
        if Some(digest) == self.status_digest && Instant::now() < self.status_due {
            return;
        }
        let sections: Vec<(&str, crate::agent::class::Section)> = self
            .duties
            .iter()
            .map(|(n, d)| (*n, d.status(status::LIST_MAX)))
            .collect();
        let doc = status::document(&self.out.status_header, &sections);
        if let Err(e) = status::write(path, &doc) {
            log::warn!("writing the status file {}: {e}", path.display());
        }
        self.status_digest = Some(digest);
        self.status_due = Instant::now() + STATUS_EVERY;
    }
}
