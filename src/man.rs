//! Man pages, generated from the command line definition: eghostbuster(8)
//! and one page per subcommand, eghostbuster-run(8) and so on. clap_mangen
//! renders what the definition knows (name, synopsis, description,
//! options); this module adds what it does not (exit status, environment,
//! files, examples, see also) and the list of commands, so that every page
//! a page names is one that is shipped.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;

use crate::cli::Cli;

/// Section 8: system administration commands (the agent runs as root).
pub const SECTION: &str = "8";

/// One man page: its name (without section) and its roff source.
pub struct Page {
    pub name: String,
    pub roff: Vec<u8>,
}

/// What clap does not know about a command.
struct Extra {
    /// Paragraphs (roff) after the command's own description.
    description: &'static str,
    /// (status, meaning)
    exit: &'static [(&'static str, &'static str)],
    /// (path, what it is)
    files: &'static [(&'static str, &'static str)],
    /// (what it does, command line)
    examples: &'static [(&'static str, &'static str)],
    /// Pages of other packages, e.g. "sv(8)".
    see_also: &'static [&'static str],
}

const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/eghostbuster";

const F_CONFIG: (&str, &str) = (
    crate::agent::config::DEFAULT_CONFIG,
    "the config file: every option of \\fBrun\\fR and \\fBsweep\\fR (\\-\\-config; flags win over it); \\fBrun\\fR reads it again on SIGHUP; \\fBeghostbuster check\\-config\\fR validates it",
);
const F_DEFAULT: (&str, &str) = (
    "/etc/default/eghostbuster",
    "EGHOSTBUSTER_OPTS (for \\fBrun\\fR) and EGHOSTBUSTER_SWEEP_OPTS (for \\fBsweep\\fR), read by the runit service and the systemd units",
);
const F_STATUS: (&str, &str) = (
    crate::agent::status::DEFAULT_STATUS_FILE,
    "the running daemon's status (\\-\\-status\\-file), read by \\fBeghostbuster status\\fR; removed when it stops",
);
const F_PINS: (&str, &str) = (
    DEFAULT_PIN_DIR,
    "the daemon's pinned maps and links (lock table, CLOSE_WAIT stamps), one directory per version (\\-\\-pin\\-dir)",
);
const F_SWEEP_STATE: (&str, &str) = (
    crate::cli::DEFAULT_SWEEP_STATE,
    "the CLOSE_WAIT sockets earlier sweeps saw, and when (\\-\\-state\\-file)",
);
const F_SV: (&str, &str) = (
    "/etc/sv/eghostbuster",
    "the runit service (not enabled on install); its log is in /var/log/runit/eghostbuster",
);
const F_UNITS: (&str, &str) = (
    "/lib/systemd/system/eghostbuster.service",
    "the systemd unit for the daemon (not enabled on install)",
);
const F_TIMER: (&str, &str) = (
    "/lib/systemd/system/eghostbuster-sweep.timer",
    "runs \\fBeghostbuster sweep\\fR every minute when enabled (eghostbuster\\-sweep.service)",
);
const F_CRON: (&str, &str) = (
    "/etc/cron.d/eghostbuster",
    "the same for cron, commented out",
);

