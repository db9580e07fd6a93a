"""Device memory through dlbridge, with fake producers that claim a device.

Each fake device tensor points into a region mapped with PROT_NONE: any read or write of its
data kills the test process, so a passing test proves that no path touched it. The producers
record every `__dlpack__` request, so the tests see which `stream`, `dl_device` and `copy`
reached them, and their deleters are counted (dlpack_kit).
"""

import ctypes
import gc
import pickle
import weakref

import numpy as np
import pytest
import torch

import dlbridge
from dlpack_kit import IS_COPIED, NOWHERE, STRAY, Managed, exchange_type

CUDA, ROCM, ONEAPI, METAL = 2, 10, 14, 8
DEVICES = [CUDA, ROCM, ONEAPI, METAL]


def device_managed(device, offset=0, flags=0, shape=(3, 4), strides=(4, 1)):
    """A float32 managed tensor on `device`, in the never-readable region."""
    keep = np.zeros(1, np.float32)  # the "producer's allocation": released by the deleter
    return Managed(keep, shape=shape, strides=strides, dtype=(2, 32, 1),
                   data=NOWHERE + offset, device=device, flags=flags)


class DeviceProducer:
    """A `__dlpack__` producer of one device tensor, recording every request.

    `dl_device=(1, 0)` is answered with a host copy (IS_COPIED), `copy=True` with a "copy" at
    another device address (IS_COPIED); anything else with the tensor itself.
    """

    def __init__(self, device=(CUDA, 0), offset=0, honour_copy=True, sturdy=False):
        self.device = device
        self.offset = offset
        self.honour_copy = honour_copy
        # The kit's capsule destructor is Python code, which cannot run while a consumer's
        # exception is pending (as it is when numpy refuses a device). A sturdy producer hands
        # out a capsule whose destructor saves the exception, as real producers' do: its
        # tensor re-exported by dlbridge from the kit's capsule.
        self.sturdy = sturdy
        self.requests = []
        self.made = []

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        self.requests.append(
            {"stream": stream, "max_version": max_version, "dl_device": dl_device, "copy": copy})
        if dl_device is not None and tuple(dl_device) == (1, 0):
            m = Managed(np.arange(12, dtype=np.float32).reshape(3, 4), flags=IS_COPIED)
        elif copy and self.honour_copy:
            m = device_managed(self.device, offset=4096, flags=IS_COPIED)
        else:
            m = device_managed(self.device, offset=self.offset)
        self.made.append(m)
        if self.sturdy:
            return dlbridge.from_dlpack(m.capsule()).__dlpack__(
                stream=stream, max_version=max_version)
        return m.capsule()

    def __dlpack_device__(self):
        return self.device

    def released(self):
        return all(m.released() for m in self.made)


@pytest.mark.parametrize("kind", DEVICES)
def test_device_tensors_import_untouched_and_report_their_device(kind):
    p = DeviceProducer((kind, 1))
    t = dlbridge.from_dlpack(p)
    assert t.device == (kind, 1)
    assert t.__dlpack_device__() == (kind, 1)
    assert t.data_ptr == NOWHERE
    assert (t.shape, t.strides, t.dtype) == ((3, 4), (4, 1), "float32")
    repr(t)  # reads no data
    # dlbridge itself asks with no stream (it runs no kernels) and no device or copy request.
    assert p.requests == [{"stream": None, "max_version": (1, 3), "dl_device": None,
                           "copy": None}]
    assert p.made[0].calls == 0
    del t
    assert p.released()


def test_asarray_and_reimport_chains_keep_address_device_and_one_deleter():
    p = DeviceProducer((ROCM, 0), offset=64)
    a = dlbridge.asarray(p)
    b = dlbridge.from_dlpack(a)
    c = dlbridge.asarray(b)
    for t in (a, b, c):
        assert t.device == (ROCM, 0) and t.data_ptr == NOWHERE + 64
    assert len(p.requests) == 1, "dlbridge tensors are shared, not re-imported"
    del a, b, t
    gc.collect()
    assert p.made[0].calls == 0
    del c
    assert p.released()


