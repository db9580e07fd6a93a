//! The strided tensor descriptor every ecosystem converts to and from.

use std::fmt;
use std::ops::Range;

use smallvec::SmallVec;

use crate::dims::{DimStore, OwnedDims};

use crate::layout::{c_strides, covers_span, dense, is_aligned, layout_span, quick_span, Span};
use crate::{DType, Device, Element, Error, Owner, Result};

/// Per-dimension storage: inline up to 6 dimensions, so views of typical tensors allocate
/// nothing.
pub(crate) type Dims<T> = SmallVec<[T; 6]>;

/// The most dimensions a descriptor accepts (numpy's limit; DLPack sets none).
pub const MAX_NDIM: usize = 64;

/// The two boolean flags DLPack carries with a tensor, plus sub-byte padding.
///
/// Non-exhaustive (DLPack may add flags): build one from [`Flags::default`] and the `with_*`
/// methods, e.g. `Flags::default().with_read_only(true)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Flags {
    /// Nobody may write through this view (DLPack `READ_ONLY`).
    pub read_only: bool,
    /// The memory is a fresh copy nobody else aliases (DLPack `IS_COPIED`).
    pub is_copied: bool,
    /// Sub-byte elements are stored one per byte instead of bit-packed
    /// (DLPack `IS_SUBBYTE_TYPE_PADDED`).
    pub subbyte_padded: bool,
}

impl Flags {
    /// These flags with `read_only` set as given.
    pub fn with_read_only(mut self, read_only: bool) -> Flags {
        self.read_only = read_only;
        self
    }
    /// These flags with `is_copied` set as given.
    pub fn with_is_copied(mut self, is_copied: bool) -> Flags {
        self.is_copied = is_copied;
        self
    }
    /// These flags with `subbyte_padded` set as given.
    pub fn with_subbyte_padded(mut self, padded: bool) -> Flags {
        self.subbyte_padded = padded;
        self
    }
}

/// Everything that describes a tensor's memory except its owner: the input of
/// [`TensorView::from_parts`], the constructor integrations use (it checks every metadata
/// invariant; the memory itself is the caller's promise, hence `unsafe`).
///
/// Non-exhaustive: start from [`Parts::contiguous`] and adjust with the `with_*` methods.
///
/// ```
/// use dlbridge::{DType, Parts};
/// let buf = [0u8; 32];
/// let parts = Parts::contiguous(buf.as_ptr().cast_mut(), vec![2, 2], DType::F32)
///     .with_strides(vec![1, 2]) // column-major
///     .with_extent(buf.as_ptr() as usize..buf.as_ptr() as usize + 32);
/// assert_eq!(parts.strides, Some(vec![1, 2]));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Parts {
    /// Base pointer (DLPack `data`); may be null only when the tensor has no elements.
    pub data: *mut u8,
    /// Bytes from `data` to the first element (DLPack `byte_offset`).
    pub byte_offset: usize,
    /// Extent of each dimension.
    pub shape: Vec<usize>,
    /// Step of each dimension in elements (not bytes); `None` means C-contiguous.
    pub strides: Option<Vec<isize>>,
    /// Element type.
    pub dtype: DType,
    /// Where the memory lives.
    pub device: Device,
    /// Read-only, is-copied and sub-byte padding.
    pub flags: Flags,
    /// The address range the owner keeps valid, when it is known and larger than what the view
    /// reaches; bounds [`TensorView::as_strided`]. `None`: exactly the bytes the view reaches.
    pub extent: Option<Range<usize>>,
}

/// [`Parts`] with inline dimensions and explicit strides: what the crate's importers build.
pub(crate) struct RawParts {
    pub(crate) data: *mut u8,
    pub(crate) byte_offset: usize,
    pub(crate) dims: OwnedDims,
    pub(crate) dtype: DType,
    pub(crate) device: Device,
    pub(crate) flags: Flags,
    pub(crate) extent: Option<Range<usize>>,
}

/// [`RawParts`] whose every metadata invariant has been checked: a view but for its owner.
/// Importers that make the owner from the view's extent (the borrow registry's range) check
/// first and attach the owner after.
pub(crate) struct CheckedParts {
    data: *mut u8,
    byte_offset: usize,
    dims: OwnedDims,
    bits: u8,
    dtype: DType,
    device: Device,
    extent: Range<usize>,
}

impl CheckedParts {
    /// Check `parts` (see [`TensorView::from_parts`] for the list).
    #[inline(always)]
    pub(crate) fn new(parts: RawParts) -> Result<CheckedParts> {
        let RawParts {
            data,
            byte_offset,
            dims,
            dtype,
            device,
            flags,
            extent,
        } = parts;
        let (shape, strides) = (dims.shape(), dims.strides());
        let ndim = dims.ndim();
        if ndim > MAX_NDIM {
            return Err(Error::TooManyDims {
                ndim: ndim as i64,
                max: MAX_NDIM,
            });
        }
        let item = dtype.storage_size(flags.subbyte_padded).unwrap_or(1) as isize;
        // The common case in one pass: elements of whole bytes, at least one, numbers that fit.
        let quick = dtype
            .storage_size(flags.subbyte_padded)
            .and_then(|size| quick_span(shape, strides, size));
        if quick.is_none()
            && strides
                .iter()
                .any(|s| s.checked_mul(item).and_then(isize::checked_abs).is_none())
        {
            // Even strides of extent-1 axes (which reach nothing) must fit in bytes, and so
            // must their magnitude (ndarray and numpy take absolute strides), so that every
            // consumer may compute byte strides without overflow.
            return Err(Error::Overflow("stride in bytes"));
        }
        let start = (data as usize)
            .checked_add(byte_offset)
            .ok_or_else(|| Error::Overflow("data pointer + byte offset"))?;
        let (span, c_dense) = match quick {
            Some(q) => (q.span, q.c_dense),
            None => (
                TensorView::general_span(shape, strides, dtype, flags)?,
                false,
            ),
        };
        let reached = match span.bytes {
            None => start..start,
            Some((lo, end)) => {
                if data.is_null() {
                    return Err(Error::NullData(span.numel));
                }
                let first = start
                    .checked_add_signed(lo)
                    .ok_or_else(|| Error::Overflow("lowest address"))?;
                let last = start
                    .checked_add_signed(end)
                    .ok_or_else(|| Error::Overflow("highest address"))?;
                first..last
            }
        };
        let (extent, allocation_known) = match extent {
            Some(e) => {
                if !reached.is_empty() && (reached.start < e.start || reached.end > e.end) {
                    return Err(Error::OutOfBounds(format!(
                        "the view reaches {reached:#x?} outside its owner's extent {e:#x?}"
                    )));
                }
                (e, true)
            }
            // Without a known allocation, the owner is known to hold the view's elements only:
            // their whole byte range when they leave no gaps.
            None => (reached, c_dense || covers_span(shape, strides, item)),
        };
        Ok(CheckedParts {
            data,
            byte_offset,
            dims,
            bits: bits::of(flags)
                | if allocation_known {
                    bits::ALLOCATION_KNOWN
                } else {
                    0
                },
            dtype,
            device,
            extent,
        })
    }