fn extra(name: &str) -> Extra {
    match name {
        "eghostbuster" => Extra {
            description: "\
eghostbuster is a host agent built on eBPF. It watches lock files taken \
exclusively (*.lock and *.lck created with O_CREAT|O_EXCL, link, mkdir, \
symlink or a no-replace rename) and the exit of the processes that own them, \
and removes a lock once its owner is dead, after checking that no live \
process still has it open, locked, or named in it. It also destroys TCP \
sockets left idle in CLOSE_WAIT by applications that never close them.
.PP
It never removes what a live process relies on: every check runs before \
a removal, and whatever cannot be checked is kept. \\fB\\-\\-dry\\-run\\fR \
runs every check and changes nothing.",
            exit: &[
                ("0", "success"),
                ("1", "a runtime failure"),
                (
                    "2",
                    "bad usage, or an unmet requirement (not root, no BTF, a kernel feature missing); one line on standard error, nothing touched",
                ),
                ("3", "\\fBstatus\\fR: the daemon does not run"),
            ],
            files: &[
                F_CONFIG,
                F_DEFAULT,
                F_SV,
                F_UNITS,
                F_TIMER,
                F_CRON,
                F_PINS,
                F_STATUS,
                F_SWEEP_STATE,
            ],
            examples: &[
                (
                    "Watch the lock files under /srv and sockets on port 8080, removing nothing yet:",
                    "eghostbuster run \\-\\-path /srv \\-\\-port 8080 \\-\\-dry\\-run",
                ),
                ("What the running daemon tracks:", "eghostbuster status"),
                (
                    "Enable the packaged daemon under systemd, after setting EGHOSTBUSTER_OPTS:",
                    "systemctl enable \\-\\-now eghostbuster.service",
                ),
            ],
            see_also: &["runsv(8)", "sv(8)", "systemctl(1)"],
        },
        "run" => Extra {
            description: "\
The daemon. It loads its BPF programs, logs one line containing \
\\fBready\\fR once every monitor is attached, and then one line per \
decision (removed, kept, handed, left, destroyed) on standard error, each \
with a timestamp. SIGINT and SIGTERM stop it cleanly.
.PP
With pins (the default) its maps and links are pinned under \
\\fB\\-\\-pin\\-dir\\fR: the programs keep recording while no daemon runs, \
and the next start adopts what they recorded, so a restart or an upgrade \
loses nothing. \\fBeghostbuster unpin\\fR removes the pins once the daemon \
is stopped; removing the package does it.",
            exit: &[
                ("0", "stopped cleanly by SIGINT or SIGTERM"),
                ("1", "a runtime failure (a monitor or the worker failed)"),
                (
                    "2",
                    "bad usage (flags, globs, sizes), or an unmet requirement (not root, no BTF, no syscall tracepoints, programs refused, another daemon uses the pin directory); one line on standard error, nothing loaded or touched",
                ),
            ],
            files: &[F_CONFIG, F_DEFAULT, F_PINS, F_STATUS, F_SV, F_UNITS],
            examples: &[
                (
                    "Start with a narrow scope and in dry run, and read what it would do:",
                    "eghostbuster run \\-\\-path /srv \\-\\-path /var/lib/app \\-\\-dry\\-run",
                ),
                (
                    "Only CLOSE_WAIT sockets on ports 8080 and 8443, destroyed after 2 minutes idle:",
                    "eghostbuster run \\-\\-no\\-locks \\-\\-port 8080 \\-\\-port 8443 \\-\\-close\\-wait\\-timeout 2m",
                ),
                (
                    "Metrics for Prometheus on loopback, and every tracked lock in the log:",
                    "RUST_LOG=debug eghostbuster run \\-\\-path /srv \\-\\-metrics\\-listen 127.0.0.1:29633",
                ),
            ],
            see_also: &["runsv(8)", "svlogd(8)", "systemctl(1)"],
        },
        "sweep" => Extra {
            description: "\
One pass, for hosts that do not run the daemon (from cron, or from \
eghostbuster\\-sweep.timer). It loads no BPF. Lock files: those under each \
\\fB\\-\\-path\\fR (required; never the whole host) that nothing holds open \
or locked and whose PID is dead or reused, or that hold no PID and are older \
than \\fB\\-\\-min\\-age\\fR. Sockets: TCP sockets idle in CLOSE_WAIT for \
longer than \\fB\\-\\-close\\-wait\\-timeout\\fR in every network namespace, \
destroyed with sock_diag SOCK_DESTROY. One pass cannot see how long a socket \
has waited, so sockets are remembered in \\fB\\-\\-state\\-file\\fR: a socket \
seen for the first time is only remembered, never destroyed.
.PP
It prints one line per action on standard output and nothing otherwise, so \
cron mails only when it acted; errors go to standard error.",
            exit: &[
                ("0", "nothing went wrong (whether or not it removed anything)"),
                ("1", "a removal or a socket destruction failed"),
                (
                    "2",
                    "bad usage (no \\-\\-path for the lock part, both parts left out, a bad flag), or not root; nothing touched",
                ),
            ],
            files: &[F_CONFIG, F_SWEEP_STATE, F_DEFAULT, F_TIMER, F_CRON],
            examples: &[
                (
                    "What one pass would do under /srv, changing nothing:",
                    "eghostbuster sweep \\-\\-path /srv \\-\\-dry\\-run",
                ),
                (
                    "Only sockets, every minute from the packaged timer (set EGHOSTBUSTER_SWEEP_OPTS=\"\\-\\-no\\-locks\" first):",
                    "systemctl enable \\-\\-now eghostbuster\\-sweep.timer",
                ),
            ],
            see_also: &["crontab(5)", "systemd.timer(5)"],
        },
        "status" => Extra {
            description: "\
Reads the running daemon's status file and prints whether it runs and its \
programs are attached (pinned links present), the features in use (exit \
hook, socket destruction method), every tracked lock (owner, age, state) and \
every CLOSE_WAIT socket it waits on (addresses, namespace, time to its \
deadline). \\fB\\-\\-json\\fR prints the same for scripts.",
            exit: &[
                ("0", "the daemon runs"),
                ("1", "the status could not be printed"),
                ("2", "bad usage"),
                (
                    "3",
                    "the daemon does not run (no status file, or one left by a daemon that is gone)",
                ),
            ],
            files: &[F_STATUS],
            examples: &[
                ("Is it running?", "eghostbuster status >/dev/null && echo running"),
                (
                    "The tracked locks, for a script:",
                    "eghostbuster status \\-\\-json",
                ),
            ],
            see_also: &[],
        },
        "unpin" => Extra {
            description: "\
Removes everything the daemon pinned under the pin directory, every \
version's, once no daemon uses it (it takes the daemon's lock on the \
directory first), and then the directory. The programs detach when their \
last pin goes. Removing the package does this for the pin directory the \
service was configured with. Nothing outside a bpf filesystem is touched.",
            exit: &[
                ("0", "unpinned, or nothing was pinned"),
                ("1", "a pin could not be removed"),
                (
                    "2",
                    "bad usage, the directory is not on a bpf filesystem, or a daemon still uses it",
                ),
            ],
            files: &[F_PINS],
            examples: &[
                (
                    "Stop the packaged daemon and detach its programs:",
                    "systemctl stop eghostbuster && eghostbuster unpin",
                ),
                (
                    "A daemon that ran with another pin directory:",
                    "eghostbuster unpin \\-\\-pin\\-dir /sys/fs/bpf/egb\\-test",
                ),
            ],
            see_also: &[],
        },
        "check-config" => Extra {
            description: "\
Reads the config file (default /etc/eghostbuster/eghostbuster.toml, or \
\\fB\\-\\-config FILE\\fR) and checks every option in it exactly as the flag \
it stands for would be checked, without starting anything. Unknown keys are \
errors, with their line.",
            exit: &[("0", "the file is valid"), ("2", "it is not, with one line saying why")],
            files: &[F_CONFIG],
            examples: &[(
                "Check an edited file before reloading the daemon:",
                "eghostbuster check\\-config && systemctl reload eghostbuster",
            )],
            see_also: &[],
        },
        "completions" => Extra {
            description: "\
Prints a completion script for the shell on standard output. The package \
installs them for bash, zsh and fish.",
            exit: &[("0", "printed"), ("1", "it could not be written"), ("2", "bad usage")],
            files: &[
                (
                    "/usr/share/bash\\-completion/completions/eghostbuster",
                    "bash",
                ),
                ("/usr/share/zsh/vendor\\-completions/_eghostbuster", "zsh"),
                (
                    "/usr/share/fish/vendor_completions.d/eghostbuster.fish",
                    "fish",
                ),
            ],
            examples: &[(
                "Completion in the current bash:",
                "source <(eghostbuster completions bash)",
            )],
            see_also: &[],
        },
        _ => Extra {
            description: "",
            exit: &[],
            files: &[],
            examples: &[],
            see_also: &[],
        },
    }
}

