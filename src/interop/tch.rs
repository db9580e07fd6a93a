//! Zero-copy conversions between PyTorch tensors ([`tch::Tensor`]) and [`TensorView`], with
//! ownership in both directions.
//!
//! | from | to | how | cost |
//! |---|---|---|---|
//! | `&tch::Tensor` | `TensorView` | [`TensorView::from_tch`] / `TryFrom` | O(ndim) |
//! | `&TensorView` | `tch::Tensor` | [`TensorView::to_tch`] / `TryFrom` | O(ndim) |
//! | `&TensorView` | `tch::Tensor` (copy if needed) | [`TensorView::to_tch_with`]`(`[`CopyPolicy::IfNeeded`]`)` | O(ndim), or O(numel) when copying |
//! | `&tch::Tensor` | [`ManagedTensorVersioned`] | [`ManagedTensorVersioned::from_tch`] / `TryFrom` | O(ndim) |
//! | [`ManagedTensorVersioned`] | `tch::Tensor` | [`ManagedTensorVersioned::into_tch`] / `TryFrom` | O(ndim) |
//!
//! Both directions go through ATen's own DLPack converters (`at::toDLPackVersioned`,
//! `at::fromDLPackVersioned`), reached through a small C++ shim (`csrc/torch_dlpack.cpp`,
//! compiled by `build.rs` only with this feature). No data is touched:
//! - a view made by `from_tch` keeps the torch storage alive (through ATen's managed tensor)
//!   after the `tch::Tensor` is dropped;
//! - a tensor made by `to_tch` keeps the view's [`Owner`](crate::Owner) alive until torch frees
//!   the storage, i.e. until the last tensor or torch view sharing it is dropped; the owner is
//!   then released exactly once.
//!
//! # What cannot cross without a copy
//! - **Read-only views**: torch has no read-only tensors, so [`TensorView::to_tch`] refuses
//!   them with [`Error::ReadOnly`]; [`CopyPolicy::IfNeeded`] exports a C-contiguous copy instead.
//!   Negative strides (which torch does not support) are handled the same way
//!   ([`Error::CopyRequired`] or a copy).
//! - **Devices**: both directions keep the device: a CUDA (ROCm, XPU, ...) view becomes a torch
//!   tensor on that device and back, without the data being touched. Whether torch accepts a
//!   device is torch's decision: a build without that backend refuses with its own error
//!   ([`Error::Foreign`]). Only the CPU path is tested here (the test machine has no GPU);
//!   `python_tests/test_gpu.py` exercises CUDA tensors where a GPU exists. A copy of device
//!   memory (for a read-only or negatively strided view) is [`Error::UnsupportedDevice`].
//! - **Types**: torch takes bool, (u)int8–64, float16/32/64, bfloat16, complex32/64/128 and the
//!   float8 kinds (e5m2, e4m3fn, e5m2fnuz, e4m3fnuz, e8m0fnu); other dtypes (sub-byte integers,
//!   float6/float4, vector lanes, ...) give [`Error::UnsupportedDtype`].
//! - **Torch tensors DLPack cannot describe** are refused by `from_tch`, never exported with
//!   wrong data: `requires_grad` ([`Error::UnsupportedTensor`]: `detach()` first), lazily
//!   conjugated or negated views ([`Error::CopyRequired`]: `resolve_conj()` / `resolve_neg()`),
//!   sparse or other non-strided layouts ([`Error::NotContiguous`]: `to_dense()`), quantized
//!   tensors ([`Error::UnsupportedTensor`]: `dequantize()`).
//!
//! `tch::Kind` lacks some dtypes torch has (uint16/32/64, float8_e8m0fnu): such tensors convert
//! fine, but `tch::Tensor::kind()` panics on them; use `f_kind()` or [`scalar_type_name`].
//!
//! ```
//! use dlbridge::TensorView;
//! use tch::{Kind, Tensor};
//!
//! let t = Tensor::arange(6, (Kind::Float, tch::Device::Cpu)).view([2, 3]).tr();
//! let v = TensorView::from_tch(&t)?; // no copy: same address, same strides
//! assert_eq!(v.data_ptr(), t.data_ptr() as *const u8);
//! assert_eq!((v.shape(), v.strides()), (&[3, 2][..], &[1, 3][..]));
//! drop(t); // the view keeps the torch storage alive
//! assert_eq!(v.to_vec::<f32>()?, vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
//!
//! let data = TensorView::from_vec(vec![1i64, 2, 3, 4], &[2, 2])?;
//! let t = data.to_tch()?; // no copy: torch now shares the Vec
//! assert_eq!(t.data_ptr() as *const u8, data.data_ptr());
//! assert_eq!(t.sum(Kind::Int64).int64_value(&[]), 10);
//! # Ok::<(), dlbridge::Error>(())
//! ```

