//! tch::Tensor ↔ descriptor at 1 KiB, 1 MiB and 1 GiB of f32, next to the alternatives in the
//! same run: `Tensor::from_blob` with an `Arc` kept alongside (no deleter, manual bookkeeping), a
//! hand-made view over a `shallow_clone` (tch's own accessors), and ATen's pure
//! toDLPack → fromDLPack round trip through the same shim.
//!
//! `cargo bench --features tch --bench torch -- --warm-up-time 1 --measurement-time 2`
//!
//! Every path is zero-copy, so times should not depend on the size. Each iteration includes the
//! drop of what it built (a view, a tensor), never of the data.

use std::hint::black_box;
use std::sync::{Arc, Mutex};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use dlbridge::ManagedTensorVersioned;
use dlbridge::{DType, Owner, Parts, TensorView};
use tch::{Device, Kind, Tensor};

const SIZES: [(&str, usize); 3] = [("1KiB", 1 << 10), ("1MiB", 1 << 20), ("1GiB", 1 << 30)];

/// A torch → view conversion through tch's public accessors only (no shim): what a user could
/// write by hand. It cannot see conj/neg bits, sparse layouts or autograd, so it is a lower
/// bound, not an alternative.
fn manual_view(t: &Tensor) -> TensorView {
    let shape = t.size().iter().map(|&n| n as usize).collect();
    let strides = t.stride().iter().map(|&s| s as isize).collect();
    let parts = Parts::contiguous(t.data_ptr().cast(), shape, DType::F32).with_strides(strides);
    // SAFETY: `t` is a dense CPU f32 tensor; the shallow clone shares (and keeps alive) its
    // storage for as long as the owner lives.
    unsafe { TensorView::from_parts(parts, Owner::new(Mutex::new(t.shallow_clone()))) }.unwrap()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("torch");
    for (label, bytes) in SIZES {
        let n = bytes / 4;
        let tensor = Tensor::zeros([n as i64], (Kind::Float, Device::Cpu));
        let data = Arc::new(vec![0f32; n]);
        let owner = Arc::clone(&data);
        let ptr = data.as_ptr() as *mut u8;
        // SAFETY: `ptr` is the buffer of the Vec inside `owner`, kept alive by the owner.
        let view = unsafe {
            TensorView::from_parts(
                Parts::contiguous(ptr, vec![n], DType::F32),
                Owner::new(owner),
            )
        }
        .unwrap();

        // torch → view
        group.bench_function(BenchmarkId::new("from_tch", label), |b| {
            b.iter(|| black_box(TensorView::from_tch(black_box(&tensor)).unwrap().data_ptr()))
        });
        group.bench_function(BenchmarkId::new("manual_shallow_clone_view", label), |b| {
            b.iter(|| black_box(manual_view(black_box(&tensor)).data_ptr()))
        });
        group.bench_function(BenchmarkId::new("aten_to_dlpack", label), |b| {
            b.iter(|| {
                black_box(
                    ManagedTensorVersioned::from_tch(black_box(&tensor))
                        .unwrap()
                        .as_ptr(),
                )
            })
        });

        // view → torch
        group.bench_function(BenchmarkId::new("to_tch", label), |b| {
            b.iter(|| black_box(black_box(&view).to_tch().unwrap().data_ptr()))
        });
        group.bench_function(BenchmarkId::new("from_blob_plus_arc", label), |b| {
            b.iter(|| {
                // SAFETY: `data` outlives the tensor: the Arc clone is dropped with it.
                let t =
                    unsafe { Tensor::from_blob(ptr, &[n as i64], &[1], Kind::Float, Device::Cpu) };
                let pair = (t, Arc::clone(black_box(&data)));
                black_box(pair.0.data_ptr())
            })
        });

        // round trips
        group.bench_function(BenchmarkId::new("aten_roundtrip_via_shim", label), |b| {
            b.iter(|| {
                let m = ManagedTensorVersioned::from_tch(black_box(&tensor)).unwrap();
                black_box(m.into_tch().unwrap().data_ptr())
            })
        });
        group.bench_function(BenchmarkId::new("view_tch_view", label), |b| {
            b.iter(|| {
                let t = black_box(&view).to_tch().unwrap();
                black_box(TensorView::from_tch(&t).unwrap().data_ptr())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
