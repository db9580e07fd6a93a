"""Hostile input: each finding of the hostile-input review, and its neighbours.

Every test here failed (or crashed the interpreter) before its fix. Crash-prone cases run in a
subprocess, so that a regression fails one test instead of killing the run.
"""

import gc
import os
import random
import subprocess
import sys
import textwrap
import weakref

import numpy as np
import pyarrow as pa
import pytest

import dlbridge
from conftest import Weakrefable, addr, collect
from dlpack_kit import Managed

if os.environ.get("DLBRIDGE_TESTS_WITHOUT_TORCH"):
    torch = None
else:
    import torch

# scripts/valgrind.sh runs this file without torch and jax (loading them under valgrind takes
# minutes): it sets DLBRIDGE_TESTS_WITHOUT_TORCH=1, and the tests that need them say so.
needs_torch = pytest.mark.skipif(torch is None, reason="DLBRIDGE_TESTS_WITHOUT_TORCH is set")

IS_COPIED = 1 << 1


def run_isolated(body):
    """Run `body` in a fresh interpreter; return (returncode, stdout + stderr)."""
    script = "import numpy as np, pyarrow as pa, dlbridge\n" + textwrap.dedent(body)
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=120)
    return p.returncode, p.stdout + p.stderr


# ------------------------------------------------------------- 1. released Arrow C structs
def _released_schema(t):
    cap = t.__arrow_c_schema__()
    pa.Field._import_from_c_capsule(cap)  # pyarrow moves the struct out and releases it
    return cap


@pytest.mark.parametrize("consume", ["field", "datatype", "schema-of-struct"])
def test_released_requested_schema_is_refused(consume):
    t = dlbridge.asarray(np.zeros((3, 4), np.float32))
    if consume == "field":
        cap = _released_schema(t)
    elif consume == "datatype":
        cap = pa.float32().__arrow_c_schema__()
        pa.DataType._import_from_c_capsule(cap)
    else:
        cap = pa.schema([("x", pa.int8())]).__arrow_c_schema__()
        pa.Schema._import_from_c_capsule(cap)
    with pytest.raises(ValueError, match="released"):
        t.__arrow_c_array__(cap)


def test_released_requested_schema_in_a_fresh_process():
    # The original reproduction, where a freed block would have been read.
    rc, out = run_isolated("""
        t = dlbridge.asarray(np.zeros((3, 4), np.float32))
        cap = t.__arrow_c_schema__()
        pa.Field._import_from_c_capsule(cap)
        for _ in range(100):
            try:
                t.__arrow_c_array__(cap)
            except ValueError:
                pass
            else:
                raise SystemExit("accepted a released schema")
        print("ok")
    """)
    assert rc == 0 and "ok" in out, out


class ArrowPair:
    """An `__arrow_c_array__` producer returning the given capsules."""

    def __init__(self, schema, array):
        self.pair = (schema, array)

    def __arrow_c_array__(self, requested_schema=None):
        return self.pair


def test_released_array_capsule_is_refused_and_untouched():
    arr = pa.array([1.0, 2.0, 3.0])
    schema, array = arr.__arrow_c_array__()
    pa.Array._import_from_c_capsule(schema, array)  # moves both structs out
    with pytest.raises(ValueError, match="released"):
        dlbridge.from_arrow(ArrowPair(arr.type.__arrow_c_schema__(), array))
    with pytest.raises(ValueError, match="released"):
        dlbridge.from_arrow(ArrowPair(schema, arr.__arrow_c_array__()[1]))


class ArrowStream:
    def __init__(self, capsule):
        self.capsule = capsule

    def __arrow_c_stream__(self, requested_schema=None):
        return self.capsule


def test_released_stream_capsule_is_refused():
    chunked = pa.chunked_array([[1.0, 2.0]])
    cap = chunked.__arrow_c_stream__()
    # Consume it once through dlbridge, then offer the spent capsule again.
    t = dlbridge.from_arrow(ArrowStream(cap))
    assert np.from_dlpack(t).tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="released"):
        dlbridge.from_arrow(ArrowStream(cap))


