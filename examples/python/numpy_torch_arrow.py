"""numpy -> dlbridge -> torch -> numpy, zero-copy at every hop, strides preserved.

Arrow: pyarrow arrays are DLPack producers (read-only), so `dlbridge.from_dlpack(pa_array)` is
zero-copy too. Export to Arrow (`__arrow_c_array__`) belongs to the Arrow integration.
TODO(lead): once `dlbridge.Tensor.__arrow_c_array__` exists, add `pa.array(t)` here.
"""

import numpy as np
import pyarrow as pa
import torch

import dlbridge

a = np.arange(24, dtype=np.float64).reshape(4, 6)[::2, 1::2]  # a strided view
t = dlbridge.from_dlpack(a)
x = torch.from_dlpack(t)
b = np.from_dlpack(x)
print("strides (elements):", t.strides, tuple(x.stride()))
assert t.data_ptr == x.data_ptr() == b.ctypes.data == a.ctypes.data
assert tuple(x.stride()) == t.strides and b.strides == a.strides
np.testing.assert_array_equal(a, b)

arr = pa.array(np.arange(5, dtype=np.int32))
from_arrow = dlbridge.from_dlpack(arr)
print("from arrow:", from_arrow, "address", hex(arr.buffers()[1].address))
assert from_arrow.data_ptr == arr.buffers()[1].address and from_arrow.readonly
np.testing.assert_array_equal(np.from_dlpack(from_arrow), np.arange(5))
print("ok")
