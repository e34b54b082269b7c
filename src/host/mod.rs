//! Facts about the host: /proc (`procfs`), network namespaces (`netns`),
//! requirements and mounts (`sysenv`), the pin directory (`pins`).

pub mod atomic;
pub mod netns;
pub mod pins;
pub mod procfs;
pub mod sysenv;
