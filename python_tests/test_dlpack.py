"""DLPack both ways between dlbridge and real peers (numpy, torch, jax, pyarrow)."""

import ctypes

import numpy as np
import pytest
import torch

import dlbridge
from conftest import NUMPY_DTYPES, addr, capsule_name, sample

TORCH_DTYPES = [
    torch.bool, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8,
    torch.uint16, torch.uint32, torch.uint64, torch.float16, torch.bfloat16,
    torch.float32, torch.float64, torch.complex64, torch.complex128,
]


def torch_sample(dtype, shape=(3, 4)):
    if dtype == torch.bool:
        return torch.arange(12).reshape(shape) % 3 == 0
    if dtype.is_complex:
        return torch.complex(torch.arange(12.0), -torch.arange(12.0)).reshape(shape).to(dtype)
    return torch.arange(12).reshape(shape).to(dtype)


# ------------------------------------------------------------------ numpy -> dlbridge -> peers
@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_numpy_roundtrip_every_dtype(dtype):
    a = sample(dtype)
    t = dlbridge.from_dlpack(a)
    assert t.data_ptr == addr(a)
    assert t.shape == (3, 4) and t.strides == (4, 1) and t.dtype == dtype
    assert t.device == (1, 0) and t.ndim == 2 and t.nbytes == a.nbytes
    assert not t.readonly and not t.is_copied
    b = np.from_dlpack(t)
    assert np.shares_memory(a, b) and addr(b) == addr(a)
    np.testing.assert_array_equal(a, b)
    c = torch.from_dlpack(t)
    assert c.data_ptr() == addr(a)
    np.testing.assert_array_equal(c.numpy(), a)
    # writes are shared
    if dtype != "bool":
        b[0, 0] = 7
        assert a[0, 0] == 7 and c[0, 0].item() == 7


@pytest.mark.parametrize("dtype", ["bool", "int32", "float32", "uint8", "complex64"])
def test_numpy_to_jax(dtype):
    import jax.numpy as jnp

    a = sample(dtype)
    j = jnp.from_dlpack(dlbridge.from_dlpack(a))  # jax may copy; values must match
    np.testing.assert_array_equal(np.asarray(j), a)


def test_jax_to_dlbridge():
    import jax.numpy as jnp

    j = jnp.arange(12.0, dtype=jnp.float32).reshape(3, 4)
    t = dlbridge.from_dlpack(j)
    assert t.shape == (3, 4) and t.dtype == "float32"
    np.testing.assert_array_equal(np.from_dlpack(t), np.arange(12.0).reshape(3, 4))
    import jax

    # JAX hands out legacy capsules, which cannot say "read-only": like numpy 2, dlbridge
    # imports them read-only, and a read-only tensor cannot go back out as legacy (what JAX
    # asks for). numpy refuses the same round trip; a copy makes it.
    assert t.readonly
    with pytest.raises(BufferError, match="read-only"):
        jax.dlpack.from_dlpack(t)
    with pytest.raises(BufferError):
        jax.dlpack.from_dlpack(np.from_dlpack(j))
    back = jax.dlpack.from_dlpack(dlbridge.from_dlpack(t, copy=True))
    np.testing.assert_array_equal(np.asarray(back), np.asarray(j))


@pytest.mark.parametrize("ndim", range(0, 33))
def test_ndim_0_to_32(ndim):
    shape = tuple(2 if i < 5 else 1 for i in range(ndim))
    a = sample("float64", shape)
    t = dlbridge.from_dlpack(a)
    assert t.shape == shape and t.ndim == ndim
    b = np.from_dlpack(t)
    assert addr(b) == addr(a)
    np.testing.assert_array_equal(a, b)
    c = torch.from_dlpack(t)
    assert c.data_ptr() == addr(a) and tuple(c.shape) == shape


