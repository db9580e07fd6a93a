"""An A/B of two builds of the bench extension (benchmarks/pyo3-bench), run alternately in fresh
processes: for changes smaller than this machine's run-to-run noise (up to 15%). Prints, per
round and build, the per-call cost of each row and its ratio to the peer in the same process.

Build each version in its own target folder: cargo names a checkout's artifacts by paths
relative to the workspace, so two checkouts sharing one overwrite each other's libraries.

    CARGO_TARGET_DIR=/tmp/tgt_a maturin build --release -m A/benchmarks/pyo3-bench/Cargo.toml -o /tmp/whl_a
    pip install --no-deps --target /tmp/mod_a /tmp/whl_a/*.whl     # the same for B
    OPENBLAS_NUM_THREADS=1 python benchmarks/ab_extension.py /tmp/mod_a /tmp/mod_b
"""

import argparse
import subprocess
import sys
import timeit

ROWS = ["numpy arg", "rust-numpy arg", "empty fn", "torch arg", "dlpark arg", "wrap", "from_vec"]


def measure(folder, repeat, number):
    sys.path.insert(0, folder)
    import dlbridge_pyo3_bench as b
    import numpy as np
    import torch

    assert b.__file__.startswith(folder), b.__file__
    a = np.zeros(128)
    t = torch.zeros(128, dtype=torch.float64)
    calls = [
        (b.take_dlbridge, a), (b.take_numpy, a), (b.take_nothing, a),
        (b.take_dlbridge, t), (b.take_dlpark, t), (b.wrap_dlbridge, None), (b.wrap_numpy, None),
    ]
    best = [float("inf")] * len(calls)
    for _ in range(repeat):
        for k, (fn, arg) in enumerate(calls):
            stmt = "fn()" if arg is None else "fn(arg)"
            ns = timeit.timeit(stmt, globals={"fn": fn, "arg": arg}, number=number) / number * 1e9
            best[k] = min(best[k], ns)
    print(" ".join(f"{v:.1f}" for v in best))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("folders", nargs="*", help="site folders, each holding one build")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--number", type=int, default=20000)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure, args.repeat, args.number)
        return
    print(f"{'build':24s} " + " ".join(f"{r:>14s}" for r in ROWS) + "   numpy  torch   wrap")
    for _ in range(args.rounds):
        for folder in args.folders:
            out = subprocess.run(
                [sys.executable, __file__, "--measure", folder, "--repeat", str(args.repeat),
                 "--number", str(args.number)],
                check=True, capture_output=True, text=True,
            ).stdout.split()
            ns = [float(v) for v in out]
            ratios = (ns[0] / ns[1], ns[3] / ns[4], ns[5] / ns[6])
            print(f"{folder[-24:]:24s} " + " ".join(f"{v:14.1f}" for v in ns)
                  + "   " + "  ".join(f"{r:5.2f}" for r in ratios))


if __name__ == "__main__":
    main()
