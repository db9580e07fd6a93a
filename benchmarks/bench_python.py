"""dlbridge vs its peers, measured side by side in one run.

Run: python benchmarks/bench_python.py [--repeat N]
Prints per-call medians (over interleaved repeats of timeit loops) and the median ratio
dlbridge / peer.
"""

import argparse
import json
import statistics
import timeit

import numpy as np
import torch

import dlbridge


def paired_ns(ours, peer, number, repeat):
    """Interleave the two timings (the machine may be busy): medians per call and the median
    of the per-round ratios."""
    a, b = [], []
    for _ in range(repeat):
        a.append(timeit.timeit(ours, number=number) / number * 1e9)
        b.append(timeit.timeit(peer, number=number) / number * 1e9)
    ratio = statistics.median(x / y for x, y in zip(a, b))
    return statistics.median(a), statistics.median(b), ratio


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=21)
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args()
    r = args.repeat

    nd = np.arange(1024, dtype=np.float32).reshape(32, 32)
    tt = torch.arange(1024, dtype=torch.float32).reshape(32, 32)
    dl = dlbridge.from_dlpack(nd)
    mv = memoryview(bytearray(4096)).cast("f")
    big = np.ones((4096, 4096), dtype=np.float32).T  # 64 MiB, transposed

    rows = [
        # (what, dlbridge call, peer name, peer call, goal, calls per loop)
        ("export: np.from_dlpack(dlbridge.Tensor)", lambda: np.from_dlpack(dl),
         "np.from_dlpack(ndarray)", lambda: np.from_dlpack(nd), "<= 1.5x", 20000),
        ("import: dlbridge.from_dlpack(torch.Tensor)", lambda: dlbridge.from_dlpack(tt),
         "np.from_dlpack(torch.Tensor)", lambda: np.from_dlpack(tt), "< 1x", 20000),
        ("import: dlbridge.from_dlpack(torch.Tensor)", lambda: dlbridge.from_dlpack(tt),
         "torch.from_dlpack(ndarray)", lambda: torch.from_dlpack(nd), "< 1x", 20000),
        ("import: dlbridge.from_dlpack(ndarray)", lambda: dlbridge.from_dlpack(nd),
         "np.from_dlpack(ndarray)", lambda: np.from_dlpack(nd), "info", 20000),
        ("buffer: dlbridge.asarray(memoryview)", lambda: dlbridge.asarray(mv),
         "np.asarray(memoryview)", lambda: np.asarray(mv), "<= 1.5x", 20000),
        ("copy: dlbridge.asarray(64 MiB f32.T, copy=True)",
         lambda: dlbridge.asarray(big, copy=True),
         "np.ascontiguousarray(same)", lambda: np.ascontiguousarray(big), "<= 1x", 2),
    ]
    print(f"{'dlbridge':52} {'ns':>12} | {'peer':30} {'ns':>12} | {'ratio':>6} goal")
    print("-" * 130)
    results = []
    for what, ours, peer_name, peer, goal, number in rows:
        ours(), peer()  # warm up
        a, b, ratio = paired_ns(ours, peer, number, r)
        print(f"{what:52} {a:12.0f} | {peer_name:30} {b:12.0f} | {ratio:6.2f} {goal}")
        results.append({"what": what, "ours_ns": a, "peer": peer_name, "peer_ns": b,
                        "ratio": ratio, "goal": goal})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
