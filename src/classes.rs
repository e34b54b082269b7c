//! The registry of ghost classes: one line per class. Everything else in
//! the agent (run loop, worker, status, metrics, sweep) iterates over it.

use crate::agent::class::Class;

pub fn all() -> Vec<&'static dyn Class> {
    vec![
        &crate::locks::class::Locks,
        &crate::sockets::class::Sockets,
        &crate::unix_sockets::class::UnixSockets,
        &crate::pidfiles::class::PidFiles,
    ]
}
