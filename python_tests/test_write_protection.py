"""Write protection: read-only input can never be written through any consumer of dlbridge.

Matrix: every read-only source (read-only numpy through DLPack / buffer / __array_interface__,
bytes, read-only memoryview, immutable pyarrow buffer, a foreign versioned DLPack tensor with
READ_ONLY, a read-only dlbridge.Tensor re-imported) x every consumer (np.from_dlpack,
np.asarray, __array_interface__, memoryview, writable buffer requests, legacy and versioned
__dlpack__, dlbridge re-import, copies, pyarrow, torch). After every attempt the bytes are
unchanged.
"""

import ctypes
from ctypes import c_int, c_void_p

import numpy as np
import pyarrow as pa
import pytest
import torch

import dlbridge
from conftest import addr, collect
from dlpack_kit import READ_ONLY, DLManagedTensorVersioned, Managed, _api


class InterfaceOnly:
    """Exposes someone's `__array_interface__` and nothing else (forces that protocol)."""

    def __init__(self, owner):
        self.owner = owner
        self.__array_interface__ = owner.__array_interface__


def _ro_numpy():
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    a.flags.writeable = False
    return a


def _source(kind):
    """(read-only dlbridge.Tensor, keep-alive, address of its bytes)."""
    if kind == "numpy dlpack":
        a = _ro_numpy()
        return dlbridge.from_dlpack(a), a
    if kind == "numpy asarray":
        a = _ro_numpy()
        return dlbridge.asarray(a), a
    if kind == "numpy buffer":
        a = _ro_numpy()
        return dlbridge.asarray(memoryview(a)), a
    if kind == "numpy array_interface":
        a = _ro_numpy()
        return dlbridge.asarray(InterfaceOnly(a)), a
    if kind == "numpy strided":
        a = _ro_numpy()
        return dlbridge.from_dlpack(a[:, ::2]), a
    if kind == "bytes":
        b = bytes(range(48))
        return dlbridge.asarray(b), b
    if kind == "readonly memoryview":
        b = bytearray(range(48))
        return dlbridge.asarray(memoryview(b).toreadonly()), b
    if kind == "pyarrow buffer":
        buf = pa.py_buffer(bytes(range(48)))
        assert not buf.is_mutable
        return dlbridge.asarray(buf), buf
    if kind == "ctypes READ_ONLY":
        m = Managed(np.arange(12, dtype=np.int32), flags=READ_ONLY)
        return dlbridge.from_dlpack(m.capsule()), m
    if kind == "tensor reimport":
        b = bytes(range(48))
        return dlbridge.from_dlpack(dlbridge.asarray(b)), b
    if kind == "versioned capsule":
        b = bytes(range(48))
        return dlbridge.from_dlpack(dlbridge.asarray(b).__dlpack__(max_version=(1, 3))), b
    if kind == "jax (legacy capsule)":
        import jax.numpy as jnp

        x = jnp.arange(12, dtype=jnp.float32)
        return dlbridge.asarray(x), x
    if kind == "jax from_dlpack":
        import jax.numpy as jnp

        x = jnp.arange(12, dtype=jnp.float32).reshape(3, 4)
        return dlbridge.from_dlpack(x), x
    if kind == "ctypes legacy":
        m = Managed(np.arange(12, dtype=np.int32), versioned=False)
        return dlbridge.from_dlpack(m.capsule()), m
    raise AssertionError(kind)


SOURCES = ["numpy dlpack", "numpy asarray", "numpy buffer", "numpy array_interface",
           "numpy strided", "bytes", "readonly memoryview", "pyarrow buffer",
           "ctypes READ_ONLY", "tensor reimport", "versioned capsule",
           "jax (legacy capsule)", "jax from_dlpack", "ctypes legacy"]


def _bytes_of(t):
    """A copy of the tensor's elements (through a fresh copy, not through the view)."""
    return np.from_dlpack(dlbridge.from_dlpack(t, copy=True)).tobytes()


