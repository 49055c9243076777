#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 30 s each) from its committed corpus,
# with libFuzzer through cargo-fuzz. Exits non-zero on the first crash, leaving the input in
# the printed artifacts directory. New corpus entries go to a temporary directory, so the
# committed corpus only changes when someone copies a useful input in on purpose.
#
# Usage: tests/fuzz/run.sh [seconds per target]
# cargo-fuzz needs nightly-only rustc flags; on the one stable toolchain here
# RUSTC_BOOTSTRAP=1 allows them, and `--sanitizer none` (the sanitizers need nightly's
# runtime) keeps libFuzzer's coverage guidance and its crash detection (a panic aborts).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_EACH="${1:-30}"
TARGET_DIR="${HERALD_FUZZ_TARGET_DIR:-$HOME/.cache/herald-fuzz-target}"
export RUSTC_BOOTSTRAP=1
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "run.sh: installing cargo-fuzz 0.13.2" >&2
  cargo install cargo-fuzz --locked --version 0.13.2 >&2
fi
fuzz() {
  local command="$1"
  shift
  cargo fuzz "$command" --fuzz-dir tests/fuzz --sanitizer none --target-dir "$TARGET_DIR" "$@"
}
fuzz build
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
for target in $(cargo fuzz list --fuzz-dir tests/fuzz); do
  mkdir -p "$WORK/corpus/$target" "$WORK/artifacts/$target"
  echo "run.sh: fuzzing $target for ${SECONDS_EACH}s"
  if ! fuzz run "$target" "$WORK/corpus/$target" "tests/fuzz/corpus/$target" -- \
      -max_total_time="$SECONDS_EACH" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$WORK/artifacts/$target/" -print_final_stats=1 >"$WORK/$target.log" 2>&1; then
    tail -40 "$WORK/$target.log" >&2
    mkdir -p /tmp/herald-fuzz-artifacts
    cp -r "$WORK/artifacts/$target" /tmp/herald-fuzz-artifacts/ 2>/dev/null || true
    echo "run.sh: $target crashed; the input is in /tmp/herald-fuzz-artifacts/$target" >&2
    exit 1
  fi
  grep -E "^stat::number_of_executed_units|^Done" "$WORK/$target.log" | tr '\n' ' '
  echo
done