@pytest.mark.parametrize(
    "view",
    [
        lambda a: a[::2, 1::3],
        lambda a: a.T,
        lambda a: a[::-1],
        lambda a: a[:, ::-2],
        lambda a: a[1:2, :1],
        lambda a: np.broadcast_to(a[:1], (4, 6)),
        lambda a: a[2:2],
    ],
    ids=["steps", "transpose", "neg0", "neg1", "size1", "broadcast", "empty"],
)
def test_numpy_views_keep_layout(view):
    base = np.arange(24, dtype=np.int32).reshape(4, 6)
    a = view(base)
    t = dlbridge.from_dlpack(a)
    elem = a.itemsize
    assert t.strides == tuple(s // elem for s in a.strides)
    b = np.from_dlpack(t)
    np.testing.assert_array_equal(a, b)
    if a.size:
        assert addr(b) == addr(a) and t.data_ptr == addr(a)
        if min(a.strides) >= 0:
            c = torch.from_dlpack(t)
            assert c.data_ptr() == addr(a)
            np.testing.assert_array_equal(c.numpy(), a)


# ------------------------------------------------------------------ torch -> dlbridge -> peers
@pytest.mark.parametrize("dtype", TORCH_DTYPES, ids=str)
def test_torch_roundtrip_every_dtype(dtype):
    x = torch_sample(dtype)
    t = dlbridge.from_dlpack(x)
    assert t.data_ptr == x.data_ptr() and t.shape == (3, 4)
    assert t.dtype == str(dtype).removeprefix("torch.")
    y = torch.from_dlpack(t)
    assert y.data_ptr() == x.data_ptr() and y.dtype == dtype
    assert torch.equal(x, y)
    if dtype not in (torch.bfloat16, torch.uint16, torch.uint32, torch.uint64):
        b = np.from_dlpack(t)
        assert addr(b) == x.data_ptr()
        np.testing.assert_array_equal(b, x.numpy())


def test_torch_bfloat16_to_numpy_via_ml_dtypes():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = torch.arange(6, dtype=torch.bfloat16)
    t = dlbridge.from_dlpack(x)
    assert t.dtype == "bfloat16"
    # numpy cannot import bfloat16 over DLPack (numpy/numpy#19808; numpy/numpy#31256 lets a
    # package such as ml_dtypes register it); the raw bits can be shared as uint16 though.
    raw = np.from_dlpack(dlbridge.from_dlpack(x.view(torch.uint16).numpy()))
    np.testing.assert_array_equal(raw.view(ml_dtypes.bfloat16).astype(np.float32), np.arange(6.0))
    with pytest.raises(TypeError):
        np.asarray(t)  # no numpy dtype: __array_interface__ refuses


def test_torch_odd_strides_and_transposes():
    x = torch.arange(12.0).reshape(3, 4)
    for y in (x[:, :1], x.t(), x[::2, 1::2], x[1:2], x.unsqueeze(1).expand(3, 5, 4), x[:0]):
        t = dlbridge.from_dlpack(y)
        assert t.shape == tuple(y.shape)
        if y.numel():
            assert t.data_ptr == y.data_ptr()
            assert t.strides == tuple(y.stride())
        b = np.from_dlpack(t)
        np.testing.assert_array_equal(b, y.numpy())
        z = torch.from_dlpack(t)
        assert torch.equal(z, y)


def test_torch_exchange_api_is_used(monkeypatch):
    calls = []
    original = torch.Tensor.__dlpack__

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "__dlpack__", counting)
    x = torch.arange(5.0)
    t = dlbridge.from_dlpack(x)
    assert t.data_ptr == x.data_ptr() and calls == []
    np.testing.assert_array_equal(np.from_dlpack(t), np.arange(5.0))


def test_torch_subclass_dlpack_override_is_called():
    class Counting(torch.Tensor):
        calls = 0

        def __dlpack__(self, *args, **kwargs):
            type(self).calls += 1
            return super().__dlpack__(*args, **kwargs)

    x = torch.arange(5.0).as_subclass(Counting)
    t = dlbridge.from_dlpack(x)
    assert t.data_ptr == x.data_ptr() and Counting.calls == 1


def test_pyarrow_to_dlbridge():
    pa = pytest.importorskip("pyarrow")
    arr = pa.array(np.arange(10, dtype=np.int64))
    t = dlbridge.from_dlpack(arr)
    assert t.readonly and t.shape == (10,)
    b = np.from_dlpack(t)
    assert not b.flags.writeable
    np.testing.assert_array_equal(b, np.arange(10))
    assert t.data_ptr == arr.buffers()[1].address


# ------------------------------------------------------------------ producer semantics
def test_capsule_kinds_and_versions():
    t = dlbridge.asarray(bytearray(16))
    assert capsule_name(t.__dlpack__()) == "dltensor"
    assert capsule_name(t.__dlpack__(max_version=(0, 8))) == "dltensor"
    assert capsule_name(t.__dlpack__(max_version=(1, 0))) == "dltensor_versioned"
    assert capsule_name(t.__dlpack__(max_version=(2, 0))) == "dltensor_versioned"
    dev = t.__dlpack_device__()
    assert dev == (1, 0) and dev[0] is dlbridge.DLDeviceType.kDLCPU


