//! What a lock file's content says about its owner, free of I/O: the PID
//! on its first line, an editor symlink's target, a whole owner record
//! (a PID, `host:PID`, `key=value`, flat JSON), and whether a host named
//! there is this one.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
