"""The buffer protocol, both ways."""

import array
import ctypes
import gc
import mmap
import struct

import numpy as np
import pytest
import torch

import dlbridge
from conftest import NUMPY_DTYPES, addr, sample

PyBUF_SIMPLE, PyBUF_WRITABLE, PyBUF_STRIDES = 0, 1, 0x18


class Py_buffer(ctypes.Structure):
    _fields_ = [
        ("buf", ctypes.c_void_p), ("obj", ctypes.c_void_p), ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t), ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p), ("shape", ctypes.c_void_p), ("strides", ctypes.c_void_p),
        ("suboffsets", ctypes.c_void_p), ("internal", ctypes.c_void_p),
    ]


def get_buffer(obj, flags):
    """PyObject_GetBuffer with exact flags; returns (buf, len, readonly) and releases it."""
    view = Py_buffer()
    ctypes.pythonapi.PyObject_GetBuffer.argtypes = [ctypes.py_object, ctypes.POINTER(Py_buffer), ctypes.c_int]
    ctypes.pythonapi.PyObject_GetBuffer(obj, ctypes.byref(view), flags)
    out = (view.buf, view.len, view.readonly)
    ctypes.pythonapi.PyBuffer_Release.argtypes = [ctypes.POINTER(Py_buffer)]
    ctypes.pythonapi.PyBuffer_Release(ctypes.byref(view))
    return out


def buf_addr(obj):
    """Address of a writable buffer via ctypes (read-only ones via numpy)."""
    return np.frombuffer(obj, dtype=np.uint8).__array_interface__["data"][0]


def test_bytearray_is_writable_and_shared():
    ba = bytearray(range(16))
    t = dlbridge.asarray(ba)
    assert t.dtype == "uint8" and t.shape == (16,) and not t.readonly
    assert t.data_ptr == buf_addr(ba)
    n = np.from_dlpack(t)
    n[0] = 99
    assert ba[0] == 99
    x = torch.from_dlpack(t)
    x[1] = 77
    assert ba[1] == 77
    # while exported, the bytearray cannot be resized (the memory is pinned)
    with pytest.raises(BufferError):
        ba.append(1)
    del t, n, x
    gc.collect()
    ba.append(1)


def test_bytes_is_readonly():
    b = bytes(range(8))
    t = dlbridge.asarray(b)
    assert t.readonly and t.data_ptr == buf_addr(b)
    assert not np.from_dlpack(t).flags.writeable
    with pytest.raises(BufferError):
        t.__dlpack__()  # legacy cannot carry read-only


@pytest.mark.parametrize(
    "code,dtype",
    [("b", "int8"), ("B", "uint8"), ("h", "int16"), ("H", "uint16"), ("i", "int32"),
     ("I", "uint32"), ("l", "int64"), ("L", "uint64"), ("q", "int64"), ("Q", "uint64"),
     ("f", "float32"), ("d", "float64")],
)
def test_array_array(code, dtype):
    a = array.array(code, range(10))
    t = dlbridge.asarray(a)
    assert t.dtype == dtype and t.shape == (10,)
    assert t.data_ptr == a.buffer_info()[0]
    np.testing.assert_array_equal(np.from_dlpack(t), np.arange(10))


def test_memoryview_formats_and_strides():
    raw = bytearray(struct.pack("<12f", *range(12)))
    mv2 = memoryview(raw).cast("f", (3, 4))
    t = dlbridge.asarray(mv2)
    assert t.shape == (3, 4) and t.strides == (4, 1) and t.data_ptr == buf_addr(raw)
    np.testing.assert_array_equal(np.from_dlpack(t), np.arange(12.0).reshape(3, 4))
    rev = memoryview(raw).cast("f")[::-3]
    t = dlbridge.asarray(rev)
    assert t.shape == (4,) and t.strides == (-3,) and t.data_ptr == buf_addr(raw) + 44
    np.testing.assert_array_equal(np.from_dlpack(t), [11.0, 8.0, 5.0, 2.0])
    for fmt, dtype in [("?", "bool"), ("i", "int32"), ("d", "float64"),
                       ("c", "uint8"), ("n", "int64"), ("N", "uint64")]:
        mv = memoryview(bytearray(struct.calcsize(fmt) * 4)).cast(fmt)
        assert dlbridge.asarray(mv).dtype == dtype


