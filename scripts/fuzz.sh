#!/usr/bin/env bash
# Bounded fuzzing of every target in fuzz/ (cargo-fuzz, libFuzzer, nightly), starting from the
# committed corpus; new inputs go to a scratch folder. FUZZ_SECONDS per target (default 30).
# Prints executions per target; any crash fails the run and leaves its input in fuzz/artifacts.
source "$(dirname "$0")/env.sh"
seconds="${FUZZ_SECONDS:-30}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --quiet
fi
cd fuzz
export CARGO_TARGET_DIR="$DLBRIDGE_CACHE/target-fuzz"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in $(cargo +nightly fuzz list); do
  mkdir -p "$scratch/$target" "corpus/$target"
  log="$scratch/$target.log"
  if ! cargo +nightly fuzz run "$target" "$scratch/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz target $target FAILED" >&2
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  echo "fuzz target $target: $runs executions in ${seconds}s, no crash"
done
