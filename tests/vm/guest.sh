#!/bin/bash
# PID 1 inside the matrix VM, on the host's root filesystem (read-only,
# virtiofs) with tmpfs on /tmp, /run, /var, /boot. Prints the agent's own
# feature probing and runs every test binary as root with
# EGHOSTBUSTER_REQUIRE_BPF=1; tests/vm/run.sh reads the EGB-* lines from the
# serial console. Powers the VM off at the end, whatever happened.
. /run/egb.env
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/tmp EGHOSTBUSTER_REQUIRE_BPF=1 RUST_BACKTRACE=1 TERM=dumb
# under TCG every timer is late by the emulation: tests that bound lateness widen it
[ "$ACCEL" = tcg ] && export EGHOSTBUSTER_EMULATED_VM=1
off() { sync; echo o >/proc/sysrq-trigger; sleep 60; }
trap off EXIT

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t bpf bpf /sys/fs/bpf
# /etc writable in the guest only (an overlay on tmpfs): the security tests
# add and remove test users; the host's /etc is never written
mkdir -p /run/etc-rw/up /run/etc-rw/work
mount -t overlay overlay -o lowerdir=/etc,upperdir=/run/etc-rw/up,workdir=/run/etc-rw/work /etc ||
    echo "EGB: no writable /etc (overlay): tests that add users will fail"
mount -t tracefs tracefs /sys/kernel/tracing
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
ip link set lo up
hostname egb-vm
echo 1 >/proc/sys/kernel/sysrq

echo "EGB-KERNEL $(uname -r)"
echo "EGB-BTF $(ls -l /sys/kernel/btf/vmlinux 2>&1)"

# The agent's own probing: its ready line and the status file's features.
# Scoped to a directory and a port nobody uses: it touches nothing here.
mkdir -p /tmp/x
timeout -s INT 20 "$AGENT" run --no-pin --path /tmp/x --port 9 \
    --status-file /tmp/s.json >/tmp/agent.log 2>&1 &
apid=$!
for _ in $(seq 100); do grep -q 'ready' /tmp/agent.log && break; sleep 0.1; done
sleep 0.5
echo "EGB-READY $(grep -m1 'ready' /tmp/agent.log)"
echo "EGB-FEATURES $(jq -c '.features' /tmp/s.json 2>/dev/null)"
kill -INT "$apid" 2>/dev/null
wait "$apid"
echo "EGB-AGENT-EXIT $?"

# Optional (issue 8): would fentry/fexit work here? Load with bpftool, attach
# with a few lines of python (bpftool 7.1 cannot attach tracing programs).
if [ -s "$FENTRY_OBJ" ] && command -v bpftool >/dev/null; then
    if err=$(bpftool prog loadall "$FENTRY_OBJ" /sys/fs/bpf/egb_fentry 2>&1); then
        echo "EGB-FENTRY loads; $(python3 "$REPO/tests/vm/fentry_attach.py" /sys/fs/bpf/egb_fentry/probe_fentry /sys/fs/bpf/egb_fentry/probe_fexit 2>&1 | tail -1)"
    else
        echo "EGB-FENTRY refused: $(echo "$err" | grep -v -i warning | grep . | tail -1)"
    fi
    rm -rf /sys/fs/bpf/egb_fentry
fi
sed 's/^/agent: /' /tmp/agent.log | head -40

cd "$REPO"
# Every listed binary, each with stdin from /dev/null: a test (or a program
# it starts) that reads stdin must not eat the rest of the list. The runner
# counts the results against the list, so a binary skipped for any reason
# fails the kernel.
mapfile -t binaries </run/test-binaries
for line in "${binaries[@]}"; do
    name=${line%% *} exe=${line#* }
    echo "EGB-START $name"
    t=$SECONDS
    timeout -k 10 600 "$exe" --test-threads=2 </dev/null
    rc=$?
    res=PASS
    [ "$rc" = 0 ] || res=FAIL
    echo "EGB-RESULT $name $res $rc $((SECONDS - t))"
done
echo "EGB-DONE ${#binaries[@]}"
