//! The text of the man pages that clap does not know: each command's
//! description, exit status, files, examples and see-also, and the
//! environment. Roff, with `\-` for every dash a reader may type.

/// What clap does not know about a command.
pub(super) struct Extra {
    /// Paragraphs (roff) after the command's own description.
    pub(super) description: &'static str,
    /// (status, meaning)
    pub(super) exit: &'static [(&'static str, &'static str)],
    /// (path, what it is)
    pub(super) files: &'static [(&'static str, &'static str)],
    /// (what it does, command line)
    pub(super) examples: &'static [(&'static str, &'static str)],
    /// Pages of other packages, e.g. "sv(8)".
    pub(super) see_also: &'static [&'static str],
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

pub(super) fn extra(name: &str) -> Extra {
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
hook, socket destruction method), the tracked locks (owner, age, state) and \
the CLOSE_WAIT sockets it waits on (addresses, namespace, time to its \
deadline): up to 1,000 of each, with the count of all; of the locks, those \
kept for a live process first, then the oldest. \\fB\\-\\-json\\fR prints \
the same for scripts.",
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

pub(super) const ENVIRONMENT: &str = "\
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