    /// The parts of a C-contiguous layout over exactly the `len` elements of `size` bytes at
    /// `data`, owned (all of them, so `ALLOCATION_KNOWN`): what `TensorView::from_vec` and its
    /// kin build. Every check of [`CheckedParts::new`] holds by construction, so none is
    /// repeated.
    ///
    /// # Safety
    /// `data` addresses `len > 0` elements of `size` bytes in one live allocation (so their
    /// byte length fits `isize` and their end does not overflow); `dims` has at most
    /// [`MAX_NDIM`] axes, an extent product of `len` and C-contiguous strides (in elements),
    /// but for axes of extent 1, which reach nothing and may have any stride whose byte value
    /// and its magnitude fit `isize` (numpy leaves any there); `dtype` has elements of `size`
    /// whole bytes. With [`Access::Exclusive`], nothing reaches the elements but through the
    /// owner the parts are given.
    #[inline]
    pub(crate) unsafe fn over_whole_elements(
        data: *mut u8,
        len: usize,
        size: usize,
        dims: OwnedDims,
        dtype: DType,
        access: Access,
    ) -> CheckedParts {
        debug_assert!(len > 0 && dims.ndim() <= MAX_NDIM);
        debug_assert_eq!(dtype.storage_size(false), Some(size));
        let start = data as usize;
        CheckedParts {
            data,
            byte_offset: 0,
            dims,
            bits: access.bits() | bits::ALLOCATION_KNOWN,
            dtype,
            device: Device::CPU,
            extent: start..start + len * size,
        }
    }

    /// The address range the view's owner must keep valid.
    #[cfg(feature = "pyo3")]
    pub(crate) fn extent(&self) -> &Range<usize> {
        &self.extent
    }

    /// The view, owned by `owner`.
    ///
    /// # Safety
    /// As for [`TensorView::from_parts`], with these parts.
    #[inline(always)]
    pub(crate) unsafe fn with_owner(self, owner: Owner) -> TensorView {
        let (dims, ndim) = self.dims.into_parts();
        TensorView {
            data: self.data,
            byte_offset: self.byte_offset,
            dims,
            ndim: ndim as u8, // at most MAX_NDIM, checked in `new`
            bits: self.bits,
            dtype: self.dtype,
            device: self.device,
            extent: self.extent,
            owner,
        }
    }
}

impl Parts {
    /// These parts with explicit strides (in elements).
    pub fn with_strides(mut self, strides: Vec<isize>) -> Parts {
        self.strides = Some(strides);
        self
    }
    /// These parts with the first element `byte_offset` bytes after `data`.
    pub fn with_byte_offset(mut self, byte_offset: usize) -> Parts {
        self.byte_offset = byte_offset;
        self
    }
    /// These parts on another device.
    pub fn with_device(mut self, device: Device) -> Parts {
        self.device = device;
        self
    }
    /// These parts with other flags.
    pub fn with_flags(mut self, flags: Flags) -> Parts {
        self.flags = flags;
        self
    }
    /// These parts with the address range the owner keeps valid (bounds `as_strided`).
    pub fn with_extent(mut self, extent: Range<usize>) -> Parts {
        self.extent = Some(extent);
        self
    }

    /// Parts for a C-contiguous CPU tensor at `data`, writable, with no known larger extent.
    pub fn contiguous(data: *mut u8, shape: Vec<usize>, dtype: DType) -> Parts {
        Parts {
            data,
            byte_offset: 0,
            shape,
            strides: None,
            dtype,
            device: Device::CPU,
            flags: Flags::default(),
            extent: None,
        }
    }
}

/// A strided view of a tensor, with the owner that keeps its memory alive.
///
/// The descriptor holds exactly what DLPack's `DLTensor` holds — base pointer, byte offset,
/// shape, strides in elements (zero and negative allowed), [`DType`], [`Device`] — plus
/// [`Flags`] and an [`Owner`]. Creating views ([`TensorView::slice`], [`TensorView::permute`],
/// [`TensorView::reshape`], [`TensorView::as_strided`], ...) or exporting never copies data;
/// cloning a view clones the owner handle.
///
/// # Invariants
/// Upheld by every constructor, so every method may rely on them:
/// - `shape.len() == strides.len() <= MAX_NDIM`;
/// - every stride times the element size fits in `isize` (extent-1 axes included);
/// - the element count, and every byte offset `sum((i_k) * stride_k * itemsize)` for valid
///   indices, fit in `isize`, and the addresses of the first and last reached bytes do not wrap;
/// - if the tensor has elements, `data` is non-null and every reached byte lies in `extent`, a
///   range the owner keeps valid for the owner's lifetime (for host memory: readable, and
///   writable unless `read_only`);
/// - bit-packed sub-byte elements are always C-contiguous.
///
/// # Example
/// ```
/// use dlbridge::{TensorView, SliceArg};
/// let t = TensorView::from_vec((0..12).collect::<Vec<i32>>(), &[3, 4])?;
/// let col = t.slice(1, SliceArg::range(1, 2))?.transpose()?;
/// assert_eq!(col.shape(), &[1, 3]);
/// assert_eq!(col.to_vec::<i32>()?, vec![1, 5, 9]);
/// # Ok::<(), dlbridge::Error>(())
/// ```
#[repr(C)] // field order chosen: see below
pub struct TensorView {
    /// Shape and strides; `ndim` says which of its fields is live (private to this module, so
    /// only the constructors and [`TensorView::set_layout`] change the pair).
    dims: DimStore,
    pub(crate) data: *mut u8,
    pub(crate) byte_offset: usize,
    /// Bounds every view derived from this one. When `allocation_known()`, the owner holds all
    /// of it; otherwise only the elements of the view it was built as (a lent or imported view
    /// with gaps between its elements), and `as_strided` may not reach past those.
    pub(crate) extent: Range<usize>,
    pub(crate) device: Device,
    pub(crate) dtype: DType,
    ndim: u8,
    /// [`Flags`] plus the two facts below, one bit each (`bits::*`): the descriptor stays within
    /// 128 bytes.
    bits: u8,
    /// Last: the owner's non-null pointer is the niche of `Option<TensorView>` and
    /// `Result<TensorView, _>`, and code that moves one of those after testing the niche copies
    /// the bytes before it. With the niche last they are whole 16-byte blocks from offset 0, so
    /// the copy reads back what was stored as it was stored; with it first (Rust's own order)
    /// every 16-byte load straddled two stores, and each stalled the CPU's store forwarding
    /// (a `#[pyfunction]` taking a `TensorView` spent a fifth of its time there).
    pub(crate) owner: Owner,
}

// At most 128 bytes on 64-bit targets: the compiler moves a view with vector stores, while
// above every move out of a `Result` or an export is a `memcpy` call (measured: a third of a
// DLPack round trip). And the owner is the only niche: an `Option` of a view is no larger.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<TensorView>() <= 128);
const _: () =
    assert!(std::mem::size_of::<Option<TensorView>>() == std::mem::size_of::<TensorView>());

