//! Views without copies: slicing, permuting, reshaping, broadcasting, `as_strided`,
//! reinterpretation. Each returns a new [`TensorView`] sharing the owner, costs O(ndim), and
//! checks overflow and bounds.

use crate::layout::{c_strides, check_permutation, layout_span};
use crate::tensor::{Dims, Parts};
use crate::{DType, Error, Result, TensorView};

/// One axis of a slice, with Python semantics: `start`/`stop` may be negative (counted from the
/// end) and are clamped; `step` may be negative but not zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceArg {
    /// First index (default: 0, or the last index for a negative step).
    pub start: Option<isize>,
    /// One past the last index (default: the end, or before the first for a negative step).
    pub stop: Option<isize>,
    /// Step between taken indices.
    pub step: isize,
}

impl SliceArg {
    /// The whole axis (`:`).
    pub const FULL: SliceArg = SliceArg {
        start: None,
        stop: None,
        step: 1,
    };
    /// `start..stop` with step 1.
    pub fn range(start: isize, stop: isize) -> SliceArg {
        SliceArg {
            start: Some(start),
            stop: Some(stop),
            step: 1,
        }
    }
    /// The whole axis, every `step`-th element (`::step`).
    pub fn step(step: isize) -> SliceArg {
        SliceArg {
            start: None,
            stop: None,
            step,
        }
    }

    /// The same bounds, every `step`-th index (`start..stop` then `.with_step(2)` is Python's
    /// `start:stop:2`).
    ///
    /// ```
    /// use dlbridge::{SliceArg, TensorView};
    /// let t = TensorView::from_vec((0..10).collect::<Vec<u8>>(), &[10])?;
    /// assert_eq!(t.slice(0, SliceArg::from(1..).with_step(3))?.to_vec::<u8>()?, vec![1, 4, 7]);
    /// assert_eq!(t.slice(0, ..3)?.to_vec::<u8>()?, vec![0, 1, 2]);
    /// assert_eq!(t.slice(0, -2..)?.to_vec::<u8>()?, vec![8, 9]);
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn with_step(self, step: isize) -> SliceArg {
        SliceArg { step, ..self }
    }

    /// Resolve against an axis of extent `n`: (first index, count), as Python's `slice.indices`.
    fn resolve(self, n: usize) -> Result<(usize, usize)> {
        // isize::MIN: its negation overflows; no axis is long enough to tell it from MIN + 1.
        if self.step == 0 || self.step == isize::MIN {
            return Err(Error::InvalidStep(self.step));
        }
        let n = n as isize; // extents fit isize: checked at construction
        let clamp = |v: Option<isize>, default: isize, lo: isize, hi: isize| match v {
            None => default,
            Some(v) if v < 0 => (v.saturating_add(n)).max(lo),
            Some(v) => v.min(hi),
        };
        let (start, stop) = if self.step > 0 {
            (clamp(self.start, 0, 0, n), clamp(self.stop, n, 0, n))
        } else {
            (
                clamp(self.start, n - 1, -1, n - 1),
                clamp(self.stop, -1, -1, n - 1),
            )
        };
        let count = if self.step > 0 && stop > start {
            (stop - start - 1) / self.step + 1
        } else if self.step < 0 && start > stop {
            (start - stop - 1) / (-self.step) + 1
        } else {
            0
        };
        Ok((if count > 0 { start as usize } else { 0 }, count as usize))
    }
}

impl From<std::ops::RangeFull> for SliceArg {
    /// `..`: the whole axis.
    fn from(_: std::ops::RangeFull) -> SliceArg {
        SliceArg::FULL
    }
}