_GetBuffer = ctypes.PYFUNCTYPE(c_int, ctypes.py_object, c_void_p, c_int)(
    ("PyObject_GetBuffer", ctypes.pythonapi))
_ReleaseBuffer = ctypes.PYFUNCTYPE(None, c_void_p)(("PyBuffer_Release", ctypes.pythonapi))
PyBUF_WRITABLE = 0x0001
PyBUF_STRIDES = 0x0010 | 0x0008
PyBUF_FORMAT = 0x0004


def _request_writable(t, flags):
    view = ctypes.create_string_buffer(256)  # >= sizeof(Py_buffer)
    try:
        _GetBuffer(t, ctypes.addressof(view), flags)
    except BufferError:
        return
    _ReleaseBuffer(ctypes.addressof(view))
    raise AssertionError("a writable buffer of a read-only tensor was handed out")


def _readonly_flag(capsule):
    ptr = _api.PyCapsule_GetPointer(id(capsule), b"dltensor_versioned")
    return ctypes.cast(ptr, ctypes.POINTER(DLManagedTensorVersioned)).contents.flags & READ_ONLY


def _np_consumer(r, t):
    assert not r.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        r[(0,) * r.ndim] = 1
    with pytest.raises(ValueError):
        r.flags.writeable = True
    with pytest.raises(ValueError):
        np.copyto(r, 0)


def consume_np_from_dlpack(t):
    _np_consumer(np.from_dlpack(t), t)


def consume_np_asarray(t):
    _np_consumer(np.asarray(t), t)


def consume_array_interface(t):
    assert t.__array_interface__["data"][1] is True
    r = np.asarray(InterfaceOnly(t))
    assert addr(r) == t.data_ptr
    _np_consumer(r, t)


def consume_memoryview(t):
    m = memoryview(t)
    assert m.readonly
    with pytest.raises(TypeError):
        m[(0,) * m.ndim] = m[(0,) * m.ndim]
    flat = m.cast("B") if m.c_contiguous else None
    if flat is not None:
        with pytest.raises(TypeError):
            flat[0] = 1


def consume_frombuffer(t):
    try:
        r = np.frombuffer(t, dtype=np.uint8)
    except (BufferError, ValueError):
        return  # non-contiguous: refused outright
    _np_consumer(r, t)


def consume_writable_buffer(t):
    _request_writable(t, PyBUF_WRITABLE)
    _request_writable(t, PyBUF_WRITABLE | PyBUF_STRIDES | PyBUF_FORMAT)
    with pytest.raises((TypeError, BufferError)):
        (ctypes.c_char * t.nbytes).from_buffer(t)


def consume_legacy_dlpack(t):
    with pytest.raises(BufferError, match="read-only"):
        t.__dlpack__()
    with pytest.raises(BufferError, match="read-only"):
        t.__dlpack__(max_version=None)
    with pytest.raises(BufferError, match="read-only"):
        t.__dlpack__(max_version=(0, 8))
    cap = t.__dlpack__(max_version=(0, 8), copy=True)  # a writable copy may go out legacy
    assert not dlbridge.from_dlpack(cap).readonly


def consume_versioned_dlpack(t):
    cap = t.__dlpack__(max_version=(1, 3))
    assert _readonly_flag(cap)
    u = dlbridge.from_dlpack(cap)
    assert u.readonly and u.data_ptr == t.data_ptr
    cap = t.__dlpack__(max_version=(1, 0), copy=False)
    assert _readonly_flag(cap)


def consume_dlbridge(t):
    for u in (dlbridge.from_dlpack(t), dlbridge.asarray(t), dlbridge.from_dlpack(t, copy=False)):
        assert u.readonly and u.data_ptr == t.data_ptr