# ------------------------------------------------- 2. __array_interface__ pointers and offsets
class Iface:
    def __init__(self, keep, **iface):
        self.keep = keep
        self.iface = {"version": 3, **iface}

    @property
    def __array_interface__(self):
        return self.iface


@pytest.mark.parametrize("offset", [0, 8, 32, 1 << 40, (1 << 63) - 1, 1 << 64])
def test_pointer_data_ignores_offset_like_numpy(offset):
    a = np.arange(8, dtype=np.int64)
    p = Iface(a, shape=(4,), typestr="<i8", data=(a.ctypes.data, False), offset=offset)
    t = dlbridge.asarray(p)
    assert t.data_ptr == a.ctypes.data
    assert np.from_dlpack(t).tolist() == np.asarray(p).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("marker,readonly", [
    (True, True), (False, False), (1, True), (0, False), ("yes", True), ("", False),
    (np.True_, True), (np.False_, False), ([0], True), (None, False),
])
def test_pointer_read_only_marker_is_truthiness(marker, readonly):
    a = np.arange(4, dtype=np.int32)
    p = Iface(a, shape=(4,), typestr="<i4", data=(a.ctypes.data, marker))
    assert np.asarray(p).flags.writeable is (not readonly)
    t = dlbridge.asarray(p)
    assert t.readonly is readonly
    assert np.from_dlpack(t).flags.writeable is (not readonly)


@pytest.mark.parametrize("offset", [0, 16, 24])
def test_buffer_data_applies_offset_within_bounds(offset):
    b = bytearray(np.arange(8, dtype=np.int32).tobytes())
    p = Iface(b, shape=(2,), typestr="<i4", data=b, offset=offset)
    t = dlbridge.asarray(p)
    assert np.from_dlpack(t).tolist() == np.asarray(p).tolist()


@pytest.mark.parametrize("offset", [33, 1 << 40, (1 << 63) - 1, (1 << 64) - 8])
def test_buffer_data_offset_out_of_bounds_is_refused(offset):
    b = bytearray(40)
    p = Iface(b, shape=(2,), typestr="<i4", data=b, offset=offset)
    with pytest.raises((BufferError, ValueError)):
        dlbridge.asarray(p)


@pytest.mark.parametrize("bad", [
    {"offset": -8, "data": "buffer"},
    {"shape": (-1,)},
    {"shape": (2, -3)},
    {"data": (-1, False)},
    {"data": (1, 2, 3)},
    {"data": ("x", False)},
    {"strides": (1 << 63,)},
    {"shape": (1 << 62, 4)},
])
def test_hostile_interface_fields_raise_typed_errors(bad):
    buf = bytearray(64)
    iface = {"shape": (4,), "typestr": "<i4", "data": buf}
    iface.update({k: (buf if v == "buffer" else v) for k, v in bad.items()})
    with pytest.raises((ValueError, BufferError, TypeError)):
        dlbridge.asarray(Iface(buf, **iface))


