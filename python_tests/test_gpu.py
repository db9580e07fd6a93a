"""The device paths with real GPU tensors (torch CUDA, cupy): skipped without a GPU.

test_device.py proves the same paths with fake device producers on any machine; this file
proves them against the real producers where a GPU exists.
"""

import gc
import weakref

import pytest
import torch

import dlbridge

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _cupy():
    cp = pytest.importorskip("cupy")
    try:
        if cp.cuda.runtime.getDeviceCount() == 0:
            pytest.skip("no CUDA device for cupy")
    except Exception as e:  # cupy without a driver
        pytest.skip(f"cupy cannot reach a GPU: {e}")
    return cp


@cuda
def test_torch_cuda_round_trip_keeps_address_device_and_values():
    x = torch.arange(12, dtype=torch.float32, device="cuda").reshape(3, 4)
    t = dlbridge.from_dlpack(x)
    assert t.device == (2, x.device.index or 0)
    assert t.data_ptr == x.data_ptr()
    assert (t.shape, t.strides) == ((3, 4), (4, 1))
    y = torch.from_dlpack(t)  # torch asks with its current stream; torch's __dlpack__ answers
    assert y.data_ptr() == x.data_ptr() and y.device == x.device
    assert torch.equal(y, x)


@cuda
def test_torch_cuda_on_a_side_stream():
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        x = torch.full((1 << 20,), 3.0, device="cuda")
        t = dlbridge.from_dlpack(x)
        y = torch.from_dlpack(t)
        assert float(y.sum()) == 3.0 * (1 << 20)


@cuda
def test_torch_cuda_host_copy_and_device_copy():
    x = torch.arange(6, dtype=torch.float64, device="cuda")
    host = dlbridge.from_dlpack(x, device="cpu")
    assert host.device == (1, 0) and host.is_copied
    assert memoryview(host).tolist() == list(range(6))
    copied = dlbridge.from_dlpack(x, copy=True)
    assert copied.device[0] == 2 and copied.data_ptr != x.data_ptr()
    assert torch.equal(torch.from_dlpack(copied), x)


@cuda
def test_torch_cuda_refusals_and_lifetime():
    x = torch.ones(4, device="cuda")
    ref = weakref.ref(x)
    t = dlbridge.from_dlpack(x)
    with pytest.raises(BufferError):
        memoryview(t)
    np = pytest.importorskip("numpy")
    with pytest.raises((BufferError, RuntimeError)):
        np.from_dlpack(t)
    del x
    gc.collect()
    assert ref() is not None, "the tensor keeps its producer"
    del t
    gc.collect()
    assert ref() is None


def test_cupy_round_trip():
    cp = _cupy()
    x = cp.arange(10, dtype=cp.int32)
    t = dlbridge.from_dlpack(x)
    assert t.device[0] == 2 and t.data_ptr == x.data.ptr
    y = cp.from_dlpack(t)
    assert y.data.ptr == x.data.ptr and bool((y == x).all())
