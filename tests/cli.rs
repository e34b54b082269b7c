//! The command line contract: bad input exits 2 with one line before
//! anything loads; the binary is static and self-describing.

mod common;

use std::process::{Command, Output};

use common::*;

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("running the binary")
}

/// Our own usage errors: one line, "eghostbuster: …", exit 2.
fn assert_usage_error(args: &[&str], mention: &str) {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{args:?}: not one line: {err:?}"
    );
    assert!(err.starts_with("eghostbuster: "), "{err}");
    assert!(
        err.contains(mention),
        "{args:?}: {err:?} does not mention {mention:?}"
    );
    assert!(!err.contains(" ready"), "{err}");
}

/// Errors clap finds while parsing: its whole message (the suggestion,
/// the allowed values, the usage line), its first line naming the
/// problem, exit 2.
fn assert_clap_error(args: &[&str], mention: &str) {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.starts_with("error: "), "{err}");
    let first = err.lines().next().unwrap_or("");
    assert!(
        first.contains(mention),
        "{args:?}: {first:?} does not mention {mention:?}"
    );
    assert!(err.contains("--help"), "{err}");
}

#[test]
fn bad_flags_exit_2_with_one_line() {
    assert_clap_error(&["run", "--bogus"], "--bogus");
    assert_clap_error(&["run", "--path", "relative/dir"], "not an absolute path");
    assert_clap_error(&["run", "--path", "/tmp/../etc"], "'..'");
    assert_usage_error(&["run", "--include", "[abc"], "bad glob");
    assert_usage_error(&["run", "--exclude", "a{b"], "bad glob");
    assert_usage_error(&["run", "--include", "sub/*.lock"], "bad glob");
    assert_clap_error(&["run", "--ring-buffer-size", "3M"], "power of two");
    assert_clap_error(&["run", "--max-owners", "0"], "--max-owners");
    assert_clap_error(&["run", "--max-locks", "lots"], "--max-locks");
    assert_clap_error(&["frobnicate"], "frobnicate");
    assert_usage_error(&[], "subcommand");
}

#[test]
fn help_and_version() {
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("run"), "{text}");
    let out = run(&["run", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--path",
        "--include",
        "--exclude",
        "--non-exclusive",
        "--dry-run",
        "--no-locks",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
    let out = run(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn unprivileged_run_exits_2_naming_what_is_missing() {
    if !privileged() {
        return;
    }
    let dir = test_dir("unpriv");
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(BIN)
        .args(["run", "--path", dir.path().to_str().unwrap()])
        .output()
        .expect("setpriv (util-linux)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err:?}");
    assert!(
        err.contains("must run as root") && err.contains("CAP_BPF"),
        "{err}"
    );
}

#[test]
fn binary_is_static() {
    let out = Command::new("ldd").arg(BIN).output().expect("ldd");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("not a dynamic executable") || text.contains("statically linked"),
        "ldd: {text}"
    );
    assert!(!text.contains("=>"), "shared library dependencies: {text}");
    // and no program interpreter in the ELF headers
    let elf = std::fs::read(BIN).unwrap();
    assert!(!elf
        .windows(b"/lib64/ld-linux".len())
        .any(|w| w == b"/lib64/ld-linux"));
}
