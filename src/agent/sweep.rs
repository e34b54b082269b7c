//! `eghostbuster sweep`: one pass for cron over every enabled class, no
//! BPF. Exit 0 when nothing went wrong, 1 when a removal or a destruction
//! failed.

use anyhow::{Context as _, Result};

use crate::agent::metrics::Metrics;
use crate::cli::{SweepArgs, Usage};
use crate::host::sysenv;

pub fn sweep(args: SweepArgs) -> Result<u8> {
    let classes: Vec<_> = crate::classes::all()
        .into_iter()
        .filter(|c| c.sweep_enabled(&args))
        .collect();
    if classes.is_empty() {
        return Err(Usage(
            "nothing to sweep: every class is switched off (socket and PID files are swept under --path only)"
                .into(),
        )
        .into());
    }
    for c in &classes {
        c.sweep_validate(&args)?;
    }
    sysenv::check_privileges()?;
    let mut failed = 0;
    let mut collect = Vec::new();
    for c in &classes {
        let (summary, metrics) = c.sweep(
            &args,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )?;
        failed += summary.failed;
        collect.push(metrics);
    }
    if let Some(path) = &args.metrics_textfile {
        Metrics::new(collect)
            .write_textfile(path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if failed > 0 { 1 } else { 0 })
}
