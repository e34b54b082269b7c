//! What a PID file is: a file whose whole content is one PID, with an
//! optional newline after it. Anything else — more lines (PostgreSQL's
//! postmaster.pid), blanks, text — is not one and is never touched. Pure.

/// A PID file holds a few bytes: "4194304\n" at most on Linux (pid_max).
pub const MAX_PID_FILE: u64 = 16;

/// What a file's content says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// Nothing written (yet).
    Empty,
    /// Exactly one PID, and at most a newline after it.
    Pid(u32),
    /// Something else: why it is not a PID file.
    NotPid(&'static str),
}

/// Judge `bytes`, the file's first bytes, of a file of `size` bytes.
pub fn parse(bytes: &[u8], size: u64) -> Content {
    if size == 0 && bytes.is_empty() {
        return Content::Empty;
    }
    if size > MAX_PID_FILE || bytes.len() as u64 > MAX_PID_FILE {
        return Content::NotPid("it holds more than a PID");
    }
    let digits = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if digits.is_empty() {
        return Content::NotPid("it holds no PID");
    }
    if digits.contains(&b'\n') {
        return Content::NotPid("it holds more than one line");
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return Content::NotPid("its content is not a number");
    }
    match std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
    {
        Some(p) if p > 0 => Content::Pid(p),
        _ => Content::NotPid("its number is no PID"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(b: &[u8]) -> Content {
        parse(b, b.len() as u64)
    }

    #[test]
    fn one_pid_and_an_optional_newline() {
        assert_eq!(p(b"4242\n"), Content::Pid(4242));
        assert_eq!(p(b"4242"), Content::Pid(4242));
        assert_eq!(p(b"1\n"), Content::Pid(1));
        assert_eq!(p(b""), Content::Empty);
    }

    #[test]
    fn anything_else_is_not_a_pid_file() {
        // PostgreSQL's postmaster.pid: PID, data directory, start time, ...
        let pg = b"4242\n/var/lib/postgresql/15/main\n1700000000\n5432\n";
        assert_eq!(
            parse(&pg[..16], pg.len() as u64),
            Content::NotPid("it holds more than a PID")
        );
        assert_eq!(
            p(b"42\n43\n"),
            Content::NotPid("it holds more than one line")
        );
        assert_eq!(p(b"42\n\n"), Content::NotPid("it holds more than one line"));
        assert_eq!(p(b" 42\n"), Content::NotPid("its content is not a number"));
        assert_eq!(p(b"42 \n"), Content::NotPid("its content is not a number"));
        assert_eq!(p(b"42\r\n"), Content::NotPid("its content is not a number"));
        assert_eq!(p(b"-5\n"), Content::NotPid("its content is not a number"));
        assert_eq!(p(b"0\n"), Content::NotPid("its number is no PID"));
        assert_eq!(p(b"99999999999\n"), Content::NotPid("its number is no PID"));
        assert_eq!(p(b"\n"), Content::NotPid("it holds no PID"));
        assert_eq!(p(b"\xff\n"), Content::NotPid("its content is not a number"));
        // a size that says more than the bytes read
        assert_eq!(
            parse(b"42\n", 4096),
            Content::NotPid("it holds more than a PID")
        );
    }
}
