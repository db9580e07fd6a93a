"""numpy's C ABI paths: a numpy.ndarray argument is read from numpy's struct, and
Framework::Numpy.wrap builds the answer with numpy's C API. Both must give exactly what the
DLPack protocol path gives (address, shape, strides, dtype, read-only flag, lifetime), and
everything those paths cannot describe must still take the protocol path."""

import gc
import sys
import weakref

import dlbridge_example as ex
import dlbridge_pyo3_bench as bench
import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import as_strided

import dlbridge
from conftest import NUMPY_DTYPES, addr, run_fresh, sample


def via_protocol(a):
    """What the DLPack protocol path gives for `a`: its own versioned capsule, imported."""
    return dlbridge.from_dlpack(a.__dlpack__(max_version=(1, 3)))


def described(t):
    return (t.data_ptr, t.shape, t.strides, t.dtype, t.readonly, t.is_copied, t.device)


def layouts(dtype):
    base = sample(dtype, (4, 6))
    item = base.itemsize
    read_only = base.copy()
    read_only.flags.writeable = False
    return {
        "c": base,
        "transposed": base.T,
        "negative": base[::-1, ::-2],
        "broadcast": np.broadcast_to(base[0], (3, 6)),  # zero strides, read-only
        "scalar": base[1, 2, ...],
        "empty": base[:0],
        "read_only": read_only,
        # Five axes: dimensions kept on the heap.
        "c_5d": base.reshape(1, 2, 2, 3, 2),
        # C-contiguous with axes of extent 1 whose strides numpy leaves as they were made:
        # negative, far beyond the memory, not whole elements.
        "unit_axes": as_strided(base, (1, 4, 1, 6), (-1000 * item, 6 * item, 2**40 * item, item)),
        "unit_axis_odd_stride": as_strided(base, (1, 24), (item + 1, item)),
    }


@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_an_ndarray_is_described_as_its_dlpack_export_describes_it(dtype):
    for name, a in layouts(dtype).items():
        fast, slow = dlbridge.asarray(a), via_protocol(a)
        assert described(fast) == described(slow), name
        # An extension's `TensorView` argument (which also borrows), handed back as a Tensor.
        assert described(ex.reframe(a, fast)) == described(slow), name
        assert described(dlbridge.from_dlpack(a)) == described(slow), name
        if a.size:
            assert fast.data_ptr == addr(a), name
            assert np.array_equal(np.asarray(fast), a), name


def test_the_argument_keeps_the_array_alive_and_sees_its_writes():
    a = np.arange(6.0)
    ref = weakref.ref(a)
    t = dlbridge.asarray(a)
    a[2] = 42.0
    del a
    gc.collect()
    assert ref() is not None
    assert np.asarray(t)[2] == 42.0
    del t
    gc.collect()
    assert ref() is None


def test_what_the_struct_cannot_describe_takes_the_protocol_path():
    # Byte-swapped data: numpy's __dlpack__ refuses it, asarray copies it (and says so).
    swapped = np.arange(4, dtype=">i4")
    with pytest.raises(BufferError):
        dlbridge.from_dlpack(swapped)
    t = dlbridge.asarray(swapped)
    assert t.is_copied and np.asarray(t).tolist() == [0, 1, 2, 3]
    with pytest.raises(BufferError):
        dlbridge.asarray(swapped, copy=False)
    # Misaligned int32 over a byte buffer: whatever the protocol path makes of it.
    raw = np.zeros(17, dtype=np.uint8)
    misaligned = raw[1:].view(np.int32)
    assert not misaligned.flags.aligned
    try:
        expected = described(via_protocol(misaligned))
    except BufferError:
        with pytest.raises(BufferError):
            dlbridge.from_dlpack(misaligned)
    else:
        assert described(dlbridge.from_dlpack(misaligned)) == expected
    # Dtypes DLPack has no code for.
    with pytest.raises((BufferError, TypeError)):
        dlbridge.from_dlpack(np.array(["a", "b"]))


