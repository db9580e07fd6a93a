//! Tensors to Arrow buffers and arrays, zero-copy when the layout allows.

use std::panic::RefUnwindSafe;
use std::ptr::NonNull;
use std::sync::Arc;

use ::arrow_array::{make_array, Array, ArrayRef};
use ::arrow_buffer::{BooleanBuffer, Buffer, MutableBuffer};
use ::arrow_data::ArrayData;
use ::arrow_schema::{DataType, Field};

use super::*;
use crate::layout::is_aligned;
use crate::{CopyPolicy, Error, Order, Owner, Result, TensorView};

impl TensorView {
    /// The same bytes as an Arrow [`Buffer`], without copying: host, C-contiguous views only, unless
    /// `copy` allows a C-order copy. The buffer keeps the view's owner alive.
    ///
    /// ```
    /// use dlbridge::CopyPolicy;
    /// let t = dlbridge::TensorView::from_vec(vec![1u16, 2, 3, 4], &[2, 2])?;
    /// let buf = t.to_arrow_buffer(CopyPolicy::Never)?;
    /// assert_eq!(buf.as_ptr(), t.data_ptr());
    /// assert_eq!(buf.typed_data::<u16>(), &[1, 2, 3, 4]);
    /// assert!(t.transpose()?.to_arrow_buffer(CopyPolicy::Never).is_err());
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn to_arrow_buffer(&self, copy: CopyPolicy) -> Result<Buffer> {
        let dense = dense_for_arrow(self, copy, Readers::Rust)?;
        view_to_buffer(dense, Readers::Rust)
    }

    /// A 1-D tensor as a primitive array over the same memory (booleans: a bit-packed copy, when
    /// allowed).
    ///
    /// ```
    /// use arrow_array::{cast::AsArray, types::Int64Type};
    /// let t = dlbridge::TensorView::from_vec(vec![5i64, 6, 7], &[3])?;
    /// let a = t.to_arrow_primitive(&Default::default())?;
    /// assert_eq!(a.as_primitive::<Int64Type>().values().as_ptr().cast(), t.data_ptr());
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn to_arrow_primitive(&self, opts: &ArrowExportOptions) -> Result<ArrayRef> {
        self.to_arrow_primitive_for(opts, Readers::Rust)
    }

    fn to_arrow_primitive_for(
        &self,
        opts: &ArrowExportOptions,
        readers: Readers,
    ) -> Result<ArrayRef> {
        if self.ndim() != 1 {
            return Err(Error::InvalidShape(format!(
                "a primitive array needs a 1-D tensor, not shape {:?}",
                self.shape()
            )));
        }
        let dense = dense_for_arrow(self, opts.copy, readers)?;
        Ok(make_array(leaf_data(&dense, opts.copy, readers)?))
    }

    /// An N-D tensor (N >= 2) as nested fixed-size lists: one list per row (first axis), nested once
    /// per further axis, over the same memory. The field carries no extension type.
    pub fn to_arrow_fixed_size_list(&self, opts: &ArrowExportOptions) -> Result<TensorColumn> {
        require_rows(self)?;
        let dense = dense_for_arrow(self, opts.copy, Readers::Rust)?;
        let shape = dense.shape();
        let mut data = leaf_data(&dense, opts.copy, Readers::Rust)?;
        for k in (1..shape.len()).rev() {
            // Cannot overflow: a prefix product of a valid shape.
            let rows = shape[..k].iter().product();
            data = list_data(data, shape[k], rows)?;
        }
        let field = Field::new(opts.name.clone(), data.data_type().clone(), false);
        Ok(TensorColumn {
            field,
            array: make_array(data),
        })
    }

    /// An N-D tensor (N >= 2) as a column of the canonical `arrow.fixed_shape_tensor` extension
    /// type: one row per index of axis 0, each row a fixed-size list of `prod(shape[1..])` values,
    /// over the same memory. The returned field carries the extension name and metadata.
    ///
    /// Non-C-contiguous tensors are copied to C order when allowed; with
    /// [`ArrowExportOptions::use_permutation`], row-permuted layouts (rows outermost, each row a
    /// permutation of a dense tensor, such as transposed matrices) are exported without a copy.
    ///
    /// ```
    /// use dlbridge::interop::arrow::ArrowExportOptions;
    /// let t = dlbridge::TensorView::from_vec((0..12).collect::<Vec<i32>>(), &[2, 3, 2])?;
    /// let col = t.to_arrow_fixed_shape_tensor(&ArrowExportOptions::named("x"))?;
    /// assert_eq!(
    ///     col.field.metadata().get("ARROW:extension:metadata").unwrap(),
    ///     r#"{"shape":[3,2]}"#
    /// );
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn to_arrow_fixed_shape_tensor(&self, opts: &ArrowExportOptions) -> Result<TensorColumn> {
        self.to_arrow_fixed_shape_tensor_for(opts, Readers::Rust)
    }

