//! The copy kernel: any host view into fresh contiguous memory, in C or F order, optionally
//! byte-swapped. The only place in the crate where element data is copied.
//!
//! Strategy: drop extent-1 axes, order axes by destination stride, merge axes that are
//! contiguous in both source and destination, then
//! - copy whole runs with `memcpy` when the innermost axis is contiguous on both sides;
//! - copy in cache-sized tiles when the source is contiguous along another axis (transposes);
//! - otherwise walk elements with the element size known at compile time.

use crate::layout::{c_strides, f_strides};
use crate::owner::AlignedBuffer;
use crate::tensor::Parts;
use crate::{DTypeCode, Element, Error, Flags, Owner, Result, TensorView};

/// Memory order of a contiguous result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Row-major: the last axis varies fastest.
    C,
    /// Column-major: the first axis varies fastest.
    F,
}

/// Whether a conversion may copy data when the target cannot express the layout, type,
/// alignment or mutability without copying. Shared by every ecosystem module.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CopyPolicy {
    /// Never copy: fail with a typed error instead (the default).
    #[default]
    Never,
    /// Copy when (and only when) the target needs it; the result says so
    /// ([`TensorView::is_copied`]).
    IfNeeded,
}

impl CopyPolicy {
    /// True for [`CopyPolicy::IfNeeded`].
    pub fn allows_copy(self) -> bool {
        self == CopyPolicy::IfNeeded
    }
}

/// One axis of a copy: extent, source and destination strides in bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Axis {
    pub(crate) n: usize,
    pub(crate) src: isize,
    pub(crate) dst: isize,
}

/// Side of the square tiles used for transposing copies, in elements.
const TILE: usize = 16;

impl TensorView {
    /// A new, C- or F-contiguous, writable copy of this view, flagged `is_copied`.
    ///
    /// Works for any host view, including negative, zero and overlapping strides.
    ///
    /// ```
    /// use dlbridge::{Order, TensorView};
    /// let t = TensorView::from_vec((0..6).collect::<Vec<i32>>(), &[2, 3])?.transpose()?;
    /// let c = t.to_contiguous(Order::C)?;
    /// assert!(c.is_copied() && c.is_c_contiguous());
    /// assert_eq!(c.as_slice::<i32>()?, &[0, 3, 1, 4, 2, 5]);
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn to_contiguous(&self, order: Order) -> Result<TensorView> {
        self.copy_with(order, false)
    }

    /// Like [`TensorView::to_contiguous`], reversing the bytes of every number: turns
    /// big-endian data into native order (complex numbers swap each part, vectors each lane).
    pub fn to_contiguous_byteswapped(&self, order: Order) -> Result<TensorView> {
        self.copy_with(order, true)
    }

