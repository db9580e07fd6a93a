"""Cross-check dlbridge's Arrow IPC tensor columns against pyarrow.

Usage (called by tests/arrow.rs):
  python arrow_ipc_check.py read <file>   # assert pyarrow reads the file dlbridge wrote
  python arrow_ipc_check.py write <file>  # write a file for dlbridge to read back

Both sides use the same expected contents (keep in sync with tests/arrow.rs):
  read:  "t"      float32 fixed_shape_tensor, 3 rows of shape [2, 4], values arange(24)
         "labels" int64 primitive, [10, 20, 30]
         "tt"     int32 fixed_shape_tensor, shape [4, 2] with permutation [1, 0]
                  (zero-copy export of transposed rows), logical rows of shape [2, 4] equal to
                  arange(24).reshape(3, 4, 2).transpose(0, 2, 1)
  write: "t"      float64 fixed_shape_tensor, 4 rows of shape [2, 3], values arange(24) * 0.5
         "named"  uint16 fixed_shape_tensor, 4 rows of shape [3, 2], dim_names ["h", "w"],
                  values arange(24)
         "perm"   int32 fixed_shape_tensor from a transposed ndarray: logical rows of shape
                  [3, 2] equal to arange(24).reshape(4, 2, 3).transpose(0, 2, 1)
         "v"      int16 primitive, [-1, 0, 1, 2]
"""

import sys

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc


def check_tensor_column(table, name, value_type, shape, expected):
    col = table.column(name).combine_chunks()
    assert isinstance(col, pa.ExtensionArray), f"{name}: {type(col)} is no ExtensionArray"
    assert isinstance(col, pa.FixedShapeTensorArray), f"{name}: {type(col)}"
    assert col.type.extension_name == "arrow.fixed_shape_tensor", col.type
    assert col.type.value_type == value_type, (name, col.type.value_type)
    assert list(col.type.shape) == shape, (name, col.type.shape)
    got = col.to_numpy_ndarray()
    assert got.shape == expected.shape, (name, got.shape, expected.shape)
    np.testing.assert_array_equal(got, expected)
    return col


def read(path):
    with pa.memory_map(path) as source:
        table = ipc.open_file(source).read_all()
    check_tensor_column(
        table, "t", pa.float32(), [2, 4], np.arange(24, dtype=np.float32).reshape(3, 2, 4)
    )
    labels = table.column("labels").combine_chunks()
    assert labels.type == pa.int64(), labels.type
    assert labels.to_pylist() == [10, 20, 30], labels
    tt = check_tensor_column(
        table,
        "tt",
        pa.int32(),
        [4, 2],
        np.arange(24, dtype=np.int32).reshape(3, 4, 2).transpose(0, 2, 1),
    )
    assert list(tt.type.permutation) == [1, 0], tt.type.permutation
    print(f"OK read {table.num_rows} rows, columns {table.column_names}")


def write(path):
    t = np.arange(24, dtype=np.float64).reshape(4, 2, 3) * 0.5
    named_type = pa.fixed_shape_tensor(pa.uint16(), [3, 2], dim_names=["h", "w"])
    named_storage = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(24, dtype=np.uint16)), 6)
    named = pa.ExtensionArray.from_storage(named_type, named_storage)
    perm = np.arange(24, dtype=np.int32).reshape(4, 2, 3).transpose(0, 2, 1)
    perm_col = pa.FixedShapeTensorArray.from_numpy_ndarray(perm)
    assert perm_col.type.permutation is not None and list(perm_col.type.permutation) == [1, 0]
    table = pa.table(
        {
            "t": pa.FixedShapeTensorArray.from_numpy_ndarray(t),
            "named": named,
            "perm": perm_col,
            "v": pa.array(np.array([-1, 0, 1, 2], dtype=np.int16)),
        }
    )
    with ipc.new_file(path, table.schema) as writer:
        writer.write_table(table)
    print(f"OK wrote {table.num_rows} rows to {path}")


if __name__ == "__main__":
    mode, path = sys.argv[1], sys.argv[2]
    {"read": read, "write": write}[mode](path)
