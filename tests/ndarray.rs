//! The ndarray integration against the real ndarray crate: pointer identity, values, layouts,
//! lifetimes and every refusal.
#![cfg(feature = "ndarray")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use dlbridge::{DType, Device, DeviceType, Element, Error, Flags, Owner, Parts, TensorView};
use half::{bf16, f16};
use ndarray::{
    arr0, array, s, ArcArray, Array, Array1, Array2, Array3, ArrayView, ArrayViewMut, Ix0, Ix1,
    Ix2, Ix3, IxDyn, Slice,
};
use num_complex::Complex;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// A global allocator that reports when one watched address is freed: observes exactly when an
// owned array's memory goes back to the system, without any element type with a destructor.

struct WatchingAllocator;

static WATCHED: AtomicUsize = AtomicUsize::new(0);
static WATCHED_FREES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call unchanged to the system allocator; only counts.
unsafe impl GlobalAlloc for WatchingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ptr as usize == WATCHED.load(Ordering::SeqCst) {
            WATCHED_FREES.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ptr as usize == WATCHED.load(Ordering::SeqCst) {
            WATCHED_FREES.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: WatchingAllocator = WatchingAllocator;

fn watch(address: usize) {
    WATCHED_FREES.store(0, Ordering::SeqCst);
    WATCHED.store(address, Ordering::SeqCst);
}

fn watched_frees() -> usize {
    WATCHED_FREES.load(Ordering::SeqCst)
}

// ---------------------------------------------------------------------------------------------
// Pointer identity and values for every element type, through every path.

fn ptr_of<T>(p: *const T) -> *const u8 {
    p.cast()
}

/// Owned, shared, borrowed and DLPack paths for one element type, on a 3x4 array and its
/// reversed transpose.
fn all_paths<T: Element + PartialEq + std::fmt::Debug>(make: impl Fn(usize) -> T) {
    let values: Vec<T> = (0..12).map(&make).collect();
    let a = Array2::from_shape_vec((3, 4), values.clone()).unwrap();

    // Owned: moved in, no copy.
    let expected = a.clone();
    let ptr = a.as_ptr();
    let t = TensorView::from_ndarray(a).unwrap();
    assert_eq!(t.dtype(), T::DTYPE);
    assert_eq!(t.data_ptr(), ptr_of(ptr));
    assert_eq!((t.shape(), t.strides()), (&[3, 4][..], &[4, 1][..]));
    assert!(!t.is_read_only() && !t.is_copied());
    let v = t.as_array::<T, Ix2>().unwrap();
    assert_eq!(v.as_ptr(), ptr);
    assert_eq!(v, expected);
    assert_eq!(t.to_vec::<T>().unwrap(), values);

    // ... through DLPack and back.
    let back = TensorView::from_dlpack_versioned(t.to_dlpack_versioned()).unwrap();
    let v = back.as_array::<T, IxDyn>().unwrap();
    assert_eq!(v.as_ptr(), ptr);
    assert_eq!(v, expected.clone().into_dyn());

    // Reversed transpose: negative strides, first element not at the allocation start.
    let rt = expected.clone().reversed_axes().slice_move(s![..;-1, ..]);
    let rt_expected = rt.clone();
    let rt_ptr = rt.as_ptr();
    let t = TensorView::from_ndarray(rt).unwrap();
    assert_eq!(t.strides(), &[-1, 4]);
    let back = TensorView::from_dlpack_versioned(t.to_dlpack_versioned()).unwrap();
    let v = back.as_array::<T, Ix2>().unwrap();
    assert_eq!((v.as_ptr(), v.strides()), (rt_ptr, &[-1, 4][..]));
    assert_eq!(v, rt_expected);

    // Shared: read-only, same address.
    let shared: ArcArray<T, Ix2> = expected.clone().into_shared();
    let t = TensorView::from_arc_array(shared.clone()).unwrap();
    assert!(t.is_read_only());
    assert_eq!(t.data_ptr(), ptr_of(shared.as_ptr()));
    assert_eq!(t.as_array::<T, Ix2>().unwrap(), shared);

    // Borrowed: lent for a scope, same address.
    let seen = TensorView::with_array_view(expected.view(), |t| {
        assert!(t.is_read_only());
        let v = t.as_array::<T, Ix2>().unwrap();
        assert_eq!(v, expected);
        v.as_ptr()
    })
    .unwrap();
    assert_eq!(seen, expected.as_ptr());

    // Copy out: a fresh standard-layout array with the same values.
    let t = TensorView::from_ndarray(rt_expected.clone()).unwrap();
    let owned = t.to_owned_array::<T, Ix2>().unwrap();
    assert!(owned.is_standard_layout());
    assert_ne!(owned.as_ptr(), t.data_ptr().cast());
    assert_eq!(owned, rt_expected);
}

#[test]
fn every_element_type_keeps_pointer_and_values() {
    all_paths(|i| i as i8 - 5);
    all_paths(|i| i as i16 * -300);
    all_paths(|i| i as i32 * -70_000);
    all_paths(|i| i as i64 * -(1 << 40));
    all_paths(|i| i as u8 + 200);
    all_paths(|i| i as u16 * 5000);
    all_paths(|i| i as u32 * 300_000_000);
    all_paths(|i| i as u64 * (1 << 60));
    all_paths(|i| i as f32 * 0.5 - 2.0);
    all_paths(|i| i as f64 * 1e300);
    all_paths(|i| f16::from_f32(i as f32 * 0.25));
    all_paths(|i| bf16::from_f32(i as f32 * -3.5));
    all_paths(|i| Complex::new(i as f32, -(i as f32)));
    all_paths(|i| Complex::new(i as f64 * 1e-3, 7.0));
    all_paths(|i| i % 3 == 0);
}

// ---------------------------------------------------------------------------------------------
// Layouts.

/// `view` lent as a tensor reads back as the same ndarray view (same pointer, strides, values),
/// and its values in row-major order match `to_vec`.
fn check_view<D: ndarray::Dimension>(view: ArrayView<'_, i32, D>) {
    let expected: Vec<i32> = view.iter().copied().collect();
    TensorView::with_array_view(view.clone(), |t| {
        assert_eq!(t.shape(), view.shape());
        assert_eq!(t.strides(), view.strides());
        assert_eq!(t.data_ptr(), ptr_of(view.as_ptr()));
        assert_eq!(t.to_vec::<i32>().unwrap(), expected);
        let back = t.as_array::<i32, D>().unwrap();
        assert_eq!(back.as_ptr(), view.as_ptr());
        if view.is_empty() {
            // Empty views come back with C-order strides (nothing is ever addressed).
            assert!(back.is_standard_layout());
        } else {
            assert_eq!(back.strides(), view.strides());
        }
        assert_eq!(back, view);
        let dl = TensorView::from_dlpack_versioned(t.to_dlpack_versioned()).unwrap();
        assert_eq!(
            dl.as_array::<i32, IxDyn>().unwrap(),
            view.clone().into_dyn()
        );
    })
    .unwrap();
}

#[test]
fn layouts_survive_unchanged() {
    let a = Array::from_shape_vec((4, 5, 6), (0..120).collect()).unwrap();
    check_view(a.view());
    check_view(a.slice(s![1..;2, ..;3, 1..5]));
    check_view(a.slice(s![..;-1, 2, ..;-2]));
    check_view(a.view().reversed_axes());
    check_view(a.view().permuted_axes([1, 2, 0]));
    check_view(a.slice(s![.., ..;-1, ..]).permuted_axes([2, 0, 1]));
    check_view(a.slice(s![3, 4, 5])); // 0-d
    check_view(a.slice(s![1..1, .., ..])); // empty
    check_view(a.slice(s![..;-1, 0..0, ..;-2])); // empty with negative strides
}

#[test]
fn broadcast_views_have_zero_strides() {
    let row = array![1i32, 2, 3];
    let b = row.broadcast((4, 3)).unwrap();
    assert_eq!(b.strides(), &[0, 1]);
    check_view(b);
    TensorView::with_array_view(b, |t| {
        assert!(t.has_internal_overlap());
        assert_eq!(t.to_vec::<i32>().unwrap(), [1, 2, 3].repeat(4));
    })
    .unwrap();
}

#[test]
fn owned_arrays_with_offsets_and_odd_layouts() {
    let base = Array::from_shape_vec((5, 6), (0..30).collect::<Vec<i32>>()).unwrap();
    let cases: Vec<(Array2<i32>, usize)> = vec![
        (base.clone().slice_move(s![2.., 1..;2]), 30),
        (base.clone().slice_move(s![..;-2, ..;-1]), 30),
        (base.clone().reversed_axes(), 30),
        (base.clone().slice_move(s![3..3, ..]), 30),
        (
            Array2::from_shape_vec((2, 3).f(), (0..6).collect()).unwrap(),
            6,
        ),
    ];
    use ndarray::ShapeBuilder;
    for (a, allocated) in cases {
        let expected = a.clone();
        let (ptr, strides) = (a.as_ptr(), a.strides().to_vec());
        let t = TensorView::from_ndarray(a).unwrap();
        assert_eq!(t.strides(), strides);
        let v = t.as_array::<i32, Ix2>().unwrap();
        assert_eq!(v, expected);
        if !expected.is_empty() {
            assert_eq!(t.data_ptr(), ptr_of(ptr));
            assert_eq!(v.as_ptr(), ptr);
            // The whole allocation bounds as_strided, not just the reached elements.
            assert_eq!(t.extent().unwrap().len(), allocated * 4);
        }
        assert_eq!(
            t.to_vec::<i32>().unwrap(),
            expected.iter().copied().collect::<Vec<_>>()
        );
    }
}

#[test]
fn zero_dim_and_empty_round_trips() {
    let t = TensorView::from_ndarray(arr0(7.5f64)).unwrap();
    assert_eq!(t.ndim(), 0);
    assert_eq!(t.as_array::<f64, Ix0>().unwrap()[()], 7.5);
    let back = TensorView::from_dlpack_versioned(t.to_dlpack_versioned()).unwrap();
    assert_eq!(
        back.as_array::<f64, IxDyn>().unwrap().shape(),
        &[] as &[usize]
    );
    assert_eq!(back.to_owned_array::<f64, Ix0>().unwrap(), arr0(7.5));

    let e = Array3::<u8>::zeros((2, 0, 3));
    let t = TensorView::from_ndarray(e).unwrap();
    assert_eq!(t.numel(), 0);
    let back = TensorView::from_dlpack_versioned(t.into_dlpack_versioned()).unwrap();
    let v = back.as_array::<u8, Ix3>().unwrap();
    assert_eq!(v.shape(), &[2, 0, 3]);
    assert_eq!(v.iter().count(), 0);
    let mut t = back;
    assert_eq!(t.as_array_mut::<u8, Ix3>().unwrap().shape(), &[2, 0, 3]);
    assert_eq!(t.to_owned_array::<u8, Ix3>().unwrap().shape(), &[2, 0, 3]);
}

// ---------------------------------------------------------------------------------------------
// Mutation.

#[test]
fn mutable_views_write_through_to_the_same_memory() {
    let a = Array::from_shape_vec((3, 4), (0..12).collect::<Vec<i64>>()).unwrap();
    let a = a.slice_move(s![..;-1, 1..;2]); // negative stride and offset
    let ptr = a.as_ptr();
    let mut t = TensorView::from_ndarray(a).unwrap();
    {
        let mut v = t.as_array_mut::<i64, Ix2>().unwrap();
        assert_eq!(v.as_ptr(), ptr);
        v[[0, 0]] = -1;
        v.column_mut(1).fill(100);
    }
    assert_eq!(t.to_vec::<i64>().unwrap(), vec![-1, 100, 5, 100, 1, 100]);
    // Writes through ArrayViewMut also go through the DLPack round trip.
    let mut back = TensorView::from_dlpack_versioned(t.into_dlpack_versioned()).unwrap();
    let mut v = ArrayViewMut::<i64, Ix2>::try_from(&mut back).unwrap();
    assert_eq!(v.as_ptr(), ptr);
    v[[2, 0]] = 42;
    assert_eq!(
        back.to_vec::<i64>().unwrap(),
        vec![-1, 100, 5, 100, 42, 100]
    );
}

#[test]
fn borrowed_mutable_views_write_into_the_callers_array() {
    let mut a = Array2::<f32>::zeros((3, 3));
    let ptr = a.as_ptr();
    TensorView::with_array_view_mut(a.slice_mut(s![.., ..;-1]), |t| {
        assert!(!t.is_read_only());
        let mut v = t.as_array_mut::<f32, Ix2>().unwrap();
        v.row_mut(0).assign(&array![1.0, 2.0, 3.0]);
        assert_eq!(v.as_ptr(), ptr.wrapping_add(2));
    })
    .unwrap();
    assert_eq!(a.row(0), array![3.0, 2.0, 1.0]);
}

// ---------------------------------------------------------------------------------------------
// Lifetimes.

#[test]
fn owned_array_lives_exactly_as_long_as_the_last_handle() {
    let a = Array1::from_vec(vec![1.0f64; 1000]).slice_move(s![10..;3]);
    let (vec, offset) = a.clone().into_raw_vec_and_offset();
    drop(vec);
    let alloc_start = a.as_ptr().wrapping_sub(offset.unwrap()) as usize;
    watch(alloc_start);

    let t = TensorView::from_ndarray(a).unwrap();
    assert_eq!(t.extent().unwrap().start, alloc_start);
    assert_eq!(t.owner().strong_count(), 1);
    let view2 = t.clone();
    let managed = t.to_dlpack_versioned();
    assert_eq!(t.owner().strong_count(), 3);
    drop(t);
    drop(view2);
    assert_eq!(watched_frees(), 0, "freed while a DLPack export lives");
    let back = TensorView::from_dlpack_versioned(managed).unwrap();
    assert_eq!(back.as_array::<f64, Ix1>().unwrap().sum(), 330.0);
    assert_eq!(watched_frees(), 0, "freed while an imported view lives");
    assert_eq!(back.owner().strong_count(), 1);
    drop(back);
    assert!(
        watched_frees() >= 1,
        "not freed after the last handle dropped"
    );
}

#[test]
fn arc_array_is_released_by_the_last_view() {
    let a: ArcArray<u32, Ix2> = ArcArray::from_shape_vec((2, 2), vec![1, 2, 3, 4]).unwrap();
    let t = TensorView::try_from(a.clone()).unwrap();
    assert!(!a.is_unique());
    let exported = t.to_dlpack_versioned();
    drop(t);
    assert!(!a.is_unique(), "released while a DLPack export lives");
    let back = TensorView::from_dlpack_versioned(exported).unwrap();
    assert!(back.is_read_only());
    assert_eq!(back.as_array::<u32, Ix2>().unwrap(), a);
    drop(back);
    assert!(
        a.is_unique(),
        "the view kept its reference after the last handle"
    );

    // Copy-on-write on the other handle leaves the view's memory untouched.
    let mut a = a;
    let t = TensorView::from_arc_array(a.clone()).unwrap();
    a[[0, 0]] = 99;
    assert_eq!(t.as_array::<u32, Ix2>().unwrap()[[0, 0]], 1);
    assert_ne!(t.data_ptr(), ptr_of(a.as_ptr()));
}

#[test]
fn borrowed_views_release_all_handles_inside_the_scope() {
    let a = array![[1u8, 2], [3, 4]];
    let n = TensorView::with_array_view(a.view(), |t| {
        let clones: Vec<TensorView> = (0..5).map(|_| t.clone()).collect();
        let exported = t.to_dlpack_versioned();
        let back = TensorView::from_dlpack_versioned(exported).unwrap();
        let n = t.owner().strong_count();
        drop((clones, back));
        n
    })
    .unwrap();
    assert_eq!(n, 7);
}

/// Runs in a child process (see below): keeps a clone past the scope, which must abort.
#[test]
#[ignore = "run by escaped_borrowed_view_aborts in a child process"]
fn escaped_borrowed_view_child() {
    if std::env::var_os("DLBRIDGE_ESCAPE_CHILD").is_none() {
        return;
    }
    let a = array![1.0f32, 2.0];
    let mut kept = None;
    let _ = TensorView::with_array_view(a.view(), |t| kept = Some(t.clone()));
    println!("UNREACHABLE: still running with {kept:?}");
}

#[test]
#[cfg_attr(miri, ignore = "spawns a child process, which Miri cannot")]
fn escaped_borrowed_view_aborts() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "escaped_borrowed_view_child",
            "--ignored",
            "--nocapture",
        ])
        .env("DLBRIDGE_ESCAPE_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(!stdout.contains("UNREACHABLE"), "{stdout}");
    assert!(stderr.contains("outlived its scope"), "{stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(6), "expected SIGABRT: {stderr}");
    }
}

