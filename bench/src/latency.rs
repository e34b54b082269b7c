//! Cleanup latency, load and footprint of a running agent.

use super::*;

/// CPU seconds (user + system) and peak RSS (KiB) of a process.
pub(crate) fn cpu_and_hwm(pid: u32) -> (f64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu = (f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0))
        / ticks;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (cpu, kb("VmHWM:"), kb("VmRSS:"))
}

/// Wait for inotify to report `name` leaving `dir` (renamed aside or unlinked).
pub(crate) fn wait_gone(ifd: i32, name: &[u8], limit: Duration) -> Option<Instant> {
    let end = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let mut pfd = libc::pollfd {
            fd: ifd,
            events: libc::POLLIN,
            revents: 0,
        };
        if unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32) } <= 0 {
            continue;
        }
        let now = Instant::now();
        let n = unsafe { libc::read(ifd, buf.as_mut_ptr().cast(), buf.len()) };
        let mut off = 0usize;
        while n > 0 && off + 16 <= n as usize {
            let len = u32::from_ne_bytes(buf[off + 12..off + 16].try_into().unwrap()) as usize;
            let ev_name = &buf[off + 16..off + 16 + len];
            let ev_name = &ev_name[..ev_name.iter().position(|&b| b == 0).unwrap_or(len)];
            if ev_name == name {
                return Some(now);
            }
            off += 16 + len;
        }
    }
}

pub(crate) fn lock_latency(env: &Env, out: &mut String) -> Result<()> {
    let dir = env.dir.join("latency");
    std::fs::create_dir_all(&dir)?;
    let (_agent, _) = spawn_ready(agent_cmd(
        env,
        &["--path", dir.to_str().unwrap(), "--no-sockets"],
    ))?;
    let ifd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    let d = cstr(&dir);
    unsafe { libc::inotify_add_watch(ifd, d.as_ptr(), libc::IN_MOVED_FROM | libc::IN_DELETE) };
    let n = if env.quick { 20 } else { 1000 };
    let mut lat = Vec::new();
    let mut missed = 0;
    for i in 0..n {
        let name = format!("l{i}.lock");
        let path = cstr(&dir.join(&name));
        let mut p = [0i32; 2];
        unsafe { libc::pipe(p.as_mut_ptr()) };
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            unsafe {
                let fd = libc::open(
                    path.as_ptr(),
                    libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY,
                    0o644,
                );
                libc::write(p[1], b"x".as_ptr().cast(), 1);
                let _ = fd;
                loop {
                    libc::pause();
                }
            }
        }
        let mut b = [0u8; 1];
        unsafe {
            libc::read(p[0], b.as_mut_ptr().cast(), 1);
            libc::close(p[0]);
            libc::close(p[1]);
        }
        let t0 = Instant::now();
        unsafe { libc::kill(pid, libc::SIGKILL) };
        match wait_gone(ifd, name.as_bytes(), Duration::from_secs(5)) {
            Some(t1) => lat.push((t1 - t0).as_secs_f64() * 1e3),
            None => missed += 1,
        }
        let mut st = 0;
        unsafe { libc::waitpid(pid, &mut st, 0) };
    }
    unsafe { libc::close(ifd) };
    out.push_str(&format!(
        "\n## Cleanup latency\n\n| what | n | p50 | p99 | max | missed |\n|---|---|---|---|---|---|\n\
         | lock owner SIGKILLed → name gone (inotify) | {} | {:.2} ms | {:.2} ms | {:.2} ms | {missed} |\n",
        lat.len(),
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        pct(&mut lat, 1.0)
    ));
    Ok(())
}

pub(crate) fn tcp_state(fd: i32) -> u8 {
    let mut info = [0u8; 256];
    let mut len = info.len() as libc::socklen_t;
    unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    info[0]
}

pub(crate) const TCP_CLOSE: u8 = 7;
pub(crate) const TCP_CLOSE_WAIT: u8 = 8;

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `n` server-side sockets in CLOSE_WAIT on a fresh port; the time each
/// entered it.
pub(crate) fn close_waits(
    port: u16,
    n: usize,
    stagger: Duration,
) -> Result<(TcpListener, Vec<(TcpStream, Instant)>)> {
    let l = TcpListener::bind(("127.0.0.1", port))?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let c = TcpStream::connect(("127.0.0.1", port))?;
        let (s, _) = l.accept()?;
        drop(c);
        let t = Instant::now();
        while tcp_state(s.as_raw_fd()) != TCP_CLOSE_WAIT {
            std::thread::sleep(Duration::from_micros(50));
        }
        out.push((s, t));
        if !stagger.is_zero() {
            std::thread::sleep(stagger);
        }
    }
    Ok((l, out))
}

