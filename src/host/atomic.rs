//! The one way the agent writes a file (status, metrics textfile, sweep
//! state, any future one): a new temporary file in the same directory,
//! created `O_CREAT|O_EXCL` (which never follows a symlink) under an
//! unpredictable name, filled, flushed to disk, then renamed over the final
//! name. rename(2) replaces whatever is at the final name, a symlink
//! included, and never follows it; the temporary name cannot be guessed,
//! so nobody can plant anything there. A directory is never created here.

use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Replace `path` with `content`, readable by everyone (0644: the status
/// file and the metrics textfile are read by non-root tools).
pub fn write(path: &Path, content: &[u8]) -> io::Result<()> {
    write_mode(path, content, 0o644)
}

/// The same, with the file mode given.
pub fn write_mode(path: &Path, content: &[u8], mode: u32) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    // tempfile: O_CREAT|O_EXCL|O_CLOEXEC, mode 0600, a random name, and
    // the file removed again if anything below fails
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .rand_bytes(12)
        .tempfile_in(dir)?;
    tmp.write_all(content)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Create `dir` (mode 0755) only when it is one of the agent's default
/// directories; any other directory must exist already.
pub fn ensure_default_dir(dir: &Path, defaults: &[&Path]) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if defaults.contains(&dir) {
        std::fs::DirBuilder::new()
            .mode(0o755)
            .recursive(true)
            .create(dir)
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{}: no such directory", dir.display()),
        ))
    }
}

use std::os::unix::fs::DirBuilderExt;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn replaces_a_symlink_never_follows_it() {
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let out = t.path().join("status.json");
        std::os::unix::fs::symlink(&victim, &out).unwrap();
        write(&out, b"{}").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::read(&out).unwrap(), b"{}");
        assert!(!std::fs::symlink_metadata(&out).unwrap().is_symlink());
        assert_eq!(std::fs::metadata(&out).unwrap().mode() & 0o777, 0o644);
        // nothing else left behind
        let names: Vec<_> = std::fs::read_dir(t.path()).unwrap().collect();
        assert_eq!(names.len(), 2);
    }

    #[test]
    fn planted_names_of_the_old_scheme_are_left_alone() {
        // the old writers used ".NAME.PID.tmp" and "NAME.tmp-PID"
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let pid = std::process::id();
        for planted in [format!(".m.prom.{pid}.tmp"), format!("m.prom.tmp-{pid}")] {
            std::os::unix::fs::symlink(&victim, t.path().join(planted)).unwrap();
        }
        write(&t.path().join("m.prom"), b"x 1\n").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    }

    #[test]
    fn directories_are_created_only_when_default() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a/b");
        assert!(ensure_default_dir(&d, &[]).is_err());
        assert!(!d.exists());
        ensure_default_dir(&d, &[d.as_path()]).unwrap();
        assert!(d.is_dir());
        assert!(write(&t.path().join("nodir/x"), b"").is_err());
    }
}
