//! Which paths a file class may act on, shared by every file class: shell
//! globs (a glob without '/' matches the file name, one starting with '/'
//! or '**' the full path), user excludes, and the `--path` scope. Pure.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

fn glob(pattern: &str) -> Result<Glob, String> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| format!("bad glob {pattern:?}: {}", e.kind()))
}

/// Split patterns into name globs (no '/') and full-path globs.
pub fn build_sets(patterns: &[String]) -> Result<(GlobSet, GlobSet), String> {
    let mut names = GlobSetBuilder::new();
    let mut paths = GlobSetBuilder::new();
    for p in patterns {
        if p.is_empty() {
            return Err("empty glob".into());
        }
        if p.contains('/') {
            if !p.starts_with('/') && !p.starts_with("**") {
                return Err(format!(
                    "bad glob {p:?}: a glob with '/' matches the full path and must start with '/' or '**'"
                ));
            }
            paths.add(glob(p)?);
        } else {
            names.add(glob(p)?);
        }
    }
    let done = |b: GlobSetBuilder| b.build().map_err(|e| format!("bad glob: {e}"));
    Ok((done(names)?, done(paths)?))
}

/// A path from raw kernel bytes.
pub fn path_from_bytes(b: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(b))
}

/// Where a path stands for a file class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// In scope, named as the class's files are, not excluded.
    Candidate,
    /// In scope and named so, but `--exclude` says never touch it.
    Excluded,
    /// Not named as the class's files are (its patterns).
    OtherName,
    /// Outside every `--path`.
    OutOfScope,
}

/// The names a file class acts on: its patterns (none: any name), the
/// user's excludes, and the `--path` scope (empty: the whole host).
#[derive(Debug)]
pub struct Names {
    /// None: every name.
    include: Option<(GlobSet, GlobSet)>,
    include_globs: Vec<String>,
    exclude: (GlobSet, GlobSet),
    scope: Vec<PathBuf>,
}

impl Names {
    /// `include`: None for a class whose files have any name.
    pub fn new(
        include: Option<&[String]>,
        excludes: &[String],
        scope: &[PathBuf],
    ) -> Result<Self, String> {
        Ok(Names {
            include: include.map(build_sets).transpose()?,
            include_globs: include.map(<[String]>::to_vec).unwrap_or_default(),
            exclude: build_sets(excludes)?,
            scope: scope.to_vec(),
        })
    }

    pub fn in_scope(&self, path: &Path) -> bool {
        self.scope.is_empty() || self.scope.iter().any(|s| path.starts_with(s))
    }

    pub fn scope(&self) -> &[PathBuf] {
        &self.scope
    }

    pub fn classify(&self, path: &Path) -> Standing {
        let Some(name) = path.file_name() else {
            return Standing::OtherName;
        };
        if !self.in_scope(path) {
            return Standing::OutOfScope;
        }
        if let Some((names, paths)) = &self.include {
            if !(names.is_match(name) || paths.is_match(path)) {
                return Standing::OtherName;
            }
        }
        let (names, paths) = &self.exclude;
        if names.is_match(name) || paths.is_match(path) {
            return Standing::Excluded;
        }
        Standing::Candidate
    }

    /// The literal name suffixes a kernel pre-filter may test (every
    /// include glob ends in one; longer ones covered by a shorter one are
    /// dropped), at most `max` of at most `max_len` bytes. None when the
    /// class takes any name, a glob has no literal tail (`pid*`), or there
    /// are too many: then the kernel must pass every name.
    pub fn kernel_suffixes(&self, max: usize, max_len: usize) -> Option<Vec<Vec<u8>>> {
        self.include.as_ref()?;
        let special = |c: &u8| matches!(c, b'*' | b'?' | b'[' | b']' | b'{' | b'}' | b'\\');
        let mut out: Vec<Vec<u8>> = Vec::new();
        for g in &self.include_globs {
            let base = g.rsplit('/').next().unwrap_or(g).as_bytes();
            let start = base.iter().rposition(special).map_or(0, |i| i + 1);
            let mut tail = &base[start..];
            if tail.is_empty() {
                return None;
            }
            if tail.len() > max_len {
                tail = &tail[tail.len() - max_len..];
            }
            if !out.iter().any(|s| s.as_slice() == tail) {
                out.push(tail.to_vec());
            }
        }
        out.sort_by_key(|s| s.len());
        let mut kept: Vec<Vec<u8>> = Vec::new();
        for s in out {
            if !kept.iter().any(|k| s.ends_with(k)) {
                kept.push(s);
            }
        }
        (kept.len() <= max).then_some(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn any_name_within_scope() {
        let n = Names::new(None, &s(&["*.keep", "/srv/**"]), &[PathBuf::from("/run/a")]).unwrap();
        assert_eq!(n.classify(Path::new("/run/a/x.sock")), Standing::Candidate);
        assert_eq!(n.classify(Path::new("/run/a/b/c")), Standing::Candidate);
        assert_eq!(
            n.classify(Path::new("/run/ab/x.sock")),
            Standing::OutOfScope
        );
        assert_eq!(n.classify(Path::new("/run/a/y.keep")), Standing::Excluded);
        assert_eq!(n.classify(Path::new("/")), Standing::OtherName);
        assert_eq!(n.kernel_suffixes(8, 16), None);
        let host = Names::new(None, &[], &[]).unwrap();
        assert_eq!(host.classify(Path::new("/x")), Standing::Candidate);
    }

    #[test]
    fn patterns_and_suffixes() {
        let n = Names::new(Some(&s(&["*.pid", "/run/**/pid"])), &s(&["/srv/**"]), &[]).unwrap();
        assert_eq!(n.classify(Path::new("/run/app.pid")), Standing::Candidate);
        assert_eq!(n.classify(Path::new("/run/db/pid")), Standing::Candidate);
        assert_eq!(n.classify(Path::new("/tmp/pid")), Standing::OtherName);
        assert_eq!(n.classify(Path::new("/run/app.pidx")), Standing::OtherName);
        assert_eq!(n.classify(Path::new("/srv/x.pid")), Standing::Excluded);
        assert_eq!(
            n.kernel_suffixes(8, 16),
            Some(vec![b"pid".to_vec()]) // ".pid" ends with "pid"
        );
        let n = Names::new(Some(&s(&["*.pid"])), &[], &[]).unwrap();
        assert_eq!(n.kernel_suffixes(8, 16), Some(vec![b".pid".to_vec()]));
        assert_eq!(
            Names::new(Some(&s(&["pid*"])), &[], &[])
                .unwrap()
                .kernel_suffixes(8, 16),
            None
        );
        assert!(Names::new(Some(&s(&["[x"])), &[], &[]).is_err());
        assert!(Names::new(Some(&s(&["rel/*.pid"])), &[], &[]).is_err());
    }
}
