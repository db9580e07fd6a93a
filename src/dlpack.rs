//! DLPack in Rust: owned versioned (1.x) and legacy managed tensors, in both directions.
//!
//! - Export: [`TensorView::to_dlpack_versioned`] / [`TensorView::to_dlpack_legacy`] put a clone
//!   of the view (and so its owner) inside the managed tensor; its deleter drops that clone
//!   exactly once.
//! - Import: [`TensorView::from_dlpack_versioned`] / [`TensorView::from_dlpack_legacy`] validate
//!   the metadata and make the managed tensor the view's owner; the producer's deleter runs
//!   exactly once, when the last view (or export) of it is dropped — or at once, if the tensor
//!   is refused. A managed tensor this crate exported comes back as the original view and owner.
//!
//! The ABI structs are `dlpark::ffi`'s. The raw-pointer boundary is the two `from_raw`
//! constructors; everything else is safe.

use std::ptr::NonNull;

use dlpark::ffi::{DLManagedTensor, DLManagedTensorVersioned, DLPackVersion, DLTensor};
use dlpark::DlpackFlags;

use crate::dims::OwnedDims;
use crate::tensor::RawParts;
use crate::{DType, Device, Error, Flags, Owner, Result, TensorView, MAX_NDIM};

/// The DLPack version this crate produces (1.3, as PyTorch 2.13).
pub const DLPACK_VERSION: (u32, u32) = (1, 3);

/// An owned `DLManagedTensorVersioned*`: dropping it calls the deleter (once).
///
/// - Export: [`TensorView::to_dlpack_versioned`] / [`TensorView::to_dlpack_legacy`] put a clone
///   of the view (and so its owner) inside the managed tensor; its deleter drops that clone
///   exactly once.
/// - Import: [`TensorView::from_dlpack_versioned`] / [`TensorView::from_dlpack_legacy`] validate
///   the metadata and make the managed tensor the view's owner; the producer's deleter runs
///   exactly once, when the last view (or export) of it is dropped, or at once if the tensor is
///   refused. A managed tensor this crate exported comes back as the original view and owner.
///
/// The ABI structs are [`dlpark::ffi`](crate::ffi)'s. The raw-pointer boundary is the two
/// `from_raw` constructors; everything else is safe.
#[derive(Debug)]
pub struct ManagedTensorVersioned(NonNull<DLManagedTensorVersioned>);

/// An owned legacy `DLManagedTensor*`: dropping it calls the deleter (once).
#[derive(Debug)]
pub struct ManagedTensorLegacy(NonNull<DLManagedTensor>);

// SAFETY: DLPack hands a managed tensor from producer to consumer, possibly across threads; the
// consumer owns it and may call the deleter from any thread (producers that need a lock, such as
// Python's GIL, take it inside their deleter). Shared access only reads the metadata.
unsafe impl Send for ManagedTensorVersioned {}
// SAFETY: see `Send`.
unsafe impl Sync for ManagedTensorVersioned {}
// SAFETY: see `ManagedTensorVersioned`.
unsafe impl Send for ManagedTensorLegacy {}
// SAFETY: see `ManagedTensorVersioned`.
unsafe impl Sync for ManagedTensorLegacy {}

