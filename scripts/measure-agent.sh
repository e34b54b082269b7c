#!/usr/bin/env bash
# Memory of a running agent, as the Helm chart's resources need it: the
# process's resident set (VmRSS, and its peak VmHWM) and the BPF maps it
# holds (the kernel's "memlock" in /proc/PID/fdinfo for each map: charged to
# the pod's memory cgroup on Linux 5.11+, like the RSS). Starts its own
# scoped agent (a temporary --path, one test --port, a private pin
# directory and status file), measures it idle, with N locks tracked at
# once, and after their owner is killed (N removals), then stops it.
# MAX is its --max-locks (the chart's locks.maxLocks): the kernel's lock
# table is preallocated at that size.
#   sudo scripts/measure-agent.sh [N [MAX]]      (default 5000 8192)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "measure-agent.sh: run as root" >&2; exit 2; }
n=${1:-5000}
max=${2:-8192}
bin=${EGHOSTBUSTER_BIN:-target/x86_64-unknown-linux-gnu/release/eghostbuster}
[ -x "$bin" ] || cargo build --release --locked
dir=$(mktemp -d /tmp/egb-measure-XXXXXX)
pins=/sys/fs/bpf/egb-measure-$$
agent=
owner=
cleanup() {
    [ -n "$owner" ] && kill -KILL "$owner" 2>/dev/null
    [ -n "$agent" ] && kill -TERM "$agent" 2>/dev/null && wait "$agent" 2>/dev/null
    [ -e "$pins" ] && "$bin" unpin --pin-dir "$pins" >/dev/null 2>&1
    rm -rf "$dir"
}
trap cleanup EXIT

"$bin" run --path "$dir" --port 47991 --max-locks "$max" --pin-dir "$pins" --status-file "$dir/status.json" 2>"$dir/agent.log" &
agent=$!
for _ in $(seq 300); do grep -q "ready: " "$dir/agent.log" && break; sleep 0.1; done
grep -q "ready: " "$dir/agent.log" || { cat "$dir/agent.log" >&2; exit 1; }

kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
maps() { # total memlock of the BPF maps PID holds, deduplicated by map id, in KiB
    local f
    for f in /proc/"$1"/fdinfo/*; do
        awk '/^map_id:/{id=$2} /^memlock:/{m=$2} END{if (id != "") print id, m}' "$f" 2>/dev/null
    done | sort -u | awk '{s += $2; n++} END{printf "%d KiB in %d maps", s / 1024, n}'
}
report() {
    printf '%-34s VmRSS %6s KiB  VmHWM %6s KiB  BPF maps: %s\n' "$1" \
        "$(kib "$agent" VmRSS)" "$(kib "$agent" VmHWM)" "$(maps "$agent")"
}
sleep 1
report "idle (locks and sockets)"

bash -c 'set -C; cd "$1"; for ((i = 0; i < $2; i++)); do : >"l$i.lock"; done; exec sleep 600' _ "$dir" "$n" &
owner=$!
for _ in $(seq 600); do
    [ "$(find "$dir" -name '*.lock' | wc -l)" -ge "$n" ] && break
    sleep 0.1
done
sleep 2
report "$n locks tracked (owner alive)"
kill -KILL "$owner"; wait "$owner" 2>/dev/null || true; owner=
for _ in $(seq 600); do
    [ "$(grep -c '^.*removed ' "$dir/agent.log")" -ge "$n" ] && break
    sleep 0.1
done
report "after $n removals ($(grep -c 'removed ' "$dir/agent.log") logged)"
