//! Parsers of single flag values: each rejects what is wrong with one line
//! naming the fix, before anything loads.

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// `--path` must be absolute; `.`/`..` are refused rather than guessed at.
/// An existing prefix is canonicalized, because the kernel reports real paths.
pub fn parse_scope(s: &str) -> Result<PathBuf, String> {
    let p = Path::new(s);
    if !p.is_absolute() {
        return Err(format!("{s:?} is not an absolute path"));
    }
    if p.components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(format!("{s:?} contains '.' or '..'"));
    }
    Ok(std::fs::canonicalize(p).unwrap_or_else(|_| p.components().collect()))
}

/// Where no status file may be: kernel and device filesystems (a
/// `/proc/version` or `/dev/zero` is not a status file, and writing there
/// is not what anyone means).
const NOT_FOR_FILES: [&str; 3] = ["/proc", "/sys", "/dev"];

/// `--status-file`: an absolute file path outside /proc, /sys and /dev,
/// that is not a directory; its directory must exist (only the default
/// one is created, at start).
pub fn parse_status_file(s: &str) -> Result<PathBuf, String> {
    parse_scope(s)?;
    let given = Path::new(s);
    let (Some(dir), Some(name)) = (given.parent(), given.file_name()) else {
        return Err(format!("{s:?} is not a file path"));
    };
    if s.ends_with('/') {
        return Err(format!("{s:?} is not a file path"));
    }
    // the directory canonical, the name as given: a symlink planted at the
    // name is replaced by the status file, never followed (issue 11)
    let p = parse_scope(&dir.to_string_lossy())
        .map(|d| d.join(name))
        .unwrap_or_else(|_| given.to_path_buf());
    if let Some(d) = NOT_FOR_FILES.iter().find(|d| p.starts_with(d)) {
        return Err(format!("{s:?} is in {d}, not a place for a status file"));
    }
    if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
        return Err(format!("{s:?} is a directory"));
    }
    Ok(p)
}

/// `--metrics-listen`: `HOST:PORT`, `[V6]:PORT`, or a bare port on loopback.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .map_err(|_| format!("{s:?} is not an address (e.g. 127.0.0.1:9633, [::1]:9633, 9633)"))
}

/// `--metrics-textfile`: an absolute path in an existing directory.
pub(super) fn parse_textfile(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    if !p.is_absolute() || p.file_name().is_none() {
        return Err(format!("{s:?} is not an absolute file path"));
    }
    match p.parent() {
        Some(d) if d.is_dir() => Ok(p),
        _ => Err(format!("{s:?}: its directory does not exist")),
    }
}

/// `--state-file`: an absolute file path without '.'/'..' components.
pub(super) fn parse_state_file(s: &str) -> Result<PathBuf, String> {
    let p = Path::new(s);
    if !p.is_absolute() || s.ends_with('/') || p.file_name().is_none() {
        return Err(format!("{s:?} is not an absolute file path"));
    }
    if p.components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(format!("{s:?} contains '.' or '..'"));
    }
    Ok(p.to_path_buf())
}

/// Durations, in jiff's "friendly" format: `500ms`, `90s`, `1m30s`,
/// `1.5m`, `2h`, `1d` (a day is 24 hours here). A bare number is refused
/// with the fix spelled out: `5` could mean seconds or milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!(
            "{s:?} has no unit: write {t}s for seconds (or {t}ms, {t}m, {t}h)"
        ));
    }
    let bad = || format!("{s:?} is not a duration (e.g. 500ms, 90s, 1m30s, 2h, 1d)");
    let span: jiff::Span = t.parse().map_err(|_| bad())?;
    let d = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|_| format!("{s:?}: use units up to days (weeks, months, years vary)"))?;
    if d.is_negative() {
        return Err(format!("{s:?} is negative"));
    }
    Duration::try_from(d).map_err(|_| bad())
}

/// Sizes: bytes with an optional K/M/G suffix (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 65536, 256K, 4M)"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

pub(super) fn parse_ring_size(s: &str) -> Result<u32, String> {
    let n = parse_size(s)?;
    if !(65536..=(1 << 30)).contains(&n) || !n.is_power_of_two() {
        return Err(format!(
            "{s:?}: the ring buffer size must be a power of two from 64K to 1G"
        ));
    }
    Ok(n as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = |s: &str, d: Duration| assert_eq!(parse_duration(s), Ok(d), "{s}");
        ok("500ms", Duration::from_millis(500));
        ok("5s", Duration::from_secs(5));
        ok("90s", Duration::from_secs(90));
        ok("1m30s", Duration::from_secs(90));
        ok("1.5m", Duration::from_secs(90));
        ok("2m", Duration::from_secs(120));
        ok("1h", Duration::from_secs(3600));
        ok("2h", Duration::from_secs(7200));
        ok("1d", Duration::from_secs(86400));
        ok("1.5s", Duration::from_millis(1500));
        for bad in ["", "s", "5x", "-1s", "1mo", "99999999999999999999s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        let e = parse_duration("7").unwrap_err();
        assert!(e.contains("no unit") && e.contains("7s"), "{e}");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4M"), Ok(4 << 20));
        assert_eq!(parse_size("256K"), Ok(256 << 10));
        assert_eq!(parse_size("65536"), Ok(65536));
        assert!(parse_size("4Q").is_err());
        assert!(parse_ring_size("1M").is_ok());
        assert!(parse_ring_size("3M").is_err());
        assert!(parse_ring_size("4K").is_err());
    }

    #[test]
    fn scopes() {
        assert!(parse_scope("relative/dir").is_err());
        assert!(parse_scope("/tmp/../etc").is_err());
        assert_eq!(
            parse_scope("/nonexistent-eghostbuster//x/").unwrap(),
            PathBuf::from("/nonexistent-eghostbuster/x")
        );
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen("9633").unwrap().to_string(), "127.0.0.1:9633");
        assert_eq!(parse_listen("[::1]:80").unwrap().to_string(), "[::1]:80");
        assert_eq!(parse_listen("0.0.0.0:9").unwrap().to_string(), "0.0.0.0:9");
        assert!(parse_listen("localhost").is_err());
        assert!(parse_listen("99999").is_err());
        assert!(parse_textfile("rel.prom").is_err());
        assert!(parse_textfile("/nonexistent-dir-egb/x.prom").is_err());
        assert!(parse_textfile("/tmp/x.prom").is_ok());
    }

    #[test]
    fn status_files() {
        for bad in [
            "/proc/version",
            "/dev/zero",
            "/sys/kernel/x",
            "rel.json",
            "/tmp/",
            "/tmp",
        ] {
            assert!(parse_status_file(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_status_file("/run/eghostbuster/status.json").is_ok());
    }
}