def test_mmap_zero_copy():
    m = mmap.mmap(-1, 4096)
    t = dlbridge.asarray(m)
    n = np.from_dlpack(t)
    n[:4] = [1, 2, 3, 4]
    assert m[:4] == b"\x01\x02\x03\x04"
    del t, n
    gc.collect()
    m.close()


@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_numpy_buffer_path_every_dtype(dtype):
    a = sample(dtype, (4, 5))[::2, ::-2]
    t = dlbridge.asarray(memoryview(a))
    assert t.dtype == dtype and t.data_ptr == addr(a)
    np.testing.assert_array_equal(np.from_dlpack(t), a)


def test_big_endian_is_swapped_or_refused():
    a = np.arange(6, dtype=">i4").reshape(2, 3)
    t = dlbridge.asarray(a)
    assert t.is_copied and t.dtype == "int32"
    np.testing.assert_array_equal(np.from_dlpack(t), a.astype("<i4"))
    with pytest.raises(BufferError):
        dlbridge.asarray(a, copy=False)
    raw = memoryview(a)  # format ">i"
    assert dlbridge.asarray(raw).is_copied
    with pytest.raises(BufferError):
        dlbridge.asarray(raw, copy=False)
    one_byte = np.arange(4, dtype=">u1")
    assert not dlbridge.asarray(one_byte, copy=False).is_copied


class AI:
    """An `__array_interface__` exporter of a numpy array's memory (and nothing else)."""

    def __init__(self, a):
        self.a = a
        self.__array_interface__ = a.__array_interface__


def test_strides_not_multiple_of_itemsize_are_gathered_by_one_copy():
    # A layout no tensor can describe (DLPack strides count elements): copied, never refused,
    # unless copy=False. numpy's own DLPack export refuses it, so the buffer protocol and
    # __array_interface__ carry it here.
    records = np.zeros(4, dtype=[("a", "u1"), ("b", "<i4")])
    records["b"] = [7, -8, 2**31 - 1, -(2**31)]
    packed = records["b"]
    assert packed.strides == (5,)
    for source in (packed, memoryview(packed), AI(packed)):
        t = dlbridge.asarray(source)
        assert t.is_copied and t.dtype == "int32" and t.strides == (1,)
        np.testing.assert_array_equal(np.from_dlpack(t), packed)
        with pytest.raises(BufferError, match="whole elements"):
            dlbridge.asarray(source, copy=False)
    # 2-D, 5-byte rows of int32 cut at odd offsets, and big-endian at the same time.
    raw = np.arange(60, dtype=np.uint8)
    for dtype in ("<i4", ">i4"):
        view = np.lib.stride_tricks.as_strided(np.frombuffer(raw, dtype=dtype, count=14,
                                                             offset=1),
                                               shape=(3, 2), strides=(15, 5))
        t = dlbridge.asarray(view)
        assert t.is_copied and t.shape == (3, 2)
        np.testing.assert_array_equal(np.from_dlpack(t), view)


def test_misaligned_data_is_copied_to_aligned_memory():
    raw = bytearray(8 * 6 + 1)
    m = np.frombuffer(raw, dtype=np.float64, offset=1, count=6)
    m[:] = np.arange(6)
    assert not m.flags.aligned
    for source in (m, memoryview(m), AI(m)):
        t = dlbridge.asarray(source)
        assert t.is_copied and t.data_ptr % 8 == 0
        np.testing.assert_array_equal(np.from_dlpack(t), np.arange(6.0))
        with pytest.raises(BufferError, match="aligned"):
            dlbridge.asarray(source, copy=False)
    # from_dlpack is the DLPack consumer: it takes what the producer hands over, as numpy does.
    assert dlbridge.from_dlpack(m).data_ptr % 8 == 1
    # Bytes have no alignment: a uint8 view at an odd address is shared.
    b = np.frombuffer(raw, dtype=np.uint8, offset=1)
    assert dlbridge.asarray(b).data_ptr == b.ctypes.data


