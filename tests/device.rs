//! Device memory: views of accelerator tensors are metadata only.
//!
//! The device tensors here point into the first page of the address space, which Linux never
//! maps (`vm.mmap_min_addr` is at least 4096): any read or write of their data would crash the
//! test, so passing proves that no path touched it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dlbridge::ffi::{
    DLDataType, DLDataTypeCode, DLDevice, DLDeviceType, DLManagedTensorVersioned, DLPackVersion,
    DLTensor,
};
use dlbridge::{
    DType, Device, DeviceType, Error, ManagedTensorVersioned, Order, Owner, Parts, SliceArg,
    TensorView,
};

mod common;

/// An address in the never-mapped first page: 256 bytes in, so every test tensor (at most
/// 3 KiB) stays below 4096.
const UNMAPPED: usize = 0x100;

const CUDA: Device = Device {
    kind: DeviceType::CUDA,
    id: 1,
};

/// Drops of the keep-alive of a fake device allocation.
struct DeviceAllocation(Arc<AtomicUsize>);

impl Drop for DeviceAllocation {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A writable 4x8 f32 tensor on `device` at the unmapped address, and its release counter.
fn device_tensor(device: Device) -> (TensorView, Arc<AtomicUsize>) {
    let drops = Arc::new(AtomicUsize::new(0));
    let parts = Parts::contiguous(UNMAPPED as *mut u8, vec![4, 8], DType::F32)
        .with_device(device)
        .with_extent(UNMAPPED..UNMAPPED + 4 * 8 * 4);
    // SAFETY: the "allocation" is never dereferenced (that is what this file tests); the owner
    // stands for the device memory's keep-alive.
    let t = unsafe { TensorView::from_parts(parts, Owner::new(DeviceAllocation(drops.clone()))) }
        .unwrap();
    (t, drops)
}

fn assert_refused<T: std::fmt::Debug>(what: &str, r: dlbridge::Result<T>, device: Device) {
    match r {
        Err(Error::UnsupportedDevice { device: d, reason }) => {
            assert_eq!(d, device, "{what}");
            assert!(!reason.is_empty(), "{what}: the reason names the operation");
        }
        other => panic!("{what}: expected UnsupportedDevice, got {other:?}"),
    }
}

#[test]
fn metadata_operations_work_on_every_device() {
    for kind in [
        DeviceType::CUDA,
        DeviceType::ROCM,
        DeviceType::ONE_API,
        DeviceType::METAL,
        DeviceType::VULKAN,
        DeviceType(99), // newer than this crate
    ] {
        let device = Device { kind, id: 3 };
        let (t, drops) = device_tensor(device);
        let base = t.data_ptr() as usize;
        assert_eq!(base, UNMAPPED);
        let views = [
            t.slice(1, SliceArg::range(2, 8).with_step(3)).unwrap(),
            t.select(0, 2).unwrap(),
            t.transpose().unwrap(),
            t.permute(&[1, 0]).unwrap(),
            t.reshape(&[2, 16]).unwrap(),
            t.reshape_infer(&[None, Some(4)]).unwrap(),
            t.select(0, 0).unwrap().broadcast_to(&[5, 8]).unwrap(),
            t.unsqueeze(0).unwrap().squeeze(),
            t.as_strided(&[3, 2], &[8, 2], 1).unwrap(),
            t.reinterpret(DType::I32).unwrap(),
            t.clone().into_read_only(),
        ];
        for v in &views {
            assert_eq!(v.device(), device);
            let address = v.data_ptr() as usize;
            assert!((base..base + 128).contains(&address));
        }
        assert_eq!(views[0].data_ptr() as usize, base + 2 * 4);
        assert_eq!(views[1].data_ptr() as usize, base + 2 * 8 * 4);
        assert_eq!(views[8].data_ptr() as usize, base + 4);
        assert_eq!(views[4].strides(), &[16, 1]);
        // Layout queries are metadata too.
        assert!(t.is_c_contiguous() && views[2].is_f_contiguous());
        assert_eq!(t.nbytes(), 128);
        assert!(views[0].may_overlap(&views[1]));
        drop(views);
        drop(t);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }
}

#[test]
fn every_data_access_is_refused_for_device_memory() {
    let (mut t, _drops) = device_tensor(CUDA);
    assert_refused("as_slice", t.as_slice::<f32>(), CUDA);
    assert_refused(
        "check_element_access",
        t.check_element_access::<f32>(),
        CUDA,
    );
    assert_refused("to_vec", t.to_vec::<f32>(), CUDA);
    assert_refused("to_contiguous", t.to_contiguous(Order::C), CUDA);
    assert_refused(
        "to_contiguous of a strided view",
        t.transpose().unwrap().to_contiguous(Order::C),
        CUDA,
    );
    assert_refused(
        "to_contiguous_byteswapped",
        t.to_contiguous_byteswapped(Order::F),
        CUDA,
    );
    assert_refused("cast", t.cast(DType::F64), CUDA);
    assert_refused("cast to the same dtype", t.cast(DType::F32), CUDA);
    assert!(matches!(t.as_mut_slice::<f32>(), Err(Error::NotExclusive)));
    let (only, _drops) = device_tensor(CUDA);
    // SAFETY: no other handle reaches the fake allocation.
    let mut only = unsafe { only.assume_exclusive() };
    assert_refused(
        "as_mut_slice",
        only.as_mut_slice::<f32>().map(|s| s.len()),
        CUDA,
    );
    // SAFETY: the unchecked variant skips only the aliasing checks, never the device check.
    let unchecked = unsafe { t.as_mut_slice_unchecked::<f32>() }.map(|s| s.len());
    assert_refused("as_mut_slice_unchecked", unchecked, CUDA);
}

#[cfg(feature = "ndarray")]
#[test]
fn ndarray_views_of_device_memory_are_refused() {
    let (mut t, _drops) = device_tensor(CUDA);
    assert_refused(
        "as_array",
        t.as_array::<f32, ndarray::IxDyn>().map(|_| ()),
        CUDA,
    );
    assert_refused(
        "to_owned_array",
        t.to_owned_array::<f32, ndarray::Ix2>(),
        CUDA,
    );
    assert_refused(
        "as_array_mut",
        t.as_array_mut::<f32, ndarray::IxDyn>().map(|_| ()),
        CUDA,
    );
}

#[cfg(feature = "arrow")]
#[test]
fn arrow_buffers_of_device_memory_are_refused() {
    use dlbridge::interop::arrow::ArrowExportOptions;
    use dlbridge::CopyPolicy;
    let (t, _drops) = device_tensor(CUDA);
    assert_refused(
        "to_arrow_buffer",
        t.to_arrow_buffer(CopyPolicy::Never),
        CUDA,
    );
    assert_refused(
        "to_arrow_buffer with copies allowed",
        t.to_arrow_buffer(CopyPolicy::IfNeeded),
        CUDA,
    );
    let opts = ArrowExportOptions::named("t");
    assert_refused("to_arrow", t.to_arrow(&opts).map(|_| ()), CUDA);
    assert_refused(
        "to_arrow_fixed_shape_tensor",
        t.to_arrow_fixed_shape_tensor(&opts.allow_copy())
            .map(|_| ()),
        CUDA,
    );
}

#[test]
fn host_accessible_devices_stay_readable() {
    for kind in [
        DeviceType::CUDA_HOST,
        DeviceType::ROCM_HOST,
        DeviceType::CUDA_MANAGED,
    ] {
        let values: Vec<f32> = (0..6).map(|x| x as f32).collect();
        let cpu = TensorView::from_vec(values, &[2, 3]).unwrap();
        let parts = Parts::contiguous(cpu.base_ptr(), vec![2, 3], DType::F32)
            .with_device(Device { kind, id: 0 })
            .with_flags(cpu.flags().with_read_only(true));
        // SAFETY: the memory is `cpu`'s, kept alive by its owner, and only read.
        let t = unsafe { TensorView::from_parts(parts, cpu.owner().clone()) }.unwrap();
        assert_eq!(
            t.as_slice::<f32>().unwrap(),
            &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
        );
        let copy = t.transpose().unwrap().to_contiguous(Order::C).unwrap();
        // A copy lives in memory this crate allocated: host memory.
        assert_eq!(copy.device(), Device::CPU);
        assert_eq!(
            copy.to_vec::<f32>().unwrap(),
            vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
        );
    }
}

#[test]
fn device_views_round_trip_through_dlpack_with_their_device() {
    let (t, drops) = device_tensor(CUDA);
    let v = t.slice(0, 1..).unwrap().transpose().unwrap();
    drop(t);
    let versioned = v.to_dlpack_versioned();
    {
        let raw = versioned.dl_tensor().unwrap();
        assert_eq!(raw.device.device_type, DLDeviceType::CUDA);
        assert_eq!(raw.device.device_id, 1);
        assert_eq!(
            raw.data as usize + raw.byte_offset as usize,
            v.data_ptr() as usize
        );
    }
    let back = TensorView::from_dlpack_versioned(versioned).unwrap();
    assert_eq!(back.device(), CUDA);
    assert_eq!(back.data_ptr(), v.data_ptr());
    assert_eq!((back.shape(), back.strides()), (v.shape(), v.strides()));
    let legacy = TensorView::from_dlpack_legacy(v.to_dlpack_legacy().unwrap()).unwrap();
    assert_eq!(legacy.device(), CUDA);
    drop((v, back));
    assert_eq!(
        drops.load(Ordering::SeqCst),
        0,
        "the legacy re-import still holds it"
    );
    drop(legacy);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

static FOREIGN_DELETES: AtomicUsize = AtomicUsize::new(0);

#[repr(C)]
struct ForeignDevice {
    managed: DLManagedTensorVersioned,
    shape: [i64; 2],
    strides: [i64; 2],
}

unsafe extern "C" fn delete_foreign(m: *mut DLManagedTensorVersioned) {
    // SAFETY: `m` is the first field of a boxed ForeignDevice made by `foreign_device`.
    drop(unsafe { Box::from_raw(m.cast::<ForeignDevice>()) });
    FOREIGN_DELETES.fetch_add(1, Ordering::SeqCst);
}

/// A foreign producer's 3x5 int16 tensor (column-major) on `device_type`, at the unmapped page.
fn foreign_device(device_type: DLDeviceType) -> ManagedTensorVersioned {
    let raw = Box::into_raw(Box::new(ForeignDevice {
        managed: DLManagedTensorVersioned {
            version: DLPackVersion { major: 1, minor: 3 },
            manager_ctx: std::ptr::null_mut(),
            deleter: Some(delete_foreign),
            flags: dlpark::DlpackFlags::empty(),
            dl_tensor: DLTensor {
                data: UNMAPPED as *mut std::ffi::c_void,
                device: DLDevice {
                    device_type,
                    device_id: 2,
                },
                ndim: 2,
                dtype: DLDataType {
                    code: DLDataTypeCode::INT,
                    bits: 16,
                    lanes: 1,
                },
                shape: std::ptr::null_mut(),
                strides: std::ptr::null_mut(),
                byte_offset: 6,
            },
        },
        shape: [3, 5],
        strides: [1, 3],
    }));
    // SAFETY: `raw` is a fresh allocation we own; the self-pointers go through it only.
    unsafe {
        (*raw).managed.dl_tensor.shape = (&raw mut (*raw).shape).cast();
        (*raw).managed.dl_tensor.strides = (&raw mut (*raw).strides).cast();
        ManagedTensorVersioned::from_raw(raw.cast()).unwrap()
    }
}

#[test]
fn foreign_device_tensors_import_reexport_and_are_deleted_once() {
    for (dl, kind) in [
        (DLDeviceType::CUDA, DeviceType::CUDA),
        (DLDeviceType::ROCM, DeviceType::ROCM),
        (DLDeviceType::ONEAPI, DeviceType::ONE_API),
        (DLDeviceType::METAL, DeviceType::METAL),
    ] {
        let before = FOREIGN_DELETES.load(Ordering::SeqCst);
        let t = TensorView::from_dlpack_versioned(foreign_device(dl)).unwrap();
        let device = Device { kind, id: 2 };
        assert_eq!(t.device(), device);
        assert_eq!(t.data_ptr() as usize, UNMAPPED + 6);
        assert_eq!((t.shape(), t.strides()), (&[3, 5][..], &[1, 3][..]));
        assert_refused("as_slice", t.as_slice::<i16>(), device);
        let row = t.select(0, 1).unwrap();
        let again = row.to_dlpack_versioned();
        drop((t, row));
        assert_eq!(FOREIGN_DELETES.load(Ordering::SeqCst), before);
        let last = TensorView::from_dlpack_versioned(again).unwrap();
        assert_eq!(last.data_ptr() as usize, UNMAPPED + 6 + 2);
        drop(last);
        assert_eq!(FOREIGN_DELETES.load(Ordering::SeqCst), before + 1);
    }
}

#[test]
fn writable_device_exports_are_counted_like_host_ones() {
    let (t, _drops) = device_tensor(CUDA);
    let export = t.to_dlpack_versioned();
    assert_eq!(t.owner().writable_exports(), 1);
    drop(export);
    assert_eq!(t.owner().writable_exports(), 0);
}
