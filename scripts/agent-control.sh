# Sourced by start.sh and test.sh: find, stop and start a host-wide
# eghostbuster daemon without ever matching processes by name.
#
# start.sh's daemon is known by its pid file: line 1 the PID, line 2 the
# process's start time (field 22 of /proc/PID/stat), so that a PID reused
# by another process after a reboot or a crash is never signalled. The
# packaged service is known by its supervisor (systemd's unit, runit's
# supervise directory) and is stopped and started through it.

EGB_PIDFILE=${EGB_PIDFILE:-/run/eghostbuster-start.pid}
EGB_LOG=${EGB_LOG:-/var/log/eghostbuster.log}
EGB_SV=${EGB_SV:-/etc/sv/eghostbuster}
EGB_UNIT=eghostbuster.service

# The start time of PID (clock ticks since boot), or failure if it is gone.
egb_starttime() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    # the command name (field 2) may hold spaces: skip past its ')'
    stat=${stat##*) }
    # shellcheck disable=SC2086
    set -- $stat
    echo "${20}"
}

# The PID of start.sh's daemon, when the pid file names a live process that
# is still the one it recorded; nothing (and failure) otherwise.
egb_started_pid() {
    local pid start now
    [ -r "$EGB_PIDFILE" ] || return 1
    { read -r pid; read -r start; } <"$EGB_PIDFILE" || true
    case "$pid" in '' | *[!0-9]*) return 1 ;; esac
    now=$(egb_starttime "$pid") || return 1
    [ "$now" = "$start" ] || return 1
    echo "$pid"
}

# Wait until PID (start time START) is gone; TIMEOUT seconds at most.
egb_wait_gone() {
    local pid=$1 start=$2 timeout=$3 i now
    for ((i = 0; i < timeout * 10; i++)); do
        now=$(egb_starttime "$pid") || return 0
        [ "$now" = "$start" ] || return 0
        sleep 0.1
    done
    return 1
}

# Stop start.sh's daemon PID: SIGTERM (the daemon detaches from its pins
# and exits 0), SIGKILL after 30 s. Prints what happened.
egb_stop_pid() {
    local pid=$1 start t0 t1
    start=$(egb_starttime "$pid") || return 0
    t0=$(date +%s%N)
    kill -TERM "$pid" 2>/dev/null || return 0
    if egb_wait_gone "$pid" "$start" 30; then
        t1=$(date +%s%N)
        echo "stopped pid $pid: it exited $(( (t1 - t0) / 1000000 )) ms after SIGTERM"
    else
        kill -KILL "$pid" 2>/dev/null
        egb_wait_gone "$pid" "$start" 5 || { echo "pid $pid survives SIGKILL" >&2; return 1; }
        echo "pid $pid did not exit within 30 s of SIGTERM: killed it (SIGKILL); its pins keep what it tracked"
    fi
    rm -f "$EGB_PIDFILE"
}

# Start ARGV... as start.sh's daemon: its own session, output appended to
# EGB_LOG, PID and start time in EGB_PIDFILE. Waits for its "ready:" line
# (60 s at most); on failure prints the end of its log and fails.
egb_launch() {
    local offset pid start i
    mkdir -p "$(dirname "$EGB_LOG")"
    offset=$(stat -c %s "$EGB_LOG" 2>/dev/null || echo 0)
    # In a script job control is off, so the background child is not a
    # process group leader and setsid(1) execs in place: $! is the agent.
    setsid "$@" </dev/null >>"$EGB_LOG" 2>&1 &
    pid=$!
    start=$(egb_starttime "$pid") || start=
    printf '%s\n%s\n' "$pid" "$start" >"$EGB_PIDFILE.tmp" && mv -f "$EGB_PIDFILE.tmp" "$EGB_PIDFILE"
    for ((i = 0; i < 600; i++)); do
        if tail -c +"$((offset + 1))" "$EGB_LOG" 2>/dev/null | grep -q "ready: "; then
            echo "started pid $pid: $*"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" 2>/dev/null
            echo "the agent exited before it was ready (status $?); its log:" >&2
            tail -c +"$((offset + 1))" "$EGB_LOG" | tail -n 20 >&2
            rm -f "$EGB_PIDFILE"
            return 1
        fi
        sleep 0.1
    done
    echo "the agent (pid $pid) was not ready after 60 s; stopping it" >&2
    egb_stop_pid "$pid" >&2
    return 1
}

# The pin directory an agent's argument list ARGV... uses: the path, or
# "none" with --no-pin.
egb_pin_dir_of() {
    local dir=/sys/fs/bpf/eghostbuster
    while [ $# -gt 0 ]; do
        case "$1" in
            --no-pin) echo none; return ;;
            --pin-dir) dir=${2:-$dir}; shift ;;
            --pin-dir=*) dir=${1#--pin-dir=} ;;
        esac
        shift
    done
    echo "$dir"
}

egb_systemd_active() {
    [ -d /run/systemd/system ] && systemctl is-active --quiet "$EGB_UNIT" 2>/dev/null
}

egb_runit_running() {
    [ -p "$EGB_SV/supervise/ok" ] && command -v sv >/dev/null 2>&1 &&
        sv status "$EGB_SV" 2>/dev/null | grep -q '^run: '
}

# Agents that run the whole host (no --path) and act (no --dry-run) that
# none of the above manages: PIDs and command lines, one a line.
egb_unmanaged_agents() {
    local d pid argv managed
    managed=$(egb_started_pid || true)
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        [ "$pid" = "$managed" ] && continue
        mapfile -d '' -t argv <"$d/cmdline" 2>/dev/null || continue
        [ "${#argv[@]}" -ge 2 ] && [ "${argv[1]}" = run ] || continue
        [ "${argv[0]##*/}" = eghostbuster ] || continue
        case " ${argv[*]} " in *" --path"* | *" --dry-run "*) continue ;; esac
        echo "$pid ${argv[*]}"
    done
}
