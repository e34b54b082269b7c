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
mod latency;
mod loops;

use latency::*;
use loops::*;

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

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
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