/// The bits of [`TensorView::bits`].
mod bits {
    pub(super) const READ_ONLY: u8 = 1;
    pub(super) const IS_COPIED: u8 = 1 << 1;
    pub(super) const SUBBYTE_PADDED: u8 = 1 << 2;
    /// The owner is known to hold all of `extent`.
    pub(super) const ALLOCATION_KNOWN: u8 = 1 << 3;
    /// The memory is reachable only through this owner (Rust-allocated or moved in from a
    /// uniquely owned container), never by foreign code: what mutable access requires.
    pub(super) const EXCLUSIVE: u8 = 1 << 4;
    pub(super) const FLAGS: u8 = READ_ONLY | IS_COPIED | SUBBYTE_PADDED;

    pub(super) fn of(flags: super::Flags) -> u8 {
        (if flags.read_only { READ_ONLY } else { 0 })
            | (if flags.is_copied { IS_COPIED } else { 0 })
            | (if flags.subbyte_padded {
                SUBBYTE_PADDED
            } else {
                0
            })
    }
}

/// How the memory of a view built over a container's elements may be reached.
#[derive(Clone, Copy)]
pub(crate) enum Access {
    /// Only read (other `&` access to the elements may exist).
    ReadOnly,
    /// Written through the view, and perhaps by others (a numpy array's memory).
    #[cfg_attr(not(feature = "pyo3"), allow(dead_code))]
    Writable,
    /// Written through the view, and reached only through its owner (`EXCLUSIVE`).
    Exclusive,
}

impl Access {
    fn bits(self) -> u8 {
        match self {
            Access::ReadOnly => bits::READ_ONLY,
            Access::Writable => 0,
            Access::Exclusive => bits::EXCLUSIVE,
        }
    }
}

impl Drop for TensorView {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `ndim` is the store's count (set with it, private to this module); the store
        // is released only here.
        unsafe { self.dims.free(self.ndim as usize) }
    }
}

// SAFETY: the raw pointer is only an address into memory the `Owner` (itself Send + Sync) keeps
// alive; shared access through `&TensorView` only reads, and writes need `&mut TensorView` plus a
// uniqueness check on the owner, so moving or sharing the view across threads adds no data race.
unsafe impl Send for TensorView {}
// SAFETY: see `Send`; `&TensorView` never hands out mutable access.
unsafe impl Sync for TensorView {}

impl Clone for TensorView {
    #[inline]
    fn clone(&self) -> TensorView {
        self.clone_with_owner(Owner::clone)
    }
}

impl TensorView {
    /// A copy of this view (same memory, dims and flags) held alive by `handle(&owner)`, a new
    /// handle on this view's owner. `handle` runs last, so that nothing can unwind between
    /// taking the handle and the view that owns it (an export's handle also counts an alias,
    /// which an ordinary drop would not give back).
    #[inline]
    pub(crate) fn clone_with_owner(&self, handle: impl FnOnce(&Owner) -> Owner) -> TensorView {
        // SAFETY: `ndim` is the store's count; the copy gets the same count.
        let dims = unsafe { self.dims.duplicate(self.ndim as usize) };
        TensorView {
            data: self.data,
            byte_offset: self.byte_offset,
            dims,
            ndim: self.ndim,
            bits: self.bits,
            dtype: self.dtype,
            device: self.device,
            extent: self.extent.clone(),
            owner: handle(&self.owner),
        }
    }

    /// Replace the owner by `wrap(owner)`, an owner that holds the old one: no extra handle is
    /// taken and dropped on the way.
    // Used by the pyo3 borrow; tested (under Miri too) in every build.
    #[cfg_attr(not(feature = "pyo3"), allow(dead_code))]
    pub(crate) fn wrap_owner(&mut self, wrap: impl FnOnce(Owner) -> Owner) {
        /// Aborts if `wrap` unwinds: the handle read out below must not be dropped twice.
        struct AbortOnUnwind;
        impl Drop for AbortOnUnwind {
            fn drop(&mut self) {
                std::process::abort();
            }
        }
        let guard = AbortOnUnwind;
        // SAFETY: the handle is moved out and a new one written back in its place before the
        // view can be used or dropped again. If `wrap` unwinds, it has dropped the handle it was
        // given, and the guard aborts before anything touches `self.owner` (a stale copy) again.
        unsafe {
            let old = std::ptr::read(&self.owner);
            std::ptr::write(&mut self.owner, wrap(old));
        }
        std::mem::forget(guard);
    }

    /// The view's owner handle, the rest of the view released.
    pub(crate) fn into_owner(self) -> Owner {
        let mut view = std::mem::ManuallyDrop::new(self);
        let ndim = view.ndim as usize;
        // SAFETY: `ndim` is the store's count; `view` is never dropped, so the store is
        // released only here.
        unsafe { view.dims.free(ndim) };
        // SAFETY: `view` is never used or dropped again, so the owner moves out exactly once;
        // its other fields own nothing.
        unsafe { std::ptr::read(&view.owner) }
    }
}

impl fmt::Debug for TensorView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TensorView")
            .field("data", &self.data_ptr())
            .field("shape", &self.shape())
            .field("strides", &self.strides())
            .field("dtype", &self.dtype)
            .field("device", &self.device)
            .field("flags", &self.flags())
            .field("owner", &self.owner)
            .finish()
    }
}

impl TensorView {
    /// Build a view from raw parts, checking every metadata invariant.
    ///
    /// Checks: rank limit, matching shape/strides lengths, overflow of element count, byte span
    /// and addresses, null data with elements, packed sub-byte layouts, and that the reached
    /// bytes lie within `parts.extent` when one is given.
    ///
    /// Unlike arrow-data's `build()` / `build_unchecked()`, there is no safe checked
    /// constructor beside an unchecked one: what the metadata checks prove (the layout's
    /// numbers fit and stay inside `extent`) is not what makes a raw pointer sound to read, so
    /// every construction from a raw pointer is `unsafe`, and the checks always run (they cost
    /// O(ndim)). Safe construction goes through containers instead: [`TensorView::from_vec`],
    /// [`TensorView::from_owner`] and [`TensorView::from_owner_mut`].
    ///
    /// # Safety
    /// For as long as `owner` (or any clone of it) lives, the bytes the described tensor reaches —
    /// and the whole of `parts.extent`, when given — must stay allocated and, for host devices,
    /// readable, and also writable unless `parts.flags.read_only` is set. Nobody else may write
    /// them in ways Rust's aliasing rules forbid while a `&[T]` obtained from this view lives.
    pub unsafe fn from_parts(parts: Parts, owner: Owner) -> Result<TensorView> {
        let Parts {
            data,
            byte_offset,
            shape,
            strides,
            dtype,
            device,
            flags,
            extent,
        } = parts;
        let strides = match strides {
            Some(s) => s,
            None => c_strides(&shape)?,
        };
        if shape.len() > MAX_NDIM {
            return Err(Error::TooManyDims {
                ndim: shape.len() as i64,
                max: MAX_NDIM,
            });
        }
        if strides.len() != shape.len() {
            return Err(Error::ArgumentCount {
                what: "strides",
                given: strides.len(),
                ndim: shape.len(),
            });
        }
        let raw = RawParts {
            data,
            byte_offset,
            dims: OwnedDims::from_slices(&shape, &strides),
            dtype,
            device,
            flags,
            extent,
        };
        // SAFETY: forwarded (`from_parts`'s contract is `from_raw_parts`').
        unsafe { TensorView::from_raw_parts(raw, owner) }
    }

