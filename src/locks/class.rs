//! Lock files as the agent runs them: the one `Class` implementation that
//! ties the lock monitor, its duty, its status and its sweep to the run
//! loop (src/agent).

use std::io::{self, Write};
use std::mem::MaybeUninit;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use libbpf_rs::{MapHandle, OpenObject};

use crate::agent::class::{Class, Context, Duty, Event, Events, Section, Started, SweepSummary};
use crate::agent::metrics::Collect;
use crate::cli::{RunArgs, SweepArgs, Usage};
use crate::host::escape::Esc;
use crate::host::sysenv;
use crate::locks::kernel::{self, LockEvent};
use crate::locks::metrics::LockMetrics;
use crate::locks::monitor::{self, LockBpfConfig, LockMaps};
use crate::locks::patterns::LockMatcher;
use crate::locks::sweep::sweep_locks;
use crate::locks::worker::{LockConfig, LockStatus, LockWork};

pub struct Locks;

fn matcher(scope: &crate::cli::LockScope) -> Result<LockMatcher> {
    Ok(LockMatcher::new(&scope.includes, &scope.excludes, &scope.paths).map_err(Usage)?)
}

struct LockDuty {
    work: LockWork<LockMaps>,
    /// The --include patterns the loaded programs' pre-filter was made for.
    includes: Vec<String>,
}

impl Duty for LockDuty {
    fn adopt(&mut self) {
        self.work.adopt();
    }

    fn handle(&mut self, events: Vec<Event>) {
        let events = events
            .into_iter()
            .filter_map(|e| e.downcast::<LockEvent>().ok().map(|b| *b))
            .collect();
        self.work.handle(events);
    }

    fn tick(&mut self) {
        self.work.tick();
    }

    fn reload(&mut self, args: &RunArgs) {
        let Ok(new) = matcher(&args.scope) else {
            return; // checked before: not reached
        };
        // the kernel's name pre-filter is fixed at load: new includes that
        // need another one wait for a restart, the rest applies now
        let (m, includes_kept) = if new.kernel_filter() == self.work.matcher().kernel_filter() {
            (new, false)
        } else {
            let Ok(m) = LockMatcher::new(&self.includes, &args.scope.excludes, &args.scope.paths)
            else {
                return;
            };
            (m, true)
        };
        if !includes_kept {
            self.includes = args.scope.includes.clone();
        }
        let dropped = self.work.set_matcher(m);
        log::info!(
            event = "reloaded", class = "locks";
            "SIGHUP: locks: scope {}; excludes {:?}; {dropped} tracked lock(s) now out of scope",
            args.scope.describe(),
            args.scope.excludes
        );
        if includes_kept {
            log::warn!(
                event = "reload_restart_needed", class = "locks";
                "SIGHUP: locks: --include patterns that change the kernel's name pre-filter need a restart; the running ones are kept"
            );
        }
    }

    fn status_digest(&self, h: &mut dyn std::hash::Hasher) {
        self.work.status_digest(h);
    }

    fn status(&self, limit: usize) -> Section {
        let (locks, total) = self.work.status(limit);
        Section {
            entries: serde_json::to_value(&locks).unwrap_or_default(),
            total,
        }
    }
}

fn decode(data: &[u8]) -> Result<Event, String> {
    kernel::decode(data).map(|e| Box::new(e) as Event)
}

