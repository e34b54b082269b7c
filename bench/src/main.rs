//! eghostbuster benchmarks: what the agent costs on hot kernel paths and how
//! fast it cleans up, each measured against references in the same run,
//! interleaved (A B C D, A B C D, ...), medians of several rounds.
//!
//!   eghostbuster-bench all [--quick]     the whole report (markdown on stdout);
//!                                        --host-scale adds the host-scale step
//!                                        at full size (--quick: always, tiny)
//!   eghostbuster-bench host-scale [--quick] [--sizes 100,1000,5000] [--fds 100]
//!                      [--rounds 3] [--owners 30] [--files 100000]
//!                                        only the host-scale step
//!   eghostbuster-bench load floor|seed   hold a reference BPF object attached
//!
//! References: "none" (no BPF), "floor" (empty programs on exactly the
//! agent's hooks), "agent" (eghostbuster run), "seed" (the seed's design:
//! read and match the file name on every openat entry, report every exit).

use std::collections::HashMap;
use std::ffi::CString;
use std::io::{BufRead, BufReader, Write};
use std::mem::MaybeUninit;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};

mod floor {
    include!(concat!(env!("OUT_DIR"), "/floor.skel.rs"));
}
mod seed {
    include!(concat!(env!("OUT_DIR"), "/seed.skel.rs"));
}
mod host_scale;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: i32) {
    STOP.store(true, Ordering::Relaxed);
}

/// `load floor|seed`: attach, say ready, hold until SIGTERM. The seed
/// reference also consumes its ring buffer and looks up every exit, as the
/// seed's user space did.
fn load(which: &str) -> Result<()> {
    unsafe {
        libc::signal(
            libc::SIGTERM,
            on_term as extern "C" fn(i32) as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGINT,
            on_term as extern "C" fn(i32) as libc::sighandler_t,
        );
    }
    let mut storage = MaybeUninit::uninit();
    match which {
        "floor" => {
            let open = floor::FloorSkelBuilder::default().open(&mut storage)?;
            let mut skel = open.load()?;
            skel.attach()?;
            eprintln!("ready: floor attached");
            while !STOP.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        "seed" => {
            let open = seed::SeedSkelBuilder::default().open(&mut storage)?;
            let mut skel = open.load()?;
            skel.attach()?;
            let mut owners: HashMap<u32, u32> = HashMap::new();
            let seen = AtomicU64::new(0);
            let mut rb = libbpf_rs::RingBufferBuilder::new();
            rb.add(&skel.maps.seed_events, |d: &[u8]| {
                if d.len() >= 8 {
                    let kind = u32::from_ne_bytes(d[0..4].try_into().unwrap());
                    let pid = u32::from_ne_bytes(d[4..8].try_into().unwrap());
                    if kind == 1 {
                        *owners.entry(pid).or_default() += 1;
                    } else {
                        owners.remove(&pid);
                    }
                    seen.fetch_add(1, Ordering::Relaxed);
                }
                0
            })?;
            let rb = rb.build()?;
            eprintln!("ready: seed attached");
            while !STOP.load(Ordering::Relaxed) {
                let _ = rb.poll(Duration::from_millis(100));
            }
        }
        other => bail!("unknown reference {other}"),
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Cfg {
    None,
    Floor,
    Agent,
    Seed,
}

impl Cfg {
    fn name(self) -> &'static str {
        match self {
            Cfg::None => "none",
            Cfg::Floor => "floor",
            Cfg::Agent => "agent",
            Cfg::Seed => "seed",
        }
    }
}

struct Env {
    agent_bin: PathBuf,
    dir: PathBuf,
    quick: bool,
    /// The host-scale step's sizes; None: not run (a full `all` runs it
    /// only when asked, `--host-scale`: it takes long).
    host_scale: Option<host_scale::Opts>,
}

/// A running reference or agent, stopped by PID.
struct Running {
    child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_ready(cmd: Command) -> Result<(Running, Duration)> {
    spawn_ready_line(cmd).map(|(r, t, _)| (r, t))
}

/// As spawn_ready, with the `ready` line itself.
fn spawn_ready_line(mut cmd: Command) -> Result<(Running, Duration, String)> {
    let t0 = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning")?;
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut said = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !said && line.contains("ready") {
                let _ = tx.send(line.clone());
                said = true;
            }
        }
    });
    // from here the child is stopped by PID however this ends
    let running = Running { child };
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .context("waiting for ready")?;
    Ok((running, t0.elapsed(), line))
}

