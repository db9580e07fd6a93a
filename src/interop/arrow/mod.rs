//! Arrow (arrow-rs 60) interop: [`TensorView`] to and from Arrow buffers, primitive arrays,
//! fixed-size lists and the canonical `arrow.fixed_shape_tensor` extension type; record batches
//! of tensor columns; the Arrow C data interface ([`c_data`]) and, with the `arrow-ipc` feature,
//! IPC files and streams (`ipc`).
//!
//! | from | to | how | cost |
//! |---|---|---|---|
//! | `&TensorView` | [`Buffer`] | [`TensorView::to_arrow_buffer`] | O(ndim) |
//! | `&TensorView` (1-D) | primitive [`ArrayRef`] | [`TensorView::to_arrow_primitive`] | O(ndim) |
//! | `&TensorView` (N-D) | nested fixed-size lists | [`TensorView::to_arrow_fixed_size_list`] | O(ndim) |
//! | `&TensorView` (N-D) | `arrow.fixed_shape_tensor` | [`TensorView::to_arrow_fixed_shape_tensor`] | O(ndim) |
//! | `&TensorView` | the natural column of its rank | [`TensorView::to_arrow`] | O(ndim) |
//! | [`Buffer`] | `TensorView` | [`TensorView::from_arrow_buffer`] | O(ndim) |
//! | [`ArrayData`] | `TensorView` | [`TensorView::from_arrow_data`] | O(ndim) |
//! | [`Field`] + array | `TensorView` | [`TensorView::from_arrow`] | O(ndim) |
//! | `DType` ⇄ [`DataType`] | | `TryFrom` both ways | O(1) |
//!
//! Each cost is that of sharing; when a copy is needed and allowed it is O(numel).
//!
//! # Zero copy, both ways
//! - **Export**: a host, C-contiguous view becomes an Arrow [`Buffer`] over the same bytes
//!   (`Buffer::from_custom_allocation`). The buffer's allocation holds a clone of the view, so
//!   the view's [`Owner`](crate::Owner) is released exactly once, when the last Arrow clone goes.
//!   Arrow memory is immutable: do not write through other aliases of an exported tensor while
//!   Arrow holds it.
//! - **Import**: the view points into the Arrow values buffer (slice offsets honoured) and its
//!   owner holds a clone of that [`Buffer`]; the view is read-only.
//!
//! # When a copy is needed
//! Arrow cannot express non-dense rows, gaps, zero or negative strides or column-major layouts,
//! stores booleans as bits, has validity bitmaps DLPack cannot carry, and may hand out buffers
//! not aligned for their type (IPC, FFI). Each of these needs a copy, made only when the caller
//! allows it ([`CopyPolicy::IfNeeded`]; nulls need a [`FillValue`]); otherwise the conversion
//! fails with [`Error::CopyRequired`], [`Error::NotContiguous`] or [`Error::Misaligned`], never
//! a panic. Column-major (transposed) tensors may instead be exported zero-copy with a
//! `permutation` ([`ArrowExportOptions::use_permutation`]); this is off by default because
//! pyarrow 26 computes wrong strides for 3-cycle permutations in `to_numpy_ndarray` (no upstream
//! report yet; the code came with apache/arrow#34797: remove this default when it is fixed).
//!
//! # Extension metadata
//! Written as `{"shape":[..]}` plus `"dim_names"` / `"permutation"` only when present, with a
//! nullable child field, which both arrow-rs 60 and pyarrow 26 accept (arrow-rs writes
//! `"permutations"` and `null`s that pyarrow rejects since apache/arrow#49716; no arrow-rs report
//! yet, the code came with apache/arrow-rs#5822); parsed leniently (both
//! `"permutation"` and arrow-rs's `"permutations"`, `null` values, either child nullability).
//!
//! # Python
//! [`TensorView::to_arrow`] returns the [`Field`] (with the extension metadata) next to the
//! array, so a caller can export both through the Arrow C data interface
//! (`arrow_array::ffi::to_ffi` and `FFI_ArrowSchema::try_from(&field)`);
//! [`TensorView::from_arrow`] takes the imported field and array back.
//!
//! ```
//! use dlbridge::TensorView;
//! let t = TensorView::from_vec((0..24).map(|x| x as f32).collect(), &[4, 2, 3])?;
//! let col = t.to_arrow(&Default::default())?; // fixed_shape_tensor, 4 rows of [2, 3]
//! assert_eq!(col.array.len(), 4);
//! let back = TensorView::from_arrow(&col.field, col.array.as_ref(), &Default::default())?;
//! assert_eq!(back.data_ptr(), t.data_ptr());
//! assert_eq!(back.shape(), &[4, 2, 3]);
//! assert!(back.is_read_only());
//! # Ok::<(), dlbridge::Error>(())
//! ```

