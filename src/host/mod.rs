//! Facts about the host: /proc (`procfs`), network namespaces (`netns`),
//! requirements and mounts (`sysenv`), the pin directory (`pins`), the
//! clocks (`clock`), the allocator (`memory`), the one way the agent writes a file (`atomic`), and
//! the one reader of BPF global sections (`bpfmap`).

pub mod atomic;
pub mod bpfmap;
pub mod clock;
#[allow(dead_code)] // used by the removal steps (issue 11)
pub mod creds;
#[allow(dead_code)] // wired into every text output by the logging work (issue 16)
pub mod escape;
pub mod memory;
pub mod netlink;
pub mod netns;
pub mod pidwatch;
pub mod pins;
pub mod procfs;
pub mod sysenv;
