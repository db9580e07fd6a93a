"""Tensors over Arrow Flight between two processes.

A server process holds `dlbridge.Tensor`s and serves each as an Arrow stream: its
`__arrow_c_stream__` export (one record batch, the tensor as one column: primitive for 1-D,
`arrow.fixed_shape_tensor` for N-D) goes to `pyarrow.flight` without a copy in this process.
The client fetches a stream and turns it back into a tensor with `dlbridge.asarray`. gRPC hands
the received buffers over wherever they landed in its message, usually misaligned for the
element type (Arrow requires alignment), so that import realigns them: one copy, which the
tensor reports (`is_copied`) and `copy=False` would refuse. Flight is how distributed engines (Dremio, DataFusion Ballista,
Spark connectors) move Arrow data between machines.
"""

import multiprocessing as mp

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight

import dlbridge


def serve(queue):
    tensors = {
        b"images": dlbridge.from_dlpack(np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)),
        b"labels": dlbridge.from_dlpack(np.array([3, 7], dtype=np.int64)),
    }

    class TensorServer(flight.FlightServerBase):
        def do_get(self, context, ticket):
            reader = pa.RecordBatchReader.from_stream(tensors[ticket.ticket])
            return flight.RecordBatchStream(reader)

    server = TensorServer("grpc://127.0.0.1:0")
    queue.put(server.port)
    server.serve()


if __name__ == "__main__":
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    p = ctx.Process(target=serve, args=(queue,), daemon=True)
    p.start()
    port = queue.get(timeout=60)
    client = flight.connect(f"grpc://127.0.0.1:{port}")
    for name in (b"images", b"labels"):
        table = client.do_get(flight.Ticket(name)).read_all()
        t = dlbridge.asarray(table.column("tensor"))
        print(f"{name.decode()}: {t.shape} {t.dtype}, realigned on import: {t.is_copied}")
    images = np.from_dlpack(dlbridge.asarray(client.do_get(flight.Ticket(b"images"))
                                             .read_all().column("tensor")))
    np.testing.assert_array_equal(images, np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    labels = dlbridge.asarray(client.do_get(flight.Ticket(b"labels")).read_all().column("tensor"))
    assert np.from_dlpack(labels).tolist() == [3, 7]
    client.close()
    p.terminate()
    p.join(10)