#[cfg(doc)]
use {
    ::arrow_array::ArrayRef,
    ::arrow_schema::{DataType, Field},
};

use ::arrow_buffer::Buffer;
use ::arrow_data::ArrayData;
use ::arrow_schema::ArrowError;

use crate::{CopyPolicy, Error, ForeignError, Result, TensorView};

mod batch;
pub mod c_data;
mod export;
#[cfg_attr(not(feature = "pyo3"), allow(unused_imports))]
pub(crate) use export::Readers;
mod import;
#[cfg(feature = "arrow-ipc")]
#[cfg_attr(docsrs, doc(cfg(feature = "arrow-ipc")))]
pub mod ipc;
mod metadata;
mod options;
mod types;

pub use batch::*;
pub use metadata::*;
pub use options::*;
pub(crate) use types::{arrow_type_of, dtype_of_arrow};

/// The canonical extension name of fixed-shape tensor columns.
pub const FIXED_SHAPE_TENSOR: &str = "arrow.fixed_shape_tensor";
/// Field metadata key of an extension type's name (arrow-schema's constant).
pub const EXTENSION_NAME_KEY: &str = ::arrow_schema::extension::EXTENSION_TYPE_NAME_KEY;
/// Field metadata key of an extension type's serialized parameters (arrow-schema's constant).
pub const EXTENSION_METADATA_KEY: &str = ::arrow_schema::extension::EXTENSION_TYPE_METADATA_KEY;

/// An arrow-rs error as this crate's (the one conversion, used by every Arrow path).
pub(crate) fn arrow_err(e: ArrowError) -> Error {
    Error::Foreign(ForeignError::new("arrow", e))
}

/// An arrow-rs error, kept as the [`source()`](std::error::Error::source) of
/// [`Error::Foreign`].
impl From<ArrowError> for Error {
    fn from(e: ArrowError) -> Error {
        arrow_err(e)
    }
}

/// [`TensorView::to_arrow`] with default options (never copies; the field is named `tensor`):
/// 1-D tensors as primitive arrays, N-D as `arrow.fixed_shape_tensor` columns.
///
/// ```
/// use dlbridge::interop::arrow::TensorColumn;
/// use dlbridge::TensorView;
/// let t = TensorView::from_vec(vec![1u16, 2, 3, 4, 5, 6], &[3, 2])?;
/// let column = TensorColumn::try_from(&t)?;
/// let back = TensorView::try_from(&column)?;
/// assert_eq!((back.data_ptr(), back.shape()), (t.data_ptr(), t.shape()));
/// # Ok::<(), dlbridge::Error>(())
/// ```
impl TryFrom<&TensorView> for TensorColumn {
    type Error = Error;
    fn try_from(view: &TensorView) -> Result<TensorColumn> {
        view.to_arrow(&ArrowExportOptions::default())
    }
}

/// [`TensorView::from_arrow`] of the column's field and array, with default options (never
/// copies, refuses nulls).
impl TryFrom<&TensorColumn> for TensorView {
    type Error = Error;
    fn try_from(column: &TensorColumn) -> Result<TensorView> {
        TensorView::from_arrow(
            &column.field,
            column.array.as_ref(),
            &ArrowImportOptions::default(),
        )
    }
}

/// [`TensorView::from_arrow_data`] with default options (never copies, refuses nulls).
impl TryFrom<&ArrayData> for TensorView {
    type Error = Error;
    fn try_from(data: &ArrayData) -> Result<TensorView> {
        TensorView::from_arrow_data(data, &ArrowImportOptions::default())
    }
}

/// [`TensorView::to_arrow_buffer`] without copying (the tensor's bytes, in C order).
impl TryFrom<&TensorView> for Buffer {
    type Error = Error;
    fn try_from(view: &TensorView) -> Result<Buffer> {
        view.to_arrow_buffer(CopyPolicy::Never)
    }
}
