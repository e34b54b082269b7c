//! Which paths are lock files this agent may act on: name patterns, the
//! built-in deny list, user excludes and the `--path` scope. Pure logic.

use std::path::{Path, PathBuf};

use globset::GlobSet;

use crate::files::names::build_sets;
pub use crate::files::names::path_from_bytes;

pub const DEFAULT_INCLUDES: &[&str] = &["*.lock", "*.lck"];

/// Well-known files that end in `.lock` but are not locks: lockfiles of
/// package managers, committed to repositories and rewritten by builds.
/// File-name globs (`requirements*.lock`); each checked against its tool's
/// documentation.
pub const DENY_LIST: &[&str] = &[
    "Cargo.lock",
    "yarn.lock",
    "poetry.lock",
    "Gemfile.lock",
    "composer.lock",
    "flake.lock",
    "Pipfile.lock",
    "pdm.lock",
    "uv.lock",
    "bun.lock",
    "pubspec.lock",
    "mix.lock",
    "Podfile.lock",
    "Package.lock",
    "packages.lock",
    "shard.lock",
    "deno.lock",
    "paket.lock",
    "Berksfile.lock",
    "Puppetfile.lock",
    "Chart.lock",
    "conan.lock",
    "pixi.lock",
    "renv.lock",
    "stack.yaml.lock",
    "MODULE.bazel.lock",
    "gradle.lockfile",
    "pnpm-lock.yaml",
    "package-lock.json",
    // Go: dep (its LockName), Glide
    "Gopkg.lock",
    "glide.lock",
    // Erlang: rebar3
    "rebar.lock",
    // Python: Rye (requirements.lock, requirements-dev.lock), dmenv; Helm 2
    // charts (requirements.lock)
    "requirements*.lock",
    // Helmfile (helmfile deps), Devbox, Nimble, Spago (PureScript)
    "helmfile.lock",
    "devbox.lock",
    "nimble.lock",
    "spago.lock",
];

/// The kernel's name pre-filter holds at most this many suffixes of at most
/// `MAX_SUFFIX_LEN` bytes (bpf/locks.bpf.c: MAX_SUFFIXES, SUFFIX_LEN - 0).
pub const MAX_SUFFIXES: usize = 8;
pub const MAX_SUFFIX_LEN: usize = 16;
/// And at most this many name prefixes (MAX_PREFIXES, PREFIX_LEN).
pub const MAX_PREFIXES: usize = 4;
pub const MAX_PREFIX_LEN: usize = 16;

/// The kernel's name pre-filter: a name passes when it ends with one of
/// the suffixes or starts with one of the prefixes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KernelFilter {
    pub suffixes: Vec<Vec<u8>>,
    pub prefixes: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// A lock name, in scope, not denied: the checks decide.
    Candidate,
    /// In scope but on the deny list or excluded: never removed.
    Denied,
    Excluded,
    /// Not a lock name, or outside every `--path`: none of our business.
    NotLockName,
    OutOfScope,
}

#[derive(Debug)]
pub struct LockMatcher {
    include_name: GlobSet,
    include_path: GlobSet,
    exclude_name: GlobSet,
    exclude_path: GlobSet,
    include_globs: Vec<String>,
    deny: GlobSet,
    scope: Vec<PathBuf>,
}

impl LockMatcher {
    pub fn new(
        includes: &[String],
        excludes: &[String],
        scope: &[PathBuf],
    ) -> Result<Self, String> {
        let mut all: Vec<String> = DEFAULT_INCLUDES.iter().map(|s| s.to_string()).collect();
        all.extend(includes.iter().cloned());
        let (include_name, include_path) = build_sets(&all)?;
        let (exclude_name, exclude_path) = build_sets(excludes)?;
        let deny: Vec<String> = DENY_LIST.iter().map(|s| s.to_string()).collect();
        let (deny, _) = build_sets(&deny)?;
        Ok(Self {
            include_name,
            include_path,
            exclude_name,
            exclude_path,
            include_globs: all,
            deny,
            scope: scope.to_vec(),
        })
    }

