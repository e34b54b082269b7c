//! Host scale: what a cleanup costs when the host holds many descriptors.
//!
//! A crowd of N sleeping processes, each holding D open descriptors on
//! regular files outside the agent's scope, is what a holder check has to
//! look through. With it in place, both holder backends (the BPF iterators,
//! the default; the /proc walk, forced with `--force-holders-fallback`) are
//! measured in one run, interleaved round by round (A B, B A, ...):
//!
//! - the daemon: lock owners SIGKILLed one after another; kill -> name gone
//!   (inotify on the directory), and the agent's utime+stime per removed
//!   lock;
//! - `sweep` over a tree of many files, some of them stale `*.lock` files:
//!   wall time and CPU of the whole command.
//!
//! Every process started here is stopped by PID (the crowd also dies with
//! the harness: PR_SET_PDEATHSIG). Nothing is asserted on speed; a missed
//! cleanup, a wrong kept/removed count or a backend that is not the one asked
//! for shows in the report.

use std::ffi::CString;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};

use super::{
    cpu_and_hwm, cstr, free_port, median, pct, raise_nofile, spawn_ready_line, wait_gone, Env,
};

mod crowd;
mod tree;

use crowd::*;
use tree::*;

/// Sizes and counts of one host-scale run.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Background processes, one crowd per size.
    pub sizes: Vec<usize>,
    /// Open descriptors each background process holds.
    pub fds: usize,
    /// File mappings each background process holds besides its own few
    /// (one page of one of its files each: one VMA, one /proc maps line).
    pub maps: usize,
    /// Rounds per size (each round: both backends, order alternating).
    pub rounds: usize,
    /// Lock owners SIGKILLed per backend per round.
    pub owners: usize,
    /// Files in the sweep tree, locks included.
    pub files: usize,
    /// Stale `*.lock` files in the tree (empty, older than --min-age).
    pub stale: usize,
    /// `*.lock` files in the tree held open by the harness (must be kept).
    pub held: usize,
    /// `*.lock` files in the tree whose content is data (must be kept).
    pub data: usize,
    /// How long one lock may take before it counts as missed.
    pub limit: Duration,
    /// An older agent binary measured as a third column (its own holder
    /// checks, whatever they were): the before of a before/after.
    pub baseline: Option<PathBuf>,
}

impl Opts {
    pub fn full() -> Opts {
        Opts {
            sizes: vec![100, 1_000, 5_000],
            fds: 100,
            maps: 0,
            rounds: 3,
            owners: 30,
            files: 100_000,
            stale: 200,
            held: 20,
            data: 20,
            limit: Duration::from_secs(60),
            baseline: None,
        }
    }

    /// Tiny: the CI smoke run (seconds).
    pub fn quick() -> Opts {
        Opts {
            sizes: vec![20],
            fds: 10,
            maps: 0,
            rounds: 1,
            owners: 3,
            files: 1_000,
            stale: 10,
            held: 2,
            data: 2,
            limit: Duration::from_secs(20),
            baseline: None,
        }
    }

