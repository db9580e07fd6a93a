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
    ratio = statistics.median(x / y for x, y in zip(a, b, strict=True))
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
    ba = bytearray(4096)
    mv = memoryview(ba).cast("f")
    # The copy kernel, 64 MiB float32 each: a contiguous copy is the yardstick (issue 16).
    c = np.ones((4096, 4096), dtype=np.float32)
    big = c.T  # transposed
    cube = np.ones((256, 256, 256), dtype=np.float32)
    p201, p120 = cube.transpose(2, 0, 1), cube.transpose(1, 2, 0)
    sliced = np.ones((8192, 12288), dtype=np.float32)[::2, ::3]  # 4096 x 4096 out

    def copy_rows(label, x):
        return [
            (f"copy: dlbridge.asarray({label}, copy=True)", lambda: dlbridge.asarray(x, copy=True),
             "np.ascontiguousarray(same)", lambda: np.ascontiguousarray(x), "<= 0.5x", 2),
            (f"copy: dlbridge.asarray({label}, copy=True)", lambda: dlbridge.asarray(x, copy=True),
             "np.array(contiguous, copy=True)", lambda: np.array(c, copy=True),
             "<= 2.0x" if label == "64 MiB f32.T" else "<= 2.5x", 2),
        ]

    rows = [
        # (what, dlbridge call, peer name, peer call, goal, calls per loop)
        ("export: np.from_dlpack(dlbridge.Tensor)", lambda: np.from_dlpack(dl),
         "np.from_dlpack(ndarray)", lambda: np.from_dlpack(nd), "<= 1.1x", 20000),
        ("export: torch.from_dlpack(dlbridge.Tensor)", lambda: torch.from_dlpack(dl),
         "torch.from_dlpack(torch.Tensor)", lambda: torch.from_dlpack(tt), "<= 1.1x", 20000),
        ("import: dlbridge.from_dlpack(torch.Tensor)", lambda: dlbridge.from_dlpack(tt),
         "np.from_dlpack(ndarray)", lambda: np.from_dlpack(nd), "<= 1.0x", 20000),
        ("import: dlbridge.from_dlpack(torch.Tensor)", lambda: dlbridge.from_dlpack(tt),
         "np.from_dlpack(torch.Tensor)", lambda: np.from_dlpack(tt), "info", 20000),
        ("import: dlbridge.from_dlpack(ndarray)", lambda: dlbridge.from_dlpack(nd),
         "np.from_dlpack(ndarray)", lambda: np.from_dlpack(nd), "<= 1.2x", 20000),
        ("buffer: dlbridge.asarray(memoryview)", lambda: dlbridge.asarray(mv),
         "np.asarray(memoryview)", lambda: np.asarray(mv), "<= 1.0x", 20000),
        ("buffer: dlbridge.asarray(bytearray)", lambda: dlbridge.asarray(ba),
         "np.asarray(bytearray)", lambda: np.asarray(ba), "<= 1.0x", 20000),
        ("copy: dlbridge.asarray(64 MiB f32, copy=True)", lambda: dlbridge.asarray(c, copy=True),
         "np.array(same, copy=True)", lambda: np.array(c, copy=True), "info", 2),
        *copy_rows("64 MiB f32.T", big),
        *copy_rows("64 MiB f32 .transpose(2,0,1)", p201),
        *copy_rows("64 MiB f32 .transpose(1,2,0)", p120),
        *copy_rows("f32[::2, ::3] (64 MiB out)", sliced),
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
    ipc_ns = pyarrow_ipc_round_trip_ns()
    print(f"pyarrow IPC write+read of a 256 MiB fixed_shape_tensor column: {ipc_ns / 1e6:.1f} ms "
          "(peer of the Rust case arrow_ipc_256MiB/write_reused_then_read_zero_copy)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": results, "pyarrow_ipc_256MiB_ns": ipc_ns}, f, indent=1)


def pyarrow_ipc_round_trip_ns(repeat=7):
    """pyarrow writing a 256 MiB (n, 32, 32) float32 fixed_shape_tensor column to an in-memory
    IPC file and reading it back without copying: the same job as the Rust IPC benchmark."""
    import pyarrow as pa

    values = np.full((256 << 20) // 4, 0.5, dtype=np.float32).reshape(-1, 32, 32)
    column = pa.FixedShapeTensorArray.from_numpy_ndarray(values)
    batch = pa.record_batch([column], names=["x"])

    def once():
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, batch.schema) as writer:
            writer.write_batch(batch)
        table = pa.ipc.open_file(sink.getvalue()).read_all()
        return table.column(0).chunk(0).to_numpy_ndarray()

    once()
    times = [timeit.timeit(once, number=1) * 1e9 for _ in range(repeat)]
    return statistics.median(times)


if __name__ == "__main__":
    main()
