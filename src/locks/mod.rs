//! Ghost class: stale lock files. What the kernel records (bpf/locks.bpf.c,
//! the contract in `kernel`), loading it (`monitor`), the worker's lock
//! duty (`worker`), which names are locks (`patterns`), what an owner's
//! exit means (`verdict`), and the cron pass (`sweep`).

pub mod bpf;
pub mod kernel;
pub mod monitor;
pub mod patterns;
pub mod sweep;
pub mod verdict;
pub mod worker;
