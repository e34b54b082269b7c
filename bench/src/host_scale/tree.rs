//! The sweep side of a host-scale run: a tree of files, swept once.

use super::*;

/// The sweep tree: `files` files in directories of 1,000, of which `stale`
/// empty `*.lock` files 2 h old (to be removed), `held` old empty `*.lock`
/// files the returned handles keep open (to be kept), `data` old `*.lock`
/// files holding data (to be kept); the rest plain files.
pub(super) struct Tree {
    pub(super) root: PathBuf,
    pub(super) stale: Vec<PathBuf>,
    pub(super) kept: Vec<PathBuf>,
    pub(super) _held: Vec<File>,
}

pub(super) fn old() -> SystemTime {
    SystemTime::now() - Duration::from_secs(2 * 3600)
}

pub(super) fn make_tree(root: &Path, o: &Opts) -> Result<Tree> {
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root)?;
    let mut t = Tree {
        root: root.to_path_buf(),
        stale: Vec::new(),
        kept: Vec::new(),
        _held: Vec::new(),
    };
    let special = o.stale + o.held + o.data;
    // the special files spread evenly through the tree
    let every = (o.files / special.max(1)).max(1);
    for i in 0..o.files {
        let sub = root.join(format!("d{:03}", i / 1000));
        if i % 1000 == 0 {
            std::fs::create_dir_all(&sub)?;
        }
        let k = i / every;
        if i % every == 0 && k < special {
            if k < o.stale {
                let p = sub.join(format!("stale{k}.lock"));
                File::create(&p)?.set_modified(old())?;
                t.stale.push(p);
            } else if k < o.stale + o.held {
                let p = sub.join(format!("held{k}.lock"));
                let f = File::options()
                    .create(true)
                    .truncate(true)
                    .read(true)
                    .write(true)
                    .open(&p)?;
                f.set_modified(old())?;
                t._held.push(f);
                t.kept.push(p);
            } else {
                let p = sub.join(format!("data{k}.lock"));
                std::fs::write(
                    &p,
                    b"[[projects]]\n  name = \"github.com/x/y\"\n  version = \"v1.0.0\"\n",
                )?;
                File::options().write(true).open(&p)?.set_modified(old())?;
                t.kept.push(p);
            }
            continue;
        }
        std::fs::write(sub.join(format!("f{i}.dat")), b"x")?;
    }
    Ok(t)
}

impl Tree {
    /// Put back every stale lock the last sweep removed, 2 h old again.
    pub(super) fn restore(&self) -> Result<()> {
        for p in &self.stale {
            File::create(p)?.set_modified(old())?;
        }
        Ok(())
    }
    pub(super) fn left(&self, v: &[PathBuf]) -> usize {
        v.iter().filter(|p| p.symlink_metadata().is_ok()).count()
    }
}

/// One `sweep`: wall seconds, CPU seconds (user + system, from wait4).
pub(super) fn sweep_once(env: &Env, o: &Opts, tree: &Tree, b: Backend) -> Result<(f64, f64)> {
    let log = File::create(env.dir.join("sweep.log"))?;
    let mut c = Command::new(b.bin(env, o));
    c.arg("sweep")
        .arg("--config")
        .arg(env.dir.join("empty.toml"))
        .arg("--path")
        .arg(&tree.root)
        .args([
            "--no-sockets",
            "--no-unix-sockets",
            "--no-pid-files",
            "--min-age",
            "1h",
        ])
        .arg("--state-file")
        .arg(env.dir.join("sweep-sockets.state"))
        .args(b.flags())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    dies_with_us(&mut c);
    let t0 = Instant::now();
    let child = c.spawn().context("spawning sweep")?;
    let mut st = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(child.id() as i32, &mut st, 0, &mut ru) };
    let wall = t0.elapsed().as_secs_f64();
    if r < 0 {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    if !libc::WIFEXITED(st) || libc::WEXITSTATUS(st) != 0 {
        let log = std::fs::read_to_string(env.dir.join("sweep.log")).unwrap_or_default();
        bail!(
            "sweep ({}) failed, status {st:#x}: {}",
            b.name(),
            log.trim()
        );
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok((wall, tv(ru.ru_utime) + tv(ru.ru_stime)))
}
