//! Safe code cannot reach undefined behaviour: one test per hole found by the soundness audits,
//! each written with the safe API only and run under Miri by the test command (Miri reports the
//! data race, the invalidated borrow or the invalid value each one used to produce).
#![cfg(feature = "ndarray")]

use dlbridge::{DType, Error, ManagedTensorVersioned, SliceArg, TensorView};
use ndarray::{s, ArcArray, Array2, Axis, Ix1, Ix2};

mod common;

// ------------------------------------------------------------------ uniqueness synchronises
/// Another thread reads through its handle and drops it; our write must happen after its read.
/// A relaxed count check (the old `strong_count() == 1`) lets Miri report a data race.
#[test]
fn unique_access_happens_after_other_handles_are_dropped() {
    let mut t = TensorView::from_vec(vec![1u32; 16], &[16]).unwrap();
    let shared = t.clone();
    let reader = std::thread::spawn(move || {
        let sum: u32 = shared.as_slice::<u32>().unwrap().iter().sum();
        drop(shared);
        sum
    });
    // Wait (without synchronising) for the other handle to go, as a careless caller would.
    while t.owner().strong_count() != 1 {
        std::thread::yield_now();
    }
    t.as_mut_slice::<u32>().unwrap()[0] = 7;
    assert_eq!(reader.join().unwrap(), 16);
}

/// The same for the decision to flag an export IS_COPIED (its consumer may then write).
#[test]
fn is_copied_exports_happen_after_other_handles_are_dropped() {
    let t = TensorView::from_vec(vec![1u8; 8], &[8])
        .unwrap()
        .to_contiguous(dlbridge::Order::C)
        .unwrap();
    let shared = t.clone();
    let reader = std::thread::spawn(move || shared.as_slice::<u8>().unwrap()[3]);
    while t.owner().strong_count() != 1 {
        std::thread::yield_now();
    }
    let managed = t.into_dlpack_versioned();
    assert_ne!(
        managed.flags() & 2,
        0,
        "a sole-owner copy goes out IS_COPIED"
    );
    let mut back = TensorView::from_dlpack_versioned(managed).unwrap();
    assert!(back.is_copied());
    // A foreign producer's memory is never lent mutably (not exclusive); write the way a
    // DLPack consumer would, through the pointer, after the reader is provably done.
    assert_eq!(reader.join().unwrap(), 1);
    // SAFETY: the reader thread has been joined; nothing else reaches the copy.
    unsafe { back.as_mut_slice_unchecked::<u8>() }.unwrap()[3] = 9;
}

// --------------------------------------------------- writable foreign aliases block slices
/// A writable export lets its consumer write at any time: no `&[T]` while it lives.
#[test]
fn no_shared_slice_while_a_writable_export_lives() {
    let t = TensorView::from_vec(vec![1.0f32, 2.0, 3.0], &[3]).unwrap();
    let export = t.to_dlpack_versioned();
    assert!(matches!(t.as_slice::<f32>(), Err(Error::ForeignWriter(1))));
    assert!(matches!(
        t.as_array::<f32, Ix1>(),
        Err(Error::ForeignWriter(1))
    ));
    // The consumer writes through its alias (as torch or numpy would).
    let raw = export.as_ptr();
    // SAFETY: the export is live and writable; its data pointer addresses 3 f32s.
    unsafe { *(*raw).dl_tensor.data.cast::<f32>() = 10.0 };
    // Copies read fine (through the pointer, no reference).
    assert_eq!(t.to_vec::<f32>().unwrap(), vec![10.0, 2.0, 3.0]);
    // No reference through the container behind the view either.
    assert!(t.owner().downcast_ref::<Vec<f32>>().is_none());
    drop(export);
    assert_eq!(t.as_slice::<f32>().unwrap(), &[10.0, 2.0, 3.0]);
    assert_eq!(t.owner().downcast_ref::<Vec<f32>>().unwrap()[0], 10.0);
    // Read-only exports do not count.
    let ro = t.clone().into_read_only().to_dlpack_versioned();
    assert!(t.as_slice::<f32>().is_ok());
    drop(ro);
    // The slices above might still live (the compiler knows, the counts cannot): writable
    // exports through a shared handle now go out read-only, and legacy ones are refused...
    assert!(matches!(t.to_dlpack_legacy(), Err(Error::SharedReaders)));
    let again = TensorView::from_dlpack_versioned(t.to_dlpack_versioned()).unwrap();
    assert!(again.is_read_only());
    drop(again);
    // ...until the view is given up as the only handle: then no slice of it can live.
    let legacy = TensorView::from_dlpack_legacy(t.into_dlpack_legacy().unwrap()).unwrap();
    assert!(!legacy.is_read_only());
}