    /// The elements in row-major order, copied into a `Vec`.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        self.check_element_access::<T>()?;
        let n = self.numel();
        let mut out: Vec<T> = Vec::new();
        out.try_reserve_exact(n)
            .map_err(|_| Error::AllocationFailed(self.nbytes()))?;
        let dst_strides = c_strides(self.shape())?;
        // SAFETY: `out` has capacity for `n` elements of `T` (= itemsize bytes each, checked by
        // `check_element_access`); the kernel writes each of the `n` destination slots exactly
        // once and reads only bytes within this view's checked span.
        unsafe {
            copy_elements(self, out.as_mut_ptr().cast(), &dst_strides);
            out.set_len(n);
        }
        Ok(out)
    }

    /// Join tensors along their first axis into one fresh C-contiguous tensor (numpy's
    /// `concatenate(..., axis=0)`): one copy, and the result says `is_copied`. Every part needs
    /// the same dtype and the same extents after the first axis; at least one part is needed.
    ///
    /// ```
    /// use dlbridge::TensorView;
    /// let a = TensorView::from_vec(vec![1i32, 2, 3, 4], &[2, 2])?;
    /// let b = TensorView::from_vec(vec![5i32, 6], &[1, 2])?;
    /// let ab = TensorView::concatenate(&[a, b])?;
    /// assert_eq!(ab.shape(), &[3, 2]);
    /// assert!(ab.is_copied());
    /// assert_eq!(ab.to_vec::<i32>()?, vec![1, 2, 3, 4, 5, 6]);
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn concatenate(parts: &[TensorView]) -> Result<TensorView> {
        let first = parts.first().ok_or(Error::NothingToWrite(
            "concatenate needs at least one tensor",
        ))?;
        let size = first.itemsize().ok_or(Error::UnsupportedDtype {
            dtype: first.dtype,
            reason: "concatenating bit-packed elements",
        })?;
        if first.ndim() == 0 {
            return Err(Error::InvalidShape(
                "0-d tensors have no axis to join".into(),
            ));
        }
        let mut rows = 0usize;
        for p in parts {
            p.require_host("concatenating needs host memory")?;
            if p.dtype != first.dtype || p.shape().get(1..) != first.shape().get(1..) {
                return Err(Error::InvalidShape(format!(
                    "cannot join a {} tensor of shape {:?} to a {} tensor of shape {:?} along \
                     the first axis",
                    p.dtype,
                    p.shape(),
                    first.dtype,
                    first.shape()
                )));
            }
            rows = rows
                .checked_add(p.shape()[0])
                .ok_or(Error::Overflow("concatenated rows"))?;
        }
        let mut shape = first.shape().to_vec();
        shape[0] = rows;
        let strides = c_strides(&shape)?;
        let nbytes = shape
            .iter()
            .try_fold(size, |n, &extent| n.checked_mul(extent))
            .ok_or(Error::Overflow("concatenated size"))?;
        let buffer = AlignedBuffer::new_uninit(nbytes)?;
        let mut offset = 0;
        for p in parts {
            // SAFETY: each part is a host view of `size`-byte elements; the rows of the parts
            // tile the fresh buffer in order (C strides of the whole are the parts' C strides
            // shifted by their first row), so each write lands inside it, once.
            unsafe { copy_elements(p, buffer.as_ptr().add(offset), &strides) };
            offset += p.nbytes();
        }
        // SAFETY: the parts' rows cover all `nbytes` bytes of the buffer, each written above.
        unsafe { copied_view(buffer, nbytes, shape, strides, first.dtype, false) }
    }

    fn copy_with(&self, order: Order, byteswap: bool) -> Result<TensorView> {
        self.require_host("copying needs host memory")?;
        let nbytes = self.nbytes();
        let buffer = AlignedBuffer::new_uninit(nbytes)?;
        let dst = buffer.as_ptr();
        let strides = match (self.itemsize(), order) {
            (None, _) => {
                // Bit-packed: always C-contiguous (descriptor invariant), so one memcpy.
                // SAFETY: the view reaches exactly `nbytes` bytes from its first element; the
                // buffer has `nbytes` fresh bytes.
                unsafe { std::ptr::copy_nonoverlapping(self.data_ptr(), dst, nbytes) };
                c_strides(self.shape())?
            }
            // An empty tensor reaches nothing: zero strides describe it whatever its extents.
            (Some(_), _) if self.numel() == 0 => vec![0; self.ndim()],
            (Some(_), Order::C) => c_strides(self.shape())?,
            (Some(_), Order::F) => f_strides(self.shape())?,
        };
        if self.itemsize().is_some() {
            // SAFETY: the buffer holds `nbytes` = numel * itemsize bytes, which the contiguous
            // destination strides cover exactly; the source is a valid host view.
            unsafe { copy_elements(self, dst, &strides) };
        }
        if byteswap {
            let unit = match self.dtype.code() {
                DTypeCode::Complex => self.dtype.bits() as usize / 16,
                _ => (self.dtype.bits() as usize / 8).max(1),
            };
            // SAFETY: the buffer's first `nbytes` bytes were all written above.
            let bytes = unsafe { std::slice::from_raw_parts_mut(dst, nbytes) };
            bytes.chunks_exact_mut(unit).for_each(|c| c.reverse());
        }
        // SAFETY: every one of the buffer's `nbytes` bytes was written above.
        unsafe {
            copied_view(
                buffer,
                nbytes,
                self.shape().to_vec(),
                strides,
                self.dtype,
                self.flags().subbyte_padded,
            )
        }
    }
}

