//! Zero-copy conversions between [`ndarray`] arrays and [`TensorView`].
//!
//! | from | to | how | cost |
//! |---|---|---|---|
//! | [`Array`] | `TensorView` | [`TensorView::from_ndarray`] / `TryFrom` (moves the array in; writable) | O(ndim) |
//! | [`ArcArray`] | `TensorView` | [`TensorView::from_arc_array`] / `TryFrom` (shares it; read-only) | O(ndim) |
//! | [`ArrayView`] | `&TensorView` | [`TensorView::with_array_view`] (scoped; read-only) | O(ndim) |
//! | [`ArrayViewMut`] | `&mut TensorView` | [`TensorView::with_array_view_mut`] (scoped; writable) | O(ndim) |
//! | `&TensorView` | [`ArrayView`] | [`TensorView::as_array`] / `TryFrom` | O(ndim) |
//! | `&mut TensorView` | [`ArrayViewMut`] | [`TensorView::as_array_mut`] / `TryFrom` | O(ndim) |
//! | `&TensorView` | [`Array`] (a copy) | [`TensorView::to_owned_array`] | O(numel) |
//!
//! Every layout ndarray can express travels unchanged: slices with steps, transposes, reversed
//! axes (negative strides), broadcast views (zero strides), empty and 0-d arrays. Strides are in
//! elements on both sides, so no conversion touches the data. (One normalisation: an array with
//! no elements comes back from `as_array`/`as_array_mut` with C-order strides, since its strides
//! address nothing.)
//!
//! # Element types
//! Only element types implementing [`Element`] convert: integers, `f32`/`f64`, `half::f16`,
//! `half::bf16`, `Complex<f32>`/`Complex<f64>` and `bool`. An array of any other type (a
//! `String`, a struct) simply does not compile. In the other direction the element type must
//! match the tensor's dtype exactly, else [`Error::DtypeMismatch`]; DLPack types with no Rust
//! element type (float8/6/4, sub-byte integers, vector lanes) therefore give `DtypeMismatch`
//! for every `T`.
//!
//! # Access rules
//! `as_array` and `as_array_mut` check, and return a typed [`Error`] instead of misbehaving:
//! the dtype ([`Error::DtypeMismatch`]), the device (host-accessible only,
//! [`Error::UnsupportedDevice`]), the alignment of the first element ([`Error::Misaligned`];
//! strides are in elements, so every element is then aligned), `bool` values (0 or 1), and, for a
//! fixed dimension type such as [`Ix2`](type@::ndarray::Ix2), the number of dimensions
//! ([`Error::InvalidShape`]). A mutable view additionally needs
//! [`TensorView::check_unique_writable`] — not read-only ([`Error::ReadOnly`]) and no other
//! handle (view, export, owner clone) on the same memory ([`Error::NotUnique`]) — and a layout in
//! which no two elements share memory ([`TensorView::has_internal_overlap`], e.g. broadcast
//! views, [`Error::Overlapping`]).
//!
//! ```
//! use dlbridge::TensorView;
//! use ndarray::{array, s, Ix2};
//!
//! let a = array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]];
//! let reversed = a.slice_move(s![.., ..;-1]); // negative stride
//! let ptr = reversed.as_ptr();
//! let t = TensorView::from_ndarray(reversed)?; // moved in, no copy
//! assert_eq!(t.strides(), &[3, -1]);
//! let back = TensorView::from_dlpack_versioned(t.to_dlpack_versioned())?;
//! let v = back.as_array::<f32, Ix2>()?;
//! assert_eq!(v.as_ptr(), ptr);
//! assert_eq!(v, array![[3.0, 2.0, 1.0], [6.0, 5.0, 4.0]]);
//! # Ok::<(), dlbridge::Error>(())
//! ```

use std::ptr::NonNull;
use std::sync::Arc;

use ::ndarray::{ArcArray, Array, ArrayView, ArrayViewMut, Axis, Dimension, ShapeBuilder};

use crate::dims::OwnedDims;
use crate::tensor::RawParts;
use crate::{Element, Error, Flags, ForeignError, Owner, Parts, Result, TensorView};