    /// [`TensorView::from_parts`] over inline dimensions (no heap allocation for up to four),
    /// for the crate's own importers, whose hot paths build views from foreign metadata.
    ///
    /// # Safety
    /// As for [`TensorView::from_parts`].
    #[inline(always)]
    pub(crate) unsafe fn from_raw_parts(parts: RawParts, owner: Owner) -> Result<TensorView> {
        let checked = CheckedParts::new(parts)?;
        // SAFETY: forwarded.
        Ok(unsafe { checked.with_owner(owner) })
    }

    /// Element count and reached bytes of any layout (the general path of `from_raw_parts`).
    fn general_span(
        shape: &[usize],
        strides: &[isize],
        dtype: DType,
        flags: Flags,
    ) -> Result<Span> {
        Ok(match dtype.storage_size(flags.subbyte_padded) {
            Some(size) => layout_span(shape, strides, size)?,
            None => {
                let numel = layout_span(shape, strides, 1)?.numel;
                if !dense(shape.iter().zip(strides.iter()).rev(), numel) {
                    return Err(Error::NotContiguous(format!(
                        "bit-packed {dtype} elements must be C-contiguous"
                    )));
                }
                let bits = (numel as u128) * u128::from(dtype.element_bits());
                let bytes =
                    isize::try_from(bits.div_ceil(8)).map_err(|_| Error::Overflow("byte span"))?;
                let bytes = (numel > 0).then_some((0, bytes));
                Span { numel, bytes }
            }
        })
    }

    /// Declare that nothing outside this view's owner can reach its memory (it was allocated by
    /// Rust, or moved in from a uniquely owned container), which is what mutable access
    /// ([`TensorView::as_mut_slice`]) requires besides writability and a unique handle.
    ///
    /// # Safety
    /// No foreign code (C, Python, torch, another Rust value) may read or write the memory
    /// except through this view's owner, for as long as the owner lives.
    pub unsafe fn assume_exclusive(mut self) -> TensorView {
        self.bits |= bits::EXCLUSIVE;
        self
    }

    /// A read-only, C-contiguous CPU tensor over the elements of any container that derefs to
    /// a slice (`AsRef<[T]>`): a `Vec`, a `Box<[T]>`, an `Arc<[T]>`, a memory map, a type of
    /// yours that counts its drops. No copy, no `unsafe`: the container moves into the
    /// [`Owner`] first, `as_ref` is called once there, and the container is dropped exactly
    /// once, after the last view or export (as `bytes::Bytes::from_owner` does).
    ///
    /// The container must keep those elements where `as_ref` found them, unchanged, until it is
    /// dropped: what every safe container does (one that mutates through `&self` needs
    /// `unsafe impl Sync`, which is where that promise is made).
    ///
    /// ```
    /// use dlbridge::TensorView;
    /// struct Weights(Vec<f32>); // anything that can lend its elements as a slice
    /// impl AsRef<[f32]> for Weights {
    ///     fn as_ref(&self) -> &[f32] { &self.0 }
    /// }
    /// let t = TensorView::from_owner(Weights(vec![0.5; 6]), &[2, 3])?;
    /// assert!(t.is_read_only());
    /// assert!(t.owner().downcast_ref::<Weights>().is_some());
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    #[inline]
    pub fn from_owner<T, O>(owner: O, shape: &[usize]) -> Result<TensorView>
    where
        T: Element,
        O: AsRef<[T]> + Send + Sync + 'static,
    {
        let (owner, (ptr, len)) = Owner::new_inspected(owner, |o| {
            let elements = o.as_ref();
            (elements.as_ptr().cast_mut(), elements.len())
        });
        // SAFETY: `as_ref` lent `len` initialised `T`s at `ptr` from the container in its final
        // place inside the owner, which keeps them, unchanged, until it is dropped (the
        // container's contract above). Read-only: other `&` access to them may exist.
        unsafe { Self::over_elements(ptr, len, shape, Access::ReadOnly, owner) }
    }

    /// A writable, C-contiguous CPU tensor over the elements of a container that lends them
    /// mutably (`AsMut<[T]>`): [`TensorView::from_owner`] for data Rust may write through the
    /// view ([`TensorView::as_mut_slice`] while it is the only handle).
    ///
    /// ```
    /// use dlbridge::TensorView;
    /// let mut t = TensorView::from_owner_mut(vec![1u8, 2, 3], &[3])?;
    /// t.as_mut_slice::<u8>()?[0] = 9;
    /// assert_eq!(t.to_vec::<u8>()?, vec![9, 2, 3]);
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    #[inline]
    pub fn from_owner_mut<T, O>(owner: O, shape: &[usize]) -> Result<TensorView>
    where
        T: Element,
        O: AsMut<[T]> + Send + Sync + 'static,
    {
        let (owner, (ptr, len)) = Owner::new_inspected(owner, |o| {
            let elements = o.as_mut();
            (elements.as_mut_ptr(), elements.len())
        });
        // SAFETY: as in `from_owner`, and `as_mut` lent the elements exclusively: after this
        // call nothing reaches them but through the owner, which only this view's handles hold.
        unsafe { Self::over_elements(ptr, len, shape, Access::Exclusive, owner) }
    }

    /// A C-contiguous view of `len` elements at `ptr` kept alive by `owner`, bounded by them.
    ///
    /// # Safety
    /// `ptr` and `len` are those of a slice of initialised `T`s (so `ptr` is not null and the
    /// slice's bytes fit `isize`), which stay valid while `owner` lives, and are reached as
    /// `access` says (with [`Access::Exclusive`], through the owner only).
    #[inline]
    unsafe fn over_elements<T: Element>(
        ptr: *mut T,
        len: usize,
        shape: &[usize],
        access: Access,
        owner: Owner,
    ) -> Result<TensorView> {
        let numel = shape
            .iter()
            .try_fold(1usize, |n, &extent| n.checked_mul(extent))
            .ok_or(Error::Overflow("element count"))?;
        if numel != len {
            return Err(Error::LengthMismatch {
                shape: shape.to_vec(),
                numel,
                len,
            });
        }
        let size = std::mem::size_of::<T>();
        if len == 0 || shape.len() > MAX_NDIM {
            // Empty: an extent may still be too large for numpy or ndarray (`[0, usize::MAX]`),
            // which the general checks refuse. The rank limit is theirs too (the same error).
            let start = ptr as usize;
            let parts = RawParts {
                data: ptr.cast(),
                byte_offset: 0,
                dims: OwnedDims::c_contiguous(shape)?,
                dtype: T::DTYPE,
                device: Device::CPU,
                flags: Flags {
                    read_only: matches!(access, Access::ReadOnly),
                    ..Flags::default()
                },
                extent: Some(start..start + len * size),
            };
            // SAFETY: forwarded; the extent is exactly the elements, reached as `access` says.
            let view = unsafe { TensorView::from_raw_parts(parts, owner) }?;
            return Ok(match access {
                // SAFETY: the caller's contract for `Exclusive`.
                Access::Exclusive => unsafe { view.assume_exclusive() },
                Access::ReadOnly | Access::Writable => view,
            });
        }
        let dims = OwnedDims::c_contiguous(shape)?;
        // SAFETY: the caller's `len` elements of `T` (whole bytes, `T::DTYPE`'s size) at `ptr`,
        // which a slice reaches (so `len * size` fits `isize` and the end does not overflow);
        // C strides of at most MAX_NDIM extents whose product is `len` (checked above). As
        // `len > 0`, no extent is 0, so each extent and each stride is at most `len`: in bytes
        // they fit `isize` as the general checks require.
        let parts = unsafe {
            CheckedParts::over_whole_elements(ptr.cast(), len, size, dims, T::DTYPE, access)
        };
        // SAFETY: forwarded: the owner keeps the elements valid.
        Ok(unsafe { parts.with_owner(owner) })
    }

