#!/usr/bin/env bash
# Installs what building and testing eghostbuster needs, only what is
# missing, on Debian or Ubuntu, as root. Sourced by start.sh and test.sh.
set -euo pipefail

[ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"

need=()
# python3: scripts/gen-copyright.sh; systemd: systemd-analyze for the
# package test (the units are verified, never run here); adduser: the
# package's log user.
for pkg in clang llvm libelf-dev zlib1g-dev libzstd-dev pkg-config make gcc libc6-dev \
           util-linux iproute2 ca-certificates curl lintian runit man-db \
           python3 python3-venv systemd adduser socat; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${need[@]}"
fi

# Real daemons the tests drive (tests/real_daemons.rs, tests/ipc.rs): not
# for start.sh. Their packages would start system services on install
# (nginx on port 80, a PostgreSQL cluster): where no policy-rc.d says
# otherwise, one is put in place for the install only, so none starts.
if [ "${EGB_DEPS:-}" != run ]; then
    daemons=()
    for pkg in nginx-light gunicorn python3-gunicorn; do
        dpkg -s "$pkg" >/dev/null 2>&1 || daemons+=("$pkg")
    done
    if [ "${#daemons[@]}" -gt 0 ]; then
        echo "installing (for the tests, no service started): ${daemons[*]}"
        policy=
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            policy=/usr/sbin/policy-rc.d
            printf '#!/bin/sh\nexit 101\n' >"$policy"
            chmod 755 "$policy"
        fi
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        rc=0
        apt-get install -y -q --no-install-recommends "${daemons[@]}" || rc=$?
        if [ -n "$policy" ]; then rm -f "$policy"; fi
        [ "$rc" = 0 ] || exit "$rc"
    fi
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "installing the Rust toolchain (rustup, stable)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
    PATH="$HOME/.cargo/bin:$PATH"
fi
# Helm's engine for the chart tests (tests/deploy.rs), in its own venv;
# start.sh (EGB_DEPS=run) does not need it.
EGHOSTBUSTER_HELM_VENV=${EGHOSTBUSTER_HELM_VENV:-/opt/eghostbuster-test/helm}
if [ "${EGB_DEPS:-}" != run ] && ! "$EGHOSTBUSTER_HELM_VENV/bin/python" -c 'import helm_python' 2>/dev/null; then
    echo "installing helm-python-sdk (Helm's engine, for the chart tests) in $EGHOSTBUSTER_HELM_VENV"
    python3 -m venv "$EGHOSTBUSTER_HELM_VENV"
    "$EGHOSTBUSTER_HELM_VENV/bin/pip" install -q --no-deps --only-binary :all: --require-hashes \
        -r "$(dirname "${BASH_SOURCE[0]}")/helm-requirements.txt"
fi
export EGHOSTBUSTER_HELM_VENV

rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt 2>/dev/null || true
export PATH