    fn to_arrow_fixed_shape_tensor_for(
        &self,
        opts: &ArrowExportOptions,
        readers: Readers,
    ) -> Result<TensorColumn> {
        require_rows(self)?;
        if let Some(names) = &opts.dim_names {
            if names.len() != self.ndim() - 1 {
                return Err(Error::ArgumentCount {
                    what: "dim_names (one per axis of a row)",
                    given: names.len(),
                    ndim: self.ndim() - 1,
                });
            }
        }
        let permuted = match row_permutation(self) {
            Some(order)
                if opts.use_permutation
                    && !self.is_c_contiguous()
                    && self.device().is_host_accessible() =>
            {
                Some(order)
            }
            _ => None,
        };
        let (dense, meta) = match permuted {
            Some(order) => {
                // Physical axis p is logical row axis order[p]; logical axis i is physical perm[i].
                let mut perm = vec![0; order.len()];
                for (p, &a) in order.iter().enumerate() {
                    perm[a] = p;
                }
                let axes: Vec<usize> = std::iter::once(0)
                    .chain(order.iter().map(|&a| a + 1))
                    .collect();
                let physical = self.permute(&axes)?;
                let meta = FixedShapeTensorMeta {
                    shape: physical.shape()[1..].to_vec(),
                    dim_names: opts
                        .dim_names
                        .as_ref()
                        .map(|n| order.iter().map(|&a| n[a].clone()).collect()),
                    permutation: Some(perm),
                };
                (
                    dense_for_arrow(&physical, CopyPolicy::Never, readers)?,
                    meta,
                )
            }
            None => {
                let dense = dense_for_arrow(self, opts.copy, readers)?;
                let meta = FixedShapeTensorMeta {
                    shape: dense.shape()[1..].to_vec(),
                    dim_names: opts.dim_names.clone(),
                    permutation: None,
                };
                (dense, meta)
            }
        };
        let row: usize = meta.shape.iter().product();
        let data = list_data(
            leaf_data(&dense, opts.copy, readers)?,
            row,
            dense.shape()[0],
        )?;
        let field = Field::new(opts.name.clone(), data.data_type().clone(), false).with_metadata(
            std::collections::HashMap::from([
                (
                    EXTENSION_NAME_KEY.to_string(),
                    FIXED_SHAPE_TENSOR.to_string(),
                ),
                (EXTENSION_METADATA_KEY.to_string(), meta.to_json()),
            ]),
        );
        Ok(TensorColumn {
            field,
            array: make_array(data),
        })
    }

    /// A tensor as an Arrow column: 1-D tensors as primitive arrays, N-D tensors as
    /// `arrow.fixed_shape_tensor` columns (see [`TensorView::to_arrow_fixed_shape_tensor`]). 0-D tensors are
    /// refused (reshape them to `[1]`).
    pub fn to_arrow(&self, opts: &ArrowExportOptions) -> Result<TensorColumn> {
        self.to_arrow_for(opts, Readers::Rust)
    }

    /// [`TensorView::to_arrow`] for `readers`: the Python module's Arrow capsules hand the
    /// column to C consumers only (`Readers::C`).
    #[cfg_attr(not(feature = "pyo3"), allow(dead_code))]
    pub(crate) fn to_arrow_for(
        &self,
        opts: &ArrowExportOptions,
        readers: Readers,
    ) -> Result<TensorColumn> {
        match self.ndim() {
            0 => Err(Error::InvalidShape(
                "a 0-d tensor is no Arrow column; reshape it to [1]".into(),
            )),
            1 => {
                let array = self.to_arrow_primitive_for(opts, readers)?;
                let field = Field::new(opts.name.clone(), array.data_type().clone(), false);
                Ok(TensorColumn { field, array })
            }
            _ => self.to_arrow_fixed_shape_tensor_for(opts, readers),
        }
    }
}

/// Who will read an exported column's buffers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Readers {
    /// Safe Rust (`Buffer::as_slice` and friends): the aliasing rule applies.
    Rust,
    /// Only C consumers, through the Arrow C data interface (the Python module's capsules):
    /// the arrow-rs buffers are moved into the exported structs, where no Rust code reads
    /// them, so they take no reader mark; synchronising with writers is the consumer's
    /// business, as for every DLPack or buffer-protocol consumer.
    #[cfg_attr(not(feature = "pyo3"), allow(dead_code))]
    C,
}

