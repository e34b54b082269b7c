//! CLOSE_WAIT sockets as the agent runs them: the one `Class`
//! implementation that ties the socket monitor, its duty, its status and
//! its sweep to the run loop (src/agent).

use std::io::{self, Write};
use std::mem::MaybeUninit;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use libbpf_rs::{MapHandle, OpenObject};

use crate::agent::class::{Class, Context, Duty, Event, Events, Section, Started, SweepSummary};
use crate::agent::metrics::Collect;
use crate::cli::{RunArgs, SweepArgs, Usage};
use crate::sockets::kernel::{self, SockEvent};
use crate::sockets::metrics::SockMetrics;
use crate::sockets::model::Method;
use crate::sockets::monitor::{self, SockBpfConfig, SockMonitor};
use crate::sockets::sweep::{self, SweepSockets};
use crate::sockets::worker::{SockStatus, SockWork};

pub struct Sockets;

struct SockDuty {
    work: SockWork,
}

impl Duty for SockDuty {
    fn before_ready(&mut self) {
        // sockets already in CLOSE_WAIT are stamped before we say ready
        self.work.survey();
    }

    fn handle(&mut self, events: Vec<Event>) {
        for e in events {
            if let Ok(ev) = e.downcast::<SockEvent>() {
                self.work.on_event(*ev);
            }
        }
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
        let mut h = h;
        self.work.status_digest(&mut h);
    }

    fn status(&self, limit: usize) -> Section {
        let (socks, total) = self.work.status(limit);
        Section {
            entries: serde_json::to_value(&socks).unwrap_or_default(),
            total,
        }
    }

    fn reload(&mut self, args: &RunArgs) {
        let (policy, filter) = self.work.scope();
        let Ok(new) = args.sockets.filter() else {
            return; // checked before: not reached
        };
        let new_policy = args.sockets.policy();
        if new_policy == *policy && new == *filter {
            return;
        }
        let (t, sv, n) = (
            new_policy.timeout,
            new_policy.serving,
            new_policy.rules.len(),
        );
        match self.work.set_scope(new_policy, new.clone()) {
            Ok(()) => log::info!(
                event = "reloaded", class = "sockets";
                "SIGHUP: sockets: close-wait timeout {t:?}, serving timeout {sv}, {n} socket rule(s); ports: {:?}, except {:?}",
                new.ports,
                new.exclude
            ),
            Err(e) => log::error!(
                event = "reload_failed", class = "sockets";
                "SIGHUP: sockets: the new scope could not be applied, the running one is kept: {e:#}"
            ),
        }
    }

    fn finish(&mut self) {
        log::debug!("worker, sockets: {:?}", self.work.stats);
    }
}

fn decode(data: &[u8]) -> Result<Event, String> {
    kernel::decode_event(data).map(|e| Box::new(e) as Event)
}