use std::ffi::{c_char, c_int, CStr};

use dlpark::ffi::DLManagedTensorVersioned;
use tch::Tensor;
use torch_sys::C_tensor;

use crate::{
    CopyPolicy, DType, DTypeCode, Error, ForeignError, ManagedTensorVersioned, Order, Result,
    TensorView,
};

mod sys {
    use super::*;

    // The C ABI of csrc/torch_dlpack.cpp. Every function catches all C++ exceptions and reports
    // them as a status code plus a NUL-terminated message in `err[..err_len]`.
    extern "C" {
        pub fn dlbridge_torch_tensor_props(
            t: *const C_tensor,
            out: *mut u32,
            err: *mut c_char,
            err_len: usize,
        ) -> c_int;
        pub fn dlbridge_torch_to_dlpack_versioned(
            t: *const C_tensor,
            out: *mut *mut DLManagedTensorVersioned,
            err: *mut c_char,
            err_len: usize,
        ) -> c_int;
        pub fn dlbridge_torch_from_dlpack_versioned(
            src: *mut DLManagedTensorVersioned,
            out: *mut *mut C_tensor,
            err: *mut c_char,
            err_len: usize,
        ) -> c_int;
        pub fn dlbridge_torch_is_sole_handle(t: *const C_tensor) -> c_int;
        pub fn dlbridge_torch_scalar_type_name(
            t: *const C_tensor,
            buf: *mut c_char,
            buf_len: usize,
            err: *mut c_char,
            err_len: usize,
        ) -> c_int;
    }
}

/// The property bits of `dlbridge_torch_tensor_props` (kept in sync with the C++ shim).
mod prop {
    pub const CONJ: u32 = 1 << 0;
    pub const NEG: u32 = 1 << 1;
    pub const NOT_STRIDED: u32 = 1 << 2;
    pub const QUANTIZED: u32 = 1 << 3;
    pub const REQUIRES_GRAD: u32 = 1 << 4;
    pub const UNDEFINED: u32 = 1 << 5;
}

const LIBTORCH: &str = "libtorch";

/// A buffer for the shim's error messages.
struct ErrBuf([u8; 512]);

