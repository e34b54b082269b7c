//! The one extension point: what the daemon, `status` and `sweep` need from
//! a ghost class. Each class (src/locks, src/sockets, …) implements
//! [`Class`] once; the run loop, the worker, status, metrics and the sweep
//! iterate over the registry in src/classes.rs and never name a class.

use std::any::Any;
use std::io::{self, Write};
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use libbpf_rs::{MapHandle, OpenObject};

use crate::agent::metrics::Collect;
use crate::cli::{RunArgs, SweepArgs};

/// One decoded ring-buffer sample, on its way from a poller thread to the
/// duty of the class that decoded it (which downcasts it back).
pub type Event = Box<dyn Any + Send>;

/// A class's decoder: raw sample → its own event type, boxed.
pub type Decode = fn(&[u8]) -> Result<Event, String>;

/// A ring buffer to poll, and how to read its samples.
pub struct Events {
    pub map: MapHandle,
    /// For error context: "lock events".
    pub what: &'static str,
    pub decode: Decode,
}

/// A class's own source of events besides its ring buffer (e.g. pidfds,
/// readable when a watched process has exited): run on a thread of its
/// own until `stop` is set, handing each event to `send`, which returns
/// false once the worker is gone. Its events reach the class's duty like
/// the ring buffer's, in one channel.
pub type Wake =
    Box<dyn FnOnce(&dyn Fn(Event) -> bool, &std::sync::atomic::AtomicBool) -> Result<()> + Send>;

/// Whatever must stay alive while the class runs (skeleton, links): held
/// by the run loop, dropped on the way out.
pub trait Hold {}
impl<T> Hold for T {}

/// What starting a class gives the run loop.
pub struct Started<'obj> {
    pub hold: Box<dyn Hold + 'obj>,
    pub events: Option<Events>,
    pub duty: Box<dyn Duty>,
    pub metrics: Arc<dyn Collect>,
    /// Status file "features": (name, value), e.g. ("exit", "tp_btf/…").
    pub features: Vec<(&'static str, String)>,
    /// Programs attached, for the status file.
    pub attached: Vec<String>,
    pub pinned_links: Vec<PathBuf>,
    /// This class's part of the `ready` line.
    pub ready: String,
}

/// What every class gets at start.
pub struct Context<'a> {
    pub args: &'a RunArgs,
    /// `<pin root>/<version>` when pinning.
    pub pin_dir: Option<&'a Path>,
}

/// A class's part of the status document: at most so many of its entries
/// (a JSON array under the class's name) and how many it tracks in all
/// (`<name>_tracked`): a file listing 50,000 locks, rewritten every few
/// seconds, would be no status.
pub struct Section {
    pub entries: serde_json::Value,
    pub total: usize,
}

/// Feed `items` to a status digest.
pub fn digest<T: std::hash::Hash>(h: &mut dyn std::hash::Hasher, items: impl Iterator<Item = T>) {
    let mut h = h;
    for i in items {
        i.hash(&mut h);
    }
}

/// The worker's side of a class. Runs on the one worker thread, which is
/// the only place that decides and acts.
pub trait Duty: Send {
    /// On the main thread, before `ready` (e.g. a first survey).
    fn before_ready(&mut self) {}
    /// On the main thread, before the worker starts: a source of events
    /// of its own, if it has one (see [`Wake`]).
    fn wake(&mut self) -> Option<Wake> {
        None
    }
    /// Before `ready`, on the main thread: adopt a pinned table.
    fn adopt(&mut self) {}
    /// A batch of this class's events, in arrival order.
    fn handle(&mut self, events: Vec<Event>);
    /// Once a second.
    fn tick(&mut self) {}
    /// When the worker should call `on_deadline` next.
    fn next_deadline(&self) -> Option<Instant> {
        None
    }
    fn on_deadline(&mut self) {}
    /// What the status file shows, hashed in place (not ages, which always
    /// change): the file is rewritten when this changes, and every 10 s.
    fn status_digest(&self, h: &mut dyn std::hash::Hasher);
    /// At most `limit` entries for the status file, and the total.
    fn status(&self, limit: usize) -> Section;
    /// SIGHUP: a new configuration, already checked by `Class::validate`.
    /// Apply what this class can change while running (scope, patterns,
    /// timeouts, ports…) and log, in one line each, what changed and what
    /// needs a restart. The default changes nothing.
    fn reload(&mut self, _args: &RunArgs) {}
    /// On the way out (debug figures).
    fn finish(&mut self) {}
}

/// What a class's cron pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepSummary {
    pub acted: u64,
    pub failed: u64,
}

/// A ghost class.
pub trait Class: Sync {
    /// Its name: status section, `--no-<name>`, log context.
    fn name(&self) -> &'static str;
    /// Switched on for this run?
    fn enabled(&self, args: &RunArgs) -> bool;
    /// Everything the user can get wrong, before anything loads (a
    /// `cli::Usage` error: exit 2).
    fn validate(&self, args: &RunArgs) -> Result<()>;
    /// Host requirements beyond root and BTF (an `Unmet` error: exit 2).
    fn require(&self, _args: &RunArgs) -> Result<()> {
        Ok(())
    }
    /// Load and attach; `storage` lives as long as the run.
    fn start<'obj>(
        &self,
        storage: &'obj mut MaybeUninit<OpenObject>,
        ctx: &Context<'_>,
    ) -> Result<Started<'obj>>;
    /// Its section of a status document, for people.
    fn print_status(&self, entries: &serde_json::Value, out: &mut dyn Write) -> io::Result<()>;

    /// Part of this `sweep`?
    fn sweep_enabled(&self, args: &SweepArgs) -> bool;
    /// Usage checks for the sweep, before anything is touched.
    fn sweep_validate(&self, args: &SweepArgs) -> Result<()>;
    /// Host requirements of the sweep (an `Unmet` error: exit 2), e.g. a
    /// capability its method needs.
    fn sweep_require(&self, _args: &SweepArgs) -> Result<()> {
        Ok(())
    }
    /// One pass: actions on `out`, failures on `err`; its counters go to
    /// `metrics` (rendered into the textfile).
    fn sweep(
        &self,
        args: &SweepArgs,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<(SweepSummary, Arc<dyn Collect>)>;
}