def test_copy_semantics():
    a = np.arange(6.0).reshape(2, 3).T
    t = dlbridge.from_dlpack(a)
    c = np.from_dlpack(t, copy=True)
    assert not np.shares_memory(c, a)
    np.testing.assert_array_equal(c, a)
    n = np.from_dlpack(t, copy=False)
    assert np.shares_memory(n, a)
    tc = dlbridge.from_dlpack(a, copy=True)
    assert tc.is_copied and tc.data_ptr != addr(a) and tc.strides == (2, 1)
    np.testing.assert_array_equal(np.from_dlpack(tc), a)
    tn = dlbridge.from_dlpack(a, copy=False)
    assert tn.data_ptr == addr(a) and not tn.is_copied
    # copy of a read-only tensor is writable, even over the legacy protocol
    r = dlbridge.from_dlpack(np.frombuffer(b"abcd", dtype=np.uint8))
    assert r.readonly
    with pytest.raises(BufferError):
        r.__dlpack__()
    assert capsule_name(r.__dlpack__(copy=True)) == "dltensor"


def test_producer_errors():
    t = dlbridge.asarray(bytearray(8))
    with pytest.raises(ValueError):
        t.__dlpack__(stream=1)
    with pytest.raises(ValueError):
        t.__dlpack__(max_version=(1, 0), stream=0)
    with pytest.raises(BufferError):
        t.__dlpack__(max_version=(1, 0), dl_device=(2, 0))
    t.__dlpack__(max_version=(1, 0), dl_device=(1, 0))
    # A device request goes to the producer, which refuses what it cannot do (numpy: CUDA).
    with pytest.raises(BufferError, match="unsupported device"):
        dlbridge.from_dlpack(np.arange(3), device=(2, 0))
    with pytest.raises(ValueError):
        dlbridge.from_dlpack(np.arange(3), device="cuda")
    assert dlbridge.from_dlpack(np.arange(3), device="cpu").shape == (3,)
    with pytest.raises(TypeError):
        dlbridge.from_dlpack(object())
    with pytest.raises(TypeError):
        dlbridge.asarray(object())
    with pytest.raises(TypeError):
        dlbridge.from_dlpack([1, 2, 3])


def test_capsule_consumed_once():
    a = np.arange(4.0)
    cap = dlbridge.from_dlpack(a).__dlpack__(max_version=(1, 0))
    t = dlbridge.from_dlpack(cap)
    assert t.data_ptr == addr(a)
    assert capsule_name(cap) == "used_dltensor_versioned"
    with pytest.raises(ValueError, match="already consumed"):
        dlbridge.from_dlpack(cap)
    legacy = np.arange(3).__dlpack__()
    dlbridge.from_dlpack(legacy)
    with pytest.raises(ValueError):
        dlbridge.from_dlpack(legacy)


def test_legacy_producer_retry():
    class Legacy:
        def __init__(self, a):
            self.a = a
            self.calls = []

        def __dlpack__(self, stream=None):  # pre-2023 signature: no max_version
            self.calls.append(stream)
            return self.a.__dlpack__(stream=stream)

        def __dlpack_device__(self):
            return self.a.__dlpack_device__()

    src = Legacy(np.arange(5, dtype=np.int16))
    t = dlbridge.from_dlpack(src)
    assert src.calls == [None] and t.data_ptr == addr(src.a)
    np.testing.assert_array_equal(np.from_dlpack(t), np.arange(5))


def test_readonly_survives_every_path():
    a = np.arange(6.0)
    a.flags.writeable = False
    for t in (dlbridge.from_dlpack(a), dlbridge.asarray(a), dlbridge.asarray(memoryview(a))):
        assert t.readonly
        assert not np.from_dlpack(t).flags.writeable
        assert not np.asarray(t).flags.writeable
        assert memoryview(t).readonly
        assert dlbridge.from_dlpack(t).readonly
        again = dlbridge.from_dlpack(t.__dlpack__(max_version=(1, 0)))
        assert again.readonly
        with pytest.raises(BufferError):
            t.__dlpack__()


