//! The cleanup worker: one thread, the only place that decides and acts.
//! It takes events from the pollers, timer ticks and socket deadlines in one
//! `select!` and hands them to the lock half (lock_worker.rs) and the socket
//! half (sock_worker.rs); it also writes the metrics textfile and the status
//! file that `eghostbuster status` reads.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{at, never, select, tick, Receiver};

use crate::agent::metrics::Metrics;
use crate::agent::status;
use crate::locks::kernel::LockEvent;
use crate::locks::worker::{LockKernel, LockWork};
use crate::sockets::model::SockEvent;
use crate::sockets::worker::SockWork;

/// What reaches the worker.
#[derive(Debug)]
pub enum Msg {
    Lock(LockEvent),
    Sock(SockEvent),
}

pub struct Outputs {
    /// Rewritten every few seconds and on the way out.
    pub metrics_textfile: Option<PathBuf>,
    /// Rewritten when what is tracked changes (at most once a second) and
    /// every 10 s, removed on the way out.
    pub status_file: Option<PathBuf>,
    /// What does not change while running: version, features, programs.
    pub status_header: serde_json::Value,
}

pub struct Worker<K: LockKernel> {
    locks: Option<LockWork<K>>,
    sockets: Option<SockWork>,
    metrics: Arc<Metrics>,
    out: Outputs,
    textfile_due: Instant,
    status_digest: Option<u64>,
    status_due: Instant,
}

const TICK: Duration = Duration::from_secs(1);
const TEXTFILE_EVERY: Duration = Duration::from_secs(5);
const STATUS_EVERY: Duration = Duration::from_secs(10);

impl<K: LockKernel> Worker<K> {
    pub fn new(
        locks: Option<LockWork<K>>,
        sockets: Option<SockWork>,
        metrics: Arc<Metrics>,
        out: Outputs,
    ) -> Self {
        Self {
            locks,
            sockets,
            metrics,
            out,
            textfile_due: Instant::now(),
            status_digest: None,
            status_due: Instant::now(),
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
            let deadline = self.sockets.as_ref().and_then(|s| s.next_deadline());
            let timer = deadline.map(at).unwrap_or_else(never);
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
                    if let Some(s) = &mut self.sockets {
                        s.tick();
                    }
                    self.write_status();
                }
                recv(timer) -> _ => {
                    if let Some(s) = &mut self.sockets {
                        s.on_deadline();
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
        if let Some(s) = &self.sockets {
            log::debug!("worker, sockets: {:?}", s.stats);
        }
    }

    fn handle(&mut self, batch: Vec<Msg>) {
        let mut lock_events = Vec::new();
        for msg in batch {
            match msg {
                Msg::Lock(ev) => lock_events.push(ev),
                Msg::Sock(ev) => {
                    if let Some(s) = &mut self.sockets {
                        s.on_event(ev);
                    }
                }
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

    /// Rewritten when what is tracked changes, and every STATUS_EVERY
    /// otherwise (ages move on): a write-and-rename a second would be
    /// needless I/O on a host whose /run is on disk.
    fn write_status(&mut self) {
        let Some(path) = &self.out.status_file else {
            return;
        };
        let locks = self.locks.as_ref().map(|l| l.status()).unwrap_or_default();
        let sockets = self
            .sockets
            .as_ref()
            .map(|s| s.status())
            .unwrap_or_default();
        let shape: Vec<String> = locks
            .iter()
            .map(|l| {
                format!(
                    "{}:{}:{}:{}",
                    l.path, l.owner_pid, l.owner_alive, l.stale_kept
                )
            })
            .chain(sockets.iter().map(|s| s.cookie.to_string()))
            .collect();
        let digest = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            shape.hash(&mut h);
            h.finish()
        };
        if Some(digest) == self.status_digest && Instant::now() < self.status_due {
            return;
        }
        let doc = status::document(&self.out.status_header, &locks, &sockets);
        if let Err(e) = status::write_atomically(path, &doc) {
            log::warn!("writing the status file {}: {e}", path.display());
        }
        self.status_digest = Some(digest);
        self.status_due = Instant::now() + STATUS_EVERY;
    }
}