def test_reexport_hands_the_consumers_request_to_the_producer():
    p = DeviceProducer((CUDA, 0))
    t = dlbridge.from_dlpack(p)
    cap = t.__dlpack__(stream=7, max_version=(1, 3))
    assert p.requests[-1] == {"stream": 7, "max_version": (1, 3), "dl_device": None,
                              "copy": None}
    u = dlbridge.from_dlpack(cap)
    assert u.device == (CUDA, 0) and u.data_ptr == NOWHERE
    # A consumer's dl_device and copy reach the producer as well.
    host = np.asarray(dlbridge.from_dlpack(
        t.__dlpack__(max_version=(1, 3), dl_device=(1, 0), copy=None)))
    assert p.requests[-1]["dl_device"] == (1, 0)
    assert host.tolist() == np.arange(12, dtype=np.float32).reshape(3, 4).tolist()
    t.__dlpack__(stream=-1, max_version=(1, 3), copy=False)
    assert p.requests[-1] == {"stream": -1, "max_version": (1, 3), "dl_device": None,
                              "copy": False}
    del t, u, cap, host
    gc.collect()
    assert p.released()


def test_stream_reaches_the_producer_through_a_consumer_calling_dlpack():
    """Another bridge (a consumer asking with a stream) sees the producer answer."""
    p = DeviceProducer((CUDA, 0))
    t = dlbridge.from_dlpack(p)

    class StreamConsumer:
        """What torch/cupy do on a GPU: ask with their current stream."""

        def consume(self, x):
            return dlbridge.from_dlpack(x.__dlpack__(stream=0x1234, max_version=(1, 3)))

    got = StreamConsumer().consume(t)
    assert p.requests[-1]["stream"] == 0x1234
    assert got.data_ptr == t.data_ptr


def test_producer_whose_tensor_changed_is_refused_and_its_capsule_released():
    p = DeviceProducer((CUDA, 0))
    t = dlbridge.from_dlpack(p)
    p.offset = 256  # the producer's tensor now describes other memory (torch's set_, say)
    with pytest.raises(BufferError, match="no longer describes"):
        t.__dlpack__(max_version=(1, 3))
    gc.collect()
    assert p.made[-1].calls == 1  # the refused capsule was destroyed: its deleter ran once
    del t
    assert p.released()


def test_device_request_goes_to_the_producer_and_skips_the_exchange_api():
    calls = []

    def from_py(obj, out):
        calls.append(obj)
        return -1  # never used here

    cls = exchange_type(from_py)
    producer = DeviceProducer((CUDA, 0))
    cls.__dlpack__ = lambda self, **kw: producer.__dlpack__(**kw)
    cls.__dlpack_device__ = lambda self: producer.device
    t = dlbridge.from_dlpack(cls(), device="cpu")
    assert calls == []
    assert producer.requests[-1]["dl_device"] == (1, 0)
    assert t.device == (1, 0) and t.is_copied
    assert np.asarray(t).sum() == 66
    t = dlbridge.from_dlpack(cls(), device=(CUDA, 0))
    assert producer.requests[-1]["dl_device"] == (CUDA, 0)
    assert t.device == (CUDA, 0) and t.data_ptr == NOWHERE


def test_exchange_api_device_tensors_are_asked_again_through_dlpack():
    """The exchange API does not synchronise: device memory is re-asked via __dlpack__."""
    made = []

    def from_py(obj, out):
        m = device_managed((CUDA, 0))
        made.append(m)
        out[0] = m.address
        return 0

    cls = exchange_type(from_py)
    producer = DeviceProducer((CUDA, 0))
    cls.__dlpack__ = lambda self, **kw: producer.__dlpack__(**kw)
    t = dlbridge.from_dlpack(cls())
    assert len(made) == 1 and made[0].calls == 1, "the exchange tensor was handed back"
    assert len(producer.requests) == 1 and t.data_ptr == NOWHERE
    # Without __dlpack__, the exchange tensor is kept as it is.
    only = exchange_type(from_py)
    u = dlbridge.from_dlpack(only())
    assert u.device == (CUDA, 0) and made[-1].calls == 0
    del u
    assert made[-1].released()


def test_copy_true_of_device_memory_is_asked_of_the_producer():
    p = DeviceProducer((CUDA, 0))
    t = dlbridge.from_dlpack(p, copy=True)
    assert p.requests[-1]["copy"] is True
    assert t.is_copied and t.data_ptr == NOWHERE + 4096 and t.device == (CUDA, 0)
    # A producer that ignores copy=True: dlbridge cannot copy device memory itself.
    lazy = DeviceProducer((CUDA, 0), honour_copy=False)
    with pytest.raises(BufferError, match="never reads device memory"):
        dlbridge.from_dlpack(lazy, copy=True)
    assert lazy.released()
    # copy=True of a dlbridge tensor of device memory goes to its producer as well.
    again = dlbridge.from_dlpack(dlbridge.from_dlpack(p), copy=True)
    assert p.requests[-1]["copy"] is True and again.is_copied
    # copy=False is a promise: passed on, and an IS_COPIED answer is refused.
    dlbridge.from_dlpack(p, copy=False)
    assert p.requests[-1]["copy"] is False