const ENVIRONMENT: &str = "\
.TP
.B RUST_LOG
Log level of \\fBrun\\fR, \\fBsweep\\fR and \\fBunpin\\fR: error, warn, \
info (the default) or debug (every tracked lock too), or env_logger \
directives.
.TP
.B EGHOSTBUSTER_OPTS
Options of \\fBeghostbuster run\\fR for the packaged runit service and \
systemd unit, set in /etc/default/eghostbuster (read by the service files, \
not by the program).
.TP
.B EGHOSTBUSTER_SWEEP_OPTS
Options of \\fBeghostbuster sweep\\fR for eghostbuster\\-sweep.service, set \
in /etc/default/eghostbuster.
";

/// The roff of a list of (tag, text) items.
fn tagged(out: &mut Vec<u8>, heading: &str, items: &[(&str, &str)]) {
    if items.is_empty() {
        return;
    }
    if heading.contains(' ') {
        let _ = writeln!(out, ".SH \"{heading}\"");
    } else {
        let _ = writeln!(out, ".SH {heading}");
    }
    for (tag, text) in items {
        let _ = writeln!(out, ".TP\n{tag}\n{text}");
    }
}

fn page_ref(name: &str) -> String {
    format!("\\fB{}\\fR({SECTION})", name.replace('-', "\\-"))
}