    /// `--sizes 100,1000 --fds 100 --maps 0 --rounds 3 --owners 30 --files
    /// 100000 --baseline OLD-BINARY` on top of the full or quick defaults.
    pub fn parse(args: &[String], quick: bool) -> Result<Opts> {
        let mut o = if quick { Opts::quick() } else { Opts::full() };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut val = |name: &str| -> Result<usize> {
                it.next()
                    .with_context(|| format!("{name} needs a value"))?
                    .replace('_', "")
                    .parse()
                    .with_context(|| format!("{name}: not a number"))
            };
            match a.as_str() {
                "--quick" | "all" | "host-scale" | "--host-scale" => {}
                "--fds" => o.fds = val("--fds")?,
                "--maps" => o.maps = val("--maps")?,
                "--rounds" => o.rounds = val("--rounds")?.max(1),
                "--owners" => o.owners = val("--owners")?.max(1),
                "--files" => o.files = val("--files")?,
                "--baseline" => {
                    o.baseline = Some(PathBuf::from(
                        it.next().context("--baseline needs a binary")?,
                    ))
                }
                "--sizes" => {
                    let v = it.next().context("--sizes needs a value")?;
                    o.sizes = v
                        .split(',')
                        .map(|s| s.replace('_', "").parse::<usize>())
                        .collect::<Result<_, _>>()
                        .context("--sizes: a comma-separated list of numbers")?;
                }
                other => bail!("host-scale: unknown option {other}"),
            }
        }
        if o.files < o.stale + o.held + o.data {
            o.stale = o.files / 2;
            o.held = 0;
            o.data = 0;
        }
        Ok(o)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Iter,
    Proc,
    /// The `--baseline` binary.
    Before,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Iter => "BPF iterators",
            Backend::Proc => "/proc walk (fallback)",
            Backend::Before => "baseline binary",
        }
    }
    fn flags(self) -> &'static [&'static str] {
        match self {
            Backend::Iter | Backend::Before => &[],
            Backend::Proc => &["--force-holders-fallback"],
        }
    }
    /// What the agent's `ready` line must say for this backend.
    fn ready_says(self) -> &'static str {
        match self {
            Backend::Iter => "holder checks: bpf iterators",
            Backend::Proc => "holder checks: /proc walk",
            Backend::Before => "ready",
        }
    }
    fn bin(self, env: &Env, o: &Opts) -> PathBuf {
        match (self, &o.baseline) {
            (Backend::Before, Some(b)) => b.clone(),
            _ => env.agent_bin.clone(),
        }
    }
    /// The backends measured, in round `r`'s order: rotated each round
    /// (A B C, B C A, ...), so that none always goes first.
    fn order(r: usize, o: &Opts) -> Vec<Backend> {
        let mut v = vec![Backend::Iter, Backend::Proc];
        if o.baseline.is_some() {
            v.push(Backend::Before);
        }
        let k = r % v.len();
        v.rotate_left(k);
        v
    }
}

/// One round of lock owners against a running agent: latencies (ms), CPU
/// seconds the agent used, locks removed, locks missed.
fn owner_round(
    dir: &Path,
    apid: u32,
    owners: usize,
    tag: &str,
    limit: Duration,
) -> Result<(Vec<f64>, f64, f64, usize, usize)> {
    let ifd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    if ifd < 0 {
        bail!("inotify_init1: {}", std::io::Error::last_os_error());
    }
    let d = cstr(dir);
    unsafe { libc::inotify_add_watch(ifd, d.as_ptr(), libc::IN_MOVED_FROM | libc::IN_DELETE) };
    let mut lat = Vec::with_capacity(owners);
    let mut missed = 0;
    let (cpu0, _, _) = cpu_and_hwm(apid);
    let ns0 = sched_ns(apid);
    for i in 0..owners {
        let name = format!("{tag}-{i}.lock");
        let path = cstr(&dir.join(&name));
        let mut p = [0i32; 2];
        unsafe { libc::pipe(p.as_mut_ptr()) };
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                libc::close(p[0]);
                close_all_but(p[1]);
                let fd = libc::open(
                    path.as_ptr(),
                    libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY,
                    0o644,
                );
                let b: &[u8; 1] = if fd >= 0 { b"x" } else { b"e" };
                libc::write(p[1], b.as_ptr().cast(), 1);
                libc::close(p[1]);
                loop {
                    libc::pause();
                }
            }
        }
        let mut b = [0u8; 1];
        unsafe {
            libc::close(p[1]);
            libc::read(p[0], b.as_mut_ptr().cast(), 1);
            libc::close(p[0]);
        }
        if b[0] != b'x' {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
                libc::close(ifd);
            }
            bail!("lock owner could not create {name}");
        }
        let t0 = Instant::now();
        unsafe { libc::kill(pid, libc::SIGKILL) };
        match wait_gone(ifd, name.as_bytes(), limit) {
            Some(t1) => lat.push((t1 - t0).as_secs_f64() * 1e3),
            None => missed += 1,
        }
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    }
    // The name goes first (renamed aside), the staged copy after the
    // second look: the round ends, and its CPU is read, when the directory
    // is empty. A name put back, or a copy never unlinked, is no cleanup
    // either (counted as missed by the caller).
    let end = Instant::now() + limit;
    while std::fs::read_dir(dir)?.next().is_some() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    let (cpu1, _, _) = cpu_and_hwm(apid);
    let ns1 = sched_ns(apid);
    unsafe { libc::close(ifd) };
    let removed = lat.len();
    Ok((
        lat,
        cpu1 - cpu0,
        (ns1.saturating_sub(ns0)) as f64 / 1e9,
        removed,
        missed,
    ))
}