impl ErrBuf {
    fn new() -> ErrBuf {
        ErrBuf([0; 512])
    }
    fn ptr(&mut self) -> *mut c_char {
        self.0.as_mut_ptr().cast()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn message(&self) -> String {
        match CStr::from_bytes_until_nul(&self.0) {
            Ok(s) => s.to_string_lossy().into_owned(),
            Err(_) => String::from_utf8_lossy(&self.0).into_owned(),
        }
    }
    fn foreign(&self) -> Error {
        Error::Foreign(ForeignError::from_message(LIBTORCH, self.message()))
    }
}

/// Refuse torch tensors whose memory DLPack cannot describe faithfully.
fn check_exportable(t: &Tensor) -> Result<()> {
    let mut bits = 0u32;
    let mut err = ErrBuf::new();
    // SAFETY: `t.as_ptr()` is the live `at::Tensor*` tch owns, borrowed for the call; `bits` and
    // `err` are writable for the sizes passed. The shim catches every C++ exception.
    let rc =
        unsafe { sys::dlbridge_torch_tensor_props(t.as_ptr(), &mut bits, err.ptr(), err.len()) };
    if rc != 0 {
        return Err(err.foreign());
    }
    let refuse = if bits & prop::UNDEFINED != 0 {
        Error::UnsupportedTensor("the torch tensor is undefined")
    } else if bits & prop::NOT_STRIDED != 0 {
        Error::NotContiguous("a sparse or other non-strided torch layout; call to_dense()".into())
    } else if bits & prop::QUANTIZED != 0 {
        Error::UnsupportedTensor(
            "quantized torch tensors have no DLPack form; call dequantize() first",
        )
    } else if bits & prop::CONJ != 0 {
        Error::CopyRequired(
            "the torch tensor has its conjugate bit set; call resolve_conj() first".into(),
        )
    } else if bits & prop::NEG != 0 {
        Error::CopyRequired(
            "the torch tensor has its negative bit set; call resolve_neg() first".into(),
        )
    } else if bits & prop::REQUIRES_GRAD != 0 {
        Error::UnsupportedTensor(
            "the torch tensor requires grad and DLPack cannot carry autograd; call detach() first",
        )
    } else {
        return Ok(());
    };
    Err(refuse)
}

impl ManagedTensorVersioned {
    /// Export a torch tensor as an owned DLPack 1.x managed tensor, without copying (ATen's
    /// `toDLPackVersioned` on a `detach()`ed alias, so later in-place metadata changes of `t` do not
    /// reach the export). The managed tensor keeps the torch storage alive until it is dropped.
    ///
    /// Refuses what DLPack cannot describe (see the [module docs](self)).
    ///
    /// ```
    /// let t = tch::Tensor::from_slice(&[1u8, 2, 3]);
    /// let managed = dlbridge::ManagedTensorVersioned::from_tch(&t)?;
    /// assert_eq!(managed.dl_tensor()?.data as usize, t.data_ptr() as usize);
    /// let back = managed.into_tch()?; // the same storage again
    /// assert_eq!(back.data_ptr(), t.data_ptr());
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    ///
    /// The managed tensor is this crate's own export of [`TensorView::from_tch`]: torch can
    /// write the memory through any tensor sharing the storage, so a Rust consumer of it
    /// (`TensorView::from_dlpack_versioned`) gets the same shared-reference refusal as
    /// `from_tch` itself; C consumers see an ordinary writable tensor.
    pub fn from_tch(t: &Tensor) -> Result<ManagedTensorVersioned> {
        Ok(TensorView::from_tch(t)?.into_dlpack_versioned())
    }

    /// ATen's own export of `t` (`at::toDLPackVersioned`).
    fn aten_export(t: &Tensor) -> Result<ManagedTensorVersioned> {
        let mut out: *mut DLManagedTensorVersioned = std::ptr::null_mut();
        let mut err = ErrBuf::new();
        // SAFETY: `t.as_ptr()` is a live `at::Tensor*`, borrowed for the call; `out` and `err` are
        // valid out-parameters. The shim catches every C++ exception.
        let rc = unsafe {
            sys::dlbridge_torch_to_dlpack_versioned(t.as_ptr(), &mut out, err.ptr(), err.len())
        };
        if rc != 0 {
            // The shim refuses what DLPack cannot carry; ask which property it was, for a typed
            // error (only on this failure path, so the success path makes a single shim call).
            check_exportable(t)?;
            return Err(err.foreign());
        }
        // SAFETY: on success the shim hands over a fresh managed tensor made by ATen, referenced by
        // nobody else, whose deleter releases the torch storage; the handle calls it exactly once.
        unsafe { ManagedTensorVersioned::from_raw(out) }
            .ok_or_else(|| Error::NullPointer("managed tensor returned by toDLPackVersioned"))
    }