/// An agent that acts only on what the benchmark made: the socket-file
/// and PID-file classes (whole host without a --path) are off unless the
/// run is --dry-run (the footprint measures every class, acting on nothing).
fn agent_cmd(env: &Env, extra: &[&str]) -> Command {
    let mut c = Command::new(&env.agent_bin);
    c.arg("run")
        .arg("--no-pin")
        .arg("--status-file")
        .arg(env.dir.join("status.json"))
        .args(extra)
        .env("RUST_LOG", "info");
    if !extra.contains(&"--dry-run") {
        c.args(["--no-unix-sockets", "--no-pid-files"]);
    }
    c
}

fn start(env: &Env, cfg: Cfg) -> Result<Option<Running>> {
    let me = std::env::current_exe()?;
    Ok(match cfg {
        Cfg::None => None,
        Cfg::Floor | Cfg::Seed => {
            let mut c = Command::new(me);
            c.arg("load").arg(cfg.name());
            Some(spawn_ready(c)?.0)
        }
        Cfg::Agent => {
            let d = env.dir.join("loops");
            // the socket monitor attached, as in production, but scoped to
            // a port nothing uses: the loops measure the lock programs
            let p = free_port().to_string();
            Some(
                spawn_ready(agent_cmd(
                    env,
                    &["--path", d.to_str().unwrap(), "--port", &p],
                ))?
                .0,
            )
        }
    })
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
}

/// ns per operation of one loop.
fn run_loop(name: &str, dir: &Path, n: u64) -> f64 {
    let existing = cstr(&dir.join("existing.dat"));
    let plain = cstr(&dir.join("plain.dat"));
    let lock = cstr(&dir.join("bench.lock"));
    let t0 = Instant::now();
    unsafe {
        match name {
            "open+close" => {
                for _ in 0..n {
                    let fd = libc::open(existing.as_ptr(), libc::O_RDONLY);
                    libc::close(fd);
                }
            }
            "create+unlink (O_CREAT, other name)" => {
                for _ in 0..n {
                    let fd = libc::open(plain.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o644);
                    libc::close(fd);
                    libc::unlink(plain.as_ptr());
                }
            }
            "create+unlink (O_EXCL, *.lock)" => {
                for _ in 0..n {
                    let fd = libc::open(
                        lock.as_ptr(),
                        libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY,
                        0o644,
                    );
                    libc::close(fd);
                    libc::unlink(lock.as_ptr());
                }
            }
            "fork+exit" => {
                for _ in 0..n {
                    let pid = libc::fork();
                    if pid == 0 {
                        libc::_exit(0);
                    }
                    let mut st = 0;
                    libc::waitpid(pid, &mut st, 0);
                }
            }
            _ => unreachable!(),
        }
    }
    t0.elapsed().as_nanos() as f64 / n as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn syscall_overhead(env: &Env, out: &mut String) -> Result<()> {
    let dir = env.dir.join("loops");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("existing.dat"), b"x")?;
    let rounds = if env.quick { 1 } else { 7 };
    let loops: [(&str, u64); 4] = [
        ("open+close", if env.quick { 2_000 } else { 400_000 }),
        (
            "create+unlink (O_CREAT, other name)",
            if env.quick { 500 } else { 100_000 },
        ),
        (
            "create+unlink (O_EXCL, *.lock)",
            if env.quick { 500 } else { 100_000 },
        ),
        ("fork+exit", if env.quick { 50 } else { 4_000 }),
    ];
    let cfgs = [Cfg::None, Cfg::Floor, Cfg::Agent, Cfg::Seed];
    let mut results: HashMap<(&str, Cfg), Vec<f64>> = HashMap::new();
    for round in 0..rounds {
        for i in 0..cfgs.len() {
            // rotate the order each round: no configuration always goes first
            let cfg = cfgs[(i + round) % cfgs.len()];
            let _running = start(env, cfg)?;
            for (name, n) in loops {
                run_loop(name, &dir, n / 10); // warm up
                let ns = run_loop(name, &dir, n);
                results.entry((name, cfg)).or_default().push(ns);
            }
        }
    }
    out.push_str(&format!(
        "\n## Syscall overhead ({rounds} interleaved rounds, medians, ns per operation)\n\n\
         | loop | none | floor | agent | seed-style | floor/none | agent/none | **agent/floor** | seed/floor | agent/seed |\n\
         |---|---|---|---|---|---|---|---|---|---|\n"
    ));
    for (name, _) in loops {
        let mut m = |c: Cfg| median(results.get_mut(&(name, c)).unwrap());
        let (none, floor, agent, seed) = (m(Cfg::None), m(Cfg::Floor), m(Cfg::Agent), m(Cfg::Seed));
        out.push_str(&format!(
            "| {name} | {none:.0} | {floor:.0} | {agent:.0} | {seed:.0} | {:.3} | {:.3} | **{:.3}** | {:.3} | {:.3} |\n",
            floor / none,
            agent / none,
            agent / floor,
            seed / floor,
            agent / seed
        ));
    }
    Ok(())
}

