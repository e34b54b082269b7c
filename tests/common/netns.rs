//! Network namespaces for the socket tests: a named one (`ip netns`) and
//! an unnamed one (a process's own, as a container's). Work runs inside
//! either on a thread of its own; both are removed on drop, even when the
//! test fails.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Run `f` on a thread that has entered the network namespace `ns`;
/// sockets it makes live there.
fn run_in<T: Send>(ns: File, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(move || {
            // SAFETY: setns on a descriptor we own, for this thread only.
            let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    })
}

/// A network namespace, deleted when dropped (even when the test fails).
pub struct Netns(pub String);

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!("egb-test-{}-{tag}", std::process::id());
        let ok = Command::new("ip").args(["netns", "add", &name]).status();
        assert!(ok.is_ok_and(|s| s.success()), "ip netns add {name}");
        let ns = Netns(name);
        let ok = Command::new("ip")
            .args(["-n", &ns.0, "link", "set", "lo", "up"])
            .status();
        assert!(ok.is_ok_and(|s| s.success()), "bringing lo up in {}", ns.0);
        ns
    }

    /// Run `f` on a thread inside the namespace; sockets it makes live there.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        run_in(File::open(format!("/run/netns/{}", self.0)).unwrap(), f)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

/// A process in a network namespace of its own with no name under
/// /run/netns, as a container's: `unshare -n sleep`, killed by PID on drop.
pub struct Unnamed(Child);

impl Unnamed {
    pub fn new() -> Unnamed {
        let child = Command::new("unshare")
            .args(["--net", "sleep", "600"])
            .spawn()
            .expect("unshare --net sleep");
        let u = Unnamed(child);
        let pid = u.0.id().to_string();
        let own = std::fs::read_link("/proc/self/ns/net").unwrap();
        let end = Instant::now() + Duration::from_secs(5);
        // wait for unshare to have made the namespace and exec'd sleep
        while std::fs::read_link(format!("/proc/{pid}/ns/net"))
            .ok()
            .as_ref()
            == Some(&own)
            || std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default() != "sleep\n"
        {
            assert!(Instant::now() < end, "unshare did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let ok = Command::new("nsenter")
            .args(["-t", &pid, "-n", "ip", "link", "set", "lo", "up"])
            .status();
        assert!(ok.is_ok_and(|s| s.success()), "bringing lo up");
        u
    }

    /// Run `f` on a thread inside the namespace; sockets it makes live there.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        run_in(
            File::open(format!("/proc/{}/ns/net", self.0.id())).unwrap(),
            f,
        )
    }
}

impl Drop for Unnamed {
    fn drop(&mut self) {
        let _ = self.0.kill(); // by PID: our own child
        let _ = self.0.wait();
    }
}
