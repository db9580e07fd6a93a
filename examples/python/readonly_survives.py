"""A read-only array stays read-only through every hop: DLPack (versioned), the buffer
protocol, __array_interface__, and back; the legacy DLPack protocol (which cannot say
"read-only") is refused instead of silently handing out a writable view."""

import numpy as np
import torch

import dlbridge

a = np.arange(8.0)
a.flags.writeable = False

hops = {
    "from_dlpack(ndarray)": dlbridge.from_dlpack(a),
    "asarray(memoryview)": dlbridge.asarray(memoryview(a)),
    "asarray(bytes)": dlbridge.asarray(a.tobytes()),
}
for name, t in hops.items():
    assert t.readonly, name
    assert not np.from_dlpack(t).flags.writeable, name
    assert not np.asarray(t).flags.writeable, name
    assert memoryview(t).readonly, name
    assert dlbridge.from_dlpack(t.__dlpack__(max_version=(1, 0))).readonly, name
    try:
        t.__dlpack__()  # legacy capsule: cannot carry the flag
        raise AssertionError("legacy export of a read-only tensor must fail")
    except BufferError as e:
        print(f"{name}: legacy export refused ({e})")

# torch has no read-only tensors: torch 2.13's importer ignores DLPack's READ_ONLY flag (for
# numpy producers too), so protection ends at torch; a copy is the safe way to get a writable one.
w = dlbridge.from_dlpack(a, copy=True)
assert not w.readonly and w.is_copied
x = torch.from_dlpack(w)
x[0] = -1.0
assert a[0] == 0.0
print("ok")