def test_an_extent_1_stride_whose_magnitude_overflows_is_never_taken_as_it_is():
    """A stride of isize::MIN bytes on an axis of extent 1 reaches nothing, but its magnitude
    does not fit isize (ndarray and numpy take absolute strides): DLPack refuses it, as numpy's
    own export does, and the other protocols give the same 24 elements without it."""
    base = np.arange(24.0)
    a = as_strided(base, (1, 24), (-(2**63), 8))
    with pytest.raises(BufferError):
        via_protocol(a)
    with pytest.raises(BufferError):
        dlbridge.from_dlpack(a)
    for t in (dlbridge.asarray(a), ex.reframe(a, dlbridge.asarray(base))):
        assert t.shape == (1, 24) and t.data_ptr == addr(base) and not t.is_copied
        assert t.strides[1] == 1 and abs(t.strides[0]) < 2**62
        assert np.array_equal(np.asarray(t), a)


def test_subclasses_go_through_their_own_dlpack():
    calls = []

    class Logged(np.ndarray):
        def __dlpack__(self, **kwargs):
            calls.append(kwargs)
            return np.asarray(self).__dlpack__(**kwargs)

    a = np.arange(3.0).view(Logged)
    t = dlbridge.from_dlpack(a)
    assert calls and t.data_ptr == addr(a)
    matrix_like = np.arange(4.0).reshape(2, 2).view(np.recarray)
    assert dlbridge.asarray(matrix_like).data_ptr == addr(matrix_like)


@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_wrapped_arrays_share_memory_strides_and_values(dtype):
    for name, a in layouts(dtype).items():
        n = ex.reframe(a, np.zeros(1))
        assert type(n) is np.ndarray, name
        assert n.dtype == a.dtype and n.shape == a.shape, name
        assert np.array_equal(n, a), name
        if a.size:
            assert addr(n) == addr(a), name
            # Strides in elements cannot keep an odd stride of an extent-1 axis (it reaches
            # nothing, so any stride there describes the same array).
            if all(s % a.itemsize == 0 for s in a.strides):
                assert n.strides == a.strides, name
        assert n.flags.writeable == a.flags.writeable, name
        assert n.flags.c_contiguous == a.flags.c_contiguous, name
        assert n.flags.f_contiguous == a.flags.f_contiguous, name


def test_a_wrapped_read_only_array_cannot_be_made_writable():
    a = np.arange(4.0)
    a.flags.writeable = False
    n = ex.reframe(a, np.zeros(1))
    assert not n.flags.writeable
    with pytest.raises(ValueError):
        n.flags.writeable = True
    # A writable one can be written, and the write reaches the source.
    b = np.arange(4.0)
    m = ex.reframe(b, np.zeros(1))
    m[0] = 7.0
    assert b[0] == 7.0


@pytest.mark.parametrize("read_only", [False, True])
def test_a_wrapped_rust_allocation_lives_as_long_as_the_array(read_only):
    # The array's base is a capsule holding the memory's owner, as numpy.from_dlpack's is.
    freed = bench.buffers_freed()
    n = bench.counted_ramp(np.zeros(1), 5, read_only=read_only)
    assert type(n) is np.ndarray and type(n.base).__name__ == "PyCapsule"
    assert n.flags.writeable is not read_only and n.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    view = n[1:]
    del n
    gc.collect()
    assert bench.buffers_freed() == freed and view.tolist() == [1.0, 2.0, 3.0, 4.0]
    if read_only:
        with pytest.raises(ValueError):
            view[0] = 9.0
    else:
        view[0] = 9.0  # writable: the memory is the array's alone
    del view
    gc.collect()
    assert bench.buffers_freed() == freed + 1


def test_a_wrapped_view_of_a_python_object_keeps_it_alive_and_borrows_nothing():
    # The answer's capsule holds the argument's array; it holds no borrow of its memory (Python
    # reaches the memory through the answer alone), so Rust may borrow the array mutably.
    a = np.arange(3.0)
    n = ex.reframe(a, np.zeros(1))
    assert type(n.base).__name__ == "PyCapsule" and addr(n) == addr(a) and n.flags.writeable
    ex.scale_inplace(a, 2.0)
    assert n.tolist() == [0.0, 2.0, 4.0]
    r = weakref.ref(a)
    del a
    gc.collect()
    assert r() is not None and n.tolist() == [0.0, 2.0, 4.0]
    del n
    gc.collect()
    assert r() is None


