//! Arrow buffers and arrays to tensors, zero-copy when the data allows.

use ::arrow_array::Array;
use ::arrow_buffer::{BooleanBuffer, Buffer};
use ::arrow_data::ArrayData;
use ::arrow_schema::{DataType, Field};

use super::*;
use crate::dims::OwnedDims;
use crate::layout::{c_strides, is_aligned};
use crate::tensor::RawParts;
use crate::{CopyPolicy, DType, Device, Error, Flags, Order, Owner, Parts, Result, TensorView};

impl TensorView {
    /// A read-only view of `shape` over `buffer`'s first bytes as `dtype` elements, without copying;
    /// the view's owner holds a clone of the buffer. A buffer not aligned for `dtype` is copied when
    /// `copy` allows it, else refused with [`Error::Misaligned`].
    ///
    /// ```
    /// use arrow_buffer::Buffer;
    /// use dlbridge::{CopyPolicy, DType, TensorView};
    /// let buf = Buffer::from_vec(vec![1.5f32, 2.5, 3.5, 4.5]);
    /// let t = TensorView::from_arrow_buffer(&buf, DType::F32, &[2, 2], CopyPolicy::Never)?;
    /// assert_eq!(t.data_ptr(), buf.as_ptr());
    /// assert_eq!(t.to_vec::<f32>()?, vec![1.5, 2.5, 3.5, 4.5]);
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn from_arrow_buffer(
        buffer: &Buffer,
        dtype: DType,
        shape: &[usize],
        copy: CopyPolicy,
    ) -> Result<TensorView> {
        let opts = ArrowImportOptions {
            copy,
            null_fill: None,
        };
        view_over_buffer(buffer, 0, dtype, shape, &opts)
    }

    /// A tensor over an Arrow array given as [`ArrayData`]: primitive arrays give 1-D tensors,
    /// (nested) fixed-size lists give N-D tensors `[len, size_1, size_2, ...]`, without copying and
    /// read-only; slice offsets at every level are honoured. Boolean values are copied into bytes
    /// (when allowed), misaligned buffers copied (when allowed), nulls filled (when a fill value is
    /// given) or refused.
    ///
    /// Accepts `ArrayData` rather than an array so that data from FFI or IPC that arrow-rs's typed
    /// arrays would reject (e.g. misaligned buffers, on which they panic) is handled as an error.
    pub fn from_arrow_data(data: &ArrayData, opts: &ArrowImportOptions) -> Result<TensorView> {
        let (levels, shape) = flatten(data)?;
        let leaf = levels.last().expect("flatten yields at least one level");
        let dtype = dtype_of_arrow(leaf.data.data_type())?;
        let nulls = levels.iter().map(level_nulls).sum::<Result<usize>>()?;
        if nulls > 0 && opts.null_fill.is_none() {
            return Err(Error::Nulls(nulls));
        }
        let values = leaf
            .data
            .buffers()
            .first()
            .ok_or_else(|| Error::MalformedArrow("an array without a values buffer".into()))?;
        let first = leaf
            .data
            .offset()
            .checked_add(leaf.start)
            .ok_or_else(|| Error::Overflow("leaf offset"))?;
        let view = if dtype == DType::BOOL {
            if !opts.copy.allows_copy() && opts.null_fill.is_none() {
                return Err(Error::CopyRequired(
                    "Arrow booleans are bit-packed; they must be copied into bytes".into(),
                ));
            }
            let end = first
                .checked_add(leaf.count)
                .ok_or_else(|| Error::Overflow("bit range"))?;
            if end > values.len().saturating_mul(8) {
                return Err(Error::OutOfBounds(format!(
                    "{end} bits needed, the Arrow buffer has {} bytes",
                    values.len()
                )));
            }
            let bits = BooleanBuffer::new(values.clone(), first, leaf.count);
            // Fallible: the count comes from foreign metadata; a huge one is an error, not an abort.
            let mut bytes = Vec::new();
            bytes
                .try_reserve_exact(leaf.count)
                .map_err(|_| Error::AllocationFailed(leaf.count))?;
            bytes.extend(bits.iter().map(u8::from));
            owned_copy(bytes, &shape, DType::BOOL)?
        } else {
            let size = dtype.itemsize().unwrap_or(1);
            let start = first
                .checked_mul(size)
                .ok_or_else(|| Error::Overflow("leaf byte offset"))?;
            view_over_buffer(values, start, dtype, &shape, opts)?
        };
        match opts.null_fill {
            Some(fill) if nulls > 0 => fill_nulls(&view, &leaf_validity(&levels, &shape), fill),
            _ => Ok(view),
        }
    }

