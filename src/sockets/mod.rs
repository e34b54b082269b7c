//! Ghost class: TCP sockets idle in CLOSE_WAIT. What the kernel stamps and
//! surveys (bpf/sockets.bpf.c) and its records decoded (`kernel`), loading
//! it (`monitor`), the pure parts (`model`: port filter, deadlines, log
//! line; `serving`: is a live process still serving it; `policy`: timeouts,
//! rules, the verdict), the worker's socket duty (`worker`), sock_diag
//! netlink (`sock_diag`) and the cron pass (`sweep`).

pub mod bpf;
pub mod class;
pub mod kernel;
pub mod metrics;
pub mod model;
pub mod monitor;
pub mod policy;
pub mod serving;
pub mod sock_diag;
pub mod sweep;
pub mod worker;