    /// A C-contiguous, writable CPU tensor that owns `data`.
    ///
    /// ```
    /// let t = dlbridge::TensorView::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
    /// assert_eq!(t.as_slice::<f32>()?, &[1.0, 2.0, 3.0, 4.0]);
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    #[inline]
    pub fn from_vec<T: Element>(data: Vec<T>, shape: &[usize]) -> Result<TensorView> {
        Self::from_owner_mut(data, shape)
    }

    /// A C-contiguous, writable CPU tensor that owns `data`.
    #[inline]
    pub fn from_boxed_slice<T: Element>(data: Box<[T]>, shape: &[usize]) -> Result<TensorView> {
        Self::from_owner_mut(data, shape)
    }

    /// A C-contiguous CPU tensor sharing `data`; read-only, because `Arc` contents are
    /// immutable in Rust.
    pub fn from_arc_slice<T: Element>(
        data: std::sync::Arc<[T]>,
        shape: &[usize],
    ) -> Result<TensorView> {
        Self::from_owner(data, shape)
    }

    /// A C-contiguous CPU tensor over a `'static` slice; read-only.
    pub fn from_static<T: Element>(data: &'static [T], shape: &[usize]) -> Result<TensorView> {
        Self::from_owner(data, shape)
    }

    /// The dimensions.
    #[inline]
    pub fn shape(&self) -> &[usize] {
        // SAFETY: `ndim` is the store's count (both private to this module, set together).
        unsafe { self.dims.shape(self.ndim as usize) }
    }
    /// The steps of each dimension, in elements (not bytes).
    #[inline]
    pub fn strides(&self) -> &[isize] {
        // SAFETY: as in `shape`.
        unsafe { self.dims.strides(self.ndim as usize) }
    }
    /// The number of dimensions.
    #[inline]
    pub fn ndim(&self) -> usize {
        self.ndim as usize
    }
    /// Replace shape and strides (same length, at most [`MAX_NDIM`]) keeping everything else:
    /// the one way views change their layout after construction. The caller has checked the
    /// descriptor's invariants for the new layout.
    pub(crate) fn set_layout(&mut self, shape: &[usize], strides: &[isize]) {
        debug_assert!(shape.len() <= MAX_NDIM);
        let dims = DimStore::new(shape, strides);
        // SAFETY: `ndim` is the old store's count; it is released once, then replaced together
        // with its count.
        unsafe { self.dims.free(self.ndim as usize) };
        self.dims = dims;
        self.ndim = shape.len() as u8;
    }
    /// Pointers to this view's shape and strides for a DLPack export that holds the view
    /// (valid until the view moves or changes layout).
    #[cfg(target_pointer_width = "64")]
    pub(crate) fn dims_mut_ptrs(&mut self) -> (*mut usize, *mut isize) {
        // SAFETY: as in `shape`.
        unsafe { self.dims.as_mut_ptrs(self.ndim as usize) }
    }
    /// Set the flags (read-only, is-copied, sub-byte padding).
    #[inline]
    pub(crate) fn set_flags(&mut self, flags: Flags) {
        self.bits = (self.bits & !bits::FLAGS) | bits::of(flags);
    }
    /// Bound the views derived from this one to `range`, a part of the current extent that
    /// holds every byte this view reaches (what a borrow covers: the borrow registry's range).
    #[cfg_attr(not(feature = "pyo3"), allow(dead_code))]
    pub(crate) fn confine_extent(&mut self, range: Range<usize>) {
        // Within the extent by construction for a view that reaches bytes; clamped so that an
        // empty view's range (its start address) cannot widen it either.
        let start = range.start.clamp(self.extent.start, self.extent.end);
        let end = range.end.clamp(start, self.extent.end);
        self.extent = start..end;
    }
    /// Whether the owner is known to hold all of `extent` (see [`TensorView::extent`]).
    #[inline]
    pub(crate) fn allocation_known(&self) -> bool {
        self.bits & bits::ALLOCATION_KNOWN != 0
    }
    /// Whether nothing outside the owner can reach the memory (see
    /// [`TensorView::assume_exclusive`]).
    #[inline]
    pub(crate) fn exclusive(&self) -> bool {
        self.bits & bits::EXCLUSIVE != 0
    }
    /// Set or clear the two facts of [`TensorView::allocation_known`] and
    /// [`TensorView::exclusive`], as a derived view inherits them.
    ///
    /// # Safety
    /// `exclusive` only when [`TensorView::assume_exclusive`]'s contract holds.
    #[inline]
    pub(crate) unsafe fn set_provenance(&mut self, allocation_known: bool, exclusive: bool) {
        self.bits &= !(bits::ALLOCATION_KNOWN | bits::EXCLUSIVE);
        if allocation_known {
            self.bits |= bits::ALLOCATION_KNOWN;
        }
        if exclusive {
            self.bits |= bits::EXCLUSIVE;
        }
    }
    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// The device the memory lives on.
    pub fn device(&self) -> Device {
        self.device
    }
    /// The flags (read-only, is-copied, sub-byte padding).
    #[inline]
    pub fn flags(&self) -> Flags {
        Flags {
            read_only: self.bits & bits::READ_ONLY != 0,
            is_copied: self.bits & bits::IS_COPIED != 0,
            subbyte_padded: self.bits & bits::SUBBYTE_PADDED != 0,
        }
    }
    /// True when nobody may write through this view.
    #[inline]
    pub fn is_read_only(&self) -> bool {
        self.bits & bits::READ_ONLY != 0
    }
    /// True when this view's memory is a copy made for it (by the copy kernel or a producer).
    #[inline]
    pub fn is_copied(&self) -> bool {
        self.bits & bits::IS_COPIED != 0
    }
    /// The keep-alive handle of the memory.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }
    /// The base pointer (DLPack `data`); add [`TensorView::byte_offset`] for the first element.
    pub fn base_ptr(&self) -> *mut u8 {
        self.data
    }
    /// Bytes from the base pointer to the first element (DLPack `byte_offset`).
    pub fn byte_offset(&self) -> usize {
        self.byte_offset
    }
    /// Address of the first element (index `[0, 0, ...]`).
    pub fn data_ptr(&self) -> *const u8 {
        self.data.wrapping_add(self.byte_offset)
    }
    /// The address range the owner is known to keep valid, which bounds
    /// [`TensorView::as_strided`]; `None` when only this view's own elements are known to be
    /// held (a lent or imported view with gaps between its elements, whose gaps may belong to
    /// someone else).
    pub fn extent(&self) -> Option<Range<usize>> {
        self.allocation_known().then(|| self.extent.clone())
    }
    /// Returns a view marked read-only (no data is touched).
    pub fn into_read_only(mut self) -> TensorView {
        self.bits |= bits::READ_ONLY;
        self
    }
    /// Byte size of one element (1 for padded sub-byte types), or `None` for bit-packed ones.
    pub fn itemsize(&self) -> Option<usize> {
        self.dtype.storage_size(self.flags().subbyte_padded)
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        // Cannot overflow: checked at construction.
        self.shape().iter().product()
    }