macro_rules! managed_handle {
    ($name:ident, $ffi:ty) => {
        impl $name {
            /// Take ownership of a managed tensor; `None` for a null pointer.
            ///
            /// # Safety
            /// `ptr` must point to a live managed tensor that nobody else will use or delete: the
            /// returned handle calls its deleter (if non-null) exactly once. Its `dl_tensor` must
            /// describe memory that stays valid until then.
            pub unsafe fn from_raw(ptr: *mut $ffi) -> Option<$name> {
                NonNull::new(ptr).map($name)
            }

            /// Give up ownership: the caller becomes responsible for calling the deleter.
            pub fn into_raw(self) -> *mut $ffi {
                let ptr = self.0.as_ptr();
                std::mem::forget(self);
                ptr
            }

            /// The pointer, still owned by `self`.
            pub fn as_ptr(&self) -> *mut $ffi {
                self.0.as_ptr()
            }

            fn header(&self) -> &$ffi {
                // SAFETY: `from_raw`'s contract: the pointee lives until we call the deleter.
                unsafe { self.0.as_ref() }
            }
        }

        impl ManagedHandle for $name {
            type Raw = $ffi;
            fn raw(&self) -> *mut $ffi {
                self.as_ptr()
            }
            fn context(&self) -> *mut std::ffi::c_void {
                self.header().manager_ctx
            }
            fn tensor(&self) -> &DLTensor {
                &self.header().dl_tensor
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                // SAFETY: we own the tensor; the deleter runs once, here, and frees it.
                unsafe {
                    if let Some(deleter) = self.0.as_ref().deleter {
                        deleter(self.0.as_ptr());
                    }
                }
            }
        }
    };
}

managed_handle!(ManagedTensorVersioned, DLManagedTensorVersioned);
managed_handle!(ManagedTensorLegacy, DLManagedTensor);

impl ManagedTensorVersioned {
    /// The `(major, minor)` version the producer wrote.
    pub fn version(&self) -> (u32, u32) {
        let v = self.header().version;
        (v.major, v.minor)
    }

    /// The raw DLPack flags (only meaningful when the major version is 1).
    pub fn flags(&self) -> u64 {
        self.header().flags.bits()
    }

    /// The tensor metadata, when the major version is one this crate can read.
    pub fn dl_tensor(&self) -> Result<&DLTensor> {
        match self.version() {
            (1, _) => Ok(&self.header().dl_tensor),
            (major, minor) => Err(Error::VersionMismatch { major, minor }),
        }
    }
}

impl ManagedTensorLegacy {
    /// The tensor metadata.
    pub fn dl_tensor(&self) -> &DLTensor {
        &self.header().dl_tensor
    }
}

/// What an export allocates, once: the managed tensor first (so the two pointers coincide), then
/// the view that keeps the memory alive. On 64-bit targets DLPack's `int64_t` shape and strides
/// point into the view's own dimensions (`usize`/`isize` are 64-bit there); elsewhere the
/// context carries a converted copy.
#[repr(C)]
struct ExportContext<M> {
    managed: M,
    view: ExportedView,
    /// [`dims_fingerprint`] of the view at export: DLPack's shape and strides point into the
    /// view's own dims, which a faulty consumer could write; a view taken back must still have
    /// the layout that was checked when it was made.
    fingerprint: u64,
    #[cfg(not(target_pointer_width = "64"))]
    dims: smallvec::SmallVec<[i64; 12]>,
}

/// The view inside an export. Unless read-only, it counts as a writable foreign alias of its
/// owner's memory (the consumer may write) from its creation until it is dropped or taken back.
struct ExportedView(Option<TensorView>);

impl ExportedView {
    /// `view` as an export, counted as a writable alias unless read-only. When safe Rust may
    /// hold shared references to the memory ([`Owner::begin_shared_reads`]) the export goes
    /// out read-only instead, except that a view given up as its owner's only handle first
    /// clears those marks: no reference made through it can still live.
    fn new(mut view: TensorView) -> ExportedView {
        if !view.flags().read_only && !view.owner.try_begin_writable_export_given_up() {
            view.set_flags(view.flags().with_read_only(true));
        }
        ExportedView(Some(view))
    }

    /// A copy of `view` as an export: the owner handle and the writable alias are taken in
    /// one atomic step, or (as in [`ExportedView::new`]) the copy is read-only.
    fn copy_of(view: &TensorView) -> ExportedView {
        if view.flags().read_only {
            return ExportedView(Some(view.clone_with_owner(Owner::clone)));
        }
        match view.owner.try_clone_writable_export() {
            // The dims copy that follows cannot unwind (allocation failure aborts), so the
            // alias's handle reaches the export.
            Some(handle) => ExportedView(Some(view.clone_with_owner(move |_| handle))),
            None => {
                let mut copy = view.clone_with_owner(Owner::clone);
                copy.set_flags(copy.flags().with_read_only(true));
                ExportedView(Some(copy))
            }
        }
    }