/// Ranges of any integer type convert (so that literals such as `1..4` need no suffix); bounds
/// beyond `isize` saturate, which slicing then clamps to the axis as Python does.
macro_rules! slice_from_ranges {
    ($($int:ty),*) => {$(
        impl From<std::ops::Range<$int>> for SliceArg {
            /// `start..stop`.
            fn from(r: std::ops::Range<$int>) -> SliceArg {
                SliceArg { start: Some(saturate(r.start)), stop: Some(saturate(r.end)), step: 1 }
            }
        }
        impl From<std::ops::RangeFrom<$int>> for SliceArg {
            /// `start..`.
            fn from(r: std::ops::RangeFrom<$int>) -> SliceArg {
                SliceArg { start: Some(saturate(r.start)), stop: None, step: 1 }
            }
        }
        impl From<std::ops::RangeTo<$int>> for SliceArg {
            /// `..stop`.
            fn from(r: std::ops::RangeTo<$int>) -> SliceArg {
                SliceArg { start: None, stop: Some(saturate(r.end)), step: 1 }
            }
        }
        impl From<std::ops::RangeInclusive<$int>> for SliceArg {
            /// `start..=last`.
            fn from(r: std::ops::RangeInclusive<$int>) -> SliceArg {
                let (start, last) = r.into_inner();
                SliceArg {
                    start: Some(saturate(start)),
                    stop: Some(saturate(last).saturating_add(1)),
                    step: 1,
                }
            }
        }
    )*};
}

slice_from_ranges!(i32, i64, isize, usize);

fn saturate<T: TryInto<isize> + PartialOrd + Default>(v: T) -> isize {
    let negative = v < T::default();
    v.try_into()
        .unwrap_or(if negative { isize::MIN } else { isize::MAX })
}

impl TensorView {
    fn check_axis(&self, axis: usize) -> Result<()> {
        if axis < self.ndim() {
            Ok(())
        } else {
            Err(Error::AxisOutOfRange {
                axis,
                ndim: self.ndim(),
            })
        }
    }

    fn require_byte_elements(&self, op: &'static str) -> Result<usize> {
        self.itemsize().ok_or_else(|| Error::UnsupportedDtype {
            dtype: self.dtype,
            reason: op,
        })
    }

    /// The same memory with new shape, strides and first-element offset (in bytes, relative to
    /// the current first element); re-validated against the owner's extent.
    fn restrided(
        &self,
        shape: Vec<usize>,
        strides: Vec<isize>,
        shift: isize,
    ) -> Result<TensorView> {
        let byte_offset = self
            .byte_offset
            .checked_add_signed(shift)
            .ok_or_else(|| Error::OutOfBounds("view starts before its base pointer".into()))?;
        let parts = Parts {
            data: self.data,
            byte_offset,
            shape,
            strides: Some(strides),
            dtype: self.dtype,
            device: self.device,
            flags: self.flags(),
            extent: Some(self.extent.clone()),
        };
        // SAFETY: same owner, same memory: `from_parts` checks that every byte the new view
        // reaches lies in the extent this view's owner keeps valid.
        let mut view = unsafe { TensorView::from_parts(parts, self.owner.clone())? };
        // SAFETY: the same memory and owner as `self`, so `self`'s exclusivity carries over.
        unsafe { view.set_provenance(self.allocation_known(), self.exclusive()) };
        Ok(view)
    }

    /// Slice one axis with start/stop/step (negative steps reverse it).
    ///
    /// ```
    /// use dlbridge::{TensorView, SliceArg};
    /// let t = TensorView::from_vec((0..10).collect::<Vec<u8>>(), &[10])?;
    /// let r = t.slice(0, SliceArg { start: Some(8), stop: Some(1), step: -3 })?;
    /// assert_eq!(r.to_vec::<u8>()?, vec![8, 5, 2]);
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn slice(&self, axis: usize, arg: impl Into<SliceArg>) -> Result<TensorView> {
        let mut args = vec![SliceArg::FULL; self.ndim()];
        self.check_axis(axis)?;
        args[axis] = arg.into();
        self.slice_each(&args)
    }