pub(crate) fn socket_latency(env: &Env, out: &mut String) -> Result<()> {
    let port = free_port();
    let p = port.to_string();
    let (_agent, _) = spawn_ready(agent_cmd(
        env,
        &["--no-locks", "--close-wait-timeout", "1s", "--port", &p],
    ))?;
    let n = if env.quick { 3 } else { 100 };
    let (_l, socks) = close_waits(port, n, Duration::from_millis(10))?;
    let mut lat = Vec::new();
    let mut pending: Vec<usize> = (0..n).collect();
    let end = Instant::now() + Duration::from_secs(20);
    while !pending.is_empty() && Instant::now() < end {
        pending.retain(|&i| {
            let (s, t) = &socks[i];
            if tcp_state(s.as_raw_fd()) == TCP_CLOSE {
                let after = Instant::now().saturating_duration_since(*t + Duration::from_secs(1));
                lat.push(after.as_secs_f64() * 1e3);
                false
            } else {
                true
            }
        });
        std::thread::sleep(Duration::from_micros(500));
    }
    out.push_str(&format!(
        "| CLOSE_WAIT socket deadline (entry + 1 s timeout) → destroyed (TCP_INFO polled every 0.5 ms) | {} | {:.2} ms | {:.2} ms | {:.2} ms | {} |\n",
        lat.len(),
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        pct(&mut lat, 1.0),
        pending.len()
    ));
    Ok(())
}

pub(crate) fn raise_nofile() {
    let rl = libc::rlimit {
        rlim_cur: 100_000,
        rlim_max: 100_000,
    };
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) };
}

pub(crate) fn load_tests(env: &Env, out: &mut String) -> Result<()> {
    // 2,000 lock creators killed per second for 10 s
    let dir = env.dir.join("load");
    std::fs::create_dir_all(&dir)?;
    let (agent, _) = spawn_ready(agent_cmd(
        env,
        &["--path", dir.to_str().unwrap(), "--no-sockets"],
    ))?;
    let apid = agent.child.id();
    let (cpu0, _, _) = cpu_and_hwm(apid);
    let (rate, secs) = if env.quick {
        (200u64, 1u64)
    } else {
        (2000, 10)
    };
    let total = rate * secs;
    let t0 = Instant::now();
    let mut forked = 0u64;
    let mut reaped = 0u64;
    // reap only our creators: waitpid(-1) would also wait for the agent
    let mut creators: Vec<i32> = Vec::with_capacity(total as usize);
    while forked < total {
        let due = (t0.elapsed().as_secs_f64() * rate as f64) as u64;
        while forked < due.min(total) {
            let path = cstr(&dir.join(format!("k{forked}.lock")));
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                unsafe {
                    libc::open(
                        path.as_ptr(),
                        libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY,
                        0o644,
                    );
                    libc::kill(libc::getpid(), libc::SIGKILL);
                    libc::_exit(1);
                }
            }
            creators.push(pid);
            forked += 1;
        }
        creators.retain(|&p| {
            let mut st = 0;
            let done = unsafe { libc::waitpid(p, &mut st, libc::WNOHANG) } == p;
            reaped += done as u64;
            !done
        });
        std::thread::sleep(Duration::from_micros(200));
    }
    let achieved = total as f64 / t0.elapsed().as_secs_f64();
    for p in creators {
        let mut st = 0;
        unsafe { libc::waitpid(p, &mut st, 0) };
    }
    let left = drain(&dir, Duration::from_secs(60));
    let drained = t0.elapsed().as_secs_f64();
    let (cpu1, hwm, _) = cpu_and_hwm(apid);
    out.push_str(&format!(
        "\n## Load\n\n| load | asked | achieved | cleaned | missed | all gone after | agent CPU | agent peak RSS |\n|---|---|---|---|---|---|---|---|\n\
         | lock creators SIGKILLed | {rate}/s for {secs} s ({total}) | {achieved:.0}/s | {} | {left} | {drained:.1} s | {:.2} s | {:.1} MiB |\n",
        total as usize - left,
        cpu1 - cpu0,
        hwm as f64 / 1024.0
    ));
    drop(agent);
    many_locks(env, out)?;

    // 10,000 leaked CLOSE_WAIT sockets at once
    raise_nofile();
    let n = if env.quick { 100 } else { 10_000 };
    let port = free_port();
    let p = port.to_string();
    let (agent, _) = spawn_ready(agent_cmd(
        env,
        &["--no-locks", "--close-wait-timeout", "2s", "--port", &p],
    ))?;
    let apid = agent.child.id();
    let (cpu0, _, _) = cpu_and_hwm(apid);
    let t0 = Instant::now();
    let (_l, socks) = close_waits(port, n, Duration::ZERO)?;
    let made = t0.elapsed().as_secs_f64();
    let end = Instant::now() + Duration::from_secs(60);
    let alive = || {
        socks
            .iter()
            .filter(|(s, _)| tcp_state(s.as_raw_fd()) != TCP_CLOSE)
            .count()
    };
    while alive() > 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    let done = t0.elapsed().as_secs_f64();
    let left = alive();
    let (cpu1, hwm, _) = cpu_and_hwm(apid);
    out.push_str(&format!(
        "| CLOSE_WAIT sockets leaked at once (timeout 2 s) | {n} | made in {made:.1} s | {} | {left} | {done:.1} s | {:.2} s | {:.1} MiB |\n",
        n - left,
        cpu1 - cpu0,
        hwm as f64 / 1024.0
    ));
    Ok(())
}