    fn view(&self) -> &TensorView {
        self.0
            .as_ref()
            .expect("an exported view is present until taken")
    }

    fn view_mut(&mut self) -> &mut TensorView {
        self.0
            .as_mut()
            .expect("an exported view is present until taken")
    }

    /// The view back (the export is over), taken in place: the context that holds it is
    /// freed afterwards without moving it first.
    fn take_back(&mut self) -> TensorView {
        let view = self
            .0
            .take()
            .expect("an exported view is present until taken");
        if !view.flags().read_only {
            view.owner.end_writable_export();
        }
        view
    }
}

impl Drop for ExportedView {
    fn drop(&mut self) {
        if let Some(view) = self.0.take() {
            if view.flags().read_only {
                drop(view);
            } else {
                // The alias and its handle go in one atomic step.
                view.into_owner().release_writable_export();
            }
        }
    }
}

/// The `manager_ctx` of every versioned tensor this crate exports: the address of this static
/// identifies them (no foreign producer can point there), which survives inlining and LTO where
/// comparing deleter function pointers would not.
static OWN_VERSIONED: u8 = 1;
/// The same for legacy exports (their context has another layout).
static OWN_LEGACY: u8 = 2;

fn sentinel(tag: &'static u8) -> *mut std::ffi::c_void {
    std::ptr::from_ref(tag).cast_mut().cast()
}

impl<M> ExportContext<M> {
    /// Box the context and point the managed tensor's `dl_tensor` at its own dims.
    fn build(
        exported: ExportedView,
        managed: impl FnOnce(DLTensor) -> M,
        dl: impl Fn(&mut M) -> &mut DLTensor,
    ) -> *mut M {
        let view = exported.view();
        let ndim = view.ndim();
        #[cfg(not(target_pointer_width = "64"))]
        let dims: smallvec::SmallVec<[i64; 12]> = view
            .shape()
            .iter()
            .map(|&n| n as i64)
            .chain(view.strides().iter().map(|&s| s as i64))
            .collect();
        let fingerprint = dims_fingerprint(view);
        let tensor = DLTensor {
            data: view.data.cast(),
            device: view.device.to_dlpack(),
            ndim: ndim as i32,
            dtype: view.dtype.to_dlpack(),
            shape: std::ptr::null_mut(),
            strides: std::ptr::null_mut(),
            byte_offset: view.byte_offset as u64,
        };
        // Written field by field into the fresh allocation: `Box::new` of the whole context
        // would build its 280 bytes on the stack and `memcpy` them (a tenth of a round trip).
        let mut slot = Box::<ExportContext<M>>::new_uninit();
        let p = slot.as_mut_ptr();
        // SAFETY: `p` points to the uninitialised context in its allocation; each field is
        // written exactly once, in place, and all of them are written before `assume_init`.
        let ctx = unsafe {
            std::ptr::addr_of_mut!((*p).managed).write(managed(tensor));
            std::ptr::addr_of_mut!((*p).view).write(exported);
            std::ptr::addr_of_mut!((*p).fingerprint).write(fingerprint);
            #[cfg(not(target_pointer_width = "64"))]
            std::ptr::addr_of_mut!((*p).dims).write(dims);
            Box::into_raw(slot.assume_init())
        };
        // SAFETY: `ctx` was just allocated and is exclusively ours. The dims it points DLPack
        // at live on the heap inside it, and do not move or change, until the context is freed
        // (by the deleter, or by `reclaim`, which forgets the handle).
        unsafe {
            let (shape, strides) = (*ctx).dims_ptrs();
            let t = dl(&mut (*ctx).managed);
            if ndim > 0 {
                t.shape = shape;
                t.strides = strides;
            }
        }
        ctx.cast()
    }