/// An own export whose dims a faulty consumer rewrote (they point into the view's own dims)
/// comes back as an error, never as a view with an unchecked layout; the memory is released
/// once all the same.
#[test]
fn an_own_export_with_rewritten_dims_is_refused() {
    let (t, drops) = common::counted_read_only_tensor(vec![1u8; 6], &[2, 3]);
    for shape_or_stride in [0, 3] {
        let managed = t.to_dlpack_versioned();
        // SAFETY: a live export of ndim 2: shape and strides point to 2 i64s each. Writing
        // them breaks the DLPack contract on purpose.
        unsafe {
            let dl = &mut (*managed.as_ptr()).dl_tensor;
            *dl.shape.add(shape_or_stride % 2) = 1 << 40;
            *dl.strides.add(shape_or_stride / 3) = 1 << 40;
        }
        assert!(matches!(
            TensorView::from_dlpack_versioned(managed),
            Err(Error::UnsupportedTensor(_))
        ));
    }
    let legacy = t.to_dlpack_legacy();
    assert!(legacy.is_err(), "read-only memory");
    drop(t);
    assert_eq!(common::drops(&drops), 1);
}

/// The audit's time-of-check hole: a slice taken *before* the export. The export must not let
/// its consumer write under the slice, so it goes out read-only (torch: `Error::SharedReaders`).
#[test]
fn a_slice_taken_first_keeps_later_exports_read_only() {
    let t = TensorView::from_vec(vec![1u32, 2, 3], &[3]).unwrap();
    let slice = t.as_slice::<u32>().unwrap();
    let export = t.to_dlpack_versioned();
    let flags = dlpark::DlpackFlags::from_bits_retain(export.flags());
    assert!(flags.contains(dlpark::DlpackFlags::READ_ONLY));
    assert!(matches!(t.to_dlpack_legacy(), Err(Error::SharedReaders)));
    // A clone is no way around it: the mark is on the owner the clone shares.
    assert!(matches!(
        t.clone().to_dlpack_legacy(),
        Err(Error::SharedReaders)
    ));
    assert_eq!(slice, &[1, 2, 3]);
    drop(export);
    // An ndarray view, an Arrow buffer or `downcast_ref` mark the memory the same way.
    let u = TensorView::from_vec(vec![1u8; 4], &[4]).unwrap();
    assert!(u.owner().downcast_ref::<Vec<u8>>().is_some());
    assert!(matches!(u.to_dlpack_legacy(), Err(Error::SharedReaders)));
}

/// Slices and writable exports raced on several threads: whenever both succeed, the consumer's
/// writes and the slice's reads would race, which Miri reports. Either the slice is refused
/// (an alias lives) or the export is read-only (a slice may live).
#[test]
fn slices_and_writable_exports_raced_never_overlap() {
    let rounds = if cfg!(miri) { 4 } else { 300 };
    for _ in 0..rounds {
        let t = TensorView::from_vec(vec![0u64; 4], &[4]).unwrap();
        let (reader, writer) = (t.clone(), t.clone());
        drop(t);
        let reading = std::thread::spawn(move || match reader.as_slice::<u64>() {
            Ok(s) => s.iter().sum::<u64>(),
            Err(Error::ForeignWriter(_)) => 0,
            Err(e) => panic!("{e}"),
        });
        let writing = std::thread::spawn(move || {
            let export = writer.to_dlpack_versioned();
            let flags = dlpark::DlpackFlags::from_bits_retain(export.flags());
            if !flags.contains(dlpark::DlpackFlags::READ_ONLY) {
                // SAFETY: a live, writable export of 4 u64s: the consumer may write them.
                unsafe { *(*export.as_ptr()).dl_tensor.data.cast::<u64>() = 7 };
            }
        });
        writing.join().unwrap();
        let sum = reading.join().unwrap();
        assert!(sum == 0 || sum == 7);
    }
}

