//! The cleanup worker: one thread, the only place that decides and acts.
//! It takes events from the pollers and timer ticks in one `select!` and
//! hands them to the lock half (lock_worker.rs); it also writes the metrics
//! textfile and the status file that `eghostbuster status` reads.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, tick, Receiver};

use crate::events::LockEvent;
use crate::lock_worker::{LockKernel, LockWork};
use crate::metrics::Metrics;
use crate::status;

/// What reaches the worker.
#[derive(Debug)]
pub enum Msg {
    Lock(LockEvent),
}

pub struct Outputs {
    /// Rewritten every few seconds and on the way out.
    pub metrics_textfile: Option<PathBuf>,
    /// Rewritten every second, removed on the way out.
    pub status_file: Option<PathBuf>,
    /// What does not change while running: version, features, programs.
    pub status_header: serde_json::Value,
}

pub struct Worker<K: LockKernel> {
    locks: Option<LockWork<K>>,
    metrics: Arc<Metrics>,
    out: Outputs,
    textfile_due: Instant,
}

const TICK: Duration = Duration::from_secs(1);
const TEXTFILE_EVERY: Duration = Duration::from_secs(5);

impl<K: LockKernel> Worker<K> {
    pub fn new(locks: Option<LockWork<K>>, metrics: Arc<Metrics>, out: Outputs) -> Self {
        Self {
            locks,
            metrics,
            out,
            textfile_due: Instant::now(),
        }
    }

    /// Until every sender is gone.
    pub fn run(&mut self, rx: &Receiver<Msg>) {
        if let Some(l) = &mut self.locks {
            l.adopt();
        }
        self.write_status();
        let ticker = tick(TICK);
        loop {
            select! {
                recv(rx) -> msg => {
                    let Ok(first) = msg else { break };
                    let mut batch = vec![first];
                    while batch.len() < 4096 {
                        match rx.try_recv() {
                            Ok(m) => batch.push(m),
                            Err(_) => break,
                        }
                    }
                    self.handle(batch);
                }
                recv(ticker) -> _ => {
                    if let Some(l) = &mut self.locks {
                        l.tick();
                    }
                    self.write_status();
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
    }

    fn handle(&mut self, batch: Vec<Msg>) {
        let mut lock_events = Vec::new();
        for msg in batch {
            match msg {
                Msg::Lock(ev) => lock_events.push(ev),
            }
        }
        if let Some(l) = &mut self.locks {
            l.handle(lock_events);
        }
    }

    fn write_textfile(&self) {
        if let Some(path) = &self.out.metrics_textfile {
            if let Err(e) = self.metrics.write_textfile(path) {
                log::warn!("writing metrics to {}: {e}", path.display());
            }
        }
    }

    fn write_status(&self) {
        let Some(path) = &self.out.status_file else {
            return;
        };
        let locks = self.locks.as_ref().map(|l| l.status()).unwrap_or_default();
        let doc = status::document(&self.out.status_header, &locks);
        if let Err(e) = status::write_atomically(path, &doc) {
            log::warn!("writing the status file {}: {e}", path.display());
        }
    }
}