    /// Slice every axis at once (`args.len()` must equal `ndim`).
    pub fn slice_each(&self, args: &[SliceArg]) -> Result<TensorView> {
        let size = self.require_byte_elements("slicing bit-packed elements")? as isize;
        if args.len() != self.ndim() {
            return Err(Error::ArgumentCount {
                what: "slice arguments",
                given: args.len(),
                ndim: self.ndim(),
            });
        }
        let mut shape = Vec::with_capacity(args.len());
        let mut strides = Vec::with_capacity(args.len());
        let mut shift = 0isize;
        for ((arg, &n), &s) in args.iter().zip(self.shape()).zip(self.strides()) {
            let (first, count) = arg.resolve(n)?;
            if count > 0 {
                // Checked: an empty tensor's strides are not bounded by any span.
                let step = (first as isize)
                    .checked_mul(s)
                    .and_then(|x| x.checked_mul(size))
                    .ok_or_else(|| Error::Overflow("slice offset"))?;
                shift = shift
                    .checked_add(step)
                    .ok_or_else(|| Error::Overflow("slice offset"))?;
            }
            shape.push(count);
            strides.push(
                s.checked_mul(arg.step)
                    .ok_or_else(|| Error::Overflow("slice stride"))?,
            );
        }
        self.restrided(shape, strides, shift)
    }

    /// Take index `index` of `axis`, removing that axis.
    pub fn select(&self, axis: usize, index: usize) -> Result<TensorView> {
        let size = self.require_byte_elements("indexing bit-packed elements")? as isize;
        self.check_axis(axis)?;
        if index >= self.shape()[axis] {
            return Err(Error::OutOfBounds(format!(
                "index {index} on axis {axis} of extent {}",
                self.shape()[axis]
            )));
        }
        let shift = (index as isize)
            .checked_mul(self.strides()[axis])
            .and_then(|x| x.checked_mul(size))
            .ok_or_else(|| Error::Overflow("index offset"))?;
        let mut shape = self.shape().to_vec();
        let mut strides = self.strides().to_vec();
        shape.remove(axis);
        strides.remove(axis);
        self.restrided(shape, strides, shift)
    }

    /// Reorder the axes: axis `k` of the result is axis `order[k]` of `self`.
    pub fn permute(&self, order: &[usize]) -> Result<TensorView> {
        let ndim = self.ndim();
        check_permutation(order, ndim)?;
        let moves = order.iter().enumerate().any(|(k, &a)| k != a);
        if self.itemsize().is_none() && moves && self.shape().iter().filter(|&&n| n > 1).count() > 1
        {
            self.require_byte_elements("permuting bit-packed elements")?;
        }
        let shape = order.iter().map(|&a| self.shape()[a]).collect();
        let strides = order.iter().map(|&a| self.strides()[a]).collect();
        self.restrided(shape, strides, 0)
    }

    /// Reverse the axes (numpy's `.T`). Fails only for bit-packed sub-byte elements with more
    /// than one axis longer than 1, which cannot be transposed without a copy.
    pub fn transpose(&self) -> Result<TensorView> {
        let order: Vec<usize> = (0..self.ndim()).rev().collect();
        self.permute(&order)
    }

    /// Exchange two axes.
    pub fn swap_axes(&self, a: usize, b: usize) -> Result<TensorView> {
        self.check_axis(a)?;
        self.check_axis(b)?;
        let mut order: Vec<usize> = (0..self.ndim()).collect();
        order.swap(a, b);
        self.permute(&order)
    }

    /// The same elements in row-major order with a new shape, without copying. Fails with
    /// [`Error::NotContiguous`] when the strides cannot express the new shape: it never copies
    /// silently (call `to_contiguous` first). [`reshape_infer`](Self::reshape_infer) works out
    /// one extent from the element count.
    ///
    /// ```
    /// let t = dlbridge::TensorView::from_vec((0..24).collect::<Vec<i64>>(), &[2, 3, 4])?;
    /// assert_eq!(t.reshape(&[6, 4])?.strides(), &[4, 1]);
    /// assert!(t.transpose()?.reshape(&[24]).is_err());
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn reshape(&self, shape: &[usize]) -> Result<TensorView> {
        let numel = self.numel();
        let known = shape
            .iter()
            .try_fold(1usize, |acc, &n| acc.checked_mul(n))
            .ok_or_else(|| Error::Overflow("reshape"))?;
        if known != numel {
            return Err(Error::InvalidShape(format!(
                "cannot reshape {numel} elements into {shape:?}"
            )));
        }
        self.reshape_exact(shape.to_vec())
    }