def test_paths_that_read_data_raise_buffer_error_for_device_memory():
    p = DeviceProducer((CUDA, 0))
    t = dlbridge.from_dlpack(p)
    with pytest.raises(BufferError):
        memoryview(t)
    with pytest.raises(BufferError):
        _ = t.__array_interface__
    # numpy must not turn the tensor into a 0-d object array: it raises instead.
    with pytest.raises(BufferError):
        np.asarray(t)
    with pytest.raises(BufferError):
        t.__arrow_c_schema__()
    with pytest.raises(BufferError):
        t.__arrow_c_array__()
    pa = pytest.importorskip("pyarrow")
    with pytest.raises(BufferError):
        pa.array(t)


def test_consumers_without_the_device_raise_their_own_error():
    p = DeviceProducer((CUDA, 0), sturdy=True)
    t = dlbridge.from_dlpack(p)
    with pytest.raises(RuntimeError, match="Unsupported device"):
        np.from_dlpack(t)  # numpy's own error; the refused capsule is released
    gc.collect()
    assert p.made[-1].calls == 1
    if not torch.cuda.is_available():
        with pytest.raises((RuntimeError, AssertionError)):
            torch.from_dlpack(t)  # torch without CUDA
    del t
    gc.collect()
    assert p.released()


def test_rust_made_device_tensors_check_streams_by_the_array_api_rules():
    """A device tensor with no Python producer (here: imported from a bare capsule)."""
    for kind, bad, good in [(CUDA, [0, -2], [None, -1, 1, 2, 0x10000]),
                            (ROCM, [1, 2], [None, -1, 0, 0x10000]),
                            (ONEAPI, [-5], [None, 0, 3])]:
        m = device_managed((kind, 0))
        t = dlbridge.from_dlpack(m.capsule())
        for s in good:
            cap = t.__dlpack__(stream=s, max_version=(1, 3))
            assert dlbridge.from_dlpack(cap).data_ptr == NOWHERE
        for s in bad:
            with pytest.raises(ValueError):
                t.__dlpack__(stream=s, max_version=(1, 3))
        with pytest.raises(TypeError):
            t.__dlpack__(stream="default", max_version=(1, 3))
        with pytest.raises(BufferError):
            t.__dlpack__(max_version=(1, 3), dl_device=(1, 0))
        with pytest.raises(BufferError):
            t.__dlpack__(max_version=(1, 3), copy=True)
        assert dlbridge.from_dlpack(t.__dlpack__(max_version=(1, 3), dl_device=(kind, 0)))
        del t, cap
        gc.collect()
        assert m.released()


def test_host_accessible_kinds_stay_readable():
    for kind in (3, 11, 13):  # kDLCUDAHost, kDLROCMHost, kDLCUDAManaged
        a = np.arange(6, dtype=np.float32).reshape(2, 3)
        m = Managed(a, device=(kind, 0))
        t = dlbridge.from_dlpack(m.capsule())
        assert t.device == (kind, 0)
        assert bytes(memoryview(t)) == a.tobytes()
        assert np.asarray(t).tolist() == a.tolist()
        assert dlbridge.from_dlpack(t, copy=True).is_copied
        del t
        assert m.released()


def test_the_tensor_keeps_its_producer_alive_and_lets_the_collector_see_it():
    p = DeviceProducer((CUDA, 0))
    ref = weakref.ref(p)
    t = dlbridge.from_dlpack(p)
    made = p.made
    del p
    gc.collect()
    assert ref() is not None
    # A cycle through the producer is collected.
    ref().cycle = t
    del t
    gc.collect()
    assert ref() is None
    assert all(m.released() for m in made)


def test_exchange_api_of_dlbridge_tensors_on_a_device():
    cap = dlbridge.Tensor.__dlpack_c_exchange_api__
    get_ptr = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
        ("PyCapsule_GetPointer", ctypes.pythonapi))
    base = get_ptr(cap, b"dlpack_exchange_api")
    fns = [ctypes.c_void_p.from_address(base + 16 + 8 * i).value for i in range(5)]
    pyapi = ctypes.PYFUNCTYPE
    from_py = pyapi(ctypes.c_int, ctypes.py_object, ctypes.POINTER(ctypes.c_void_p))(fns[1])
    to_py = pyapi(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.py_object))(fns[2])
    stream = pyapi(ctypes.c_int, ctypes.c_uint32, ctypes.c_int32,
                   ctypes.POINTER(ctypes.c_void_p))(fns[4])
    p = DeviceProducer((CUDA, 0))
    t = dlbridge.from_dlpack(p)
    managed = ctypes.c_void_p()
    assert from_py(t, ctypes.byref(managed)) == 0 and managed.value
    out = ctypes.py_object()
    assert to_py(managed, ctypes.byref(out)) == 0
    back = out.value
    # The slot holds the new reference the C function returned; ctypes never releases it.
    decref = ctypes.PYFUNCTYPE(None, ctypes.py_object)(("Py_DecRef", ctypes.pythonapi))
    decref(back)
    assert back.device == (CUDA, 0) and back.data_ptr == NOWHERE
    s = ctypes.c_void_p(1)
    assert stream(CUDA, 0, ctypes.byref(s)) == 0 and s.value is None  # dlbridge has no stream
    del t, out, back
    gc.collect()
    assert p.released()


