//! The sweep's memory between runs: one line per socket seen in
//! CLOSE_WAIT (network namespace, cookie, 4-tuple, first seen, last busy,
//! send counter), for the boot it belongs to; written atomically.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::Path;

use crate::host::atomic;

const HEADER: &str = "# eghostbuster sweep-sockets state v1";

/// A socket: network namespace inode and socket cookie.
pub type Key = (u64, u64);

/// What earlier runs saw of one socket in CLOSE_WAIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Unix seconds: first seen in CLOSE_WAIT.
    pub first_seen: u64,
    /// Unix seconds: last seen busy (first_seen if never).
    pub active_at: u64,
    /// The send counter then (tcpi_bytes_sent, or tcpi_bytes_acked).
    pub sent: u64,
}

/// The state file: the boot it belongs to (cookies start again at each
/// boot) and the sockets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub boot_id: String,
    pub sockets: BTreeMap<Key, Entry>,
}

impl State {
    pub fn parse(text: &str) -> Result<State, String> {
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, HEADER)) => {}
            _ => return Err(format!("line 1: not {HEADER:?}")),
        }
        let mut st = State::default();
        for (i, line) in lines {
            let n = i + 1;
            if line.starts_with('#') {
                continue;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            match f[..] {
                [] => {}
                ["boot", id] => st.boot_id = id.to_string(),
                [ns, cookie, local, remote, first, active, sent] => {
                    let num = |s: &str| {
                        s.parse::<u64>()
                            .map_err(|_| format!("line {n}: {s:?} is not a number"))
                    };
                    let addr = |s: &str| {
                        s.parse::<SocketAddr>()
                            .map_err(|_| format!("line {n}: {s:?} is not an address"))
                    };
                    st.sockets.insert(
                        (num(ns)?, num(cookie)?),
                        Entry {
                            local: addr(local)?,
                            remote: addr(remote)?,
                            first_seen: num(first)?,
                            active_at: num(active)?,
                            sent: num(sent)?,
                        },
                    );
                }
                _ => return Err(format!("line {n}: unexpected {line:?}")),
            }
        }
        Ok(st)
    }

    pub fn serialize(&self) -> String {
        let mut s = format!(
            "{HEADER}\n# netns cookie local remote first_seen active_at sent (unix seconds; bytes)\nboot {}\n",
            self.boot_id
        );
        for (&(ns, cookie), e) in &self.sockets {
            s.push_str(&format!(
                "{ns} {cookie} {} {} {} {} {}\n",
                e.local, e.remote, e.first_seen, e.active_at, e.sent
            ));
        }
        s
    }
}

/// Checked before anything else (exit 2 on failure): the state file's
/// directory exists (only the default one is created), and the file, if
/// any, is a file.
pub fn prepare_state_file(path: &Path) -> Result<(), String> {
    let dir = path
        .parent()
        .ok_or_else(|| format!("--state-file {}: no directory", path.display()))?;
    let default = Path::new(crate::cli::DEFAULT_SWEEP_STATE)
        .parent()
        .expect("an absolute default");
    atomic::ensure_default_dir(dir, &[default]).map_err(|e| {
        format!(
            "--state-file {}: cannot use {}: {e}",
            path.display(),
            dir.display()
        )
    })?;
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.is_file() => Err(format!(
            "--state-file {}: not a regular file",
            path.display()
        )),
        _ => Ok(()),
    }
}

/// A state file holds a line per socket seen in CLOSE_WAIT: a few MiB at
/// most on the busiest host. A larger one is not ours and is not read.
const MAX_STATE_BYTES: u64 = 16 << 20;

/// The state file, bounded; a larger file is an error (the run fails and
/// leaves it alone).
pub(super) fn read_state(path: &Path) -> io::Result<String> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let mut buf = Vec::new();
    f.take(MAX_STATE_BYTES + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_STATE_BYTES {
        return Err(io::Error::other(format!(
            "larger than {} MiB: not a state file",
            MAX_STATE_BYTES >> 20
        )));
    }
    String::from_utf8(buf).map_err(|_| io::Error::other("not UTF-8 text"))
}

/// Written atomically (host::atomic), readable by root only.
pub(super) fn write_state(path: &Path, st: &State) -> io::Result<()> {
    atomic::write_mode(path, st.serialize().as_bytes(), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_file_round_trip() {
        let mut st = State {
            boot_id: "3f1a-77".into(),
            ..Default::default()
        };
        st.sockets.insert(
            (4026531840, 8193),
            Entry {
                local: "127.0.0.1:5000".parse().unwrap(),
                remote: "127.0.0.1:40000".parse().unwrap(),
                first_seen: 1_764_000_000,
                active_at: 1_764_000_030,
                sent: 42,
            },
        );
        st.sockets.insert(
            (4026532000, 1),
            Entry {
                local: "[::1]:80".parse().unwrap(),
                remote: "[fe80::1]:5".parse().unwrap(),
                first_seen: 1,
                active_at: 1,
                sent: 0,
            },
        );
        let text = st.serialize();
        assert!(text.starts_with(HEADER));
        assert!(text
            .contains("4026531840 8193 127.0.0.1:5000 127.0.0.1:40000 1764000000 1764000030 42\n"));
        assert_eq!(State::parse(&text).unwrap(), st);
        assert_eq!(
            State::parse(&format!("{HEADER}\n")).unwrap(),
            State::default()
        );
        for bad in [
            "",
            "something else\n",
            &format!("{HEADER}\n1 2 3\n"),
            &format!("{HEADER}\n1 2 127.0.0.1 127.0.0.1:1 1 1 1\n"),
            &format!("{HEADER}\nx 2 127.0.0.1:1 127.0.0.1:1 1 1 1\n"),
        ] {
            assert!(State::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
