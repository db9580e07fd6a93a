"""The ctypes DLPack kit shared by the Python tests: the DLPack C structs, managed tensors over
numpy memory whose every field can be corrupted and whose deleter calls are counted, capsules
made like any producer's, `__dlpack__` producers, and exchange-API tables.

No C compiler and no mock of dlbridge: each managed tensor points at the memory of a numpy array
the "producer" keeps alive until its counting deleter runs, so tests see both the deleter count
and, through a weakref on the array, that the memory was really released.
"""

import ctypes
import weakref
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char_p,
    c_int,
    c_int32,
    c_int64,
    c_uint8,
    c_uint16,
    c_uint32,
    c_uint64,
    c_void_p,
)

from conftest import Weakrefable, addr, collect

PROT_NONE, MAP_PRIVATE, MAP_ANONYMOUS = 0, 0x02, 0x20
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
# 1 MiB the process may never read or write, for the life of the process.
NOWHERE = _libc.mmap(None, 1 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
assert NOWHERE not in (None, ctypes.c_void_p(-1).value)


class DLDevice(Structure):
    _fields_ = [("device_type", c_int32), ("device_id", c_int32)]


class DLDataType(Structure):
    _fields_ = [("code", c_uint8), ("bits", c_uint8), ("lanes", c_uint16)]


class DLTensor(Structure):
    _fields_ = [
        ("data", c_void_p),
        ("device", DLDevice),
        ("ndim", c_int32),
        ("dtype", DLDataType),
        ("shape", POINTER(c_int64)),
        ("strides", POINTER(c_int64)),
        ("byte_offset", c_uint64),
    ]


class DLPackVersion(Structure):
    _fields_ = [("major", c_uint32), ("minor", c_uint32)]


class DLManagedTensorVersioned(Structure):
    pass


class DLManagedTensor(Structure):
    pass


DELETER_V = CFUNCTYPE(None, POINTER(DLManagedTensorVersioned))
DELETER_L = CFUNCTYPE(None, POINTER(DLManagedTensor))
DLManagedTensorVersioned._fields_ = [
    ("version", DLPackVersion),
    ("manager_ctx", c_void_p),
    ("deleter", DELETER_V),
    ("flags", c_uint64),
    ("dl_tensor", DLTensor),
]
DLManagedTensor._fields_ = [
    ("dl_tensor", DLTensor),
    ("manager_ctx", c_void_p),
    ("deleter", DELETER_L),
]

READ_ONLY = 1 << 0
IS_COPIED = 1 << 1

# numpy dtype -> DLPack (code, bits)
DL_CODES = {"i": 0, "u": 1, "f": 2, "b": 6, "c": 5}


class _api:
    """Private prototypes of the C API (`ctypes.pythonapi.X` objects are shared and mutable)."""

    PyCapsule_New = ctypes.PYFUNCTYPE(ctypes.py_object, c_void_p, c_void_p, c_void_p)(
        ("PyCapsule_New", ctypes.pythonapi))
    PyCapsule_GetName = ctypes.PYFUNCTYPE(c_char_p, c_void_p)(
        ("PyCapsule_GetName", ctypes.pythonapi))
    PyCapsule_GetPointer = ctypes.PYFUNCTYPE(c_void_p, c_void_p, c_char_p)(
        ("PyCapsule_GetPointer", ctypes.pythonapi))


def _forever(obj):
    """Keep `obj` alive until the process ends, through interpreter shutdown too.

    A C producer's structs and deleters are static or malloc'd; this kit's are Python objects,
    which shutdown would free while a consumer (a tensor left in a traceback, a cycle) still
    holds their addresses. A C consumer calling a freed ctypes thunk crashes the process.
    """
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))
    return obj


# Capsule names must outlive their capsules (PyCapsule stores the pointer): keep them forever.
_NAMES = _forever({})


def _name(s):
    if s not in _NAMES:
        _NAMES[s] = ctypes.create_string_buffer(s.encode())
    return ctypes.addressof(_NAMES[s])


# address of a live managed tensor -> its Managed keeper
_LIVE = _forever({})
# deleter calls for addresses that were not live (a second call, or garbage)
STRAY = _forever([])


# Everything the callbacks use is bound at definition: shutdown clears module globals.
def _on_delete(ptr, _LIVE=_LIVE, STRAY=STRAY, address_of=ctypes.cast, c_void_p=c_void_p):
    address = address_of(ptr, c_void_p).value
    m = _LIVE.pop(address, None)
    if m is None:
        STRAY.append(address)
        return
    m.calls += 1
    m.array = None  # the producer releases its memory


_deleter_v = _forever(DELETER_V(_on_delete))
_deleter_l = _forever(DELETER_L(_on_delete))


@_forever
@CFUNCTYPE(None, c_void_p)
def _capsule_destructor(cap, _api=_api, _LIVE=_LIVE, cast=ctypes.cast):
    """Like every producer's: run the deleter unless a consumer renamed the capsule."""
    name = _api.PyCapsule_GetName(cap)
    if name is None or name.startswith(b"used_"):
        return
    ptr = _api.PyCapsule_GetPointer(cap, name)
    m = _LIVE.get(ptr)
    if m is not None:
        m.struct.deleter(cast(ptr, m.pointer_type))


