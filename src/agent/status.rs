//! `eghostbuster status`: what a running daemon does. The daemon rewrites a
//! small JSON document when what it tracks changes and every 10 s (default /run/eghostbuster/status.json);
//! this reads it, checks that its writer is alive and its programs are
//! still pinned, and prints it for people or, with --json, for scripts.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::host::procfs;
use crate::locks::worker::LockStatus;
use crate::sockets::worker::SockStatus;

pub const DEFAULT_STATUS_FILE: &str = "/run/eghostbuster/status.json";

pub fn document(header: &Value, locks: &[LockStatus], sockets: &[SockStatus]) -> Value {
    let mut doc = header.clone();
    doc["updated_unix"] = json!(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0));
    doc["locks"] = locks
        .iter()
        .map(|l| {
            json!({
                "path": l.path,
                "owner_pid": l.owner_pid,
                "owner_comm": l.owner_comm,
                "owner_alive": l.owner_alive,
                "owner_age_s": l.owner_age_s,
                "state": if l.stale_kept { "stale, kept for a live process" } else { "owned" },
            })
        })
        .collect();
    doc["sockets"] = sockets
        .iter()
        .map(|s| {
            json!({
                "cookie": s.cookie,
                "netns": s.netns,
                "local": s.local,
                "remote": s.remote,
                "in_close_wait_s": s.seen_s,
                "reaped_in_s": s.due_in_s,
            })
        })
        .collect();
    doc
}

pub fn write_atomically(path: &Path, doc: &Value) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("status"),
        std::process::id()
    ));
    std::fs::write(&tmp, serde_json::to_vec_pretty(doc)?)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Read the status file and add what only a live look can tell: is the
/// daemon running, are its programs attached (pinned links present).
pub fn read(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            format!(
                "no daemon status at {} (is `eghostbuster run` running?)",
                path.display()
            )
        } else {
            format!("{}: {e}", path.display())
        }
    })?;
    let mut doc: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a status file: {e}", path.display()))?;
    let pid = doc["pid"].as_u64().unwrap_or(0) as u32;
    let running = pid > 0
        && procfs::stat(pid).is_some_and(|s| s.alive() && s.comm.starts_with("eghostbuster"));
    doc["running"] = json!(running);
    let pinned: Vec<PathBuf> = doc["pinned_links"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(PathBuf::from))
                .collect()
        })
        .unwrap_or_default();
    let attached = running || (!pinned.is_empty() && pinned.iter().all(|p| p.exists()));
    doc["programs_attached"] = json!(attached);
    Ok(doc)
}

pub fn print_human(doc: &Value, out: &mut dyn Write) -> io::Result<()> {
    let s = |v: &Value| v.as_str().unwrap_or("?").to_string();
    writeln!(
        out,
        "daemon:     {} (pid {}, version {})",
        if doc["running"].as_bool() == Some(true) {
            "running"
        } else {
            "not running (last status shown)"
        },
        doc["pid"],
        s(&doc["version"])
    )?;
    writeln!(
        out,
        "programs:   {}{}",
        if doc["programs_attached"].as_bool() == Some(true) {
            "attached"
        } else {
            "not attached"
        },
        doc["pin_dir"]
            .as_str()
            .map(|d| format!(" (pinned in {d})"))
            .unwrap_or_default()
    )?;
    if let Some(f) = doc["features"].as_object() {
        let list: Vec<String> = f
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or("?")))
            .collect();
        writeln!(out, "features:   {}", list.join("; "))?;
    }
    writeln!(out, "scope:      {}", s(&doc["scope"]))?;
    let locks = doc["locks"].as_array().cloned().unwrap_or_default();
    writeln!(out, "locks:      {} tracked", locks.len())?;
    for l in &locks {
        writeln!(
            out,
            "  {}  owner pid {} ({}){}, up {}s; {}",
            s(&l["path"]),
            l["owner_pid"],
            s(&l["owner_comm"]),
            if l["owner_alive"].as_bool() == Some(true) {
                ""
            } else {
                " gone"
            },
            l["owner_age_s"],
            s(&l["state"])
        )?;
    }
    let sockets = doc["sockets"].as_array().cloned().unwrap_or_default();
    writeln!(out, "sockets:    {} in CLOSE_WAIT, tracked", sockets.len())?;
    for k in &sockets {
        writeln!(
            out,
            "  {} -> {}  netns {}, seen {}s ago, reaper in {}s",
            k["local"].as_str().unwrap_or("?"),
            k["remote"].as_str().unwrap_or("?"),
            k["netns"],
            k["in_close_wait_s"],
            k["reaped_in_s"]
        )?;
    }
    Ok(())
}
