"""The Arrow PyCapsule interface, both ways, against real pyarrow (26).

Export: `Tensor.__arrow_c_schema__` / `__arrow_c_array__` (so `pa.array(t)` is zero-copy).
Import: `dlbridge.asarray` (DLPack first, then the Arrow interface) and `dlbridge.from_arrow`
(the Arrow interface only). Every zero-copy claim is checked by address, every lifetime claim by
refcounts, weakrefs or `pa.total_allocated_bytes()`.
"""

import sys
import weakref

import numpy as np
import pyarrow as pa
import pytest

import dlbridge
from conftest import addr, capsule_name, collect, sample, tracked

PRIMITIVE = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
             "float16", "float32", "float64"]


def values_address(arr):
    """Address of the values buffer of a primitive pyarrow array (offset not applied)."""
    return arr.buffers()[1].address


class ArrowOnly:
    """A real pyarrow producer seen only through the Arrow PyCapsule interface (pyarrow 26 also
    speaks DLPack, which `asarray` would prefer)."""

    def __init__(self, arr):
        self.arr = arr

    def __arrow_c_array__(self, requested_schema=None):
        return self.arr.__arrow_c_array__(requested_schema)


# ------------------------------------------------------------------------------------------
# Export: dlbridge -> pyarrow
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", PRIMITIVE)
def test_pa_array_primitive_zero_copy(dtype):
    x = sample(dtype, (7,))
    t = dlbridge.asarray(x)
    a = pa.array(t)
    assert a.type == pa.from_numpy_dtype(np.dtype(dtype))
    assert len(a) == 7 and a.null_count == 0
    assert values_address(a) == addr(x)
    back = a.to_numpy(zero_copy_only=True)
    assert addr(back) == addr(x)
    np.testing.assert_array_equal(back, x)


@pytest.mark.parametrize("dtype", PRIMITIVE)
@pytest.mark.parametrize("shape", [(4, 6), (2, 3, 4), (3, 2, 1, 2)])
def test_pa_array_nd_is_fixed_shape_tensor(dtype, shape):
    x = sample(dtype, shape)
    t = dlbridge.asarray(x)
    a = pa.array(t)
    assert isinstance(a, pa.FixedShapeTensorArray)
    assert a.type.extension_name == "arrow.fixed_shape_tensor"
    assert list(a.type.shape) == list(shape[1:])
    assert len(a) == shape[0]
    nd = a.to_numpy_ndarray()
    assert nd.shape == shape
    assert addr(nd) == addr(x) == t.data_ptr
    np.testing.assert_array_equal(nd, x)


def test_row_slice_is_zero_copy_with_offset():
    x = sample("float32", (6, 5))
    t = dlbridge.asarray(x[2:5])  # contiguous rows, data pointer inside x
    a = pa.array(t)
    nd = a.to_numpy_ndarray()
    assert addr(nd) == addr(x) + 2 * 5 * 4
    np.testing.assert_array_equal(nd, x[2:5])


@pytest.mark.parametrize("make", [
    lambda x: x[::2],                 # gaps
    lambda x: x[::-1],                # negative stride
], ids=["step2", "reversed"])
def test_strided_1d_is_copied(make):
    x = sample("int32", (10,))
    v = make(x)
    t = dlbridge.asarray(v)
    a = pa.array(t)
    assert a.to_pylist() == v.tolist()
    assert values_address(a) != addr(x)


@pytest.mark.parametrize("make", [
    lambda x: x.T,
    lambda x: x[:, ::2],
    lambda x: x[::-1],
    lambda x: x.transpose(2, 0, 1) if x.ndim == 3 else x,
], ids=["transposed", "column-step", "rows-reversed", "3-cycle"])
def test_non_dense_nd_is_copied_in_c_order(make):
    x = sample("float64", (4, 3, 2))
    v = make(x)
    t = dlbridge.asarray(v)
    a = pa.array(t)
    assert isinstance(a, pa.FixedShapeTensorArray)
    assert a.type.permutation in (None, list(range(v.ndim - 1)))  # C order, no permutation
    nd = a.to_numpy_ndarray()
    assert nd.shape == v.shape
    np.testing.assert_array_equal(nd, v)
    lo, hi = addr(x), addr(x) + x.nbytes
    assert not lo <= addr(nd) < hi  # a copy


def test_broadcast_is_copied():
    x = np.arange(3, dtype=np.int64)
    t = dlbridge.asarray(np.broadcast_to(x, (4, 3)))
    nd = pa.array(t).to_numpy_ndarray()
    np.testing.assert_array_equal(nd, np.broadcast_to(x, (4, 3)))