// ---------------------------------------------------------------------------------------------
// Refusals.

#[test]
fn dtype_mismatch() {
    let t = TensorView::from_ndarray(array![1.0f32, 2.0]).unwrap();
    let e = t.as_array::<f64, Ix1>().unwrap_err();
    assert_eq!(
        e,
        Error::DtypeMismatch {
            expected: DType::F64,
            found: DType::F32
        }
    );
    assert!(matches!(
        t.as_array::<u32, Ix1>(),
        Err(Error::DtypeMismatch { .. })
    ));
    assert!(matches!(
        t.to_owned_array::<i32, Ix1>(),
        Err(Error::DtypeMismatch { .. })
    ));
    // A DLPack type without a Rust element type: float8_e4m3fn over the same bytes.
    let f8 = TensorView::from_vec(vec![0u8; 4], &[4])
        .unwrap()
        .reinterpret(DType::new(10, 8, 1).unwrap())
        .unwrap();
    assert!(matches!(
        f8.as_array::<u8, Ix1>(),
        Err(Error::DtypeMismatch { .. })
    ));
    assert!(matches!(
        f8.as_array::<i8, Ix1>(),
        Err(Error::DtypeMismatch { .. })
    ));
}

#[test]
fn wrong_ndim_for_fixed_dimension() {
    let t = TensorView::from_ndarray(Array3::<i16>::zeros((2, 3, 4))).unwrap();
    assert!(matches!(
        t.as_array::<i16, Ix2>(),
        Err(Error::DimensionMismatch {
            expected: 2,
            found: 3
        })
    ));
    assert!(matches!(
        t.as_array::<i16, Ix0>(),
        Err(Error::DimensionMismatch { .. })
    ));
    assert!(matches!(
        t.to_owned_array::<i16, Ix1>(),
        Err(Error::DimensionMismatch { .. })
    ));
    assert_eq!(t.as_array::<i16, IxDyn>().unwrap().ndim(), 3);
    assert_eq!(t.as_array::<i16, Ix3>().unwrap().shape(), &[2, 3, 4]);
}

