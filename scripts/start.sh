#!/usr/bin/env bash
# Build eghostbuster (static, release), install it as
# /usr/local/sbin/eghostbuster and start the daemon with the safe defaults
# (exclusive creations of *.lock and *.lck, every check before a removal).
# Extra arguments go to `eghostbuster run`, e.g. --path /srv --dry-run.
#
# Run it again to replace the daemon: the one it started before (found by
# its pid file, /run/eghostbuster-start.pid, never by name) is stopped with
# SIGTERM once the new binary is built. Its pins keep tracking locks and
# CLOSE_WAIT sockets until the new daemon adopts them, so nothing is lost.
# Logs: /var/log/eghostbuster.log. Stop it: kill "$(head -n1 /run/eghostbuster-start.pid)".
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "start.sh: run as root" >&2; exit 2; }
EGB_DEPS=run . scripts/deps.sh
. scripts/agent-control.sh

# The packaged service would compete for the same pin directory.
if egb_systemd_active; then
    echo "start.sh: the packaged service runs (systemctl status $EGB_UNIT); stop it first: systemctl stop $EGB_UNIT" >&2
    exit 1
fi
if egb_runit_running; then
    echo "start.sh: the packaged runit service runs (sv status $EGB_SV); stop it first: sv down $EGB_SV" >&2
    exit 1
fi

cargo build --release --locked
bin=target/x86_64-unknown-linux-gnu/release/eghostbuster

old_argv=()
if old=$(egb_started_pid); then
    mapfile -d '' -t old_argv <"/proc/$old/cmdline"
    echo "start.sh: replacing the daemon it started before (pid $old: ${old_argv[*]})"
    egb_stop_pid "$old"
fi
install -m 0755 "$bin" /usr/local/sbin/eghostbuster
if ! egb_launch /usr/local/sbin/eghostbuster run "$@"; then
    if [ "${#old_argv[@]}" -gt 0 ]; then
        echo "start.sh: the new daemon did not start; starting the previous one's command again" >&2
        egb_launch "${old_argv[@]}" >&2 || true
    fi
    exit 1
fi
echo "start.sh: logs: $EGB_LOG; pid file: $EGB_PIDFILE; stop: kill \"\$(head -n1 $EGB_PIDFILE)\""