/// The kernel's own account of each program's run time (BPF_ENABLE_STATS,
/// on while the returned descriptor is open): immune to the wall-clock
/// noise of a shared VM, it gives what each program adds per run.
fn enable_bpf_stats() -> Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let fd = unsafe {
        libbpf_rs::libbpf_sys::bpf_enable_stats(libbpf_rs::libbpf_sys::BPF_STATS_RUN_TIME)
    };
    if fd < 0 {
        bail!(
            "BPF_ENABLE_STATS: {}",
            std::io::Error::from_raw_os_error(-fd)
        );
    }
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// (runs, total ns) of every loaded program, by name.
fn prog_stats() -> HashMap<String, (u64, u64)> {
    let mut m: HashMap<String, (u64, u64)> = HashMap::new();
    for p in libbpf_rs::query::ProgInfoIter::default() {
        let e = m.entry(p.name.to_string_lossy().into_owned()).or_default();
        e.0 += p.run_cnt;
        e.1 += p.run_time_ns;
    }
    m
}

fn program_cost(env: &Env, out: &mut String) -> Result<()> {
    let dir = env.dir.join("loops");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("existing.dat"), b"x")?;
    let rounds = if env.quick { 1 } else { 5 };
    // (config, program name prefix) -> per-run ns samples, per hook
    let hooks: [(&str, &str, &str, &str); 2] = [
        (
            "open+close",
            "sys_exit_openat",
            "fl_openat",
            "handle_openat_exit",
        ),
        ("fork+exit", "sched_process_exit", "fl_exit", "handle_exit"),
    ];
    let mut res: HashMap<(Cfg, &str), Vec<f64>> = HashMap::new();
    for _ in 0..rounds {
        for cfg in [Cfg::Floor, Cfg::Agent, Cfg::Seed] {
            let _running = start(env, cfg)?;
            let stats = enable_bpf_stats()?;
            for (loop_name, hook, floor_prog, agent_prog) in hooks {
                let before = prog_stats();
                run_loop(
                    loop_name,
                    &dir,
                    if env.quick { 2_000 } else { 200_000 }
                        / if loop_name == "fork+exit" { 50 } else { 1 },
                );
                let after = prog_stats();
                let progs: Vec<&str> = match (cfg, hook) {
                    (Cfg::Floor, _) => vec![floor_prog],
                    (Cfg::Agent, _) => vec![agent_prog],
                    (Cfg::Seed, "sys_exit_openat") => vec!["seed_enter_open", "seed_exit_opena"],
                    (Cfg::Seed, _) => vec!["seed_exit"],
                    _ => vec![],
                };
                // names are truncated to 15 characters by the kernel
                let (mut runs, mut ns) = (0u64, 0u64);
                for p in progs {
                    let key: String = p.chars().take(15).collect();
                    let a = after.get(&key).copied().unwrap_or_default();
                    let b = before.get(&key).copied().unwrap_or_default();
                    runs = runs.max(a.0 - b.0);
                    ns += a.1 - b.1;
                }
                if runs > 0 {
                    res.entry((cfg, hook))
                        .or_default()
                        .push(ns as f64 / runs as f64);
                }
            }
            drop(stats);
        }
    }
    out.push_str(&format!(
        "\n## Per-program cost, from the kernel's BPF run-time statistics ({rounds} rounds, medians)\n\n\
         Nanoseconds the programs on a hook take per event, as the kernel times them\n\
         (`BPF_ENABLE_STATS`; the timing itself adds the same few ns to every program).\n\
         This is the part of the overhead a design controls: the floor's empty program is the\n\
         cost of having any program there.\n\n\
         | hook (loop) | floor (empty) | agent | seed-style | agent - floor | seed - floor |\n|---|---|---|---|---|---|\n"
    ));
    for (loop_name, hook, _, _) in hooks {
        let mut m = |c: Cfg| {
            res.get_mut(&(c, hook))
                .map(|v| median(v))
                .unwrap_or(f64::NAN)
        };
        let (f, a, sd) = (m(Cfg::Floor), m(Cfg::Agent), m(Cfg::Seed));
        out.push_str(&format!(
            "| {hook} ({loop_name}) | {f:.1} | {a:.1} | {sd:.1} | {:+.1} | {:+.1} |\n",
            a - f,
            sd - f
        ));
    }
    Ok(())
}