/// A fresh C-CPU tensor over `buffer` (the copy kernels' result): writable, `is_copied`, owned
/// by nothing but its owner. The copy is ordinary heap memory, whatever host-accessible device
/// the source was.
///
/// # Safety
/// `buffer` holds `nbytes` bytes, all written, laid out as `shape`/`strides` of `dtype`.
pub(crate) unsafe fn copied_view(
    buffer: AlignedBuffer,
    nbytes: usize,
    shape: Vec<usize>,
    strides: Vec<isize>,
    dtype: crate::DType,
    subbyte_padded: bool,
) -> Result<TensorView> {
    let data = buffer.as_ptr();
    let start = data as usize;
    let parts = Parts {
        data,
        byte_offset: 0,
        shape,
        strides: Some(strides),
        dtype,
        device: crate::Device::CPU,
        flags: Flags {
            read_only: false,
            is_copied: true,
            subbyte_padded,
        },
        extent: Some(start..start + nbytes),
    };
    // SAFETY: the buffer is a fresh, fully written (the caller's contract), writable allocation
    // of `nbytes` bytes owned by the new owner, reachable by nothing else; the extent is it.
    unsafe { Ok(TensorView::from_parts(parts, Owner::new(buffer))?.assume_exclusive()) }
}

/// This view's elements in row-major order as bytes (used for value checks and tests).
pub(crate) fn gather_bytes(view: &TensorView) -> Result<Vec<u8>> {
    view.require_host("reading needs host memory")?;
    if view.itemsize().is_none() {
        return Err(Error::UnsupportedDtype {
            dtype: view.dtype,
            reason: "bit-packed elements cannot be gathered",
        });
    }
    let n = view.nbytes();
    let mut out = Vec::new();
    out.try_reserve_exact(n)
        .map_err(|_| Error::AllocationFailed(n))?;
    let strides = c_strides(view.shape())?;
    // SAFETY: `out` has room for `n` bytes, exactly what C-contiguous destination strides cover.
    unsafe {
        copy_elements(view, out.as_mut_ptr(), &strides);
        out.set_len(n);
    }
    Ok(out)
}

/// Copy every element of `src` into `dst`, laid out with element strides `dst_strides`.
///
/// # Safety
/// `src` is a host view with byte-addressable elements; `dst` is writable for every element
/// position `dst_strides` describes for `src.shape()`, and does not overlap `src`'s memory.
unsafe fn copy_elements(src: &TensorView, dst: *mut u8, dst_strides: &[isize]) {
    let Some(size) = src.itemsize() else { return };
    if src.numel() == 0 {
        return;
    }
    let axes = plan(src, size, dst_strides, size);
    let src_ptr = src.data_ptr();
    // SAFETY: forwarded from the caller.
    unsafe {
        match size {
            1 => walk::<1>(src_ptr, dst, &axes),
            2 => walk::<2>(src_ptr, dst, &axes),
            4 => walk::<4>(src_ptr, dst, &axes),
            8 => walk::<8>(src_ptr, dst, &axes),
            16 => walk::<16>(src_ptr, dst, &axes),
            _ => walk_dyn(src_ptr, dst, &axes, size),
        }
    }
}

/// The axes of a copy from `src` (elements of `src_size` bytes) to a destination with element
/// strides `dst_strides` (elements of `dst_size` bytes): byte strides, extent-1 axes dropped,
/// outermost (largest destination step) first, neighbours that step contiguously merged.
pub(crate) fn plan(
    src: &TensorView,
    src_size: usize,
    dst_strides: &[isize],
    dst_size: usize,
) -> Vec<Axis> {
    let (ss, ds) = (src_size as isize, dst_size as isize);
    let mut axes: Vec<Axis> = src
        .shape()
        .iter()
        .zip(src.strides().iter().zip(dst_strides))
        .filter(|(&n, _)| n != 1)
        .map(|(&n, (&s, &d))| Axis {
            n,
            src: s * ss,
            dst: d * ds,
        })
        .collect();
    // Outermost first: decreasing destination stride.
    axes.sort_by_key(|a| std::cmp::Reverse(a.dst.unsigned_abs()));
    coalesce(axes)
}

/// Merge neighbouring axes that step contiguously on both sides (outer = inner * extent).
fn coalesce(axes: Vec<Axis>) -> Vec<Axis> {
    let mut out: Vec<Axis> = Vec::with_capacity(axes.len());
    for a in axes.into_iter().rev() {
        // `a` is outer relative to the last merged axis.
        match out.last_mut() {
            Some(inner)
                if a.src == inner.src * inner.n as isize
                    && a.dst == inner.dst * inner.n as isize =>
            {
                inner.n *= a.n;
            }
            _ => out.push(a),
        }
    }
    out.reverse();
    out
}

