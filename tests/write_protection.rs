//! Write protection: a read-only `TensorView` can never be written through any safe API, on
//! any path (core views, DLPack versioned and legacy, ndarray, Arrow, tch), and writable
//! views are writable only while unique.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use dlbridge::ffi::{
    DLDataType, DLDataTypeCode, DLDevice, DLDeviceType, DLManagedTensorVersioned, DLPackVersion,
    DLTensor,
};
use dlbridge::{DType, Error, Flags, ManagedTensorVersioned, Order, Owner, SliceArg, TensorView};

const READ_ONLY: u64 = 1;

static DATA: [i32; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

/// Every way the core makes a read-only view.
fn read_only_sources() -> Vec<(&'static str, TensorView)> {
    let arc: Arc<[i32]> = (0..12).collect();
    let mut out = vec![
        ("static", TensorView::from_static(&DATA, &[3, 4]).unwrap()),
        (
            "arc slice",
            TensorView::from_arc_slice(arc, &[3, 4]).unwrap(),
        ),
        (
            "into_read_only",
            TensorView::from_vec((0..12).collect::<Vec<i32>>(), &[3, 4])
                .unwrap()
                .into_read_only(),
        ),
    ];
    let ro = out[2].1.clone();
    out.push((
        "versioned round trip",
        TensorView::from_dlpack_versioned(ro.to_dlpack_versioned()).unwrap(),
    ));
    out.push(("foreign READ_ONLY", foreign_read_only()));
    out
}

/// Every derived view of a read-only view.
fn derived(t: &TensorView) -> Vec<(&'static str, TensorView)> {
    vec![
        ("clone", t.clone()),
        ("slice", t.slice(1, SliceArg::step(-2)).unwrap()),
        ("select", t.select(0, 1).unwrap()),
        ("permute", t.permute(&[1, 0]).unwrap()),
        ("transpose", t.transpose().unwrap()),
        ("reshape", t.reshape(&[4, 3]).unwrap()),
        ("broadcast", t.broadcast_to(&[2, 3, 4]).unwrap()),
        ("unsqueeze", t.unsqueeze(0).unwrap()),
        ("squeeze", t.unsqueeze(0).unwrap().squeeze()),
        ("as_strided", t.as_strided(&[2, 2], &[1, 1], 0).unwrap()),
        ("reinterpret", t.reinterpret(DType::U32).unwrap()),
        (
            "versioned",
            TensorView::from_dlpack_versioned(t.to_dlpack_versioned()).unwrap(),
        ),
    ]
}

fn assert_unwritable(name: &str, t: &TensorView) {
    assert!(t.is_read_only(), "{name}: lost the read-only flag");
    let mut solo = t.clone();
    let expect_ro = |r: Result<(), Error>| {
        assert!(matches!(r, Err(Error::ReadOnly(_))), "{name}: {r:?}");
    };
    expect_ro(solo.check_unique_writable());
    expect_ro(solo.as_mut_slice::<i32>().map(|_| ()));
    expect_ro(solo.as_mut_slice::<u32>().map(|_| ()));
    expect_ro(t.to_dlpack_legacy().map(|_| ()));
    let m = t.to_dlpack_versioned();
    assert_eq!(
        m.flags() & READ_ONLY,
        READ_ONLY,
        "{name}: export lost READ_ONLY"
    );
    let back = TensorView::from_dlpack_versioned(m).unwrap();
    assert!(back.is_read_only(), "{name}: re-import is writable");
    assert_eq!(back.data_ptr(), t.data_ptr());
    // Even as the only handle left, a read-only view stays read-only.
    drop(solo);
    let mut only = back;
    expect_ro(only.as_mut_slice::<i32>().map(|_| ()));
}

#[test]
fn read_only_views_refuse_every_mutable_access() {
    for (name, src) in read_only_sources() {
        assert_unwritable(name, &src);
        for (how, v) in derived(&src) {
            assert_unwritable(&format!("{name} / {how}"), &v);
        }
    }
}

#[test]
fn copies_of_read_only_views_are_writable_and_independent() {
    for (name, src) in read_only_sources() {
        let before = src.to_vec::<i32>().unwrap();
        for order in [Order::C, Order::F] {
            let mut c = src.to_contiguous(order).unwrap();
            assert!(!c.is_read_only() && c.is_copied(), "{name}");
            assert_ne!(c.data_ptr(), src.data_ptr());
            if order == Order::C {
                c.as_mut_slice::<i32>().unwrap().fill(-1);
                assert!(c.to_dlpack_legacy().is_ok());
            }
        }
        assert_eq!(
            src.to_vec::<i32>().unwrap(),
            before,
            "{name}: a copy wrote through"
        );
    }
}

#[test]
fn writable_views_need_uniqueness() {
    let mut t = TensorView::from_vec(vec![1i64, 2, 3], &[3]).unwrap();
    t.as_mut_slice::<i64>().unwrap()[0] = 10;
    let export = t.to_dlpack_versioned();
    assert_eq!(export.flags() & READ_ONLY, 0);
    assert!(matches!(t.as_mut_slice::<i64>(), Err(Error::NotUnique(1))));
    let mut back = TensorView::from_dlpack_versioned(export).unwrap();
    assert!(!back.is_read_only());
    assert!(matches!(
        back.as_mut_slice::<i64>(),
        Err(Error::NotUnique(1))
    ));
    drop(t);
    back.as_mut_slice::<i64>().unwrap()[1] = 20;
    assert_eq!(back.to_vec::<i64>().unwrap(), vec![10, 20, 3]);
    // A derived view sees the same owner, so neither may write while both live.
    let view = back.slice(0, SliceArg::step(2)).unwrap();
    assert!(back.check_unique_writable().is_err() && view.check_unique_writable().is_err());
}

/// A foreign managed tensor flagged READ_ONLY, with a counted deleter.
struct Foreign {
    managed: DLManagedTensorVersioned,
    dims: [i64; 4],
    data: Vec<i32>,
    calls: &'static AtomicUsize,
}

unsafe extern "C" fn foreign_deleter(m: *mut DLManagedTensorVersioned) {
    // SAFETY: `manager_ctx` is the boxed `Foreign` built below, freed exactly once here.
    let ctx = unsafe { Box::from_raw((*m).manager_ctx.cast::<Foreign>()) };
    ctx.calls.fetch_add(1, SeqCst);
}

static FOREIGN_CALLS: AtomicUsize = AtomicUsize::new(0);

fn foreign_managed(flags: u64, calls: &'static AtomicUsize) -> ManagedTensorVersioned {
    let mut f = Box::new(Foreign {
        managed: DLManagedTensorVersioned {
            version: DLPackVersion { major: 1, minor: 3 },
            manager_ctx: std::ptr::null_mut(),
            deleter: Some(foreign_deleter),
            flags: dlpark::DlpackFlags::from_bits_retain(flags),
            dl_tensor: DLTensor {
                data: std::ptr::null_mut(),
                device: DLDevice {
                    device_type: DLDeviceType::CPU,
                    device_id: 0,
                },
                ndim: 2,
                dtype: DLDataType {
                    code: DLDataTypeCode::INT,
                    bits: 32,
                    lanes: 1,
                },
                shape: std::ptr::null_mut(),
                strides: std::ptr::null_mut(),
                byte_offset: 0,
            },
        },
        dims: [3, 4, 4, 1],
        data: (0..12).collect(),
        calls,
    });
    f.managed.dl_tensor.data = f.data.as_mut_ptr().cast();
    f.managed.dl_tensor.shape = f.dims.as_mut_ptr();
    // SAFETY: `dims` has 4 entries: shape then strides.
    f.managed.dl_tensor.strides = unsafe { f.dims.as_mut_ptr().add(2) };
    let raw = Box::into_raw(f);
    // SAFETY: `raw` is live and owned; the context points back to the box the deleter frees.
    unsafe {
        (*raw).managed.manager_ctx = raw.cast();
        ManagedTensorVersioned::from_raw(std::ptr::addr_of_mut!((*raw).managed)).unwrap()
    }
}

fn foreign_read_only() -> TensorView {
    TensorView::from_dlpack_versioned(foreign_managed(READ_ONLY, &FOREIGN_CALLS)).unwrap()
}

#[test]
fn foreign_read_only_flag_is_honoured_and_deleted_once() {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let t = TensorView::from_dlpack_versioned(foreign_managed(READ_ONLY, &CALLS)).unwrap();
    assert_unwritable("foreign", &t);
    let w = TensorView::from_dlpack_versioned(foreign_managed(0, &CALLS)).unwrap();
    assert!(!w.is_read_only());
    let mut w2 = w;
    // Foreign memory is never lent `&mut` by the safe API; the caller may vouch for it.
    assert!(matches!(w2.as_mut_slice::<i32>(), Err(Error::NotExclusive)));
    // SAFETY: the foreign producer here is test-local and touches nothing while `w2` writes.
    unsafe { w2.as_mut_slice_unchecked::<i32>() }.unwrap()[0] = 7; // unique and writable
    drop((t, w2));
    assert_eq!(CALLS.load(SeqCst), 2);
}

#[test]
fn borrowed_dltensor_import_keeps_read_only() {
    let data: Vec<u8> = vec![1, 2, 3, 4];
    let mut shape = [4i64];
    let mut strides = [1i64];
    let tensor = DLTensor {
        data: data.as_ptr() as *mut _,
        device: DLDevice {
            device_type: DLDeviceType::CPU,
            device_id: 0,
        },
        ndim: 1,
        dtype: DLDataType {
            code: DLDataTypeCode::UINT,
            bits: 8,
            lanes: 1,
        },
        shape: shape.as_mut_ptr(),
        strides: strides.as_mut_ptr(),
        byte_offset: 0,
    };
    let flags = Flags::default().with_read_only(true);
    // SAFETY: `data` outlives the view (the owner holds a clone of it, the original is only
    // read) and is never written.
    let t = unsafe { TensorView::from_dltensor(&tensor, flags, Owner::new(data.clone())) }.unwrap();
    let mut t2 = t.clone();
    drop(t);
    assert!(matches!(t2.as_mut_slice::<u8>(), Err(Error::ReadOnly(_))));
    assert!(t2.to_dlpack_legacy().is_err());
}

#[cfg(feature = "ndarray")]
mod ndarray_paths {
    use super::*;
    use ndarray::{ArcArray, Ix2, IxDyn};

    #[test]
    fn as_array_mut_refused_for_read_only() {
        for (name, src) in read_only_sources() {
            for (how, v) in std::iter::once(("itself", src.clone())).chain(derived(&src)) {
                let mut solo = v;
                let r = solo.as_array_mut::<i32, IxDyn>().map(|_| ());
                assert!(
                    matches!(r, Err(Error::ReadOnly(_))),
                    "{name} / {how}: {r:?}"
                );
                // Reading is fine and sees the same memory.
                let a = solo.as_array::<i32, IxDyn>();
                assert!(a.is_ok() || how == "reinterpret", "{name} / {how}");
            }
        }
    }

    #[test]
    fn arc_array_views_are_read_only() {
        let a = ArcArray::from_shape_vec((2, 3), vec![1i32, 2, 3, 4, 5, 6]).unwrap();
        let mut t = TensorView::from_arc_array(a.clone()).unwrap();
        drop(a);
        assert!(matches!(
            t.as_array_mut::<i32, Ix2>().map(|_| ()),
            Err(Error::ReadOnly(_))
        ));
        assert_unwritable("arc array", &t);
    }

    #[test]
    fn shared_owned_array_needs_uniqueness() {
        let mut t = TensorView::from_ndarray(ndarray::Array2::<i32>::zeros((2, 2))).unwrap();
        let other = t.clone();
        assert!(matches!(
            t.as_array_mut::<i32, Ix2>().map(|_| ()),
            Err(Error::NotUnique(1))
        ));
        drop(other);
        t.as_array_mut::<i32, Ix2>().unwrap()[[0, 1]] = 5;
        assert_eq!(t.to_vec::<i32>().unwrap(), vec![0, 5, 0, 0]);
    }
}

#[cfg(feature = "arrow")]
mod arrow_paths {
    use super::*;
    use dlbridge::CopyPolicy;

    #[test]
    fn arrow_imports_are_read_only() {
        let mut writable = TensorView::from_vec((0..12).collect::<Vec<i32>>(), &[3, 4]).unwrap();
        let col = writable.to_arrow(&Default::default()).unwrap();
        let buf = writable.to_arrow_buffer(CopyPolicy::Never).unwrap();
        let imports = [
            (
                "fixed_shape_tensor",
                TensorView::from_arrow(&col.field, col.array.as_ref(), &Default::default())
                    .unwrap(),
            ),
            (
                "array data",
                TensorView::from_arrow_data(&col.array.to_data(), &Default::default()).unwrap(),
            ),
            (
                "buffer",
                TensorView::from_arrow_buffer(&buf, DType::I32, &[3, 4], CopyPolicy::Never)
                    .unwrap(),
            ),
            (
                "owned arrow buffer",
                TensorView::from_arrow_buffer(
                    &arrow_buffer::Buffer::from_vec((0..12).collect::<Vec<i32>>()),
                    DType::I32,
                    &[3, 4],
                    CopyPolicy::Never,
                )
                .unwrap(),
            ),
        ];
        for (name, t) in &imports {
            assert_unwritable(name, t);
            for (how, v) in derived(t) {
                assert_unwritable(&format!("arrow {name} / {how}"), &v);
            }
        }
        // The writable source is no longer unique while Arrow holds it.
        assert!(matches!(
            writable.as_mut_slice::<i32>().map(|_| ()),
            Err(Error::NotUnique(_))
        ));
        drop((col, buf, imports));
        writable.as_mut_slice::<i32>().unwrap()[0] = 1;
    }

    #[cfg(feature = "ndarray")]
    #[test]
    fn arrow_import_refuses_ndarray_mut() {
        let t = TensorView::from_vec(vec![1.0f64, 2.0], &[2]).unwrap();
        let buf = t.to_arrow_buffer(CopyPolicy::Never).unwrap();
        drop(t);
        let mut v =
            TensorView::from_arrow_buffer(&buf, DType::F64, &[2], CopyPolicy::Never).unwrap();
        drop(buf);
        assert!(matches!(
            v.as_array_mut::<f64, ndarray::Ix1>().map(|_| ()),
            Err(Error::ReadOnly(_))
        ));
    }
}

#[cfg(feature = "tch")]
mod tch_paths {
    use super::*;
    use dlbridge::{CopyPolicy, ManagedTensorVersioned};

    #[test]
    fn tch_from_dlpack_refuses_read_only_and_releases() {
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        let r = ManagedTensorVersioned::into_tch(foreign_managed(READ_ONLY, &CALLS)).map(|_| ());
        assert!(matches!(r, Err(Error::ReadOnly(_))), "{r:?}");
        assert_eq!(CALLS.load(SeqCst), 1, "the refused tensor was deleted once");
        for (name, src) in read_only_sources() {
            let handles = src.owner().strong_count();
            let r = ManagedTensorVersioned::into_tch(src.to_dlpack_versioned()).map(|_| ());
            assert!(matches!(r, Err(Error::ReadOnly(_))), "{name}: {r:?}");
            assert_eq!(src.owner().strong_count(), handles, "{name}: export leaked");
        }
        // Writable exports are accepted.
        let w = TensorView::from_vec(vec![1i32, 2], &[2]).unwrap();
        let t = ManagedTensorVersioned::into_tch(w.to_dlpack_versioned()).unwrap();
        assert_eq!(t.data_ptr() as *const u8, w.data_ptr());
    }

    #[test]
    fn to_tch_refuses_read_only() {
        for (name, src) in read_only_sources() {
            for (how, v) in std::iter::once(("itself", src.clone())).chain(derived(&src)) {
                let r = v.to_tch().map(|_| ());
                assert!(
                    matches!(r, Err(Error::ReadOnly(_))),
                    "{name} / {how}: {r:?}"
                );
            }
            // An explicit copy is allowed, and writing it leaves the source alone.
            let before = src.to_vec::<i32>().unwrap();
            let mut c = src.to_tch_with(CopyPolicy::IfNeeded).unwrap();
            assert_ne!(c.data_ptr() as *const u8, src.data_ptr());
            let _ = c.fill_(-1);
            assert_eq!(src.to_vec::<i32>().unwrap(), before, "{name}");
        }
    }
}
