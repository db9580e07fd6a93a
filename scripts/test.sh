#!/usr/bin/env bash
# Every check, on a fresh machine or a warm one: formatting, lints and the Rust tests with no
# features and with each feature alone, docs, the Rust tests with all features (against real
# libtorch, Arrow and ndarray), every example, the Python module
# built by maturin, ruff, stubtest on its stub and its pytest suite (real numpy, torch, jax,
# pyarrow), Miri on the core, and bounded fuzzing. DLBRIDGE_QUICK=1 skips Miri and fuzzing.
source "$(dirname "$0")/env.sh"
step() { printf '\n== %s\n' "$*"; }

step "rustfmt (crate and fuzz targets)"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml --all -- --check

step "clippy (all features, all targets)"
cargo clippy --quiet --all-targets --all-features -- -D warnings
cargo clippy --quiet -p dlbridge-python -p dlbridge-example -p dlbridge-pyo3-bench -- -D warnings

step "clippy and tests with no features, then with each feature alone (the feature gates hold)"
for feature in "" ndarray arrow arrow-ipc safetensors tch pyo3; do
  echo "-- features: ${feature:-none}"
  cargo clippy --quiet --lib --tests --no-default-features ${feature:+--features "$feature"} \
    -- -D warnings
  cargo test --quiet --no-default-features ${feature:+--features "$feature"} --lib --tests
done

step "rustdoc (no warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --quiet --no-deps --all-features

step "Rust tests (all features)"
cargo test --all-features

step "Rust examples"
for example in tour ndarray_compute arrow_ipc torch_roundtrip stride_tricks c_struct_buffer; do
  if [ -f "examples/$example.rs" ]; then
    echo "-- example $example"
    cargo run --quiet --all-features --example "$example" >/dev/null
  fi
done

step "Python module (maturin; the python/ crate, built on dlbridge's public pyo3 API)"
maturin develop --quiet --release -m python/Cargo.toml
# The example extension and the benchmark extension: two more crates on the same public API,
# which python_tests/test_extension.py uses together (the borrow registry spans extensions).
maturin develop --quiet --release -m examples/pyo3-extension/Cargo.toml
maturin develop --quiet --release -m benchmarks/pyo3-bench/Cargo.toml
step "ruff, and stubtest (python/dlbridge.pyi against the built module)"
python -m ruff check .
# Run from python/: mypy then reads ./dlbridge.pyi, the stub of record.
(cd python && python -m mypy.stubtest dlbridge --allowlist ../python_tests/stubtest-allowlist.txt)
step "pytest and the Python examples"
python -m pytest python_tests -q -p no:cacheprovider
for example in examples/python/*.py; do
  [ -f "$example" ] || continue
  echo "-- example $example"
  python "$example" >/dev/null
done

if [ "${DLBRIDGE_QUICK:-0}" != "1" ]; then
  step "Miri (core: descriptor, views, copy and cast kernels, DLPack; ndarray interop; soundness cases)"
  if ! rustup toolchain list | grep '^nightly' >/dev/null; then
    rustup toolchain install nightly --profile minimal
  fi
  if ! rustup +nightly component list --installed 2>/dev/null | grep '^miri' >/dev/null; then
    rustup +nightly component add miri rust-src
  fi
  # cargo-miri records the checkout's path in the test "binaries" it builds, and cargo may
  # take another checkout's as fresh (it names them by paths relative to the workspace): one
  # folder per checkout, or this machine's work copy and a CI clone run each other's.
  miri_target="$DLBRIDGE_CACHE/target-miri-$(printf %s "$PWD" | cksum | cut -d' ' -f1)"
  MIRIFLAGS="-Zmiri-disable-isolation" CARGO_TARGET_DIR="$miri_target" \
    PROPTEST_CASES=4 timeout 1500 cargo +nightly miri test --quiet --features ndarray \
      --lib --test dlpack --test views --test ndarray --test soundness --test cast
  step "clippy (fuzz targets)"
  (cd fuzz && CARGO_TARGET_DIR="$DLBRIDGE_CACHE/target-fuzz-clippy" \
    cargo clippy --quiet --bins -- -D warnings)
  if [ -x scripts/fuzz.sh ]; then
    step "fuzzing (bounded)"
    scripts/fuzz.sh
  fi
fi
step "all checks passed"