def test_array_interface_dict_fuzz():
    """A bounded fuzzer over __array_interface__ dicts, mostly on the pointer branch.

    Accepted views must point where numpy says (pointer branch: offset ignored) or stay inside
    the named buffer (buffer branch); everything else must be a typed error, never a crash.
    """
    rng = random.Random(1234)
    backing = np.arange(1024, dtype=np.uint8)
    middle = backing.ctypes.data + 512
    typestrs = ["<i1", "|u1", "<i2", "<i4", "<f4", "<f8", ">i4", "<c8", "|b1", "<V4", "x",
                "<i0", "<f3", "|u9999999999999999999", ""]
    small = [0, 1, 2, 3, 4]
    ints = [0, 1, 2, 3, 7, 8, -1, -8, 1 << 31, 1 << 62, (1 << 63) - 1, 1 << 63, 1 << 64]
    accepted = 0
    for _ in range(3000):
        typestr = rng.choice(typestrs)
        pointer_branch = rng.random() < 0.7
        # A raw pointer is trusted (numpy does the same): where dlbridge must read it (a
        # byte-swapped copy), the description stays inside `backing`; elsewhere it is only
        # described, never read, so any extents may be tried.
        hostile = not (pointer_branch and typestr.startswith(">"))
        shape = tuple(rng.choice(small) for _ in range(rng.randint(0, 3)))
        if hostile and rng.random() < 0.1:
            shape = (rng.choice(ints),)
        iface = {"shape": shape, "typestr": typestr}
        if rng.random() < 0.3:
            pool = [1, 2, 4, 8, -4, -8, 0] + (ints if hostile else [])
            iface["strides"] = tuple(rng.choice(pool)
                                     for _ in range(len(shape) + rng.choice([0, 0, 0, 1])))
        if rng.random() < 0.5:
            iface["offset"] = rng.choice(ints)
        if pointer_branch:
            iface["data"] = (middle + rng.choice([0, 8, 16]), rng.choice([True, False, 0, 1]))
            # Strides that are not whole elements are gathered by a copy, which reads: keep
            # those descriptions inside `backing` too.
            size = int(typestr[2:]) if typestr[2:].isdigit() and len(typestr[2:]) < 4 else 0
            strides = iface.get("strides", ())
            if size and any(st % size for st in strides):
                iface["shape"] = tuple(min(abs(n), 4) for n in shape)[:len(strides)]
                iface["strides"] = tuple(max(-8, min(8, st)) for st in strides)
        else:
            iface["data"] = bytearray(64) if rng.random() < 0.5 else memoryview(b"x" * 64)
        try:
            t = dlbridge.asarray(Iface(backing, **iface))
        except (ValueError, BufferError, TypeError, OverflowError):
            continue
        accepted += 1
        if pointer_branch:
            # Byte-swapped or byte-strided input is a fresh copy; else the named address.
            assert t.is_copied or t.data_ptr == iface["data"][0]
        else:
            held = np.frombuffer(iface["data"], np.uint8)
            lo, hi = held.ctypes.data, held.ctypes.data + held.nbytes
            # A byte-swapped input is a fresh copy; otherwise the view stays inside.
            assert t.nbytes == 0 or t.is_copied or lo <= t.data_ptr < hi
            np.from_dlpack(dlbridge.from_dlpack(t, copy=True))  # reads every element
    assert accepted > 100


# ------------------------------------------------------------ 3. copy=True never aliases
class Wrap:
    def __init__(self, inner, **fixed):
        self.inner = inner
        self.fixed = fixed

    def __dlpack__(self, **kwargs):
        kwargs.update(self.fixed)
        return self.inner.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return (1, 0)


@pytest.mark.parametrize("route", ["wrapper", "capsule", "asarray wrapper", "tensor",
                                   "exchange"])
def test_copy_true_is_the_callers_own_memory(route):
    c = dlbridge.asarray(np.arange(4.0), copy=True)
    assert c.is_copied
    if route == "wrapper":
        d = dlbridge.from_dlpack(Wrap(c), copy=True)
    elif route == "capsule":
        d = dlbridge.from_dlpack(c.__dlpack__(max_version=(1, 3)), copy=True)
    elif route == "asarray wrapper":
        d = dlbridge.asarray(Wrap(c), copy=True)
    elif route == "tensor":
        d = dlbridge.asarray(c, copy=True)
    elif torch is None:
        pytest.skip("DLBRIDGE_TESTS_WITHOUT_TORCH is set")
    else:
        d = dlbridge.from_dlpack(torch.from_dlpack(c), copy=True)
    assert d.data_ptr != c.data_ptr and d.is_copied
    np.from_dlpack(d)[0] = 42
    assert np.from_dlpack(c)[0] == 0