    /// Bytes of the elements' storage if laid out densely (bit-packed types round up).
    /// Saturates at `usize::MAX` for broadcast views too large to ever materialise.
    pub fn nbytes(&self) -> usize {
        match self.itemsize() {
            Some(size) => self.numel().saturating_mul(size),
            None => {
                // Bit-packed tensors are contiguous, so this was checked at construction.
                (self.numel() * self.dtype.element_bits() as usize).div_ceil(8)
            }
        }
    }

    /// The address range this view reads (lowest byte to one past the highest); empty for a
    /// tensor without elements.
    pub fn byte_span(&self) -> Range<usize> {
        let start = self.data_ptr() as usize;
        match self.itemsize() {
            None => start..start + self.nbytes(),
            Some(size) => match layout_span(self.shape(), self.strides(), size) {
                Ok(Span {
                    bytes: Some((lo, end)),
                    ..
                }) => start.wrapping_add_signed(lo)..start.wrapping_add_signed(end),
                _ => start..start,
            },
        }
    }

    /// Row-major contiguous, ignoring the strides of size-1 dimensions (as numpy does).
    pub fn is_c_contiguous(&self) -> bool {
        dense(
            self.shape().iter().zip(self.strides().iter()).rev(),
            self.numel(),
        )
    }

    /// Column-major contiguous, ignoring the strides of size-1 dimensions.
    pub fn is_f_contiguous(&self) -> bool {
        dense(self.shape().iter().zip(self.strides().iter()), self.numel())
    }

    /// Whether two views may share bytes: same device and intersecting byte spans. A `false` is
    /// certain; a `true` may be a false positive for interleaved strided views (as numpy's
    /// `may_share_memory`).
    pub fn may_overlap(&self, other: &TensorView) -> bool {
        let (a, b) = (self.byte_span(), other.byte_span());
        self.device == other.device
            && !a.is_empty()
            && !b.is_empty()
            && a.start < b.end
            && b.start < a.end
    }

    /// Whether two elements of this view can share bytes (a zero stride on a dimension longer
    /// than 1, or strides that interleave). Conservative: `true` may be a false positive.
    pub fn has_internal_overlap(&self) -> bool {
        let Some(size) = self.itemsize() else {
            return false;
        };
        if self.numel() <= 1 {
            return false;
        }
        let mut dims: Vec<(usize, usize)> = self
            .shape()
            .iter()
            .zip(self.strides().iter())
            .filter(|(&n, _)| n > 1)
            .map(|(&n, &s)| (n, s.unsigned_abs() * size))
            .collect();
        dims.sort_by_key(|&(_, s)| s);
        let mut reach = size;
        for (n, s) in dims {
            if s < reach {
                return true;
            }
            reach += s * (n - 1);
        }
        false
    }

    /// Byte offset of the element at `index`, relative to the first element.
    pub fn offset_of(&self, index: &[usize]) -> Result<isize> {
        let size = self.itemsize().ok_or_else(|| Error::UnsupportedDtype {
            dtype: self.dtype,
            reason: "bit-packed elements have no byte offset",
        })?;
        if index.len() != self.ndim() {
            return Err(Error::ArgumentCount {
                what: "indices",
                given: index.len(),
                ndim: self.ndim(),
            });
        }
        let mut off = 0isize;
        for (axis, ((&i, &n), &s)) in index
            .iter()
            .zip(self.shape())
            .zip(self.strides())
            .enumerate()
        {
            if i >= n {
                return Err(Error::OutOfBounds(format!(
                    "index {i} on axis {axis} of extent {n}"
                )));
            }
            // Cannot overflow: bounded by the span checked at construction.
            off += i as isize * s * size as isize;
        }
        Ok(off)
    }

    pub(crate) fn require_host(&self, what: &'static str) -> Result<()> {
        if self.device.is_host_accessible() {
            Ok(())
        } else {
            Err(Error::UnsupportedDevice {
                device: self.device,
                reason: what,
            })
        }
    }

    fn check_typed<T: Element>(&self) -> Result<()> {
        if self.dtype != T::DTYPE {
            return Err(Error::DtypeMismatch {
                expected: T::DTYPE,
                found: self.dtype,
            });
        }
        self.require_host("typed element access needs host memory")?;
        let address = self.data_ptr() as usize;
        let align = std::mem::align_of::<T>();
        if !is_aligned(address, align, self.numel()) {
            return Err(Error::Misaligned { address, align });
        }
        Ok(())
    }

    /// Check that `T` may be read at the element positions of this view: dtype, host device,
    /// alignment of the first element (strides count elements, so the rest follow) and, for
    /// types with invalid bit patterns, every value. Integrations that build typed strided
    /// views (ndarray) call this.
    pub fn check_element_access<T: Element>(&self) -> Result<()> {
        // Strides are in elements, so every element is as aligned as the first one.
        self.check_typed::<T>()?;
        if !T::ANY_BIT_PATTERN {
            self.check_bool_values()?;
        }
        Ok(())
    }

    /// Every element is a valid `bool` byte (0 or 1): the check typed access makes for element
    /// types with invalid bit patterns, after `check_typed` (host memory of the element type).
    /// Reads each element once, in row-major order, and allocates nothing. Only `bool` has a
    /// check (see [`Element`]'s contract): any other dtype is refused.
    fn check_bool_values(&self) -> Result<()> {
        if self.dtype != DType::BOOL {
            return Err(Error::UnsupportedDtype {
                dtype: self.dtype,
                reason: "only bool elements have invalid values this crate can check",
            });
        }
        let first = self.data_ptr();
        let (mut index, mut invalid) = (0, None);
        crate::layout::for_each_offset(self.shape(), self.strides(), |offset| {
            // SAFETY: every element position of a view lies inside its live memory (the view's
            // invariant), which is host memory here; a bool element is one byte, and any byte
            // may be read as `u8`.
            let byte = unsafe { first.offset(offset).read() };
            if byte > 1 {
                invalid = Some(Error::InvalidBool { index, byte });
                return false;
            }
            index += 1;
            true
        });
        invalid.map_or(Ok(()), Err)
    }