    /// [`reshape`](Self::reshape) with at most one extent left as `None`, inferred from the
    /// element count (numpy's and torch's `-1`).
    ///
    /// ```
    /// let t = dlbridge::TensorView::from_vec((0..24).collect::<Vec<i64>>(), &[2, 3, 4])?;
    /// assert_eq!(t.reshape_infer(&[Some(6), None])?.shape(), &[6, 4]);
    /// assert_eq!(t.reshape_infer(&[None])?.shape(), &[24]);
    /// assert!(t.reshape_infer(&[Some(5), None]).is_err());
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn reshape_infer(&self, shape: &[Option<usize>]) -> Result<TensorView> {
        self.reshape_exact(infer_shape(shape, self.numel())?)
    }

    /// Reshape to `new_shape`, which holds exactly `self.numel()` elements.
    fn reshape_exact(&self, new_shape: Vec<usize>) -> Result<TensorView> {
        layout_span(&new_shape, &vec![0; new_shape.len()], 1)?;
        let strides = match self.itemsize() {
            None if self.is_c_contiguous() => c_strides(&new_shape)?,
            None => self
                .require_byte_elements("reshaping non-contiguous bit-packed elements")
                .map(|_| Vec::new())?,
            Some(_) if self.numel() == 0 => c_strides(&new_shape)?,
            Some(_) => {
                reshape_strides(self.shape(), self.strides(), &new_shape).ok_or_else(|| {
                    Error::NotContiguous(format!(
                        "shape {:?} with strides {:?} cannot be viewed as {new_shape:?}",
                        self.shape(),
                        self.strides()
                    ))
                })?
            }
        };
        self.restrided(new_shape, strides, 0)
    }