@pytest.mark.parametrize("route", ["wrapper", "capsule", "tensor"])
def test_shared_imports_of_a_copy_are_not_flagged_copied(route):
    c = dlbridge.asarray(np.arange(4.0), copy=True)
    if route == "wrapper":
        d = dlbridge.from_dlpack(Wrap(c))
    elif route == "capsule":
        d = dlbridge.from_dlpack(c.__dlpack__(max_version=(1, 3)))
    else:
        d = dlbridge.asarray(c)
    assert d.data_ptr == c.data_ptr and not d.is_copied


def test_copy_false_refuses_a_producer_copy():
    c = dlbridge.asarray(np.arange(4.0))
    with pytest.raises(BufferError, match="IS_COPIED"):
        dlbridge.from_dlpack(Wrap(c, copy=True), copy=False)
    m = Managed(np.arange(4, dtype=np.float32), flags=IS_COPIED)
    cap = m.capsule()  # (the kit's ctypes capsule destructor must not run mid-exception)
    with pytest.raises(BufferError, match="IS_COPIED"):
        dlbridge.from_dlpack(cap, copy=False)
    del cap
    assert m.released()
    # Without a copy request, the producer's copy is accepted and reported.
    m = Managed(np.arange(4, dtype=np.float32), flags=IS_COPIED)
    t = dlbridge.from_dlpack(m.capsule())
    assert t.is_copied
    u = dlbridge.from_dlpack(t, copy=True)  # t's memory is shared with t: copied again
    assert u.data_ptr != t.data_ptr


def test_producer_copy_satisfies_copy_true_without_a_second_copy():
    m = Managed(np.arange(4, dtype=np.float32), flags=IS_COPIED)
    t = dlbridge.from_dlpack(m.capsule(), copy=True)
    assert t.data_ptr == addr(m.array) and t.is_copied


# ------------------------------------------------------- 4. the exchange API fast path
@needs_torch
def test_conjugate_bit_is_not_lost():
    z = torch.tensor([1 + 2j, 3 - 4j]).conj()
    with pytest.raises(BufferError, match="conjugate"):
        dlbridge.from_dlpack(z)
    with pytest.raises(BufferError, match="conjugate"):
        dlbridge.asarray(z)
    resolved = dlbridge.from_dlpack(z.resolve_conj())
    assert np.from_dlpack(resolved).tolist() == [1 - 2j, 3 + 4j]


@needs_torch
def test_negative_bit_is_not_lost():
    # torch 2.13's own __dlpack__ exports these as the un-negated values (np.from_dlpack
    # gives [2, -4]); dlbridge refuses on every path instead.
    im = torch.tensor([1 + 2j, 3 - 4j]).conj().imag
    assert im.is_neg()
    with pytest.raises(BufferError, match="negative"):
        dlbridge.from_dlpack(im)
    with pytest.raises(BufferError, match="negative"):
        dlbridge.asarray(im)
    with pytest.raises(BufferError, match="negative"):
        dlbridge.from_dlpack(im, device="cpu")  # the __dlpack__ path
    assert np.from_dlpack(dlbridge.from_dlpack(im.resolve_neg())).tolist() == [-2.0, 4.0]


@needs_torch
def test_requires_grad_is_refused_like_torch():
    w = torch.ones(3, requires_grad=True)
    with pytest.raises(BufferError, match="gradient"):
        dlbridge.from_dlpack(w)
    p = torch.nn.Parameter(torch.ones(3))
    with pytest.raises(BufferError, match="gradient"):
        dlbridge.from_dlpack(p)
    d = dlbridge.from_dlpack(w.detach())
    assert d.data_ptr == w.data_ptr()


