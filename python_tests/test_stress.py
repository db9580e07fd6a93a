"""Concurrency stress: Python threads importing, viewing, exporting and dropping tensors shared
across numpy, torch and pyarrow. Bounded by count and time (each test well under 10 s); at the
end every value was right and every source is released (weakrefs die).
"""

import gc
import queue
import random
import threading
import time
import weakref

import numpy as np
import pyarrow as pa
import pytest
import torch

import dlbridge
from conftest import Weakrefable, addr, collect

THREADS = 4
ROUNDS = 400
BUDGET = 6.0  # seconds per test, across all threads


def run_threads(worker, n=THREADS, budget=BUDGET):
    """Run `worker(index, deadline)` on `n` threads started together; re-raise the first error."""
    errors = []
    start = threading.Barrier(n)
    deadline = time.monotonic() + budget

    def wrap(i):
        try:
            start.wait()
            worker(i, deadline)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=budget + 30)
        assert not th.is_alive(), "a stress thread hung"
    if errors:
        raise errors[0]


def test_shared_sources_all_paths():
    """Each thread randomly mixes every import and export path over three shared sources."""
    n_src = np.arange(4096, dtype=np.float64).reshape(64, 64).view(Weakrefable)
    t_src = torch.arange(4096, dtype=torch.int32).reshape(64, 64)
    p_src = pa.array(np.arange(4096, dtype=np.int64))
    refs = [weakref.ref(n_src), weakref.ref(t_src), weakref.ref(p_src)]
    n_addr, t_addr = addr(n_src), t_src.data_ptr()
    p_buf_addr = p_src.buffers()[1].address
    counts = [0] * THREADS

    def check_numpy_tensor(t):
        assert t.data_ptr == n_addr and t.shape == (64, 64)
        a = np.from_dlpack(t)
        assert addr(a) == n_addr and a[63, 63] == 4095.0
        return a

    def worker(i, deadline):
        rng = random.Random(i)
        held = []
        for _ in range(ROUNDS):
            if time.monotonic() > deadline:
                break
            op = rng.randrange(10)
            if op == 0:  # numpy -> dlbridge -> numpy, strided view back in
                a = check_numpy_tensor(dlbridge.from_dlpack(n_src))
                v = dlbridge.from_dlpack(a[::3, 1::2])
                assert v.strides == (192, 2)
                assert np.from_dlpack(v)[1, 0] == 193.0
                held.append(v)
            elif op == 1:  # torch -> dlbridge (exchange API) -> numpy and torch
                t = dlbridge.from_dlpack(t_src)
                assert t.data_ptr == t_addr
                assert np.from_dlpack(t)[10, 10] == 650
                y = torch.from_dlpack(t)
                assert y.data_ptr() == t_addr and y[63, 0].item() == 4032
                held.append(y)
            elif op == 2:  # torch transposed view through a capsule
                t = dlbridge.from_dlpack(t_src.T.__dlpack__(max_version=(1, 3)))
                assert t.strides == (1, 64) and np.from_dlpack(t)[0, 1] == 64
                held.append(t)
            elif op == 3:  # pyarrow buffer -> dlbridge (buffer protocol) -> numpy
                buf = p_src.buffers()[1]
                t = dlbridge.asarray(buf)
                # read-only exactly when pyarrow says the buffer is immutable
                assert t.data_ptr == p_buf_addr and t.readonly == (not buf.is_mutable)
                u = np.frombuffer(memoryview(t), dtype=np.int64)
                assert u[4095] == 4095 and u.flags.writeable == buf.is_mutable
                held.append(u)
            elif op == 4:  # dlbridge -> pyarrow (zero-copy) -> dlbridge
                t = dlbridge.from_dlpack(n_src)
                buf = pa.py_buffer(t)
                assert buf.address == n_addr
                arr = pa.Array.from_buffers(pa.float64(), 4096, [None, buf])
                assert arr[4095].as_py() == 4095.0
                back = dlbridge.asarray(arr.buffers()[1])
                assert back.data_ptr == n_addr
                held.append(arr)
            elif op == 5:  # __array_interface__ and memoryview consumers
                t = dlbridge.from_dlpack(n_src)
                a = np.asarray(t)
                m = memoryview(t)
                assert addr(a) == n_addr and m.shape == (64, 64) and m[1, 1] == 65.0
                held.append(m)
            elif op == 6:  # copies must be independent
                c = dlbridge.from_dlpack(t_src, copy=True)
                assert c.is_copied and c.data_ptr != t_addr
                assert np.from_dlpack(c).sum() == 4095 * 4096 // 2
            elif op == 7:  # unconsumed capsules, versioned and legacy
                t = dlbridge.from_dlpack(n_src)
                held.append(t.__dlpack__(max_version=(1, 3)))
                t.__dlpack__()
            elif op == 8:  # chains: every hop shares the same memory
                x = torch.from_dlpack(dlbridge.from_dlpack(np.from_dlpack(dlbridge.from_dlpack(t_src))))
                assert x.data_ptr() == t_addr and x[1, 1].item() == 65
            else:  # drop a random half of what this thread holds
                rng.shuffle(held)
                del held[: len(held) // 2]
            counts[i] += 1
        held.clear()

    run_threads(worker)
    assert sum(counts) >= THREADS * 20, counts
    n_src = t_src = p_src = None  # rebound, not deleted: the workers read them
    collect()
    assert [r() for r in refs] == [None, None, None]


def test_concurrent_last_reference_drops():
    """All threads drop their derivatives of one source at the same instant; once per round."""
    rounds = 40
    start = time.monotonic()
    for r in range(rounds):
        if time.monotonic() - start > BUDGET / 2:
            break
        src = np.arange(1000.0).view(Weakrefable)
        ref = weakref.ref(src)
        t = dlbridge.from_dlpack(src)
        del src
        boxes = [[np.from_dlpack(t), torch.from_dlpack(t), dlbridge.from_dlpack(t),
                  t.__dlpack__(max_version=(1, 3)), memoryview(t)] for _ in range(THREADS)]
        del t
        go = threading.Barrier(THREADS)

        def drop(box, barrier):
            barrier.wait()
            box.clear()

        threads = [threading.Thread(target=drop, args=(box, go)) for box in boxes]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        gc.collect()
        assert ref() is None, f"round {r}"


def test_handoff_between_threads():
    """Producer threads create views, consumer threads check and drop them (cross-thread
    release of numpy, torch and dlbridge owners)."""
    q = queue.Queue(maxsize=64)
    sources = [np.arange(256, dtype=np.int16).view(Weakrefable), torch.arange(256.0)]
    refs = [weakref.ref(s) for s in sources]
    done = threading.Event()
    produced = [0]
    consumed = [0]

    def producer(i, deadline):
        rng = random.Random(i)
        for _ in range(ROUNDS):
            if time.monotonic() > deadline:
                break
            s = sources[rng.randrange(2)]
            t = dlbridge.from_dlpack(s)
            item = rng.choice([t, np.from_dlpack(t), torch.from_dlpack(t),
                               t.__dlpack__(max_version=(1, 3))])
            q.put(item)
            produced[0] += 1

    def consumer(i, deadline):
        while not (done.is_set() and q.empty()):
            try:
                item = q.get(timeout=0.05)
            except queue.Empty:
                continue
            if type(item).__name__ == "PyCapsule":
                item = dlbridge.from_dlpack(item)
            a = np.from_dlpack(item) if not isinstance(item, np.ndarray) else item
            assert a[255] == 255
            consumed[0] += 1
            del item, a

    def worker(i, deadline):
        if i < THREADS // 2:
            producer(i, deadline)
        else:
            consumer(i, deadline + 5)

    def stop_when_producers_end():
        while produced[0] < (THREADS // 2) * ROUNDS and time.monotonic() < end:
            time.sleep(0.01)
        done.set()

    end = time.monotonic() + BUDGET
    stopper = threading.Thread(target=stop_when_producers_end)
    stopper.start()
    run_threads(worker)
    stopper.join()
    assert consumed[0] == produced[0] > 0
    sources = None  # rebound, not deleted: the producers read it
    collect()
    assert [r() for r in refs] == [None, None]


def test_exchange_api_both_ways_concurrently():
    """torch reads dlbridge through dlbridge's C exchange API while dlbridge reads torch through
    torch's, from several threads."""
    x = torch.arange(64.0).reshape(8, 8)
    ref = weakref.ref(x)
    ptr = x.data_ptr()

    def worker(i, deadline):
        for _ in range(ROUNDS):
            if time.monotonic() > deadline:
                break
            t = dlbridge.from_dlpack(x)
            y = torch.from_dlpack(t)
            assert y.data_ptr() == ptr and y[7, 7].item() == 63.0
            z = dlbridge.from_dlpack(y.T)
            assert z.strides == (1, 8) and z.data_ptr == ptr

    run_threads(worker)
    x = None  # rebound, not deleted: the workers read x
    collect()
    assert ref() is None


@pytest.mark.parametrize("n_threads", [2, 8])
def test_write_through_shared_tensor_is_seen(n_threads):
    """Writable sharing: each thread writes its own row through a different consumer; all
    writes land in the one buffer."""
    src = np.zeros((n_threads, 512), dtype=np.int64).view(Weakrefable)
    ref = weakref.ref(src)
    t = dlbridge.from_dlpack(src)

    def worker(i, deadline):
        views = [np.from_dlpack(t), torch.from_dlpack(t), np.asarray(t)]
        for k in range(512):
            row = views[k % 3][i]
            row[k] = i * 1000 + k

    run_threads(worker, n=n_threads)
    expect = np.arange(n_threads)[:, None] * 1000 + np.arange(512)[None, :]
    np.testing.assert_array_equal(src, expect)
    del src
    t = None  # rebound, not deleted: the workers read t
    collect()
    assert ref() is None