/// The Arrow allocation of an exported view: keeps the view (and so its owner) alive until the
/// last Arrow buffer referring to it is dropped.
struct ViewAllocation(#[allow(dead_code)] TensorView);

// The allocation is never read or called through, only dropped, so observing it after a panic
// cannot expose a broken invariant.
impl RefUnwindSafe for ViewAllocation {}

/// `tensor` itself when it is host memory Arrow can reference (C-contiguous, aligned), else a
/// C-order copy when allowed, else an error.
fn dense_for_arrow(tensor: &TensorView, copy: CopyPolicy, readers: Readers) -> Result<TensorView> {
    tensor.require_host("Arrow buffers live in host memory")?;
    let align = tensor.dtype().alignment();
    let misaligned = !is_aligned(tensor.data_ptr() as usize, align, tensor.numel());
    if tensor.is_c_contiguous() && !misaligned {
        if readers == Readers::Rust
            && tensor.check_no_foreign_writer().is_err()
            && copy.allows_copy()
        {
            // Foreign code may write the memory: Arrow's readers get a copy instead.
            return tensor.to_contiguous(Order::C);
        }
        return Ok(tensor.clone());
    }
    if copy.allows_copy() {
        return tensor.to_contiguous(Order::C);
    }
    if misaligned {
        return Err(Error::Misaligned {
            address: tensor.data_ptr() as usize,
            align,
        });
    }
    Err(Error::CopyRequired(format!(
        "Arrow needs dense row-major data; shape {:?} has strides {:?}",
        tensor.shape(),
        tensor.strides()
    )))
}

/// Wrap a host, C-contiguous view's bytes as a Buffer that owns the view.
///
/// A `Buffer` hands out `&[u8]`, so it is a shared reference for the aliasing rule: refused
/// with [`Error::ForeignWriter`] while a writable foreign alias lives, and marked as a reader
/// so that none is made while it lives. The mark sits on an owner of the buffer's own, which
/// wraps the view's: it ends with the buffer, and later exports of the memory are writable
/// again.
fn view_to_buffer(mut view: TensorView, readers: Readers) -> Result<Buffer> {
    if readers == Readers::Rust {
        view.wrap_owner(|owner| Owner::with_dependency((), owner));
        view.begin_shared_reads()?;
    }
    let len = view.nbytes();
    let Some(ptr) = NonNull::new(view.data_ptr().cast_mut()).filter(|_| len > 0) else {
        // No bytes to share: an empty, properly aligned buffer.
        return Ok(MutableBuffer::new(0).into());
    };
    // SAFETY: the view is host memory, C-contiguous, so its `len` = nbytes bytes starting at the
    // first element are exactly the bytes it reaches, all inside memory its owner keeps valid
    // and readable. The allocation holds a clone of the view, hence of its owner, for as long as
    // any Buffer clone lives. Arrow only reads these bytes.
    Ok(unsafe { Buffer::from_custom_allocation(ptr, len, Arc::new(ViewAllocation(view))) })
}

/// The values of a dense view as Arrow ArrayData of `len` elements: primitive (zero-copy) or
/// boolean (bit-packed copy, only when allowed).
fn leaf_data(dense: &TensorView, copy: CopyPolicy, readers: Readers) -> Result<ArrayData> {
    let data_type = arrow_type_of(dense.dtype())?;
    let len = dense.numel();
    let buffer = if data_type == DataType::Boolean {
        if !copy.allows_copy() {
            return Err(Error::CopyRequired(
                "Arrow booleans are bit-packed; bool tensors must be copied".into(),
            ));
        }
        let bytes = dense.to_vec::<bool>()?;
        BooleanBuffer::collect_bool(len, |i| bytes[i]).into_inner()
    } else {
        view_to_buffer(dense.clone(), readers)?
    };
    ArrayData::builder(data_type)
        .len(len)
        .add_buffer(buffer)
        .build()
        .map_err(arrow_err)
}

fn list_data(child: ArrayData, size: usize, rows: usize) -> Result<ArrayData> {
    let size = i32::try_from(size).map_err(|_| Error::Overflow("fixed-size list length"))?;
    let item = Arc::new(Field::new("item", child.data_type().clone(), true));
    ArrayData::builder(DataType::FixedSizeList(item, size))
        .len(rows)
        .add_child_data(child)
        .build()
        .map_err(arrow_err)
}

fn require_rows(tensor: &TensorView) -> Result<()> {
    if tensor.ndim() < 2 {
        return Err(Error::InvalidShape(format!(
            "a tensor column needs rows (axis 0) of tensors with at least one axis, not shape {:?}",
            tensor.shape()
        )));
    }
    Ok(())
}

/// Physical order of the row axes (all but axis 0) when the view is C-contiguous up to a
/// permutation of those axes, with rows outermost: `Some(physical_axes)` (logical axis numbers,
/// outermost first), else `None`.
fn row_permutation(tensor: &TensorView) -> Option<Vec<usize>> {
    let (shape, strides) = (tensor.shape(), tensor.strides());
    let row_axes = 1..tensor.ndim();
    if strides[1..].iter().any(|&s| s <= 0) && tensor.numel() > 0 {
        return None;
    }
    // Extent-1 axes first (their stride is meaningless), then decreasing stride.
    let mut order: Vec<usize> = row_axes.collect();
    order.sort_by_key(|&a| (shape[a] != 1, std::cmp::Reverse(strides[a])));
    let mut expected: isize = 1;
    for &a in order.iter().rev() {
        if shape[a] != 1 {
            if strides[a] != expected {
                return None;
            }
            expected = expected.checked_mul(shape[a] as isize)?;
        }
    }
    if shape[0] > 1 && strides[0] != expected {
        return None;
    }
    Some(order.into_iter().map(|a| a - 1).collect())
}