    /// Where DLPack's shape and strides point for this context.
    #[cfg(target_pointer_width = "64")]
    fn dims_ptrs(&mut self) -> (*mut i64, *mut i64) {
        let (shape, strides) = self.view.view_mut().dims_mut_ptrs();
        (shape.cast(), strides.cast())
    }

    /// The addresses `dims_ptrs` gave, to recognise an unaltered export.
    #[cfg(target_pointer_width = "64")]
    fn dims_addresses(&self) -> (*const i64, *const i64) {
        let view = self.view.view();
        (view.shape().as_ptr().cast(), view.strides().as_ptr().cast())
    }

    /// The addresses `dims_ptrs` gave, to recognise an unaltered export.
    #[cfg(not(target_pointer_width = "64"))]
    fn dims_addresses(&self) -> (*const i64, *const i64) {
        let dims = self.dims.as_ptr();
        (dims, dims.wrapping_add(self.view.view().ndim()))
    }

    /// Where DLPack's shape and strides point for this context.
    #[cfg(not(target_pointer_width = "64"))]
    fn dims_ptrs(&mut self) -> (*mut i64, *mut i64) {
        let ndim = self.view.view().ndim();
        let dims = self.dims.as_mut_ptr();
        (dims, dims.wrapping_add(ndim))
    }
}

/// Box `exported` as a versioned managed tensor, flagged IS_COPIED when `sole_copy`.
fn versioned_export(exported: ExportedView, sole_copy: bool) -> ManagedTensorVersioned {
    let view = exported.view();
    let mut flags = DlpackFlags::empty();
    flags.set(DlpackFlags::READ_ONLY, view.flags().read_only);
    flags.set(DlpackFlags::IS_COPIED, sole_copy);
    flags.set(
        DlpackFlags::IS_SUBBYTE_TYPE_PADDED,
        view.flags().subbyte_padded,
    );
    let ptr = ExportContext::build(
        exported,
        |dl_tensor| DLManagedTensorVersioned {
            version: DLPackVersion {
                major: DLPACK_VERSION.0,
                minor: DLPACK_VERSION.1,
            },
            manager_ctx: sentinel(&OWN_VERSIONED),
            deleter: Some(delete_versioned),
            flags,
            dl_tensor,
        },
        |m| &mut m.dl_tensor,
    );
    // SAFETY: `ptr` is a fresh, live, non-null managed tensor we own.
    ManagedTensorVersioned(unsafe { NonNull::new_unchecked(ptr) })
}

/// Box `exported`, a writable view, as a legacy managed tensor: [`Error::SharedReaders`] when
/// it could not count as a writable alias (legacy tensors cannot say read-only).
fn legacy_export(exported: ExportedView) -> Result<ManagedTensorLegacy> {
    if exported.view().flags().read_only {
        return Err(Error::SharedReaders);
    }
    let ptr = ExportContext::build(
        exported,
        |dl_tensor| DLManagedTensor {
            dl_tensor,
            manager_ctx: sentinel(&OWN_LEGACY),
            deleter: Some(delete_legacy),
        },
        |m| &mut m.dl_tensor,
    );
    // SAFETY: as in `versioned_export`.
    Ok(ManagedTensorLegacy(unsafe { NonNull::new_unchecked(ptr) }))
}

/// Drop the export context `ctx` (the managed tensor's own address), containing any panic.
///
/// # Safety
/// `ctx` came from `ExportContext::<M>::build` and has not been freed.
unsafe fn free_context<M>(ctx: *mut M) {
    if ctx.is_null() {
        return;
    }
    // SAFETY: per the contract, `ctx` is a live boxed ExportContext<M> (managed is its first
    // field under repr(C)); it is freed exactly once, here.
    let context = unsafe { Box::from_raw(ctx.cast::<ExportContext<M>>()) };
    // A deleter is called from C: never unwind across it.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(context)));
}

unsafe extern "C" fn delete_versioned(m: *mut DLManagedTensorVersioned) {
    // SAFETY: installed only on managed tensors built by `to_dlpack_versioned`.
    unsafe { free_context(m) }
}

