//! `eghostbuster status`: what a running daemon does. The daemon rewrites a
//! small JSON document when what it tracks changes and every 10 s (default
//! /run/eghostbuster/status.json): a typed header (who, what, features),
//! then one section per class under the class's name. `status` reads it,
//! checks that its writer is alive and its programs are still pinned, and
//! prints it for people or, with --json, for scripts.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::host::{atomic, procfs};

pub const DEFAULT_STATUS_FILE: &str = "/run/eghostbuster/status.json";
/// The only directory the agent creates for it: the default's.
pub const DEFAULT_STATUS_DIR: &str = "/run/eghostbuster";
/// A status file is a few KiB per thousand tracked entries: anything
/// larger than this is not one (and is not read whole).
const MAX_STATUS_BYTES: u64 = 64 << 20;

/// What does not change while the daemon runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub pid: u32,
    pub version: String,
    /// "the whole host" or the --path list.
    pub scope: String,
    pub dry_run: bool,
    /// How each monitor works on this kernel (exit hook, destroy method…).
    pub features: BTreeMap<String, String>,
    /// Programs attached, by the classes that run.
    #[serde(default)]
    pub attached: Vec<String>,
    pub pin_dir: Option<String>,
    #[serde(default)]
    pub pinned_links: Vec<String>,
    /// The classes this daemon runs.
    #[serde(default)]
    pub classes: Vec<String>,
    /// The classes switched off (--no-locks, --no-sockets, config).
    #[serde(default)]
    pub disabled: Vec<String>,
}

/// One daemon per status file: an `flock` on `<status file>.owner`, a file
/// of the daemon's own beside it, held while the daemon runs (the status
/// file itself is replaced at every write, so it cannot carry the lock).
/// The name is predictable, so in a directory others can write it is
/// opened without following a symlink (`O_NOFOLLOW`), without blocking on
/// a FIFO (`O_NONBLOCK`), and used only when it is a regular file of ours
/// with one link; anything else planted there stops the start (exit 2)
/// rather than be opened, written or locked. It holds the PID, and is left
/// in place on exit (removing it would let two daemons lock two inodes).
pub struct Owner {
    _file: std::fs::File,
}

impl Owner {
    pub fn path_for(status: &Path) -> PathBuf {
        let mut name = status.file_name().unwrap_or_default().to_os_string();
        name.push(".owner");
        status.with_file_name(name)
    }

    pub fn take(status: &Path) -> Result<Owner, crate::cli::Usage> {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        use std::os::unix::io::AsRawFd;
        let path = Self::path_for(status);
        let usage =
            |why: String| crate::cli::Usage(format!("--status-file {}: {why}", status.display()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| usage(format!("cannot open {}: {e}", path.display())))?;
        let m = file
            .metadata()
            .map_err(|e| usage(format!("{}: {e}", path.display())))?;
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        if !m.is_file() || m.uid() != me || m.nlink() != 1 {
            return Err(usage(format!(
                "{} is not this agent's (a regular file of uid {me} with one link); remove it",
                path.display()
            )));
        }
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let mut pid = String::new();
            let _ = (&file).take(32).read_to_string(&mut pid);
            return Err(usage(format!(
                "another daemon (pid {}) uses it",
                pid.trim()
            )));
        }
        let _ = file.set_len(0);
        let _ = (&file).write_all(format!("{}\n", std::process::id()).as_bytes());
        Ok(Owner { _file: file })
    }
}

/// Entries listed per class, at most; `<class>_tracked` says how many
/// there are.
pub const LIST_MAX: usize = 1000;

/// The document: the header, when it was written, and one section per
/// running class under its name, with its count.
pub fn document(header: &Header, sections: &[(&str, crate::agent::class::Section)]) -> Value {
    let mut doc = serde_json::to_value(header).unwrap_or_default();
    doc["updated_unix"] = Value::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    for (name, section) in sections {
        doc[*name] = section.entries.clone();
        doc[format!("{name}_tracked")] = Value::from(section.total);
    }
    doc
}

pub fn write(path: &Path, doc: &Value) -> io::Result<()> {
    atomic::write(path, &serde_json::to_vec_pretty(doc)?)
}

/// What only a live look can tell, added to the document by `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Live {
    pub running: bool,
    pub programs_attached: bool,
}

