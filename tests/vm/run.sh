#!/usr/bin/env bash
# The KVM kernel matrix (issue 8): build the agent and the test binaries here,
# boot each Debian cloud kernel under qemu with this host's root filesystem
# shared READ-ONLY (virtiofs), run every test binary inside as root with
# EGHOSTBUSTER_REQUIRE_BPF=1, print the agent's own feature probing, and
# report pass/fail per kernel and per test binary.
#
#   tests/vm/run.sh              # default matrix: 6.1 6.12
#   tests/vm/run.sh 6.1          # one series (the newest cloud kernel of it)
#   tests/vm/run.sh linux-image-6.1.0-56-cloud-amd64   # an exact package
#   tests/vm/run.sh --judge CONSOLE_LOG [LIST]  # re-judge a console log
#
# A kernel passes only when the guest ran to its end (EGB-DONE), every test
# binary of the list reported exactly one result and every result is PASS,
# and the agent started in the guest stopped cleanly (exit status 0).
#
# As root. Needs /dev/kvm. Installs qemu-system-x86 when missing (it also
# brings virtiofsd). Kernels are only downloaded (`apt-get download`) and
# unpacked under target/vm/ — nothing is installed on the host, /boot and the
# bootloader are never touched. The Debian cloud kernels have no 9p at all
# (CONFIG_NET_9P is not set), hence virtiofs; virtiofsd serves a read-only
# bind mount of / made in a private mount namespace, so the guest cannot
# write to the host whatever it does. The guest gets tmpfs on /tmp, /run,
# /var and /boot (the kernel's config goes there, for libbpf's .kconfig).
#
# Not part of scripts/test.sh or .ci/run: it takes minutes per kernel.
# Environment: CARGO_TARGET_DIR (default: target/), VM_TIMEOUT (seconds per
# kernel, default 1800), VM_MEM (default 3G), VM_CPUS (default 2),
# VM_SKIP_BUILD=1 (reuse the last build's list of test binaries).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
here=$PWD
cd "$repo"

