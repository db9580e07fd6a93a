"""A tensor as an Arrow stream: `Tensor.__arrow_c_stream__` exports one record batch with the
tensor as its column (rows on the first axis), so query engines that read Arrow streams take it
without a copy in the exchange: pyarrow's `RecordBatchReader`, polars and DuckDB here.

And back: a multi-chunk Arrow column becomes one tensor by one (flagged) copy, or one
zero-copy tensor per chunk with `dlbridge.from_arrow_chunks`.
"""

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

import dlbridge

scores = dlbridge.from_dlpack(np.random.default_rng(0).standard_normal(1000).astype(np.float32))
reader = pa.RecordBatchReader.from_stream(scores)
batch = reader.read_next_batch()
assert batch.column(0).buffers()[1].address == scores.data_ptr  # the tensor's own memory

series = pl.Series(scores)  # polars reads the array (pl.DataFrame expects a record batch)
print("polars mean:", round(series.mean(), 4))
print("DuckDB:", duckdb.sql("select count(*), round(avg(tensor), 4) from scores").fetchall())

embeddings = dlbridge.from_dlpack(np.arange(12.0).reshape(4, 3))  # rows of a fixed_shape_tensor
print("DuckDB rows:", duckdb.sql("select * from embeddings limit 2").fetchall())

chunked = pa.chunked_array([pa.array([1, 2, 3]), pa.array([4, 5])])
whole = dlbridge.asarray(chunked)
parts = dlbridge.from_arrow_chunks(chunked)
print("joined:", whole.shape, "copied:", whole.is_copied, "| per chunk:", [p.shape for p in parts])
assert whole.is_copied and not any(p.is_copied for p in parts)