class Managed:
    """A DLManagedTensorVersioned (or legacy DLManagedTensor) over a numpy array's memory.

    Every field can be corrupted on purpose. `calls` counts deleter calls; `array_ref` dies
    when the deleter has released the array.
    """

    def __init__(self, array, *, versioned=True, major=1, minor=3, flags=0, ndim=None,
                 shape=None, strides="auto", dtype=None, data="auto", device=(1, 0),
                 with_deleter=True, byte_offset=0):
        array = array.view(Weakrefable)
        self.array = array
        self.array_ref = weakref.ref(array)
        self.calls = 0
        shape = list(array.shape) if shape is None else list(shape)
        if strides == "auto":
            strides = [s // array.itemsize for s in array.strides]
        ndim = len(shape) if ndim is None else ndim
        n = max(len(shape), 1)
        self.shape_buf = (c_int64 * n)(*shape)
        self.strides_buf = None if strides is None else (c_int64 * n)(*strides)
        if dtype is None:
            dtype = (DL_CODES[array.dtype.kind], array.itemsize * 8, 1)
        t = DLTensor(
            data=addr(array) if data == "auto" else data,
            device=DLDevice(*device),
            ndim=ndim,
            dtype=DLDataType(*dtype),
            shape=ctypes.cast(self.shape_buf, POINTER(c_int64)) if shape is not None else None,
            strides=None if strides is None else ctypes.cast(self.strides_buf, POINTER(c_int64)),
            byte_offset=byte_offset,
        )
        if versioned:
            self.struct = DLManagedTensorVersioned(
                version=DLPackVersion(major, minor), manager_ctx=None,
                deleter=_deleter_v if with_deleter else DELETER_V(), flags=flags, dl_tensor=t)
            self.pointer_type = POINTER(DLManagedTensorVersioned)
        else:
            self.struct = DLManagedTensor(
                dl_tensor=t, manager_ctx=None,
                deleter=_deleter_l if with_deleter else DELETER_L())
            self.pointer_type = POINTER(DLManagedTensor)
        self.versioned = versioned
        self.address = ctypes.addressof(self.struct)
        if with_deleter:
            _LIVE[self.address] = self

    def null_shape(self):
        self.struct.dl_tensor.shape = None
        return self

    def capsule(self, name=None, destructor=True):
        """A new capsule owning this tensor (named as DLPack says unless `name` is given)."""
        if name is None:
            name = "dltensor_versioned" if self.versioned else "dltensor"
        d = ctypes.cast(_capsule_destructor, c_void_p) if destructor else None
        return _api.PyCapsule_New(self.address, _name(name), d)

    def released(self):
        collect()
        return self.calls == 1 and self.array_ref() is None and self.address not in STRAY


class Producer:
    """A `__dlpack__` producer returning whatever `make(**kwargs)` returns."""

    def __init__(self, make):
        self.make = make
        self.requests = []

    def __dlpack__(self, **kwargs):
        self.requests.append(kwargs)
        return self.make(**kwargs)

    def __dlpack_device__(self):
        return (1, 0)


# ----------------------------------------------------------------------------- exchange API
class DLPackExchangeAPIHeader(Structure):
    pass


DLPackExchangeAPIHeader._fields_ = [
    ("version", DLPackVersion), ("prev_api", POINTER(DLPackExchangeAPIHeader))]

FROM_PY = CFUNCTYPE(c_int, c_void_p, POINTER(c_void_p))


class DLPackExchangeAPI(Structure):
    _fields_ = [
        ("header", DLPackExchangeAPIHeader),
        ("managed_tensor_allocator", c_void_p),
        ("managed_tensor_from_py_object_no_sync", FROM_PY),
        ("managed_tensor_to_py_object_no_sync", c_void_p),
        ("dltensor_from_py_object_no_sync", c_void_p),
        ("current_work_stream", c_void_p),
    ]


# Exchange API tables live for the whole process, as the protocol requires.
_TABLES = _forever([])


def exchange_type(from_py, *, major=1, self_loop=False, fallback=None):
    """A new Python type whose `__dlpack_c_exchange_api__` is a ctypes table."""
    fn = FROM_PY(from_py)
    table = DLPackExchangeAPI(header=DLPackExchangeAPIHeader(version=DLPackVersion(major, 3)),
                              managed_tensor_from_py_object_no_sync=fn)
    if self_loop:
        table.header.prev_api = ctypes.pointer(table.header)
    _TABLES.append((fn, table))
    cap = _api.PyCapsule_New(ctypes.addressof(table), _name("dlpack_exchange_api"), None)
    ns = {"__dlpack_c_exchange_api__": cap}
    if fallback is not None:
        ns["__dlpack__"] = lambda self, **kw: fallback().capsule()
    return type("ExchangeProducer", (), ns)
