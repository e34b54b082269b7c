#!/usr/bin/env bash
# Build eghostbuster (static, release), install it as
# /usr/local/sbin/eghostbuster and start the daemon with the safe defaults
# (exclusive creations of *.lock and *.lck, every check before a removal).
# Extra arguments go to `eghostbuster run`, e.g. --path /srv --dry-run.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "start.sh: run as root" >&2; exit 2; }
. scripts/deps.sh

cargo build --release --locked
bin=target/x86_64-unknown-linux-gnu/release/eghostbuster
install -m 0755 "$bin" /usr/local/sbin/eghostbuster

if [ -d /run/systemd/system ]; then
    systemctl stop eghostbuster 2>/dev/null || true
    systemctl reset-failed eghostbuster 2>/dev/null || true
    systemd-run --unit eghostbuster --description "eghostbuster agent" \
        /usr/local/sbin/eghostbuster run "$@"
    echo "started: systemctl status eghostbuster; logs: journalctl -u eghostbuster -f"
else
    log=/var/log/eghostbuster.log
    setsid /usr/local/sbin/eghostbuster run "$@" </dev/null >>"$log" 2>&1 &
    pid=$!
    for _ in $(seq 50); do
        grep -q " ready" "$log" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || { tail -n 5 "$log" >&2; exit 1; }
        sleep 0.1
    done
    echo "started: pid $pid; logs: $log (stop with: kill $pid)"
fi