/// An own export that comes back (reclaimed) stops counting as a foreign alias.
#[test]
fn a_reclaimed_export_is_no_longer_a_foreign_writer() {
    let t = TensorView::from_vec(vec![5u16; 4], &[4]).unwrap();
    let back = TensorView::from_dlpack_versioned(t.to_dlpack_versioned()).unwrap();
    assert!(
        back.owner().ptr_eq(t.owner()),
        "recognised as our own export"
    );
    assert_eq!(t.owner().writable_exports(), 0);
    assert!(back.as_slice::<u16>().is_ok());
}

/// Export handles count a writable alias in the same atomic word as the handle itself: exports
/// made, reclaimed and deleted on several threads at once leave both counts exact, the memory
/// is released exactly once, after the last handle, and the final writer synchronises with all
/// of them (Miri reports a race or a use after free otherwise).
#[test]
fn exports_on_many_threads_give_back_every_handle_and_alias() {
    let (mut t, drops) = common::counted_tensor(vec![1u32; 8], &[8]);
    let rounds = if cfg!(miri) { 3 } else { 200 };
    let workers: Vec<_> = (0..3)
        .map(|k| {
            let v = t.clone();
            std::thread::spawn(move || {
                for i in 0..rounds {
                    let writable = v.to_dlpack_versioned();
                    let read_only = v.clone().into_read_only().to_dlpack_versioned();
                    let legacy = v.to_dlpack_legacy().unwrap();
                    assert!(v.owner().writable_exports() >= 2);
                    if (i + k) % 2 == 0 {
                        // Reclaimed: the alias goes, the handle lives on in `back`.
                        let back = TensorView::from_dlpack_versioned(writable).unwrap();
                        assert!(back.owner().ptr_eq(v.owner()));
                        drop((back, legacy, read_only));
                    } else {
                        // Deleted by another thread, as a consumer may.
                        std::thread::spawn(move || drop((writable, legacy)))
                            .join()
                            .unwrap();
                        drop(read_only);
                    }
                }
                v.to_dlpack_versioned() // outlives this thread's view
            })
        })
        .collect();
    let leftovers: Vec<ManagedTensorVersioned> =
        workers.into_iter().map(|w| w.join().unwrap()).collect();
    assert_eq!(t.owner().writable_exports(), 3);
    assert_eq!(t.owner().strong_count(), 4);
    assert!(t.as_slice::<u32>().is_err(), "three consumers may write");
    drop(leftovers);
    assert_eq!(t.owner().writable_exports(), 0);
    assert!(t.owner().is_unique());
    t.as_mut_slice::<u32>().unwrap()[0] = 2;
    // The last handle is an export: the memory goes with its deleter, once.
    let last = t.into_dlpack_versioned();
    assert_eq!(common::drops(&drops), 0);
    drop(last);
    assert_eq!(common::drops(&drops), 1);
}

// ---------------------------------------------------- lent views cannot be widened (18.1)
#[test]
fn a_lent_column_cannot_reach_its_sibling() {
    let mut a = Array2::<u8>::zeros((2, 2));
    let mut cols: Vec<_> = a.axis_iter_mut(Axis(1)).collect();
    let mut col1 = cols.pop().unwrap();
    let col0 = cols.pop().unwrap();
    TensorView::with_array_view_mut(col0, |t| {
        assert!(
            t.extent().is_none(),
            "only the column's own elements are known"
        );
        assert!(matches!(
            t.as_strided(&[3], &[1], 0),
            Err(Error::OutOfBounds(_))
        ));
        // Views derived by slicing stay inside and keep working.
        let first = t.slice(0, SliceArg::range(0, 1)).unwrap();
        assert_eq!(first.to_vec::<u8>().unwrap(), vec![0]);
        assert!(first.as_strided(&[2], &[1], 0).is_err());
        drop(first);
        t.as_array_mut::<u8, Ix1>().unwrap()[1] = 4;
        col1[0] = 5; // the sibling is still written only through its own view
    })
    .unwrap();
    assert_eq!(a, ndarray::array![[0, 5], [4, 0]]);
}