    /// Import an owned DLPack 1.x managed tensor into torch, without copying: the resulting tensor's
    /// storage owns `managed` and calls its deleter exactly once, when torch frees the storage. On
    /// error the deleter has also run exactly once (here, or inside ATen), as for every consumer.
    ///
    /// Torch tensors are always writable, so a managed tensor flagged read-only is refused
    /// ([`Error::ReadOnly`]); so are dtypes ATen cannot take. The device is kept. Anything else
    /// ATen refuses comes back as [`Error::Foreign`] (e.g. ATen 2.13 rejects a 0-d tensor with a
    /// non-zero `byte_offset`, pytorch/pytorch#168177, whose fix in pytorch/pytorch#170432 leaves
    /// 0-d tensors out; [`TensorView::to_tch`] avoids that by folding the offset into the
    /// pointer).
    pub fn into_tch(self) -> Result<Tensor> {
        let managed = self;
        let (major, minor) = managed.version();
        if major != 1 {
            return Err(Error::VersionMismatch { major, minor });
        }
        if managed.flags() & dlpark::DlpackFlags::READ_ONLY.bits() != 0 {
            return Err(Error::ReadOnly(
                "torch tensors are always writable; a read-only DLPack tensor needs a copy",
            ));
        }
        let tensor = managed.dl_tensor()?;
        check_torch_dtype(DType::from_dlpack(tensor.dtype)?)?;
        let raw = managed.into_raw();
        let mut out: *mut C_tensor = std::ptr::null_mut();
        let mut err = ErrBuf::new();
        // SAFETY: `raw` is a live managed tensor we owned (the handle's invariant), handed to the
        // shim: on status 0 or 2 ATen has taken it over (status 2: already deleted), on status 1 it
        // is untouched and ours again (see csrc/torch_dlpack.cpp). `out`/`err` are valid.
        let rc = unsafe {
            sys::dlbridge_torch_from_dlpack_versioned(raw, &mut out, err.ptr(), err.len())
        };
        match rc {
            0 if out.is_null() => Err(Error::NullPointer("tensor returned by fromDLPackVersioned")),
            0 => {
                // SAFETY: status 0 gives a fresh `new at::Tensor`, which `from_ptr` takes ownership
                // of (tch frees it with `at_free` on drop).
                Ok(unsafe { Tensor::from_ptr(out) })
            }
            1 => {
                // SAFETY: status 1: the shim did not consume `raw`; we own it again and the handle
                // deletes it (once) when dropped here.
                drop(unsafe { ManagedTensorVersioned::from_raw(raw) });
                Err(err.foreign())
            }
            // Status 2: ATen already ran the deleter; `raw` must not be touched again.
            _ => Err(err.foreign()),
        }
    }
}

/// The c10 scalar type name of `t` (`"Float"`, `"UInt16"`, `"Float8_e8m0fnu"`, ...), also for
/// dtypes `tch::Kind` cannot represent (where `Tensor::kind()` panics).
///
/// ```
/// let t = tch::Tensor::from_slice(&[1.5f32]);
/// assert_eq!(dlbridge::interop::tch::scalar_type_name(&t)?, "Float");
/// # Ok::<(), dlbridge::Error>(())
/// ```
pub fn scalar_type_name(t: &Tensor) -> Result<String> {
    let mut buf = ErrBuf::new();
    let mut err = ErrBuf::new();
    // SAFETY: live borrowed `at::Tensor*`; both buffers are writable for the lengths passed.
    let rc = unsafe {
        sys::dlbridge_torch_scalar_type_name(t.as_ptr(), buf.ptr(), buf.len(), err.ptr(), err.len())
    };
    if rc != 0 {
        return Err(err.foreign());
    }
    Ok(buf.message())
}

/// Whether ATen 2.13's `fromDLPack` has a scalar type for `dtype`.
fn check_torch_dtype(dtype: DType) -> Result<()> {
    use DTypeCode::*;
    let ok = dtype.lanes() == 1
        && match dtype.code() {
            Int | UInt => matches!(dtype.bits(), 8 | 16 | 32 | 64),
            Float => matches!(dtype.bits(), 16 | 32 | 64),
            BFloat | Bool => true,
            Complex => matches!(dtype.bits(), 32 | 64 | 128),
            Float8E4M3Fn | Float8E4M3Fnuz | Float8E5M2 | Float8E5M2Fnuz | Float8E8M0Fnu => true,
            _ => false,
        };
    if ok {
        Ok(())
    } else {
        Err(Error::UnsupportedDtype {
            dtype,
            reason: "torch has no scalar type for it",
        })
    }
}

impl TensorView {
    /// A view of a torch tensor's memory, without copying: same address, shape, strides (in
    /// elements, as torch's), dtype and device. The view keeps the torch storage alive, even
    /// after `t` and all other torch handles are dropped. Costs O(ndim).
    ///
    /// Errors for tensors DLPack cannot describe: `requires_grad` (call `detach()`), conjugate
    /// or negative bits, sparse layouts, quantized dtypes (see the [module docs](self)).
    ///
    /// Torch can write the memory at any time, through `t` or any tensor sharing its storage,
    /// with tch's safe API. So the view never lends shared references to it: `as_slice` and
    /// `as_array` refuse with [`Error::ForeignWriter`]. Read it by copying (`to_vec`,
    /// `to_contiguous`), which reads the elements once, without a lasting reference.
    ///
    /// ```
    /// use dlbridge::{Error, TensorView};
    /// let t = tch::Tensor::from_slice(&[1.0f64, 2.0, 3.0, 4.0]).view([2, 2]);
    /// let v = TensorView::from_tch(&t)?;
    /// assert_eq!(v.data_ptr(), t.data_ptr() as *const u8);
    /// assert!(matches!(v.as_slice::<f64>(), Err(Error::ForeignWriter(_))));
    /// assert_eq!(v.to_vec::<f64>()?, vec![1.0, 2.0, 3.0, 4.0]);
    ///
    /// let needs_grad = tch::Tensor::zeros([2], (tch::Kind::Float, tch::Device::Cpu))
    ///     .set_requires_grad(true);
    /// assert!(TensorView::from_tch(&needs_grad).is_err());
    /// assert!(TensorView::from_tch(&needs_grad.detach()).is_ok());
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn from_tch(t: &Tensor) -> Result<TensorView> {
        // Any tensor sharing the storage can write it through tch's safe API, which no count of
        // ours sees: the owner counts that writer for its whole life.
        TensorView::import_versioned(ManagedTensorVersioned::aten_export(t)?, true)
    }