fn time_cmd(cmd: &mut Command) -> Result<f64> {
    let t0 = Instant::now();
    let st = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status()?;
    if !st.success() {
        bail!("{cmd:?} failed: {st}");
    }
    Ok(t0.elapsed().as_secs_f64())
}

fn realistic(env: &Env, out: &mut String) -> Result<()> {
    let n_files = if env.quick { 200 } else { 20_000 };
    let src = env.dir.join("tree");
    std::fs::create_dir_all(&src)?;
    for i in 0..n_files {
        let sub = src.join(format!("d{}", i / 500));
        if i % 500 == 0 {
            std::fs::create_dir_all(&sub)?;
        }
        std::fs::write(
            sub.join(format!("f{i}.txt")),
            format!("file {i}\n").repeat(4),
        )?;
    }
    let tarball = env.dir.join("tree.tar");
    time_cmd(
        Command::new("tar")
            .arg("cf")
            .arg(&tarball)
            .arg("-C")
            .arg(&env.dir)
            .arg("tree"),
    )?;
    // a mid-size C project: libbpf's own sources, from the libbpf-sys crate
    let libbpf = find_libbpf_src();
    let rounds = if env.quick { 1 } else { 5 };
    let mut untar: HashMap<Cfg, Vec<f64>> = HashMap::new();
    let mut untar_shm: HashMap<Cfg, Vec<f64>> = HashMap::new();
    let mut build: HashMap<Cfg, Vec<f64>> = HashMap::new();
    for round in 0..rounds {
        for i in 0..2 {
            let cfg = [Cfg::None, Cfg::Agent][(i + round) % 2];
            let _running = start(env, cfg)?;
            let dest = env.dir.join("untar");
            let _ = std::fs::remove_dir_all(&dest);
            std::fs::create_dir_all(&dest)?;
            // every timed run starts with nothing dirty: the previous run's
            // removal must not be written back during this one
            unsafe { libc::sync() };
            let t = time_cmd(
                Command::new("tar")
                    .arg("xf")
                    .arg(&tarball)
                    .arg("-C")
                    .arg(&dest),
            )?;
            untar.entry(cfg).or_default().push(t);
            // the same on tmpfs: the CPU cost without the disk's noise
            let shm = PathBuf::from("/dev/shm").join(format!("egb-bench-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&shm);
            std::fs::create_dir_all(&shm)?;
            let t = time_cmd(
                Command::new("tar")
                    .arg("xf")
                    .arg(&tarball)
                    .arg("-C")
                    .arg(&shm),
            )?;
            untar_shm.entry(cfg).or_default().push(t);
            let _ = std::fs::remove_dir_all(&shm);
            if let (Some(lib), false) = (&libbpf, env.quick) {
                let obj = env.dir.join("libbpf-obj");
                let _ = std::fs::remove_dir_all(&obj);
                std::fs::create_dir_all(&obj)?;
                unsafe { libc::sync() };
                let t = time_cmd(
                    Command::new("make")
                        .arg("-C")
                        .arg(lib)
                        .arg("-j2")
                        .arg("BUILD_STATIC_ONLY=1")
                        .arg(format!("OBJDIR={}", obj.display())),
                )?;
                build.entry(cfg).or_default().push(t);
            }
        }
    }
    out.push_str(&format!(
        "\n## Realistic workloads ({rounds} interleaved rounds, medians, seconds)\n\n\
         | workload | none | agent | agent/none |\n|---|---|---|---|\n"
    ));
    let mut row = |name: &str, m: &mut HashMap<Cfg, Vec<f64>>| {
        if m.is_empty() {
            return;
        }
        let none = median(m.get_mut(&Cfg::None).unwrap());
        let agent = median(m.get_mut(&Cfg::Agent).unwrap());
        out.push_str(&format!(
            "| {name} | {none:.3} | {agent:.3} | {:.3} |\n",
            agent / none
        ));
    };
    row(
        &format!("tar xf, {n_files} small files, ext4 (/tmp)"),
        &mut untar,
    );
    row(
        &format!("tar xf, {n_files} small files, tmpfs (/dev/shm)"),
        &mut untar_shm,
    );
    row("make -j2 libbpf (static library, C, 30 files)", &mut build);
    let _ = std::fs::remove_dir_all(env.dir.join("untar"));
    let _ = std::fs::remove_dir_all(&src);
    Ok(())
}

fn find_libbpf_src() -> Option<PathBuf> {
    let home = std::env::var("HOME").ok()?;
    let reg = Path::new(&home).join(".cargo/registry/src");
    for idx in std::fs::read_dir(reg).ok()?.flatten() {
        for krate in std::fs::read_dir(idx.path()).ok()?.flatten() {
            let name = krate.file_name().to_string_lossy().into_owned();
            if name.starts_with("libbpf-sys-") {
                let src = krate.path().join("libbpf/src");
                if src.join("Makefile").exists() {
                    return Some(src);
                }
            }
        }
    }
    None
}

/// CPU seconds (user + system) and peak RSS (KiB) of a process.
fn cpu_and_hwm(pid: u32) -> (f64, u64, u64) {
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
fn wait_gone(ifd: i32, name: &[u8], limit: Duration) -> Option<Instant> {
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

fn lock_latency(env: &Env, out: &mut String) -> Result<()> {
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

fn tcp_state(fd: i32) -> u8 {
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

const TCP_CLOSE: u8 = 7;
const TCP_CLOSE_WAIT: u8 = 8;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `n` server-side sockets in CLOSE_WAIT on a fresh port; the time each
/// entered it.
fn close_waits(
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

fn socket_latency(env: &Env, out: &mut String) -> Result<()> {
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

fn raise_nofile() {
    let rl = libc::rlimit {
        rlim_cur: 100_000,
        rlim_max: 100_000,
    };
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) };
}

fn load_tests(env: &Env, out: &mut String) -> Result<()> {
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
    let count = || std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    let end = Instant::now() + Duration::from_secs(60);
    while count() > 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    let drained = t0.elapsed().as_secs_f64();
    let left = count();
    let (cpu1, hwm, _) = cpu_and_hwm(apid);
    out.push_str(&format!(
        "\n## Load\n\n| load | asked | achieved | cleaned | missed | all gone after | agent CPU | agent peak RSS |\n|---|---|---|---|---|---|---|---|\n\
         | lock creators SIGKILLed | {rate}/s for {secs} s ({total}) | {achieved:.0}/s | {} | {left} | {drained:.1} s | {:.2} s | {:.1} MiB |\n",
        total as usize - left,
        cpu1 - cpu0,
        hwm as f64 / 1024.0
    ));
    drop(agent);

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

fn footprint(env: &Env, out: &mut String) -> Result<()> {
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

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| t.lines().next().map(|l| l.to_string()))
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!(
        "{ncpu} CPUs ({cpu}), {}, kernel {}",
        mem.replace("MemTotal:", "").trim(),
        kernel.trim()
    )
}

fn host_scale_step(env: &Env, out: &mut String) -> Result<()> {
    match &env.host_scale {
        Some(o) => host_scale::run(env, o, out),
        None => Ok(()),
    }
}

/// One section of the report.
type Step = fn(&Env, &mut String) -> Result<()>;

/// `all` runs every step; `host-scale` only that one.
fn all(args: &[String], only_host_scale: bool) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let host_scale = if quick || only_host_scale || args.iter().any(|a| a == "--host-scale") {
        Some(host_scale::Opts::parse(args, quick)?)
    } else {
        None
    };
    let agent_bin = std::env::var_os("EGHOSTBUSTER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/x86_64-unknown-linux-gnu/release/eghostbuster"));
    if !agent_bin.exists() {
        bail!(
            "no agent binary at {} (set EGHOSTBUSTER_BIN)",
            agent_bin.display()
        );
    }
    let dir = PathBuf::from(format!("/tmp/egb-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let env = Env {
        agent_bin,
        dir: dir.clone(),
        quick,
        host_scale,
    };
    let mut out = format!(
        "# eghostbuster benchmark report{}\n\nMachine: {}\n",
        if quick {
            " (quick smoke run: tiny sizes, numbers meaningless)"
        } else {
            ""
        },
        machine()
    );
    let steps: [(&str, Step); 8] = [
        ("syscall overhead", syscall_overhead),
        ("per-program cost", program_cost),
        ("realistic workloads", realistic),
        ("lock cleanup latency", lock_latency),
        ("socket cleanup latency", socket_latency),
        ("load", load_tests),
        ("footprint", footprint),
        ("host scale", host_scale_step),
    ];
    let only = std::env::var("EGHOSTBUSTER_BENCH_ONLY")
        .ok()
        .or(only_host_scale.then(|| "host scale".to_string()));
    let mut failed = false;
    for (name, f) in steps {
        if only.as_deref().is_some_and(|o| o != name)
            || (name == "host scale" && env.host_scale.is_none())
        {
            continue;
        }
        eprintln!("bench: {name} ...");
        if let Err(e) = f(&env, &mut out) {
            eprintln!("bench: {name} failed: {e:#}");
            out.push_str(&format!("\n**{name} failed: {e:#}**\n"));
            failed = true;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::io::stdout().write_all(out.as_bytes())?;
    if failed {
        bail!("some benchmarks failed");
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("load") => load(args.get(1).map(String::as_str).unwrap_or("")),
        Some("all") => all(&args[1..], false),
        Some("host-scale") => all(&args[1..], true),
        _ => bail!(
            "usage: eghostbuster-bench all [--quick] [--host-scale [SIZES]] | host-scale [--quick] [SIZES] | load floor|seed\n\
             SIZES: --sizes 100,1000,5000 --fds 100 --rounds 3 --owners 30 --files 100000"
        ),
    }
}
