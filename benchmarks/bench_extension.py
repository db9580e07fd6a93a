"""dlbridge's pyo3 conversions against rust-numpy and dlpark, peers in one extension
(benchmarks/pyo3-bench), timed in the same run. Prints the ratios for the README table.

    maturin develop --release -m benchmarks/pyo3-bench/Cargo.toml
    python benchmarks/bench_extension.py [--repeat N]
"""

import argparse
import timeit

import dlbridge_pyo3_bench as b
import numpy as np
import torch


def best_ns(fn, number=20000, repeat=7):
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e9


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    a = np.zeros(128)
    t = torch.zeros(128, dtype=torch.float64)
    rows = [
        ("TensorView arg, numpy", lambda: b.take_dlbridge(a),
         "PyReadonlyArrayDyn<f64> arg", lambda: b.take_numpy(a), "<= 1.0x"),
        ("TensorView arg, torch", lambda: b.take_dlbridge(t),
         "dlpark::python::from_dlpack, torch", lambda: b.take_dlpark(t), "<= 1.0x"),
        ("TensorView arg, numpy", lambda: b.take_dlbridge(a),
         "dlpark::python::from_dlpack, numpy", lambda: b.take_dlpark(a), "info"),
        ("Framework::Numpy.wrap(1 KiB Vec)", b.wrap_dlbridge,
         "PyArray1::from_vec(1 KiB Vec)", b.wrap_numpy, "<= 1.5x"),
        ("return TensorView (1 KiB Vec)", b.return_tensor,
         "PyArray1::from_vec(1 KiB Vec)", b.wrap_numpy, "info"),
    ]
    # The cast kernel against numpy's astype (issue 16): 64 MiB of float32 to float64, as laid
    # out and transposed (timed per call, a few calls per round).
    x32 = np.ones((4096, 4096), dtype=np.float32)
    rows += [
        ("cast f32 -> f64, 64 MiB (ms)", lambda: b.cast_to_f64_dlbridge(x32),
         "x.astype(np.float64)", lambda: x32.astype(np.float64), "<= 0.5x", 3),
        ("cast f32.T -> f64 C order, 64 MiB (ms)", lambda: b.cast_to_f64_dlbridge(x32.T),
         "np.ascontiguousarray(x.T, dtype=f64)",
         lambda: np.ascontiguousarray(x32.T, dtype=np.float64), "<= 0.5x", 3),
    ]
    print(f"{'dlbridge':40s} {'ns':>7s} | {'peer':36s} {'ns':>7s} | ratio  goal")
    for row in rows:
        name, fn, peer, peer_fn, goal = row[:5]
        number = row[5] if len(row) > 5 else 20000
        ours = best_ns(fn, number=number, repeat=args.repeat)
        theirs = best_ns(peer_fn, number=number, repeat=args.repeat)
        print(f"{name:40s} {ours:7.0f} | {peer:36s} {theirs:7.0f} | {ours / theirs:5.2f}  {goal}")


if __name__ == "__main__":
    main()