    /// [`TensorView::from_tch`], taking the tensor. When it is the last handle on its storage
    /// (no shallow clone, view or other tensor shares the storage, no weak reference to it
    /// lives), no torch code can reach the memory any more, and the view lends shared
    /// references like memory Rust owns: ndarray views, slices and Arrow buffers of it work.
    /// Otherwise it is `from_tch` (the view lends none).
    ///
    /// ```
    /// use dlbridge::TensorView;
    /// let t = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
    /// let shared = t.shallow_clone();
    /// assert!(TensorView::from_tch_owned(shared)?.as_slice::<f32>().is_err()); // `t` lives
    /// let v = TensorView::from_tch_owned(t)?; // the last handle
    /// assert_eq!(v.as_slice::<f32>()?, &[1.0, 2.0, 3.0]);
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn from_tch_owned(t: Tensor) -> Result<TensorView> {
        // SAFETY: `t.as_ptr()` is a live `at::Tensor*`, borrowed for the call; the shim only
        // reads reference counts and catches every C++ exception.
        let sole = unsafe { sys::dlbridge_torch_is_sole_handle(t.as_ptr()) } == 1;
        let managed = ManagedTensorVersioned::aten_export(&t)?;
        // After this the managed tensor (ours alone) holds the storage's only handle.
        drop(t);
        TensorView::import_versioned(managed, !sole)
    }

