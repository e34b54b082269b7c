#!/usr/bin/env bash
# The benchmarks, as root, with one command:
#   ./bench/run.sh            full run (about 25 minutes on 2 cores)
#   ./bench/run.sh --quick    smoke run with tiny sizes (seconds; numbers meaningless)
# Builds the static release agent and the harness, runs everything
# interleaved, and writes the report to target/bench/report.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
cargo build --release --locked
(cd bench && cargo build --release)
mkdir -p target/bench
EGHOSTBUSTER_BIN=target/x86_64-unknown-linux-gnu/release/eghostbuster \
    bench/target/x86_64-unknown-linux-gnu/release/eghostbuster-bench all "$@" | tee target/bench/report.md
