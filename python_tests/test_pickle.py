"""Pickling: protocol 5 sends a tensor's own memory out of band and unpickling views the buffer
it is handed (same address, no copy); protocols 2 to 4 copy in-band; every dtype, layout and the
read-only flag survive; device memory is refused; hostile pickles raise typed errors."""

import copy
import pickle
import subprocess
import sys
import textwrap
import weakref

import numpy as np
import pytest
import torch

import dlbridge
from conftest import NUMPY_DTYPES, addr, collect, sample, tracked
from dlpack_kit import NOWHERE, Managed


def out_of_band(t, protocol=5):
    """Pickle `t`; out of band from protocol 5 on (earlier protocols take no callback)."""
    if protocol < 5:
        return pickle.dumps(t, protocol=protocol), None
    buffers = []
    data = pickle.dumps(t, protocol=protocol, buffer_callback=buffers.append)
    return data, buffers


def loads(pair):
    data, buffers = pair
    return pickle.loads(data, buffers=buffers)


def same_tensor(a, b):
    assert (a.shape, a.strides, a.dtype, a.device) == (b.shape, b.strides, b.dtype, b.device)
    assert torch.equal(torch.from_dlpack(a), torch.from_dlpack(b))


@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_protocol_5_sends_the_tensor_memory_out_of_band_and_views_it_back(dtype):
    src = sample(dtype)
    t = dlbridge.from_dlpack(src)
    data, buffers = out_of_band(t)
    assert len(buffers) == 1
    assert len(data) < 300  # the metadata only: the bytes went out of band
    assert memoryview(buffers[0]).nbytes == src.nbytes
    back = pickle.loads(data, buffers=buffers)
    assert type(back) is dlbridge.Tensor
    assert back.data_ptr == addr(src)
    assert not back.is_copied and not back.readonly
    same_tensor(back, t)
    np.testing.assert_array_equal(np.from_dlpack(back), src)


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2,
                                   torch.complex32, torch.uint16])
def test_dtypes_numpy_lacks_round_trip(dtype):
    src = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4).to(dtype)
    t = dlbridge.from_dlpack(src)
    for protocol in (2, 4, 5):
        data, buffers = out_of_band(t, protocol)
        back = pickle.loads(data, buffers=buffers)
        assert back.dtype == t.dtype
        assert torch.equal(torch.from_dlpack(back).view(torch.uint8), src.view(torch.uint8))
        assert (back.data_ptr == src.data_ptr()) == (protocol == 5)


def test_read_only_survives_and_a_read_only_buffer_gives_a_read_only_tensor():
    src = np.arange(12.0).reshape(3, 4)
    src.flags.writeable = False
    t = dlbridge.asarray(src)
    assert t.readonly
    for protocol in (2, 3, 4, 5):
        data, buffers = out_of_band(t, protocol)
        back = pickle.loads(data, buffers=buffers)
        assert back.readonly, protocol
        assert memoryview(back).readonly and not np.asarray(back).flags.writeable
    # A writable tensor whose buffer arrives read-only (Ray's object store, bytes) is read-only.
    w = dlbridge.from_dlpack(np.arange(4.0))
    data, buffers = out_of_band(w)
    back = pickle.loads(data, buffers=[bytes(buffers[0])])
    assert back.readonly
    np.testing.assert_array_equal(np.from_dlpack(back), np.arange(4.0))
    # ...and a writable one stays writable, sharing the memory.
    back = pickle.loads(data, buffers=buffers)
    np.asarray(back)[0] = 7.0
    assert np.from_dlpack(w)[0] == 7.0


def test_fortran_order_is_kept_without_a_copy_and_other_layouts_are_copied_once():
    f = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    t = dlbridge.from_dlpack(f)
    back = loads(out_of_band(t))
    assert back.data_ptr == addr(f) and back.strides == (1, 3)
    strided = np.arange(48.0).reshape(6, 8)[::2, 1::3]
    t = dlbridge.from_dlpack(strided)
    data, buffers = out_of_band(t)
    assert memoryview(buffers[0]).nbytes == strided.nbytes  # only the elements, compacted
    back = pickle.loads(data, buffers=buffers)
    assert back.data_ptr != addr(strided)
    assert back.strides == (3, 1) and back.shape == strided.shape
    np.testing.assert_array_equal(np.from_dlpack(back), strided)
    # Negative strides are a layout like any other.
    rev = np.arange(5)[::-1]
    back = loads(out_of_band(dlbridge.from_dlpack(rev)))
    np.testing.assert_array_equal(np.from_dlpack(back), rev)


def test_in_band_protocols_copy_and_keep_everything():
    src = sample("complex64", (2, 3, 2))
    t = dlbridge.from_dlpack(src)
    for protocol in (2, 3, 4, 5):
        data = pickle.dumps(t, protocol=protocol)  # protocol 5 without a callback: in-band too
        assert len(data) > src.nbytes
        back = pickle.loads(data)
        assert back.data_ptr != addr(src) and not back.readonly
        same_tensor(back, t)


def test_zero_dimensional_and_empty_tensors():
    for src in (np.array(3.5), np.zeros((0, 3), np.int16), np.zeros((2, 0, 4)), np.ones(1)):
        t = dlbridge.from_dlpack(src)
        for protocol in (2, 5):
            back = loads(out_of_band(t, protocol))
            assert back.shape == src.shape and back.dtype == t.dtype
            np.testing.assert_array_equal(np.from_dlpack(back), src)


