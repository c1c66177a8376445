#!/usr/bin/env bash
# Crash soak: kills ferry-agent's install with SIGKILL at random instants (default 1,000
# times), lets the next run recover, and prints how many trees ended at the old version, at
# the new one, and mixed (goal: 0 mixed). Everything runs on 127.0.0.1 in temp directories.
#
#   bench/crash-soak.sh [KILLS]
set -euo pipefail
cd "$(dirname "$0")/.."
KILLS=${1:-1000}
cargo build --workspace --bins --locked -q --features ferry-agent/fault-injection
FERRY_SOAK_KILLS=$KILLS cargo test --locked -q --features ferry-agent/fault-injection -p ferry-e2e --test e2e \
    crash::random_sigkills_never_leave_a_mixed_tree -- --exact --nocapture 2>&1 \
    | grep -E "random kills|mixed tree|panicked|test result"