def test_readonly_numpy_to_pyarrow_same_address():
    x = sample("uint16", (5, 4))
    x.setflags(write=False)
    t = dlbridge.asarray(x)
    assert t.readonly
    nd = pa.array(t).to_numpy_ndarray()
    assert addr(nd) == addr(x)
    np.testing.assert_array_equal(nd, x)
    flat = pa.array(dlbridge.asarray(x[0]))
    assert values_address(flat) == addr(x)


def test_bool_is_bit_packed_copy():
    x = sample("bool", (11,))
    a = pa.array(dlbridge.asarray(x))
    assert a.type == pa.bool_()
    assert a.to_pylist() == x.tolist()
    rows = pa.array(dlbridge.asarray(sample("bool", (3, 4))))
    assert isinstance(rows, pa.FixedShapeTensorArray)
    assert rows.storage.flatten().to_pylist() == sample("bool", (3, 4)).ravel().tolist()


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
def test_dtype_without_arrow_type_raises(dtype):
    t = dlbridge.asarray(sample(dtype, (3,)))
    # A type with no counterpart is a TypeError both ways (as Utf8 into a tensor).
    with pytest.raises(TypeError, match="Arrow"):
        t.__arrow_c_array__()
    with pytest.raises(TypeError, match="complex"):
        t.__arrow_c_schema__()


def test_arrow_type_without_dtype_raises_type_error():
    with pytest.raises(TypeError, match="no counterpart"):
        dlbridge.from_arrow(pa.array(["a", "b"]))
    with pytest.raises(TypeError, match="no counterpart"):
        dlbridge.from_arrow(pa.array([1, 2], type=pa.decimal128(5, 0)))


def test_zero_d_raises():
    with pytest.raises(BufferError, match="0-d"):
        pa.array(dlbridge.asarray(np.array(3.0)))


def test_capsule_names_and_schema():
    t = dlbridge.asarray(sample("float32", (2, 3, 4)))
    schema_cap, array_cap = t.__arrow_c_array__()
    assert capsule_name(schema_cap) == "arrow_schema"
    assert capsule_name(array_cap) == "arrow_array"
    assert capsule_name(t.__arrow_c_schema__()) == "arrow_schema"
    f = pa.field(t)  # via __arrow_c_schema__
    assert f.type.extension_name == "arrow.fixed_shape_tensor"
    assert list(f.type.shape) == [3, 4] and f.type.value_type == pa.float32()
    assert pa.field(dlbridge.asarray(sample("int8", (5,)))).type == pa.int8()


def test_schema_of_strided_tensor_needs_no_copy():
    x = sample("int64", (4, 6))
    t = dlbridge.asarray(x.T)
    assert list(pa.field(t).type.shape) == [4]
    assert pa.field(dlbridge.asarray(x[:, ::2])).type.storage_type == pa.list_(pa.int64(), 3)


def test_requested_schema_relabel_and_refusal():
    x = sample("float32", (4, 6))
    t = dlbridge.asarray(x)
    same = pa.array(dlbridge.asarray(x[0]), type=pa.float32())
    assert values_address(same) == addr(x)
    lists = pa.array(t, type=pa.list_(pa.float32(), 6))  # drop the extension: a relabel
    assert lists.type == pa.list_(pa.float32(), 6)
    assert values_address(lists.values) == addr(x)
    with pytest.raises(NotImplementedError, match="cast after import"):
        pa.array(dlbridge.asarray(x[0]), type=pa.float64())
    with pytest.raises(TypeError, match="requested_schema"):
        t.__arrow_c_array__(42)


# ------------------------------------------------------------------------------------------
# Export lifetimes
# ------------------------------------------------------------------------------------------

def test_unconsumed_capsules_release_exactly_once(refcount):
    x = tracked(sample("int32", (8, 3)))
    base = refcount(x)
    t = dlbridge.asarray(x)
    with_tensor = refcount(x)
    assert with_tensor > base
    for _ in range(20):
        caps = t.__arrow_c_array__()
        del caps
        schema = t.__arrow_c_schema__()
        del schema
    collect()
    assert refcount(x) == with_tensor
    del t
    collect()
    assert refcount(x) == base  # not lower: no double release


def test_pyarrow_array_keeps_source_alive_after_tensor_dies(refcount):
    x = tracked(sample("float64", (5, 4)))
    ref = weakref.ref(x)
    ptr = addr(x)
    t = dlbridge.asarray(x)
    a = pa.array(t)
    del t, x
    collect()
    assert ref() is not None  # the Arrow array holds the tensor, which holds numpy's memory
    nd = a.to_numpy_ndarray()
    assert addr(nd) == ptr
    np.testing.assert_array_equal(nd, sample("float64", (5, 4)))
    del a, nd
    collect()
    assert ref() is None


