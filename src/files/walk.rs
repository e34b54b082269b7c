//! The cron pass's walk of a `--path` tree, for every file class: each
//! entry that `pick` takes, never following a symlink (a linked directory
//! is not entered, a linked file not taken), to a bounded depth.

use std::fs::FileType;
use std::io;
use std::path::{Path, PathBuf};

/// Directory depth the walk goes to under each `--path`.
pub const MAX_DEPTH: usize = 64;

/// Entries under `root` that `pick` takes (by path and file type, as
/// lstat says); directories that cannot be read are reported in `errors`.
pub fn files_under(
    root: &Path,
    pick: &dyn Fn(&Path, &FileType) -> bool,
    out: &mut Vec<PathBuf>,
    errors: &mut Vec<String>,
) {
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                errors.push(format!(
                    "cannot read {}: {e}",
                    crate::host::escape::Esc::path(&dir)
                ));
                continue;
            }
        };
        for entry in entries.flatten() {
            let Ok(ft) = entry.file_type() else { continue };
            let path = entry.path();
            if ft.is_dir() {
                if depth < MAX_DEPTH {
                    stack.push((path, depth + 1));
                }
            } else if pick(&path, &ft) {
                out.push(path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn picks_without_following_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        let _l = std::os::unix::net::UnixListener::bind(root.join("a/b/s.sock")).unwrap();
        std::fs::write(root.join("a/x.pid"), "1\n").unwrap();
        let outside = tempfile::tempdir().unwrap();
        let _o = std::os::unix::net::UnixListener::bind(outside.path().join("o.sock")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("link")).unwrap();
        std::os::unix::fs::symlink(root.join("a/b/s.sock"), root.join("l.sock")).unwrap();
        let mut found = Vec::new();
        let mut errors = Vec::new();
        files_under(root, &|_, ft| ft.is_socket(), &mut found, &mut errors);
        assert_eq!(found, vec![root.join("a/b/s.sock")]);
        assert!(errors.is_empty());
    }
}
