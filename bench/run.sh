#!/usr/bin/env bash
# The benchmarks, as root, with one command:
#   ./bench/run.sh                  full run (about 25 minutes on 2 cores)
#   ./bench/run.sh --host-scale     full run plus the host-scale step at full size
#   ./bench/run.sh --quick          smoke run with tiny sizes, host scale included
#                                   (seconds; numbers meaningless)
#   ./bench/run.sh host-scale       only the host-scale step, full size (100, 1,000
#                                   and 5,000 processes x 100 descriptors; ~10 minutes)
#   ./bench/run.sh host-scale --sizes 1000 --rounds 1    ... any size (see the harness)
# Builds the static release agent and the harness, runs everything
# interleaved, and writes the report to target/bench/report.md
# (host-scale alone: target/bench/host-scale.md).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
cargo build --release --locked
(cd bench && cargo build --release --locked)
mkdir -p target/bench
mode=all report=target/bench/report.md
if [ "${1:-}" = host-scale ]; then
    shift
    mode=host-scale report=target/bench/host-scale.md
fi
EGHOSTBUSTER_BIN=target/x86_64-unknown-linux-gnu/release/eghostbuster \
    bench/target/x86_64-unknown-linux-gnu/release/eghostbuster-bench "$mode" "$@" | tee "$report"