    /// The elements as a slice, when the view is C-contiguous host memory of element type `T`.
    ///
    /// Refused with [`Error::ForeignWriter`] while this crate has handed the memory to foreign
    /// code writably (a torch tensor from [`TensorView::to_tch`], a DLPack export without the
    /// read-only flag) and that alias lives: the foreign code could write under the `&[T]`.
    /// Drop the alias first, export read-only, or copy ([`TensorView::to_vec`]).
    ///
    /// Memory a foreign producer shares with us (an import) may still be written by that
    /// producer: that is the DLPack contract, which leaves synchronisation to the two sides; the
    /// slice is valid while the producer does not write.
    pub fn as_slice<T: Element>(&self) -> Result<&[T]> {
        let n = self.check_slice_layout::<T>()?;
        // Marked before the values are checked: once marked, no writable alias can change them.
        self.begin_shared_reads()?;
        self.check_slice_values::<T>(n)?;
        if n == 0 {
            return Ok(&[]);
        }
        // SAFETY: dtype equals T::DTYPE, so elements are `T`-sized; the view is C-contiguous with
        // `n` elements from the (aligned, checked) first element, all inside memory the owner
        // keeps valid while `self` is borrowed; values are valid `T` (checked for bool); no
        // writable alias this crate made lives (checked), so nothing it knows of writes them.
        Ok(unsafe { std::slice::from_raw_parts(self.data_ptr().cast::<T>(), n) })
    }

    /// The bytes of a C-contiguous host view (any dtype, bit-packed ones included), under the
    /// shared-slice rule of [`TensorView::as_slice`]; for writers of files and streams.
    #[cfg(feature = "safetensors")]
    pub(crate) fn as_bytes(&self) -> Result<&[u8]> {
        self.begin_shared_reads()?;
        self.require_host("reading the bytes needs host memory")?;
        if !self.is_c_contiguous() {
            return Err(Error::NotContiguous(
                "the bytes of a tensor need a C-contiguous view (use to_contiguous)".into(),
            ));
        }
        let n = self.nbytes();
        if n == 0 {
            return Ok(&[]);
        }
        // SAFETY: a C-contiguous view reaches exactly `nbytes` bytes from its first element, in
        // host memory its owner keeps valid while `self` is borrowed; every byte pattern is a
        // valid `u8`; no writable alias this crate made lives (checked).
        Ok(unsafe { std::slice::from_raw_parts(self.data_ptr(), n) })
    }

    /// The checks a mutable slice needs besides the aliasing rule (writable, then as
    /// `check_slice`): the element count.
    #[cfg(feature = "pyo3")]
    pub(crate) fn check_mut_slice<T: Element>(&self) -> Result<usize> {
        if self.flags().read_only {
            return Err(Error::ReadOnly(
                "a read-only tensor never yields a mutable slice",
            ));
        }
        self.check_slice::<T>()
    }

    /// The checks every slice of the elements needs (dtype, host, alignment, C-contiguity, valid
    /// values): the element count.
    fn check_slice<T: Element>(&self) -> Result<usize> {
        let n = self.check_slice_layout::<T>()?;
        self.check_slice_values::<T>(n)?;
        Ok(n)
    }

    /// The layout half of [`TensorView::check_slice`] (dtype, host, alignment, C-contiguity):
    /// the element count.
    fn check_slice_layout<T: Element>(&self) -> Result<usize> {
        self.check_typed::<T>()?;
        if !self.is_c_contiguous() {
            return Err(Error::NotContiguous(
                "a slice needs a C-contiguous view (use to_contiguous)".into(),
            ));
        }
        Ok(self.numel())
    }

    /// The values half of [`TensorView::check_slice`]: every one of the `n` elements is a valid
    /// `T` (only `bool` has invalid bit patterns).
    fn check_slice_values<T: Element>(&self, n: usize) -> Result<()> {
        if n > 0 && !T::ANY_BIT_PATTERN {
            self.check_bool_values()?;
        }
        Ok(())
    }

    /// The elements as a mutable slice: C-contiguous host memory of element type `T`, writable,
    /// and reachable through no other handle (no other view, export or owner clone lives).
    pub fn as_mut_slice<T: Element>(&mut self) -> Result<&mut [T]> {
        self.check_unique_writable()?;
        let n = self.check_slice::<T>()?;
        if n == 0 {
            return Ok(&mut []);
        }
        // SAFETY: as in `as_slice`, plus: the memory is writable (not read-only), reachable by no
        // foreign code (exclusive), and this view holds the only handle to the owner (so no
        // export lives either): no other reference to these bytes exists while `self` is
        // mutably borrowed.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.data_ptr().cast_mut().cast::<T>(), n) })
    }

    /// [`TensorView::as_mut_slice`] without the exclusivity rule, for memory a foreign producer
    /// shares writably (an imported DLPack or torch tensor): dtype, layout, writability and the
    /// unique-handle rule are still checked.
    ///
    /// # Safety
    /// Nothing outside Rust (the producer, other consumers) may read or write these elements
    /// while the returned slice lives.
    pub unsafe fn as_mut_slice_unchecked<T: Element>(&mut self) -> Result<&mut [T]> {
        let exclusive = self.bits & bits::EXCLUSIVE;
        self.bits |= bits::EXCLUSIVE;
        let checked = self.check_unique_writable();
        self.bits = (self.bits & !bits::EXCLUSIVE) | exclusive;
        checked?;
        let n = self.check_slice::<T>()?;
        if n == 0 {
            return Ok(&mut []);
        }
        // SAFETY: as in `as_mut_slice`; foreign access is excluded by the caller's contract.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.data_ptr().cast_mut().cast::<T>(), n) })
    }

    /// What every shared reference to the elements requires, checked and recorded at once: no
    /// writable foreign alias of the memory lives, and none will be made while the reference
    /// may ([`Owner::begin_shared_reads`]: later exports go out read-only).
    pub(crate) fn begin_shared_reads(&self) -> Result<()> {
        self.owner
            .begin_shared_reads()
            .map_err(Error::ForeignWriter)
    }

    /// Succeeds when no writable foreign alias of this memory, made by this crate, lives (see
    /// [`Owner::writable_exports`]). A snapshot: the shared references themselves are granted
    /// by [`TensorView::as_slice`] and friends, which also keep new aliases from being made.
    pub fn check_no_foreign_writer(&self) -> Result<()> {
        match self.owner.writable_exports() {
            0 => Ok(()),
            n => Err(Error::ForeignWriter(n)),
        }
    }

    /// Succeeds when writing through this view is allowed: not read-only, and this view holds
    /// the only handle to its owner (so no other view or export can observe the writes).
    ///
    /// This is the rule every mutable access in the crate enforces. It also requires memory no
    /// foreign code can reach (Rust-allocated, see [`TensorView::assume_exclusive`]): an
    /// imported DLPack, torch or Python tensor may be written by its producer at any time, so
    /// Rust cannot lend `&mut` to it. Such memory is written through the producer's own API, or
    /// through [`TensorView::as_mut_slice_unchecked`].
    pub fn check_unique_writable(&self) -> Result<()> {
        if self.flags().read_only {
            return Err(Error::ReadOnly("mutable access refused"));
        }
        if !self.owner.is_unique() {
            return Err(Error::NotUnique(
                self.owner.strong_count().saturating_sub(1),
            ));
        }
        if !self.exclusive() {
            return Err(Error::NotExclusive);
        }
        Ok(())
    }
}

