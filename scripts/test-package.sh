#!/usr/bin/env bash
# Package tests, as root: build the .deb, check its contents, copyright,
# man pages and units, lint it (lintian's exit status counts), install it,
# run the packaged agent under runit with a test-only scope and pin
# directory, then purge it and check that nothing is left: files, state,
# logs, the log user, and the custom pin directory the service was
# configured with (once from EGHOSTBUSTER_OPTS, once from the config file's
# pin_dir). Called by scripts/test.sh.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
ok()   { echo "ok   package: $*"; passed=$((passed + 1)); }
bad()  { echo "FAIL package: $*"; failed=$((failed + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

if dpkg -s eghostbuster >/dev/null 2>&1; then
    echo "package tests: eghostbuster is already installed on this host; refusing to purge it" >&2
    [ "${EGHOSTBUSTER_REQUIRE_BPF:-}" = 1 ] && exit 1
    exit 0
fi
for tool in lintian runsvdir sv systemd-analyze man; do
    command -v "$tool" >/dev/null || { echo "package tests: $tool is missing (scripts/deps.sh installs it)" >&2; exit 1; }
done

deb=$(./scripts/build-deb.sh | tail -n1)
check "builds ($deb)" test -s "$deb"
bin=target/x86_64-unknown-linux-gnu/release/eghostbuster

x=$(mktemp -d /tmp/egb-deb-XXXXXX)
svdir=$(mktemp -d /tmp/egb-sv-XXXXXX)
scope=$(mktemp -d /tmp/egb-pkgscope-XXXXXX)
pins_opts=/sys/fs/bpf/egb-pkgtest-opts-$$
pins_toml=/sys/fs/bpf/egb-pkgtest-toml-$$
pins_other=/sys/fs/bpf/egb-pkgtest-other-$$
toml=/etc/eghostbuster/eghostbuster.toml
toml_backup=
[ -e "$toml" ] && { toml_backup=$x/toml.orig; cp -p "$toml" "$toml_backup"; }
toml_dir_made=no
[ -d /etc/eghostbuster ] || toml_dir_made=yes
runsvdir_pid=
owner_pid=
agent_pid=
cleanup() {
    if [ -n "$runsvdir_pid" ]; then
        kill -HUP "$runsvdir_pid" 2>/dev/null  # runsvdir stops every runsv, then exits
        wait "$runsvdir_pid" 2>/dev/null
    fi
    [ -n "$owner_pid" ] && kill -KILL "$owner_pid" 2>/dev/null
    [ -n "$agent_pid" ] && kill -TERM "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
    # an agent a broken run script left behind: known by this run's own
    # scope directory in its arguments, stopped by its PID
    for d in /proc/[0-9]*; do
        if tr '\0' ' ' <"$d/cmdline" 2>/dev/null | grep -qF -- "--path $scope "; then
            kill -TERM "${d#/proc/}" 2>/dev/null
        fi
    done
    dpkg -s eghostbuster >/dev/null 2>&1 && dpkg --purge eghostbuster >/dev/null 2>&1
    for p in "$pins_opts" "$pins_toml" "$pins_other"; do
        [ -e "$p" ] && "$bin" unpin --pin-dir "$p" >/dev/null 2>&1
    done
    if [ -n "$toml_backup" ]; then
        mkdir -p /etc/eghostbuster && cp -p "$toml_backup" "$toml"
    else
        rm -f "$toml"
        [ "$toml_dir_made" = yes ] && rmdir /etc/eghostbuster 2>/dev/null
    fi
    rm -rf "$x" "$svdir" "$scope"
}
trap cleanup EXIT

# --- contents -------------------------------------------------------------
pages=(eghostbuster eghostbuster-run eghostbuster-sweep eghostbuster-status eghostbuster-unpin eghostbuster-completions)
expected=(
    ./usr/sbin/eghostbuster
    ./etc/sv/eghostbuster/run
    ./etc/sv/eghostbuster/log/run
    ./lib/systemd/system/eghostbuster.service
    ./lib/systemd/system/eghostbuster-sweep.service
    ./lib/systemd/system/eghostbuster-sweep.timer
    ./etc/default/eghostbuster
    ./etc/cron.d/eghostbuster
    ./usr/share/bash-completion/completions/eghostbuster
    ./usr/share/zsh/vendor-completions/_eghostbuster
    ./usr/share/fish/vendor_completions.d/eghostbuster.fish
    ./usr/share/doc/eghostbuster/copyright
)
for p in "${pages[@]}"; do expected+=("./usr/share/man/man8/$p.8.gz"); done
contents=$(dpkg-deb --contents "$deb" | awk '{print $6}')
for f in "${expected[@]}"; do
    check "contains $f" grep -qxF "$f" <<<"$contents"
done
check "no supervise directory shipped in /etc/sv (it lives in /run/runit)" \
    bash -c "! grep -q 'supervise' <<<\"\$1\"" _ "$contents"
conffiles=$(dpkg-deb --info "$deb" conffiles)
for f in /etc/default/eghostbuster /etc/cron.d/eghostbuster /etc/sv/eghostbuster/run /etc/sv/eghostbuster/log/run; do
    check "conffile $f" grep -qxF "$f" <<<"$conffiles"
done

dpkg-deb -x "$deb" "$x/root"
check "binary inside is static" bash -c "ldd '$x/root/usr/sbin/eghostbuster' 2>&1 | grep -Eq 'not a dynamic executable|statically linked'"
check "binary inside runs --version" bash -c "'$x/root/usr/sbin/eghostbuster' --version | grep -q '^eghostbuster '"

# --- lintian: its exit status counts (errors and warnings fail it) ---------
lint=$(lintian --fail-on error,warning --display-info --pedantic "$deb" 2>&1)
lint_rc=$?
echo "$lint" | sed 's/^/     lintian: /'
check "lintian exits 0: no error and no warning (exit status $lint_rc)" test "$lint_rc" = 0
check "lintian: no unused override" bash -c "! grep -q 'unused-override' <<<\"\$1\"" _ "$lint"

# --- copyright: every component and every Cargo.lock crate ----------------
copyright=$x/root/usr/share/doc/eghostbuster/copyright
missing=""
root_crate=$(awk -F'"' '/^\[package\]/{p=1} p && /^name = /{print $2; exit}' Cargo.toml)
crates=0
while read -r name version; do
    crates=$((crates + 1))
    [ "$name" = "$root_crate" ] && continue  # eghostbuster itself: "Files: *"
    esc=$(printf '%s' "$name-$version" | sed 's/[.+]/\\&/g')
    grep -qE "(^|[ /,])$esc([ /,).]|$)" "$copyright" || missing="$missing $name-$version"
done < <(awk -F'"' '/^\[\[package\]\]/{n=""} /^name = /{n=$2} /^version = /{if (n != "") print n, $2}' Cargo.lock)
check "copyright names every crate of Cargo.lock ($crates)${missing:+ (missing:$missing)}" \
    bash -c "[ $crates -gt 50 ] && [ -z '$missing' ]"
for c in libbpf elfutils/libelf zlib; do
    check "copyright has a stanza for $c" grep -q "^Files: $c/\*" "$copyright"
done
nolicence=$(awk '/^Files: /{f=$2; l=0} /^License: /{l=1} /^$/{if (f && !l) print f; f=""} END{if (f && !l) print f}' "$copyright")
check "every Files stanza has a License${nolicence:+ (without:$nolicence)}" test -z "$nolicence"
# every crate compiled into the binary has its own stanza
embedded_missing=""
for crate in libbpf-rs libbpf-sys clap serde_json tiny_http globset nix crossbeam-channel; do
    v=$(awk -F'"' -v c="$crate" '/^name = /{n=$2} /^version = /{if (n == c) print $2}' Cargo.lock | head -n1)
    grep -q "^Files: crates/$crate-$v/\*" "$copyright" || embedded_missing="$embedded_missing $crate"
done
check "embedded crates have their own stanza${embedded_missing:+ (missing:$embedded_missing)}" test -z "$embedded_missing"

# --- install ----------------------------------------------------------------
check "dpkg -i installs" dpkg -i "$deb"
check "installed binary runs" eghostbuster --version
check "not started on install" bash -c '
    for e in /proc/[0-9]*/exe; do
        [ "$(readlink "$e" 2>/dev/null)" = /usr/sbin/eghostbuster ] && exit 1
    done; exit 0'
check "log user _eghostbuster-log exists, a system user without a shell" \
    bash -c "getent passwd _eghostbuster-log | grep -Eq ':/nonexistent:(/usr/sbin/nologin|/bin/false)$'"

# man pages: installed, each reference resolves to a shipped page, no warning
for p in "${pages[@]}"; do
    check "man -w $p" bash -c "man -w '$p' 2>/dev/null | grep -q '/man8/$p.8'"
    f=/usr/share/man/man8/$p.8.gz
    refs=$(zcat "$f" | sed -e 's/\\f[BIR]//g' -e 's/\\-/-/g' | grep -oE 'eghostbuster(-[a-z]+)?\(8\)' | sort -u)
    dangling=""
    for r in $refs; do
        [ -e "/usr/share/man/man8/${r%(8)}.8.gz" ] || dangling="$dangling $r"
    done
    check "$p(8): every eghostbuster page it names is shipped${dangling:+ (dangling:$dangling)}" test -z "$dangling"
    warn=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$f" 2>&1 >/dev/null)
    check "$p(8) renders without warnings${warn:+: $warn}" test -z "$warn"
done
check "eghostbuster-status(8) documents exit status 3" \
    bash -c "MANWIDTH=200 man -l /usr/share/man/man8/eghostbuster-status.8.gz 2>/dev/null | grep -A1 -E '^ +3 ' | grep -q 'does not run'"

# systemd units, the timer with its service (required: no silent skip)
for u in eghostbuster.service eghostbuster-sweep.service eghostbuster-sweep.timer; do
    out=$(systemd-analyze verify "/lib/systemd/system/$u" 2>&1)
    check "systemd-analyze verify $u${out:+: $out}" test -z "$out"
done
check "the timer runs eghostbuster-sweep.service every minute" bash -c '
    t=/lib/systemd/system/eghostbuster-sweep.timer
    grep -qx "OnUnitActiveSec=1min" "$t" && grep -qx "WantedBy=timers.target" "$t" &&
    grep -q "^ExecStart=/usr/sbin/eghostbuster sweep " /lib/systemd/system/eghostbuster-sweep.service'

# --- runit: Debian's layout, an unprivileged logger, one timestamp a line --
check "runit: supervise is a link to /run/runit/supervise/eghostbuster" \
    test "$(readlink /etc/sv/eghostbuster/supervise)" = /run/runit/supervise/eghostbuster
check "runit: log/supervise is a link to /run/runit/supervise/eghostbuster.log" \
    test "$(readlink /etc/sv/eghostbuster/log/supervise)" = /run/runit/supervise/eghostbuster.log
check "runit: the log directory belongs to the log user" \
    test "$(stat -c %U:%G /var/log/runit/eghostbuster 2>/dev/null)" = _eghostbuster-log:adm

# The service, scoped to a test directory, no sockets, a private pin
# directory and status file; ./finish records run's exit (code, status).
cp /etc/default/eghostbuster "$x/default.orig"
echo "EGHOSTBUSTER_OPTS=\"--path $scope --no-sockets --pin-dir $pins_opts --status-file $x/status.json\"" >> /etc/default/eghostbuster
printf '#!/bin/sh\necho "$1 $2" >%s\n' "$x/finish.out" >/etc/sv/eghostbuster/finish
chmod 0755 /etc/sv/eghostbuster/finish
ln -s /etc/sv/eghostbuster "$svdir/eghostbuster"
log=/var/log/runit/eghostbuster/current
runsvdir -P "$svdir" </dev/null >/dev/null 2>&1 &
runsvdir_pid=$!
ready=no
for _ in $(seq 300); do
    grep -q "ready: " "$log" 2>/dev/null && { ready=yes; break; }
    sleep 0.1
done
check "sv: the service starts and logs ready through svlogd" test "$ready" = yes
status=$(sv status /etc/sv/eghostbuster 2>&1)
echo "     sv status: $status"
check "sv status says run" grep -q '^run: ' <<<"$status"
check "runit: supervise state is in /run/runit/supervise/eghostbuster" test -p /run/runit/supervise/eghostbuster/ok
agent_pid=$(sed -n 's/^run: [^(]*(pid \([0-9]*\)).*/\1/p' <<<"$status")
log_pid=$(sed -n 's/.*; run: log: (pid \([0-9]*\)).*/\1/p' <<<"$status")
check "svlogd runs as the log user, not root" \
    test "$(stat -c %U "/proc/$log_pid" 2>/dev/null)" = _eghostbuster-log
check "the agent runs with the test's options" \
    bash -c "tr '\0' ' ' </proc/$agent_pid/cmdline | grep -q -- '--pin-dir $pins_opts'"
check "one timestamp a line, the agent's (no svlogd stamp before it)" \
    bash -c "[ -s '$log' ] && ! grep -qvE '^\[[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]+Z [A-Z]+ *\] ' '$log'"

# a stale lock in the scope: the packaged agent removes it, and says so
lock=$scope/pkg.lock
bash -c 'set -C; : >"$1"; exec sleep 300' _ "$lock" &
owner_pid=$!
for _ in $(seq 100); do [ -e "$lock" ] && break; sleep 0.05; done
check "the lock exists while its owner lives" test -e "$lock"
kill -KILL "$owner_pid"; wait "$owner_pid" 2>/dev/null; owner_pid=
removed=no
for _ in $(seq 100); do
    grep -qF "removed $lock: " "$log" && { removed=yes; break; }
    sleep 0.1
done
check "the packaged agent logs 'removed $lock' once its owner is killed" test "$removed" = yes
check "the lock is gone" test ! -e "$lock"

check "sv down stops it" sv -w 30 down /etc/sv/eghostbuster
for _ in $(seq 50); do [ -s "$x/finish.out" ] && break; sleep 0.1; done
check "it stopped cleanly: run exited with status 0 (./finish got '$(cat "$x/finish.out" 2>/dev/null)')" \
    test "$(cat "$x/finish.out" 2>/dev/null)" = "0 0"
check "its pins stay in the custom pin directory while it is stopped" \
    bash -c "ls -d '$pins_opts'/*-* >/dev/null 2>&1"
check "the agent process is gone" test ! -e "/proc/$agent_pid"
rm -f /etc/sv/eghostbuster/finish

# --- purge while the service runs ------------------------------------------
# Up again, then the configuration changes without a restart (another pin
# directory): the package must stop the running daemon and unpin the
# directory it really uses (its status file says which), not only the one
# configured now.
sv -w 30 up /etc/sv/eghostbuster >/dev/null
for _ in $(seq 300); do [ "$(grep -c 'ready: ' "$log")" -ge 2 ] && break; sleep 0.1; done
check "sv up starts it again" bash -c "[ \"\$(grep -c 'ready: ' '$log')\" -ge 2 ]"
agent_pid=$(sv status /etc/sv/eghostbuster | sed -n 's/^run: [^(]*(pid \([0-9]*\)).*/\1/p')
sed -i "s|--pin-dir $pins_opts|--pin-dir $pins_other|" /etc/default/eghostbuster
check "dpkg --purge removes it" dpkg --purge eghostbuster
check "purge stopped the running agent" test ! -e "/proc/$agent_pid"
check "purge unpinned the running daemon's pin directory ($pins_opts)" test ! -e "$pins_opts"
kill -HUP "$runsvdir_pid" 2>/dev/null
wait "$runsvdir_pid" 2>/dev/null
runsvdir_pid=
rm -f "$svdir/eghostbuster"
for _ in $(seq 50); do [ -e "/proc/$log_pid" ] || break; sleep 0.1; done
check "svlogd is gone with runsv" test ! -e "/proc/$log_pid"
agent_pid=
left=""
for f in /usr/sbin/eghostbuster /etc/sv/eghostbuster /etc/default/eghostbuster /etc/cron.d/eghostbuster \
         /lib/systemd/system/eghostbuster.service /lib/systemd/system/eghostbuster-sweep.timer \
         /lib/systemd/system/eghostbuster-sweep.service /var/log/runit/eghostbuster /var/lib/eghostbuster \
         /run/runit/supervise/eghostbuster /run/runit/supervise/eghostbuster.log \
         /usr/share/doc/eghostbuster /usr/share/man/man8/eghostbuster.8.gz; do
    [ -e "$f" ] || [ -L "$f" ] && left="$left $f"
done
check "nothing is left after purge${left:+ (left:$left)}" test -z "$left"
check "purge removed the log user" bash -c "! getent passwd _eghostbuster-log >/dev/null && ! getent group _eghostbuster-log >/dev/null"

# --- again, the pin directory from the config file's pin_dir ---------------
# The config file names the pin directory (its [run] table, as the daemon
# reads it): start a daemon with it, stop it (its pins stay), and let the
# package's prerm find the directory in that file.
check "dpkg -i installs again" dpkg -i "$deb"
mkdir -p /etc/eghostbuster
printf '# test-package.sh\n[run]\npin_dir = "%s"\n' "$pins_toml" >"$toml"
/usr/sbin/eghostbuster run --path "$scope" --no-sockets --pin-dir "$pins_toml" \
    --status-file "$x/status2.json" 2>"$x/agent2.log" &
agent_pid=$!
for _ in $(seq 300); do grep -q "ready: " "$x/agent2.log" && break; sleep 0.1; done
kill -TERM "$agent_pid"; wait "$agent_pid"; rc=$?; agent_pid=
[ "$rc" = 0 ] || sed 's/^/agent: /' "$x/agent2.log" >&2
check "a daemon with --pin-dir $pins_toml ran and stopped with status 0 (got $rc)" test "$rc" = 0
check "its pins stay" bash -c "ls -d '$pins_toml'/*-* >/dev/null 2>&1"
check "dpkg --purge removes it again" dpkg --purge eghostbuster
check "purge unpinned the pin directory from the config file's pin_dir ($pins_toml)" test ! -e "$pins_toml"
check "/var/lib/eghostbuster is gone" test ! -e /var/lib/eghostbuster

echo "package: $passed passed, $failed failed"
[ "$failed" = 0 ]