#[test]
fn read_only_never_becomes_mutable() {
    let mut shared = TensorView::from_arc_array(ArcArray::from_vec(vec![1i32, 2, 3])).unwrap();
    assert!(matches!(
        shared.as_array_mut::<i32, Ix1>(),
        Err(Error::ReadOnly(_))
    ));
    let a = array![1i32, 2, 3];
    TensorView::with_array_view(a.view(), |t| {
        let mut t = t.clone();
        assert!(matches!(
            t.as_array_mut::<i32, Ix1>(),
            Err(Error::ReadOnly(_))
        ));
    })
    .unwrap();
    // Read-only survives DLPack.
    let mut back = TensorView::from_dlpack_versioned(
        TensorView::from_ndarray(a)
            .unwrap()
            .into_read_only()
            .to_dlpack_versioned(),
    )
    .unwrap();
    assert!(matches!(
        ArrayViewMut::<i32, Ix1>::try_from(&mut back),
        Err(Error::ReadOnly(_))
    ));
}

#[test]
fn shared_handles_block_mutable_views() {
    let mut t = TensorView::from_ndarray(array![1u64, 2]).unwrap();
    let other = t.clone();
    assert_eq!(
        t.as_array_mut::<u64, Ix1>().unwrap_err(),
        Error::NotUnique(1)
    );
    drop(other);
    let exported = t.to_dlpack_versioned();
    assert_eq!(
        t.as_array_mut::<u64, Ix1>().unwrap_err(),
        Error::NotUnique(1)
    );
    drop(exported);
    assert!(t.as_array_mut::<u64, Ix1>().is_ok());
}