#[test]
fn a_read_only_lent_view_cannot_read_a_siblings_gap() {
    let a = Array2::<u32>::from_shape_fn((3, 4), |(i, j)| (i * 4 + j) as u32);
    let strided = a.slice(s![.., ..;2]);
    TensorView::with_array_view(strided, |t| {
        assert!(t.as_strided(&[12], &[1], 0).is_err());
        assert_eq!(t.to_vec::<u32>().unwrap(), vec![0, 2, 4, 6, 8, 10]);
    })
    .unwrap();
    // A dense lent view keeps its sliding windows.
    TensorView::with_array_view(a.view(), |t| {
        let w = t.as_strided(&[10, 3], &[1, 1], 0).unwrap();
        assert_eq!(w.to_vec::<u32>().unwrap()[..6], [0, 1, 2, 1, 2, 3]);
    })
    .unwrap();
}

#[test]
fn gappy_arc_arrays_and_foreign_imports_cannot_be_widened() {
    let arc = ArcArray::from_shape_vec((2, 3), vec![1i16, 2, 3, 4, 5, 6]).unwrap();
    let column = arc.slice_move(s![.., 1..2]);
    let t = TensorView::from_arc_array(column).unwrap();
    assert!(t.as_strided(&[3], &[1], 0).is_err());
    // The same column through DLPack from a "foreign" producer (a view of ours that is no
    // longer recognised as our own because the export was altered).
    let base = TensorView::from_vec(vec![1i16, 2, 3, 4, 5, 6], &[2, 3]).unwrap();
    let col = base.slice(1, SliceArg::range(1, 2)).unwrap();
    let managed = col.to_dlpack_versioned();
    let raw = managed.into_raw();
    // SAFETY: a live managed tensor we own; clearing manager_ctx makes it look foreign, and
    // the deleter does not read it.
    unsafe { (*raw).manager_ctx = std::ptr::null_mut() };
    // SAFETY: handed back to a handle, which deletes it once.
    let foreign = TensorView::from_dlpack_versioned(unsafe {
        ManagedTensorVersioned::from_raw(raw).unwrap()
    })
    .unwrap();
    assert!(!foreign.owner().ptr_eq(base.owner()));
    assert!(foreign.extent().is_none());
    assert!(foreign.as_strided(&[5], &[1], 0).is_err());
    // A dense foreign import is bounded by its own bytes.
    let dense = TensorView::from_dlpack_versioned({
        let raw = base.to_dlpack_versioned().into_raw();
        // SAFETY: as above.
        unsafe { (*raw).manager_ctx = std::ptr::null_mut() };
        // SAFETY: as above.
        unsafe { ManagedTensorVersioned::from_raw(raw).unwrap() }
    })
    .unwrap();
    assert!(dense.extent().is_some());
    let windows = dense.as_strided(&[2, 2], &[1, 1], 3).unwrap();
    assert_eq!(windows.to_vec::<i16>().unwrap(), vec![4, 5, 5, 6]);
    assert!(dense.as_strided(&[2, 2], &[1, 1], 4).is_err()); // one past the producer's end
}

