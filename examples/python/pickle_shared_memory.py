"""Pickle protocol 5 with out-of-band buffers: a tensor travels to another process through
shared memory, and the worker's tensor views that shared memory without a copy.

This is how multiprocessing, Ray, Dask and joblib move arrays: `pickle.dumps(t, protocol=5,
buffer_callback=...)` writes only the metadata and hands over the tensor's own memory as one
`PickleBuffer`; `pickle.loads(data, buffers=[...])` gives a `dlbridge.Tensor` over whatever
buffer arrives (here a `SharedMemory` block; in Ray, the object store), with the same dtype,
shape and strides.
"""

import multiprocessing as mp
import pickle
from multiprocessing import shared_memory

import numpy as np

import dlbridge


def worker(name, nbytes, data, queue):
    shm = shared_memory.SharedMemory(name=name)
    block = shm.buf[:nbytes]
    t = pickle.loads(data, buffers=[block])
    start = np.frombuffer(block, np.uint8).ctypes.data
    queue.put((t.shape, t.dtype, t.data_ptr == start, float(np.from_dlpack(t).sum())))
    del t, block  # release the exports before closing the mapping
    shm.close()


if __name__ == "__main__":
    t = dlbridge.from_dlpack(np.arange(12, dtype=np.float32).reshape(3, 4))
    buffers = []
    data = pickle.dumps(t, protocol=5, buffer_callback=buffers.append)
    raw = buffers[0].raw()
    print(f"pickle: {len(data)} bytes of metadata, {raw.nbytes} bytes out of band")

    shm = shared_memory.SharedMemory(create=True, size=raw.nbytes)
    shm.buf[: raw.nbytes] = raw  # the one copy: into shared memory
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    p = ctx.Process(target=worker, args=(shm.name, raw.nbytes, data, queue))
    p.start()
    shape, dtype, shared, total = queue.get(timeout=60)
    p.join(60)
    print(f"worker: shape {shape}, {dtype}, views the shared memory: {shared}, sum {total}")
    assert shape == (3, 4) and dtype == "float32" and shared and total == 66.0
    del raw, buffers
    shm.close()
    shm.unlink()
