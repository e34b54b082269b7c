#!/usr/bin/env bash
# Package tests, as root: build the .deb, check its contents and lint it,
# install it, run the packaged agent under runit with a test-only scope,
# then purge it and check that nothing is left. Called by scripts/test.sh.
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

deb=$(./scripts/build-deb.sh | tail -n1)
check "builds ($deb)" test -s "$deb"

expected=(
    ./usr/sbin/eghostbuster
    ./etc/sv/eghostbuster/run
    ./etc/sv/eghostbuster/log/run
    ./lib/systemd/system/eghostbuster.service
    ./etc/default/eghostbuster
    ./etc/cron.d/eghostbuster
    ./usr/share/man/man8/eghostbuster.8.gz
    ./usr/share/bash-completion/completions/eghostbuster
    ./usr/share/zsh/vendor-completions/_eghostbuster
    ./usr/share/fish/vendor_completions.d/eghostbuster.fish
    ./usr/share/doc/eghostbuster/copyright
)
contents=$(dpkg-deb --contents "$deb" | awk '{print $6}')
for f in "${expected[@]}"; do
    check "contains $f" grep -qxF "$f" <<<"$contents"
done
conffiles=$(dpkg-deb --info "$deb" conffiles)
for f in /etc/default/eghostbuster /etc/cron.d/eghostbuster /etc/sv/eghostbuster/run /etc/sv/eghostbuster/log/run; do
    check "conffile $f" grep -qxF "$f" <<<"$conffiles"
done

x=$(mktemp -d /tmp/egb-deb-XXXXXX)
svdir=$(mktemp -d /tmp/egb-sv-XXXXXX)
scope=$(mktemp -d /tmp/egb-pkgscope-XXXXXX)
runsvdir_pid=
cleanup() {
    [ -n "$runsvdir_pid" ] && kill -HUP "$runsvdir_pid" 2>/dev/null && sleep 1
    [ -n "$runsvdir_pid" ] && kill -KILL "$runsvdir_pid" 2>/dev/null
    dpkg -s eghostbuster >/dev/null 2>&1 && dpkg --purge eghostbuster >/dev/null 2>&1
    rm -rf "$x" "$svdir" "$scope"
}
trap cleanup EXIT

dpkg-deb -x "$deb" "$x"
check "binary inside is static" bash -c "ldd '$x/usr/sbin/eghostbuster' 2>&1 | grep -Eq 'not a dynamic executable|statically linked'"
check "binary inside runs --version" bash -c "'$x/usr/sbin/eghostbuster' --version | grep -q '^eghostbuster '"
if command -v lintian >/dev/null; then
    lint=$(lintian "$deb" 2>/dev/null)
    echo "$lint" | sed 's/^/     lintian: /'
    check "lintian reports no errors" bash -c "! grep -q '^E:' <<<\"\$1\"" _ "$lint"
else
    bad "lintian is not installed"
fi

check "dpkg -i installs" dpkg -i "$deb"
check "installed binary runs" /usr/sbin/eghostbuster --version
check "man page installed" bash -c "man -w eghostbuster | grep -q eghostbuster.8"
check "not started on install" bash -c "! pgrep -f '^/usr/sbin/eghostbuster run' >/dev/null"
if command -v systemd-analyze >/dev/null; then
    check "systemd unit verifies" systemd-analyze verify /lib/systemd/system/eghostbuster.service
fi

# The runit service, with options from /etc/default scoped to a test dir.
if command -v runsvdir >/dev/null && command -v sv >/dev/null; then
    cp /etc/default/eghostbuster "$x/default.orig"
    echo "EGHOSTBUSTER_OPTS=\"--path $scope\"" >> /etc/default/eghostbuster
    ln -s /etc/sv/eghostbuster "$svdir/eghostbuster"
    runsvdir -P "$svdir" </dev/null >/dev/null 2>&1 &
    runsvdir_pid=$!
    ready=no
    for _ in $(seq 100); do
        grep -q "ready: " /var/log/eghostbuster/current 2>/dev/null && { ready=yes; break; }
        sleep 0.1
    done
    check "sv: the service starts and logs ready through svlogd" test "$ready" = yes
    check "sv status says run" bash -c "sv status '$svdir/eghostbuster' | grep -q '^run:'"
    # a stale lock in the scope: the packaged agent removes it
    (set -C; : > "$scope/pkg.lock"; kill -9 $BASHPID) 2>/dev/null
    gone=no
    for _ in $(seq 100); do
        [ -e "$scope/pkg.lock" ] || { gone=yes; break; }
        sleep 0.1
    done
    check "the packaged agent removes a killed owner's lock" test "$gone" = yes
    check "sv down stops it" sv -w 10 down "$svdir/eghostbuster"
    check "it stopped cleanly" bash -c "grep -q 'SIGTERM: stopping' /var/log/eghostbuster/current"
    kill -HUP "$runsvdir_pid" 2>/dev/null
    wait "$runsvdir_pid" 2>/dev/null
    runsvdir_pid=
    sleep 0.5
    cp "$x/default.orig" /etc/default/eghostbuster
else
    bad "runit (runsvdir, sv) is not installed"
fi

check "dpkg --purge removes it" dpkg --purge eghostbuster
left=""
for f in /usr/sbin/eghostbuster /etc/sv/eghostbuster /etc/default/eghostbuster /etc/cron.d/eghostbuster \
         /lib/systemd/system/eghostbuster.service /var/log/eghostbuster /usr/share/doc/eghostbuster \
         /usr/share/man/man8/eghostbuster.8.gz; do
    [ -e "$f" ] && left="$left $f"
done
check "nothing is left after purge${left:+ (left:$left)}" test -z "$left"
check "no eghostbuster process is left" bash -c "! pgrep -f '^/usr/sbin/eghostbuster' >/dev/null"
check "no pinned programs are left" test ! -e /sys/fs/bpf/eghostbuster

echo "package: $passed passed, $failed failed"
[ "$failed" = 0 ]