# ---- verdict --------------------------------------------------------------
# judge LOG LIST: print the verdict for one kernel's console log against the
# list of test binaries ("kind:name path" lines); exit 0 for PASS.
judge() {
    local log=$1 list=$2 console results name expected=0 missing=() dup=() fails=0 why=()
    console=$(tr -d '\r' <"$log")
    results=$(grep '^EGB-RESULT ' <<<"$console" || true)
    while read -r name _; do
        [ -n "$name" ] || continue
        expected=$((expected + 1))
        case $(grep -c "^EGB-RESULT $name " <<<"$results" || true) in
        0) missing+=("$name") ;;
        1) ;;
        *) dup+=("$name") ;;
        esac
    done <"$list"
    fails=$(grep -c '^EGB-RESULT [^ ]* FAIL ' <<<"$results" || true)
    local got agent done_n
    got=$(grep -c . <<<"$results" || true)
    agent=$(sed -n 's/^EGB-AGENT-EXIT //p' <<<"$console" | tail -1)
    done_n=$(sed -n 's/^EGB-DONE *//p' <<<"$console" | tail -1)
    if ! grep -q '^EGB-DONE' <<<"$console"; then
        why+=("no EGB-DONE: the guest did not run to its end")
    elif [ -n "$done_n" ] && [ "$done_n" != "$expected" ]; then
        why+=("the guest ran $done_n test binaries, the list has $expected")
    fi
    [ "$expected" -gt 0 ] || why+=("the list of test binaries is empty")
    [ "$fails" -eq 0 ] || why+=("$fails test binaries failed")
    [ ${#missing[@]} -eq 0 ] || why+=("${#missing[@]} of $expected reported no result: ${missing[*]}")
    [ ${#dup[@]} -eq 0 ] || why+=("more than one result: ${dup[*]}")
    [ "$got" -eq "$expected" ] || why+=("$got results for $expected test binaries")
    [ "$agent" = 0 ] || why+=("the agent in the guest exited with ${agent:-no status}, not 0")
    if [ ${#why[@]} -eq 0 ]; then
        echo "PASS ($expected of $expected test binaries)"
        return 0
    fi
    local joined
    joined=$(printf '%s; ' "${why[@]}")
    echo "FAIL (${joined%; })"
    return 1
}

if [ "${1:-}" = --judge ]; then
    cd "$here"
    [ -r "${2:-}" ] || { echo "run.sh: --judge CONSOLE_LOG [LIST]" >&2; exit 2; }
    judge "$2" "${3:-$repo/target/vm/test-binaries}"
    exit
fi

[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (kvm, virtiofsd, mounts)" >&2; exit 2; }
# KVM when it can boot a stock kernel. Some hosts expose /dev/kvm through PVM
# (kvm_pvm, nested virtualization by page-table shadowing): it boots only
# PVM-enabled guest kernels, and a Debian kernel crawls and dies there (a
# "KVM internal error" on cmpxchg16b after minutes). There, and without
# /dev/kvm, TCG (software emulation): slower, but the same kernels.
accel=${VM_ACCEL:-}
if [ -z "$accel" ]; then
    if [ -c /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ]; then accel=kvm; else accel=tcg; fi
fi
case $accel in
kvm) accel_args=(-enable-kvm -cpu host) ;;
tcg) accel_args=(-accel tcg,thread=multi -cpu max) ;;
*) echo "run.sh: VM_ACCEL must be kvm or tcg" >&2; exit 2 ;;
esac
echo "accelerator: $accel$( [ -d /sys/module/kvm_pvm ] && echo " (/dev/kvm is PVM here: stock kernels do not boot on it)")"

series=("$@")
[ ${#series[@]} -gt 0 ] || series=(6.1 6.12)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
vm=$repo/target/vm              # cache: debs, unpacked kernels, initramfs, logs
mem=${VM_MEM:-3G}
cpus=${VM_CPUS:-2}
limit=${VM_TIMEOUT:-1800}
mkdir -p "$vm/debs" "$vm/kernels" "$vm/logs"

# ---- host tools -----------------------------------------------------------
if ! command -v qemu-system-x86_64 >/dev/null || [ ! -x /usr/lib/qemu/virtiofsd ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends qemu-system-x86
fi
command -v jq >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends jq
virtiofsd=/usr/lib/qemu/virtiofsd
bb=$vm/busybox/bin/busybox
if [ ! -x "$bb" ]; then
    (cd "$vm/debs" && apt-get download busybox-static)
    dpkg-deb -x "$(ls "$vm"/debs/busybox-static_*.deb | tail -1)" "$vm/busybox"
fi

# ---- build ----------------------------------------------------------------
# the guest sees the host's root filesystem only (not other mounts)
for p in "$repo" "$CARGO_TARGET_DIR"; do
    mkdir -p "$p"
    [ "$(findmnt -n -o TARGET -T "$p")" = / ] || {
        echo "run.sh: $p is not on the root filesystem; the guest would not see it" >&2
        exit 2
    }
done
list=$vm/test-binaries
t0=$SECONDS
if [ "${VM_SKIP_BUILD:-}" != 1 ] || [ ! -s "$list" ]; then
    . scripts/deps.sh
    cargo build --release --locked
    cargo test --locked --no-run --message-format=json >"$vm/build.json"
    # "kind:name path" for every test executable cargo built
    jq -r 'select(.reason == "compiler-artifact" and .profile.test and .executable != null)
           | "\(.target.kind[0]):\(.target.name) \(.executable)"' "$vm/build.json" | sort >"$list"
fi
agent=$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/eghostbuster
# optional probe: do fentry/fexit load and attach on each kernel?
clang -O2 -g -target bpf -c tests/vm/fentry.bpf.c -o "$vm/fentry.bpf.o" 2>/dev/null || rm -f "$vm/fentry.bpf.o"
[ -x "$agent" ] || { echo "run.sh: no release binary at $agent" >&2; exit 1; }
echo "build: $((SECONDS - t0))s; test binaries:"
sed 's/^/  /' "$list"

# ---- kernels --------------------------------------------------------------
# newest signed cloud kernel package of a series (6.1, 6.12) in the apt index
resolve() {
    case $1 in
    linux-image-*) echo "$1"; return ;;
    esac
    local re="^linux-image-${1//./\\.}[.-][^ ]*-cloud-amd64\$" pkg
    pkg=$(apt-cache pkgnames linux-image- | grep -E "$re" | sort -V | tail -1)
    if [ -z "$pkg" ]; then
        apt-get update >/dev/null
        pkg=$(apt-cache pkgnames linux-image- | grep -E "$re" | sort -V | tail -1)
    fi
    [ -n "$pkg" ] || { echo "run.sh: no Debian cloud kernel package for $1 in the apt sources" >&2; return 1; }
    echo "$pkg"
}

# unpack the package into target/vm/kernels/PKG; prints that directory
fetch_kernel() {
    local pkg=$1 dir=$vm/kernels/$1
    if [ ! -d "$dir/boot" ]; then
        local deb
        deb=$(ls "$vm"/debs/"${pkg}"_*.deb 2>/dev/null | tail -1 || true)
        if [ -z "$deb" ]; then
            (cd "$vm/debs" && apt-get download "$pkg" >&2)
            deb=$(ls "$vm"/debs/"${pkg}"_*.deb | tail -1)
        fi
        rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
        dpkg-deb -x "$deb" "$dir.tmp"
        mv "$dir.tmp" "$dir"
    fi
    echo "$dir"
}

# Modules the guest needs, with their dependencies first: virtio PCI and
# virtiofs for the root (built in on 6.12, modules on 6.1), inet_diag and
# tcp_diag for netlink SOCK_DESTROY (the kernel cannot autoload them: the
# host's /lib/modules has nothing for the guest's kernel), unix_diag for the
# socket-file class, veth for tests, overlay for a writable /etc (the
# security tests create users).
WANT_MODULES="virtio virtio_ring virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci fuse virtiofs inet_diag tcp_diag unix_diag veth overlay"

build_initramfs() {
    local kdir=$1 kver=$2 out=$3 stage
    stage=$(mktemp -d "$vm/initramfs.XXXXXX")
    mkdir -p "$stage"/{bin,proc,sys,dev,newroot,modules}
    cp "$bb" "$stage/bin/busybox"
    local mdir=$kdir/lib/modules/$kver
    local -A seen=()
    : >"$stage/modules/order"
    add_module() {
        local name=$1 f deps d
        [ -z "${seen[$name]:-}" ] || return 0
        seen[$name]=1
        # module names use _ but files may use - (and the other way)
        f=$(find "$mdir/kernel" -regextype posix-extended \
            -regex ".*/(${name}|${name//_/-})\.ko(\.xz|\.zst)?" | head -1)
        if [ -z "$f" ]; then
            grep -Eq "/(${name}|${name//_/-})\.ko\$" "$mdir/modules.builtin" ||
                echo "run.sh: $kver has no module $name (and it is not built in)" >&2
            return 0
        fi
        local ko=$stage/modules/$name.ko
        case $f in
        *.xz) xz -dc "$f" >"$ko" ;;
        *.zst) zstd -qdc "$f" >"$ko" ;;
        *) cp "$f" "$ko" ;;
        esac
        deps=$(tr '\0' '\n' <"$ko" | sed -n 's/^depends=//p' | head -1)
        for d in ${deps//,/ }; do add_module "$d"; done
        echo "$name.ko" >>"$stage/modules/order"
    }
    for m in $WANT_MODULES; do add_module "$m"; done
    cp "$kdir"/boot/config-* "$stage/"
    {
        echo "REPO='$repo'"
        echo "AGENT='$agent'"
        echo "KVER='$kver'"
        echo "ACCEL='$accel'"
        echo "FENTRY_OBJ='$vm/fentry.bpf.o'"
    } >"$stage/egb.env"
    cp "$repo/tests/vm/init" "$stage/init"
    cp "$list" "$stage/test-binaries"
    chmod +x "$stage/init"
    (cd "$stage" && find . | "$bb" cpio -o -H newc 2>/dev/null | gzip -1 >"$out")
    rm -rf "$stage"
}

# ---- one kernel -----------------------------------------------------------
declare -a summary=()
overall=0
run_kernel() {
    local pkg=$1 kdir kver vmlinuz log tmp vpid qpid rc t1
    t1=$SECONDS
    kdir=$(fetch_kernel "$pkg")
    kver=$(ls "$kdir/lib/modules" | head -1)
    vmlinuz=$(ls "$kdir"/boot/vmlinuz-* | head -1)
    log=$vm/logs/$kver.log
    tmp=$(mktemp -d /tmp/egb-vm.XXXXXX)
    build_initramfs "$kdir" "$kver" "$tmp/initrd.gz"

    # virtiofsd in a private mount namespace, serving a read-only bind of /
    mkdir "$tmp/ro"
    unshare -m --propagation private sh -c '
        mount --bind / "$1" && mount -o remount,bind,ro "$1" &&
        exec "$2" --socket-path="$3" -o source="$1" -o cache=auto -o no_posix_lock -o no_flock
    ' sh "$tmp/ro" "$virtiofsd" "$tmp/vfs.sock" >"$tmp/virtiofsd.log" 2>&1 &
    vpid=$!
    for _ in $(seq 100); do [ -S "$tmp/vfs.sock" ] && break; sleep 0.1; done
    [ -S "$tmp/vfs.sock" ] || { cat "$tmp/virtiofsd.log" >&2; kill "$vpid" 2>/dev/null; return 1; }

    echo "=== $pkg ($kver): booting; serial console in $log"
    : >"$log" # before tail opens it: never show the last run's console
    qemu-system-x86_64 "${accel_args[@]}" -m "$mem" -smp "$cpus" -nographic -no-reboot \
        -kernel "$vmlinuz" -initrd "$tmp/initrd.gz" \
        -append "console=ttyS0 panic=-1 loglevel=4" \
        -object memory-backend-memfd,id=mem,size="$mem",share=on -numa node,memdev=mem \
        -chardev socket,id=vfs,path="$tmp/vfs.sock" \
        -device vhost-user-fs-pci,chardev=vfs,tag=root \
        -nic none </dev/null >"$log" 2>&1 &
    qpid=$!
    # follow the console until qemu ends or the time is up
    tail -n +1 --pid="$qpid" -f "$log" | sed -u 's/^/  | /' &
    local tpid=$! waited=0
    while kill -0 "$qpid" 2>/dev/null; do
        if [ "$waited" -ge "$limit" ]; then
            echo "=== $kver: no poweroff after ${limit}s; killing qemu (pid $qpid)"
            kill "$qpid" 2>/dev/null || true
            sleep 2
            kill -9 "$qpid" 2>/dev/null || true
            break
        fi
        sleep 1
        waited=$((waited + 1))
    done
    wait "$qpid" 2>/dev/null || true
    wait "$tpid" 2>/dev/null || true
    kill "$vpid" 2>/dev/null || true
    wait "$vpid" 2>/dev/null || true
    rm -rf "$tmp"

    # the guest's verdicts (tr: the serial console ends lines with \r\n)
    local results features ready fentry verdict
    results=$(tr -d '\r' <"$log" | grep '^EGB-RESULT ' || true)
    features=$(tr -d '\r' <"$log" | sed -n 's/^EGB-FEATURES //p' | tail -1)
    fentry=$(tr -d '\r' <"$log" | sed -n 's/^EGB-FENTRY //p' | tail -1)
    ready=$(tr -d '\r' <"$log" | sed -n 's/^EGB-READY //p' | tail -1)
    verdict=$(judge "$log" "$list") || overall=1
    summary+=("$kver: $verdict in $((SECONDS - t1))s ($accel)")
    summary+=("  ready:    ${ready:-?}")
    summary+=("  features: ${features:-?}")
    summary+=("  fentry:   ${fentry:-not probed}")
    while read -r _ name res rc secs; do
        [ -n "${name:-}" ] && summary+=("$(printf '  %-22s %s (exit %s, %ss)' "$name" "$res" "$rc" "$secs")")
    done <<<"$results"
}

for s in "${series[@]}"; do
    pkg=$(resolve "$s") || { summary+=("$s: NOT AVAILABLE from the apt sources"); overall=1; continue; }
    run_kernel "$pkg" || { summary+=("$pkg: could not start the VM"); overall=1; }
done

echo
echo "==== kernel matrix ===="
printf '%s\n' "${summary[@]}"
exit $overall
