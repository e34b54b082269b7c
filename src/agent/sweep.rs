//! `eghostbuster sweep`: one pass for cron over every enabled class, no
//! BPF. Exit 0 when nothing went wrong, 1 when a removal or a destruction
//! failed. Its textfile holds last-run gauges (`eghostbuster_sweep_last_run_*`
//! and the time of the run), never counters that restart at every run.

use std::time::{Instant, SystemTime};

use anyhow::{Context as _, Result};

use crate::agent::metrics::{self, Family};
use crate::cli::{SweepArgs, Usage};
use crate::host::{atomic, sysenv};

/// Everything the user can get wrong, before anything is touched (also
/// `check-config`).
pub fn validate(args: &SweepArgs) -> Result<()> {
    let classes: Vec<_> = crate::classes::all()
        .into_iter()
        .filter(|c| c.sweep_enabled(args))
        .collect();
    if classes.is_empty() {
        return Err(Usage(
            "nothing to sweep: every class is switched off (socket and PID files are swept under --path only)"
                .into(),
        )
        .into());
    }
    for c in &classes {
        c.sweep_validate(args)?;
    }
    Ok(())
}

pub fn sweep(args: SweepArgs) -> Result<u8> {
    validate(&args)?;
    let classes: Vec<_> = crate::classes::all()
        .into_iter()
        .filter(|c| c.sweep_enabled(&args))
        .collect();
    sysenv::check_privileges()?;
    for c in &classes {
        c.sweep_require(&args)?;
    }
    crate::files::holders::init(args.scope.force_holders_fallback);
    let started = Instant::now();
    let mut failed = 0;
    let mut families = vec![metrics::build_info(&Default::default())];
    let mut acted = Vec::new();
    let mut fails = Vec::new();
    for c in &classes {
        let (summary, m) = c.sweep(
            &args,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )?;
        failed += summary.failed;
        acted.push((c.name(), summary.acted));
        fails.push((c.name(), summary.failed));
        families.extend(m.families().into_iter().filter_map(metrics::last_run));
    }
    if let Some(path) = &args.metrics_textfile {
        let gauge = |name: &'static str, help: &'static str, v: f64| Family {
            name: name.into(),
            kind: "gauge",
            help,
            samples: vec![(String::new(), v)],
        };
        let mut by_class = |name: &'static str, help, v: Vec<(&'static str, u64)>| {
            let mut f = Family::labelled(name, help, "class", v);
            f.kind = "gauge";
            families.push(f);
        };
        by_class(
            "sweep_last_run_acted",
            "What the last sweep removed or destroyed (or would have), by class.",
            acted,
        );
        by_class(
            "sweep_last_run_failed",
            "What the last sweep failed to remove or destroy, by class.",
            fails,
        );
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        families.push(gauge(
            "sweep_last_run_timestamp_seconds",
            "When the last sweep ended, in seconds since the epoch.",
            now.floor(),
        ));
        families.push(gauge(
            "sweep_last_run_duration_seconds",
            "How long the last sweep took, in seconds.",
            started.elapsed().as_secs_f64(),
        ));
        atomic::write(path, metrics::render(&families).as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if failed > 0 { 1 } else { 0 })
}
