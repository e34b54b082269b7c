//! Syscall loops, per-program BPF cost and realistic workloads: the
//! agent against no agent, an empty program (floor) and the seed-style
//! design, interleaved.

use super::*;

/// ns per operation of one loop.
pub(crate) fn run_loop(name: &str, dir: &Path, n: u64) -> f64 {
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

pub(crate) fn syscall_overhead(env: &Env, out: &mut String) -> Result<()> {
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
pub(crate) fn enable_bpf_stats() -> Result<std::os::fd::OwnedFd> {
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
pub(crate) fn prog_stats() -> HashMap<String, (u64, u64)> {
    let mut m: HashMap<String, (u64, u64)> = HashMap::new();
    for p in libbpf_rs::query::ProgInfoIter::default() {
        let e = m.entry(p.name.to_string_lossy().into_owned()).or_default();
        e.0 += p.run_cnt;
        e.1 += p.run_time_ns;
    }
    m
}

pub(crate) fn program_cost(env: &Env, out: &mut String) -> Result<()> {
    let dir = env.dir.join("loops");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("existing.dat"), b"x")?;
    let rounds = if env.quick { 1 } else { 5 };
    // (loop, hooks, floor's, agent's and seed's programs on them): the
    // ns per loop iteration of all of a configuration's programs there
    type Hook<'a> = (
        &'a str,
        &'a str,
        &'a [&'a str],
        &'a [&'a str],
        &'a [&'a str],
    );
    let seed_open: &[&str] = &["seed_enter_open", "seed_exit_opena"];
    let hooks: [Hook; 3] = [
        (
            "open+close",
            "sys_exit_openat",
            &["fl_openat"],
            &["handle_openat_exit"],
            seed_open,
        ),
        (
            "create+unlink (O_EXCL, *.lock)",
            "sys_exit_openat + sys_exit_unlink(at)",
            &["fl_openat", "fl_unlinkat", "fl_unlink"],
            &[
                "handle_openat_exit",
                "handle_unlinkat_exit",
                "handle_unlink_exit",
            ],
            seed_open,
        ),
        (
            "fork+exit",
            "sched_process_exit",
            &["fl_exit"],
            &["handle_exit"],
            &["seed_exit"],
        ),
    ];
    let mut res: HashMap<(Cfg, usize), Vec<f64>> = HashMap::new();
    for _ in 0..rounds {
        for cfg in [Cfg::Floor, Cfg::Agent, Cfg::Seed] {
            let _running = start(env, cfg)?;
            let stats = enable_bpf_stats()?;
            for (row, (loop_name, _, floor_progs, agent_progs, seed_progs)) in
                hooks.iter().enumerate()
            {
                let before = prog_stats();
                run_loop(
                    loop_name,
                    &dir,
                    if env.quick { 2_000 } else { 200_000 }
                        / match *loop_name {
                            "fork+exit" => 50,
                            "open+close" => 1,
                            _ => 2,
                        },
                );
                let after = prog_stats();
                let progs: &[&str] = match cfg {
                    Cfg::Floor => floor_progs,
                    Cfg::Agent => agent_progs,
                    Cfg::Seed => seed_progs,
                    _ => &[],
                };
                // names are truncated to 15 characters by the kernel
                let (mut runs, mut ns) = (0u64, 0u64);
                for p in progs.iter() {
                    let key: String = p.chars().take(15).collect();
                    let a = after.get(&key).copied().unwrap_or_default();
                    let b = before.get(&key).copied().unwrap_or_default();
                    runs = runs.max(a.0 - b.0);
                    ns += a.1 - b.1;
                }
                if runs > 0 {
                    res.entry((cfg, row))
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
    for (row, (loop_name, hook, _, _, _)) in hooks.iter().enumerate() {
        let mut m = |c: Cfg| {
            res.get_mut(&(c, row))
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

pub(crate) fn time_cmd(cmd: &mut Command) -> Result<f64> {
    let t0 = Instant::now();
    let st = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status()?;
    if !st.success() {
        bail!("{cmd:?} failed: {st}");
    }
    Ok(t0.elapsed().as_secs_f64())
}

pub(crate) fn realistic(env: &Env, out: &mut String) -> Result<()> {
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

pub(crate) fn find_libbpf_src() -> Option<PathBuf> {
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