def test_pyarrow_allocated_memory_through_dlbridge_and_back():
    collect()
    base = pa.total_allocated_bytes()
    src = pa.array(range(100_000), type=pa.int64())
    assert pa.total_allocated_bytes() > base
    t = dlbridge.from_arrow(src)
    for _ in range(5):
        t.__arrow_c_array__()  # dropped unconsumed
    again = pa.array(t)
    assert values_address(again) == values_address(src)
    del src, t
    collect()
    assert pa.total_allocated_bytes() > base  # `again` still holds it
    assert again.to_pylist()[:3] == [0, 1, 2]
    del again
    collect()
    assert pa.total_allocated_bytes() == base


# ------------------------------------------------------------------------------------------
# Import: pyarrow -> dlbridge
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", PRIMITIVE)
@pytest.mark.parametrize("route", ["asarray", "from_arrow"])
def test_import_primitive_zero_copy(dtype, route):
    x = sample(dtype, (9,))
    arr = pa.array(x)
    t = getattr(dlbridge, route)(arr)
    assert t.shape == (9,) and t.dtype == dtype
    assert t.readonly
    assert t.data_ptr == values_address(arr)
    np.testing.assert_array_equal(np.from_dlpack(t), x)


@pytest.mark.parametrize("route", ["asarray", "from_arrow"])
def test_import_sliced_primitive_honours_offset(route):
    x = sample("int16", (12,))
    arr = pa.array(x).slice(3, 5)
    t = getattr(dlbridge, route)(arr)
    assert t.shape == (5,)
    assert t.data_ptr == values_address(arr) + 3 * 2
    np.testing.assert_array_equal(np.from_dlpack(t), x[3:8])


@pytest.mark.parametrize("route", ["asarray", "from_arrow", "arrow_only"])
def test_import_fixed_shape_tensor(route):
    x = sample("float32", (3, 2, 4))
    fst = pa.FixedShapeTensorArray.from_numpy_ndarray(x)
    values = values_address(fst.storage.values)
    if route == "arrow_only":
        t = dlbridge.asarray(ArrowOnly(fst))
    else:
        t = getattr(dlbridge, route)(fst)
    assert t.shape == (3, 2, 4) and t.readonly
    assert t.data_ptr == values
    np.testing.assert_array_equal(np.from_dlpack(t), x)


def test_import_sliced_fixed_shape_tensor():
    x = sample("int64", (5, 2, 3))
    fst = pa.FixedShapeTensorArray.from_numpy_ndarray(x)[1:4]
    t = dlbridge.from_arrow(fst)
    assert t.shape == (3, 2, 3)
    assert t.data_ptr == values_address(fst.storage.values) + 1 * 6 * 8
    np.testing.assert_array_equal(np.from_dlpack(t), x[1:4])


def test_import_permuted_fixed_shape_tensor():
    x = sample("float64", (2, 3, 4)).transpose(0, 2, 1)  # rows stored column-major
    fst = pa.FixedShapeTensorArray.from_numpy_ndarray(x)
    assert fst.type.permutation == [1, 0]
    t = dlbridge.from_arrow(fst)
    assert t.shape == (2, 4, 3) and t.strides == (12, 1, 4)
    assert t.data_ptr == values_address(fst.storage.values)
    np.testing.assert_array_equal(np.from_dlpack(t), x)


@pytest.mark.parametrize("route", ["asarray", "from_arrow"])
def test_import_nulls_raise(route):
    with pytest.raises(ValueError, match="null"):
        getattr(dlbridge, route)(pa.array([1.0, None, 3.0]))


@pytest.mark.parametrize("route", ["asarray", "from_arrow"])
def test_import_booleans_are_copied_to_bytes(route):
    bits = [True, False, True, True, False, False, True, False, True, True]
    arr = pa.array(bits)
    t = getattr(dlbridge, route)(arr)
    assert t.dtype == "bool" and t.is_copied
    assert np.from_dlpack(t).tolist() == bits
    sliced = getattr(dlbridge, route)(arr.slice(3, 5))  # bit offset 3
    assert np.from_dlpack(sliced).tolist() == bits[3:8]
    with pytest.raises(BufferError, match="bit-packed"):
        getattr(dlbridge, route)(arr, copy=False)


def test_import_copy_true_copies():
    arr = pa.array(sample("float32", (6,)))
    t = dlbridge.from_arrow(arr, copy=True)
    assert t.data_ptr != values_address(arr) and not t.readonly
    np.testing.assert_array_equal(np.from_dlpack(t), arr.to_numpy())