impl Class for Sockets {
    fn name(&self) -> &'static str {
        "sockets"
    }

    fn enabled(&self, args: &RunArgs) -> bool {
        !args.switches.no_sockets
    }

    fn validate(&self, args: &RunArgs) -> Result<()> {
        args.sockets.filter().map_err(Usage)?;
        Ok(())
    }

    fn require(&self, args: &RunArgs) -> Result<()> {
        use crate::cli::DestroyChoice;
        // the kfunc destroys in the kernel; netlink needs CAP_NET_ADMIN
        let netlink = !args.switches.dry_run
            && match args.socket_destroy {
                DestroyChoice::Netlink => true,
                DestroyChoice::Kfunc => false,
                DestroyChoice::Auto => !monitor::has_sock_destroy_kfunc(),
            };
        if netlink {
            crate::host::sysenv::require_net_admin(
                "the socket monitor (--socket-destroy netlink)",
            )?;
        }
        Ok(())
    }

    fn start<'obj>(
        &self,
        storage: &'obj mut MaybeUninit<OpenObject>,
        ctx: &Context<'_>,
    ) -> Result<Started<'obj>> {
        let args = ctx.args;
        let filter = args.sockets.filter().map_err(Usage)?;
        let timeout = args.sockets.close_wait_timeout;
        let SockMonitor {
            skel,
            links,
            reaper,
            pinned_links,
        } = monitor::load(
            storage,
            &SockBpfConfig {
                events: true,
                filter: filter.clone(),
                destroy: args.socket_destroy,
                dry_run: args.switches.dry_run,
                force_idle_fallback: args.force_idle_fallback,
                pin_dir: ctx.pin_dir.map(|p| p.to_path_buf()),
            },
        )?;
        let method = match reaper.method {
            Method::Kfunc => "kfunc (bpf_sock_destroy)",
            Method::Netlink => "netlink (sock_diag SOCK_DESTROY)",
        };
        let ready = format!(
            "socket monitor attached (inet_sock_set_state, tcp survey and act iterators); destroy method: {method}; close-wait timeout {timeout:?}, serving timeout {}, {} socket rule(s); ports: {}{}{}",
            args.sockets.close_wait_serving_timeout,
            args.sockets.rules.len(),
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
            ctx.pin_dir
                .map(|d| format!("; stamps pinned in {}", d.display()))
                .unwrap_or_default()
        );
        let metrics = Arc::new(SockMetrics::default());
        let method_used = reaper.method;
        let work = SockWork::new(
            Box::new(reaper),
            args.sockets.policy(),
            filter,
            method_used,
            args.switches.dry_run,
            metrics.clone(),
        );
        Ok(Started {
            events: Some(Events {
                map: MapHandle::try_from(&skel.maps.sock_events).context("sock_events map")?,
                what: "socket events",
                decode,
            }),
            duty: Box::new(SockDuty { work }),
            metrics: metrics as Arc<dyn Collect>,
            features: vec![("socket_destroy", method.to_string())],
            attached: vec![
                "inet_sock_set_state".into(),
                "iter/tcp (survey)".into(),
                "iter/tcp (act)".into(),
            ],
            pinned_links,
            ready,
            // the socket programs stay attached while these live
            hold: Box::new((skel, links)),
        })
    }

    fn print_status(&self, entries: &serde_json::Value, out: &mut dyn Write) -> io::Result<()> {
        let socks: Vec<SockStatus> = serde_json::from_value(entries.clone()).unwrap_or_default();
        writeln!(out, "sockets:    {} in CLOSE_WAIT, tracked", socks.len())?;
        for k in &socks {
            writeln!(
                out,
                "  {} -> {}  state {}; netns {}, in CLOSE_WAIT for {}s (seen by this agent), reaper in {}s",
                k.local.as_deref().unwrap_or("?"),
                k.remote.as_deref().unwrap_or("?"),
                if k.state.is_empty() { "waiting" } else { &k.state },
                k.netns,
                k.seen_s,
                k.due_in_s
            )?;
        }
        Ok(())
    }

    fn sweep_enabled(&self, args: &SweepArgs) -> bool {
        !args.switches.no_sockets
    }

    fn sweep_validate(&self, args: &SweepArgs) -> Result<()> {
        args.sockets.filter().map_err(Usage)?;
        sweep::prepare_state_file(&args.state_file).map_err(Usage)?;
        Ok(())
    }

    fn sweep_require(&self, args: &SweepArgs) -> Result<()> {
        if !args.switches.dry_run {
            crate::host::sysenv::require_net_admin("sweep")?;
        }
        Ok(())
    }

    fn sweep(
        &self,
        args: &SweepArgs,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<(SweepSummary, Arc<dyn Collect>)> {
        let filter = args.sockets.filter().map_err(Usage)?;
        let policy = args.sockets.policy();
        let s = sweep::sweep_sockets(
            &SweepSockets {
                filter: &filter,
                policy: &policy,
                state_file: &args.state_file,
                dry_run: args.switches.dry_run,
            },
            out,
            err,
        );
        let metrics = SockMetrics::default();
        for _ in 0..s.destroyed {
            metrics.destroyed(Method::Netlink);
        }
        for _ in 0..s.failed {
            metrics.failed(Method::Netlink);
        }
        Ok((
            SweepSummary {
                acted: s.destroyed,
                failed: s.failed,
            },
            Arc::new(metrics),
        ))
    }
}
