"""Type stubs for the ``dlbridge`` extension module (zero-copy tensor exchange)."""

import enum
import os
from collections.abc import Mapping
from typing import Any, Final, Literal, SupportsIndex, final

__all__ = [
    "Tensor", "from_dlpack", "asarray", "from_arrow", "from_arrow_chunks", "save", "load",
    "DLDeviceType",
    "__version__", "_rebuild_tensor",
]

__version__: Final[str]

class DLDeviceType(enum.IntEnum):
    """DLPack device types (``DLDeviceType``), as returned by ``__dlpack_device__``."""

    kDLCPU = 1
    kDLCUDA = 2
    kDLCUDAHost = 3
    kDLOpenCL = 4
    kDLVulkan = 7
    kDLMetal = 8
    kDLVPI = 9
    kDLROCM = 10
    kDLROCMHost = 11
    kDLExtDev = 12
    kDLCUDAManaged = 13
    kDLOneAPI = 14
    kDLWebGPU = 15
    kDLHexagon = 16
    kDLMAIA = 17
    kDLTrn = 18

@final
class Tensor:
    """A strided CPU tensor shared without copying.

    Produced by :func:`from_dlpack` and :func:`asarray`; consumed by anything that speaks
    DLPack (``np.from_dlpack``, ``torch.from_dlpack``, ``jax.numpy.from_dlpack``), the buffer
    protocol (``memoryview``) or ``__array_interface__`` (``np.asarray``).
    """

    __dlpack_c_exchange_api__: Final[Any]
    """A PyCapsule named ``"dlpack_exchange_api"`` holding a static ``DLPackExchangeAPI`` (1.3)."""

    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def strides(self) -> tuple[int, ...]:
        """Strides in elements (not bytes); may be zero or negative."""
    @property
    def dtype(self) -> str:
        """numpy-style name: ``"float32"``, ``"bfloat16"``, ``"bool"``, ``"complex64"``, ..."""
    @property
    def device(self) -> tuple[int, int]: ...
    @property
    def ndim(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def readonly(self) -> bool: ...
    @property
    def is_copied(self) -> bool: ...
    @property
    def data_ptr(self) -> int:
        """Address of the first element."""
    @property
    def __array_interface__(self) -> dict[str, Any]:
        """numpy array interface v3; raises ``TypeError`` for dtypes numpy lacks (bfloat16, float8)."""
    def __dlpack__(
        self,
        *,
        stream: int | None = None,
        max_version: tuple[int, int] | None = None,
        dl_device: tuple[int, int] | None = None,
        copy: bool | None = None,
    ) -> Any:
        """A ``"dltensor_versioned"`` capsule when ``max_version[0] >= 1``, else a legacy
        ``"dltensor"`` capsule (``BufferError`` for read-only tensors). ``copy=True`` copies
        host memory. On the CPU ``stream`` must be ``None`` (``ValueError``) and another
        ``dl_device`` raises ``BufferError``.

        Device tensors imported from a Python producer pass the whole request (``stream``,
        ``max_version``, ``dl_device``, ``copy``) to that producer and return its capsule, so
        it synchronises with the consumer's stream. Other device tensors (made in Rust) are
        ready on any stream; ``stream`` is checked by the array API's rules (CUDA: not 0;
        ROCm: not 1 or 2)."""
    def __dlpack_device__(self) -> tuple[DLDeviceType, int]: ...
    def __reduce_ex__(self, protocol: SupportsIndex, /) -> tuple[Any, tuple[Any, ...]]:
        """Pickle support. Protocol 5 sends the data out of band as one ``PickleBuffer`` over
        this tensor's own memory (C- or F-contiguous tensors; other layouts are copied to C
        order first), and unpickling with ``buffers=`` views the buffer it is given, without a
        copy; a read-only buffer gives a read-only tensor. Protocols 2 to 4 copy in-band. Every
        dtype, the strides of a dense layout and the read-only flag survive. ``BufferError`` for
        device memory."""
    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __release_buffer__(self, buffer: memoryview, /) -> None: ...
    def __arrow_c_schema__(self) -> Any:
        """Arrow PyCapsule interface: an ``"arrow_schema"`` capsule of the tensor's Arrow field
        (1-D: the primitive type; N-D: ``arrow.fixed_shape_tensor`` with its shape metadata).
        ``BufferError`` for 0-d tensors, ``TypeError`` for dtypes Arrow lacks (complex,
        bfloat16, ...)."""
    def __arrow_c_stream__(self, requested_schema: Any | None = None) -> Any:
        """Arrow PyCapsule stream interface: an ``"arrow_array_stream"`` capsule of one record
        batch with one column, ``tensor`` (primitive for 1-D, ``arrow.fixed_shape_tensor`` for
        N-D, rows on the first axis), over the same memory: ``pa.RecordBatchReader.from_stream``,
        ``polars.Series`` and DuckDB read it without copying. ``requested_schema`` is ignored
        (a hint the interface lets producers decline)."""
    def __arrow_c_array__(self, requested_schema: Any | None = None) -> tuple[Any, Any]:
        """Arrow PyCapsule interface: ``("arrow_schema", "arrow_array")`` capsules over the same
        memory, so ``pa.array(t)`` is zero-copy (N-D: a ``FixedShapeTensorArray``). Non-dense
        layouts and booleans (bit-packed in Arrow) are copied to C order. ``requested_schema``
        may only relabel the same storage (name, nullability, extension metadata, e.g. the plain
        fixed-size list); any other type raises ``NotImplementedError`` (cast after import)."""

def from_dlpack(
    x: Any,
    /,
    *,
    device: Literal["cpu"] | tuple[int, int] | None = None,
    copy: bool | None = None,
) -> Tensor:
    """Import a DLPack producer (or capsule) without copying.

    Uses ``type(x).__dlpack_c_exchange_api__`` when present (CPU memory only), else
    ``x.__dlpack__``, else a bare capsule. ``copy=True`` always copies (device memory: asked
    of the producer); ``copy=False`` never does (``BufferError`` if the producer would have
    to). Device memory is imported untouched, with its device and address. ``device`` goes to
    the producer as ``dl_device`` (``"cpu"`` asks for a host copy). Raises ``TypeError`` for
    objects without DLPack support, ``ValueError`` for a malformed ``device`` or a consumed
    capsule, ``BufferError`` for data that cannot be shared.
    """

def asarray(obj: Any, /, *, copy: bool | None = None) -> Tensor:
    """Share any array-like: DLPack producers, the Arrow PyCapsule interface
    (``__arrow_c_array__``, ``__arrow_c_stream__``: chunks joined by one copy), the buffer protocol,
    ``__array_interface__``, in that order (Arrow also when DLPack refuses, as pyarrow does for
    booleans and nulls).

    Non-native byte order is copied (byte-swapped) unless ``copy=False`` (``BufferError``).
    Arrow booleans are copied to bytes unless ``copy=False`` (``BufferError``); Arrow nulls raise
    ``ValueError``. Raises ``TypeError`` for objects that implement none of the protocols.
    """

def from_arrow(obj: Any, /, *, copy: bool | None = None) -> Tensor:
    """Share an Arrow array through the Arrow PyCapsule interface only, without copying.

    Accepts ``__arrow_c_array__`` producers (pyarrow arrays, ``FixedShapeTensorArray``,
    ``dlbridge.Tensor``) and ``__arrow_c_stream__`` producers (pyarrow ``ChunkedArray``; several
    chunks are joined by one copy, ``is_copied``, which ``copy=False`` refuses with
    ``BufferError``; ``from_arrow_chunks`` gives one tensor per chunk). ``arrow.fixed_shape_tensor`` columns give
    ``(rows, *shape)`` (a ``permutation`` becomes strides). The result is read-only and keeps the
    Arrow buffers alive. Booleans are copied to bytes unless ``copy=False`` (``BufferError``);
    nulls raise ``ValueError``; ``copy=True`` always copies. ``TypeError`` for other objects and
    for Arrow types no tensor dtype matches (strings, structs, ...).
    """

def _rebuild_tensor(
    data: Any, dtype: tuple[int, int, int], shape: list[int], strides: list[int], flags: int, /
) -> Tensor:
    """The unpickler ``Tensor.__reduce_ex__`` names: views ``data`` (any contiguous buffer) as
    a tensor of the DLPack dtype ``(code, bits, lanes)``, ``shape`` and element ``strides``;
    ``flags`` are DLPack's (1: read-only). Misaligned data is copied (``is_copied``)."""

def save(path: str | os.PathLike[str], tensors: Mapping[str, Any]) -> None:
    """Write the named array-likes of ``tensors`` to ``path``: safetensors when the name ends in
    ``.safetensors``, else an Arrow IPC file (one ``arrow.fixed_shape_tensor`` column per name,
    holding the whole tensor as its single row; a 0-d tensor is a one-value column). Files are
    replaced by a rename, so tensors mapped from an older file stay valid."""

def load(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Memory-map a safetensors or Arrow IPC file (the format comes from its contents) and return
    its tensors by name, in file order: read-only views into the mapping, read from disk only
    when touched, keeping the mapping alive after the file is unlinked. The file must not be
    changed or truncated while the tensors live. ``ValueError`` for a malformed file,
    ``OSError`` (e.g. ``FileNotFoundError``) when it cannot be read."""

def from_arrow_chunks(obj: Any, /, *, copy: bool | None = None) -> list[Tensor]:
    """One tensor per chunk of an Arrow stream (``__arrow_c_stream__``: a pyarrow
    ``ChunkedArray``, a one-column ``RecordBatchReader``, ...), each shared without copying;
    one tensor for an ``__arrow_c_array__`` producer; ``[]`` for an empty stream. Read-only;
    ``copy`` as for ``from_arrow``, per chunk."""