unsafe extern "C" fn delete_legacy(m: *mut DLManagedTensor) {
    // SAFETY: installed only on managed tensors built by `to_dlpack_legacy`.
    unsafe { free_context(m) }
}

impl TensorView {
    /// Export as an owned DLPack 1.3 `DLManagedTensorVersioned`, carrying the read-only and
    /// is-copied flags. Costs O(ndim): one allocation, no data touched.
    ///
    /// A writable view exports writable memory, except while safe Rust may hold shared
    /// references to it (a slice, an ndarray view or an Arrow buffer was made of this memory):
    /// then the export is flagged read-only, since the consumer could otherwise write under
    /// those references. [`TensorView::into_dlpack_versioned`] of the only handle always keeps
    /// a writable view writable.
    ///
    /// ```
    /// use dlbridge::TensorView;
    /// let t = TensorView::from_vec(vec![1u8, 2, 3], &[3])?;
    /// let managed = t.to_dlpack_versioned();
    /// let back = TensorView::from_dlpack_versioned(managed)?;
    /// assert_eq!(back.data_ptr(), t.data_ptr());
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn to_dlpack_versioned(&self) -> ManagedTensorVersioned {
        // `self` lives on beside the export, so the export is never the copy's sole handle.
        versioned_export(ExportedView::copy_of(self), false)
    }

    /// [`TensorView::to_dlpack_versioned`], consuming the view. When it holds the only handle
    /// on its memory, no reference made through it can live, so a writable view always
    /// exports writable memory:
    ///
    /// ```
    /// use dlbridge::TensorView;
    /// let t = TensorView::from_vec(vec![1u8, 2, 3], &[3])?;
    /// assert_eq!(t.as_slice::<u8>()?, &[1, 2, 3]); // a shared reference was made
    /// let shared = t.to_dlpack_versioned(); // so a copy of the view exports read-only
    /// assert!(TensorView::from_dlpack_versioned(shared)?.is_read_only());
    /// let mine = t.into_dlpack_versioned(); // the last handle, given up: writable again
    /// assert!(!TensorView::from_dlpack_versioned(mine)?.is_read_only());
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn into_dlpack_versioned(self) -> ManagedTensorVersioned {
        // IS_COPIED promises the consumer sole ownership: only when this export is the last
        // handle on a copy (no other view can see the memory).
        let sole_copy = self.flags().is_copied && self.owner.is_unique();
        versioned_export(ExportedView::new(self), sole_copy)
    }

    /// Export as a legacy (pre-1.0) `DLManagedTensor`. Legacy tensors cannot say "read-only",
    /// so a read-only view is refused ([`Error::ReadOnly`]), and so is memory safe Rust may
    /// hold shared references to ([`Error::SharedReaders`], see
    /// [`TensorView::to_dlpack_versioned`]); so are padded sub-byte tensors, which the legacy
    /// ABI cannot flag either.
    pub fn to_dlpack_legacy(&self) -> Result<ManagedTensorLegacy> {
        self.check_legacy_exportable()?;
        legacy_export(ExportedView::copy_of(self))
    }

    /// [`TensorView::to_dlpack_legacy`], consuming the view: as the only handle on its memory
    /// it never gives [`Error::SharedReaders`] (see [`TensorView::into_dlpack_versioned`]).
    pub fn into_dlpack_legacy(self) -> Result<ManagedTensorLegacy> {
        self.check_legacy_exportable()?;
        legacy_export(ExportedView::new(self))
    }

    fn check_legacy_exportable(&self) -> Result<()> {
        if self.flags().read_only {
            return Err(Error::ReadOnly(
                "a legacy DLManagedTensor cannot carry the read-only flag; export versioned",
            ));
        }
        if self.flags().subbyte_padded {
            return Err(Error::UnsupportedDtype {
                dtype: self.dtype,
                reason: "padded sub-byte elements need a versioned DLPack tensor",
            });
        }
        Ok(())
    }

