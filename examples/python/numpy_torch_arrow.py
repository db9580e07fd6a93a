"""numpy -> dlbridge -> torch -> dlbridge -> pyarrow, zero-copy at every hop.

- numpy -> dlbridge -> torch -> numpy keeps a strided view's strides.
- dlbridge -> pyarrow goes through the Arrow PyCapsule interface (`__arrow_c_array__`): an N-D
  tensor becomes a `FixedShapeTensorArray` over the same memory, and `to_numpy_ndarray()` reads
  it back at that address.
- pyarrow -> dlbridge: DLPack for pyarrow arrays (read-only), `dlbridge.from_arrow` for anything
  with `__arrow_c_array__` / single-chunk `__arrow_c_stream__`.
"""

import numpy as np
import pyarrow as pa
import torch

import dlbridge

# A strided view through torch and back.
a = np.arange(24, dtype=np.float64).reshape(4, 6)[::2, 1::2]
t = dlbridge.from_dlpack(a)
x = torch.from_dlpack(t)
b = np.from_dlpack(x)
print("strides (elements):", t.strides, tuple(x.stride()))
assert t.data_ptr == x.data_ptr() == b.ctypes.data == a.ctypes.data
assert tuple(x.stride()) == t.strides and b.strides == a.strides
np.testing.assert_array_equal(a, b)

# numpy -> dlbridge -> torch -> dlbridge -> pyarrow FixedShapeTensorArray: one address.
images = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
in_torch = torch.from_dlpack(dlbridge.asarray(images))
back = dlbridge.from_dlpack(in_torch)
column = pa.array(back)
assert isinstance(column, pa.FixedShapeTensorArray), type(column)
rows = column.to_numpy_ndarray()
print("arrow column:", column.type, "address", hex(rows.ctypes.data))
address = images.ctypes.data
assert in_torch.data_ptr() == back.data_ptr == column.storage.values.buffers()[1].address
assert rows.ctypes.data == address and back.data_ptr == address
np.testing.assert_array_equal(rows, images)

# pyarrow -> dlbridge (read-only: Arrow memory is immutable).
arr = pa.array(np.arange(5, dtype=np.int32))
from_arrow = dlbridge.from_dlpack(arr)
print("from arrow:", from_arrow, "address", hex(arr.buffers()[1].address))
assert from_arrow.data_ptr == arr.buffers()[1].address and from_arrow.readonly
np.testing.assert_array_equal(np.from_dlpack(from_arrow), np.arange(5))
tensor = dlbridge.from_arrow(column)
assert tensor.shape == (2, 3, 4) and tensor.data_ptr == address and tensor.readonly
print("ok")