    /// A tensor over an Arrow column, without copying: `arrow.fixed_shape_tensor` columns (tagged on
    /// `field`) give `[len, logical row shape...]`, honouring `permutation` by strides; other
    /// columns are read as by [`TensorView::from_arrow_data`] (primitive: 1-D; nested fixed-size lists:
    /// N-D). The view is read-only and keeps the Arrow values buffer alive.
    pub fn from_arrow(
        field: &Field,
        array: &dyn Array,
        opts: &ArrowImportOptions,
    ) -> Result<TensorView> {
        let data = array.to_data();
        let Some(meta) = FixedShapeTensorMeta::from_field(field)? else {
            return TensorView::from_arrow_data(&data, opts);
        };
        let DataType::FixedSizeList(item, size) = data.data_type() else {
            return Err(Error::InvalidExtensionMetadata(format!(
                "the storage must be a fixed-size list, not {}",
                data.data_type()
            )));
        };
        if matches!(item.data_type(), DataType::FixedSizeList(..)) {
            return Err(Error::InvalidExtensionMetadata(
                "the storage must be a flat fixed-size list".into(),
            ));
        }
        let row = meta
            .shape
            .iter()
            .try_fold(1usize, |a, &n| a.checked_mul(n))
            .ok_or_else(|| Error::Overflow("row size"))?;
        if usize::try_from(*size).ok() != Some(row) {
            return Err(match usize::try_from(*size) {
                Ok(len) => Error::LengthMismatch {
                    shape: meta.shape.clone(),
                    numel: row,
                    len,
                },
                Err(_) => Error::MalformedArrow(format!("negative list size {size}")),
            });
        }
        let flat = TensorView::from_arrow_data(&data, opts)?;
        let mut physical = vec![data.len()];
        physical.extend_from_slice(&meta.shape);
        let physical = flat.reshape(&physical)?;
        match meta.permutation {
            None => Ok(physical),
            Some(p) => {
                let axes: Vec<usize> = std::iter::once(0).chain(p.iter().map(|&a| a + 1)).collect();
                physical.permute(&axes)
            }
        }
    }
}

/// View `shape` C-contiguous elements of `dtype` at byte `start` of `buffer`.
fn view_over_buffer(
    buffer: &Buffer,
    start: usize,
    dtype: DType,
    shape: &[usize],
    opts: &ArrowImportOptions,
) -> Result<TensorView> {
    let size = dtype.itemsize().ok_or_else(|| Error::UnsupportedDtype {
        dtype,
        reason: "bit-packed elements cannot be viewed in an Arrow buffer",
    })?;
    let numel = shape
        .iter()
        .try_fold(1usize, |a, &n| a.checked_mul(n))
        .ok_or_else(|| Error::Overflow("element count"))?;
    let nbytes = numel
        .checked_mul(size)
        .ok_or_else(|| Error::Overflow("byte size"))?;
    let end = start
        .checked_add(nbytes)
        .ok_or_else(|| Error::Overflow("byte range"))?;
    if end > buffer.len() {
        return Err(Error::OutOfBounds(format!(
            "{numel} {dtype} elements from byte {start} need {end} bytes, the Arrow buffer has {}",
            buffer.len()
        )));
    }
    let base = buffer.as_ptr();
    let address = (base as usize).wrapping_add(start);
    let align = dtype.alignment();
    let misaligned = !is_aligned(address, align, numel);
    if misaligned && !opts.copy.allows_copy() {
        return Err(Error::Misaligned { address, align });
    }
    let region = base as usize..base as usize + buffer.len();
    let parts = RawParts {
        data: base.cast_mut(),
        byte_offset: start,
        dims: OwnedDims::c_contiguous(shape)?,
        dtype,
        device: Device::CPU,
        flags: Flags {
            read_only: true,
            ..Flags::default()
        },
        extent: Some(region),
    };
    // SAFETY: the owner holds a clone of the Arc-backed `buffer`, so its `len()` bytes from
    // `as_ptr()` (the extent given) stay allocated and readable while the view lives; the view
    // reaches `nbytes` bytes from `start`, checked above to lie inside them. The view is
    // read-only and Arrow buffers are immutable, so nobody writes them.
    let view = unsafe { TensorView::from_raw_parts(parts, Owner::new(buffer.clone()))? };
    if misaligned {
        // The copy kernel reads unaligned; the result is freshly allocated and aligned.
        return view.to_contiguous(Order::C);
    }
    Ok(view)
}

/// One level of an Arrow array chain: the logical range of the level the tensor covers.
struct Level<'a> {
    data: &'a ArrayData,
    start: usize,
    count: usize,
}