    /// Import an owned versioned managed tensor. A major version other than 1 is refused with
    /// [`Error::VersionMismatch`]; malformed metadata with the matching error. On any error the
    /// deleter has already run (the tensor was handed over).
    pub fn from_dlpack_versioned(managed: ManagedTensorVersioned) -> Result<TensorView> {
        Self::import_versioned(managed, false)
    }

    /// [`TensorView::from_dlpack_versioned`]; with `foreign_writer`, a foreign tensor's owner
    /// counts a writable alias for its whole life ([`Owner::new_foreign_writable`]): for
    /// producers whose other handles safe Rust can write through (torch, via tch).
    pub(crate) fn import_versioned(
        managed: ManagedTensorVersioned,
        foreign_writer: bool,
    ) -> Result<TensorView> {
        let (major, minor) = managed.version();
        if major != 1 {
            // Another ABI: only the version and the deleter may be touched (dropping `managed`
            // runs the deleter).
            return Err(Error::VersionMismatch { major, minor });
        }
        let raw_flags = DlpackFlags::from_bits_retain(managed.flags());
        match reclaim(&managed, &OWN_VERSIONED, raw_flags) {
            Some(Ok(view)) => {
                std::mem::forget(managed);
                return Ok(view);
            }
            Some(Err(e)) => return Err(e), // dropping `managed` runs the deleter
            None => {}
        }
        let tensor = *managed.tensor();
        let flags = Flags {
            read_only: raw_flags.contains(DlpackFlags::READ_ONLY),
            is_copied: raw_flags.contains(DlpackFlags::IS_COPIED),
            subbyte_padded: raw_flags.contains(DlpackFlags::IS_SUBBYTE_TYPE_PADDED),
        };
        // DLPack 1.2 made strides mandatory; earlier versions allow NULL for compact row-major.
        let null_strides_ok = minor < 2;
        let owner = if foreign_writer {
            Owner::new_foreign_writable(managed)
        } else {
            Owner::new(managed)
        };
        // SAFETY: `ManagedTensorVersioned::from_raw`'s contract: `tensor` describes memory that
        // stays valid until the deleter runs, which the owner defers to the last view.
        unsafe { import(&tensor, flags, null_strides_ok, owner) }
    }

    /// Import an owned legacy managed tensor, **read-only** (NULL strides mean row-major).
    ///
    /// A legacy tensor has no flags, so it cannot say whether its memory may be written: JAX,
    /// for one, exports immutable arrays this way. Like numpy 2, dlbridge therefore imports it
    /// read-only. When you know the producer shares writable memory, use
    /// [`TensorView::from_dlpack_legacy_writable`]. A legacy tensor this crate exported comes
    /// back as the original view, with its own flags.
    ///
    /// ```
    /// use dlbridge::TensorView;
    /// let t = TensorView::from_vec(vec![1u8, 2, 3], &[3])?;
    /// let foreign = t.to_dlpack_legacy()?;
    /// assert!(!TensorView::from_dlpack_legacy(foreign)?.is_read_only()); // our own export
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn from_dlpack_legacy(managed: ManagedTensorLegacy) -> Result<TensorView> {
        Self::import_legacy(managed, true)
    }

    /// [`TensorView::from_dlpack_legacy`] for a producer known to share **writable** memory
    /// (PyTorch, CuPy and numpy export writable tensors as legacy; JAX and pyarrow do not).
    /// Writing memory the producer treats as immutable corrupts its values, so only use this
    /// when the producer is known.
    pub fn from_dlpack_legacy_writable(managed: ManagedTensorLegacy) -> Result<TensorView> {
        Self::import_legacy(managed, false)
    }

    fn import_legacy(managed: ManagedTensorLegacy, read_only: bool) -> Result<TensorView> {
        match reclaim(&managed, &OWN_LEGACY, DlpackFlags::empty()) {
            Some(Ok(view)) => {
                std::mem::forget(managed);
                return Ok(view);
            }
            Some(Err(e)) => return Err(e), // dropping `managed` runs the deleter
            None => {}
        }
        let tensor = *managed.dl_tensor();
        let flags = Flags {
            read_only,
            ..Flags::default()
        };
        // SAFETY: as in `from_dlpack_versioned`.
        unsafe { import(&tensor, flags, true, Owner::new(managed)) }
    }

