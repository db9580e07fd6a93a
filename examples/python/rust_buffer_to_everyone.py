"""One buffer, allocated once, shared with numpy, PyTorch and JAX without copying.

`dlbridge.asarray(bytearray)` wraps the bytearray's memory as a dlbridge tensor (the Rust
side holds the buffer export); numpy and torch see the very same address. JAX may copy on
import (it owns its device buffers), so only its values are checked.
"""

import jax.numpy as jnp
import numpy as np
import torch

import dlbridge

raw = bytearray(np.arange(16, dtype=np.float32).tobytes())
t = dlbridge.asarray(raw)  # uint8 view of the 64 bytes
floats = np.from_dlpack(t).view(np.float32).reshape(4, 4)
shared = dlbridge.from_dlpack(floats)
print("dlbridge:", shared)

n = np.from_dlpack(shared)
x = torch.from_dlpack(shared)
print("numpy address", hex(n.ctypes.data), "torch address", hex(x.data_ptr()))
assert n.ctypes.data == x.data_ptr() == shared.data_ptr

x[0, 0] = 42.0  # a write through torch is seen by numpy and in the bytearray
assert n[0, 0] == 42.0
assert np.frombuffer(raw, dtype=np.float32)[0] == 42.0

j = jnp.from_dlpack(shared)
print("jax:", j[0])
assert np.array_equal(np.asarray(j), n)
print("ok")
