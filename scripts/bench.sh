#!/usr/bin/env bash
# Every benchmark, peers in the same run, then one table of ratios (medians).
# Not part of the test command: it takes several minutes and wants a quiet machine.
source "$(dirname "$0")/env.sh"
# numpy's idle BLAS threads spin on the second core and skew every Python row.
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
out="$DLBRIDGE_CACHE/bench"
mkdir -p "$out"
cargo bench --all-features --bench core --bench ndarray --bench arrow --bench torch -- \
  --warm-up-time 1 --measurement-time "${BENCH_SECONDS:-3}" 2>&1 | grep -E '^[a-z_0-9]+/|time:' || true
maturin develop --quiet --release -m python/Cargo.toml
python benchmarks/bench_python.py --json "$out/python.json"
maturin develop --quiet --release -m benchmarks/pyo3-bench/Cargo.toml
python benchmarks/bench_extension.py
python benchmarks/memory_rss.py --json "$out/memory.json"
python benchmarks/bench_files.py --json "$out/files.json"
echo
python benchmarks/report.py "$CARGO_TARGET_DIR/criterion" "$out/python.json" "$out/memory.json" \
  "$out/files.json"