/// Read the status file (bounded) and look: is the daemon running, are
/// its programs attached (pinned links present)?
pub fn read(path: &Path) -> Result<(Value, Header, Live), String> {
    let file = std::fs::File::open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            format!(
                "no daemon status at {} (is `eghostbuster run` running?)",
                path.display()
            )
        } else {
            format!("{}: {e}", path.display())
        }
    })?;
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err(format!(
            "{}: not a status file (not a regular file)",
            path.display()
        ));
    }
    let mut text = Vec::new();
    file.take(MAX_STATUS_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if text.len() as u64 > MAX_STATUS_BYTES {
        return Err(format!(
            "{}: not a status file (larger than {} MiB)",
            path.display(),
            MAX_STATUS_BYTES >> 20
        ));
    }
    let mut doc: Value = serde_json::from_slice(&text)
        .map_err(|e| format!("{}: not a status file: {e}", path.display()))?;
    let header: Header = serde_json::from_value(doc.clone())
        .map_err(|e| format!("{}: not a status file: {e}", path.display()))?;
    let running = header.pid > 0
        && procfs::stat(header.pid)
            .is_some_and(|s| s.alive() && s.comm.starts_with(b"eghostbuster"));
    let pinned: Vec<PathBuf> = header.pinned_links.iter().map(PathBuf::from).collect();
    let live = Live {
        running,
        programs_attached: running || (!pinned.is_empty() && pinned.iter().all(|p| p.exists())),
    };
    doc["running"] = Value::from(live.running);
    doc["programs_attached"] = Value::from(live.programs_attached);
    Ok((doc, header, live))
}

/// The header part, for people; each class prints its own section.
pub fn print_header(h: &Header, live: Live, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "daemon:     {} (pid {}, version {})",
        if live.running {
            "running"
        } else {
            "not running (last status shown)"
        },
        h.pid,
        h.version
    )?;
    writeln!(
        out,
        "programs:   {}{}",
        if live.programs_attached {
            "attached"
        } else {
            "not attached"
        },
        h.pin_dir
            .as_ref()
            .map(|d| format!(" (pinned in {d})"))
            .unwrap_or_default()
    )?;
    if !h.features.is_empty() {
        let list: Vec<String> = h
            .features
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        writeln!(out, "features:   {}", list.join("; "))?;
    }
    writeln!(out, "scope:      {}", h.scope)
}

/// `eghostbuster status [--json]`: 0 when the daemon runs, 3 when it does
/// not (or no status can be read), 1 when writing the output failed.
pub fn show(path: &Path, json: bool) -> u8 {
    let (doc, header, live) = match read(path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("eghostbuster: {e}");
            return 3;
        }
    };
    let mut out = io::stdout().lock();
    let r = if json {
        serde_json::to_writer_pretty(&mut out, &doc)
            .map_err(io::Error::from)
            .and_then(|_| writeln!(out))
    } else {
        print_header(&header, live, &mut out).and_then(|_| {
            for c in crate::classes::all() {
                if !header.disabled.iter().any(|n| n == c.name())
                    && (header.classes.iter().any(|n| n == c.name()) || doc.get(c.name()).is_some())
                {
                    c.print_status(&doc[c.name()], &mut out)?;
                } else {
                    writeln!(out, "{:<11} disabled", format!("{}:", c.name()))?;
                }
            }
            Ok(())
        })
    };
    match r {
        Ok(()) if live.running => 0,
        Ok(()) => 3,
        Err(e) => {
            eprintln!("eghostbuster: writing the status: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planted_owner_files_stop_the_start() {
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let status = t.path().join("s.json");
        std::os::unix::fs::symlink(&victim, Owner::path_for(&status)).unwrap();
        assert!(Owner::take(&status).is_err());
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        let fifo = t.path().join("f.json");
        nix::unistd::mkfifo(&Owner::path_for(&fifo), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(Owner::take(&fifo).is_err()); // and did not block
        let linked = t.path().join("l.json");
        std::fs::hard_link(&victim, Owner::path_for(&linked)).unwrap();
        assert!(Owner::take(&linked).is_err());
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    }

    #[test]
    fn round_trip_and_bounded_read() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("status.json");
        let mut sleeper = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        let h = Header {
            pid: sleeper.id(),
            version: "1".into(),
            scope: "the whole host".into(),
            features: BTreeMap::from([("exit".into(), "tp_btf".into())]),
            classes: vec!["locks".into()],
            ..Header::default()
        };
        let doc = document(
            &h,
            &[(
                "locks",
                crate::agent::class::Section {
                    entries: serde_json::json!([{"path": "/x.lock"}]),
                    total: 7,
                },
            )],
        );
        write(&p, &doc).unwrap();
        let (doc, back, live) = read(&p).unwrap();
        assert_eq!(back, h);
        assert_eq!(doc["locks"][0]["path"], "/x.lock");
        assert_eq!(doc["locks_tracked"], 7);
        // alive, but not an eghostbuster process
        assert!(!live.running);
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        let mut out = Vec::new();
        print_header(&back, live, &mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("not running"));
        assert!(read(Path::new("/dev/zero")).is_err());
        // one daemon per status file
        let first = Owner::take(&p).unwrap();
        let again = Owner::take(&p).err().expect("a second owner");
        assert!(again.0.contains("another daemon"), "{}", again.0);
        drop(first);
        let _third = Owner::take(&p).unwrap();
        assert!(read(&t.path().join("none"))
            .unwrap_err()
            .contains("no daemon status"));
    }
}
