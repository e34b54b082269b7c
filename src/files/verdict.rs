//! The checks' decisions, free of I/O, shared by every filesystem ghost
//! class: how a process ended, what a file's PID line says, and whether
//! the facts gathered about a file allow its removal (DESIGN.md, "Checks
//! before removal").

use std::fmt;

/// How a thread group ended, from its wait(2) status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    Killed { signal: i32, core: bool },
    Failed(i32),
    Clean,
}

impl ExitKind {
    pub fn from_wait_status(status: u32) -> Self {
        let sig = (status & 0x7f) as i32;
        if sig == 0 {
            match ((status >> 8) & 0xff) as i32 {
                0 => ExitKind::Clean,
                code => ExitKind::Failed(code),
            }
        } else {
            ExitKind::Killed {
                signal: sig,
                core: status & 0x80 != 0,
            }
        }
    }
}

impl fmt::Display for ExitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitKind::Killed { signal, core } => {
                let name = nix::sys::signal::Signal::try_from(signal)
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|_| format!("signal {signal}"));
                write!(
                    f,
                    "killed by {name}{}",
                    if core { " (core dumped)" } else { "" }
                )
            }
            ExitKind::Failed(code) => write!(f, "exited with status {code}"),
            ExitKind::Clean => write!(f, "exited with status 0"),
        }
    }
}

/// What the first line of a lock file says about its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PidInFile {
    /// No PID there (empty, text, binary).
    NoPid,
    /// The PID names no live process.
    Dead(u32),
    /// A live process that started after the file was last modified: the
    /// PID was reused, the writer is gone.
    Reused(u32),
    Alive(u32),
    /// The creator is in another PID namespace we cannot read it in.
    Uninterpretable,
}

/// The facts gathered about one lock file just before a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// Check 1: the name still refers to the inode recorded at creation.
    pub same_inode: bool,
    /// Check 2: a live process other than the dead owner has it open or mapped.
    pub open_by: Option<u32>,
    /// Check 3: a flock/POSIX/OFD lock on the inode (pid 0: holder unknown).
    pub locked_by: Option<u32>,
    /// Check 4.
    pub pid: PidInFile,
    /// References no process shows (files/holders.rs), or that cannot be
    /// ruled out: unknown means keep.
    pub unexplained: Option<Unexplained>,
}

/// Why references to a file are not accounted for by any process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unexplained {
    /// The kernel counts this many references no process shows: a
    /// descriptor in flight over SCM_RIGHTS, an io_uring registered file.
    Refs(u32),
    /// Another struct file has it open for reading or writing though no
    /// process shows one (a write lease was refused).
    OpenElsewhere,
    /// A process on its way out still holds it (it may have passed it on).
    Exiting(u32),
    /// This check cannot rule such references out here.
    CannotTell(&'static str),
}

/// Why a lock is kept. Carries the live process it now depends on, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    Replaced,
    OpenBy(u32),
    LockedBy(u32),
    PidAlive(u32),
    PidUninterpretable,
    Unexplained(Unexplained),
    /// The file under the creator's name is owned by someone else (issue
    /// 11: a bind mount or a name resolved otherwise put it there).
    NotCreators {
        owner: u32,
        creator: u32,
    },
    /// Acting as the principal (this uid), the kernel refused a step: the
    /// creator could not have removed it either.
    NotPermitted(u32),
}

impl Keep {
    /// The live process ownership moves to (DESIGN.md: evaluated again
    /// when it exits).
    pub fn new_owner(&self) -> Option<u32> {
        match *self {
            Keep::OpenBy(p) | Keep::PidAlive(p) => Some(p),
            Keep::LockedBy(p) if p > 0 => Some(p),
            _ => None,
        }
    }
}

