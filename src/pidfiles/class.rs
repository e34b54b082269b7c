//! PID files as the agent runs them: the one `Class` implementation that
//! ties the PID-file monitor, its duty, its status and its sweep to the
//! run loop (src/agent).

use std::io::{self, Write};
use std::mem::MaybeUninit;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use libbpf_rs::{MapHandle, OpenObject};

use crate::agent::class::{
    digest, Class, Context, Duty, Event, Events, Section, Started, SweepSummary, Wake,
};
use crate::agent::metrics::Collect;
use crate::cli::{LockScope, PidFileScope, RunArgs, SweepArgs, Usage};
use crate::files::names::Names;
use crate::pidfiles::kernel::{self, PidfEvent};
use crate::pidfiles::metrics::PidfMetrics;
use crate::pidfiles::monitor::{self, PidfMaps, MAX_SUFFIXES, MAX_SUFFIX_LEN};
use crate::pidfiles::sweep::sweep_pid_files;
use crate::pidfiles::worker::{PidfConfig, PidfStatus, PidfWork};

pub struct PidFiles;

fn names(scope: &LockScope, pid: &PidFileScope) -> Result<Names> {
    Ok(Names::new(Some(&pid.patterns()), &scope.excludes, &scope.paths).map_err(Usage)?)
}

struct PidfDuty {
    work: PidfWork<PidfMaps>,
}

impl Duty for PidfDuty {
    fn wake(&mut self) -> Option<Wake> {
        self.work.wake()
    }

    fn adopt(&mut self) {
        self.work.adopt();
    }

    fn handle(&mut self, events: Vec<Event>) {
        let events = events
            .into_iter()
            .filter_map(|e| e.downcast::<PidfEvent>().ok().map(|b| *b))
            .collect();
        self.work.handle(events);
    }

    fn tick(&mut self) {
        self.work.tick();
    }

    fn next_deadline(&self) -> Option<std::time::Instant> {
        self.work.next_deadline()
    }

    fn on_deadline(&mut self) {
        self.work.on_deadline();
    }

    fn status_digest(&self, h: &mut dyn std::hash::Hasher) {
        let files = self.work.status();
        digest(
            h,
            files
                .iter()
                .map(|f| (&f.path, f.named_pid, f.owner_pid, f.owner_alive, &f.state)),
        );
    }

    fn status(&self, limit: usize) -> Section {
        let mut files = self.work.status();
        let total = files.len();
        files.truncate(limit);
        Section {
            entries: serde_json::to_value(&files).unwrap_or_default(),
            total,
        }
    }

    fn finish(&mut self) {
        log::debug!(
            "worker, PID files: {} owners watched at the end",
            self.work.watched()
        );
    }
}

fn decode(data: &[u8]) -> Result<Event, String> {
    kernel::decode(data).map(|e| Box::new(e) as Event)
}

impl Class for PidFiles {
    fn name(&self) -> &'static str {
        "pid_files"
    }

    fn enabled(&self, args: &RunArgs) -> bool {
        !args.switches.no_pid_files
    }

    fn validate(&self, args: &RunArgs) -> Result<()> {
        names(&args.scope, &args.pid_files).map(|_| ())
    }

    fn require(&self, _args: &RunArgs) -> Result<()> {
        Ok(crate::host::sysenv::ensure_tracefs()?)
    }

    fn start<'obj>(
        &self,
        storage: &'obj mut MaybeUninit<OpenObject>,
        ctx: &Context<'_>,
    ) -> Result<Started<'obj>> {
        let args = ctx.args;
        let names = names(&args.scope, &args.pid_files)?;
        let suffixes = names.kernel_suffixes(MAX_SUFFIXES, MAX_SUFFIX_LEN);
        if suffixes.is_none() {
            log::info!(
                "PID-file patterns {:?} have no literal name suffix the kernel can test: every open to write reaches the agent",
                args.pid_files.patterns()
            );
        }
        let m = monitor::load(storage, suffixes.as_deref(), ctx.pin_dir)?;
        let metrics = Arc::new(PidfMetrics::default());
        let work = PidfWork::new(
            PidfConfig {
                dry_run: args.switches.dry_run,
                names,
            },
            PidfMaps::of(&m.skel)?,
            metrics.clone(),
        )
        .context("starting the PID-file duty (pidfds, namespaces)")?;
        let ready = format!(
            "PID-file monitor attached ({}); patterns {}; scope: {}",
            m.attached.join(", "),
            args.pid_files.patterns().join(" "),
            args.scope.describe()
        );
        Ok(Started {
            events: Some(Events {
                map: MapHandle::try_from(&m.skel.maps.pidf_events).context("pidf_events map")?,
                what: "PID-file events",
                decode,
            }),
            duty: Box::new(PidfDuty { work }),
            metrics: metrics as Arc<dyn Collect>,
            features: vec![("pid_files_owner_exit", "pidfd".into())],
            attached: m.attached.clone(),
            pinned_links: m.pinned_links.clone(),
            ready,
            hold: Box::new(m),
        })
    }

    fn print_status(&self, entries: &serde_json::Value, out: &mut dyn Write) -> io::Result<()> {
        let files: Vec<PidfStatus> = serde_json::from_value(entries.clone()).unwrap_or_default();
        writeln!(out, "pid files:  {} tracked", files.len())?;
        for f in &files {
            writeln!(
                out,
                "  {}  names pid {}; owner pid {} ({}){}; {}",
                f.path,
                f.named_pid,
                f.owner_pid,
                f.owner_comm,
                if f.owner_alive { "" } else { " gone" },
                f.state
            )?;
        }
        Ok(())
    }

    /// PID files are swept under `--path` only (never the whole host); a
    /// sweep without one leaves them out.
    fn sweep_enabled(&self, args: &SweepArgs) -> bool {
        !args.switches.no_pid_files && !args.scope.paths.is_empty()
    }

    fn sweep_validate(&self, args: &SweepArgs) -> Result<()> {
        names(&args.scope, &args.pid_files).map(|_| ())
    }

    fn sweep(
        &self,
        args: &SweepArgs,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<(SweepSummary, Arc<dyn Collect>)> {
        let names = names(&args.scope, &args.pid_files)?;
        let s = sweep_pid_files(&names, args.switches.dry_run, out, err);
        let metrics = PidfMetrics::default();
        metrics.removed_total.fetch_add(s.removed, Relaxed);
        metrics.removal_failures_total.fetch_add(s.failed, Relaxed);
        Ok((
            SweepSummary {
                acted: s.removed + s.would_remove,
                failed: s.failed,
            },
            Arc::new(metrics),
        ))
    }
}
