"""Ray (a real local cluster, one CPU): `ray.put(tensor)` pickles it with protocol 5, and the
task that receives it gets a `dlbridge.Tensor` viewing the object store's shared memory
(read-only, no copy beyond Ray's own into the store)."""

from pathlib import Path

import numpy as np
import pytest
import ray

import dlbridge
from conftest import mapping_of

# Ray starts its processes with subprocess (fork, then exec at once), which JAX's fork hook
# warns about; nothing runs between the fork and the exec, so nothing can deadlock.
pytestmark = pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")


@pytest.fixture(scope="module")
def local_ray():
    # Workers import this module (tasks are pickled by reference) from the tests' folder.
    here = str(Path(__file__).parent)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False,
             object_store_memory=128 << 20,
             runtime_env={"env_vars": {"PYTHONPATH": here}})
    yield
    ray.shutdown()


@ray.remote
def describe(t):
    return (type(t).__name__, t.shape, t.strides, t.dtype, t.readonly,
            float(np.from_dlpack(t).astype(np.float64).sum()), mapping_of(t.data_ptr))


def test_a_task_receives_a_read_only_view_of_the_object_store(local_ray):
    # 4 MiB: above Ray's inline limit, so the buffer goes to the shared-memory object store.
    src = np.arange(1 << 20, dtype=np.float32).reshape(1024, 1024)
    t = dlbridge.from_dlpack(src)
    ref = ray.put(t)
    name, shape, strides, dtype, readonly, total, mapping = ray.get(describe.remote(ref))
    assert (name, shape, strides, dtype) == ("Tensor", (1024, 1024), (1024, 1), "float32")
    assert readonly  # the store hands out read-only memory, and the tensor says so
    assert total == float(src.astype(np.float64).sum())
    assert mapping is not None and "plasma" in mapping, mapping  # /dev/shm/plasma...: shared
    # The driver's own `get` views the store too.
    here = ray.get(ref)
    assert here.readonly and here.data_ptr != t.data_ptr
    assert "plasma" in mapping_of(here.data_ptr)
    np.testing.assert_array_equal(np.from_dlpack(here), src)


def test_dtypes_layouts_and_small_tensors_survive_ray(local_ray):
    import torch

    cases = [
        dlbridge.from_dlpack(torch.arange(12, dtype=torch.bfloat16).reshape(3, 4)),
        dlbridge.from_dlpack(np.asfortranarray(np.arange(6.0).reshape(2, 3))),
        dlbridge.from_dlpack(np.arange(40, dtype=np.int16).reshape(5, 8)[::2, ::3]),
        dlbridge.from_dlpack(np.array(True)),
    ]
    for t in cases:
        back = ray.get(ray.put(t))
        assert (back.shape, back.dtype) == (t.shape, t.dtype)
        assert torch.equal(torch.from_dlpack(back), torch.from_dlpack(t))
    f = ray.get(ray.put(cases[1]))
    assert f.strides == (1, 2)  # Fortran order travels without a copy to C order