#[test]
fn overlapping_layouts_never_become_mutable() {
    let mut a = array![1i32, 2, 3];
    TensorView::with_array_view_mut(a.view_mut(), |t| {
        let mut b = t.broadcast_to(&[2, 3]).unwrap();
        drop(std::mem::replace(
            t,
            TensorView::from_vec(vec![0u8], &[1]).unwrap(),
        ));
        assert_eq!(b.owner().strong_count(), 1);
        assert!(matches!(
            b.as_array_mut::<i32, Ix2>(),
            Err(Error::Overlapping)
        ));
        assert!(b.as_array::<i32, Ix2>().is_ok());
    })
    .unwrap();
}

#[test]
fn misaligned_data_is_refused() {
    let bytes = TensorView::from_vec(vec![0u8; 17], &[17]).unwrap();
    let odd = bytes
        .slice(0, dlbridge::SliceArg::range(1, 17))
        .unwrap()
        .reinterpret(DType::F32)
        .unwrap();
    assert_eq!(odd.shape(), &[4]);
    assert_eq!(odd.data_ptr() as usize % 4, 1);
    let e = odd.as_array::<f32, Ix1>().unwrap_err();
    assert!(matches!(e, Error::Misaligned { align: 4, .. }), "{e:?}");
    assert!(matches!(
        odd.to_owned_array::<f32, Ix1>(),
        Err(Error::Misaligned { .. })
    ));
    drop(bytes);
    let mut odd = odd;
    assert!(matches!(
        odd.as_array_mut::<f32, Ix1>(),
        Err(Error::Misaligned { .. })
    ));
}

