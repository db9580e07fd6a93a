"""One table of ratios against peers, from the criterion results of `cargo bench` and the JSON
files of bench_python.py and memory_rss.py, all produced by the same `scripts/bench.sh` run.

Run: python benchmarks/report.py CRITERION_DIR PYTHON_JSON MEMORY_JSON [FILES_JSON]
"""

import json
import os
import sys

# (label, ours, peer, goal): criterion ids "group/function[/parameter]".
RUST_PAIRS = [
    ("DLPack export+import round trip, 1 KiB", "dlpack_round_trip/dlbridge/1KiB",
     "dlpack_round_trip/dlpark/1KiB", "<= 1x"),
    ("DLPack export+import round trip, 1 GiB", "dlpack_round_trip/dlbridge/1GiB",
     "dlpack_round_trip/dlpark/1GiB", "<= 1x"),
    ("import of a foreign (dlpark-made) tensor, 1 KiB", "dlpack_round_trip/dlpark_export_dlbridge_import/1KiB",
     "dlpack_round_trip/dlpark/1KiB", "info"),
    ("ndarray Array -> TensorView -> ArrayView, 1 KiB", "ndarray/dlbridge_owned/1KiB",
     "ndarray/dlpark_owned/1KiB", "<= 1x"),
    ("ndarray Array -> TensorView -> ArrayView, 1 GiB", "ndarray/dlbridge_owned/1GiB",
     "ndarray/dlpark_owned/1GiB", "<= 1x"),
    ("copy kernel: transposed 64 MiB f32 -> C order", "copy_64MiB_f32/dlbridge_transposed_to_c",
     "copy_64MiB_f32/ndarray_transposed_as_standard_layout", "<= 1x"),
    ("copy kernel: transposed 64 MiB f32 -> C order", "copy_64MiB_f32/dlbridge_transposed_to_c",
     "copy_64MiB_f32/alloc_and_memcpy_same_bytes", "info"),
    ("copy kernel: contiguous 64 MiB f32 -> C order", "copy_64MiB_f32/dlbridge_contiguous_to_c",
     "copy_64MiB_f32/alloc_and_memcpy_same_bytes", "<= 1.5x"),
    ("copy kernel: transposed vs contiguous, 64 MiB f32", "copy_64MiB_f32/dlbridge_transposed_to_c",
     "copy_64MiB_f32/dlbridge_contiguous_to_c", "<= 2.0x"),
    ("copy kernel: permute (2,0,1) vs contiguous, 64 MiB f32", "copy_64MiB_f32/dlbridge_permute_201_to_c",
     "copy_64MiB_f32/dlbridge_contiguous_to_c", "<= 2.5x"),
    ("copy kernel: permute (1,2,0) vs contiguous, 64 MiB f32", "copy_64MiB_f32/dlbridge_permute_120_to_c",
     "copy_64MiB_f32/dlbridge_contiguous_to_c", "<= 2.5x"),
    ("copy kernel: [::2, ::3] vs contiguous, 64 MiB f32 out", "copy_64MiB_f32/dlbridge_slice_2_3_to_c",
     "copy_64MiB_f32/dlbridge_contiguous_to_c", "<= 2.5x"),
    ("copy kernel: permute (2,0,1), 64 MiB f32", "copy_64MiB_f32/dlbridge_permute_201_to_c",
     "copy_64MiB_f32/ndarray_permute_201_as_standard_layout", "info"),
    ("copy kernel: [::2, ::3], 64 MiB f32 out", "copy_64MiB_f32/dlbridge_slice_2_3_to_c",
     "copy_64MiB_f32/ndarray_slice_2_3_as_standard_layout", "info"),
    ("torch: TensorView -> tch::Tensor, 1 KiB", "torch/dlbridge_to_tch/1KiB",
     "torch/from_blob/1KiB", "info"),
    ("torch: tch::Tensor -> TensorView, 1 KiB", "torch/dlbridge_from_tch/1KiB",
     "torch/aten_dlpack_round_trip/1KiB", "info"),
]

# Zero-copy paths whose cost must not depend on the size (1 GiB vs 1 KiB).
FLAT = [
    "dlpack_round_trip/dlbridge",
    "ndarray/dlbridge_owned",
    "ndarray/dlbridge_borrowed",
    "arrow_zero_copy/buffer_round_trip",
    "arrow_zero_copy/tensor_column_round_trip",
    "torch/dlbridge_to_tch",
    "torch/dlbridge_from_tch",
]


def median_ns(root, bench_id):
    path = os.path.join(root, *bench_id.split("/"), "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["median"]["point_estimate"]
    except (OSError, KeyError, ValueError):
        return None


def fmt(ns):
    if ns is None:
        return "n/a"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def main():
    root, py_json, mem_json = sys.argv[1:4]
    files_json = sys.argv[4] if len(sys.argv) > 4 else None
    print("| what | dlbridge | peer | ratio | goal |")
    print("|---|---|---|---|---|")
    for label, ours, peer, goal in RUST_PAIRS:
        a, b = median_ns(root, ours), median_ns(root, peer)
        if a is None or b is None:
            continue
        print(f"| {label} | {fmt(a)} | {peer.split('/')[1]}: {fmt(b)} | {a / b:.2f}x | {goal} |")
    py = json.load(open(py_json)) if os.path.exists(py_json) else {"rows": []}
    ipc = median_ns(root, "arrow_ipc_256MiB/write_reused_then_read_zero_copy")
    if ipc is not None and py.get("pyarrow_ipc_256MiB_ns"):
        peer = py["pyarrow_ipc_256MiB_ns"]
        print(f"| Arrow IPC file write+read, 256 MiB fixed_shape_tensor column | {fmt(ipc)} | "
              f"pyarrow: {fmt(peer)} | {ipc / peer:.2f}x | info |")
    if py["rows"]:
        for row in py["rows"]:
            print(f"| Python {row['what']} | {fmt(row['ours_ns'])} | {row['peer']}: "
                  f"{fmt(row['peer_ns'])} | {row['ratio']:.2f}x | {row['goal']} |")
    for bench in FLAT:
        small, large = median_ns(root, bench + "/1KiB"), median_ns(root, bench + "/1GiB")
        if small is None or large is None:
            continue
        print(f"| zero-copy {bench}: 1 GiB vs 1 KiB | {fmt(large)} | 1 KiB: {fmt(small)} | "
              f"{large / small:.2f}x | ~1x (O(ndim)) |")
    if files_json and os.path.exists(files_json):
        files = json.load(open(files_json))
        for row in files["rows"]:
            print(f"| Python {row['what']} | {fmt(row['ours_ns'])} | {row['peer']}: "
                  f"{fmt(row['peer_ns'])} | {row['ratio']:.4g}x | {row['goal']} |")
        loaded, touched = files["load_rss_kib"]
        print(f"| RSS growth of `dlbridge.load` of a 1 GiB file (fresh process) | {loaded} KiB, "
              f"{touched} KiB after reading one row | file: 1048576 KiB | "
              f"{touched / 1048576:.2%} | far below the file |")
    if os.path.exists(mem_json):
        mem = json.load(open(mem_json))
        print(f"| peak RSS growth, 1 GiB numpy->dlbridge->torch->dlbridge->Arrow->numpy | "
              f"{mem['growth_bytes'] / 1024:.0f} KiB | 1 GiB tensor | {mem['share']:.4%} | < 1% |")


if __name__ == "__main__":
    main()
