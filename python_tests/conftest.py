"""Shared fixtures and helpers for the dlbridge Python tests (real peers, no mocks)."""

import ctypes
import gc
import sys

import numpy as np
import pytest

# (numpy dtype, torch dtype name) for every dtype both sides support.
NUMPY_DTYPES = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
]


def sample(dtype, shape=(3, 4), seed=0):
    """A deterministic array of `dtype` with distinct-ish values."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    if dtype == "bool":
        return (rng.integers(0, 2, n) == 1).reshape(shape)
    if np.dtype(dtype).kind == "c":
        return (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(dtype).reshape(shape)
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(n).astype(dtype).reshape(shape)
    return rng.integers(0, 100, n).astype(dtype).reshape(shape)


def addr(a):
    """Address of the first element of a numpy array."""
    return a.__array_interface__["data"][0]


def mapping_of(address):
    """The /proc/self/maps line of the mapping holding `address` (None if unmapped)."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if lo <= address < hi:
                return line.strip()
    return None


def capsule_name(cap):
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype = ctypes.c_char_p
    get_name.argtypes = [ctypes.py_object]
    return get_name(cap).decode()


def collect():
    for _ in range(3):
        gc.collect()


def run_fresh(script, timeout=120):
    """`script` run by a fresh interpreter (for what only a process's first use shows, such as
    the borrow registry's publication); its standard output, after checking it exited 0."""
    import subprocess

    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, r.stderr
    return r.stdout


class Weakrefable(np.ndarray):
    """A numpy array subclass: weak-referenceable, so tests can watch the producer die."""


def tracked(a):
    return np.asarray(a).view(Weakrefable)


@pytest.fixture
def refcount():
    return sys.getrefcount