def test_exchange_api_table_via_ctypes():
    cap = dlbridge.Tensor.__dlpack_c_exchange_api__
    assert capsule_name(cap) == "dlpack_exchange_api"
    get_ptr = ctypes.pythonapi.PyCapsule_GetPointer
    get_ptr.restype = ctypes.c_void_p
    get_ptr.argtypes = [ctypes.py_object, ctypes.c_char_p]
    p = get_ptr(cap, b"dlpack_exchange_api")
    major, minor = ctypes.c_uint32.from_address(p).value, ctypes.c_uint32.from_address(p + 4).value
    assert (major, minor) == (1, 3)
    assert ctypes.c_void_p.from_address(p + 8).value is None  # prev_api
    fns = [ctypes.c_void_p.from_address(p + 16 + 8 * i).value for i in range(5)]
    assert all(fns)

    from dlpack_kit import DLDataType, DLDevice, DLTensor

    pyapi = ctypes.PYFUNCTYPE  # called with the GIL held, may set Python errors
    from_py = pyapi(ctypes.c_int, ctypes.py_object, ctypes.POINTER(ctypes.c_void_p))(fns[1])
    to_py = pyapi(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.py_object))(fns[2])
    dl_from_py = pyapi(ctypes.c_int, ctypes.py_object, ctypes.POINTER(DLTensor))(fns[3])
    stream = pyapi(ctypes.c_int, ctypes.c_uint32, ctypes.c_int32, ctypes.POINTER(ctypes.c_void_p))(fns[4])

    a = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]
    t = dlbridge.from_dlpack(a)
    dl = DLTensor()
    assert dl_from_py(t, ctypes.byref(dl)) == 0
    assert dl.data + dl.byte_offset == addr(a) and dl.ndim == 2
    assert (dl.dtype.code, dl.dtype.bits, dl.dtype.lanes) == (2, 32, 1)
    assert [dl.shape[i] for i in range(2)] == [3, 2] and [dl.strides[i] for i in range(2)] == [4, 2]
    managed = ctypes.c_void_p()
    assert from_py(t, ctypes.byref(managed)) == 0 and managed.value
    out = ctypes.py_object()
    assert to_py(managed, ctypes.byref(out)) == 0
    back = out.value
    assert isinstance(back, dlbridge.Tensor) and back.data_ptr == addr(a) and back.shape == (3, 2)
    with pytest.raises(TypeError):
        from_py(np.arange(3), ctypes.byref(managed))
    # A borrowed DLTensor has no flags: read-only tensors are refused there, not made writable.
    ro = np.arange(3.0)
    ro.flags.writeable = False
    with pytest.raises(BufferError):
        dl_from_py(dlbridge.from_dlpack(ro), ctypes.byref(DLTensor()))
    s = ctypes.c_void_p(1)
    assert stream(1, 0, ctypes.byref(s)) == 0 and s.value is None

    # the allocator: a fresh zeroed CPU tensor shaped like the prototype
    alloc = ctypes.CFUNCTYPE(
        ctypes.c_int, ctypes.POINTER(DLTensor), ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p,
        ctypes.c_void_p,
    )(fns[0])
    shape = (ctypes.c_int64 * 2)(5, 7)
    proto = DLTensor(None, DLDevice(1, 0), 2, DLDataType(2, 64, 1), shape, None, 0)
    new = ctypes.c_void_p()
    assert alloc(ctypes.byref(proto), ctypes.byref(new), None, None) == 0 and new.value
    out = ctypes.py_object()
    assert to_py(new, ctypes.byref(out)) == 0
    z = np.from_dlpack(out.value)
    assert z.shape == (5, 7) and z.dtype == np.float64 and not z.any()
    assert addr(z) % 64 == 0


def test_copy_true_of_a_dlbridge_tensor_is_new_memory_and_only_then_is_copied():
    a = np.arange(6.0)
    first = dlbridge.from_dlpack(a, copy=True)
    assert first.is_copied and first.data_ptr != addr(a)
    second = dlbridge.from_dlpack(first, copy=True)
    assert second.is_copied and second.data_ptr != first.data_ptr
    # IS_COPIED promises the consumer sole ownership: not for memory `first` still shows.
    get_ptr = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
        ("PyCapsule_GetPointer", ctypes.pythonapi))

    def flags(capsule):  # DLManagedTensorVersioned.flags sits at byte 24
        return ctypes.c_uint64.from_address(get_ptr(capsule, b"dltensor_versioned") + 24).value

    assert flags(first.__dlpack__(max_version=(1, 3))) & 2 == 0
    assert flags(first.__dlpack__(max_version=(1, 3), copy=True)) & 2 == 2


def test_array_interface_buffer_data_is_bounds_checked():
    class Liar:
        def __init__(self, data, shape):
            self.__array_interface__ = {"version": 3, "shape": shape, "typestr": "<f8", "data": data}

    with pytest.raises(BufferError):
        dlbridge.asarray(Liar(b"abc", (10**6,)))
    ok = dlbridge.asarray(Liar(np.arange(4.0).tobytes(), (4,)))
    np.testing.assert_array_equal(np.from_dlpack(ok), np.arange(4.0))
