//! Core benchmarks, peers in the same run:
//! - DLPack export -> import round trip: dlbridge vs dlpark, 1 KiB and 1 GiB (flat = O(ndim));
//! - the copy kernel on a transposed 64 MiB f32 view vs memcpy of the same bytes and vs
//!   ndarray's `as_standard_layout().to_owned()`; the same for the 3-D permutations (2,0,1) and
//!   (1,2,0) of a [256, 256, 256] f32 tensor and for `[::2, ::3]` of an [8192, 12288] f32 array,
//!   every output 64 MiB.
//!
//! `cargo bench --bench core -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dlbridge::ffi::DLManagedTensorVersioned;
use dlbridge::{ManagedTensorVersioned, Order, TensorView};
use dlpark::metadata::Dynamic;
use dlpark::TryFromDlpack;
use ndarray::ArrayViewD;

const KIB: usize = 1 << 10;
const GIB: usize = 1 << 30;

/// A zeroed f32 buffer of `bytes` bytes, as a 2-D (rows, 256) tensor. `vec![0; n]` maps
/// zero pages lazily, so a 1 GiB case costs no physical memory unless touched.
fn tensor(bytes: usize) -> TensorView {
    let n = bytes / 4;
    TensorView::from_vec(vec![0f32; n], &[n / 256, 256]).unwrap()
}

/// dlpark's export of the same memory: a Dynamic metadata allocation whose context is an Arc
/// keep-alive.
fn dlpark_export(
    data: &Arc<Vec<f32>>,
    shape: &[usize],
    strides: &[isize],
) -> dlpark::versioned::Dlpack {
    let prepared = Dynamic::new(shape, strides)
        .prepare_as::<DLManagedTensorVersioned>()
        .unwrap();
    let mut init = prepared.initialize(data.clone());
    init.set_data(data.as_ptr() as *mut _)
        .set_dtype(dlpark::ffi::DLDataType {
            code: dlpark::ffi::DLDataTypeCode::FLOAT,
            bits: 32,
            lanes: 1,
        })
        .set_device(dlpark::ffi::DLDevice::CPU);
    // SAFETY: data, shape and strides describe the Arc'd Vec, which the context keeps alive.
    unsafe { init.finish() }
}

/// dlpark's round trip: its export, then its consumer into a typed ndarray view.
fn dlpark_round_trip(data: &Arc<Vec<f32>>, shape: &[usize], strides: &[isize]) -> usize {
    let managed = dlpark_export(data, shape, strides);
    // SAFETY: the managed tensor is valid for the duration of the borrow.
    let view: ArrayViewD<f32> = unsafe { TryFromDlpack::try_from_dlpack(&managed, ()) }.unwrap();
    view.len()
}

fn round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("dlpack_round_trip");
    for (label, bytes) in [("1KiB", KIB), ("1GiB", GIB)] {
        let t = tensor(bytes);
        g.bench_function(BenchmarkId::new("dlbridge", label), |b| {
            b.iter(|| {
                let m = black_box(&t).to_dlpack_versioned();
                let back = TensorView::from_dlpack_versioned(m).unwrap();
                black_box(back.as_slice::<f32>().unwrap().len())
            })
        });
        let data = Arc::new(vec![0f32; bytes / 4]);
        let (shape, strides) = ([bytes / 4 / 256, 256], [256isize, 1]);
        g.bench_function(BenchmarkId::new("dlpark", label), |b| {
            b.iter(|| black_box(dlpark_round_trip(black_box(&data), &shape, &strides)))
        });
        // dlbridge importing a foreign (dlpark-made) tensor: the full validation path.
        g.bench_function(
            BenchmarkId::new("dlpark_export_dlbridge_import", label),
            |b| {
                b.iter(|| {
                    let raw = dlpark_export(&data, &shape, &strides).into_raw();
                    // SAFETY: `raw` is a live managed tensor handed over to us.
                    let m = unsafe { ManagedTensorVersioned::from_raw(raw) }.unwrap();
                    let view = TensorView::from_dlpack_versioned(m).unwrap();
                    black_box(view.as_slice::<f32>().unwrap().len())
                })
            },
        );
    }
    g.finish();
}