/// The dimension value `D` for `shape`, refusing a rank a fixed `D` cannot hold.
fn dimension<D: Dimension>(shape: &[usize]) -> Result<D> {
    if let Some(n) = D::NDIM {
        if n != shape.len() {
            return Err(Error::DimensionMismatch {
                expected: n,
                found: shape.len(),
            });
        }
    }
    let mut dim = D::zeros(shape.len());
    dim.slice_mut().copy_from_slice(shape);
    Ok(dim)
}

/// Pointer and strides from which ndarray can rebuild the view: ndarray's constructors want
/// non-negative strides and the lowest-address element, so negative axes are reported
/// separately and flipped back with `invert_axis` (O(1) each, no data touched).
struct Layout<T, D> {
    /// The element at the lowest address along every negative axis (dangling when empty).
    low: *mut T,
    dim: D,
    /// Absolute strides; `None` for an empty view, which takes ndarray's own (all-zero)
    /// strides for empty arrays.
    strides: Option<D>,
    /// Axes whose stride was negative.
    flipped: Vec<usize>,
}

impl TensorView {
    /// The ndarray layout of this view for `T` and `D`, after every access check but the
    /// mutability ones.
    fn ndarray_layout<T: Element, D: Dimension>(&self) -> Result<Layout<T, D>> {
        self.check_element_access::<T>()?;
        let dim = dimension::<D>(self.shape())?;
        let mut strides = D::zeros(self.ndim());
        let mut flipped = Vec::new();
        if self.numel() == 0 {
            // No element is ever read. ndarray requires that offsetting the pointer along every
            // axis stays valid even for an empty array (its slicing does pointer arithmetic), so
            // like ndarray itself use zero strides, with the data pointer when it is non-null
            // and aligned, else a dangling one; flip nothing.
            let ptr = self.data_ptr().cast_mut().cast::<T>();
            let usable = !ptr.is_null() && ptr.is_aligned();
            return Ok(Layout {
                low: if usable {
                    ptr
                } else {
                    NonNull::<T>::dangling().as_ptr()
                },
                dim,
                strides: None,
                flipped,
            });
        }
        let mut shift: isize = 0;
        for (axis, ((out, &s), &n)) in strides
            .slice_mut()
            .iter_mut()
            .zip(self.strides())
            .zip(self.shape())
            .enumerate()
        {
            *out = s.unsigned_abs();
            if s < 0 {
                flipped.push(axis);
                // Cannot overflow: the byte span of the view fits in isize (descriptor invariant).
                shift += (n as isize - 1) * s;
            }
        }
        // The lowest element of the flipped axes; within the view's reached bytes, so the
        // wrapping arithmetic never actually wraps.
        let low = self
            .data_ptr()
            .cast_mut()
            .cast::<T>()
            .wrapping_offset(shift);
        Ok(Layout {
            low,
            dim,
            strides: Some(strides),
            flipped,
        })
    }

