"""numpy's __array_interface__ (version 3), both ways."""

import gc
import sys
import weakref

import numpy as np
import pytest
import torch

import dlbridge
from conftest import NUMPY_DTYPES, addr, sample


class Iface:
    """An object exposing only __array_interface__ (no buffer, no DLPack)."""

    def __init__(self, arr, **overrides):
        self.arr = arr
        self.overrides = overrides

    @property
    def __array_interface__(self):
        d = dict(self.arr.__array_interface__)
        d.update(self.overrides)
        return d


@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_import_every_dtype(dtype):
    a = sample(dtype, (4, 6))[::2, ::-3]
    src = Iface(a)
    t = dlbridge.asarray(src)
    assert t.dtype == dtype and t.data_ptr == addr(a)
    assert t.strides == tuple(s // a.itemsize for s in a.strides)
    np.testing.assert_array_equal(np.from_dlpack(t), a)


def test_import_typestrs_and_flags():
    a = np.arange(6, dtype=np.float32)
    t = dlbridge.asarray(Iface(a, typestr="<f4", strides=None))
    assert t.strides == (1,) and not t.readonly
    ro = dlbridge.asarray(Iface(a, data=(addr(a), True)))
    assert ro.readonly and not np.from_dlpack(ro).flags.writeable
    with pytest.raises(BufferError):
        dlbridge.asarray(Iface(a, typestr="|O8"))
    with pytest.raises(BufferError):
        dlbridge.asarray(Iface(a, typestr="<V4"))
    with pytest.raises(ValueError):
        dlbridge.asarray(Iface(a, version=2))
    with pytest.raises(BufferError):
        dlbridge.asarray(Iface(a, mask=np.zeros(6, bool)))
    # Strides that are not whole elements: gathered by one copy (refused under copy=False).
    half = dlbridge.asarray(Iface(a, shape=(3,), strides=(6,)))
    assert half.is_copied
    expect = np.lib.stride_tricks.as_strided(a, shape=(3,), strides=(6,))
    np.testing.assert_array_equal(np.from_dlpack(half), expect)
    with pytest.raises(BufferError, match="whole elements"):
        dlbridge.asarray(Iface(a, strides=(6,)), copy=False)


def test_big_endian_copies_or_refuses():
    a = np.arange(5, dtype=">f8")
    t = dlbridge.asarray(Iface(a))
    assert t.is_copied and t.dtype == "float64"
    np.testing.assert_array_equal(np.from_dlpack(t), np.arange(5.0))
    with pytest.raises(BufferError):
        dlbridge.asarray(Iface(a), copy=False)


def test_buffer_data_and_offset():
    raw = bytearray(np.arange(8, dtype=np.int32).tobytes())
    a = np.frombuffer(raw, dtype=np.int32)
    src = Iface(a, data=raw, offset=8, shape=(4,), strides=None)
    t = dlbridge.asarray(src)
    np.testing.assert_array_equal(np.from_dlpack(t), [2, 3, 4, 5])
    assert t.data_ptr == addr(a) + 8


def test_import_keeps_exposing_object_alive():
    a = np.arange(100.0)
    src = Iface(a)
    ref = weakref.ref(src)
    t = dlbridge.asarray(src)
    del src, a
    gc.collect()
    assert ref() is not None
    np.testing.assert_array_equal(np.from_dlpack(t), np.arange(100.0))
    del t
    gc.collect()
    assert ref() is None


# ------------------------------------------------------------------ export
def test_export_dict():
    a = np.arange(12, dtype=np.int16).reshape(3, 4)
    t = dlbridge.from_dlpack(a)
    d = t.__array_interface__
    assert d["version"] == 3 and d["shape"] == (3, 4) and d["strides"] is None
    assert d["typestr"] == ("<i2" if sys.byteorder == "little" else ">i2")
    assert d["data"] == (addr(a), False)
    tt = dlbridge.from_dlpack(a.T)
    assert tt.__array_interface__["strides"] == (2, 8)
    assert dlbridge.from_dlpack(np.zeros(3, bool)).__array_interface__["typestr"] == "|b1"


@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_np_asarray_zero_copy_every_dtype(dtype):
    a = sample(dtype, (5, 4))[::-1, 1::2]
    t = dlbridge.from_dlpack(a)
    n = np.asarray(t)
    assert n.dtype == a.dtype and addr(n) == addr(a) and n.strides == a.strides
    np.testing.assert_array_equal(n, a)
    # through the interface alone (numpy prefers the buffer protocol when it can)
    m = np.asarray(Iface(t))
    assert addr(m) == addr(a)


def test_np_asarray_keeps_tensor_alive():
    src = np.arange(1000.0)
    ref = weakref.ref(src)
    n = np.asarray(Iface(dlbridge.from_dlpack(src)))
    del src
    gc.collect()
    assert ref() is not None and n[999] == 999.0
    del n
    gc.collect()
    assert ref() is None


def test_export_refuses_dtypes_numpy_lacks():
    t = dlbridge.from_dlpack(torch.zeros(2, dtype=torch.bfloat16))
    with pytest.raises(TypeError):
        _ = t.__array_interface__
    f8 = dlbridge.from_dlpack(torch.zeros(2, dtype=torch.float8_e4m3fn))
    assert f8.dtype == "float8_e4m3fn"
    with pytest.raises(TypeError):
        np.asarray(f8)
