//! DLPack ownership: every deleter runs exactly once, in every order of drops.

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dlbridge::ffi::{
    DLDataType, DLDataTypeCode, DLDevice, DLDeviceType, DLManagedTensor, DLManagedTensorVersioned,
    DLPackVersion, DLTensor,
};
use dlbridge::{
    DType, Error, ManagedTensorLegacy, ManagedTensorVersioned, Owner, Parts, TensorView,
};

mod common;

/// A writable f32 tensor whose owner counts its drops.
fn counted_tensor(values: Vec<f32>, shape: &[usize]) -> (TensorView, Arc<AtomicUsize>) {
    common::counted_tensor(values, shape)
}

#[test]
fn export_then_drop_runs_the_owner_release_once() {
    let (t, drops) = counted_tensor(vec![1.0, 2.0, 3.0], &[3]);
    let versioned = t.to_dlpack_versioned();
    let legacy = t.to_dlpack_legacy().unwrap();
    assert_eq!(t.owner().strong_count(), 3);
    drop(t);
    drop(versioned);
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(legacy);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn raw_pointer_handoff_and_manual_deleter_call() {
    let (t, drops) = counted_tensor(vec![0.0; 4], &[2, 2]);
    let raw = t.into_dlpack_versioned().into_raw();
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    // SAFETY: `raw` is a live managed tensor we own; a C consumer would do exactly this.
    unsafe {
        let m = &*raw;
        assert_eq!((m.version.major, m.version.minor), (1, 3));
        assert_eq!(m.dl_tensor.ndim, 2);
        assert_eq!(*m.dl_tensor.shape.add(1), 2);
        assert_eq!(*m.dl_tensor.strides, 2);
        (m.deleter.unwrap())(raw);
    }
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn import_keeps_owner_until_last_view_in_any_order() {
    for order in 0..3 {
        let (t, drops) = counted_tensor((0..6).map(|x| x as f32).collect(), &[2, 3]);
        let addr = t.data_ptr();
        let imported =
            TensorView::from_dlpack_versioned(t.transpose().unwrap().to_dlpack_versioned())
                .unwrap();
        let view = imported.select(0, 1).unwrap();
        assert_eq!(imported.data_ptr(), addr);
        assert_eq!(view.to_vec::<f32>().unwrap(), vec![1.0, 4.0]);
        let mut handles = [Some(t), Some(imported), Some(view)];
        for k in 0..3 {
            assert_eq!(drops.load(Ordering::SeqCst), 0);
            handles[(k + order) % 3] = None;
        }
        assert_eq!(drops.load(Ordering::SeqCst), 1, "order {order}");
    }
}

#[test]
fn own_exports_come_back_as_the_same_owner() {
    let (t, drops) = counted_tensor(vec![1.0; 8], &[8]);
    let back = TensorView::from_dlpack_versioned(t.to_dlpack_versioned()).unwrap();
    // Recognised by the address of a private static in `manager_ctx`: sturdy under inlining
    // and LTO, and checked under Miri too (function-pointer identity was neither).
    assert!(back.owner().ptr_eq(t.owner()));
    let legacy = TensorView::from_dlpack_legacy(t.to_dlpack_legacy().unwrap()).unwrap();
    assert!(legacy.owner().ptr_eq(t.owner()));
    drop((t, back, legacy));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn flags_travel_both_ways() {
    let (t, _) = counted_tensor(vec![1.0; 2], &[2]);
    let ro = t.clone().into_read_only();
    let m = ro.to_dlpack_versioned();
    assert_eq!(m.flags() & 1, 1);
    let back = TensorView::from_dlpack_versioned(m).unwrap();
    assert!(back.is_read_only());
    assert!(matches!(ro.to_dlpack_legacy(), Err(Error::ReadOnly(_))));
    let copy = t.to_contiguous(dlbridge::Order::C).unwrap();
    // While another view of the copy lives, the export must not promise sole ownership.
    let shared = copy.to_dlpack_versioned();
    assert_eq!(shared.flags() & 2, 0);
    drop(shared);
    let m = copy.into_dlpack_versioned();
    assert_eq!(m.flags() & 2, 2);
    assert!(TensorView::from_dlpack_versioned(m).unwrap().is_copied());
}

#[test]
fn imports_are_not_lent_mutably() {
    // Two imports of the same foreign memory each hold one handle of their own owner: the
    // exclusivity rule, not the handle count, keeps them from handing out `&mut`.
    let _g = FOREIGN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let a = TensorView::from_dlpack_versioned(take(foreign_versioned(|_| {}))).unwrap();
    let mut col = a.select(1, 0).unwrap(); // contiguous
    drop(a);
    assert!(matches!(
        col.as_mut_slice::<u16>(),
        Err(Error::NotExclusive)
    ));
    // The caller may take responsibility explicitly.
    // SAFETY: nothing else accesses this test-local foreign tensor.
    unsafe { col.as_mut_slice_unchecked::<u16>() }.unwrap()[0] = 9;
    assert_eq!(col.to_vec::<u16>().unwrap(), vec![9, 1, 2]);
    // Memory attached with `from_parts` (foreign until declared otherwise) is not exclusive.
    let mut buf = vec![0.0f32; 3];
    let parts = Parts::contiguous(buf.as_mut_ptr().cast(), vec![3], DType::F32);
    // SAFETY: `buf` outlives `own`, which is dropped right below.
    let mut own = unsafe { TensorView::from_parts(parts, Owner::new(())) }.unwrap();
    assert!(matches!(
        own.as_mut_slice::<f32>(),
        Err(Error::NotExclusive)
    ));
    drop(own);
    // A container handed over with `from_owner_mut` is.
    let (mut own, _) = counted_tensor(vec![0.0; 3], &[3]);
    own.as_mut_slice::<f32>().unwrap()[0] = 1.0;
    let mut vec_backed = TensorView::from_vec(vec![0.0f32; 3], &[3]).unwrap();
    vec_backed.as_mut_slice::<f32>().unwrap()[1] = 2.0;
    let mut back = TensorView::from_dlpack_versioned(vec_backed.into_dlpack_versioned()).unwrap();
    assert_eq!(back.as_mut_slice::<f32>().unwrap(), &[0.0, 2.0, 0.0]);
    let _ = &mut back;
}

// ---- A foreign producer, written as a C library would: a static deleter and a counter. ----

static FOREIGN_DELETES: AtomicUsize = AtomicUsize::new(0);

#[repr(C)]
struct ForeignVersioned {
    managed: DLManagedTensorVersioned,
    shape: [i64; 2],
    strides: [i64; 2],
    data: Vec<u16>,
}

unsafe extern "C" fn foreign_versioned_deleter(m: *mut DLManagedTensorVersioned) {
    // SAFETY: `m` is the first field of a boxed ForeignVersioned made by `foreign_versioned`.
    drop(unsafe { Box::from_raw(m.cast::<ForeignVersioned>()) });
    FOREIGN_DELETES.fetch_add(1, Ordering::SeqCst);
}

/// A foreign managed tensor; `edit` may corrupt its metadata before it is handed over.
fn foreign_versioned(edit: impl FnOnce(&mut ForeignVersioned)) -> *mut DLManagedTensorVersioned {
    let mut f = Box::new(ForeignVersioned {
        managed: DLManagedTensorVersioned {
            version: DLPackVersion { major: 1, minor: 3 },
            manager_ctx: std::ptr::null_mut(),
            deleter: Some(foreign_versioned_deleter),
            flags: dlpark::DlpackFlags::empty(),
            dl_tensor: DLTensor {
                data: SENTINEL.cast(),
                device: DLDevice {
                    device_type: DLDeviceType::CPU,
                    device_id: 0,
                },
                ndim: 2,
                dtype: DLDataType {
                    code: DLDataTypeCode::UINT,
                    bits: 16,
                    lanes: 1,
                },
                shape: SENTINEL.cast(),
                strides: SENTINEL.cast(),
                byte_offset: 0,
            },
        },
        shape: [3, 2],
        strides: [1, 3],
        data: (0..6).collect(),
    });
    // Fill the self-pointers after `edit` (which may null them) and only through the raw
    // pointer, so no later `&mut` invalidates them.
    edit(&mut f);
    let raw = Box::into_raw(f);
    // SAFETY: `raw` is a fresh, exclusively owned allocation; every access goes through it.
    unsafe {
        let t = &raw mut (*raw).managed.dl_tensor;
        if (*t).data == SENTINEL.cast() {
            (*t).data = (*raw).data.as_mut_ptr().cast::<c_void>();
        }
        if (*t).shape == SENTINEL.cast() {
            (*t).shape = (&raw mut (*raw).shape).cast::<i64>();
        }
        if (*t).strides == SENTINEL.cast() {
            (*t).strides = (&raw mut (*raw).strides).cast::<i64>();
        }
    }
    raw.cast()
}

/// Placeholder for "point at my own field", replaced after the edit.
const SENTINEL: *mut u8 = std::ptr::dangling_mut::<u8>().wrapping_add(7);

fn take(ptr: *mut DLManagedTensorVersioned) -> ManagedTensorVersioned {
    // SAFETY: `ptr` is a fresh foreign managed tensor handed over to us.
    unsafe { ManagedTensorVersioned::from_raw(ptr) }.unwrap()
}

/// Foreign tests share one counter: run them under one lock.
static FOREIGN_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn foreign_managed_tensor_import() {
    let _g = FOREIGN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let before = FOREIGN_DELETES.load(Ordering::SeqCst);
    let t = TensorView::from_dlpack_versioned(take(foreign_versioned(|_| {}))).unwrap();
    assert_eq!(t.shape(), &[3, 2]);
    assert!(t.is_f_contiguous());
    assert_eq!(t.to_vec::<u16>().unwrap(), vec![0, 3, 1, 4, 2, 5]);
    let row = t.select(0, 2).unwrap();
    drop(t);
    assert_eq!(FOREIGN_DELETES.load(Ordering::SeqCst), before);
    // Re-export the foreign tensor: the chain keeps the producer alive through our export.
    let again = row.to_dlpack_legacy().unwrap();
    drop(row);
    assert_eq!(FOREIGN_DELETES.load(Ordering::SeqCst), before);
    drop(again);
    assert_eq!(FOREIGN_DELETES.load(Ordering::SeqCst), before + 1);
}

#[test]
fn bad_foreign_metadata_is_refused_and_deleted_once() {
    let _g = FOREIGN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    type Edit = Box<dyn Fn(&mut ForeignVersioned)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("major version 2", Box::new(|f| f.managed.version.major = 2)),
        ("major version 0", Box::new(|f| f.managed.version.major = 0)),
        ("negative ndim", Box::new(|f| f.managed.dl_tensor.ndim = -1)),
        (
            "ndim too large",
            Box::new(|f| f.managed.dl_tensor.ndim = 1000),
        ),
        ("negative extent", Box::new(|f| f.shape[0] = -3)),
        (
            "overflowing shape",
            Box::new(|f| f.shape = [i64::MAX, i64::MAX]),
        ),
        (
            "overflowing stride",
            Box::new(|f| f.strides = [i64::MAX / 2, 1]),
        ),
        (
            "null shape",
            Box::new(|f| f.managed.dl_tensor.shape = std::ptr::null_mut()),
        ),
        (
            "null strides in 1.3",
            Box::new(|f| f.managed.dl_tensor.strides = std::ptr::null_mut()),
        ),
        (
            "null data",
            Box::new(|f| f.managed.dl_tensor.data = std::ptr::null_mut()),
        ),
        (
            "unknown dtype",
            Box::new(|f| f.managed.dl_tensor.dtype.code = DLDataTypeCode(99)),
        ),
        (
            "zero lanes",
            Box::new(|f| f.managed.dl_tensor.dtype.lanes = 0),
        ),
        (
            "bad bool bits",
            Box::new(|f| {
                f.managed.dl_tensor.dtype = DLDataType {
                    code: DLDataTypeCode::BOOL,
                    bits: 1,
                    lanes: 1,
                }
            }),
        ),
        (
            "address wraps",
            Box::new(|f| f.managed.dl_tensor.byte_offset = u64::MAX - 4),
        ),
    ];
    for (what, edit) in cases {
        let before = FOREIGN_DELETES.load(Ordering::SeqCst);
        let err = TensorView::from_dlpack_versioned(take(foreign_versioned(edit)));
        assert!(err.is_err(), "{what} was accepted");
        assert_eq!(
            FOREIGN_DELETES.load(Ordering::SeqCst),
            before + 1,
            "{what}: deleter count"
        );
    }
    let before = FOREIGN_DELETES.load(Ordering::SeqCst);
    let e = TensorView::from_dlpack_versioned(take(foreign_versioned(|f| {
        f.managed.version = DLPackVersion { major: 2, minor: 0 }
    })));
    assert_eq!(
        e.unwrap_err(),
        Error::VersionMismatch { major: 2, minor: 0 }
    );
    assert_eq!(FOREIGN_DELETES.load(Ordering::SeqCst), before + 1);
    // Both a negative extent and (DLPack 1.3) NULL strides: the shape's error is the one told.
    let e = TensorView::from_dlpack_versioned(take(foreign_versioned(|f| {
        f.shape[0] = -3;
        f.managed.dl_tensor.strides = std::ptr::null_mut();
    })));
    assert!(
        matches!(e, Err(Error::InvalidShape(ref m)) if m.contains("negative extent")),
        "{e:?}"
    );
    // Older minor versions may omit strides (compact row-major).
    let t = TensorView::from_dlpack_versioned(take(foreign_versioned(|f| {
        f.managed.version.minor = 1;
        f.managed.dl_tensor.strides = std::ptr::null_mut();
    })))
    .unwrap();
    assert_eq!(t.strides(), &[2, 1]);
    assert_eq!(t.to_vec::<u16>().unwrap(), vec![0, 1, 2, 3, 4, 5]);
}

#[test]
fn read_only_and_copied_foreign_flags() {
    let _g = FOREIGN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut t = TensorView::from_dlpack_versioned(take(foreign_versioned(|f| {
        f.managed.flags = dlpark::DlpackFlags::READ_ONLY | dlpark::DlpackFlags::IS_COPIED
    })))
    .unwrap();
    assert!(t.is_read_only() && t.is_copied());
    assert!(matches!(t.as_mut_slice::<u16>(), Err(Error::ReadOnly(_))));
    assert!(matches!(t.to_dlpack_legacy(), Err(Error::ReadOnly(_))));
}

#[test]
fn null_deleter_is_allowed() {
    static DATA: [u8; 3] = [7, 8, 9];
    let mut shape = [3i64];
    let mut strides = [1i64];
    let mut m = DLManagedTensor {
        dl_tensor: DLTensor {
            data: DATA.as_ptr() as *mut c_void,
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
        },
        manager_ctx: std::ptr::null_mut(),
        deleter: None,
    };
    // SAFETY: `m`, its shape/strides and the static data outlive the imported view below.
    let handle = unsafe { ManagedTensorLegacy::from_raw(&mut m) }.unwrap();
    let t = TensorView::from_dlpack_legacy(handle).unwrap();
    assert_eq!(t.to_vec::<u8>().unwrap(), vec![7, 8, 9]);
    // SAFETY: a null pointer is refused before anything is read.
    let null = unsafe { ManagedTensorLegacy::from_raw(std::ptr::null_mut()) };
    assert!(null.is_none());
}

#[test]
fn views_cross_threads() {
    let (t, drops) = counted_tensor((0..1000).map(|x| x as f32).collect(), &[1000]);
    let handles: Vec<_> = (0..4)
        .map(|k| {
            let m = t
                .slice(0, dlbridge::SliceArg::range(k * 250, (k + 1) * 250))
                .unwrap()
                .to_dlpack_versioned();
            std::thread::spawn(move || {
                let v = TensorView::from_dlpack_versioned(m).unwrap();
                v.to_vec::<f32>().unwrap().iter().sum::<f32>()
            })
        })
        .collect();
    drop(t);
    let total: f32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, (0..1000).sum::<i32>() as f32);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

/// A foreign legacy managed tensor over `data` (no deleter: `data` outlives it).
fn foreign_legacy(data: &mut [u8; 3], shape: &mut [i64; 1]) -> DLManagedTensor {
    DLManagedTensor {
        dl_tensor: DLTensor {
            data: data.as_mut_ptr().cast::<c_void>(),
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
            strides: std::ptr::null_mut(),
            byte_offset: 0,
        },
        manager_ctx: std::ptr::null_mut(),
        deleter: None,
    }
}

#[test]
fn foreign_legacy_imports_are_read_only_unless_asked() {
    let (mut data, mut shape) = ([1u8, 2, 3], [3i64]);
    let mut m = foreign_legacy(&mut data, &mut shape);
    // SAFETY: `m` and its arrays outlive the views below.
    let t =
        TensorView::from_dlpack_legacy(unsafe { ManagedTensorLegacy::from_raw(&mut m) }.unwrap())
            .unwrap();
    assert!(t.is_read_only());
    assert!(matches!(t.to_dlpack_legacy(), Err(Error::ReadOnly(_))));
    drop(t);
    let mut m = foreign_legacy(&mut data, &mut shape);
    // SAFETY: as above.
    let w = TensorView::from_dlpack_legacy_writable(
        unsafe { ManagedTensorLegacy::from_raw(&mut m) }.unwrap(),
    )
    .unwrap();
    assert!(!w.is_read_only());
    assert_eq!(w.to_vec::<u8>().unwrap(), vec![1, 2, 3]);
}

#[test]
fn a_reclaimed_export_is_copied_only_if_the_export_was_the_sole_handle() {
    let copy = TensorView::from_vec(vec![1.0f32, 2.0], &[2])
        .unwrap()
        .to_contiguous(dlbridge::Order::C)
        .unwrap();
    // Still a handle of its own: the export shares the memory with `copy`.
    assert!(copy.is_copied());
    let back = TensorView::from_dlpack_versioned(copy.to_dlpack_versioned()).unwrap();
    assert!(
        !back.is_copied(),
        "a view sharing memory with `copy` claims to be a fresh copy"
    );
    drop(back);
    // Moved into the export: the consumer is the sole owner of a fresh copy.
    let back = TensorView::from_dlpack_versioned(copy.into_dlpack_versioned()).unwrap();
    assert!(back.is_copied());
    // Legacy exports carry no flags: never copied.
    let copy = TensorView::from_vec(vec![1u8], &[1])
        .unwrap()
        .to_contiguous(dlbridge::Order::C)
        .unwrap();
    let back = TensorView::from_dlpack_legacy(copy.to_dlpack_legacy().unwrap()).unwrap();
    assert!(!back.is_copied());
}

#[test]
fn std_conversion_traits() {
    use dlbridge::{DTypeCode, Device};
    let t = TensorView::from(vec![1i32, 2, 3]);
    assert_eq!(t.shape(), &[3]);
    let managed = ManagedTensorVersioned::from(&t);
    let back = TensorView::try_from(managed).unwrap();
    assert_eq!(back.data_ptr(), t.data_ptr());
    let raw: DLDevice = Device::CPU.into();
    assert_eq!(Device::from(raw), Device::CPU);
    let code: DLDataType = DType::F32.into();
    assert_eq!(DType::try_from(code).unwrap(), DType::F32);
    assert_eq!("bfloat16".parse::<DType>().unwrap(), DType::BF16);
    assert!("float33".parse::<DType>().is_err());
    assert_eq!(DTypeCode::try_from(5u8).unwrap(), DTypeCode::Complex);
    assert!(matches!(
        DTypeCode::try_from(200u8),
        Err(Error::UnknownDtype { code: 200, .. })
    ));
}