    /// A borrowed ndarray view of this tensor: no copy, O(ndim).
    ///
    /// Fails with [`Error::DtypeMismatch`] unless `T` is exactly the tensor's element type,
    /// [`Error::UnsupportedDevice`] for device memory, [`Error::Misaligned`] when the first
    /// element is not aligned for `T`, [`Error::InvalidShape`] when a fixed `D` has another
    /// number of dimensions (use [`IxDyn`](type@::ndarray::IxDyn) to accept any), and
    /// [`Error::InvalidBool`] for `bool` tensors holding bytes other than 0 and 1, and
    /// [`Error::ForeignWriter`] while a writable export of the memory lives (as
    /// [`TensorView::as_slice`]).
    ///
    /// ```
    /// use dlbridge::TensorView;
    /// use ndarray::{array, Ix2, IxDyn};
    /// let t = TensorView::from_vec((0..6).collect::<Vec<i64>>(), &[2, 3])?.transpose()?;
    /// let a = t.as_array::<i64, Ix2>()?;
    /// assert_eq!(a, array![[0, 3], [1, 4], [2, 5]]);
    /// assert_eq!(a.as_ptr().cast::<u8>(), t.data_ptr());
    /// assert!(t.as_array::<i64, IxDyn>().is_ok());
    /// assert!(t.as_array::<f64, Ix2>().is_err()); // wrong element type
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn as_array<T: Element, D: Dimension>(&self) -> Result<ArrayView<'_, T, D>> {
        self.begin_shared_reads()?;
        let Layout {
            low,
            dim,
            strides,
            flipped,
        } = self.ndarray_layout::<T, D>()?;
        // SAFETY: `check_element_access` proved dtype == T::DTYPE (same size, valid values),
        // host memory and an aligned first element (so every element, strides being in
        // elements, is aligned). `low` and the absolute strides address exactly the elements of
        // this view, all inside memory its owner keeps valid — and not written through any
        // `&mut` — while `self` is borrowed, which bounds the returned lifetime. The byte span
        // and element count fit in isize (descriptor invariants). For an empty view `low` is
        // dangling, non-null and aligned, and never offset.
        let mut view = unsafe {
            match strides {
                Some(strides) => ArrayView::from_shape_ptr(dim.strides(strides), low.cast_const()),
                None => ArrayView::from_shape_ptr(dim, low.cast_const()),
            }
        };
        for axis in flipped {
            // Moves the pointer back to index 0 of the axis, inside the view (non-empty here).
            view.invert_axis(Axis(axis));
        }
        Ok(view)
    }

    /// A mutable ndarray view of this tensor: no copy, O(ndim).
    ///
    /// Checks everything [`TensorView::as_array`] checks, plus: the view is writable and the
    /// only handle on its memory ([`TensorView::check_unique_writable`]: [`Error::ReadOnly`],
    /// [`Error::NotUnique`]), and no two of its elements overlap
    /// ([`TensorView::has_internal_overlap`], conservative: [`Error::Overlapping`]).
    ///
    /// ```
    /// use dlbridge::TensorView;
    /// use ndarray::Ix1;
    /// let mut t = TensorView::from_vec(vec![1u32, 2, 3], &[3])?;
    /// t.as_array_mut::<u32, Ix1>()?.map_inplace(|x| *x *= 10);
    /// assert_eq!(t.as_slice::<u32>()?, &[10, 20, 30]);
    /// let shared = t.clone();
    /// assert!(t.as_array_mut::<u32, Ix1>().is_err()); // another handle exists
    /// # drop(shared);
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn as_array_mut<T: Element, D: Dimension>(&mut self) -> Result<ArrayViewMut<'_, T, D>> {
        // SAFETY: `true`: the aliasing rule is checked inside.
        unsafe { self.array_view_mut(true) }
    }

    /// [`TensorView::as_array_mut`] without the aliasing rule (everything else is checked).
    ///
    /// # Safety
    /// No other reference to these elements (Rust or foreign) may be used while the returned
    /// view lives.
    #[cfg(feature = "pyo3")]
    pub(crate) unsafe fn array_view_mut_unchecked<T: Element, D: Dimension>(
        &mut self,
    ) -> Result<ArrayViewMut<'_, T, D>> {
        // SAFETY: forwarded.
        unsafe { self.array_view_mut(false) }
    }

    /// # Safety
    /// With `check_unique` false, as [`TensorView::array_view_mut_unchecked`].
    unsafe fn array_view_mut<T: Element, D: Dimension>(
        &mut self,
        check_unique: bool,
    ) -> Result<ArrayViewMut<'_, T, D>> {
        if self.is_read_only() {
            return Err(Error::ReadOnly(
                "a read-only tensor never yields ArrayViewMut",
            ));
        }
        let Layout {
            low,
            dim,
            strides,
            flipped,
        } = self.ndarray_layout::<T, D>()?;
        if self.has_internal_overlap() {
            return Err(Error::Overlapping);
        }
        if check_unique {
            self.check_unique_writable()?;
        }
        // SAFETY: as in `as_array`, plus: the memory is writable (not read-only), no other
        // reference reaches these bytes while the view lives (the unique-handle rule just
        // checked, or the caller's contract), and
        // distinct indices address distinct elements (no internal overlap), as `ArrayViewMut`
        // requires.
        let mut view = unsafe {
            match strides {
                Some(strides) => ArrayViewMut::from_shape_ptr(dim.strides(strides), low),
                None => ArrayViewMut::from_shape_ptr(dim, low),
            }
        };
        for axis in flipped {
            view.invert_axis(Axis(axis));
        }
        Ok(view)
    }

    /// A fresh, standard-layout (C-order) `Array` holding a copy of the elements.
    ///
    /// This is the one conversion here that copies (through the crate's copy kernel). The
    /// result shares nothing with `self`; as a plain ndarray value it carries no flags, so
    /// turning it back into a `TensorView` gives a writable view whose
    /// [`is_copied`](TensorView::is_copied) is false (the flag describes what a producer
    /// exported, not where an array came from). Same checks as [`TensorView::as_array`].
    ///
    /// ```
    /// use dlbridge::TensorView;
    /// use ndarray::{array, Ix2};
    /// let t = TensorView::from_vec(vec![1i8, 2, 3, 4], &[2, 2])?.transpose()?;
    /// let a = t.to_owned_array::<i8, Ix2>()?;
    /// assert!(a.is_standard_layout());
    /// assert_eq!(a, array![[1, 3], [2, 4]]);
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn to_owned_array<T: Element, D: Dimension>(&self) -> Result<Array<T, D>> {
        let dim = dimension::<D>(self.shape())?;
        let data = self.to_vec::<T>()?;
        Array::from_shape_vec(dim, data)
            .map_err(|e| Error::Foreign(ForeignError::new("ndarray", e)))
    }

    /// Move an owned `Array` into a writable view: no copy, O(ndim).
    ///
    /// Any layout is kept, including arrays whose first element is not at the start of their
    /// allocation (after `slice_move`, or with negative strides). The array's allocation becomes
    /// the owner — freed when the last view or export of it goes — and its whole extent bounds
    /// [`TensorView::as_strided`]. Fails only for more than [`crate::MAX_NDIM`] dimensions.
    ///
    /// ```
    /// use dlbridge::TensorView;
    /// use ndarray::{s, Array2};
    /// let a = Array2::<f64>::zeros((4, 6)).slice_move(s![1.., ..;2]);
    /// let ptr = a.as_ptr();
    /// let t = TensorView::from_ndarray(a)?;
    /// assert_eq!((t.shape(), t.strides()), (&[3, 3][..], &[6, 2][..]));
    /// assert_eq!(t.data_ptr(), ptr.cast());
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn from_ndarray<T: Element, D: Dimension>(array: Array<T, D>) -> Result<TensorView> {
        // Filled straight from the array's own (no intermediate vectors).
        let dims = OwnedDims::from_slices(array.shape(), array.strides());
        let (mut storage, offset) = array.into_raw_vec_and_offset();
        let base = storage.as_mut_ptr();
        // `offset` is None only for an empty array, which reads nothing.
        let first = base.wrapping_add(offset.unwrap_or(0));
        let start = base as usize;
        // Cannot overflow: a Vec never holds more than isize::MAX bytes.
        let extent = start..start + storage.len() * std::mem::size_of::<T>();
        let parts = RawParts {
            data: first.cast(),
            byte_offset: 0,
            dims,
            dtype: T::DTYPE,
            device: crate::Device::CPU,
            flags: Flags::default(),
            extent: Some(extent),
        };
        // SAFETY: the array's elements live in `storage` (ndarray's owned representation is a
        // Vec; `into_raw_vec_and_offset` hands it over without moving the heap buffer), with the
        // first element `offset` slots in; its shape and strides reach only initialised
        // elements of that buffer, which is exactly `extent`. The Vec moves into the owner, so the
        // buffer stays allocated and uniquely owned — writable, exclusive — until the last handle
        // drops.
        unsafe { Ok(TensorView::from_raw_parts(parts, Owner::new(storage))?.assume_exclusive()) }
    }

    /// Share an `ArcArray` as a read-only view: no copy, O(ndim).
    ///
    /// The view holds one reference to the array's shared data, so the data outlives every
    /// view and export even if all other `ArcArray` handles drop. It is read-only because other
    /// handles may read the same elements (they copy on write, leaving these untouched).
    ///
    /// ```
    /// use dlbridge::TensorView;
    /// use ndarray::{ArcArray, Ix2};
    /// let a = ArcArray::from_shape_vec((2, 2), vec![1u16, 2, 3, 4]).unwrap();
    /// let t = TensorView::from_arc_array(a.clone())?;
    /// assert!(t.is_read_only());
    /// assert_eq!(t.as_array::<u16, Ix2>()?, a);
    /// assert!(!a.is_unique()); // the view keeps a reference
    /// drop(t);
    /// assert!(a.is_unique());
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn from_arc_array<T: Element, D: Dimension + 'static>(
        array: ArcArray<T, D>,
    ) -> Result<TensorView> {
        let parts = RawParts {
            data: array.as_ptr().cast_mut().cast(),
            byte_offset: 0,
            dims: OwnedDims::from_slices(array.shape(), array.strides()),
            dtype: T::DTYPE,
            device: crate::Device::CPU,
            flags: Flags::default().with_read_only(true),
            extent: None,
        };
        // SAFETY: the array's shape and strides from its first element reach only its own
        // elements, on the heap behind the Arc the owner keeps (moving the handle moves no data).
        // Read-only: other handles may share the data; they only ever write a private copy.
        unsafe { TensorView::from_raw_parts(parts, Owner::new(array)) }
    }

    /// Lend a borrowed `ArrayView` as a read-only `&TensorView` for the duration of `f`: no copy,
    /// O(ndim).
    ///
    /// A `TensorView` is `'static` and cloneable, so the borrow is enforced at run time: every
    /// clone or export made inside `f` must be dropped before `f` returns (or unwinds). If one
    /// survives, the process **aborts** — the memory goes back to its owner when this function
    /// returns, so continuing could only lead to a use after free. Fails only for more than
    /// [`crate::MAX_NDIM`] dimensions (and then `f` does not run).
    ///
    /// ```
    /// use dlbridge::TensorView;
    /// use ndarray::{array, s, Ix2};
    /// let a = array![[1i32, 2, 3], [4, 5, 6]];
    /// let col_sums = TensorView::with_array_view(a.slice(s![.., ..;-1]), |t| {
    ///     // e.g. hand `t.to_dlpack_versioned()` to a consumer that is done before returning
    ///     let managed = t.to_dlpack_versioned();
    ///     let back = TensorView::from_dlpack_versioned(managed).unwrap();
    ///     back.as_array::<i32, Ix2>().unwrap().sum_axis(ndarray::Axis(0))
    /// })?;
    /// assert_eq!(col_sums, array![9, 7, 5]);
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn with_array_view<'a, T, D, R, F>(view: ArrayView<'a, T, D>, f: F) -> Result<R>
    where
        T: Element,
        D: Dimension,
        F: FnOnce(&TensorView) -> R,
    {
        let ptr = view.as_ptr().cast_mut();
        let (shape, strides) = (view.shape().to_vec(), view.strides().to_vec());
        let guard = BorrowGuard::new();
        // SAFETY: an `ArrayView` addresses valid, initialised `T`s for 'a, which is still
        // running for the whole of this call; `guard` aborts before return if any handle on the
        // owner survives, so no view can reach the memory after 'a ends. Read-only, as the
        // memory is shared-borrowed.
        let tensor = unsafe { guard.view::<T>(ptr, shape, strides, true) }?;
        Ok(f(&tensor))
    }

    /// Lend a borrowed `ArrayViewMut` as a writable `&mut TensorView` for the duration of `f`:
    /// no copy, O(ndim). Same run-time borrow rule as [`TensorView::with_array_view`]: a clone
    /// or export surviving `f` aborts the process.
    ///
    /// ```
    /// use dlbridge::TensorView;
    /// use ndarray::{array, Ix2};
    /// let mut a = array![[1.0f64, 2.0], [3.0, 4.0]];
    /// TensorView::with_array_view_mut(a.view_mut(), |t| {
    ///     t.as_array_mut::<f64, Ix2>().unwrap().map_inplace(|x| *x = -*x);
    /// })?;
    /// assert_eq!(a, array![[-1.0, -2.0], [-3.0, -4.0]]);
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn with_array_view_mut<'a, T, D, R, F>(view: ArrayViewMut<'a, T, D>, f: F) -> Result<R>
    where
        T: Element,
        D: Dimension,
        F: FnOnce(&mut TensorView) -> R,
    {
        let mut view = view;
        let ptr = view.as_mut_ptr();
        let (shape, strides) = (view.shape().to_vec(), view.strides().to_vec());
        let guard = BorrowGuard::new();
        // SAFETY: an `ArrayViewMut` grants exclusive access to valid, initialised `T`s for 'a,
        // which outlives this call, and `view` (the only other path to them) is not used while
        // the tensor lives; `guard` aborts before return if any handle survives. Writable.
        let mut tensor = unsafe { guard.view::<T>(ptr, shape, strides, false) }?;
        Ok(f(&mut tensor))
    }
}