/// Wait up to `limit` for the agent to empty `dir`; how many files are
/// left.
fn drain(dir: &Path, limit: Duration) -> usize {
    let count = || std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    let end = Instant::now() + limit;
    while count() > 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    count()
}

/// `locks_tracked` in the agent's status file.
fn tracked(env: &Env) -> Option<u64> {
    let s = std::fs::read_to_string(env.dir.join("status.json")).ok()?;
    let at = s.find("\"locks_tracked\":")? + "\"locks_tracked\":".len();
    let digits: String = s[at..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// 50,000 locks tracked at once (issue 13): one live process makes them
/// all (O_EXCL, `*.lock`), then is SIGKILLed and every one is removed.
/// The agent's peak RSS covers both.
fn many_locks(env: &Env, out: &mut String) -> Result<()> {
    let n: u64 = if env.quick { 500 } else { 50_000 };
    let dir = env.dir.join("many");
    std::fs::create_dir_all(&dir)?;
    // each uid may hold half the table: 50,000 of root's need 100,000
    let (agent, _) = spawn_ready(agent_cmd(
        env,
        &[
            "--path",
            dir.to_str().unwrap(),
            "--no-sockets",
            "--max-locks",
            "131072",
        ],
    ))?;
    let apid = agent.child.id();
    let (cpu0, _, idle) = cpu_and_hwm(apid);
    // built before the fork: the child only opens, closes and waits
    let paths: Vec<CString> = (0..n)
        .map(|i| cstr(&dir.join(format!("m{i}.lock"))))
        .collect();
    let mut fds = [0i32; 2];
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        bail!("pipe: {}", std::io::Error::last_os_error());
    }
    let t0 = Instant::now();
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        unsafe {
            for p in &paths {
                let fd = libc::open(
                    p.as_ptr(),
                    libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY,
                    0o644,
                );
                libc::close(fd);
            }
            libc::write(fds[1], b"x".as_ptr().cast(), 1);
            loop {
                libc::pause();
            }
        }
    }
    unsafe { libc::close(fds[1]) };
    let mut b = [0u8; 1];
    unsafe { libc::read(fds[0], b.as_mut_ptr().cast(), 1) };
    unsafe { libc::close(fds[0]) };
    let made = t0.elapsed().as_secs_f64();
    let end = Instant::now() + Duration::from_secs(120);
    while tracked(env) != Some(n) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    let seen = t0.elapsed().as_secs_f64();
    let held = tracked(env).unwrap_or(0);
    let (cpu1, _, rss) = cpu_and_hwm(apid);
    let t1 = Instant::now();
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
    let left = drain(&dir, Duration::from_secs(120));
    let gone = t1.elapsed().as_secs_f64();
    let (cpu2, hwm, after) = cpu_and_hwm(apid);
    let mib = |kb: u64| kb as f64 / 1024.0;
    out.push_str(&format!(
        "| locks tracked at once, one live owner, then SIGKILLed (RSS idle {:.1} MiB, with {held} tracked {:.1} MiB, after {:.1} MiB; tracking took {:.2} s of CPU) | {n} | made in {made:.1} s, all tracked after {seen:.1} s | {} | {left} | {gone:.1} s after the kill | {:.2} s | {:.1} MiB |\n",
        mib(idle),
        mib(rss),
        mib(after),
        cpu1 - cpu0,
        n as usize - left,
        cpu2 - cpu1,
        mib(hwm)
    ));
    Ok(())
}

pub(crate) fn footprint(env: &Env, out: &mut String) -> Result<()> {
    // whole host, both monitors, but --dry-run: a benchmark never acts on
    // the host's own files and sockets
    let whole = ["--dry-run"];
    let mut starts = Vec::new();
    for _ in 0..5 {
        let (_a, t) = spawn_ready(agent_cmd(env, &whole))?;
        starts.push(t.as_secs_f64() * 1e3);
    }
    let (agent, _) = spawn_ready(agent_cmd(env, &whole))?;
    let pid = agent.child.id();
    std::thread::sleep(Duration::from_secs(1));
    let (c0, _, _) = cpu_and_hwm(pid);
    let idle = if env.quick { 3 } else { 60 };
    std::thread::sleep(Duration::from_secs(idle));
    let (c1, hwm, rss) = cpu_and_hwm(pid);
    let size = std::fs::metadata(&env.agent_bin)?.len();
    out.push_str(&format!(
        "\n## Daemon footprint (locks and sockets, whole host, --dry-run)\n\n| measure | value |\n|---|---|\n\
         | idle CPU over {idle} s | {:.3} s ({:.3}%) |\n| RSS after {idle} s idle | {:.1} MiB (peak {:.1} MiB) |\n\
         | binary size (static, release) | {:.1} MiB |\n| start-up to `ready` (median of 5) | {:.0} ms |\n",
        c1 - c0,
        (c1 - c0) / idle as f64 * 100.0,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        size as f64 / 1048576.0,
        median(&mut starts)
    ));
    Ok(())
}