impl fmt::Display for Keep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Keep::Replaced => write!(f, "the name now belongs to another file"),
            Keep::OpenBy(p) => write!(f, "open by pid {p}"),
            Keep::LockedBy(0) => write!(f, "locked (flock/fcntl) by a process"),
            Keep::LockedBy(p) => write!(f, "locked (flock/fcntl) by pid {p}"),
            Keep::PidAlive(p) => write!(f, "names live pid {p}"),
            Keep::NotCreators { owner, creator } => write!(
                f,
                "owned by uid {owner}, not by its creator (uid {creator}): not the creator's file"
            ),
            Keep::NotPermitted(uid) => write!(
                f,
                "its creator (uid {uid}) could not remove it: acting as the creator, the kernel refused"
            ),
            Keep::PidUninterpretable => {
                write!(f, "its PID cannot be read in the creator's PID namespace")
            }
            Keep::Unexplained(Unexplained::Refs(n)) => write!(
                f,
                "referenced by something no process has open: a descriptor in flight? ({n} unexplained reference{})",
                if n == 1 { "" } else { "s" }
            ),
            Keep::Unexplained(Unexplained::OpenElsewhere) => write!(
                f,
                "open by something no process shows (a write lease was refused): a descriptor in flight?"
            ),
            Keep::Unexplained(Unexplained::Exiting(p)) => {
                write!(f, "pid {p}, on its way out, still holds it")
            }
            Keep::Unexplained(Unexplained::CannotTell(why)) => {
                write!(f, "a descriptor in flight cannot be ruled out ({why})")
            }
        }
    }
}

/// Checks 1-4, in order; the first that fails keeps the file.
pub fn judge(f: &Facts) -> Result<(), Keep> {
    if !f.same_inode {
        return Err(Keep::Replaced);
    }
    if let Some(p) = f.open_by {
        return Err(Keep::OpenBy(p));
    }
    if let Some(p) = f.locked_by {
        return Err(Keep::LockedBy(p));
    }
    match f.pid {
        PidInFile::Alive(p) => return Err(Keep::PidAlive(p)),
        PidInFile::Uninterpretable => return Err(Keep::PidUninterpretable),
        PidInFile::NoPid | PidInFile::Dead(_) | PidInFile::Reused(_) => {}
    }
    match f.unexplained {
        Some(u) => Err(Keep::Unexplained(u)),
        None => Ok(()),
    }
}

/// The PID on the first line of a lock file: decimal digits, surrounding
/// blanks allowed, nothing else on the line. Anything else is no PID.
pub fn parse_pid_line(content: &[u8]) -> Option<u32> {
    let line = content.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim();
    if line.is_empty() || !line.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match line.parse::<u32>() {
        Ok(p) if p > 0 => Some(p),
        _ => None,
    }
}

/// The owner PID of an editor-style symlink lock, from its target
/// (Emacs: `user@host.PID:BOOT`): the digits after the last '.' before
/// the first ':'. The link is never followed; anything else is no PID.
pub fn parse_symlink_owner(target: &[u8]) -> Option<u32> {
    let head = target.split(|&b| b == b':').next()?;
    let dot = head.iter().rposition(|&b| b == b'.')?;
    let digits = std::str::from_utf8(&head[dot + 1..]).ok()?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match digits.parse::<u32>() {
        Ok(p) if p > 0 => Some(p),
        _ => None,
    }
}

/// The longest content `parse_owner_record` accepts: an owner record is a
/// short note, never data.
pub const OWNER_RECORD_MAX: usize = 256;

/// What a lock file's whole content says, for a judge that did not see
/// the file being created (`sweep`, a lock directory's one file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content<'a> {
    /// Nothing in it, or blanks only.
    Empty,
    /// Its whole content is an owner record: a PID, `host:PID`, or a short
    /// `key=value` or JSON record with a pid (and, maybe, the host).
    Owner { pid: u32, host: Option<&'a [u8]> },
    /// Anything else: data, not a lock's note about its owner.
    Other,
}

/// Classify `content`, which must be the file's whole content (a caller
/// that read at most N bytes passes what it read; more than
/// OWNER_RECORD_MAX is `Other`). Accepted, blanks around allowed:
///
/// - `4242` (a PID; one line),
/// - `build-7.example.org:4242` (host:PID; one line),
/// - `pid=4242` lines of `key=value`, one key `pid` (any case), others
///   free (`host`/`hostname` is the host),
/// - `{"pid": 4242, "host": "a"}`: a flat JSON object with a numeric or
///   decimal-string `pid` (`host`/`hostname` a string).
///
/// Anything else (text, TOML, YAML, Erlang terms, several lines of PIDs,
/// nested JSON, bytes that are not UTF-8, a PID of 0) is `Other`.
pub fn parse_owner_record(content: &[u8]) -> Content<'_> {
    if content.len() > OWNER_RECORD_MAX {
        return Content::Other;
    }
    let text = content.trim_ascii();
    if text.is_empty() {
        return Content::Empty;
    }
    if std::str::from_utf8(text).is_err() || text.contains(&0) {
        return Content::Other;
    }
    let owner = |pid: Option<u32>, host| match pid {
        Some(pid) => Content::Owner { pid, host },
        None => Content::Other,
    };
    if text.first() == Some(&b'{') {
        return json_owner(text);
    }
    if !text.contains(&b'\n') {
        if let Some(pid) = decimal_pid(text) {
            return Content::Owner { pid, host: None };
        }
        if let Some(colon) = text.iter().rposition(|&b| b == b':') {
            let (host, pid) = (&text[..colon], &text[colon + 1..]);
            if is_hostname(host) {
                return owner(decimal_pid(pid), Some(host));
            }
        }
    }
    key_value_owner(text)
}