/// Call `f(src_offset, dst_offset)` for every index of `outer` (row-major odometer).
#[inline(always)]
pub(crate) fn for_each_outer(outer: &[Axis], mut f: impl FnMut(isize, isize)) {
    let mut idx = vec![0usize; outer.len()];
    let (mut so, mut d) = (0isize, 0isize);
    loop {
        f(so, d);
        let mut k = outer.len();
        loop {
            if k == 0 {
                return;
            }
            k -= 1;
            idx[k] += 1;
            so += outer[k].src;
            d += outer[k].dst;
            if idx[k] < outer[k].n {
                break;
            }
            so -= outer[k].src * outer[k].n as isize;
            d -= outer[k].dst * outer[k].n as isize;
            idx[k] = 0;
        }
    }
}

#[inline(always)]
unsafe fn copy_one<const N: usize>(src: *const u8, dst: *mut u8) {
    // SAFETY: caller guarantees N readable bytes at `src` and N writable bytes at `dst`.
    unsafe {
        dst.cast::<[u8; N]>()
            .write_unaligned(src.cast::<[u8; N]>().read_unaligned())
    }
}

/// The kernel for an element size known at compile time.
///
/// # Safety
/// As [`copy_elements`]; `axes` are its coalesced axes with byte strides.
unsafe fn walk<const N: usize>(src: *const u8, dst: *mut u8, axes: &[Axis]) {
    let Some((inner, outer)) = axes.split_last() else {
        // SAFETY: a 0-d (or all-extent-1) tensor has one element at offset 0.
        unsafe { copy_one::<N>(src, dst) };
        return;
    };
    let n = N as isize;
    if inner.src == n && inner.dst == n {
        let run = inner.n * N;
        // SAFETY: each run is `inner.n` contiguous elements inside both memories.
        for_each_outer(outer, |s, d| unsafe {
            std::ptr::copy_nonoverlapping(src.offset(s), dst.offset(d), run)
        });
        return;
    }
    // A transpose: find an outer axis along which the source is contiguous.
    if inner.dst == n {
        if let Some(t) = outer.iter().position(|a| a.src == n) {
            let tiled = outer[t];
            let rest: Vec<Axis> = outer
                .iter()
                .enumerate()
                .filter(|&(k, _)| k != t)
                .map(|(_, a)| *a)
                .collect();
            for_each_outer(&rest, |s, d| {
                // SAFETY: every (i, j) below indexes an element of the view.
                unsafe { tile_copy::<N>(src.offset(s), dst.offset(d), tiled, *inner) }
            });
            return;
        }
    }
    for_each_outer(outer, |s, d| {
        for j in 0..inner.n as isize {
            // SAFETY: j < inner.n indexes an element on both sides.
            unsafe { copy_one::<N>(src.offset(s + j * inner.src), dst.offset(d + j * inner.dst)) }
        }
    });
}

/// Copy the 2-D plane spanned by axes `a` (source-contiguous) and `b` (destination-contiguous)
/// in TILE x TILE blocks, reading along `a` and writing along `b` within cache-resident tiles.
#[inline(always)]
unsafe fn tile_copy<const N: usize>(src: *const u8, dst: *mut u8, a: Axis, b: Axis) {
    for i0 in (0..a.n).step_by(TILE) {
        let i1 = (i0 + TILE).min(a.n);
        for j0 in (0..b.n).step_by(TILE) {
            let j1 = (j0 + TILE).min(b.n);
            for j in j0..j1 {
                let (sj, dj) = (j as isize * b.src, j as isize * b.dst);
                for i in i0..i1 {
                    let i = i as isize;
                    // SAFETY: i < a.n and j < b.n index an element on both sides.
                    unsafe { copy_one::<N>(src.offset(i * a.src + sj), dst.offset(i * a.dst + dj)) }
                }
            }
        }
    }
}

/// The kernel for element sizes without a specialisation (vectors, opaque handles).
unsafe fn walk_dyn(src: *const u8, dst: *mut u8, axes: &[Axis], size: usize) {
    let (inner, outer) = match axes.split_last() {
        Some((inner, outer)) => (*inner, outer),
        None => (
            Axis {
                n: 1,
                src: 0,
                dst: 0,
            },
            axes,
        ),
    };
    for_each_outer(outer, |s, d| {
        for j in 0..inner.n as isize {
            // SAFETY: j < inner.n indexes an element of `size` bytes on both sides.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    src.offset(s + j * inner.src),
                    dst.offset(d + j * inner.dst),
                    size,
                )
            }
        }
    });
}
