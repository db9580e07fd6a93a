//! ndarray → descriptor → ndarray view, at 1 KiB, 1 MiB and 1 GiB of f32, next to dlpark's own
//! ndarray → DLPack → ndarray view, in the same run.
//!
//! `cargo bench --features ndarray --bench ndarray -- --warm-up-time 1 --measurement-time 2`
//!
//! Every path is zero-copy, so times should not depend on the size. The 1 GiB buffers come from
//! `vec![0f32; n]` (calloc: pages are mapped lazily and never touched here). Paths that consume
//! the array build a fresh one in untimed setup and drop it untimed (criterion's
//! `iter_batched`); the others reuse one array allocated once.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use dlbridge::TensorView;
use dlpark::{allocation::dynamic, ffi::DLManagedTensorVersioned, Managed, TryFromDlpack};
use ndarray::{Array1, ArrayViewD, Ix1};

const SIZES: [(&str, usize); 3] = [("1KiB", 1 << 10), ("1MiB", 1 << 20), ("1GiB", 1 << 30)];

fn fresh(n: usize) -> Array1<f32> {
    Array1::from_vec(vec![0f32; n])
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("ndarray");
    for (label, bytes) in SIZES {
        let n = bytes / 4;

        // Owned array moved in, viewed back: Array → TensorView → ArrayView.
        group.bench_function(BenchmarkId::new("dlbridge_owned", label), |b| {
            b.iter_batched(
                || fresh(n),
                |a| {
                    let t = TensorView::from_ndarray(a).unwrap();
                    black_box(t.as_array::<f32, Ix1>().unwrap().as_ptr());
                    t
                },
                BatchSize::PerIteration,
            )
        });

        // The same plus a DLPack hop: Array → TensorView → DLPack → TensorView → ArrayView.
        group.bench_function(BenchmarkId::new("dlbridge_owned_via_dlpack", label), |b| {
            b.iter_batched(
                || fresh(n),
                |a| {
                    let t = TensorView::from_ndarray(a).unwrap();
                    let back =
                        TensorView::from_dlpack_versioned(t.into_dlpack_versioned()).unwrap();
                    black_box(back.as_array::<f32, Ix1>().unwrap().as_ptr());
                    back
                },
                BatchSize::PerIteration,
            )
        });

        // dlpark: Box<Array> → DLPack managed tensor → ArrayViewD.
        group.bench_function(BenchmarkId::new("dlpark_owned", label), |b| {
            b.iter_batched(
                || fresh(n),
                |a| {
                    let init: dynamic::Initialized<DLManagedTensorVersioned> =
                        Box::new(a).try_into().unwrap();
                    // SAFETY: the allocation was fully initialised by the conversion.
                    let managed: Managed<DLManagedTensorVersioned> = unsafe { init.finish() };
                    // SAFETY: the managed tensor describes the boxed array's CPU memory.
                    let view = unsafe { ArrayViewD::<f32>::try_from_dlpack(&managed, ()) }.unwrap();
                    black_box(view.as_ptr());
                    managed
                },
                BatchSize::PerIteration,
            )
        });

        // One array, allocated once: shared (ArcArray clone) and borrowed (scoped) paths.
        let shared = fresh(n).into_shared();
        group.bench_function(BenchmarkId::new("dlbridge_arc", label), |b| {
            b.iter(|| {
                let t = TensorView::from_arc_array(shared.clone()).unwrap();
                black_box(t.as_array::<f32, Ix1>().unwrap().as_ptr());
            })
        });
        group.bench_function(BenchmarkId::new("dlbridge_borrowed", label), |b| {
            b.iter(|| {
                TensorView::with_array_view(shared.view(), |t| {
                    black_box(t.as_array::<f32, Ix1>().unwrap().as_ptr())
                })
                .unwrap()
            })
        });
        drop(shared);
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
