//! The daemon's run loop: ring-buffer pollers (`poller`), the one cleanup
//! worker (`worker`), what it reports (`status`, `metrics`).

pub mod metrics;
pub mod poller;
pub mod status;
pub mod worker;