impl Class for Locks {
    fn name(&self) -> &'static str {
        "locks"
    }

    fn enabled(&self, args: &RunArgs) -> bool {
        !args.switches.no_locks
    }

    fn validate(&self, args: &RunArgs) -> Result<()> {
        matcher(&args.scope).map(|_| ())
    }

    fn require(&self, _args: &RunArgs) -> Result<()> {
        Ok(sysenv::ensure_tracefs()?)
    }

    fn start<'obj>(
        &self,
        storage: &'obj mut MaybeUninit<OpenObject>,
        ctx: &Context<'_>,
    ) -> Result<Started<'obj>> {
        let args = ctx.args;
        let matcher = matcher(&args.scope)?;
        let m = monitor::load(
            storage,
            &LockBpfConfig {
                non_exclusive: args.non_exclusive,
                names: matcher.kernel_filter(),
                max_owners: args.max_owners,
                max_locks: args.max_locks,
                ring_buffer_size: args.ring_buffer_size,
                force_exit_fallback: args.force_exit_fallback,
                pin_dir: ctx.pin_dir.map(|p| p.to_path_buf()),
            },
        )?;
        let metrics = Arc::new(LockMetrics::default());
        let work = LockWork::new(
            LockConfig {
                dry_run: args.switches.dry_run,
                matcher,
            },
            LockMaps::of(&m.skel)?,
            metrics.clone(),
        )
        .context("reading this process's namespaces")?;
        let scope = args.scope.describe();
        let ready = format!(
            "lock monitor attached ({}); scope: {scope}{}",
            m.attached.join(", "),
            ctx.pin_dir
                .map(|d| format!("; pinned in {}", d.display()))
                .unwrap_or_default()
        );
        Ok(Started {
            events: Some(Events {
                map: MapHandle::try_from(&m.skel.maps.lock_events).context("lock_events map")?,
                what: "lock events",
                decode,
            }),
            duty: Box::new(LockDuty {
                work,
                includes: args.scope.includes.clone(),
            }),
            metrics: metrics as Arc<dyn Collect>,
            features: vec![
                ("exit", m.exit_hook.to_string()),
                ("lock_events", "ring buffer".into()),
                ("paths", "bpf_loop dentry walk".into()),
            ],
            attached: m.attached.clone(),
            pinned_links: m.pinned_links.clone(),
            ready,
            hold: Box::new(m),
        })
    }

    fn print_status(&self, entries: &serde_json::Value, out: &mut dyn Write) -> io::Result<()> {
        let locks: Vec<LockStatus> = serde_json::from_value(entries.clone()).unwrap_or_default();
        writeln!(out, "locks:      {} tracked", locks.len())?;
        for l in &locks {
            // the path as the JSON carries it (a string, or bytes), escaped
            let path: Vec<u8> = match &l.path {
                serde_json::Value::String(s) => s.as_bytes().to_vec(),
                v => serde_json::from_value(v.clone()).unwrap_or_default(),
            };
            writeln!(
                out,
                "  {}  state {}; lock {}s (since {}); owner pid {} ({}) {}, up {}s",
                Esc(&path),
                l.state,
                l.lock_age_s,
                if l.age_from.is_empty() {
                    "created"
                } else {
                    &l.age_from
                },
                l.owner_pid,
                Esc::str(&l.owner_comm),
                if l.owner_alive { "alive" } else { "gone" },
                l.owner_age_s,
            )?;
        }
        Ok(())
    }

    fn sweep_enabled(&self, args: &SweepArgs) -> bool {
        !args.switches.no_locks
    }

    fn sweep_validate(&self, args: &SweepArgs) -> Result<()> {
        matcher(&args.scope)?;
        if args.scope.paths.is_empty() {
            return Err(Usage(
                "sweep needs at least one --path for lock files (it never scans the whole host; --no-locks sweeps sockets only)".into(),
            )
            .into());
        }
        Ok(())
    }

    fn sweep(
        &self,
        args: &SweepArgs,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<(SweepSummary, Arc<dyn Collect>)> {
        let matcher = matcher(&args.scope)?;
        let s = sweep_locks(
            &matcher,
            &args.scope.paths,
            args.evidence,
            args.switches.dry_run,
            out,
            err,
        );
        let metrics = LockMetrics::default();
        metrics
            .removed_total
            .fetch_add(s.removed, std::sync::atomic::Ordering::Relaxed);
        metrics
            .removal_failures_total
            .fetch_add(s.failed, std::sync::atomic::Ordering::Relaxed);
        Ok((
            SweepSummary {
                acted: s.removed + s.would_remove,
                failed: s.failed,
            },
            Arc::new(metrics),
        ))
    }
}
