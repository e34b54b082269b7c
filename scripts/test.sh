#!/usr/bin/env bash
# The whole test suite, as root: formatting, lints, unit tests, the
# privileged end-to-end tests (real BPF, real processes), the Helm chart
# (rendered by Helm's engine, tests/deploy.rs), the static
# release binary and the .deb (scripts/test-package.sh). A daemon already
# running is stopped for the tests and started again (see below). With
# EGHOSTBUSTER_REQUIRE_BPF=1 a skipped privileged test
# is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || echo "test.sh: not root: the privileged tests will skip" >&2
. scripts/deps.sh

cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings

# A daemon already running on this host (./scripts/start.sh's, or the
# package's under systemd or runit) watches the whole host: it would remove
# the tests' killed-owner locks before the agents under test do. Stop it
# for the tests and start it again afterwards, whatever their outcome (an
# EXIT trap). Its pinned programs and maps keep recording locks, exits and
# CLOSE_WAIT entries while it is stopped, so the restarted daemon adopts
# them and loses nothing (unless it runs with --no-pin).
. scripts/agent-control.sh
paused_argv=()
paused_systemd=no
paused_runit=no
resume_agents() {
    local ok=0
    if [ "${#paused_argv[@]}" -gt 0 ]; then
        echo "test.sh: starting start.sh's daemon again: ${paused_argv[*]}"
        egb_launch "${paused_argv[@]}" | sed 's/^/test.sh: /'
        [ "${PIPESTATUS[0]}" = 0 ] || { echo "test.sh: FAILED to start it again (see $EGB_LOG)" >&2; ok=1; }
        paused_argv=()
    fi
    if [ "$paused_systemd" = yes ]; then
        if systemctl start "$EGB_UNIT"; then
            echo "test.sh: started $EGB_UNIT again (systemctl start)"
        else
            echo "test.sh: FAILED to start $EGB_UNIT again" >&2; ok=1
        fi
        paused_systemd=no
    fi
    if [ "$paused_runit" = yes ]; then
        if sv -w 30 up "$EGB_SV" >/dev/null; then
            echo "test.sh: started the runit service again: $(sv status "$EGB_SV")"
        else
            echo "test.sh: FAILED to start the runit service again: $(sv status "$EGB_SV")" >&2; ok=1
        fi
        paused_runit=no
    fi
    return "$ok"
}
trap 'rc=$?; resume_agents || rc=1; exit "$rc"' EXIT
trap 'exit 130' INT TERM
say_pins() {
    case "$1" in
        none) echo "test.sh: it ran with --no-pin: locks and sockets that appear while it is stopped are not tracked" ;;
        *) echo "test.sh: its pins in $1 keep recording while it is stopped; the restarted daemon adopts them" ;;
    esac
}
if pid=$(egb_started_pid); then
    mapfile -d '' -t argv <"/proc/$pid/cmdline"
    echo "test.sh: the daemon started by start.sh runs (pid $pid: ${argv[*]}); stopping it for the tests"
    paused_argv=("${argv[@]}")
    egb_stop_pid "$pid" | sed 's/^/test.sh: /'
    say_pins "$(egb_pin_dir_of "${argv[@]:2}")"
fi
if egb_systemd_active; then
    echo "test.sh: the packaged service $EGB_UNIT runs; stopping it for the tests (systemctl stop)"
    paused_systemd=yes
    systemctl stop "$EGB_UNIT"
    echo "test.sh: stopped: $(systemctl show -p Result -p ExecMainStatus "$EGB_UNIT" | xargs)"
fi
if egb_runit_running; then
    echo "test.sh: the packaged runit service runs ($(sv status "$EGB_SV")); stopping it for the tests (sv down)"
    paused_runit=yes
    sv -w 30 down "$EGB_SV" >/dev/null || { echo "test.sh: sv down did not stop it within 30 s" >&2; exit 1; }
    echo "test.sh: stopped: $(sv status "$EGB_SV")"
fi
others=$(egb_unmanaged_agents)
if [ -n "$others" ]; then
    echo "test.sh: agents that watch the whole host run, started neither by start.sh nor by a service manager;" >&2
    echo "test.sh: they would remove the tests' locks, and test.sh cannot start them again: stop them first:" >&2
    echo "$others" | sed 's/^/test.sh:   pid /' >&2
    exit 1
fi

cargo test --locked

cargo build --release --locked
bin=target/x86_64-unknown-linux-gnu/release/eghostbuster
ldd "$bin" 2>&1 | grep -Eq "not a dynamic executable|statically linked"
echo "release binary: $("$bin" --version), $(stat -c %s "$bin") bytes, static ($(ldd "$bin" 2>&1 | xargs))"

# the benchmark harness, with tiny sizes, so that it does not rot (its
# numbers mean nothing here and fail nothing; a broken step fails)
if [ "$(id -u)" = 0 ]; then
    (cd bench && cargo build --release --locked)
    EGHOSTBUSTER_BIN="$bin" bench/target/x86_64-unknown-linux-gnu/release/eghostbuster-bench all --quick >/dev/null
    echo "bench smoke run: ok"
fi

# the .deb: contents, lintian, install, runit service, purge (root only)
if [ "$(id -u)" = 0 ]; then
    bash scripts/test-package.sh
elif [ "${EGHOSTBUSTER_REQUIRE_BPF:-}" = 1 ]; then
    echo "package tests need root" >&2
    exit 1
fi