/// Every page: eghostbuster(8) first, then one per visible subcommand.
pub fn pages() -> io::Result<Vec<Page>> {
    let mut app = Cli::command().disable_help_subcommand(true);
    app.build();
    let subs: Vec<clap::Command> = app
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let names: Vec<String> = std::iter::once("eghostbuster".to_string())
        .chain(
            subs.iter()
                .map(|s| format!("eghostbuster-{}", s.get_name())),
        )
        .collect();

    let mut pages = Vec::new();
    let mut main = Vec::new();
    let man = clap_mangen::Man::new(app.clone())
        .section(SECTION)
        .manual("System Administration");
    man.render_title(&mut main)?;
    man.render_name_section(&mut main)?;
    man.render_synopsis_section(&mut main)?;
    man.render_description_section(&mut main)?;
    finish(&mut main, "eghostbuster", &names, Some(&subs))?;
    pages.push(Page {
        name: "eghostbuster".into(),
        roff: main,
    });

    for sub in subs {
        let short = sub.get_name().to_string();
        let name = format!("eghostbuster-{short}");
        let cmd = sub
            .clone()
            .display_name(name.clone())
            .bin_name(format!("eghostbuster {short}"));
        let man = clap_mangen::Man::new(cmd.clone())
            .section(SECTION)
            .manual("System Administration")
            .source(format!("eghostbuster {}", env!("CARGO_PKG_VERSION")));
        let mut buf = Vec::new();
        man.render_title(&mut buf)?;
        man.render_name_section(&mut buf)?;
        man.render_synopsis_section(&mut buf)?;
        man.render_description_section(&mut buf)?;
        let e = extra(&short);
        if !e.description.is_empty() {
            writeln!(buf, ".PP\n{}", e.description)?;
        }
        if cmd.get_arguments().any(|a| !a.is_hide_set()) {
            man.render_options_section(&mut buf)?;
        }
        finish(&mut buf, &short, &names, None)?;
        pages.push(Page { name, roff: buf });
    }
    Ok(pages)
}

/// The sections after the options: COMMANDS (main page only), EXIT STATUS,
/// ENVIRONMENT, FILES, EXAMPLES, SEE ALSO.
fn finish(
    buf: &mut Vec<u8>,
    which: &str,
    names: &[String],
    subs: Option<&[clap::Command]>,
) -> io::Result<()> {
    let e = extra(which);
    if let Some(subs) = subs {
        if !e.description.is_empty() {
            writeln!(buf, ".PP\n{}", e.description)?;
        }
        writeln!(buf, ".SH COMMANDS")?;
        for s in subs {
            let about = s.get_about().map(|a| a.to_string()).unwrap_or_default();
            writeln!(
                buf,
                ".TP\n{}\n{}",
                page_ref(&format!("eghostbuster-{}", s.get_name())),
                about.replace('-', "\\-")
            )?;
        }
        writeln!(
            buf,
            ".PP\n\\fBeghostbuster \\-\\-help\\fR and \\fBeghostbuster\\fR \\fICOMMAND\\fR \\fB\\-\\-help\\fR print the same options."
        )?;
    }
    tagged(buf, "EXIT STATUS", e.exit);
    writeln!(buf, ".SH ENVIRONMENT\n{ENVIRONMENT}")?;
    tagged(buf, "FILES", e.files);
    if !e.examples.is_empty() {
        writeln!(buf, ".SH EXAMPLES")?;
        for (what, cmd) in e.examples {
            writeln!(buf, ".PP\n{what}\n.PP\n.RS\n.EX\n{cmd}\n.EE\n.RE")?;
        }
    }
    let mut see: Vec<String> = names
        .iter()
        .filter(|n| {
            let n = n.as_str();
            n != which && n != format!("eghostbuster-{which}")
        })
        .map(|n| page_ref(n))
        .collect();
    see.extend(e.see_also.iter().map(|r| {
        let (name, sec) = r.split_once('(').unwrap_or((r, ""));
        format!("\\fB{}\\fR({sec}", name.replace('-', "\\-"))
    }));
    writeln!(buf, ".SH \"SEE ALSO\"\n{}", see.join(",\n"))?;
    Ok(())
}

/// `eghostbuster manpage DIR`: write every page to DIR/NAME.8 and print
/// the paths written, one a line.
pub fn write_all(dir: &Path, out: &mut dyn Write) -> io::Result<()> {
    let mut written: Vec<PathBuf> = Vec::new();
    for page in pages()? {
        let path = dir.join(format!("{}.{SECTION}", page.name));
        std::fs::write(&path, &page.roff)?;
        written.push(path);
    }
    for p in written {
        writeln!(out, "{}", p.display())?;
    }
    Ok(())
}

