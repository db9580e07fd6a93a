"""Beyond one process, measured against peers in the same run: loading a tensor file (1 GiB,
then touching one row) and pickle protocol 5 round trips (out-of-band, 1 MiB to 256 MiB).

Run: python benchmarks/bench_files.py [--repeat N] [--json OUT]
Prints medians and ratios dlbridge / peer, and the RSS growth of `load` (measured in a fresh
subprocess, so nothing of the file is mapped or cached in this one's memory).
"""

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import safetensors.numpy
from safetensors import safe_open

import dlbridge

ROW = 12345


def median_ns(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times)


def load_rows(path, repeat):
    """dlbridge.load + one row vs safetensors.safe_open(numpy).get_tensor + one row, and the
    plain read of the file; all with the file in the page cache (the best case for readers)."""

    def ours():
        t = dlbridge.load(path)["w"]
        return float(np.from_dlpack(t)[ROW].sum())

    def peer():
        with safe_open(path, framework="numpy") as f:
            return float(f.get_tensor("w")[ROW].sum())

    def read_all():
        with open(path, "rb") as f:
            return len(f.read())

    a, b, c = median_ns(ours, repeat), median_ns(peer, repeat), median_ns(read_all, repeat)
    return [
        {"what": "load 1 GiB safetensors file + read one row", "ours_ns": a,
         "peer": "safetensors safe_open(numpy).get_tensor", "peer_ns": b, "ratio": a / b,
         "goal": "<= 1x"},
        {"what": "load 1 GiB safetensors file + read one row", "ours_ns": a,
         "peer": "reading the file", "peer_ns": c, "ratio": a / c, "goal": "far below"},
    ]


def pickle_rows(repeat):
    rows = []
    for mib in (1, 16, 256):
        a = np.ones((mib << 20) // 4, np.float32)
        t = dlbridge.from_dlpack(a)

        def round_trip(x):
            buffers = []
            data = pickle.dumps(x, protocol=5, buffer_callback=buffers.append)
            return pickle.loads(data, buffers=buffers)

        ours = median_ns(lambda t=t: round_trip(t), repeat)
        peer = median_ns(lambda a=a: round_trip(a), repeat)
        rows.append({"what": f"pickle 5 out-of-band round trip, {mib} MiB", "ours_ns": ours,
                     "peer": "numpy ndarray, same", "peer_ns": peer, "ratio": ours / peer,
                     "goal": "O(1) in size"})
    return rows


def load_rss(path):
    """RSS growth (KiB) of a fresh process: after `load`, and after touching one row."""
    script = textwrap.dedent(
        f"""
        import numpy as np, dlbridge
        def rss():
            for line in open("/proc/self/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        before = rss()
        t = dlbridge.load({path!r})["w"]
        loaded = rss()
        np.from_dlpack(t)[{ROW}].sum()
        print(loaded - before, rss() - before)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[0]), int(out[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "big.safetensors")
        safetensors.numpy.save_file({"w": np.ones((1 << 18, 1024), np.float32)}, path)  # 1 GiB
        rows = load_rows(path, args.repeat)
        loaded_kib, touched_kib = load_rss(path)
    rows += pickle_rows(args.repeat)
    print(f"{'dlbridge':48} {'ms':>10} | {'peer':42} {'ms':>10} | {'ratio':>7} goal")
    for r in rows:
        print(f"{r['what']:48} {r['ours_ns'] / 1e6:10.3f} | {r['peer']:42} "
              f"{r['peer_ns'] / 1e6:10.3f} | {r['ratio']:7.4f} {r['goal']}")
    print(f"RSS growth of load (1 GiB file, fresh process): {loaded_kib} KiB after load, "
          f"{touched_kib} KiB after reading one row")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "load_rss_kib": [loaded_kib, touched_kib]}, f, indent=1)


if __name__ == "__main__":
    main()
