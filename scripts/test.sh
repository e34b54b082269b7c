#!/usr/bin/env bash
# The whole test suite, as root: formatting, lints, unit tests, the
# privileged end-to-end tests (real BPF, real processes), and the static
# release binary. With EGHOSTBUSTER_REQUIRE_BPF=1 a skipped privileged test
# is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || echo "test.sh: not root: the privileged tests will skip" >&2
. scripts/deps.sh

cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked

cargo build --release --locked
bin=target/x86_64-unknown-linux-gnu/release/eghostbuster
ldd "$bin" 2>&1 | tee /dev/stderr | grep -Eq "not a dynamic executable|statically linked"
"$bin" --version
echo "release binary: $(stat -c %s "$bin") bytes, static"
