"""Tensor files: `dlbridge.save` writes safetensors and Arrow IPC files that the `safetensors`
package and pyarrow read, `dlbridge.load` memory-maps either (and files those libraries wrote)
into read-only views of the mapping, without reading the data; malformed files raise
`ValueError`."""

import gc
import os
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pytest
import safetensors
import safetensors.numpy
import safetensors.torch
import torch

import dlbridge
from conftest import NUMPY_DTYPES, mapping_of, sample


def rss_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def assert_maps(t, path):
    """`t` views the mapping of the file at `path` (read-only, no copy)."""
    line = mapping_of(t.data_ptr)
    assert line is not None and str(path) in line, line
    assert t.readonly and not t.is_copied


TORCH_ONLY = [torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2]


def mixed():
    return {
        "f32": sample("float32", (3, 4)),
        "i64": sample("int64", (5,)),
        "u8": sample("uint8", (2, 2, 2)),
        "bool": sample("bool", (7,)),
        "f16": sample("float16", (4, 1)),
        "strided": np.arange(48.0).reshape(6, 8)[::2, 1::3],
        "fortran": np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3)),
        "scalar": np.array(2.5),
        "empty": np.zeros((0, 3), np.int16),
    }


def test_safetensors_files_round_trip_and_the_safetensors_package_reads_them(tmp_path):
    path = tmp_path / "model.safetensors"
    arrays = mixed()
    bf16 = torch.arange(12, dtype=torch.float32).reshape(3, 4).to(torch.bfloat16)
    dlbridge.save(path, {**arrays, "bf16": torch.from_dlpack(dlbridge.from_dlpack(bf16))})
    theirs = safetensors.torch.load_file(str(path))
    assert set(theirs) == set(arrays) | {"bf16"}
    for name, a in arrays.items():
        np.testing.assert_array_equal(theirs[name].numpy(), a, err_msg=name)
    assert torch.equal(theirs["bf16"], bf16)
    loaded = dlbridge.load(path)
    assert set(loaded) == set(theirs)
    for name, a in arrays.items():
        t = loaded[name]
        assert t.shape == a.shape and t.dtype == str(a.dtype), name
        if a.size:
            assert_maps(t, path)
        np.testing.assert_array_equal(np.from_dlpack(t), a, err_msg=name)
    assert torch.equal(torch.from_dlpack(loaded["bf16"]), bf16)


@pytest.mark.parametrize("dtype", NUMPY_DTYPES[:-1])  # every numpy dtype safetensors has
def test_files_the_safetensors_package_wrote_load_as_views(tmp_path, dtype):
    path = tmp_path / "theirs.safetensors"
    a = sample(dtype, (4, 6))
    safetensors.numpy.save_file({"x": a, "y": a[:1]}, str(path))
    loaded = dlbridge.load(path)
    assert_maps(loaded["x"], path)
    np.testing.assert_array_equal(np.from_dlpack(loaded["x"]), a)
    np.testing.assert_array_equal(np.from_dlpack(loaded["y"]), a[:1])


@pytest.mark.parametrize("dtype", TORCH_ONLY)
def test_torch_only_dtypes_through_safetensors(tmp_path, dtype):
    path = tmp_path / "w.safetensors"
    w = torch.linspace(-2, 2, 24).reshape(2, 12).to(dtype)
    safetensors.torch.save_file({"w": w}, str(path))
    t = dlbridge.load(path)["w"]
    assert_maps(t, path)
    assert torch.equal(torch.from_dlpack(t).view(torch.uint8), w.view(torch.uint8))
    dlbridge.save(tmp_path / "again.safetensors", {"w": t})
    back = safetensors.torch.load_file(str(tmp_path / "again.safetensors"))["w"]
    assert back.dtype == dtype and torch.equal(back.view(torch.uint8), w.view(torch.uint8))


def test_arrow_ipc_files_round_trip_and_pyarrow_reads_dtype_and_shape(tmp_path):
    path = tmp_path / "tensors.arrow"
    arrays = mixed()
    dlbridge.save(path, arrays)
    table = pa.ipc.open_file(path).read_all()
    assert table.column_names == list(arrays)  # one column per name, in order
    assert table.num_rows == 1
    for name, a in arrays.items():
        col = table.column(name)
        if a.ndim == 0:
            assert col.to_pylist() == [a.item()]
            continue
        assert isinstance(col.type, pa.FixedShapeTensorType), name
        assert tuple(col.type.shape) == a.shape, name
        if a.dtype != np.bool_:
            assert col.type.value_type == pa.from_numpy_dtype(a.dtype), name
            np.testing.assert_array_equal(col.chunk(0).to_numpy_ndarray()[0], a, err_msg=name)
    loaded = dlbridge.load(path)
    assert list(loaded) == list(arrays)
    for name, a in arrays.items():
        t = loaded[name]
        assert t.shape == a.shape and t.dtype == str(a.dtype), name
        if a.size and a.dtype != np.bool_:  # Arrow bit-packs booleans: those are copied
            assert_maps(t, path)
        np.testing.assert_array_equal(np.from_dlpack(t), a, err_msg=name)


def test_arrow_ipc_files_pyarrow_wrote_load_rows_first(tmp_path):
    path = tmp_path / "theirs.arrow"
    images = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    table = pa.table({
        "images": pa.FixedShapeTensorArray.from_numpy_ndarray(images),
        "labels": pa.array([3, 7], pa.int64()),
    })
    with pa.ipc.new_file(path, table.schema) as w:
        w.write_table(table)
    loaded = dlbridge.load(path)
    assert loaded["images"].shape == (2, 3, 4) and loaded["labels"].shape == (2,)
    assert_maps(loaded["images"], path)
    np.testing.assert_array_equal(np.from_dlpack(loaded["images"]), images)
    np.testing.assert_array_equal(np.from_dlpack(loaded["labels"]), [3, 7])