impl<T: Element> From<Vec<T>> for TensorView {
    /// A 1-D, writable tensor that owns the `Vec` ([`TensorView::from_vec`] with its length).
    ///
    /// ```
    /// let t = dlbridge::TensorView::from(vec![1u16, 2, 3]);
    /// assert_eq!(t.shape(), &[3]);
    /// ```
    fn from(values: Vec<T>) -> TensorView {
        let len = values.len();
        // A Vec holds at most isize::MAX bytes, so its length is always a valid 1-D shape.
        TensorView::from_vec(values, &[len]).expect("a Vec's length is a valid 1-D shape")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `t` with its owner wrapped in one that depends on it (what `borrow::shared` does).
    fn wrapped(mut t: TensorView) -> TensorView {
        t.wrap_owner(|old| Owner::with_dependencies((), vec![old]));
        t
    }

    /// Two wrappers around one owner (two Python imports of one Rust copy) are not unique: the
    /// memory is the dependency's, which both reach. Before, each wrapper counted 1 and
    /// `as_mut_slice` on one beside `as_slice` on the other aliased `&mut` with `&`.
    #[test]
    fn a_wrapped_owner_is_unique_only_with_its_dependencies() {
        let base = TensorView::from_vec(vec![1u8, 2, 3], &[3]).unwrap();
        let mut a = wrapped(base.clone());
        let b = wrapped(base);
        assert!(a.as_mut_slice::<u8>().is_err(), "b reaches the same memory");
        assert_eq!(b.as_slice::<u8>().unwrap(), &[1, 2, 3]);
        drop(b);
        a.as_mut_slice::<u8>().unwrap()[0] = 9;
        assert_eq!(a.to_vec::<u8>().unwrap(), vec![9, 2, 3]);
    }

    /// An alias exported through one wrapper is seen through its siblings (two argument views
    /// of one Python object wrap one owner): no safe slice of either, nor of the memory itself,
    /// while the consumer may write.
    #[test]
    fn sibling_wrappers_see_each_others_writable_exports() {
        let base = TensorView::from_vec(vec![1u8, 2, 3], &[3]).unwrap();
        let (a, b) = (wrapped(base.clone()), wrapped(base.clone()));
        let export = a.to_dlpack_versioned();
        assert!(matches!(b.as_slice::<u8>(), Err(Error::ForeignWriter(1))));
        assert!(matches!(
            base.as_slice::<u8>(),
            Err(Error::ForeignWriter(1))
        ));
        assert_eq!(a.owner().writable_exports(), 1);
        let legacy = b.to_dlpack_legacy().unwrap();
        assert_eq!(base.owner().writable_exports(), 2);
        drop(export);
        assert!(a.as_slice::<u8>().is_err(), "b's legacy export lives");
        drop(legacy);
        assert_eq!(b.as_slice::<u8>().unwrap(), &[1, 2, 3]);
        // A reclaimed export stops counting everywhere, and the counts balance to the end.
        let back = TensorView::from_dlpack_versioned(a.to_dlpack_versioned()).unwrap();
        assert_eq!(base.owner().writable_exports(), 0);
        drop((a, b, back));
        assert!(base.owner().is_unique());
    }

    /// Elements stored inside the owner's own block (an array, not a `Vec`'s heap buffer) stay
    /// reachable through the pointer taken when the owner was made (Miri's Stacked Borrows
    /// rejected the old order, which moved the `Box` after the pointer was taken).
    #[test]
    fn elements_inside_the_owner_block_stay_reachable() {
        let mut t = TensorView::from_owner_mut([1u32, 2, 3, 4], &[4]).unwrap();
        t.as_mut_slice::<u32>().unwrap()[1] = 7;
        assert_eq!(t.as_slice::<u32>().unwrap(), &[1, 7, 3, 4]);
        let r = TensorView::from_owner([5u16; 3], &[3]).unwrap();
        assert_eq!(r.as_slice::<u16>().unwrap(), &[5, 5, 5]);
    }

    /// `wrap_owner` moves the handle into the new owner: no count changes but the new block's.
    #[test]
    fn wrapping_the_owner_takes_no_extra_handle() {
        struct Counted(std::sync::Arc<std::sync::atomic::AtomicUsize>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let drops = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut t = TensorView::from_vec(vec![1u8, 2, 3], &[3]).unwrap();
        let inner = t.owner().clone();
        assert_eq!(inner.strong_count(), 2);
        t.wrap_owner(|old| Owner::with_dependencies(Counted(drops.clone()), vec![old]));
        assert_eq!(
            inner.strong_count(),
            2,
            "the old handle moved into the new owner"
        );
        assert!(!t.owner().ptr_eq(&inner));
        assert_eq!(t.owner().strong_count(), 1);
        assert_eq!(t.to_vec::<u8>().unwrap(), vec![1, 2, 3]);
        drop(t);
        assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(inner.is_unique());
    }

    /// At 128 bytes the compiler moves a view with vector stores; above, every move out of a
    /// `Result` or an export is a `memcpy` call (measured: a third of a DLPack round trip).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_view_fits_in_two_cache_lines() {
        assert!(
            std::mem::size_of::<TensorView>() <= 128,
            "TensorView takes {} bytes",
            std::mem::size_of::<TensorView>()
        );
    }

    #[test]
    fn flags_and_provenance_bits_are_independent() {
        let mut t = TensorView::from_vec(vec![0u8; 4], &[4]).unwrap();
        assert!(t.exclusive() && t.allocation_known());
        let all = Flags::default()
            .with_read_only(true)
            .with_is_copied(true)
            .with_subbyte_padded(true);
        t.set_flags(all);
        assert_eq!(t.flags(), all);
        assert!(t.exclusive() && t.allocation_known());
        t.set_flags(Flags::default());
        assert_eq!(t.flags(), Flags::default());
        // SAFETY: clearing exclusivity withdraws a permission only.
        unsafe { t.set_provenance(true, false) };
        assert!(!t.exclusive() && t.allocation_known());
        assert_eq!(t.flags(), Flags::default());
    }

    #[test]
    fn layouts_of_every_rank_survive_clone_and_change() {
        for ndim in 0..=7 {
            let v = TensorView::from_vec(vec![0u8; 1 << ndim], &vec![2; ndim])
                .unwrap()
                .transpose()
                .unwrap(); // strides that differ from the shape
            let u = v.unsqueeze(0).unwrap();
            assert_eq!(u.ndim(), ndim + 1);
            assert_eq!(u.clone().shape()[1..], *v.shape());
            let back = u.squeeze_axis(0).unwrap();
            assert_eq!((back.shape(), back.strides()), (v.shape(), v.strides()));
            assert_eq!(u.squeeze().strides(), v.strides());
        }
    }
}