def test_import_chunked_array():
    x = sample("uint32", (6,))
    ch = pa.chunked_array([pa.array(x)])
    for route in (dlbridge.asarray, dlbridge.from_arrow):
        t = route(ch)
        assert t.data_ptr == values_address(ch.chunk(0))
        np.testing.assert_array_equal(np.from_dlpack(t), x)
    empty = dlbridge.asarray(pa.chunked_array([], type=pa.int32()))
    assert empty.shape == (0,) and empty.dtype == "int32"
    # Several chunks: one copy, flagged (test_arrow_streams.py covers the rest).
    joined = dlbridge.asarray(pa.chunked_array([[1, 2], [3]]))
    assert joined.is_copied and np.from_dlpack(joined).tolist() == [1, 2, 3]


def test_from_arrow_rejects_non_arrow_and_spent_capsules():
    with pytest.raises(TypeError, match="__arrow_c_array__"):
        dlbridge.from_arrow(np.arange(3))

    class Replays:
        """Hands out the same capsule pair twice: the second import must see it consumed."""

        def __init__(self, arr):
            self.pair = arr.__arrow_c_array__()

        def __arrow_c_array__(self, requested_schema=None):
            return self.pair

    src = Replays(pa.array([1, 2, 3]))
    assert np.from_dlpack(dlbridge.from_arrow(src)).tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="consumed"):
        dlbridge.from_arrow(src)

    class Bad:
        def __arrow_c_array__(self, requested_schema=None):
            return (1, 2)

    with pytest.raises(TypeError, match="PyCapsule"):
        dlbridge.from_arrow(Bad())


def test_roundtrip_dlbridge_pyarrow_dlbridge_one_address():
    x = sample("float32", (4, 3, 2))
    t = dlbridge.asarray(x)
    a = pa.array(t)
    for back in (dlbridge.asarray(a), dlbridge.from_arrow(a), dlbridge.from_arrow(t)):
        assert back.shape == x.shape
        assert back.data_ptr == addr(x)
        np.testing.assert_array_equal(np.from_dlpack(back), x)


# ------------------------------------------------------------------------------------------
# Import lifetimes
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("route", ["asarray", "from_arrow", "arrow_only"])
def test_tensor_keeps_arrow_memory_alive(route, refcount):
    collect()
    base = pa.total_allocated_bytes()
    src = pa.array(range(50_000), type=pa.float64())
    ptr = values_address(src)
    ref = weakref.ref(src)
    count = refcount(src)
    if route == "arrow_only":
        t = dlbridge.asarray(ArrowOnly(src))
    else:
        t = getattr(dlbridge, route)(src)
    assert t.data_ptr == ptr
    collect()
    assert refcount(src) == count  # Arrow's release callback holds the C++ data, not the object
    del src
    collect()
    assert ref() is None
    assert pa.total_allocated_bytes() > base  # the tensor still owns the buffer
    view = np.from_dlpack(t)
    assert addr(view) == ptr
    assert view[:3].tolist() == [0.0, 1.0, 2.0] and view[-1] == 49_999.0
    del t, view
    collect()
    assert pa.total_allocated_bytes() == base


def test_pyarrow_capsules_dropped_unconsumed_release_once():
    collect()
    base = pa.total_allocated_bytes()
    src = pa.array(range(10_000), type=pa.int32())
    for _ in range(10):
        src.__arrow_c_array__()
        src.type.__arrow_c_schema__()
    del src
    collect()
    assert pa.total_allocated_bytes() == base


def test_imported_tensor_survives_in_other_consumers():
    src = pa.FixedShapeTensorArray.from_numpy_ndarray(sample("int32", (3, 4)))
    expected = src.to_numpy_ndarray().copy()
    t = dlbridge.from_arrow(src)
    n = np.from_dlpack(t)
    del src, t
    collect()
    np.testing.assert_array_equal(n, expected)
    assert sys.getrefcount(n) >= 2


def test_misaligned_producer_buffers_are_a_flagged_copy_or_refused():
    # arrow-rs re-aligns under-aligned imported buffers (a copy): it must be flagged, and
    # refused under copy=False.
    raw = pa.py_buffer(np.arange(9, dtype=np.float32).tobytes() + b"\0")
    shifted = raw.slice(1, 32)
    values = np.frombuffer(raw, dtype=np.uint8)[1:33].view(np.float32)
    assert shifted.address % 4 != 0
    arr = pa.Array.from_buffers(pa.float32(), 8, [None, shifted])
    with pytest.raises(BufferError):
        dlbridge.from_arrow(arr, copy=False)
    t = dlbridge.from_arrow(arr)
    assert t.is_copied and t.data_ptr % 4 == 0
    np.testing.assert_array_equal(np.from_dlpack(t), values)
    aligned = pa.array(np.arange(8, dtype=np.float32))
    assert not dlbridge.from_arrow(aligned).is_copied