/// Detects views of borrowed memory that outlive their scope. The owner of such a view holds a
/// clone of `alive`; when the guard drops (after the view, being declared before it), the
/// count must be back to one, else some handle escaped and the process aborts.
struct BorrowGuard {
    alive: Arc<()>,
}

/// The owner value of a borrowed view: only signals, by being dropped, that no handle is left.
struct Borrowed(#[allow(dead_code)] Arc<()>);

impl BorrowGuard {
    fn new() -> BorrowGuard {
        BorrowGuard {
            alive: Arc::new(()),
        }
    }

    /// # Safety
    /// `ptr`, `shape`, `strides` (in elements) must describe initialised `T`s that stay valid —
    /// and, unless `read_only`, exclusively writable — until this guard drops.
    unsafe fn view<T: Element>(
        &self,
        ptr: *mut T,
        shape: Vec<usize>,
        strides: Vec<isize>,
        read_only: bool,
    ) -> Result<TensorView> {
        let mut parts = Parts {
            data: ptr.cast(),
            byte_offset: 0,
            shape,
            strides: Some(strides),
            dtype: T::DTYPE,
            device: crate::Device::CPU,
            flags: Flags::default(),
            extent: None,
        };
        parts.flags.read_only = read_only;
        let owner = Owner::new(Borrowed(Arc::clone(&self.alive)));
        // SAFETY: forwarded from the caller; every handle on `owner` is gone by the time the
        // guard's drop returns (or the process has aborted).
        let view = unsafe { TensorView::from_parts(parts, owner) }?;
        // A borrowed `ArrayViewMut` is exclusive for the lending closure's duration (the guard
        // ends the loan before the borrow does), so the lent view may be written.
        // SAFETY: see above; for read-only loans exclusivity is never used.
        Ok(if read_only {
            view
        } else {
            // SAFETY: the loan is exclusive until the guard ends it (see above).
            unsafe { view.assume_exclusive() }
        })
    }
}

impl Drop for BorrowGuard {
    fn drop(&mut self) {
        // `get_mut` succeeds only for the last handle, and synchronises (acquire) with the
        // release of every other one, possibly on another thread, so their reads of the data
        // happen before the borrow ends.
        if Arc::get_mut(&mut self.alive).is_none() {
            eprintln!(
                "dlbridge: a TensorView lent from a borrowed ndarray view outlived its scope \
                 (a clone or DLPack export was kept); aborting to prevent a use after free"
            );
            std::process::abort();
        }
    }
}

impl<T: Element, D: Dimension> TryFrom<Array<T, D>> for TensorView {
    type Error = Error;
    /// [`TensorView::from_ndarray`].
    fn try_from(array: Array<T, D>) -> Result<TensorView> {
        TensorView::from_ndarray(array)
    }
}

impl<T: Element, D: Dimension + 'static> TryFrom<ArcArray<T, D>> for TensorView {
    type Error = Error;
    /// [`TensorView::from_arc_array`].
    fn try_from(array: ArcArray<T, D>) -> Result<TensorView> {
        TensorView::from_arc_array(array)
    }
}

impl<'a, T: Element, D: Dimension> TryFrom<&'a TensorView> for ArrayView<'a, T, D> {
    type Error = Error;
    /// [`TensorView::as_array`].
    fn try_from(tensor: &'a TensorView) -> Result<ArrayView<'a, T, D>> {
        tensor.as_array()
    }
}

impl<'a, T: Element, D: Dimension> TryFrom<&'a mut TensorView> for ArrayViewMut<'a, T, D> {
    type Error = Error;
    /// [`TensorView::as_array_mut`].
    fn try_from(tensor: &'a mut TensorView) -> Result<ArrayViewMut<'a, T, D>> {
        tensor.as_array_mut()
    }
}