fn copy_kernel(c: &mut Criterion) {
    let mut g = c.benchmark_group("copy_64MiB_f32");
    let side = 4096; // 4096 * 4096 * 4 bytes = 64 MiB
    g.throughput(Throughput::Bytes((side * side * 4) as u64));
    g.sample_size(20);
    let src: Vec<f32> = (0..side * side).map(|x| x as f32).collect();
    let t = TensorView::from_vec(src.clone(), &[side, side]).unwrap();
    let transposed = t.transpose().unwrap();
    g.bench_function("dlbridge_transposed_to_c", |b| {
        b.iter(|| black_box(transposed.to_contiguous(Order::C).unwrap()))
    });
    let every_other = t
        .slice(1, dlbridge::SliceArg::step(2))
        .unwrap()
        .broadcast_to(&[2, side, side / 2])
        .unwrap();
    g.bench_function("dlbridge_strided_broadcast_to_c", |b| {
        b.iter(|| black_box(every_other.to_contiguous(Order::C).unwrap()))
    });
    g.bench_function("dlbridge_contiguous_to_c", |b| {
        b.iter(|| black_box(t.to_contiguous(Order::C).unwrap()))
    });
    let mut dst = vec![0f32; side * side];
    g.bench_function("memcpy_same_bytes", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(dst.as_ptr());
        })
    });
    // A fair peer for a copy that must produce new memory: fresh allocation + memcpy (page
    // faults included, as for every copy into a new tensor).
    g.bench_function("alloc_and_memcpy_same_bytes", |b| {
        b.iter(|| black_box(black_box(&src).to_vec()))
    });
    let nd = ndarray::Array2::from_shape_vec((side, side), src.clone()).unwrap();
    let nd_t = nd.t();
    g.bench_function("ndarray_transposed_as_standard_layout", |b| {
        b.iter(|| black_box(nd_t.as_standard_layout().to_owned()))
    });

    // 3-D permutations of the same 64 MiB, as [256, 256, 256].
    let cube = 256;
    let t3 = TensorView::from_vec(src.clone(), &[cube, cube, cube]).unwrap();
    let nd3 = ndarray::Array3::from_shape_vec((cube, cube, cube), src.clone()).unwrap();
    for (label, order) in [("201", [2, 0, 1]), ("120", [1, 2, 0])] {
        let p = t3.permute(&order).unwrap();
        g.bench_function(format!("dlbridge_permute_{label}_to_c"), |b| {
            b.iter(|| black_box(p.to_contiguous(Order::C).unwrap()))
        });
        let nd_p = nd3.view().permuted_axes(order);
        g.bench_function(format!("ndarray_permute_{label}_as_standard_layout"), |b| {
            b.iter(|| black_box(nd_p.as_standard_layout().to_owned()))
        });
    }
    drop((t3, nd3));

    // `[::2, ::3]` of an [8192, 12288] f32 array (384 MiB): 64 MiB of output.
    let (rows, cols) = (2 * side, 3 * side);
    let big: Vec<f32> = (0..rows * cols).map(|x| x as f32).collect();
    let tb = TensorView::from_vec(big.clone(), &[rows, cols]).unwrap();
    let strided = tb
        .slice_each(&[dlbridge::SliceArg::step(2), dlbridge::SliceArg::step(3)])
        .unwrap();
    g.bench_function("dlbridge_slice_2_3_to_c", |b| {
        b.iter(|| black_box(strided.to_contiguous(Order::C).unwrap()))
    });
    let ndb = ndarray::Array2::from_shape_vec((rows, cols), big).unwrap();
    let nd_s = ndb.slice(ndarray::s![..;2, ..;3]);
    g.bench_function("ndarray_slice_2_3_as_standard_layout", |b| {
        b.iter(|| black_box(nd_s.as_standard_layout().to_owned()))
    });
    g.finish();
}

criterion_group!(benches, round_trip, copy_kernel);
criterion_main!(benches);