@needs_torch
def test_subclasses_are_asked_for_their_state_too():
    # Exact torch.Tensor objects are asked through torch's descriptors, found once; a subclass
    # through its own attributes (which it may override).
    class Sub(torch.Tensor):
        pass

    im = torch.tensor([1 + 2j, 3 - 4j]).conj().imag.as_subclass(Sub)
    assert type(im) is Sub and im.is_neg()
    with pytest.raises(BufferError, match="negative"):
        dlbridge.from_dlpack(im)
    z = torch.tensor([1 + 2j]).conj().as_subclass(Sub)
    with pytest.raises(BufferError, match="conjugate"):
        dlbridge.asarray(z)
    w = torch.ones(3).as_subclass(Sub).requires_grad_()
    with pytest.raises(BufferError, match="gradient"):
        dlbridge.from_dlpack(w)

    class Lying(torch.Tensor):
        def is_neg(self):
            return True

    with pytest.raises(BufferError, match="negative"):
        dlbridge.from_dlpack(torch.ones(2).as_subclass(Lying))


@needs_torch
def test_subclass_override_of_dlpack_is_honoured():
    class Refusing(torch.Tensor):
        def __dlpack__(self, **kwargs):
            raise BufferError("refused by the subclass")

    x = torch.arange(4.0).as_subclass(Refusing)
    with pytest.raises(BufferError, match="refused by the subclass"):
        dlbridge.from_dlpack(x)

    class Plain(torch.Tensor):
        pass

    y = torch.arange(4.0).as_subclass(Plain)
    t = dlbridge.from_dlpack(y)
    assert t.data_ptr == y.data_ptr()


@needs_torch
def test_exchange_failures_surface_as_the_spec_says():
    with pytest.raises(BufferError):
        dlbridge.from_dlpack(torch.eye(3).to_sparse())


@needs_torch
def test_exchange_fast_path_still_shares_memory():
    for x in (torch.arange(6.0).reshape(2, 3), torch.arange(6), torch.tensor([True, False]),
              torch.tensor([1 + 1j])):
        t = dlbridge.from_dlpack(x)
        assert t.data_ptr == x.data_ptr() and not t.readonly


# ----------------------------------------------------- 5. legacy capsules import read-only
@needs_torch
def test_jax_arrays_stay_immutable():
    jnp = pytest.importorskip("jax.numpy")
    x = jnp.arange(4.0)
    for t in (dlbridge.asarray(x), dlbridge.from_dlpack(x)):
        assert t.readonly
        n = np.asarray(t)
        assert not n.flags.writeable
        with pytest.raises(ValueError):
            n[0] = 99
    assert np.asarray(x).tolist() == [0.0, 1.0, 2.0, 3.0]


def test_foreign_legacy_capsules_are_read_only():
    m = Managed(np.arange(4, dtype=np.int32), versioned=False)
    t = dlbridge.from_dlpack(m.capsule())
    assert t.readonly and not np.from_dlpack(t).flags.writeable
    # Our own legacy exports come back as they were.
    w = dlbridge.asarray(bytearray(8))
    assert not dlbridge.from_dlpack(w.__dlpack__()).readonly


# ----------------------------------------------------------------------------- 6. leaks
class Image:
    """The review's cycle: an object whose tensor view refers back to it."""

    def __init__(self, n=1_000_000):
        self.pixels = np.zeros(n).view(Weakrefable)

    @property
    def __array_interface__(self):
        return self.pixels.__array_interface__


class BufferImage(bytearray):
    pass


@pytest.mark.parametrize("route", ["array_interface", "buffer", "interface over buffer",
                                   "dlpack of a tensor", "tensor of a tensor"])
def test_cycles_through_tensors_are_collected(route):
    gc.collect()
    if route == "buffer":
        img = BufferImage(1000)
        watch = weakref.ref(img)
        img.view = dlbridge.asarray(img)
    elif route == "interface over buffer":
        img = Iface(None, shape=(10,), typestr="|u1", data=None)
        img.iface["data"] = BufferImage(10)
        img.iface["data"].back = img
        watch = weakref.ref(img)
        img.view = dlbridge.asarray(img)
    else:
        img = Image()
        watch = weakref.ref(img.pixels)
        if route == "array_interface":
            img.view = dlbridge.asarray(img)
        elif route == "dlpack of a tensor":
            img.view = dlbridge.from_dlpack(dlbridge.asarray(img).__dlpack__(max_version=(1, 3)))
        else:
            img.view = dlbridge.from_dlpack(dlbridge.asarray(img))
    del img
    collect()
    assert watch() is None


