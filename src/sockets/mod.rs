//! Ghost class: TCP sockets idle in CLOSE_WAIT. What the kernel stamps and
//! reaps (bpf/sockets.bpf.c), loading it (`monitor`), the pure model
//! (`model`: records, port filter, deadlines), the worker's socket duty
//! (`worker`), sock_diag netlink (`sock_diag`) and the cron pass (`sweep`).

pub mod bpf;
pub mod class;
pub mod metrics;
pub mod model;
pub mod monitor;
pub mod sock_diag;
pub mod sweep;
pub mod worker;