#[test]
fn device_memory_is_refused() {
    let mut host = vec![0f32; 8];
    let mut parts = Parts::contiguous(host.as_mut_ptr().cast(), vec![2, 4], DType::F32);
    parts.device = Device {
        kind: DeviceType::CUDA,
        id: 0,
    };
    // SAFETY: the Vec owned by the owner provides the 32 bytes described; nothing is read.
    let mut t = unsafe { TensorView::from_parts(parts, Owner::new(host)) }.unwrap();
    assert!(matches!(
        t.as_array::<f32, Ix2>(),
        Err(Error::UnsupportedDevice { .. })
    ));
    assert!(matches!(
        t.as_array_mut::<f32, Ix2>(),
        Err(Error::UnsupportedDevice { .. })
    ));
    assert!(matches!(
        t.to_owned_array::<f32, Ix2>(),
        Err(Error::UnsupportedDevice { .. })
    ));
}

#[test]
fn invalid_bool_bytes_are_refused() {
    let t = TensorView::from_vec(vec![0u8, 1, 2], &[3])
        .unwrap()
        .reinterpret(DType::BOOL)
        .unwrap();
    assert!(matches!(
        t.as_array::<bool, Ix1>(),
        Err(Error::InvalidBool { index: 2, byte: 2 })
    ));
    let ok = TensorView::from_vec(vec![0u8, 1, 1], &[3])
        .unwrap()
        .reinterpret(DType::BOOL)
        .unwrap();
    assert_eq!(
        ok.as_array::<bool, Ix1>().unwrap(),
        array![false, true, true]
    );
}