    /// Import a borrowed `DLTensor` (no deleter: the exchange API's non-owning path), keeping
    /// `owner` as the keep-alive.
    ///
    /// # Safety
    /// `tensor` must describe memory that stays valid (and writable unless `flags.read_only`)
    /// while `owner` lives; its shape and strides arrays are read only during this call.
    pub unsafe fn from_dltensor(
        tensor: &DLTensor,
        flags: Flags,
        owner: Owner,
    ) -> Result<TensorView> {
        // SAFETY: forwarded.
        unsafe { import(tensor, flags, false, owner) }
    }
}

/// What `reclaim` needs to know of either managed-tensor handle.
trait ManagedHandle {
    type Raw;
    fn raw(&self) -> *mut Self::Raw;
    fn context(&self) -> *mut std::ffi::c_void;
    /// Only called after the major version was checked.
    fn tensor(&self) -> &DLTensor;
}

/// If `managed` is one of our own exports, take the original view back out of it (freeing the
/// context without running the owner's release): the caller must then forget the handle.
/// `None` for foreign tensors, which take the general path.
///
/// An own export whose metadata a consumer changed (DLPack consumers must not) is an error,
/// with the handle left to delete: its shape and strides point into the view's own dims, so a
/// write there would change the view behind the checks it was built with.
fn reclaim<H: ManagedHandle>(
    managed: &H,
    tag: &'static u8,
    flags: DlpackFlags,
) -> Option<Result<TensorView>> {
    if managed.context() != sentinel(tag) {
        return None;
    }
    let ctx = managed.raw().cast::<ExportContext<H::Raw>>();
    // SAFETY: the sentinel context identifies a live ExportContext this crate built (nothing
    // else can hold the address of our private static).
    let context = unsafe { &*ctx };
    let t = managed.tensor();
    let view = context.view.view();
    let unchanged = t.data == view.data.cast()
        && t.byte_offset == view.byte_offset as u64
        && t.ndim as usize == view.ndim()
        && (view.ndim() == 0
            || (t.shape.cast_const(), t.strides.cast_const()) == context.dims_addresses())
        && t.dtype == view.dtype.to_dlpack()
        && Device::from_dlpack(t.device) == view.device
        && context.fingerprint == dims_fingerprint(view);
    if !unchanged {
        return Some(Err(Error::UnsupportedTensor(
            "an export of this crate came back with its metadata changed by a consumer",
        )));
    }
    // SAFETY: the context is ours and is freed here instead of by the deleter (the caller
    // forgets the handle, so the deleter never runs).
    let mut context = unsafe { Box::from_raw(ctx) };
    let mut view = context.view.take_back();
    drop(context);
    let read_only = view.is_read_only() || flags.contains(DlpackFlags::READ_ONLY);
    // The view's own `is_copied` said its memory was a fresh copy when it was made; what counts
    // now is whether this export was its sole handle, which the export recorded in its flags.
    view.set_flags(
        view.flags()
            .with_read_only(read_only)
            .with_is_copied(flags.contains(DlpackFlags::IS_COPIED)),
    );
    Some(Ok(view))
}

/// A 64-bit digest of a view's shape and strides, to notice dims changed behind its back (not a
/// defence against a consumer that forges a collision on purpose: such code can write any
/// memory anyway). O(ndim), with no chain between the numbers: each is multiplied by its own
/// odd constant, so any single changed number changes the sum.
#[inline]
fn dims_fingerprint(view: &TensorView) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15; // 2^64 / golden ratio, odd
    view.shape()
        .iter()
        .map(|&n| n as u64)
        .chain(view.strides().iter().map(|&s| s as u64))
        .zip((0u64..).map(|i| K.wrapping_add(i << 1)))
        .fold(view.ndim() as u64, |h, (x, k)| {
            h.wrapping_add(x.wrapping_mul(k))
        })
}