/// A PID in decimal: digits only, more than 0, fits u32.
fn decimal_pid(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok().filter(|&p| p > 0)
}

/// A host name as DNS and /etc/hostname spell them.
fn is_hostname(b: &[u8]) -> bool {
    !b.is_empty()
        && b.len() <= 253
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'))
}

fn is_pid_key(k: &[u8]) -> bool {
    k.eq_ignore_ascii_case(b"pid")
}

fn is_host_key(k: &[u8]) -> bool {
    k.eq_ignore_ascii_case(b"host") || k.eq_ignore_ascii_case(b"hostname")
}

/// Lines of `key=value` (keys of letters, digits, `_`, `-`, `.`), exactly
/// one of them `pid`, a decimal PID.
fn key_value_owner(text: &[u8]) -> Content<'_> {
    let mut pid = None;
    let mut host = None;
    for line in text.split(|&b| b == b'\n') {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let Some(eq) = line.iter().position(|&b| b == b'=') else {
            return Content::Other;
        };
        let (key, value) = (line[..eq].trim_ascii(), line[eq + 1..].trim_ascii());
        let key_ok = key.first().is_some_and(u8::is_ascii_alphabetic)
            && key
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'));
        if !key_ok || value.iter().any(|c| c.is_ascii_control()) {
            return Content::Other;
        }
        if is_pid_key(key) {
            if pid.is_some() {
                return Content::Other;
            }
            match decimal_pid(value) {
                Some(p) => pid = Some(p),
                None => return Content::Other,
            }
        } else if is_host_key(key) {
            if host.is_some() || !is_hostname(value) {
                return Content::Other;
            }
            host = Some(value);
        }
    }
    match pid {
        Some(pid) => Content::Owner { pid, host },
        None => Content::Other,
    }
}

