//! Arrow interop benchmarks.
//!
//! - zero-copy TensorView -> Arrow Buffer -> TensorView, and TensorView -> fixed_shape_tensor
//!   column -> TensorView, at 1 KiB, 1 MiB and 1 GiB: the cost must not depend on the size;
//! - IPC write + read of a 256 MiB fixed_shape_tensor column through an in-memory `Vec<u8>`
//!   (the write copies the data once; the zero-copy read does not, the `FileReader` read does).
//!
//! `cargo bench --features arrow --bench arrow -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;
use std::io::Cursor;

use arrow_buffer::Buffer;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dlbridge::interop::arrow::*;
use dlbridge::{CopyPolicy, DType, TensorView};

fn zero_copy(c: &mut Criterion) {
    let mut g = c.benchmark_group("arrow_zero_copy");
    for (label, bytes) in [("1KiB", 1usize << 10), ("1MiB", 1 << 20), ("1GiB", 1 << 30)] {
        let n = bytes / 4;
        let t = TensorView::from_vec(vec![1.0f32; n], &[n / 256, 256]).unwrap();
        let opts = ArrowImportOptions::default();
        g.bench_with_input(BenchmarkId::new("buffer_round_trip", label), &t, |b, t| {
            b.iter(|| {
                let buf = black_box(t).to_arrow_buffer(CopyPolicy::Never).unwrap();
                let back =
                    TensorView::from_arrow_buffer(&buf, DType::F32, t.shape(), CopyPolicy::Never)
                        .unwrap();
                black_box(back.data_ptr())
            })
        });
        g.bench_with_input(
            BenchmarkId::new("tensor_column_round_trip", label),
            &t,
            |b, t| {
                b.iter(|| {
                    let col = black_box(t)
                        .to_arrow(&ArrowExportOptions::default())
                        .unwrap();
                    let back =
                        TensorView::from_arrow(&col.field, col.array.as_ref(), &opts).unwrap();
                    black_box(back.data_ptr())
                })
            },
        );
    }
    g.finish();
}

fn ipc(c: &mut Criterion) {
    let bytes = 256usize << 20;
    let n = bytes / 4;
    let t = TensorView::from_vec(vec![0.5f32; n], &[n / 1024, 32, 32]).unwrap();
    let batch = record_batch_from_tensors(&[("x", &t)], &ArrowExportOptions::default()).unwrap();
    let mut g = c.benchmark_group("arrow_ipc_256MiB");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes as u64));
    let mut file = Vec::with_capacity(bytes + (1 << 20));
    g.bench_function("write_file", |b| {
        b.iter(|| {
            file.clear();
            ipc::write_file(&mut file, std::slice::from_ref(&batch)).unwrap();
            black_box(file.len())
        })
    });
    let opts = ArrowImportOptions::default();
    g.bench_function("write_then_read_zero_copy", |b| {
        b.iter(|| {
            let mut file = Vec::with_capacity(bytes + (1 << 20));
            ipc::write_file(&mut file, std::slice::from_ref(&batch)).unwrap();
            let batches = ipc::read_file_buffer(Buffer::from_vec(file)).unwrap();
            let cols = tensors_from_record_batch(&batches[0], &opts).unwrap();
            black_box(cols[0].1.data_ptr())
        })
    });
    // The same job with the output memory reused between iterations (as pyarrow's pooled
    // allocator does), so fresh-page faults do not dominate: write, then read without copying
    // from a Buffer that borrows the reused Vec.
    let mut reused: Vec<u8> = Vec::with_capacity(bytes + (1 << 20));
    g.bench_function("write_reused_then_read_zero_copy", |b| {
        b.iter(|| {
            reused.clear();
            ipc::write_file(&mut reused, std::slice::from_ref(&batch)).unwrap();
            let ptr = std::ptr::NonNull::new(reused.as_mut_ptr()).unwrap();
            // SAFETY: `reused` outlives `file_buffer` and everything read from it, which are
            // all dropped at the end of this iteration, before `reused` is written again.
            let file_buffer = unsafe {
                Buffer::from_custom_allocation(ptr, reused.len(), std::sync::Arc::new(()))
            };
            let batches = ipc::read_file_buffer(file_buffer).unwrap();
            let cols = tensors_from_record_batch(&batches[0], &opts).unwrap();
            black_box(cols[0].1.data_ptr())
        })
    });
    let written = Buffer::from_vec(file.clone());
    g.bench_function("read_zero_copy", |b| {
        b.iter(|| {
            let batches = ipc::read_file_buffer(written.clone()).unwrap();
            let cols = tensors_from_record_batch(&batches[0], &opts).unwrap();
            black_box(cols[0].1.data_ptr())
        })
    });
    g.bench_function("read_file_reader", |b| {
        b.iter(|| {
            let batches = ipc::read_file(Cursor::new(&file)).unwrap();
            let cols = tensors_from_record_batch(&batches[0], &opts).unwrap();
            black_box(cols[0].1.data_ptr())
        })
    });
    g.finish();
}

criterion_group!(benches, zero_copy, ipc);
criterion_main!(benches);
