//! The DLPack importer against arbitrary metadata: every field a producer controls (version,
//! flags, ndim, shape, strides, dtype, device, byte offset, null pointers) is fuzzed over a real
//! 4 KiB buffer. Invariants: no panic; the deleter runs exactly once whether the import succeeds
//! or fails; an accepted tensor's byte span is consistent, and when it lies inside the buffer
//! every element read through the copy kernel equals a naive read.
#![no_main]

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};

use arbitrary::Arbitrary;
use dlbridge::ffi::{
    DLDataType, DLDataTypeCode, DLDevice, DLDeviceType, DLManagedTensorVersioned, DLPackVersion,
    DLTensor,
};
use dlbridge::{ManagedTensorVersioned, Order, TensorView};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Meta {
    major: u32,
    minor: u32,
    flags: u64,
    ndim: i32,
    shape: [i64; 6],
    strides: [i64; 6],
    null_shape: bool,
    null_strides: bool,
    null_data: bool,
    code: u8,
    bits: u8,
    lanes: u16,
    device_type: u32,
    device_id: i32,
    byte_offset: u16,
    small_values: bool,
}

const BUF: usize = 4096;

#[repr(C)]
struct Producer {
    managed: DLManagedTensorVersioned,
    shape: [i64; 6],
    strides: [i64; 6],
    data: Vec<u8>,
}

static DELETES: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn deleter(m: *mut DLManagedTensorVersioned) {
    // SAFETY: `m` is the first field of a boxed Producer.
    drop(unsafe { Box::from_raw(m.cast::<Producer>()) });
    DELETES.fetch_add(1, Ordering::SeqCst);
}

fuzz_target!(|m: Meta| {
    let (mut shape, mut strides) = (m.shape, m.strides);
    if m.small_values {
        // Keep most cases inside the buffer so the value check runs often.
        shape.iter_mut().for_each(|s| *s = s.rem_euclid(5));
        strides.iter_mut().for_each(|s| *s = s.rem_euclid(17) - 8);
    }
    let p = Box::into_raw(Box::new(Producer {
        managed: DLManagedTensorVersioned {
            version: DLPackVersion {
                major: m.major % 3,
                minor: m.minor % 5,
            },
            manager_ctx: std::ptr::null_mut(),
            deleter: Some(deleter),
            flags: dlpark::DlpackFlags::from_bits_retain(m.flags),
            dl_tensor: DLTensor {
                data: std::ptr::null_mut(),
                device: DLDevice {
                    device_type: DLDeviceType(m.device_type % 20),
                    device_id: m.device_id,
                },
                ndim: if m.small_values {
                    m.ndim.rem_euclid(8) - 1
                } else {
                    m.ndim
                },
                dtype: DLDataType {
                    code: DLDataTypeCode(m.code % 20),
                    bits: m.bits,
                    lanes: m.lanes,
                },
                shape: std::ptr::null_mut(),
                strides: std::ptr::null_mut(),
                byte_offset: u64::from(m.byte_offset),
            },
        },
        shape,
        strides,
        data: (0..BUF).map(|i| (i % 251) as u8).collect(),
    }));
    // Only point at 6 dims' worth of storage: larger ndim values must be refused before use.
    // SAFETY: `p` is a fresh allocation we own until handing it over below.
    let ndim_ok = (0..=6).contains(&unsafe { (*p).managed.dl_tensor.ndim });
    // SAFETY: `p` is a fresh allocation we own until handing it over below.
    unsafe {
        let t = &raw mut (*p).managed.dl_tensor;
        let base = (*p).data.as_mut_ptr();
        // Data points into the middle so negative strides can stay in bounds.
        (*t).data = if m.null_data {
            std::ptr::null_mut()
        } else {
            base.add(BUF / 2).cast::<c_void>()
        };
        if !m.null_shape && ndim_ok {
            (*t).shape = (&raw mut (*p).shape).cast::<i64>();
        }
        if !m.null_strides && ndim_ok {
            (*t).strides = (&raw mut (*p).strides).cast::<i64>();
        }
        if !ndim_ok {
            // A producer claiming more dims than it stores: keep shape null so a reader would
            // be refused instead of reading past the arrays.
            (*t).shape = std::ptr::null_mut();
        }
    }
    // SAFETY: `p` is still ours: nothing has taken it yet.
    let base = unsafe { (*p).data.as_ptr() } as usize;
    let before = DELETES.load(Ordering::SeqCst);
    // SAFETY: `p` is a live managed tensor handed over to dlbridge.
    let handle = unsafe { ManagedTensorVersioned::from_raw(p.cast()) }.unwrap();
    match TensorView::from_dlpack_versioned(handle) {
        Err(_) => assert_eq!(
            DELETES.load(Ordering::SeqCst),
            before + 1,
            "refused import must delete once"
        ),
        Ok(view) => {
            assert_eq!(DELETES.load(Ordering::SeqCst), before);
            let span = view.byte_span();
            assert!(span.start <= span.end);
            let inside = span.start >= base && span.end <= base + BUF;
            if inside
                && view.device().is_host_accessible()
                && view.itemsize().is_some()
                && view.nbytes() <= 1 << 20
            {
                let copy = view.to_contiguous(Order::C).unwrap();
                let size = view.itemsize().unwrap();
                // Naive read of every element through `offset_of`.
                let bytes = copy.reinterpret(dlbridge::DType::U8).ok();
                if let Some(bytes) = bytes.filter(|_| view.numel() < 4096) {
                    let got = bytes.to_vec::<u8>().unwrap();
                    let mut idx = vec![0usize; view.ndim()];
                    for k in 0..view.numel() {
                        let off = view.offset_of(&idx).unwrap();
                        let addr = (view.data_ptr() as isize + off) as usize - base;
                        let want = (addr..addr + size)
                            .map(|i| (i % 251) as u8)
                            .collect::<Vec<u8>>();
                        assert_eq!(&got[k * size..(k + 1) * size], &want[..]);
                        for d in (0..idx.len()).rev() {
                            idx[d] += 1;
                            if idx[d] < view.shape()[d] {
                                break;
                            }
                            idx[d] = 0;
                        }
                    }
                }
            }
            drop(view);
            assert_eq!(
                DELETES.load(Ordering::SeqCst),
                before + 1,
                "deleter must run once"
            );
        }
    }
});