def test_the_format_comes_from_the_file_not_the_name(tmp_path):
    a = np.arange(5.0)
    dlbridge.save(tmp_path / "x.safetensors", {"a": a})
    os.rename(tmp_path / "x.safetensors", tmp_path / "x.arrow")
    np.testing.assert_array_equal(np.from_dlpack(dlbridge.load(tmp_path / "x.arrow")["a"]), a)
    dlbridge.save(tmp_path / "y.bin", {"a": a})  # not .safetensors: Arrow IPC
    assert pa.ipc.open_file(tmp_path / "y.bin").read_all().num_rows == 1


def test_loaded_tensors_keep_the_mapping_after_unlink_and_resave(tmp_path):
    for name in ("w.safetensors", "w.arrow"):
        path = tmp_path / name
        a = np.arange(1000.0)
        dlbridge.save(path, {"a": a})
        t = dlbridge.load(path)["a"]
        dlbridge.save(path, {"a": -a})  # replaced by a rename: the mapped file is untouched
        np.testing.assert_array_equal(np.from_dlpack(t), a)
        os.remove(path)
        gc.collect()
        np.testing.assert_array_equal(np.from_dlpack(t), a)
        assert not path.exists()


def test_a_write_through_torch_costs_a_private_page_never_the_file(tmp_path):
    """torch 2.13 ignores DLPack's read-only flag: the copy-on-write mapping absorbs the write."""
    path = tmp_path / "w.safetensors"
    dlbridge.save(path, {"w": np.zeros(1024, np.float32)})
    t = dlbridge.load(path)["w"]
    x = torch.from_dlpack(t)
    x[0] = 42.0  # a read-only flag torch does not honour; no crash
    assert np.from_dlpack(t)[0] == 42.0  # this process's private page
    assert np.from_dlpack(dlbridge.load(path)["w"])[0] == 0.0  # a new mapping: the file
    np.testing.assert_array_equal(safetensors.numpy.load_file(str(path))["w"], np.zeros(1024))


def test_a_file_another_process_saved_loads_here(tmp_path):
    path = tmp_path / "shared.safetensors"
    script = textwrap.dedent(
        f"""
        import numpy as np, dlbridge
        dlbridge.save({str(path)!r}, {{"a": np.arange(12, dtype=np.int32).reshape(3, 4)}})
        dlbridge.save({str(tmp_path / "shared.arrow")!r}, {{"b": np.ones((2, 2))}})
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    a = dlbridge.load(path)["a"]
    assert_maps(a, path)
    np.testing.assert_array_equal(np.from_dlpack(a), np.arange(12).reshape(3, 4))
    np.testing.assert_array_equal(np.from_dlpack(dlbridge.load(tmp_path / "shared.arrow")["b"]),
                                  np.ones((2, 2)))


@pytest.mark.parametrize("name", ["big.safetensors", "big.arrow"])
def test_loading_a_large_file_does_not_grow_rss_by_its_size(tmp_path, name):
    """64 MiB written by another process (so none of it is in this process's memory): loading
    maps it without reading, and touching one row reads about one row."""
    path = tmp_path / name
    script = textwrap.dedent(
        f"""
        import numpy as np, dlbridge
        dlbridge.save({str(path)!r}, {{"big": np.ones((4096, 4096), np.float32)}})
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert os.path.getsize(path) >= 64 << 20
    gc.collect()
    before = rss_kib()
    t = dlbridge.load(path)["big"]
    loaded = rss_kib()
    row = np.from_dlpack(t)[1234]
    assert row.sum() == 4096.0
    touched = rss_kib()
    assert loaded - before < 4 << 10, (before, loaded)  # < 4 MiB for a 64 MiB file
    assert touched - before < 8 << 10, (before, touched)


def test_malformed_and_missing_files_raise_typed_errors(tmp_path):
    good = tmp_path / "good.safetensors"
    dlbridge.save(good, {"a": np.arange(4.0), "b": np.arange(3)})
    raw = good.read_bytes()
    bad = tmp_path / "bad.bin"
    for cut in range(0, len(raw), 5):
        bad.write_bytes(raw[:cut])
        with pytest.raises(ValueError):
            dlbridge.load(bad)
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(ValueError, match="magic|malformed"):
        dlbridge.load(bad)
    header = b'{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,64]}}'
    bad.write_bytes(len(header).to_bytes(8, "little") + header + bytes(16))
    with pytest.raises(ValueError, match="safetensors"):
        dlbridge.load(bad)  # offsets past the end
    ipc = tmp_path / "good.arrow"
    dlbridge.save(ipc, {"a": np.arange(12.0).reshape(3, 4)})
    raw = ipc.read_bytes()
    for cut in range(0, len(raw), 11):
        bad.write_bytes(raw[:cut])
        with pytest.raises(ValueError):
            dlbridge.load(bad)
    with pytest.raises(FileNotFoundError):
        dlbridge.load(tmp_path / "nowhere.safetensors")
    with pytest.raises(TypeError):
        dlbridge.save(tmp_path / "x.arrow", {"a": object()})
    with pytest.raises(TypeError, match="bfloat16"):  # Arrow has no bfloat16
        dlbridge.save(tmp_path / "x.arrow", {"a": torch.zeros(2, dtype=torch.bfloat16)})
    assert not (tmp_path / "x.arrow").exists()
