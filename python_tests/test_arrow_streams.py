"""Arrow streams both ways: `Tensor.__arrow_c_stream__` is read by pyarrow, polars and DuckDB
over the tensor's own memory; streams of several chunks import as one flagged copy (refused
under `copy=False`) or, through `from_arrow_chunks`, as one zero-copy tensor per chunk."""

import gc
import weakref

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pytest

import dlbridge
from conftest import tracked


def values_address(arr):
    return arr.buffers()[-1].address


def test_pyarrow_reads_the_stream_over_the_tensor_memory():
    a = np.arange(12, dtype=np.float32)
    t = dlbridge.from_dlpack(a)
    reader = pa.RecordBatchReader.from_stream(t)
    assert reader.schema.names == ["tensor"]
    batches = list(reader)
    assert len(batches) == 1 and batches[0].num_rows == 12
    assert values_address(batches[0].column(0)) == a.ctypes.data
    m = np.arange(12.0).reshape(4, 3)
    batch = pa.RecordBatchReader.from_stream(dlbridge.from_dlpack(m)).read_next_batch()
    col = batch.column(0)
    assert isinstance(col.type, pa.FixedShapeTensorType) and tuple(col.type.shape) == (3,)
    assert batch.num_rows == 4
    assert col.storage.values.buffers()[1].address == m.ctypes.data
    np.testing.assert_array_equal(col.to_numpy_ndarray(), m)


def test_the_stream_keeps_the_memory_alive_until_the_consumer_releases_it():
    src = tracked(np.arange(100.0))
    ref = weakref.ref(src)
    t = dlbridge.from_dlpack(src)
    reader = pa.RecordBatchReader.from_stream(t)
    del src, t
    gc.collect()
    assert ref() is not None
    batch = reader.read_next_batch()
    del reader
    gc.collect()
    assert ref() is not None and batch.column(0)[99].as_py() == 99.0
    del batch
    gc.collect()
    assert ref() is None


def test_polars_series_reads_the_tensor_without_copying():
    a = np.arange(10, dtype=np.int64)
    s = pl.Series(dlbridge.from_dlpack(a))
    assert s.to_list() == list(range(10))
    assert values_address(s.to_arrow()) == a.ctypes.data
    # polars 2.1's DataFrame constructor reads any `__arrow_c_array__` as a record batch (a
    # struct array), which an array-like tensor is not; the stream reader works.
    m = np.arange(6.0).reshape(3, 2)
    df = pl.DataFrame(pa.RecordBatchReader.from_stream(dlbridge.from_dlpack(m)))
    assert df.shape == (3, 1) and df.columns == ["tensor"]


def test_duckdb_scans_a_tensor_variable():
    t = dlbridge.from_dlpack(np.arange(1, 101, dtype=np.int32))  # noqa: F841 (scanned by name)
    assert duckdb.sql("select sum(tensor), count(*) from t").fetchall() == [(5050, 100)]
    m = dlbridge.from_dlpack(np.arange(6.0).reshape(3, 2))  # noqa: F841
    assert duckdb.sql("select * from m").fetchall() == [((0.0, 1.0),), ((2.0, 3.0),),
                                                         ((4.0, 5.0),)]


def test_several_chunks_import_as_one_flagged_copy():
    chunks = [np.arange(3, dtype=np.int16), np.arange(3, 7, dtype=np.int16)]
    ca = pa.chunked_array([pa.array(c) for c in chunks])
    for route in (dlbridge.asarray, dlbridge.from_arrow):
        t = route(ca)
        assert t.is_copied and t.shape == (7,)
        np.testing.assert_array_equal(np.from_dlpack(t), np.arange(7))
        with pytest.raises(BufferError, match="from_arrow_chunks"):
            route(ca, copy=False)
    images = np.arange(2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3)
    fst = pa.chunked_array([pa.FixedShapeTensorArray.from_numpy_ndarray(images),
                            pa.FixedShapeTensorArray.from_numpy_ndarray(images + 100)])
    t = dlbridge.asarray(fst)
    assert t.shape == (4, 2, 3) and t.is_copied
    np.testing.assert_array_equal(np.from_dlpack(t), np.concatenate([images, images + 100]))


def test_from_arrow_chunks_gives_one_zero_copy_tensor_per_chunk():
    arrays = [pa.array(np.arange(n, dtype=np.float64)) for n in (3, 0, 5)]
    ca = pa.chunked_array(arrays)
    parts = dlbridge.from_arrow_chunks(ca)
    assert [p.shape for p in parts] == [(3,), (0,), (5,)]
    assert parts[0].data_ptr == values_address(ca.chunk(0))
    assert parts[2].data_ptr == values_address(ca.chunk(2))
    assert all(p.readonly and not p.is_copied for p in parts)
    reader = pa.RecordBatchReader.from_batches(
        pa.schema([("x", pa.int32())]),
        [pa.record_batch([pa.array([1, 2], pa.int32())], names=["x"]),
         pa.record_batch([pa.array([3], pa.int32())], names=["x"])])
    assert [p.shape for p in dlbridge.from_arrow_chunks(pa.chunked_array(
        [b.column(0) for b in reader]))] == [(2,), (1,)]
    assert dlbridge.from_arrow_chunks(pa.chunked_array([], type=pa.int8())) == []
    one = dlbridge.from_arrow_chunks(pa.array([1, 2, 3]))
    assert len(one) == 1 and one[0].shape == (3,)
    with pytest.raises(TypeError):
        dlbridge.from_arrow_chunks(np.arange(3))


def test_a_dlbridge_stream_round_trips_through_dlbridge():
    m = np.arange(12.0).reshape(4, 3)
    t = dlbridge.from_dlpack(m)
    stream = pa.RecordBatchReader.from_stream(t)
    col = pa.chunked_array([b.column(0) for b in stream])
    back = dlbridge.asarray(col)
    assert back.shape == (4, 3) and back.data_ptr == m.ctypes.data and not back.is_copied
