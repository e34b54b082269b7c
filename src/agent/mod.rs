//! The daemon and the one-shot commands, over every ghost class: the class
//! interface (`class`), `run` (pollers, the one cleanup worker), `sweep`,
//! and what they report (`status`, `metrics`, `logging`).

pub mod class;
pub mod config;
pub mod logging;
pub mod metrics;
pub mod poller;
pub mod run;
pub mod status;
pub mod supervisor;
pub mod sweep;
pub mod worker;
