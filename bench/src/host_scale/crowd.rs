//! The background of a host-scale run: sleeping processes holding
//! descriptors, and facts about the host while it runs.

use super::*;

/// A command that dies with the harness (SIGTERM when it goes), so that
/// an interrupted run leaves no agent behind.
pub(super) fn dies_with_us(c: &mut Command) {
    // SAFETY: prctl is async-signal-safe; nothing else runs before exec.
    unsafe {
        c.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
}

/// Close every descriptor from 3 up except `keep` (in a forked child).
pub(super) unsafe fn close_all_but(keep: i32) {
    if keep > 3 {
        libc::syscall(libc::SYS_close_range, 3u32, (keep - 1) as u32, 0u32);
    }
    libc::syscall(libc::SYS_close_range, (keep + 1) as u32, u32::MAX, 0u32);
}

/// The background: sleeping processes holding descriptors, killed by PID
/// when dropped.
pub(super) struct Crowd {
    pub(super) pids: Vec<i32>,
}

impl Crowd {
    pub(super) fn spawn(n: usize, fds: usize, maps: usize, pool: &[CString]) -> Result<Crowd> {
        let mut crowd = Crowd {
            pids: Vec::with_capacity(n),
        };
        let mut p = [0i32; 2];
        if unsafe { libc::pipe(p.as_mut_ptr()) } != 0 {
            bail!("pipe: {}", std::io::Error::last_os_error());
        }
        let parent = unsafe { libc::getpid() };
        for i in 0..n {
            let pid = unsafe { libc::fork() };
            if pid < 0 {
                let e = std::io::Error::last_os_error();
                unsafe {
                    libc::close(p[0]);
                    libc::close(p[1]);
                }
                bail!("fork of background process {i}: {e}");
            }
            if pid == 0 {
                // only async-signal-safe calls from here
                unsafe {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    if libc::getppid() != parent {
                        libc::_exit(1);
                    }
                    libc::close(p[0]);
                    close_all_but(p[1]);
                    let mut ok = true;
                    for j in 0..fds {
                        let f = &pool[(i * fds + j) % pool.len()];
                        let fd = libc::open(f.as_ptr(), libc::O_RDONLY);
                        ok &= fd >= 0;
                        // a mapping of a different file each: one VMA each
                        if j < maps && fd >= 0 {
                            let m = libc::mmap(
                                std::ptr::null_mut(),
                                4096,
                                libc::PROT_READ,
                                libc::MAP_SHARED,
                                fd,
                                0,
                            );
                            ok &= m != libc::MAP_FAILED;
                        }
                    }
                    let b: &[u8; 1] = if ok { b"x" } else { b"e" };
                    libc::write(p[1], b.as_ptr().cast(), 1);
                    libc::close(p[1]);
                    loop {
                        libc::pause();
                    }
                }
            }
            crowd.pids.push(pid);
        }
        unsafe { libc::close(p[1]) };
        let (mut got, mut failed) = (0usize, 0usize);
        let mut buf = [0u8; 4096];
        while got < n {
            let r = unsafe { libc::read(p[0], buf.as_mut_ptr().cast(), buf.len()) };
            if r <= 0 {
                break;
            }
            failed += buf[..r as usize].iter().filter(|&&b| b != b'x').count();
            got += r as usize;
        }
        unsafe { libc::close(p[0]) };
        if got < n || failed > 0 {
            bail!("background: {got} of {n} processes ready, {failed} could not open their {fds} files");
        }
        Ok(crowd)
    }
}

impl Drop for Crowd {
    fn drop(&mut self) {
        for &p in &self.pids {
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        for &p in &self.pids {
            let mut st = 0;
            unsafe { libc::waitpid(p, &mut st, 0) };
        }
    }
}

/// Nanoseconds on CPU of every thread of `pid` (schedstat): the same
/// account as utime+stime, without the 10 ms tick.
pub(super) fn sched_ns(pid: u32) -> u64 {
    let Ok(d) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    d.flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum()
}

/// The 1-minute load average.
pub(super) fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// Processes on the host now.
pub(super) fn host_processes() -> usize {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .count()
        })
        .unwrap_or(0)
}

/// Whether N more processes fit under pid_max and threads-max (with room
/// left for everyone else on the host).
pub(super) fn fits(n: usize) -> Result<(), String> {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(usize::MAX)
    };
    let room = read("/proc/sys/kernel/pid_max").min(read("/proc/sys/kernel/threads-max"));
    let now = host_processes();
    if now + n + 2_000 > room {
        return Err(format!(
            "{n} more processes do not fit: {now} running, limit {room}"
        ));
    }
    Ok(())
}