def test_a_dtype_numpy_lacks_still_goes_through_from_dlpack():
    # bfloat16 has no builtin numpy type number: the answer is numpy.from_dlpack's, which with
    # the pinned numpy (no bfloat16 over DLPack) is its own error, never an array of a wrong dtype.
    t = torch.arange(4, dtype=torch.bfloat16)
    with pytest.raises(RuntimeError, match="Unsupported dtype"):
        ex.reframe(t, np.zeros(1))


def test_a_renamed_owner_capsule_leaks_the_owner_instead_of_freeing_a_wrong_pointer():
    # `arr.base` is reachable from Python, and so is ctypes: a capsule renamed behind dlbridge's
    # back cannot be trusted to hold dlbridge's pointer. Its destructor reports an unraisable
    # error and leaks the owner (the memory is never freed) rather than free what it holds.
    import ctypes
    import sys

    set_name = ctypes.pythonapi.PyCapsule_SetName
    set_name.argtypes = [ctypes.py_object, ctypes.c_char_p]
    set_name.restype = ctypes.c_int
    freed = bench.buffers_freed()
    n = bench.counted_ramp(np.zeros(1), 5)
    other_name = b"not.dlbridge"  # held below: a capsule keeps its name's address
    assert set_name(n.base, other_name) == 0
    reported = []
    old_hook = sys.unraisablehook
    # Only the exception is kept: the report's object must not outlive the hook.
    sys.unraisablehook = lambda u: reported.append(
        (u.exc_type, str(u.exc_value), u.object, type(u.exc_value.__cause__))
    )
    try:
        del n
        gc.collect()
    finally:
        sys.unraisablehook = old_hook
    assert bench.buffers_freed() == freed  # leaked, not freed
    # Reported once (the destructor did not re-enter), without the dying capsule as object.
    assert len(reported) == 1, reported
    assert reported[0][0] is ValueError and "renamed" in reported[0][1]
    assert reported[0][2] is None
    assert reported[0][3] is ValueError  # the capsule's own complaint, as the cause
    del other_name


RESHAPED_DURING_FIRST_BORROW = """
import gc, sys
import numpy as np
import dlbridge_example as ex

# At the {k}th collection inside the extension's first borrow (finding the borrow registry
# runs Python code), Python code reshapes the argument, which frees numpy's dimension buffer,
# and a new array is made whose dimensions may land in the freed buffer.
a = np.zeros(2)
keep, seen = [], 0
def reshape(phase, info):
    global seen
    if phase != "start":
        return
    seen += 1
    if seen == {k}:
        a.shape = (1, 2)
        keep.append(np.ones(1 << 20))
gc.callbacks.append(reshape)
gc.set_threshold(1)
n = ex.reframe(a, a)
gc.callbacks.remove(reshape)
gc.set_threshold(700)
print(n.shape, n.size, n.strides, seen >= {k})
sys.stdout.flush()
import os; os._exit(0)
"""


# From 3.12 on, collections start only between bytecodes, never inside an extension's call.
@pytest.mark.skipif(sys.version_info >= (3, 12), reason="needs collections at allocation")
def test_an_argument_reshaped_while_the_first_borrow_finds_the_registry_is_read_as_it_is():
    """The first borrow in an extension looks up the borrow registry, which runs Python code;
    a garbage-collector callback there may reshape the argument. The array's dimensions are
    read after that, never from the freed buffer: the view has 2 elements, in either shape."""
    reshaped_inside = 0
    for k in range(1, 12):
        out = run_fresh(RESHAPED_DURING_FIRST_BORROW.replace("{k}", str(k)))
        fired = out.split()[-1]
        assert out.startswith(("(2,) 2 (8,)", "(1, 2) 2 (16, 8)")), (k, out)
        reshaped_inside += fired == "True"
    assert reshaped_inside, "no collection ran inside the first borrow"