/// The pages that a roff text names, as "name(section)", its font escapes
/// and `\-` undone.
#[cfg(test)]
fn references(roff: &str) -> Vec<String> {
    let plain = roff
        .replace("\\fB", "")
        .replace("\\fR", "")
        .replace("\\fI", "")
        .replace("\\-", "-");
    let mut refs = Vec::new();
    let bytes = plain.as_bytes();
    for (i, _) in plain.match_indices('(') {
        let close = match plain[i..].find(')') {
            Some(c) => i + c,
            None => continue,
        };
        let sec = &plain[i + 1..close];
        if sec.len() != 1 || !sec.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let mut start = i;
        while start > 0 {
            let c = bytes[start - 1];
            if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.' {
                start -= 1;
            } else {
                break;
            }
        }
        if start < i {
            refs.push(plain[start..=close].to_string());
        }
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn all() -> Vec<(String, String)> {
        pages()
            .unwrap()
            .into_iter()
            .map(|p| (p.name, String::from_utf8(p.roff).unwrap()))
            .collect()
    }

    #[test]
    fn one_page_per_visible_subcommand() {
        let names: Vec<String> = all().into_iter().map(|(n, _)| n).collect();
        for want in [
            "eghostbuster",
            "eghostbuster-run",
            "eghostbuster-sweep",
            "eghostbuster-status",
            "eghostbuster-unpin",
            "eghostbuster-completions",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
        assert!(!names
            .iter()
            .any(|n| n.ends_with("-manpage") || n.ends_with("-help")));
    }

    #[test]
    fn every_referenced_page_is_shipped_or_external() {
        let pages = all();
        let shipped: Vec<String> = pages.iter().map(|(n, _)| format!("{n}(8)")).collect();
        // other packages' pages that the text may name
        let external = [
            "runsv(8)",
            "sv(8)",
            "svlogd(8)",
            "systemctl(1)",
            "crontab(5)",
            "systemd.timer(5)",
        ];
        for (name, roff) in &pages {
            let refs = references(roff);
            assert!(!refs.is_empty(), "{name} names no page");
            for r in refs {
                assert!(
                    shipped.contains(&r) || external.contains(&r.as_str()),
                    "{name} refers to {r}, which is not shipped"
                );
            }
        }
        // the main page leads to every other page
        let main = &pages[0].1;
        let refs = references(main);
        for s in &shipped[1..] {
            assert!(refs.contains(s), "eghostbuster(8) does not name {s}");
        }
    }

    #[test]
    fn sections_present() {
        for (name, roff) in all() {
            for sec in [
                ".SH NAME",
                ".SH SYNOPSIS",
                ".SH DESCRIPTION",
                ".SH \"EXIT STATUS\"",
                ".SH ENVIRONMENT",
                ".SH FILES",
                ".SH EXAMPLES",
                ".SH \"SEE ALSO\"",
            ] {
                assert!(roff.contains(sec), "{name}: no {sec}");
            }
            assert!(roff.contains("RUST_LOG"), "{name}: RUST_LOG");
            assert!(
                roff.contains("EGHOSTBUSTER_OPTS"),
                "{name}: EGHOSTBUSTER_OPTS"
            );
            if name != "eghostbuster" {
                assert!(roff.contains(".SH OPTIONS"), "{name}: no options");
            }
        }
        let status = all()
            .into_iter()
            .find(|(n, _)| n == "eghostbuster-status")
            .unwrap()
            .1;
        assert!(status.contains(".TP\n3\n"), "status: exit 3 undocumented");
        let run = all()
            .into_iter()
            .find(|(n, _)| n == "eghostbuster-run")
            .unwrap()
            .1;
        for opt in [
            "pin\\-dir",
            "close\\-wait\\-timeout",
            "metrics\\-listen",
            "dry\\-run",
        ] {
            assert!(run.contains(opt), "run: {opt} not documented");
        }
    }

    /// man-db renders every page with groff's warnings on, as lintian
    /// does: no warning may come out.
    #[test]
    fn pages_render_without_warnings() {
        let dir = tempfile::tempdir().unwrap();
        let mut listing = Vec::new();
        write_all(dir.path(), &mut listing).unwrap();
        let listing = String::from_utf8(listing).unwrap();
        assert_eq!(listing.lines().count(), all().len());
        for path in listing.lines() {
            let out = Command::new("man")
                .args(["--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", path])
                .env("LC_ALL", "C.UTF-8")
                .env("MANROFFSEQ", "")
                .env("MANWIDTH", "80")
                .output()
                .expect("man (man-db) must be installed: scripts/deps.sh installs it");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{path}: man failed: {err}");
            assert!(err.trim().is_empty(), "{path}: warnings:\n{err}");
            assert!(!out.stdout.is_empty(), "{path}: rendered nothing");
        }
    }
}