/// Validate a `DLTensor` and describe it, with `owner` keeping it alive.
///
/// # Safety
/// When `tensor.ndim > 0`, `tensor.shape` must point to `ndim` readable `i64`s, and
/// `tensor.strides` too unless null. The memory must stay valid while `owner` lives.
unsafe fn import(
    tensor: &DLTensor,
    flags: Flags,
    null_strides_ok: bool,
    owner: Owner,
) -> Result<TensorView> {
    let ndim = usize::try_from(tensor.ndim)
        .ok()
        .filter(|&n| n <= MAX_NDIM)
        .ok_or(Error::TooManyDims {
            ndim: i64::from(tensor.ndim),
            max: MAX_NDIM,
        })?;
    let dtype = DType::from_dlpack(tensor.dtype)?;
    let dims = if ndim == 0 {
        OwnedDims::scalar()
    } else {
        if tensor.shape.is_null() {
            return Err(Error::NullPointer("DLTensor.shape with ndim > 0"));
        }
        // SAFETY: per the contract, `shape` points to `ndim` i64s.
        let raw_shape = unsafe { std::slice::from_raw_parts(tensor.shape, ndim) };
        let negative = || Error::InvalidShape(format!("negative extent in {raw_shape:?}"));
        if tensor.strides.is_null() {
            // The shape first: its errors come before the strides' (as they always have).
            let mut dims = OwnedDims::try_from_fn(ndim, |k| {
                Ok::<_, Error>((usize::try_from(raw_shape[k]).map_err(|_| negative())?, 0))
            })?;
            if !null_strides_ok {
                return Err(Error::NullPointer(
                    "DLTensor.strides (required since DLPack 1.2)",
                ));
            }
            dims.set_c_strides()?;
            dims
        } else {
            // SAFETY: per the contract, non-null `strides` points to `ndim` i64s.
            let raw_strides = unsafe { std::slice::from_raw_parts(tensor.strides, ndim) };
            OwnedDims::try_from_fn(ndim, |k| {
                Ok::<_, Error>((
                    usize::try_from(raw_shape[k]).map_err(|_| negative())?,
                    isize::try_from(raw_strides[k]).map_err(|_| Error::Overflow("stride"))?,
                ))
            })?
        }
    };
    let byte_offset =
        usize::try_from(tensor.byte_offset).map_err(|_| Error::Overflow("byte_offset"))?;
    let parts = RawParts {
        data: tensor.data.cast(),
        byte_offset,
        dims,
        dtype,
        device: Device::from_dlpack(tensor.device),
        flags,
        extent: None,
    };
    // SAFETY: per the contract, the described memory lives as long as `owner`.
    unsafe { TensorView::from_raw_parts(parts, owner) }
}

impl TryFrom<ManagedTensorVersioned> for TensorView {
    type Error = Error;
    /// [`TensorView::from_dlpack_versioned`].
    fn try_from(managed: ManagedTensorVersioned) -> Result<TensorView> {
        TensorView::from_dlpack_versioned(managed)
    }
}

impl TryFrom<ManagedTensorLegacy> for TensorView {
    type Error = Error;
    /// [`TensorView::from_dlpack_legacy`] (read-only).
    fn try_from(managed: ManagedTensorLegacy) -> Result<TensorView> {
        TensorView::from_dlpack_legacy(managed)
    }
}

impl From<&TensorView> for ManagedTensorVersioned {
    /// [`TensorView::to_dlpack_versioned`].
    fn from(view: &TensorView) -> ManagedTensorVersioned {
        view.to_dlpack_versioned()
    }
}

impl From<TensorView> for ManagedTensorVersioned {
    /// [`TensorView::into_dlpack_versioned`].
    fn from(view: TensorView) -> ManagedTensorVersioned {
        view.into_dlpack_versioned()
    }
}