def test_unsupported_formats():
    with pytest.raises(BufferError):
        dlbridge.asarray(np.zeros(3, dtype=np.longdouble))
    with pytest.raises(BufferError):
        dlbridge.asarray(memoryview(np.zeros(3, dtype=[("a", "f4"), ("b", "i4")])))


# ------------------------------------------------------------------ export
@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_export_formats(dtype):
    a = sample(dtype)
    t = dlbridge.from_dlpack(a)
    m = memoryview(t)
    assert m.shape == a.shape and m.strides == a.strides and m.itemsize == a.itemsize
    back = np.asarray(m)
    assert back.dtype == a.dtype and addr(back) == addr(a)
    np.testing.assert_array_equal(back, a)


def test_export_strided_and_contiguity_requests():
    a = np.arange(24.0).reshape(4, 6)[::2, ::-3]
    t = dlbridge.from_dlpack(a)
    m = memoryview(t)  # PyBUF_FULL_RO: strides accepted
    assert m.strides == a.strides and not m.c_contiguous
    np.testing.assert_array_equal(np.asarray(m), a)
    with pytest.raises(BufferError):
        get_buffer(t, PyBUF_SIMPLE)  # a flat request needs C-contiguous data
    with pytest.raises(BufferError):
        get_buffer(t, PyBUF_STRIDES | 0x20)  # PyBUF_C_CONTIGUOUS
    c = dlbridge.from_dlpack(np.arange(4, dtype=np.uint8))
    assert bytes(c) == b"\x00\x01\x02\x03"
    assert get_buffer(c, PyBUF_SIMPLE) == (addr(np.from_dlpack(c)), 4, 0)


def test_export_readonly_refuses_writable():
    a = np.arange(4, dtype=np.uint8)
    a.flags.writeable = False
    t = dlbridge.from_dlpack(a)
    m = memoryview(t)
    assert m.readonly
    with pytest.raises(TypeError):
        m[0] = 1
    with pytest.raises(BufferError):
        get_buffer(t, PyBUF_WRITABLE)
    assert get_buffer(t, PyBUF_SIMPLE)[2] == 1
    w = dlbridge.from_dlpack(np.arange(4, dtype=np.uint8))
    assert get_buffer(w, PyBUF_WRITABLE)[2] == 0
    (ctypes.c_uint8 * 4).from_buffer(w)[0] = 9
    assert np.from_dlpack(w)[0] == 9


def test_export_refuses_types_struct_lacks():
    t = dlbridge.from_dlpack(torch.ones(3, dtype=torch.bfloat16))
    with pytest.raises(BufferError):
        memoryview(t)


def test_memoryview_keeps_tensor_alive():
    import weakref

    src = np.arange(1000.0)
    ref = weakref.ref(src)
    t = dlbridge.from_dlpack(src)
    m = memoryview(t)
    del src, t
    gc.collect()
    assert ref() is not None
    assert m[999] == 999.0
    m.release()
    del m
    gc.collect()
    assert ref() is None


def test_a_refused_buffer_export_raises_and_holds_nothing():
    """The Py_buffer is filled inside its owner: an exporter that refuses leaves nothing to
    release, and the object is not kept."""
    ba = bytearray(8)
    mv = memoryview(ba)
    mv.release()
    with pytest.raises(ValueError, match="released"):
        dlbridge.asarray(mv)
    ba.append(1)  # no export is left pinning the bytearray
    # A 1-D bytes export points its shape at the Py_buffer's own `len`: the struct must not move.
    b = bytes(range(40))
    views = [dlbridge.asarray(b) for _ in range(3)]
    assert all(v.shape == (40,) and v.strides == (1,) for v in views)
    assert np.array_equal(np.asarray(views[2]), np.arange(40, dtype=np.uint8))
