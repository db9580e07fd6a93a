"""Peak-RSS growth of passing a 1 GiB tensor through numpy -> dlbridge -> torch -> dlbridge ->
Arrow -> numpy. Zero copy means the growth stays a tiny fraction of the tensor (goal: < 1%).

Run: python benchmarks/memory_rss.py [--json PATH]
"""

import argparse
import json
import resource

import numpy as np
import pyarrow as pa
import torch

import dlbridge

GIB = 1 << 30


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    args = ap.parse_args()

    src = np.ones(GIB // 4, dtype=np.float32)  # pages touched: they count in RSS
    # Warm every code path on a small tensor so first-use allocations do not count.
    small = np.ones(16, dtype=np.float32)
    np.asarray(pa.array(dlbridge.from_dlpack(torch.from_dlpack(dlbridge.from_dlpack(small)))))
    before = peak_rss_bytes()

    t1 = dlbridge.from_dlpack(src)
    tt = torch.from_dlpack(t1)
    t2 = dlbridge.from_dlpack(tt)
    arrow = pa.array(t2)
    back = arrow.to_numpy(zero_copy_only=True)
    assert np.shares_memory(back, src), "a hop copied"
    assert back.ctypes.data == src.ctypes.data == tt.data_ptr() == t2.data_ptr

    growth = peak_rss_bytes() - before
    share = growth / GIB
    print(f"1 GiB numpy -> dlbridge -> torch -> dlbridge -> Arrow -> numpy: "
          f"peak RSS grew {growth / 1024:.0f} KiB ({share:.4%} of the tensor); same address at every hop")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"growth_bytes": growth, "share": share}, f)
    assert share < 0.01, "more than 1% of the tensor was allocated"


if __name__ == "__main__":
    main()
