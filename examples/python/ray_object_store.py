"""A tensor through Ray's object store: `ray.put` pickles it with protocol 5, so the data goes to
the shared-memory store as one out-of-band buffer, and the task that receives it gets a
`dlbridge.Tensor` viewing the store (read-only shared memory), with no copy beyond Ray's own.

Ray's store is shared with other workers: the read-only flag is all that guards it, and torch
2.13 ignores that flag on import, so do not hand such tensors to code that writes in place.
"""

import numpy as np
import ray

import dlbridge


@ray.remote
def describe(t):
    with open("/proc/self/maps") as maps:
        where = next(line.split(maxsplit=5)[-1].strip() for line in maps
                     if int(line.split("-")[0], 16) <= t.data_ptr
                     < int(line.split()[0].split("-")[1], 16))
    return t.shape, t.dtype, t.readonly, float(np.from_dlpack(t).sum()), where


if __name__ == "__main__":
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False,
             object_store_memory=128 << 20)
    try:
        t = dlbridge.from_dlpack(np.ones((512, 1024), np.float32))  # 2 MiB: goes to the store
        shape, dtype, readonly, total, where = ray.get(describe.remote(ray.put(t)))
        print(f"worker: {shape} {dtype}, read-only {readonly}, sum {total}, memory: {where}")
        assert readonly and total == 512 * 1024 and "plasma" in where
    finally:
        ray.shutdown()