    /// A torch tensor sharing this view's memory, without copying: same address, shape,
    /// strides and dtype. Torch keeps the view's owner alive and releases it exactly once, when
    /// the last torch tensor sharing the storage (views such as `narrow` or `transpose`
    /// included) is dropped. Costs O(ndim).
    ///
    /// Refuses read-only views ([`Error::ReadOnly`]: torch tensors are always writable),
    /// negative strides ([`Error::CopyRequired`]) and misaligned elements
    /// ([`Error::Misaligned`]); [`TensorView::to_tch_with`] with [`CopyPolicy::IfNeeded`] copies
    /// instead (host memory only: a device view that would need a copy gives
    /// [`Error::UnsupportedDevice`]). Device views keep their device; dtypes torch lacks
    /// [`Error::UnsupportedDtype`].
    ///
    /// ```
    /// use dlbridge::TensorView;
    /// let v = TensorView::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?.transpose()?;
    /// let t = v.to_tch()?;
    /// assert_eq!(t.size(), [3, 2]);
    /// assert_eq!(t.stride(), [1, 3]);
    /// assert_eq!(t.data_ptr() as *const u8, v.data_ptr());
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn to_tch(&self) -> Result<Tensor> {
        self.to_tch_with(CopyPolicy::Never)
    }

    /// [`TensorView::to_tch`], copying into a fresh C-contiguous buffer when `copy` is
    /// [`CopyPolicy::IfNeeded`] and torch cannot share the memory (read-only view, negative
    /// strides, misaligned elements). Otherwise it never copies.
    ///
    /// ```
    /// use dlbridge::{CopyPolicy, Error, TensorView};
    /// static DATA: [i32; 3] = [7, 8, 9];
    /// let v = TensorView::from_static(&DATA, &[3])?; // read-only
    /// assert!(matches!(v.to_tch(), Err(Error::ReadOnly(_))));
    /// let t = v.to_tch_with(CopyPolicy::IfNeeded)?; // a copy torch may write to
    /// assert_ne!(t.data_ptr() as *const u8, v.data_ptr());
    /// assert_eq!(Vec::<i32>::try_from(&t).unwrap(), vec![7, 8, 9]);
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn to_tch_with(&self, copy: CopyPolicy) -> Result<Tensor> {
        if self.flags().subbyte_padded {
            return Err(Error::UnsupportedDtype {
                dtype: self.dtype,
                reason: "torch has no padded sub-byte types",
            });
        }
        check_torch_dtype(self.dtype)?;
        if let Some(reason) = self.torch_needs_copy() {
            if copy == CopyPolicy::Never {
                return Err(reason);
            }
            let dense = self.to_contiguous(Order::C)?;
            return export_for_torch(dense).into_tch();
        }
        let shared = export_for_torch(self.clone());
        if shared.flags() & dlpark::DlpackFlags::READ_ONLY.bits() == 0 {
            return shared.into_tch();
        }
        // Safe Rust may hold shared references to the memory: torch may not write it.
        drop(shared);
        if copy == CopyPolicy::Never {
            return Err(Error::SharedReaders);
        }
        export_for_torch(self.to_contiguous(Order::C)?).into_tch()
    }

    /// [`TensorView::to_tch`], consuming the view. When it is the only handle on its memory no
    /// reference made through it can live any more, so this succeeds where `to_tch` gives
    /// [`Error::SharedReaders`] (a slice of the view was taken earlier):
    ///
    /// ```
    /// use dlbridge::{Error, TensorView};
    /// let v = TensorView::from_vec(vec![1i32, 2, 3], &[3])?;
    /// assert_eq!(v.as_slice::<i32>()?.iter().sum::<i32>(), 6);
    /// assert!(matches!(v.to_tch(), Err(Error::SharedReaders))); // that slice might still live
    /// let address = v.data_ptr();
    /// let t = v.into_tch()?; // it cannot now: the view is gone
    /// assert_eq!(t.data_ptr() as *const u8, address);
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn into_tch(self) -> Result<Tensor> {
        if self.owner.is_unique() {
            self.owner.forget_shared_reads();
        }
        self.to_tch()
    }

