//! Ghost class: stale lock files.
//!
//! - what the kernel records: bpf/locks.bpf.c, its contract in `kernel`
//!   (records, events, the `LockKernel` tables); loading it: `monitor`
//! - which names are locks: `patterns`
//! - the worker's duty: `worker` (events → work), with the table it keeps
//!   (`table`), where names resolve (`resolve`), the facts of one lock
//!   (`gather`), the pure decision (`decide`, `verdict`); checks 2-4 and
//!   the removal are shared with every file class (crate::files)
//! - the cron pass: `sweep`; the class as the agent sees it: `class`

pub mod bpf;
pub mod class;
pub mod decide;
pub mod gather;
pub mod kernel;
pub mod metrics;
pub mod monitor;
pub mod patterns;
pub mod resolve;
pub mod sweep;
pub mod table;
pub mod verdict;
pub mod worker;