    pub fn in_scope(&self, path: &Path) -> bool {
        self.scope.is_empty() || self.scope.iter().any(|s| path.starts_with(s))
    }

    pub fn classify(&self, path: &Path) -> Match {
        let Some(name) = path.file_name() else {
            return Match::NotLockName;
        };
        if !self.in_scope(path) {
            return Match::OutOfScope;
        }
        if !(self.include_name.is_match(name) || self.include_path.is_match(path)) {
            return Match::NotLockName;
        }
        if self.deny.is_match(name) {
            return Match::Denied;
        }
        if self.exclude_name.is_match(name) || self.exclude_path.is_match(path) {
            return Match::Excluded;
        }
        Match::Candidate
    }

    /// Literal name suffixes the kernel may pre-filter on (every include
    /// glob must end in one), and literal prefixes for the globs that have
    /// no literal tail (`.#*`, `LOCK*`). `None` when some glob has neither
    /// (`*`), or there are too many: then the kernel sends every creation.
    pub fn kernel_filter(&self) -> Option<KernelFilter> {
        let special = |c: &u8| matches!(c, b'*' | b'?' | b'[' | b']' | b'{' | b'}' | b'\\');
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut prefixes: Vec<Vec<u8>> = Vec::new();
        for g in &self.include_globs {
            let base = g.rsplit('/').next().unwrap_or(g).as_bytes();
            let start = base.iter().rposition(special).map_or(0, |i| i + 1);
            let mut tail = &base[start..];
            if tail.is_empty() {
                let end = base.iter().position(special).unwrap_or(base.len());
                let head = &base[..end.min(MAX_PREFIX_LEN)];
                if head.is_empty() {
                    return None;
                }
                if !prefixes.iter().any(|p| p.as_slice() == head) {
                    prefixes.push(head.to_vec());
                }
                continue;
            }
            if tail.len() > MAX_SUFFIX_LEN {
                tail = &tail[tail.len() - MAX_SUFFIX_LEN..];
            }
            if !out.iter().any(|s| s.as_slice() == tail) {
                out.push(tail.to_vec());
            }
        }
        // A suffix that ends with another makes the longer one redundant.
        out.sort_by_key(|s| s.len());
        let mut kept: Vec<Vec<u8>> = Vec::new();
        for s in out {
            if !kept.iter().any(|k| s.ends_with(k)) {
                kept.push(s);
            }
        }
        (kept.len() <= MAX_SUFFIXES && prefixes.len() <= MAX_PREFIXES).then_some(KernelFilter {
            suffixes: kept,
            prefixes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(inc: &[&str], exc: &[&str], scope: &[&str]) -> LockMatcher {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let scope: Vec<PathBuf> = scope.iter().map(PathBuf::from).collect();
        LockMatcher::new(&s(inc), &s(exc), &scope).unwrap()
    }

    #[test]
    fn default_patterns_and_deny_list() {
        let lm = m(&[], &[], &[]);
        assert_eq!(
            lm.classify(Path::new("/repo/.git/index.lock")),
            Match::Candidate
        );
        assert_eq!(lm.classify(Path::new("/var/db/db.lck")), Match::Candidate);
        assert_eq!(lm.classify(Path::new("/src/Cargo.lock")), Match::Denied);
        assert_eq!(lm.classify(Path::new("/src/yarn.lock")), Match::Denied);
        for name in [
            "Gopkg.lock",
            "glide.lock",
            "rebar.lock",
            "requirements.lock",
            "requirements-dev.lock",
            "helmfile.lock",
            "devbox.lock",
            "nimble.lock",
            "spago.lock",
            "pdm.lock",
            "pixi.lock",
            "deno.lock",
        ] {
            let p = PathBuf::from("/src").join(name);
            assert_eq!(lm.classify(&p), Match::Denied, "{name}");
        }
        // names are matched whole: a lock that only contains one is a lock
        assert_eq!(
            lm.classify(Path::new("/src/my-rebar.lock")),
            Match::Candidate
        );
        assert_eq!(
            lm.classify(Path::new("/src/requirements")),
            Match::NotLockName
        );
        assert_eq!(lm.classify(Path::new("/src/lock")), Match::NotLockName);
        assert_eq!(lm.classify(Path::new("/src/x.locked")), Match::NotLockName);
        assert_eq!(lm.classify(Path::new("/")), Match::NotLockName);
    }

    #[test]
    fn scope_is_by_component() {
        let lm = m(&[], &[], &["/tmp/a"]);
        assert_eq!(lm.classify(Path::new("/tmp/a/x.lock")), Match::Candidate);
        assert_eq!(
            lm.classify(Path::new("/tmp/a/b/c/x.lock")),
            Match::Candidate
        );
        assert_eq!(lm.classify(Path::new("/tmp/ab/x.lock")), Match::OutOfScope);
        assert_eq!(lm.classify(Path::new("/tmp/x.lock")), Match::OutOfScope);
    }

    #[test]
    fn includes_and_excludes() {
        let lm = m(&["*.pid", "/run/**/LOCK"], &["*.keep.lock", "/srv/**"], &[]);
        assert_eq!(lm.classify(Path::new("/x/app.pid")), Match::Candidate);
        assert_eq!(lm.classify(Path::new("/run/db/LOCK")), Match::Candidate);
        assert_eq!(lm.classify(Path::new("/tmp/LOCK")), Match::NotLockName);
        assert_eq!(lm.classify(Path::new("/x/a.keep.lock")), Match::Excluded);
        assert_eq!(lm.classify(Path::new("/srv/data/a.lock")), Match::Excluded);
        // '*' does not cross '/'
        let lm = m(&[], &["/srv/*"], &[]);
        assert_eq!(lm.classify(Path::new("/srv/a/b.lock")), Match::Candidate);
    }

    #[test]
    fn bad_globs_are_errors() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(LockMatcher::new(&s(&["[abc"]), &[], &[]).is_err());
        assert!(LockMatcher::new(&[], &s(&["a{b"]), &[]).is_err());
        assert!(LockMatcher::new(&s(&[""]), &[], &[]).is_err());
        assert!(LockMatcher::new(&s(&["relative/*.lock"]), &[], &[]).is_err());
    }

    #[test]
    fn kernel_suffixes() {
        let sfx = |lm: LockMatcher| lm.kernel_filter().map(|f| f.suffixes);
        let lm = m(&[], &[], &[]);
        assert_eq!(sfx(lm), Some(vec![b".lck".to_vec(), b".lock".to_vec()]));
        let lm = m(&["*.pid", "/run/**/db.lock"], &[], &[]);
        // "db.lock" is covered by ".lock"
        assert_eq!(
            sfx(lm),
            Some(vec![b".lck".to_vec(), b".pid".to_vec(), b".lock".to_vec()])
        );
        assert_eq!(m(&["*"], &[], &[]).kernel_filter(), None);
        let long = sfx(m(&["*.a-very-long-suffix-indeed"], &[], &[])).unwrap();
        assert!(long.iter().all(|s| s.len() <= MAX_SUFFIX_LEN));
        let many: Vec<String> = (0..9).map(|i| format!("*.x{i}")).collect();
        let refs: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
        assert_eq!(m(&refs, &[], &[]).kernel_filter(), None);
    }

    #[test]
    fn kernel_prefixes() {
        // editor locks: no literal tail, a literal head
        let f = m(&[".#*", "LOCK*", "/srv/**/.#*"], &[], &[])
            .kernel_filter()
            .unwrap();
        assert_eq!(f.prefixes, vec![b".#".to_vec(), b"LOCK".to_vec()]);
        assert_eq!(f.suffixes, vec![b".lck".to_vec(), b".lock".to_vec()]);
        let many: Vec<String> = (0..5).map(|i| format!("p{i}*")).collect();
        let refs: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
        assert_eq!(m(&refs, &[], &[]).kernel_filter(), None);
    }
}
