#!/usr/bin/env bash
# Runs every fuzz target for longer (default 10 minutes each), keeping the corpus in fuzz/corpus.
#   bench/fuzz-long.sh [SECONDS]
exec "$(dirname "$0")/../scripts/fuzz" "${1:-600}"