    /// Broadcast to `shape` (numpy rules: leading axes added, extent-1 axes stretched, both with
    /// stride 0). The result is read-only only if `self` is; writing through it is refused by the
    /// uniqueness rule anyway, since elements overlap.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<TensorView> {
        self.require_byte_elements("broadcasting bit-packed elements")?;
        let (ndim, target) = (self.ndim(), shape.len());
        if target < ndim {
            return Err(Error::InvalidShape(format!(
                "cannot broadcast {:?} to fewer dimensions {shape:?}",
                self.shape()
            )));
        }
        let lead = target - ndim;
        let mut strides = vec![0isize; target];
        for (k, &n) in shape.iter().enumerate().skip(lead) {
            let (have, s) = (self.shape()[k - lead], self.strides()[k - lead]);
            strides[k] = match (have, n) {
                (a, b) if a == b => s,
                (1, _) => 0,
                _ => {
                    return Err(Error::InvalidShape(format!(
                        "cannot broadcast {:?} to {shape:?}",
                        self.shape()
                    )))
                }
            };
        }
        self.restrided(shape.to_vec(), strides, 0)
    }

    /// Remove `axis`, which must have extent 1.
    pub fn squeeze_axis(&self, axis: usize) -> Result<TensorView> {
        self.check_axis(axis)?;
        if self.shape()[axis] != 1 {
            return Err(Error::InvalidShape(format!(
                "axis {axis} has extent {}, not 1",
                self.shape()[axis]
            )));
        }
        let mut t = self.clone();
        let mut shape: Dims<usize> = self.shape().into();
        let mut strides: Dims<isize> = self.strides().into();
        shape.remove(axis);
        strides.remove(axis);
        t.set_layout(&shape, &strides);
        Ok(t)
    }

    /// Remove every axis of extent 1.
    pub fn squeeze(&self) -> TensorView {
        let mut t = self.clone();
        let keep: Vec<usize> = (0..self.ndim()).filter(|&k| self.shape()[k] != 1).collect();
        let shape: Dims<usize> = keep.iter().map(|&k| self.shape()[k]).collect();
        let strides: Dims<isize> = keep.iter().map(|&k| self.strides()[k]).collect();
        t.set_layout(&shape, &strides);
        t
    }

    /// Insert an axis of extent 1 at position `axis` (`0..=ndim`).
    pub fn unsqueeze(&self, axis: usize) -> Result<TensorView> {
        if self.ndim() >= crate::MAX_NDIM {
            return Err(Error::TooManyDims {
                ndim: self.ndim() as i64 + 1,
                max: crate::MAX_NDIM,
            });
        }
        if axis > self.ndim() {
            // As numpy's expand_dims: the range is that of the result's axes.
            return Err(Error::AxisOutOfRange {
                axis,
                ndim: self.ndim() + 1,
            });
        }
        // The stride numpy would give (the step of the following axis times its extent); it
        // reaches nothing, so 0 is as good when that product would not fit.
        let stride = match axis < self.ndim() {
            true => self.strides()[axis]
                .checked_mul(self.shape()[axis] as isize)
                .filter(|s| {
                    s.checked_mul(self.itemsize().unwrap_or(1) as isize)
                        .is_some()
                })
                .unwrap_or(0),
            false => 1,
        };
        let mut t = self.clone();
        let mut shape: Dims<usize> = self.shape().into();
        let mut strides: Dims<isize> = self.strides().into();
        shape.insert(axis, 1);
        strides.insert(axis, stride);
        t.set_layout(&shape, &strides);
        Ok(t)
    }

    /// An arbitrary strided view of the same memory — numpy's `as_strided`, made safe: the
    /// first element sits `offset` elements from this view's first element, and every reached
    /// byte must lie within the owner's extent ([`TensorView::extent`]), else
    /// [`Error::OutOfBounds`]. A view without a known extent (lent or imported with gaps
    /// between its elements) refuses every `as_strided`.
    ///
    /// ```
    /// use dlbridge::TensorView;
    /// // Sliding windows of 3 over 6 values, no copy.
    /// let t = TensorView::from_vec(vec![0u16, 1, 2, 3, 4, 5], &[6])?;
    /// let w = t.as_strided(&[4, 3], &[1, 1], 0)?;
    /// assert_eq!(w.to_vec::<u16>()?, vec![0, 1, 2, 1, 2, 3, 2, 3, 4, 3, 4, 5]);
    /// assert!(t.as_strided(&[5, 3], &[1, 1], 0).is_err()); // would read past the end
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn as_strided(
        &self,
        shape: &[usize],
        strides: &[isize],
        offset: isize,
    ) -> Result<TensorView> {
        let size = self.require_byte_elements("as_strided on bit-packed elements")? as isize;
        if shape.len() != strides.len() {
            return Err(Error::ArgumentCount {
                what: "strides",
                given: strides.len(),
                ndim: shape.len(),
            });
        }
        if !self.allocation_known() {
            // The gaps between this view's elements may be someone else's memory (a sibling
            // `ArrayViewMut`, bytes a producer never shared): nothing bounds a new layout.
            return Err(Error::OutOfBounds(
                "as_strided needs a view whose owner's allocation is known (this one was lent \
                 or imported with gaps between its elements; copy it first)"
                    .into(),
            ));
        }
        let shift = offset
            .checked_mul(size)
            .ok_or_else(|| Error::Overflow("as_strided offset"))?;
        self.restrided(shape.to_vec(), strides.to_vec(), shift)
    }

    /// View the same bytes as another dtype (numpy's `.view(dtype)`). Same itemsize: any
    /// layout. Different itemsize: the last axis must be contiguous (stride 1) and its byte
    /// length divisible by the new itemsize; the last extent and the other strides are rescaled.
    pub fn reinterpret(&self, dtype: DType) -> Result<TensorView> {
        let old = self.require_byte_elements("reinterpreting bit-packed elements")?;
        let new = dtype.itemsize().ok_or_else(|| Error::UnsupportedDtype {
            dtype,
            reason: "reinterpreting as bit-packed elements",
        })?;
        let mut t = self.clone();
        t.dtype = dtype;
        t.set_flags(t.flags().with_subbyte_padded(false));
        if !self.dtype.any_bit_pattern() && dtype != self.dtype {
            // Memory typed with invalid bit patterns (bool) must not be written as a type
            // without them: the owner (a `Vec<bool>`, an `ArrayViewMut<bool>`) would then hold
            // invalid values. Reading stays allowed; writing needs a copy.
            // SAFETY: clearing exclusivity only withdraws a permission.
            unsafe { t.set_provenance(t.allocation_known(), false) };
        }
        if old == new {
            return Ok(t);
        }
        let ndim = self.ndim();
        let refuse = |why: String| Err(Error::InvalidShape(why));
        if ndim == 0 || (self.strides()[ndim - 1] != 1 && self.shape()[ndim - 1] > 1) {
            return refuse(format!(
                "changing itemsize {old} -> {new} needs a last axis with stride 1"
            ));
        }
        let last_bytes = self.shape()[ndim - 1] * old;
        if !last_bytes.is_multiple_of(new) {
            return refuse(format!(
                "the last axis spans {last_bytes} bytes, not a multiple of {new}"
            ));
        }
        let mut shape = self.shape().to_vec();
        let mut strides = Vec::with_capacity(ndim);
        shape[ndim - 1] = last_bytes / new;
        for (k, &s) in self.strides().iter().enumerate() {
            let bytes = s * old as isize;
            if k + 1 == ndim {
                strides.push(1);
            } else if bytes % new as isize != 0 && self.shape()[k] > 1 {
                return refuse(format!(
                    "stride of axis {k} is not a multiple of {new} bytes"
                ));
            } else {
                strides.push(bytes / new as isize);
            }
        }
        // A misaligned result is allowed (DLPack does not require alignment); typed access
        // refuses it with `Error::Misaligned`.
        let mut view = t.restrided(shape, strides, 0)?;
        view.dtype = dtype;
        Ok(view)
    }
}