def test_type_cache_keeps_no_type_alive():
    def make():
        class Dyn:
            def __init__(self, a):
                self.a = a

            def __dlpack__(self, **kwargs):
                return self.a.__dlpack__(**kwargs)

            def __dlpack_device__(self):
                return (1, 0)
        return Dyn

    refs = []
    for _ in range(100):  # more than the cache holds
        cls = make()
        assert dlbridge.from_dlpack(cls(np.arange(3.0))).shape == (3,)
        refs.append(weakref.ref(cls))
        del cls
    collect()
    assert all(r() is None for r in refs)


def test_type_cache_sees_later_changes():
    class Late:
        def __init__(self, a):
            self.a = a

        @property
        def __array_interface__(self):
            return self.a.__array_interface__

    a = np.arange(3.0)
    assert dlbridge.asarray(Late(a)).data_ptr == addr(a)
    b = np.arange(5.0)
    Late.__dlpack__ = lambda self, **k: b.__dlpack__(**k)
    Late.__dlpack_device__ = lambda self: (1, 0)
    t = dlbridge.from_dlpack(Late(a))
    assert t.data_ptr == addr(b)
    del Late.__dlpack__
    with pytest.raises(TypeError):
        dlbridge.from_dlpack(Late(a))


def test_atexit_run_by_the_program_does_not_stop_releases():
    rc, out = run_isolated("""
        import atexit, gc, weakref
        class W(np.ndarray):
            pass
        atexit._run_exitfuncs()
        for route in ("buffer", "array_interface", "dlpack"):
            a = np.arange(10.0).view(W)
            ref = weakref.ref(a)
            if route == "buffer":
                t = dlbridge.asarray(memoryview(a))
            elif route == "array_interface":
                class I:
                    __array_interface__ = a.__array_interface__
                    keep = a
                t = dlbridge.asarray(I())
                del I
            else:
                t = dlbridge.from_dlpack(a)
            del a, t
            gc.collect()
            assert ref() is None, route
        print("ok")
    """)
    assert rc == 0 and "ok" in out, out


# ------------------------------------------------------------------------ 7. no panics
def _flat():
    return pa.array(np.arange(6, dtype=np.float32))


@pytest.mark.parametrize("schema_of", [
    lambda: pa.list_(pa.float32(), 3),           # the review's case: children missing
    lambda: pa.struct([("a", pa.float32())]),
    lambda: pa.list_(pa.float32()),
    lambda: pa.string(),
    lambda: pa.dictionary(pa.int8(), pa.float32()),
    lambda: pa.list_(pa.list_(pa.float32(), 2), 3),
])
def test_mismatched_schema_and_array_raise_a_typed_error(schema_of):
    flat = _flat()
    p = ArrowPair(schema_of().__arrow_c_schema__(), flat.__arrow_c_array__()[1])
    with pytest.raises((ValueError, TypeError, BufferError)):
        dlbridge.from_arrow(p)


def test_list_array_with_a_flat_schema_is_refused():
    lists = pa.FixedSizeListArray.from_arrays(_flat(), 3)
    p = ArrowPair(pa.float32().__arrow_c_schema__(), lists.__arrow_c_array__()[1])
    with pytest.raises(ValueError, match="buffers|children"):
        dlbridge.from_arrow(p)


def test_no_panic_exception_escapes():
    flat = _flat()
    p = ArrowPair(pa.list_(pa.float32(), 3).__arrow_c_schema__(), flat.__arrow_c_array__()[1])
    with pytest.raises(BaseException) as caught:  # the point is what kind it is
        dlbridge.from_arrow(p)
    assert isinstance(caught.value, Exception), type(caught.value)
    assert "Panic" not in type(caught.value).__name__