def consume_copies(t):
    before = _bytes_of(t)
    c = dlbridge.from_dlpack(t, copy=True)
    assert not c.readonly and c.is_copied and c.data_ptr != t.data_ptr
    n = np.from_dlpack(t, copy=True)
    assert n.flags.writeable and addr(n) != t.data_ptr
    n[...] = 0
    np.from_dlpack(c)[...] = 0
    assert _bytes_of(t) == before


def consume_pyarrow(t):
    try:
        buf = pa.py_buffer(t)
    except (BufferError, ValueError, TypeError):
        return  # non-contiguous: pyarrow refuses
    assert buf.address == t.data_ptr and not buf.is_mutable


CONSUMERS = [consume_np_from_dlpack, consume_np_asarray, consume_array_interface,
             consume_memoryview, consume_frombuffer, consume_writable_buffer,
             consume_legacy_dlpack, consume_versioned_dlpack, consume_dlbridge, consume_copies,
             consume_pyarrow]


@pytest.mark.parametrize("consumer", CONSUMERS, ids=lambda f: f.__name__[len("consume_"):])
@pytest.mark.parametrize("kind", SOURCES)
def test_read_only_matrix(kind, consumer):
    t, keep = _source(kind)
    assert t.readonly
    before = _bytes_of(t)
    consumer(t)
    assert _bytes_of(t) == before
    if isinstance(keep, np.ndarray):
        assert not keep.flags.writeable


def test_writable_sources_stay_writable():
    """The other half of the contract: the checks above can fail (writable input is shared
    writable through the same consumers)."""
    a = np.arange(12.0)
    t = dlbridge.from_dlpack(a)
    assert not t.readonly
    np.from_dlpack(t)[0] = 5
    np.asarray(t)[1] = 6
    memoryview(t)[2] = 7.0
    np.asarray(InterfaceOnly(t))[3] = 8
    assert a[:4].tolist() == [5, 6, 7, 8]
    assert not _readonly_flag(t.__dlpack__(max_version=(1, 3)))
    t.__dlpack__()  # legacy allowed
    assert pa.py_buffer(t).is_mutable


def test_read_only_tensor_outlives_nothing():
    """Read-only views keep the source alive as long as writable ones do."""
    import weakref

    from conftest import Weakrefable

    a = np.arange(6.0).view(Weakrefable)
    a.flags.writeable = False
    ref = weakref.ref(a)
    t = dlbridge.asarray(a)
    views = [np.from_dlpack(t), memoryview(t), np.asarray(t)]
    del a, t
    collect()
    assert ref() is not None and views[0][5] == 5.0
    del views
    collect()
    assert ref() is None


# The root is that torch has no read-only tensors (pytorch/pytorch#44027, open);
# pytorch/pytorch#5442 is the same bug on the from_numpy path.
@pytest.mark.xfail(strict=True, reason="torch 2.13 ignores DLPack's READ_ONLY flag: "
                   "torch.from_dlpack returns a writable alias of read-only memory")
def test_torch_respects_read_only():
    a = _ro_numpy()
    t = dlbridge.from_dlpack(a)
    try:
        y = torch.from_dlpack(t)
    except (BufferError, RuntimeError):
        return  # refusing would be correct
    try:
        y[0, 0] = 42.0
    except RuntimeError:
        return  # so would refusing writes
    assert a[0, 0] == 0.0, "torch wrote through a read-only DLPack tensor"


@pytest.mark.xfail(strict=True, reason="torch 2.13 ignores DLPack's READ_ONLY flag (capsule path)")
def test_torch_respects_read_only_capsule():
    a = _ro_numpy()
    cap = dlbridge.from_dlpack(a).__dlpack__(max_version=(1, 3))
    assert _readonly_flag(cap)
    y = torch.utils.dlpack.from_dlpack(cap)
    try:
        y[0, 0] = 42.0
    except RuntimeError:
        return
    assert a[0, 0] == 0.0, "torch wrote through a read-only DLPack tensor"