/// Walk nested fixed-size lists down to the leaf: the levels (outermost first) and the shape.
fn flatten(data: &ArrayData) -> Result<(Vec<Level<'_>>, Vec<usize>)> {
    let mut levels = Vec::new();
    let mut shape = vec![data.len()];
    let (mut cur, mut start, mut count) = (data, 0usize, data.len());
    loop {
        if start.checked_add(count).is_none_or(|e| e > cur.len()) {
            return Err(Error::OutOfBounds(format!(
                "Arrow array of length {} is too short for {count} values from {start}",
                cur.len()
            )));
        }
        levels.push(Level {
            data: cur,
            start,
            count,
        });
        match cur.data_type() {
            DataType::FixedSizeList(_, size) => {
                let size = usize::try_from(*size)
                    .map_err(|_| Error::MalformedArrow("negative list size".into()))?;
                let child = cur.child_data().first().ok_or_else(|| {
                    Error::MalformedArrow("fixed-size list without child data".into())
                })?;
                start = cur
                    .offset()
                    .checked_add(start)
                    .and_then(|s| s.checked_mul(size))
                    .ok_or_else(|| Error::Overflow("list child offset"))?;
                count = count
                    .checked_mul(size)
                    .ok_or_else(|| Error::Overflow("list child length"))?;
                shape.push(size);
                cur = child;
                if shape.len() > crate::MAX_NDIM {
                    return Err(Error::InvalidShape("too many nested lists".into()));
                }
            }
            _ => return Ok((levels, shape)),
        }
    }
}

/// Number of nulls of a level in its covered range (O(1) when the range is the whole level).
fn level_nulls(level: &Level<'_>) -> Result<usize> {
    Ok(match level.data.nulls() {
        None => 0,
        Some(n) if level.start + level.count > n.len() => {
            return Err(Error::OutOfBounds(format!(
                "validity bitmap of {} entries for {} values from {}",
                n.len(),
                level.count,
                level.start
            )))
        }
        Some(n) if level.start == 0 && level.count == n.len() => n.null_count(),
        Some(n) => n.slice(level.start, level.count).null_count(),
    })
}

/// Validity of every leaf element in row-major order, combining all levels' null bitmaps.
fn leaf_validity(levels: &[Level<'_>], shape: &[usize]) -> Vec<bool> {
    let mut valid = vec![true; levels[0].count];
    for (k, level) in levels.iter().enumerate() {
        if k > 0 {
            let s = shape[k];
            valid = (0..level.count).map(|j| valid[j / s]).collect();
        }
        if let Some(n) = level.data.nulls() {
            for (j, v) in valid.iter_mut().enumerate() {
                *v &= n.is_valid(level.start + j);
            }
        }
    }
    valid
}

/// A fresh, writable C-contiguous tensor owning `bytes`, flagged `is_copied`.
fn owned_copy(bytes: Vec<u8>, shape: &[usize], dtype: DType) -> Result<TensorView> {
    let mut bytes = bytes;
    let start = bytes.as_mut_ptr();
    let parts = Parts {
        data: start,
        byte_offset: 0,
        shape: shape.to_vec(),
        strides: Some(c_strides(shape)?),
        dtype,
        device: Device::CPU,
        flags: Flags {
            is_copied: true,
            ..Flags::default()
        },
        extent: Some(start as usize..start as usize + bytes.len()),
    };
    // SAFETY: the owner owns the Vec, whose heap bytes (the extent) do not move when the Vec is
    // moved into it and stay valid and uniquely owned until it drops; `from_parts` checks that
    // the shape's bytes fit in that extent.
    unsafe { TensorView::from_parts(parts, Owner::new(bytes)) }
}

/// A copy of `view` (C-contiguous) with every element whose `valid` entry is false replaced by
/// `fill`.
fn fill_nulls(view: &TensorView, valid: &[bool], fill: FillValue) -> Result<TensorView> {
    let item = fill.bytes_for(view.dtype())?;
    let mut bytes = if view.dtype() == DType::BOOL {
        view.to_vec::<bool>()?.into_iter().map(u8::from).collect()
    } else {
        let dense = view.to_contiguous(Order::C)?;
        let n = dense.nbytes();
        // SAFETY: `dense` is a fresh C-contiguous host copy of `n` bytes from its first element,
        // alive for this borrow.
        unsafe { std::slice::from_raw_parts(dense.data_ptr(), n) }.to_vec()
    };
    for (chunk, _) in bytes
        .chunks_exact_mut(item.len())
        .zip(valid)
        .filter(|(_, &v)| !v)
    {
        chunk.copy_from_slice(&item);
    }
    owned_copy(bytes, view.shape(), view.dtype())
}