    /// Why torch cannot share this (CPU, supported-dtype) view's memory, if it cannot.
    fn torch_needs_copy(&self) -> Option<Error> {
        if self.flags().read_only {
            return Some(Error::ReadOnly(
                "torch tensors are always writable; use CopyPolicy::IfNeeded to export a copy",
            ));
        }
        if self
            .strides()
            .iter()
            .zip(self.shape().iter())
            .any(|(&s, &n)| s < 0 && n > 1)
        {
            return Some(Error::CopyRequired(
                "torch does not support negative strides".into(),
            ));
        }
        let align = self.dtype.alignment();
        let address = self.data_ptr() as usize;
        if !crate::layout::is_aligned(address, align, self.numel()) {
            return Some(Error::Misaligned { address, align });
        }
        None
    }
}

/// Export `view` for ATen: a versioned managed tensor whose `data` already includes the byte
/// offset (ATen 2.13 refuses a non-zero `byte_offset` on 0-d tensors, pytorch/pytorch#168177;
/// its own exports always have 0: drop the folding once ATen honours the offset everywhere) and whose negative strides on axes of extent <= 1 (never multiplied by a non-zero
/// index) are replaced by 1, since torch does not accept negative strides.
fn export_for_torch(view: TensorView) -> ManagedTensorVersioned {
    let managed = view.into_dlpack_versioned();
    let ptr = managed.as_ptr();
    // SAFETY: `managed` was just built by `into_dlpack_versioned` and is referenced by nobody
    // else; its DLTensor and the shape/strides arrays it points to live in its own context until
    // its deleter runs, so rewriting those fields in place is exclusive access to owned memory.
    // The new values describe the same bytes: `data + byte_offset` is the first element (within
    // the owner's allocation, checked when the view was built), and a stride of a dimension of
    // extent <= 1 never multiplies a non-zero index.
    unsafe {
        let t = &mut (*ptr).dl_tensor;
        if t.byte_offset != 0 {
            t.data = t
                .data
                .cast::<u8>()
                .wrapping_add(t.byte_offset as usize)
                .cast();
            t.byte_offset = 0;
        }
        if t.ndim > 0 && !t.strides.is_null() {
            let n = t.ndim as usize;
            let shape = std::slice::from_raw_parts(t.shape, n);
            let strides = std::slice::from_raw_parts_mut(t.strides, n);
            for (s, &extent) in strides.iter_mut().zip(shape) {
                if *s < 0 && extent <= 1 {
                    *s = 1;
                }
            }
        }
    }
    managed
}

impl TryFrom<&Tensor> for TensorView {
    type Error = Error;
    /// [`TensorView::from_tch`].
    fn try_from(t: &Tensor) -> Result<TensorView> {
        TensorView::from_tch(t)
    }
}

impl TryFrom<Tensor> for TensorView {
    type Error = Error;
    /// [`TensorView::from_tch_owned`].
    fn try_from(t: Tensor) -> Result<TensorView> {
        TensorView::from_tch_owned(t)
    }
}

impl TryFrom<&TensorView> for Tensor {
    type Error = Error;
    /// [`TensorView::to_tch`] (never copies).
    fn try_from(view: &TensorView) -> Result<Tensor> {
        view.to_tch()
    }
}

impl TryFrom<&Tensor> for ManagedTensorVersioned {
    type Error = Error;
    /// [`ManagedTensorVersioned::from_tch`].
    fn try_from(t: &Tensor) -> Result<ManagedTensorVersioned> {
        ManagedTensorVersioned::from_tch(t)
    }
}

impl TryFrom<ManagedTensorVersioned> for Tensor {
    type Error = Error;
    /// [`ManagedTensorVersioned::into_tch`].
    fn try_from(managed: ManagedTensorVersioned) -> Result<Tensor> {
        managed.into_tch()
    }
}
