//! The command line contract: bad input exits 2 with one line before
//! anything loads (durations, ports, status files, the config file and
//! `check-config`); the binary is static and self-describing.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// Our own usage errors: one line, "eghostbuster: …", exit 2.
fn assert_usage_error(args: &[&str], mention: &str) {
    let out = bin(args);
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
    let out = bin(args);
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
    // preallocated in the kernel: 16M slots would be 6 GiB. Scoped, in
    // case a build ever took it: a dry run on a path of its own, no pins
    assert_clap_error(
        &[
            "run",
            "--max-locks",
            "16777216",
            "--dry-run",
            "--no-pin",
            "--path",
            "/run/egb-cli-test-none",
            "--no-sockets",
            "--no-unix-sockets",
            "--no-pid-files",
            "--status-file",
            "/run/egb-cli-test-none/status.json",
        ],
        "--max-locks",
    );
    assert_clap_error(&["frobnicate"], "frobnicate");
    assert_usage_error(&[], "subcommand");
}

#[test]
fn help_and_version() {
    let out = bin(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("run"), "{text}");
    let out = bin(&["run", "--help"]);
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
    let out = bin(&["--version"]);
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

#[test]
fn durations_take_units_and_a_bare_number_names_the_fix() {
    // parsed before anything loads: no root needed to see the refusal
    let o = bin(&["run", "--close-wait-timeout", "5"]);
    clap_usage(&o, "write 5s");
    for good in ["1m30s", "1.5m", "1d", "500ms", "2h"] {
        let o = bin(&[
            "run",
            "--close-wait-timeout",
            good,
            "--no-locks",
            "--no-sockets",
            "--no-unix-sockets",
            "--no-pid-files",
        ]);
        // accepted: the refusal is about the monitors, not the duration
        one_line_usage(&o, "nothing to monitor");
    }
}

#[test]
fn usage_errors_keep_clap_s_whole_message() {
    let o = bin(&["run", "--log-format", "jsn"]);
    let err = err_of(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("possible values") && err.contains("json"),
        "{err}"
    );
    let o = bin(&["run", "--dry-rn"]);
    let err = err_of(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--dry-run"), "no suggestion: {err}");
}

#[test]
fn bad_ports_and_status_files_are_refused_before_anything_starts() {
    clap_usage(&bin(&["run", "--port", "0"]), "--port");
    clap_usage(&bin(&["sweep", "--exclude-port", "0"]), "--exclude-port");
    clap_usage(
        &bin(&["run", "--status-file", "/proc/version"]),
        "not a place for a status file",
    );
    clap_usage(&bin(&["status", "--status-file", "/dev/zero"]), "/dev");
    one_line_usage(
        &bin(&[
            "run",
            "--status-file",
            "/nonexistent-egb/x/y.json",
            "--no-pin",
        ]),
        "no such directory",
    );
    assert!(!Path::new("/nonexistent-egb").exists());
}

#[test]
fn check_config_says_valid_or_names_the_problem() {
    let d = test_dir("checkcfg");
    let good = d.path().join("good.toml");
    write(
        &good,
        "[locks]\npaths = [\"/srv\"]\n[sockets]\nclose_wait_timeout = \"1m30s\"\nports = [8080]\n[log]\nlevel = \"debug\"\n",
    );
    let o = bin(&["check-config", "--config", good.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", err_of(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("valid"));
    // the shipped file: every key commented out, valid
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/eghostbuster.toml");
    let o = bin(&["check-config", "--config", shipped]);
    assert_eq!(o.status.code(), Some(0), "{}", err_of(&o));
    for (text, mention) in [
        ("[locks]\npath = [\"/srv\"]\n", "unknown field"),
        ("[sockets]\nclose_wait_timeout = \"5\"\n", "write 5s"),
        ("[sockets]\nports = [0]\n", "--port"),
        ("[locks]\ninclude = [\"[x\"]\n", "bad glob"),
        ("[run]\nstatus_file = \"/proc/version\"\n", "status file"),
        ("this is not toml", "line 1"),
    ] {
        let bad = d.path().join("bad.toml");
        write(&bad, text);
        let o = bin(&["check-config", "--config", bad.to_str().unwrap()]);
        one_line_usage(&o, mention);
        assert!(err_of(&o).contains("bad.toml"), "{}", err_of(&o));
        // run refuses the same file the same way
        let o = bin(&["run", "--config", bad.to_str().unwrap()]);
        one_line_usage(&o, mention);
    }
    one_line_usage(
        &bin(&["run", "--config", "/nonexistent-egb.toml"]),
        "No such file",
    );
}