def test_bit_packed_int4_round_trips():
    keep = np.array([0x21, 0x43, 0x65], np.uint8)
    t = dlbridge.from_dlpack(Managed(keep, shape=[6], strides=[1], dtype=(0, 4, 1)).capsule())
    for protocol in (2, 5):
        back = loads(out_of_band(t, protocol))
        assert (back.dtype, back.shape, back.nbytes) == (t.dtype, (6,), 3)
        assert bytes(back.__reduce_ex__(4)[1][0]) == bytes(keep)  # the in-band bytes


def test_the_unpickled_view_keeps_the_memory_alive():
    src = tracked(np.arange(1000.0))
    ref = weakref.ref(src)
    t = dlbridge.from_dlpack(src)
    data, buffers = out_of_band(t)
    back = pickle.loads(data, buffers=buffers)
    del src, t, buffers
    collect()
    assert ref() is not None
    assert np.from_dlpack(back)[999] == 999.0
    del back
    collect()
    assert ref() is None


def test_deepcopy_is_an_independent_copy():
    src = np.arange(6.0)
    t = dlbridge.from_dlpack(src)
    c = copy.deepcopy(t)
    assert c.data_ptr != t.data_ptr
    np.asarray(c)[0] = 42.0
    assert src[0] == 0.0


def test_device_tensors_refuse_pickling():
    cap = Managed(np.zeros(1, np.float32), shape=[2, 3], strides=[3, 1], dtype=(2, 32, 1),
                  data=NOWHERE, device=(2, 0)).capsule()
    t = dlbridge.from_dlpack(cap)
    for protocol in (2, 5):
        with pytest.raises(BufferError, match="device"):
            pickle.dumps(t, protocol=protocol)


def test_hostile_pickles_raise_typed_errors_and_never_view_out_of_bounds():
    rebuild = dlbridge._rebuild_tensor
    good = bytearray(48)
    assert rebuild(good, (2, 32, 1), [3, 4], [4, 1], 0).shape == (3, 4)
    with pytest.raises(ValueError, match="has 48 bytes.* needs 64"):
        rebuild(good, (2, 32, 1), [4, 4], [4, 1], 0)  # more elements than bytes
    with pytest.raises(ValueError, match="has 48 bytes.* needs 32"):
        rebuild(good, (2, 32, 1), [2, 4], [4, 1], 0)  # fewer
    with pytest.raises((ValueError, BufferError)):
        rebuild(good, (2, 32, 1), [3, 4], [40, 1], 0)  # strides past the end
    with pytest.raises((ValueError, BufferError)):
        rebuild(good, (2, 32, 1), [3, 4], [-4, 1], 0)  # before the start
    with pytest.raises(ValueError):
        rebuild(good, (2, 32, 1), [3, 4], [4], 0)
    with pytest.raises((ValueError, BufferError, TypeError)):
        rebuild(good, (9, 32, 1), [12], [1], 0)  # no such dtype code
    with pytest.raises((OverflowError, ValueError)):
        rebuild(good, (2, 32, 1), [2**62, 2**62], [1, 1], 0)
    with pytest.raises(TypeError):
        rebuild(object(), (2, 32, 1), [12], [1], 0)  # no buffer
    with pytest.raises((BufferError, ValueError)):  # the exporter's own refusal
        rebuild(np.arange(24.0)[::2], (2, 32, 1), [12], [1], 0)  # not contiguous bytes


def test_misaligned_buffers_are_copied_aligned_and_say_so():
    raw = bytearray(8 * 4 + 1)
    raw[1:] = np.arange(4.0).tobytes()
    back = dlbridge._rebuild_tensor(memoryview(raw)[1:], (2, 64, 1), [4], [1], 0)
    assert back.is_copied and back.data_ptr % 8 == 0
    np.testing.assert_array_equal(np.from_dlpack(back), np.arange(4.0))
    ro = dlbridge._rebuild_tensor(bytes(raw)[1:], (2, 64, 1), [4], [1], 1)
    assert ro.readonly


def test_another_process_unpickles_with_out_of_band_buffers():
    """Across a process boundary: the buffer arrives as the receiver's own bytes."""
    t = dlbridge.from_dlpack(np.arange(10, dtype=np.int32).reshape(2, 5))
    data, buffers = out_of_band(t)
    script = textwrap.dedent(
        """
        import pickle, sys, numpy as np, dlbridge
        n = int.from_bytes(sys.stdin.buffer.read(8), "little")
        data = sys.stdin.buffer.read(n)
        raw = bytearray(sys.stdin.buffer.read())
        t = pickle.loads(data, buffers=[raw])
        a = np.from_dlpack(t)
        assert t.data_ptr == np.frombuffer(raw, np.uint8).ctypes.data and not t.readonly
        print(a.shape, a.sum(), t.strides)
        """
    )
    payload = len(data).to_bytes(8, "little") + data + bytes(memoryview(buffers[0]))
    r = subprocess.run([sys.executable, "-c", script], input=payload, capture_output=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().split() == ["(2,", "5)", "45", "(5,", "1)"]