#[derive(Default)]
struct Acc {
    lat: Vec<f64>,
    cpu: f64,
    sched: f64,
    removed: usize,
    missed: usize,
    sweep_wall: Vec<f64>,
    sweep_cpu: Vec<f64>,
    sweep_removed: usize,
    sweep_missed: usize,
    sweep_kept_wrongly: usize,
    ready: String,
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else if v >= 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.2} ms")
    }
}

/// The whole section.
pub fn run(env: &Env, o: &Opts, out: &mut String) -> Result<()> {
    raise_nofile();
    let started = Instant::now();
    let mut loads = vec![loadavg()];
    std::fs::write(env.dir.join("empty.toml"), b"")?;
    // what the background holds open: a pool of files outside every scope
    let pool_dir = env.dir.join("crowd-files");
    std::fs::create_dir_all(&pool_dir)?;
    let pool: Vec<CString> = (0..1000)
        .map(|i| {
            let p = pool_dir.join(format!("c{i}.dat"));
            std::fs::write(&p, b"crowd").map(|_| cstr(&p))
        })
        .collect::<Result<_, _>>()?;
    let tree = make_tree(&env.dir.join("sweep-tree"), o)?;
    let lock_dir = env.dir.join("host-scale-locks");
    std::fs::create_dir_all(&lock_dir)?;
    let lock_arg = lock_dir.to_str().context("temp dir not UTF-8")?.to_string();
    let status = env.dir.join("host-scale-status.json");
    let status_arg = status.to_str().context("temp dir not UTF-8")?.to_string();
    let empty = env.dir.join("empty.toml");
    let port = free_port().to_string();

    let mut rows: Vec<(usize, Option<String>, [Acc; 3])> = Vec::new();
    for &n in &o.sizes {
        if let Err(why) = fits(n) {
            eprintln!("bench: host scale: {n} x {}: skipped: {why}", o.fds);
            rows.push((n, Some(why), Default::default()));
            continue;
        }
        let t_crowd = Instant::now();
        let crowd = Crowd::spawn(n, o.fds, o.maps, &pool)?;
        eprintln!(
            "bench: host scale: {n} x {} descriptors up in {:.1} s ({} processes on the host)",
            o.fds,
            t_crowd.elapsed().as_secs_f64(),
            host_processes()
        );
        let mut acc: [Acc; 3] = Default::default();
        for r in 0..o.rounds {
            for b in Backend::order(r, o) {
                let a = &mut acc[b as usize];
                loads.push(loadavg());
                // the daemon, scoped
                let mut c = Command::new(b.bin(env, o));
                c.arg("run")
                    .args(["--config", empty.to_str().unwrap_or_default()])
                    .args(["--path", &lock_arg])
                    .args([
                        "--no-pin",
                        "--no-sockets",
                        "--no-unix-sockets",
                        "--no-pid-files",
                    ])
                    .args(["--status-file", &status_arg, "--port", &port])
                    .args(b.flags())
                    .env("RUST_LOG", "info");
                dies_with_us(&mut c);
                let (agent, _, ready) = spawn_ready_line(c)?;
                if !ready.contains(b.ready_says()) {
                    bail!("asked for {}, the agent says: {ready}", b.name());
                }
                if a.ready.is_empty() {
                    a.ready = match b {
                        Backend::Before => "baseline binary (its own /proc walk)".to_string(),
                        _ => ready
                            .split("holder checks: ")
                            .nth(1)
                            .unwrap_or("?")
                            .trim()
                            .to_string(),
                    };
                }
                std::thread::sleep(Duration::from_millis(300));
                let tag = format!("n{n}-r{r}-{}", b as usize);
                let (lat, cpu, sched, removed, mut missed) =
                    owner_round(&lock_dir, agent.child.id(), o.owners, &tag, o.limit)?;
                let left = std::fs::read_dir(&lock_dir)?.count();
                drop(agent);
                missed = missed.max(left);
                a.lat.extend(lat.iter().copied());
                a.cpu += cpu;
                a.sched += sched;
                a.removed += removed;
                a.missed += missed;
                // leftovers of a missed cleanup: not the next round's business
                for e in std::fs::read_dir(&lock_dir)?.flatten() {
                    let _ = std::fs::remove_file(e.path());
                }
                // where the tail is: (owner number, ms) of the slow ones
                let slow: Vec<String> = lat
                    .iter()
                    .enumerate()
                    .filter(|(_, &v)| v > 5.0 && b == Backend::Iter)
                    .map(|(i, v)| format!("#{i} {v:.1} ms"))
                    .collect();
                eprintln!(
                    "bench: host scale: {n} x {}, round {r}, {}: daemon p50 {:.1} ms, {missed} missed{}",
                    o.fds,
                    b.name(),
                    {
                        let mut l = a.lat.clone();
                        if l.is_empty() { f64::NAN } else { pct(&mut l, 0.5) }
                    },
                    if slow.is_empty() { String::new() } else { format!("; over 5 ms: {}", slow.join(", ")) }
                );
            }
            // sweep, the order alternating the other way round
            for b in Backend::order(r + 1, o) {
                let a = &mut acc[b as usize];
                tree.restore()?;
                let (wall, cpu) = sweep_once(env, o, &tree, b)?;
                a.sweep_wall.push(wall);
                a.sweep_cpu.push(cpu);
                let left = tree.left(&tree.stale);
                a.sweep_removed += tree.stale.len() - left;
                a.sweep_missed += left;
                a.sweep_kept_wrongly += tree.kept.len() - tree.left(&tree.kept);
                eprintln!(
                    "bench: host scale: {n} x {}, round {r}, {}: sweep {wall:.2} s",
                    o.fds,
                    b.name()
                );
            }
        }
        drop(crowd);
        loads.push(loadavg());
        rows.push((n, None, acc));
    }
    loads.push(loadavg());
    let _ = std::fs::remove_dir_all(&tree.root);
    let _ = std::fs::remove_dir_all(&pool_dir);
    let _ = std::fs::remove_dir_all(&lock_dir);

    // the report
    let mut l = loads.clone();
    l.retain(|v| v.is_finite());
    let (lmin, lmed, lmax) = if l.is_empty() {
        (f64::NAN, f64::NAN, f64::NAN)
    } else {
        let lo = l.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = l.iter().cloned().fold(0.0, f64::max);
        (lo, median(&mut l), hi)
    };
    out.push_str(&format!(
        "\n## Host scale\n\n\
         Background: N sleeping processes, each holding {} descriptors on regular files outside the\n\
         agent's scope, and {} extra file mappings. Both holder backends in one run, interleaved\n\
         (A B, B A, ...), {} round(s) per size; each round starts a fresh scoped agent\n\
         (`run --path <tmp> --no-pin --no-sockets --no-unix-sockets --no-pid-files`, plus `--force-holders-fallback` for the /proc walk).\n\
         Section time {:.0} s; 1-minute load average during it: min {lmin:.2}, median {lmed:.2}, max {lmax:.2}\n\
         ({} samples).{}\n\n\
         ### Daemon: {} lock owners SIGKILLed one after another per backend per round\n\n\
         Latency: kill → the name gone (inotify), percentiles over all rounds' locks. CPU: the\n\
         agent's utime+stime (/proc/PID/stat, 10 ms ticks) over the rounds ÷ locks removed; the\n\
         same from its threads' schedstat (ns) beside it.\n\n\
         | background | holder backend | locks | p50 | p99 | max | agent CPU per removed lock | (schedstat) | missed |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        o.fds,
        o.maps,
        o.rounds,
        started.elapsed().as_secs_f64(),
        loads.len(),
        match &o.baseline {
            Some(p) => format!(
                "\nBaseline binary (a third column, same flags, no fallback switch): `{}`.",
                p.display()
            ),
            None => String::new(),
        },
        o.owners
    ));
    for (n, skipped, acc) in &mut rows {
        let bg = format!("{n} × {}", o.fds);
        if let Some(why) = skipped {
            out.push_str(&format!("| {bg} | — | skipped: {why} | | | | | | |\n"));
            continue;
        }
        for b in [Backend::Iter, Backend::Proc, Backend::Before] {
            let a = &mut acc[b as usize];
            if a.lat.is_empty() && a.missed == 0 {
                continue; // not measured
            }
            let (p50, p99, max) = if a.lat.is_empty() {
                (f64::NAN, f64::NAN, f64::NAN)
            } else {
                (
                    pct(&mut a.lat, 0.5),
                    pct(&mut a.lat, 0.99),
                    pct(&mut a.lat, 1.0),
                )
            };
            out.push_str(&format!(
                "| {bg} | {} | {} | {} | {} | {} | {} | {} | **{}** |\n",
                a.ready,
                a.removed,
                ms(p50),
                ms(p99),
                ms(max),
                ms(a.cpu * 1e3 / a.removed.max(1) as f64),
                ms(a.sched * 1e3 / a.removed.max(1) as f64),
                a.missed
            ));
        }
    }
    out.push_str(&format!(
        "\n### `sweep` over {} files ({} stale empty `*.lock` 2 h old, {} held open, {} holding data; `--min-age 1h`)\n\n\
         Wall time and CPU (user + system, `wait4`) of the whole command, medians over the rounds.\n\
         Removed wrongly / missed: a held or data lock removed / a stale one left, summed over rounds.\n\n\
         | background | holder backend | removed | wall | CPU | wall ÷ iterators | removed wrongly | missed |\n\
         |---|---|---|---|---|---|---|---|\n",
        o.files, o.stale, o.held, o.data
    ));
    for (n, skipped, acc) in &mut rows {
        if skipped.is_some() {
            continue;
        }
        let bg = format!("{n} × {}", o.fds);
        let walls: Vec<f64> = acc
            .iter_mut()
            .map(|a| {
                if a.sweep_wall.is_empty() {
                    f64::NAN
                } else {
                    median(&mut a.sweep_wall)
                }
            })
            .collect();
        for b in [Backend::Iter, Backend::Proc, Backend::Before] {
            let a = &mut acc[b as usize];
            if a.sweep_wall.is_empty() {
                continue; // not measured
            }
            let ratio = if b == Backend::Iter {
                String::new()
            } else {
                format!("{:.2}", walls[b as usize] / walls[0])
            };
            out.push_str(&format!(
                "| {bg} | {} | {} | {:.3} s | {:.3} s | {ratio} | {} | **{}** |\n",
                b.name(),
                a.sweep_removed,
                median(&mut a.sweep_wall),
                median(&mut a.sweep_cpu),
                a.sweep_kept_wrongly,
                a.sweep_missed
            ));
        }
    }
    Ok(())
}