/// A flat JSON object with a pid: every value a scalar.
fn json_owner(text: &[u8]) -> Content<'_> {
    use serde_json::Value;
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(text) else {
        return Content::Other;
    };
    let mut pid = None;
    let mut host: Option<&[u8]> = None;
    for (key, value) in &map {
        if matches!(value, Value::Object(_) | Value::Array(_)) {
            return Content::Other;
        }
        if is_pid_key(key.as_bytes()) {
            let p = match value {
                Value::Number(n) => n.as_u64().and_then(|p| u32::try_from(p).ok()),
                Value::String(s) => decimal_pid(s.as_bytes()),
                _ => None,
            };
            match (pid, p.filter(|&p| p > 0)) {
                (None, Some(p)) => pid = Some(p),
                _ => return Content::Other,
            }
        } else if is_host_key(key.as_bytes()) {
            let Value::String(h) = value else {
                return Content::Other;
            };
            // the host as it appears in `text` (the record borrows from it)
            let Some(at) = find(text, h.as_bytes()).filter(|_| is_hostname(h.as_bytes())) else {
                return Content::Other;
            };
            host = Some(&text[at..at + h.len()]);
        }
    }
    match pid {
        Some(pid) => Content::Owner { pid, host },
        None => Content::Other,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Does a host named in an owner record name this host (`nodename`, from
/// uname)? Case-insensitive; a short name matches the first label of a
/// qualified one; `localhost` is always this host.
pub fn same_host(named: &[u8], nodename: &[u8]) -> bool {
    let first = |h: &[u8]| h.split(|&b| b == b'.').next().unwrap_or(h).to_vec();
    named.eq_ignore_ascii_case(b"localhost")
        || named.eq_ignore_ascii_case(nodename)
        || (!named.contains(&b'.') && first(nodename).eq_ignore_ascii_case(named))
        || (!nodename.contains(&b'.') && first(named).eq_ignore_ascii_case(nodename))
}

/// Check 4's PID-reuse rule: a process that started after the file was
/// last written cannot have written it. A margin keeps near-ties (clock
/// granularity) on the safe side: alive.
pub fn started_after(process_start_ns: i128, file_mtime_ns: i128) -> bool {
    const MARGIN_NS: i128 = 1_000_000_000;
    process_start_ns > file_mtime_ns + MARGIN_NS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_status_decoding() {
        assert_eq!(ExitKind::from_wait_status(0), ExitKind::Clean);
        assert_eq!(ExitKind::from_wait_status(3 << 8), ExitKind::Failed(3));
        assert_eq!(
            ExitKind::from_wait_status(9),
            ExitKind::Killed {
                signal: 9,
                core: false
            }
        );
        assert_eq!(
            ExitKind::from_wait_status(6 | 0x80),
            ExitKind::Killed {
                signal: 6,
                core: true
            }
        );
        assert_eq!(
            ExitKind::from_wait_status(9).to_string(),
            "killed by SIGKILL"
        );
        assert_eq!(
            ExitKind::from_wait_status(6 | 0x80).to_string(),
            "killed by SIGABRT (core dumped)"
        );
        assert_eq!(
            ExitKind::from_wait_status(1 << 8).to_string(),
            "exited with status 1"
        );
    }

    fn facts() -> Facts {
        Facts {
            same_inode: true,
            open_by: None,
            locked_by: None,
            pid: PidInFile::NoPid,
            unexplained: None,
        }
    }

    #[test]
    fn judge_in_order() {
        assert_eq!(judge(&facts()), Ok(()));
        assert_eq!(
            judge(&Facts {
                pid: PidInFile::Dead(5),
                ..facts()
            }),
            Ok(())
        );
        assert_eq!(
            judge(&Facts {
                pid: PidInFile::Reused(5),
                ..facts()
            }),
            Ok(())
        );
        assert_eq!(
            judge(&Facts {
                pid: PidInFile::Alive(5),
                ..facts()
            }),
            Err(Keep::PidAlive(5))
        );
        assert_eq!(
            judge(&Facts {
                pid: PidInFile::Uninterpretable,
                ..facts()
            }),
            Err(Keep::PidUninterpretable)
        );
        let all_bad = Facts {
            same_inode: false,
            open_by: Some(1),
            locked_by: Some(2),
            pid: PidInFile::Alive(3),
            unexplained: Some(Unexplained::Refs(1)),
        };
        assert_eq!(judge(&all_bad), Err(Keep::Replaced));
        assert_eq!(
            judge(&Facts {
                same_inode: true,
                ..all_bad.clone()
            }),
            Err(Keep::OpenBy(1))
        );
        assert_eq!(
            judge(&Facts {
                same_inode: true,
                open_by: None,
                ..all_bad
            }),
            Err(Keep::LockedBy(2))
        );
        // a live PID moves ownership on; only a dead one leaves the
        // unexplained references to keep it
        assert_eq!(
            judge(&Facts {
                same_inode: true,
                open_by: None,
                locked_by: None,
                ..all_bad.clone()
            }),
            Err(Keep::PidAlive(3))
        );
        assert_eq!(
            judge(&Facts {
                same_inode: true,
                open_by: None,
                locked_by: None,
                pid: PidInFile::Dead(3),
                ..all_bad
            }),
            Err(Keep::Unexplained(Unexplained::Refs(1)))
        );
        assert!(Keep::Unexplained(Unexplained::Refs(1))
            .to_string()
            .contains("a descriptor in flight?"));
    }

    #[test]
    fn new_owner() {
        assert_eq!(Keep::OpenBy(7).new_owner(), Some(7));
        assert_eq!(Keep::LockedBy(0).new_owner(), None);
        assert_eq!(Keep::Replaced.new_owner(), None);
    }

    #[test]
    fn pid_lines() {
        assert_eq!(parse_pid_line(b"1234\n"), Some(1234));
        assert_eq!(parse_pid_line(b"  1234  \nhost\n"), Some(1234));
        assert_eq!(parse_pid_line(b"1234"), Some(1234));
        assert_eq!(parse_pid_line(b""), None);
        assert_eq!(parse_pid_line(b"0\n"), None);
        assert_eq!(parse_pid_line(b"-5\n"), None);
        assert_eq!(parse_pid_line(b"12ab\n"), None);
        assert_eq!(parse_pid_line(b"pid 12\n"), None);
        assert_eq!(parse_pid_line(b"99999999999999\n"), None);
        assert_eq!(parse_pid_line(b"\xff\xfe"), None);
    }

    #[test]
    fn symlink_owners() {
        assert_eq!(parse_symlink_owner(b"me@host.4242:1700000000"), Some(4242));
        assert_eq!(parse_symlink_owner(b"me@a.b.example.77:1"), Some(77));
        assert_eq!(parse_symlink_owner(b"me@host.77"), Some(77));
        assert_eq!(parse_symlink_owner(b"me@host:77"), None);
        assert_eq!(parse_symlink_owner(b"me@host.x7:1"), None);
        assert_eq!(parse_symlink_owner(b"/some/where/file.txt"), None);
        assert_eq!(parse_symlink_owner(b""), None);
    }

    #[test]
    fn owner_records() {
        let owner = |pid, host: Option<&'static [u8]>| Content::Owner { pid, host };
        // empty
        assert_eq!(parse_owner_record(b""), Content::Empty);
        assert_eq!(parse_owner_record(b" \n\t\n"), Content::Empty);
        // a PID
        assert_eq!(parse_owner_record(b"4242\n"), owner(4242, None));
        assert_eq!(parse_owner_record(b"  4242  "), owner(4242, None));
        // host:PID
        assert_eq!(
            parse_owner_record(b"build-7.example.org:4242\n"),
            owner(4242, Some(b"build-7.example.org"))
        );
        // key=value
        assert_eq!(
            parse_owner_record(b"pid=4242\nhost=web1\nstarted=2026-01-01T00:00:00Z\n"),
            owner(4242, Some(b"web1"))
        );
        assert_eq!(parse_owner_record(b"PID = 17"), owner(17, None));
        // JSON
        assert_eq!(
            parse_owner_record(br#"{"pid": 4242, "hostname": "web1", "since": 1700000000}"#),
            owner(4242, Some(b"web1"))
        );
        assert_eq!(parse_owner_record(br#"{"pid":"99"}"#), owner(99, None));
    }

    #[test]
    fn data_is_no_owner_record() {
        let other = |b: &[u8]| assert_eq!(parse_owner_record(b), Content::Other, "{b:?}");
        // Gopkg.lock (TOML), rebar.lock (Erlang terms), requirements.lock (pins)
        other(b"[[projects]]\n  name = \"github.com/pkg/errors\"\n  version = \"v0.8.0\"\n");
        other(b"{\"1.2.0\",\n[{<<\"cowlib\">>,{pkg,<<\"cowlib\">>,<<\"2.12.1\">>},0}]}.\n");
        other(b"# generated by rye\nanyio==4.2.0\ncertifi==2023.5.7\n");
        // a PID with anything after it, or two PIDs
        other(b"4242\nworker\n");
        other(b"4242\n4243\n");
        other(b"4242 extra");
        // no pid, a bad pid, two pids
        other(b"host=web1\n");
        other(b"pid=0\n");
        other(b"pid=12x\n");
        other(b"pid=1\npid=2\n");
        other(b"0\n");
        other(b"-1\n");
        other(b"99999999999\n");
        other(b"web 1:42");
        // JSON that is no flat record with a pid
        other(br#"{"pid": 4242, "deps": {"a": 1}}"#);
        other(br#"{"pid": [1]}"#);
        other(br#"{"pid": -3}"#);
        other(br#"{"name": "x"}"#);
        other(br#"[4242]"#);
        other(br#"{"pid": 4242"#);
        // not text, too long
        other(b"\xff\xfe4242");
        other(b"42\x0042");
        let mut long = b"pid=1\n".to_vec();
        long.extend(std::iter::repeat_n(b'#', OWNER_RECORD_MAX));
        other(&long);
        other(b"key with spaces=1\npid=4\n");
    }

    #[test]
    fn hosts() {
        assert!(same_host(b"web1", b"web1"));
        assert!(same_host(b"WEB1", b"web1"));
        assert!(same_host(b"web1", b"web1.example.org"));
        assert!(same_host(b"web1.example.org", b"web1"));
        assert!(same_host(b"localhost", b"web1"));
        assert!(!same_host(b"web2", b"web1"));
        assert!(!same_host(b"web1.other.org", b"web1.example.org"));
        assert!(!same_host(b"web", b"web1"));
    }

    #[test]
    fn reuse_margin() {
        let s = 1_000_000_000i128;
        assert!(started_after(10 * s, 5 * s));
        assert!(!started_after(5 * s, 10 * s));
        assert!(!started_after(5 * s + s / 2, 5 * s)); // within the margin: alive
    }
}