def test_pyfunction_arguments_accept_device_tensors_and_reading_ones_refuse():
    """The pyo3 FromPyObject (the example extension's functions) takes device producers."""
    ex = pytest.importorskip("dlbridge_example")
    p = DeviceProducer((CUDA, 0))
    t = ex.require(p, dtype="float32", ndim=2, c_contiguous=True, writable=True)
    assert t.device == (CUDA, 0) and t.data_ptr == NOWHERE
    with pytest.raises(BufferError, match="kDLCUDA"):
        ex.total(p)  # a reduction must read the data: refused, never attempted
    del t
    gc.collect()
    assert p.released()


HOST_KINDS = {1, 3, 11, 13}  # kDLCPU, kDLCUDAHost, kDLROCMHost, kDLCUDAManaged: readable


def test_fuzzed_device_tensors_never_read_and_are_deleted_once():
    """Random device tensors (known and unknown kinds, hostile shapes, strides, dtypes and
    offsets) in the never-readable region: every one imports or is refused with a typed error,
    re-exports with the same metadata, refuses every reading path, and is deleted once."""
    import random

    rng = random.Random(0xD1B)
    kinds = [k for k in range(0, 24) if k not in HOST_KINDS] + [99, 2**31 - 1]
    dtypes = [(2, 32, 1), (0, 8, 1), (1, 64, 1), (5, 64, 1), (4, 16, 1), (6, 8, 1),
              (0, 4, 1), (2, 16, 4), (7, 8, 1), (2, 0, 1), (2, 32, 0), (200, 8, 1)]
    made = []
    imported = refused = 0
    strays = len(STRAY)
    for _ in range(1000):
        ndim = rng.randrange(0, 5)
        shape = [rng.choice([0, 1, 2, 3, 7, 2**20, 2**62, -1]) for _ in range(ndim)]
        strides = rng.choice([None, [rng.choice([0, 1, -1, 3, -5, 2**40, 2**62, -2**63])
                                     for _ in range(ndim)]])
        m = Managed(np.zeros(1, np.float32), shape=shape, strides=strides,
                    dtype=rng.choice(dtypes), device=(rng.choice(kinds), rng.randrange(3)),
                    data=NOWHERE + (1 << 19) + rng.choice([0, 1, 4, 64]),
                    byte_offset=rng.choice([0, 0, 8, 3, 2**63 - 1]),
                    flags=rng.choice([0, 1]), versioned=rng.random() < 0.8)
        made.append(m)
        # The capsule is kept until the refusal is handled: the kit's capsule destructor is
        # Python code, which cannot run while the refusal's exception is pending.
        cap = m.capsule()
        try:
            t = dlbridge.from_dlpack(cap)
        except (BufferError, ValueError, TypeError, OverflowError):
            refused += 1
            continue
        finally:
            del cap
        imported += 1
        assert t.device[0] not in HOST_KINDS
        back = dlbridge.from_dlpack(t.__dlpack__(max_version=(1, 3)))
        assert (back.shape, back.strides, back.dtype, back.device, back.data_ptr) == \
            (t.shape, t.strides, t.dtype, t.device, t.data_ptr)
        for read in (memoryview, lambda x: x.__array_interface__, np.asarray,
                     lambda x: x.__arrow_c_array__(), lambda x: x.__arrow_c_stream__(),
                     pickle.dumps):
            # A dtype the path cannot express may be refused first (TypeError): no read either.
            with pytest.raises((BufferError, TypeError)):
                read(t)
        with pytest.raises(BufferError):
            dlbridge.from_dlpack(t, copy=True)  # no producer to copy it: never read here
        del t, back
    gc.collect()
    # The fuzz reaches both the refusals and the paths past them.
    assert imported > 150 and refused > 150, (imported, refused)
    # One collection for all of them (`released()` collects per tensor).
    assert all(m.calls == 1 and m.array_ref() is None for m in made)
    assert len(STRAY) == strays  # no deleter ran twice or on garbage
