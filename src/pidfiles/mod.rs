//! Ghost class: stale PID files — a file whose whole content is one PID
//! (`*.pid` by default), naming a process that is dead, or whose PID was
//! reused since it was written. A file with anything else in it is not a
//! PID file and is never touched.
//!
//! - what the kernel records: bpf/pidfiles.bpf.c (opens that create or
//!   rewrite a matching name), its contract in `kernel`; loading it:
//!   `monitor`
//! - what a PID file is: `content`
//! - the worker's duty: `worker` (the content read after the write, the
//!   named process watched, verdicts), the pure decision in `decide`;
//!   names resolve, and files are removed, by what every file class shares
//!   (crate::files)
//! - the cron pass: `sweep` (with `nspids`: PIDs in use in any namespace);
//!   the class as the agent sees it: `class`

pub mod bpf;
pub mod class;
pub mod content;
pub mod decide;
pub mod kernel;
pub mod metrics;
pub mod monitor;
pub mod nspids;
pub mod sweep;
pub mod worker;
