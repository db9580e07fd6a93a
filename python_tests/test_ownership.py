"""Lifetimes: memory lives exactly as long as something can reach it; deleters run once."""

import subprocess
import sys
import textwrap
import threading
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch

import dlbridge
from conftest import capsule_name, collect


def test_producer_lives_while_any_derivative_lives():
    src = np.arange(1000.0)
    ref = weakref.ref(src)
    t = dlbridge.from_dlpack(src)
    derived = [
        np.from_dlpack(t),
        torch.from_dlpack(t),
        memoryview(t),
        np.asarray(t),
        t.__dlpack__(max_version=(1, 0)),  # an unconsumed capsule
        dlbridge.from_dlpack(t),
    ]
    del src, t
    collect()
    while derived:
        assert ref() is not None
        derived.pop()
        collect()
    assert ref() is None


def test_each_deleter_runs_once_consumed_and_unconsumed():
    src = np.arange(10.0)
    ref = weakref.ref(src)
    base = sys.getrefcount(src)
    t = dlbridge.from_dlpack(src)
    held = sys.getrefcount(src)
    assert held > base  # numpy's capsule context holds the array
    unconsumed = [t.__dlpack__(max_version=(1, 0)) for _ in range(3)]
    consumed = t.__dlpack__(max_version=(1, 0))
    x = torch.from_dlpack(consumed)  # torch renames the capsule and owns the tensor
    assert capsule_name(consumed) == "used_dltensor_versioned"
    del consumed  # the renamed capsule must not run the deleter
    collect()
    assert x[3].item() == 3.0  # still valid: torch holds it
    del unconsumed  # each unconsumed capsule runs its deleter once
    collect()
    assert sys.getrefcount(src) == held
    del t
    collect()
    assert sys.getrefcount(src) == held  # torch still owns a view of dlbridge's export
    del x
    collect()
    assert sys.getrefcount(src) == base
    del src
    assert ref() is None


@pytest.mark.parametrize(
    "make",
    [
        lambda a: dlbridge.from_dlpack(a),
        lambda a: dlbridge.asarray(a),
        lambda a: dlbridge.asarray(memoryview(a)),
        lambda a: dlbridge.from_dlpack(a, copy=True),
        lambda a: dlbridge.from_dlpack(a.__dlpack__(max_version=(1, 0))),
    ],
    ids=["dlpack", "asarray", "buffer", "copy", "capsule"],
)
def test_refcounts_return_to_baseline(make):
    a = np.arange(50, dtype=np.int32)
    base = sys.getrefcount(a)
    for _ in range(100):
        t = make(a)
        np.from_dlpack(t)
        memoryview(t)
        del t
    collect()
    assert sys.getrefcount(a) == base


def test_pending_exception_survives_capsule_destructor():
    src = np.arange(8.0)
    ref = weakref.ref(src)
    t = dlbridge.from_dlpack(src)
    del src
    # int() fails with TypeError; CPython then drops its argument (the capsule, last reference)
    # while the TypeError is pending: the destructor runs the deleter and must keep the error.
    with pytest.raises(TypeError, match="PyCapsule"):
        int(t.__dlpack__(max_version=(1, 0)))
    with pytest.raises(TypeError, match="PyCapsule"):
        int(t.__dlpack__())
    del t
    collect()
    assert ref() is None


def test_release_from_another_thread():
    n = np.arange(1 << 16, dtype=np.float32)
    ref = weakref.ref(n)
    x = torch.from_numpy(n)  # torch keeps the numpy array alive
    del n
    box = [dlbridge.from_dlpack(x)]  # via torch's C exchange API
    del x
    collect()
    assert ref() is not None
    seen = []

    def worker():
        seen.append(float(np.from_dlpack(box[0])[-1]))
        box.clear()  # the last reference dies on this thread
        collect()

    th = threading.Thread(target=worker)
    th.start()
    th.join()
    collect()
    assert seen == [65535.0]
    assert ref() is None


def test_many_threads_share_and_drop():
    src = np.arange(1000, dtype=np.int64)
    ref = weakref.ref(src)
    t = dlbridge.from_dlpack(src)
    del src
    errors = []

    def worker():
        try:
            for _ in range(200):
                a = np.from_dlpack(t)
                assert a[999] == 999
                y = torch.from_dlpack(dlbridge.from_dlpack(a))
                assert y[1].item() == 1
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    t = None  # rebound, not deleted: the workers read t
    collect()
    assert ref() is None


def test_clean_exit_with_live_tensors():
    script = textwrap.dedent(
        """
        import threading, numpy as np, torch, dlbridge
        keep = [
            dlbridge.from_dlpack(np.arange(10.0)),
            dlbridge.from_dlpack(torch.arange(10.0)),
            dlbridge.asarray(bytearray(64)),
            dlbridge.asarray(memoryview(b"abcdef")),
            dlbridge.from_dlpack(np.arange(4)).__dlpack__(max_version=(1, 0)),
            np.from_dlpack(dlbridge.from_dlpack(np.arange(3))),
        ]
        cycle = [keep]
        cycle.append(cycle)
        def hold(t):
            import time
            while True:
                time.sleep(0.01)
                np.from_dlpack(t).sum()
        th = threading.Thread(target=hold, args=(dlbridge.from_dlpack(np.ones(8)),), daemon=True)
        th.start()
        print("ok")
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
    assert "Fatal" not in r.stderr and "panick" not in r.stderr


def test_clean_exit_with_live_tensors_of_the_test_kit():
    """The ctypes kit's deleters, structs and capsule names outlive interpreter shutdown, as a C
    producer's do: a tensor left in a cycle (or a failing test's traceback) is dropped during
    shutdown, and calling a freed ctypes thunk then would crash the run after its report."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import numpy as np, dlbridge
        from dlpack_kit import Managed
        keep = [dlbridge.from_dlpack(Managed(np.arange(3.0), versioned=v).capsule())
                for v in (True, False)]
        keep.append(Managed(np.arange(2.0)).capsule())  # unconsumed: the kit's destructor runs
        cycle = [keep]
        cycle.append(cycle)
        print("ok")
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
    assert "Fatal" not in r.stderr


def test_gc_of_tensor_cycles():
    class Holder:
        pass

    src = np.arange(10.0)
    ref = weakref.ref(src)
    h = Holder()
    h.self = h
    h.t = dlbridge.from_dlpack(src)
    h.w = weakref.ref(h.t)  # dlbridge.Tensor supports weak references
    del src, h
    collect()
    assert ref() is None
