//! UNIX socket files as the agent runs them: the one `Class`
//! implementation that ties the socket-file monitor, its duty, its status
//! and its sweep to the run loop (src/agent).

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
use crate::cli::{RunArgs, SweepArgs, Usage};
use crate::files::names::Names;
use crate::unix_sockets::diag;
use crate::unix_sockets::kernel::{self, UxsEvent};
use crate::unix_sockets::metrics::UxsMetrics;
use crate::unix_sockets::monitor::{self, UxsMaps, TRACEPOINT};
use crate::unix_sockets::sweep::sweep_socket_files;
use crate::unix_sockets::worker::{UxsConfig, UxsStatus, UxsWork};

pub struct UnixSockets;

/// Socket files have any name: only the scope and the excludes apply.
fn names(scope: &crate::cli::LockScope) -> Result<Names> {
    Ok(Names::new(None, &scope.excludes, &scope.paths).map_err(Usage)?)
}

struct UxsDuty {
    work: UxsWork<UxsMaps>,
}

impl Duty for UxsDuty {
    fn wake(&mut self) -> Option<Wake> {
        self.work.wake()
    }

    fn adopt(&mut self) {
        self.work.adopt();
    }

    fn handle(&mut self, events: Vec<Event>) {
        let events = events
            .into_iter()
            .filter_map(|e| e.downcast::<UxsEvent>().ok().map(|b| *b))
            .collect();
        self.work.handle(events);
    }

    fn tick(&mut self) {
        self.work.tick();
    }

    fn status_digest(&self, h: &mut dyn std::hash::Hasher) {
        let files = self.work.status();
        digest(
            h,
            files
                .iter()
                .map(|f| (&f.path, f.owner_pid, f.owner_alive, &f.state)),
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
            "worker, socket files: {} owners watched at the end",
            self.work.watched()
        );
    }
}

fn decode(data: &[u8]) -> Result<Event, String> {
    kernel::decode(data).map(|e| Box::new(e) as Event)
}

impl Class for UnixSockets {
    fn name(&self) -> &'static str {
        "unix_sockets"
    }

    fn enabled(&self, args: &RunArgs) -> bool {
        !args.switches.no_unix_sockets
    }

    fn validate(&self, args: &RunArgs) -> Result<()> {
        names(&args.scope).map(|_| ())
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
        let names = names(&args.scope)?;
        let m = monitor::load(storage, ctx.pin_dir)?;
        let metrics = Arc::new(UxsMetrics::default());
        let work = UxsWork::new(
            UxsConfig {
                dry_run: args.switches.dry_run,
                names,
            },
            UxsMaps::of(&m.skel)?,
            diag::bound_everywhere,
            metrics.clone(),
        )
        .context("starting the socket-file duty (pidfds, namespaces)")?;
        let ready = format!(
            "socket-file monitor attached ({TRACEPOINT}); scope: {}",
            args.scope.describe()
        );
        Ok(Started {
            events: Some(Events {
                map: MapHandle::try_from(&m.skel.maps.uxs_events).context("uxs_events map")?,
                what: "socket-file events",
                decode,
            }),
            duty: Box::new(UxsDuty { work }),
            metrics: metrics as Arc<dyn Collect>,
            features: vec![
                (
                    "unix_sockets_bound",
                    "sock_diag UDIAG_SHOW_VFS, every netns".into(),
                ),
                ("unix_sockets_owner_exit", "pidfd".into()),
            ],
            attached: vec![TRACEPOINT.into()],
            pinned_links: m.pinned_links.clone(),
            ready,
            hold: Box::new(m),
        })
    }

    fn print_status(&self, entries: &serde_json::Value, out: &mut dyn Write) -> io::Result<()> {
        let files: Vec<UxsStatus> = serde_json::from_value(entries.clone()).unwrap_or_default();
        writeln!(out, "unix sockets: {} socket files tracked", files.len())?;
        for f in &files {
            writeln!(
                out,
                "  {}  owner pid {} ({}){}; {}",
                f.path,
                f.owner_pid,
                f.owner_comm,
                if f.owner_alive { "" } else { " gone" },
                f.state
            )?;
        }
        Ok(())
    }

    /// Socket files are swept under `--path` only (never the whole host);
    /// a sweep without one leaves them out.
    fn sweep_enabled(&self, args: &SweepArgs) -> bool {
        !args.switches.no_unix_sockets && !args.scope.paths.is_empty()
    }

    fn sweep_validate(&self, args: &SweepArgs) -> Result<()> {
        names(&args.scope).map(|_| ())
    }

    fn sweep(
        &self,
        args: &SweepArgs,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<(SweepSummary, Arc<dyn Collect>)> {
        let names = names(&args.scope)?;
        let s = sweep_socket_files(&names, args.switches.dry_run, out, err);
        let metrics = UxsMetrics::default();
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