// -------------------------------------------- bool memory is never written as bytes (18.2)
#[test]
fn reinterpreted_bools_cannot_be_written() {
    let mut t = TensorView::from_vec(vec![false; 4], &[4])
        .unwrap()
        .reinterpret(DType::U8)
        .unwrap();
    assert!(matches!(t.as_mut_slice::<u8>(), Err(Error::NotExclusive)));
    assert!(t.as_array_mut::<u8, Ix1>().is_err());
    assert_eq!(t.as_slice::<u8>().unwrap(), &[0, 0, 0, 0]); // reading is fine
    let b = t.owner().downcast_ref::<Vec<bool>>().unwrap()[0];
    assert!(!b);

    let mut arr = ndarray::Array1::from(vec![true, false]);
    TensorView::with_array_view_mut(arr.view_mut(), |t| {
        let mut bytes = t.reinterpret(DType::I8).unwrap();
        assert!(bytes.as_mut_slice::<i8>().is_err());
        drop(bytes);
        // The bool view itself stays writable with valid values.
        t.as_mut_slice::<bool>().unwrap()[1] = true;
    })
    .unwrap();
    assert_eq!(arr.to_vec(), vec![true, true]);

    let mut boxed = TensorView::from_boxed_slice(vec![true; 2].into_boxed_slice(), &[2])
        .unwrap()
        .reinterpret(DType::U8)
        .unwrap();
    assert!(boxed.as_mut_slice::<u8>().is_err());
    // Same itemsize, same type: nothing changes.
    let mut same = TensorView::from_vec(vec![true], &[1]).unwrap();
    same = same.reinterpret(DType::BOOL).unwrap();
    assert!(same.as_mut_slice::<bool>().is_ok());
}

// --------------------------------------------------------- empty ndarray views (18.3)
#[test]
fn empty_views_slice_like_ndarrays() {
    let e = TensorView::from_vec(Vec::<u64>::new(), &[0, 5]).unwrap();
    let a = e.as_array::<u64, Ix2>().unwrap();
    let b = a.slice(s![.., 1..2]);
    assert_eq!(b.shape(), &[0, 1]);
    let mut e = e;
    let mut m = e.as_array_mut::<u64, Ix2>().unwrap();
    let c = m.slice_mut(s![.., 3..]);
    assert_eq!(c.shape(), &[0, 2]);
    // Shapes whose non-empty extents overflow are refused, as numpy does.
    assert!(matches!(
        TensorView::from_vec(Vec::<u8>::new(), &[0, usize::MAX]),
        Err(Error::Overflow(_))
    ));
    assert!(TensorView::from_vec(Vec::<u8>::new(), &[0, isize::MAX as usize]).is_ok());
}

// ------------------------------------------------------ extreme strides and steps (18.4)
#[test]
fn extreme_strides_and_steps_are_typed_errors() {
    let t = TensorView::from_vec(vec![1u8, 2, 3], &[3]).unwrap();
    assert!(matches!(
        t.as_strided(&[1], &[isize::MIN], 0),
        Err(Error::Overflow(_))
    ));
    assert!(t.as_strided(&[1], &[isize::MAX], 0).is_ok()); // extent 1: reaches one element
    let step = SliceArg {
        start: None,
        stop: None,
        step: isize::MIN,
    };
    assert!(matches!(
        t.slice(0, step),
        Err(Error::InvalidStep(isize::MIN))
    ));
    let step = SliceArg {
        start: None,
        stop: None,
        step: isize::MIN + 1,
    };
    assert_eq!(t.slice(0, step).unwrap().to_vec::<u8>().unwrap(), vec![3]);
    let wide = TensorView::from_vec(vec![0u32; 2], &[2]).unwrap();
    assert!(wide.as_strided(&[1], &[isize::MAX / 2], 0).is_err()); // bytes overflow
}

// ------------------------------------------- invalid values of element types other than bool
/// An element type with invalid bit patterns other than `bool` (outside `Element`'s contract,
/// which reserves `ANY_BIT_PATTERN = false` for bool) gets no unchecked slice: typed access
/// refuses it instead of lending values nobody checked.
#[test]
fn non_bool_element_types_with_invalid_values_are_refused() {
    #[derive(Clone, Copy)]
    struct NonZero(#[allow(dead_code)] u8);
    // SAFETY: size and layout match U8; `ANY_BIT_PATTERN = false` for a non-bool type is
    // deliberately outside the contract, to show that typed access refuses it.
    unsafe impl dlbridge::Element for NonZero {
        const DTYPE: DType = DType::U8;
        const ANY_BIT_PATTERN: bool = false;
    }
    let t = TensorView::from_vec(vec![0u8, 2, 0], &[3]).unwrap();
    assert!(matches!(
        t.as_slice::<NonZero>(),
        Err(Error::UnsupportedDtype { .. })
    ));
    assert!(matches!(
        t.to_vec::<NonZero>(),
        Err(Error::UnsupportedDtype { .. })
    ));
}