#[test]
fn flags_of_owned_conversions() {
    let t = TensorView::from_ndarray(array![1i8]).unwrap();
    assert_eq!(t.flags(), Flags::default());
    let copy = t.to_owned_array::<i8, Ix1>().unwrap();
    let t2 = TensorView::from_ndarray(copy).unwrap();
    assert!(!t2.is_copied());
    assert!(!t2.may_overlap(&t));
}

// ---------------------------------------------------------------------------------------------
// Property: random shapes, slices and axis orders read the same through ndarray and to_vec.

fn axis_slice(n: usize) -> impl Strategy<Value = (usize, usize, isize)> {
    (0..=n, 0..=n, prop_oneof![1isize..4, -3isize..0]).prop_map(|(a, b, step)| {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        (lo, hi, step)
    })
}

/// Shape, one `(start, stop, step)` per axis, and an axis order.
type Case = (Vec<usize>, Vec<(usize, usize, isize)>, Vec<usize>);

fn case() -> impl Strategy<Value = Case> {
    prop::collection::vec(0usize..6, 0..5).prop_flat_map(|shape| {
        let slices = shape.iter().map(|&n| axis_slice(n)).collect::<Vec<_>>();
        let order = Just((0..shape.len()).collect::<Vec<_>>()).prop_shuffle();
        (Just(shape), slices, order)
    })
}

