"""Tensor files, memory-mapped: `dlbridge.save` writes safetensors (for a `.safetensors` name) or
Arrow IPC, and `dlbridge.load` maps either back without reading it.

The loaded tensors are read-only views into a copy-on-write mapping of the file: nothing is
read from disk until touched, so a large file costs no memory up front, and the views keep the
mapping alive after the file is unlinked. The `safetensors` package and pyarrow read the files
dlbridge writes, and dlbridge loads the files they write.
"""

import os
import tempfile

import numpy as np
import pyarrow as pa
import torch
from safetensors.torch import load_file

import dlbridge

with tempfile.TemporaryDirectory() as tmp:
    weights = {
        "embed": torch.randn(1000, 64).to(torch.bfloat16),  # numpy has no bfloat16; no matter
        "bias": np.zeros(64, np.float32),
    }
    path = os.path.join(tmp, "model.safetensors")
    dlbridge.save(path, weights)
    assert torch.equal(load_file(path)["embed"], weights["embed"])  # the reference reader agrees

    loaded = dlbridge.load(path)
    embed = torch.from_dlpack(loaded["embed"])  # a view of the mapped file
    print("safetensors:", {k: (t.shape, t.dtype, t.readonly) for k, t in loaded.items()})
    assert torch.equal(embed, weights["embed"])

    columns = {"images": np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28),
               "labels": np.array([3, 7])}
    ipc = os.path.join(tmp, "batch.arrow")
    dlbridge.save(ipc, columns)
    table = pa.ipc.open_file(ipc).read_all()  # one column per name, dtype and shape kept
    print("Arrow IPC:", [(f.name, str(f.type)) for f in table.schema])
    back = dlbridge.load(ipc)
    os.remove(ipc)  # the mapping outlives the name
    np.testing.assert_array_equal(np.from_dlpack(back["images"]), columns["images"])