/// Resolve a shape with at most one `None` against an element count.
fn infer_shape(shape: &[Option<usize>], numel: usize) -> Result<Vec<usize>> {
    let mut known: usize = 1;
    let mut hole = None;
    for (k, n) in shape.iter().enumerate() {
        match n {
            None if hole.is_none() => hole = Some(k),
            None => {
                return Err(Error::InvalidShape(format!(
                    "{shape:?} leaves more than one extent to infer"
                )))
            }
            Some(n) => {
                known = known
                    .checked_mul(*n)
                    .ok_or_else(|| Error::Overflow("reshape"))?
            }
        }
    }
    let mut out: Vec<usize> = shape.iter().map(|n| n.unwrap_or(0)).collect();
    match hole {
        Some(k) if known != 0 && numel.is_multiple_of(known) => out[k] = numel / known,
        None if known == numel => {}
        _ => {
            return Err(Error::InvalidShape(format!(
                "cannot reshape {numel} elements into {shape:?}"
            )))
        }
    }
    Ok(out)
}

/// Strides that view `old_shape`/`old_strides` as `new_shape` in row-major element order, or
/// `None` when no such strides exist (numpy's "attempt no-copy reshape"). Both shapes hold the
/// same, non-zero number of elements.
fn reshape_strides(
    old_shape: &[usize],
    old_strides: &[isize],
    new_shape: &[usize],
) -> Option<Vec<isize>> {
    let old: Vec<(usize, isize)> = old_shape
        .iter()
        .zip(old_strides)
        .filter(|(&n, _)| n != 1)
        .map(|(&n, &s)| (n, s))
        .collect();
    let mut strides = vec![0isize; new_shape.len()];
    let (mut oi, mut ni) = (0usize, 0usize);
    while ni < new_shape.len() {
        if new_shape[ni] == 1 {
            strides[ni] = 1;
            ni += 1;
            continue;
        }
        if oi >= old.len() {
            return None;
        }
        // Grow a group of old axes and a group of new axes until they hold equal counts.
        let (mut o_end, mut n_end) = (oi + 1, ni + 1);
        let (mut o_count, mut n_count) = (old[oi].0, new_shape[ni]);
        while o_count != n_count {
            if o_count < n_count {
                o_count *= old.get(o_end)?.0;
                o_end += 1;
            } else {
                while n_end < new_shape.len() && new_shape[n_end] == 1 {
                    n_end += 1;
                }
                n_count *= *new_shape.get(n_end)?;
                n_end += 1;
            }
        }
        // The old group must be one dense run: each axis steps over the next one exactly.
        for k in oi..o_end - 1 {
            if old[k].1 != old[k + 1].1 * old[k + 1].0 as isize {
                return None;
            }
        }
        let mut step = old[o_end - 1].1;
        for k in (ni..n_end).rev() {
            strides[k] = step;
            step *= new_shape[k] as isize;
        }
        oi = o_end;
        ni = n_end;
    }
    (oi == old.len()).then_some(strides)
}