proptest! {
    #[test]
    fn random_layouts_agree((shape, slices, order) in case()) {
        let n: usize = shape.iter().product();
        let full = Array::from_shape_vec(IxDyn(&shape), (0..n as i32).collect()).unwrap();
        let mut owned = full.clone();
        owned.slice_each_axis_inplace(|ax| {
            let (lo, hi, step) = slices[ax.axis.index()];
            Slice::new(lo as isize, Some(hi as isize), step)
        });
        let owned = owned.permuted_axes(order.clone());
        let expected: Vec<i32> = owned.iter().copied().collect();

        // Borrowed: the same slicing on a view of `full`.
        let view = full
            .slice_each_axis(|ax| {
                let (lo, hi, step) = slices[ax.axis.index()];
                Slice::new(lo as isize, Some(hi as isize), step)
            })
            .permuted_axes(order);
        TensorView::with_array_view(view.view(), |t| {
            prop_assert_eq!(t.to_vec::<i32>().unwrap(), expected.clone());
            prop_assert_eq!(t.as_array::<i32, IxDyn>().unwrap(), view.view());
            Ok(())
        }).unwrap()?;

        // Owned, then through DLPack.
        let ptr = owned.as_ptr();
        let t = TensorView::from_ndarray(owned.clone()).unwrap();
        let t = TensorView::from_dlpack_versioned(t.into_dlpack_versioned()).unwrap();
        prop_assert_eq!(t.to_vec::<i32>().unwrap(), expected.clone());
        let v = t.as_array::<i32, IxDyn>().unwrap();
        prop_assert_eq!(&v, &owned);
        if !expected.is_empty() {
            prop_assert_eq!(v.as_ptr(), t.data_ptr().cast::<i32>());
            prop_assert_eq!(v.strides(), owned.strides());
        }
        let _ = ptr;
        prop_assert_eq!(t.to_owned_array::<i32, IxDyn>().unwrap(), owned);
    }
}

#[test]
fn try_from_impls() {
    let a = array![[1.0f64, 2.0], [3.0, 4.0]];
    let t = TensorView::try_from(a.clone()).unwrap();
    let v = ArrayView::<f64, Ix2>::try_from(&t).unwrap();
    assert_eq!(v, a);
    assert!(ArrayView::<f64, Ix1>::try_from(&t).is_err());
}

#[test]
fn interleaved_but_disjoint_strides_are_writable() {
    // as_strided (numpy stride tricks): shape [2, 2], strides [6, 5] touches 0, 5, 6, 11.
    let t = TensorView::from_vec(vec![0i16; 12], &[12]).unwrap();
    let mut w = t.as_strided(&[2, 2], &[6, 5], 0).unwrap();
    drop(t);
    assert!(!w.has_internal_overlap());
    w.as_array_mut::<i16, Ix2>().unwrap().fill(1);
    assert!(matches!(
        w.as_array_mut::<i16, Ix1>(),
        Err(Error::DimensionMismatch { .. })
    ));
    let all = w.as_strided(&[12], &[1], 0).unwrap();
    let ones: Vec<usize> = (all.to_vec::<i16>().unwrap().iter().enumerate())
        .filter(|(_, &x)| x == 1)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(ones, vec![0, 5, 6, 11]);
}
