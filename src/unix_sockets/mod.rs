//! Ghost class: stale UNIX socket files — a path an AF_UNIX socket was
//! bound to, left behind when its server died, that no socket is bound to
//! any more (nobody can ever connect to it; the next server cannot bind).
//!
//! - what the kernel records: bpf/unix_sockets.bpf.c, its contract in
//!   `kernel`; loading it: `monitor`
//! - which sockets are still bound, host-wide: `diag` (sock_diag)
//! - the worker's duty: `worker` (binds → tracked files, binder exits →
//!   verdicts), the pure decision in `decide`; names resolve, and files
//!   are removed, by what every file class shares (crate::files)
//! - the cron pass: `sweep`; the class as the agent sees it: `class`

pub mod bpf;
pub mod class;
pub mod decide;
pub mod diag;
pub mod kernel;
pub mod metrics;
pub mod monitor;
pub mod sweep;
pub mod worker;
