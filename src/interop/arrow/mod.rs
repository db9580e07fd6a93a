//! Arrow (arrow-rs 60) interop: [`TensorView`] to and from Arrow buffers, primitive arrays,
//! fixed-size lists and the canonical `arrow.fixed_shape_tensor` extension type, plus Arrow IPC
//! helpers for record batches of tensor columns.
//!
//! # Zero copy, both ways
//! - **Export** ([`tensor_to_buffer`], [`tensor_to_arrow`] and friends): a host, C-contiguous view
//!   becomes an Arrow [`Buffer`] over the same bytes (`Buffer::from_custom_allocation`). The
//!   buffer's allocation holds a clone of the view, so the view's [`Owner`] is
//!   released exactly once, when the last Arrow clone goes. Arrow memory is immutable: do not
//!   write through other aliases of an exported tensor while Arrow holds it.
//! - **Import** ([`tensor_from_buffer`], [`tensor_from_arrow`], [`tensor_from_array_data`]): the
//!   view points into the Arrow values buffer (slice offsets honoured) and its owner holds a clone
//!   of that [`Buffer`]; the view is read-only.
//!
//! Both directions cost O(ndim); no element is touched.
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
//! [`tensor_to_arrow`] returns the [`Field`] (with the extension metadata) next to the array, so
//! a caller can export both through the Arrow C data interface (`arrow_array::ffi::to_ffi` and
//! `FFI_ArrowSchema::try_from(&field)`); [`tensor_from_arrow`] takes the imported field and
//! array back.
//!
//! ```
//! use dlbridge::interop::arrow::{tensor_from_arrow, tensor_to_arrow};
//! use dlbridge::TensorView;
//! let t = TensorView::from_vec((0..24).map(|x| x as f32).collect(), &[4, 2, 3])?;
//! let col = tensor_to_arrow(&t, &Default::default())?; // fixed_shape_tensor, 4 rows of [2, 3]
//! assert_eq!(col.array.len(), 4);
//! let back = tensor_from_arrow(&col.field, col.array.as_ref(), &Default::default())?;
//! assert_eq!(back.data_ptr(), t.data_ptr());
//! assert_eq!(back.shape(), &[4, 2, 3]);
//! assert!(back.is_read_only());
//! # Ok::<(), dlbridge::Error>(())
//! ```

use std::io::{Read, Seek, Write};
use std::panic::RefUnwindSafe;
use std::ptr::NonNull;
use std::sync::Arc;

use ::arrow_array::{make_array, Array, ArrayRef, RecordBatch};
use ::arrow_buffer::{BooleanBuffer, Buffer, MutableBuffer};
use ::arrow_data::ArrayData;
use ::arrow_schema::{ArrowError, DataType, Field, Schema};

use crate::layout::{c_strides, is_aligned};
use crate::{DType, Device, Error, Flags, Order, Owner, Parts, Result, TensorView};

pub mod c_data;

/// The canonical extension name of fixed-shape tensor columns.
pub const FIXED_SHAPE_TENSOR: &str = "arrow.fixed_shape_tensor";
/// Field metadata key of an extension type's name (arrow-schema's constant).
pub const EXTENSION_NAME_KEY: &str = ::arrow_schema::extension::EXTENSION_TYPE_NAME_KEY;
/// Field metadata key of an extension type's serialized parameters (arrow-schema's constant).
pub const EXTENSION_METADATA_KEY: &str = ::arrow_schema::extension::EXTENSION_TYPE_METADATA_KEY;

pub use crate::CopyPolicy;

/// How [`tensor_to_arrow`] and friends export a tensor.
#[derive(Clone, Debug)]
pub struct ArrowExportOptions {
    /// Whether non-dense layouts and booleans may be copied (default: never).
    pub copy: CopyPolicy,
    /// Name of the returned [`Field`] (default `"tensor"`).
    pub name: String,
    /// `dim_names` of a fixed-shape tensor column: one name per row dimension (all axes but the
    /// first).
    pub dim_names: Option<Vec<String>>,
    /// Export a row-wise permuted layout (e.g. transposed rows) without copying, by writing the
    /// `permutation` metadata. Off by default: pyarrow 26 mishandles 3-cycle permutations, so a
    /// C-order copy (when allowed) is the portable choice.
    pub use_permutation: bool,
}

impl Default for ArrowExportOptions {
    fn default() -> Self {
        ArrowExportOptions {
            copy: CopyPolicy::Never,
            name: "tensor".to_string(),
            dim_names: None,
            use_permutation: false,
        }
    }
}

impl ArrowExportOptions {
    /// Default options with the given field name.
    pub fn named(name: impl Into<String>) -> Self {
        ArrowExportOptions {
            name: name.into(),
            ..Default::default()
        }
    }
    /// The same options, allowing copies.
    pub fn allow_copy(mut self) -> Self {
        self.copy = CopyPolicy::IfNeeded;
        self
    }
}

/// A value that replaces nulls when importing an Arrow array that has some.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FillValue {
    /// A signed integer (converted to the element type; must fit).
    Int(i64),
    /// An unsigned integer (converted to the element type; must fit).
    UInt(u64),
    /// A float (for float columns; integral values also fill integer columns).
    Float(f64),
    /// A boolean (for boolean columns).
    Bool(bool),
}

impl FillValue {
    /// The native-endian bytes of this value as an element of `dtype`.
    fn bytes_for(self, dtype: DType) -> Result<Vec<u8>> {
        let bad = || {
            Error::InvalidArgument(format!(
                "fill value {self:?} is not representable as {dtype}"
            ))
        };
        let as_i128 = || -> Result<i128> {
            match self {
                FillValue::Int(v) => Ok(i128::from(v)),
                FillValue::UInt(v) => Ok(i128::from(v)),
                FillValue::Float(f) if f.fract() == 0.0 && f.abs() < 1.8e19 => Ok(f as i128),
                _ => Err(bad()),
            }
        };
        let as_f64 = || -> Result<f64> {
            match self {
                FillValue::Int(v) => Ok(v as f64),
                FillValue::UInt(v) => Ok(v as f64),
                FillValue::Float(f) => Ok(f),
                FillValue::Bool(_) => Err(bad()),
            }
        };
        macro_rules! int {
            ($t:ty) => {
                <$t>::try_from(as_i128()?)
                    .map_err(|_| bad())?
                    .to_ne_bytes()
                    .to_vec()
            };
        }
        Ok(match dtype {
            DType::BOOL => match self {
                FillValue::Bool(b) => vec![u8::from(b)],
                _ => return Err(bad()),
            },
            DType::I8 => int!(i8),
            DType::I16 => int!(i16),
            DType::I32 => int!(i32),
            DType::I64 => int!(i64),
            DType::U8 => int!(u8),
            DType::U16 => int!(u16),
            DType::U32 => int!(u32),
            DType::U64 => int!(u64),
            DType::F16 => half::f16::from_f64(as_f64()?).to_ne_bytes().to_vec(),
            DType::F32 => (as_f64()? as f32).to_ne_bytes().to_vec(),
            DType::F64 => as_f64()?.to_ne_bytes().to_vec(),
            _ => return Err(bad()),
        })
    }
}

/// How [`tensor_from_arrow`] and friends import an array.
#[derive(Clone, Debug, Default)]
pub struct ArrowImportOptions {
    /// Whether booleans (bit-packed in Arrow) and misaligned buffers may be copied.
    pub copy: CopyPolicy,
    /// Replace nulls with this value (always copies). Without it, an array with nulls in the
    /// converted range is refused.
    pub null_fill: Option<FillValue>,
}

impl ArrowImportOptions {
    /// Options allowing copies (booleans, misaligned buffers), still refusing nulls.
    pub fn allow_copy() -> Self {
        ArrowImportOptions {
            copy: CopyPolicy::IfNeeded,
            null_fill: None,
        }
    }
}

/// An exported tensor column: the [`Field`] (name, type and extension metadata) and the array.
#[derive(Clone, Debug)]
pub struct TensorColumn {
    /// Name, storage type and, for fixed-shape tensors, the extension metadata.
    pub field: Field,
    /// The column data.
    pub array: ArrayRef,
}

/// Parameters of the `arrow.fixed_shape_tensor` extension type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedShapeTensorMeta {
    /// Physical (row-major storage) shape of one row's tensor.
    pub shape: Vec<usize>,
    /// Optional name of each physical dimension.
    pub dim_names: Option<Vec<String>>,
    /// Optional permutation: logical dimension `i` is physical dimension `permutation[i]`.
    pub permutation: Option<Vec<usize>>,
}

impl FixedShapeTensorMeta {
    /// Parse the `ARROW:extension:metadata` JSON, accepting what arrow-rs 60 and pyarrow 26
    /// write: `"permutation"` or `"permutations"`, absent or `null` optional fields.
    ///
    /// ```
    /// use dlbridge::interop::arrow::FixedShapeTensorMeta;
    /// let m = FixedShapeTensorMeta::parse(r#"{"shape":[2,3],"dim_names":null,"permutations":[1,0]}"#)?;
    /// assert_eq!(m.permutation, Some(vec![1, 0]));
    /// assert_eq!(m.to_json(), r#"{"shape":[2,3],"permutation":[1,0]}"#);
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn parse(json: &str) -> Result<FixedShapeTensorMeta> {
        let bad = |what: &str| {
            Error::InvalidArgument(format!("{FIXED_SHAPE_TENSOR} metadata {json:?}: {what}"))
        };
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| bad(&e.to_string()))?;
        let obj = value.as_object().ok_or_else(|| bad("not a JSON object"))?;
        let indices = |v: &serde_json::Value, what: &str| -> Result<Vec<usize>> {
            v.as_array()
                .ok_or_else(|| bad(&format!("{what} is not an array")))?
                .iter()
                .map(|x| {
                    x.as_u64()
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or_else(|| {
                            bad(&format!("{what} holds {x}, not a non-negative integer"))
                        })
                })
                .collect()
        };
        let present = |key: &str| obj.get(key).filter(|v| !v.is_null());
        let shape = indices(present("shape").ok_or_else(|| bad("no shape"))?, "shape")?;
        let ndim = shape.len();
        let dim_names = match present("dim_names") {
            None => None,
            Some(v) => {
                let names: Vec<String> = v
                    .as_array()
                    .ok_or_else(|| bad("dim_names is not an array"))?
                    .iter()
                    .map(|x| x.as_str().map(str::to_owned))
                    .collect::<Option<_>>()
                    .ok_or_else(|| bad("dim_names holds a non-string"))?;
                if names.len() != ndim {
                    return Err(bad("dim_names length differs from the shape's"));
                }
                Some(names)
            }
        };
        let permutation = match present("permutation").or_else(|| present("permutations")) {
            None => None,
            Some(v) => {
                let p = indices(v, "permutation")?;
                check_permutation(&p, ndim).map_err(|_| bad("invalid permutation"))?;
                Some(p)
            }
        };
        Ok(FixedShapeTensorMeta {
            shape,
            dim_names,
            permutation,
        })
    }

    /// The JSON both arrow-rs and pyarrow read: optional keys only when present, never `null`.
    pub fn to_json(&self) -> String {
        // Keys in the order pyarrow writes them (serde_json's map would sort them).
        let json = |v: serde_json::Value| v.to_string();
        let mut out = format!("{{\"shape\":{}", json(serde_json::json!(self.shape)));
        if let Some(names) = &self.dim_names {
            out += &format!(",\"dim_names\":{}", json(serde_json::json!(names)));
        }
        if let Some(p) = &self.permutation {
            out += &format!(",\"permutation\":{}", json(serde_json::json!(p)));
        }
        out.push('}');
        out
    }

    /// The extension parameters of `field`, if it is tagged `arrow.fixed_shape_tensor`.
    pub fn from_field(field: &Field) -> Result<Option<FixedShapeTensorMeta>> {
        if field.metadata().get(EXTENSION_NAME_KEY).map(String::as_str) != Some(FIXED_SHAPE_TENSOR)
        {
            return Ok(None);
        }
        let json = field
            .metadata()
            .get(EXTENSION_METADATA_KEY)
            .ok_or_else(|| {
                Error::InvalidArgument(format!("{FIXED_SHAPE_TENSOR} field without metadata"))
            })?;
        Self::parse(json).map(Some)
    }
}

fn check_permutation(p: &[usize], ndim: usize) -> Result<()> {
    let mut seen = vec![false; ndim];
    if p.len() != ndim
        || p.iter()
            .any(|&a| a >= ndim || std::mem::replace(&mut seen[a], true))
    {
        return Err(Error::InvalidArgument(format!(
            "{p:?} is not a permutation of {ndim} axes"
        )));
    }
    Ok(())
}

/// An arrow-rs error as this crate's (the one conversion, used by every Arrow path).
pub(crate) fn arrow_err(e: ArrowError) -> Error {
    Error::Foreign {
        library: "arrow",
        message: e.to_string(),
    }
}

/// The Arrow type of a dtype's elements (booleans map to bit-packed `Boolean`).
pub fn arrow_type_of(dtype: DType) -> Result<DataType> {
    Ok(match dtype {
        DType::BOOL => DataType::Boolean,
        DType::I8 => DataType::Int8,
        DType::I16 => DataType::Int16,
        DType::I32 => DataType::Int32,
        DType::I64 => DataType::Int64,
        DType::U8 => DataType::UInt8,
        DType::U16 => DataType::UInt16,
        DType::U32 => DataType::UInt32,
        DType::U64 => DataType::UInt64,
        DType::F16 => DataType::Float16,
        DType::F32 => DataType::Float32,
        DType::F64 => DataType::Float64,
        _ => {
            return Err(Error::UnsupportedDtype {
                dtype,
                reason: "Arrow has no primitive type for it",
            })
        }
    })
}

/// The dtype of an Arrow primitive or boolean type.
pub fn dtype_of_arrow(data_type: &DataType) -> Result<DType> {
    Ok(match data_type {
        DataType::Boolean => DType::BOOL,
        DataType::Int8 => DType::I8,
        DataType::Int16 => DType::I16,
        DataType::Int32 => DType::I32,
        DataType::Int64 => DType::I64,
        DataType::UInt8 => DType::U8,
        DataType::UInt16 => DType::U16,
        DataType::UInt32 => DType::U32,
        DataType::UInt64 => DType::U64,
        DataType::Float16 => DType::F16,
        DataType::Float32 => DType::F32,
        DataType::Float64 => DType::F64,
        other => return Err(Error::UnsupportedArrowType(other.to_string())),
    })
}

// ---------------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------------

/// The Arrow allocation of an exported view: keeps the view (and so its owner) alive until the
/// last Arrow buffer referring to it is dropped.
struct ViewAllocation(#[allow(dead_code)] TensorView);

// The allocation is never read or called through, only dropped, so observing it after a panic
// cannot expose a broken invariant.
impl RefUnwindSafe for ViewAllocation {}

/// The same bytes as an Arrow [`Buffer`], without copying: host, C-contiguous views only, unless
/// `copy` allows a C-order copy. The buffer keeps the view's owner alive.
///
/// ```
/// use dlbridge::interop::arrow::{tensor_to_buffer, CopyPolicy};
/// let t = dlbridge::TensorView::from_vec(vec![1u16, 2, 3, 4], &[2, 2])?;
/// let buf = tensor_to_buffer(&t, CopyPolicy::Never)?;
/// assert_eq!(buf.as_ptr(), t.data_ptr());
/// assert_eq!(buf.typed_data::<u16>(), &[1, 2, 3, 4]);
/// assert!(tensor_to_buffer(&t.transpose()?, CopyPolicy::Never).is_err());
/// # Ok::<(), dlbridge::Error>(())
/// ```
pub fn tensor_to_buffer(tensor: &TensorView, copy: CopyPolicy) -> Result<Buffer> {
    let dense = dense_for_arrow(tensor, copy)?;
    Ok(view_to_buffer(dense))
}

/// `tensor` itself when it is host memory Arrow can reference (C-contiguous, aligned), else a
/// C-order copy when allowed, else an error.
fn dense_for_arrow(tensor: &TensorView, copy: CopyPolicy) -> Result<TensorView> {
    tensor.require_host("Arrow buffers live in host memory")?;
    let align = tensor.dtype().alignment();
    let misaligned = !is_aligned(tensor.data_ptr() as usize, align, tensor.numel());
    if tensor.is_c_contiguous() && !misaligned {
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

/// Wrap a host, C-contiguous view's bytes as a Buffer that owns a clone of the view.
fn view_to_buffer(view: TensorView) -> Buffer {
    let len = view.nbytes();
    let Some(ptr) = NonNull::new(view.data_ptr().cast_mut()).filter(|_| len > 0) else {
        // No bytes to share: an empty, properly aligned buffer.
        return MutableBuffer::new(0).into();
    };
    // SAFETY: the view is host memory, C-contiguous, so its `len` = nbytes bytes starting at the
    // first element are exactly the bytes it reaches, all inside memory its owner keeps valid
    // and readable. The allocation holds a clone of the view, hence of its owner, for as long as
    // any Buffer clone lives. Arrow only reads these bytes.
    unsafe { Buffer::from_custom_allocation(ptr, len, Arc::new(ViewAllocation(view))) }
}

/// The values of a dense view as Arrow ArrayData of `len` elements: primitive (zero-copy) or
/// boolean (bit-packed copy, only when allowed).
fn leaf_data(dense: &TensorView, copy: CopyPolicy) -> Result<ArrayData> {
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
        view_to_buffer(dense.clone())
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

/// A 1-D tensor as a primitive array over the same memory (booleans: a bit-packed copy, when
/// allowed).
///
/// ```
/// use arrow_array::{cast::AsArray, types::Int64Type};
/// use dlbridge::interop::arrow::tensor_to_primitive;
/// let t = dlbridge::TensorView::from_vec(vec![5i64, 6, 7], &[3])?;
/// let a = tensor_to_primitive(&t, &Default::default())?;
/// assert_eq!(a.as_primitive::<Int64Type>().values().as_ptr().cast(), t.data_ptr());
/// # Ok::<(), dlbridge::Error>(())
/// ```
pub fn tensor_to_primitive(tensor: &TensorView, opts: &ArrowExportOptions) -> Result<ArrayRef> {
    if tensor.ndim() != 1 {
        return Err(Error::InvalidShape(format!(
            "a primitive array needs a 1-D tensor, not shape {:?}",
            tensor.shape()
        )));
    }
    let dense = dense_for_arrow(tensor, opts.copy)?;
    Ok(make_array(leaf_data(&dense, opts.copy)?))
}

/// An N-D tensor (N >= 2) as nested fixed-size lists: one list per row (first axis), nested once
/// per further axis, over the same memory. The field carries no extension type.
pub fn tensor_to_fixed_size_list(
    tensor: &TensorView,
    opts: &ArrowExportOptions,
) -> Result<TensorColumn> {
    require_rows(tensor)?;
    let dense = dense_for_arrow(tensor, opts.copy)?;
    let shape = dense.shape();
    let mut data = leaf_data(&dense, opts.copy)?;
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

/// An N-D tensor (N >= 2) as a column of the canonical `arrow.fixed_shape_tensor` extension
/// type: one row per index of axis 0, each row a fixed-size list of `prod(shape[1..])` values,
/// over the same memory. The returned field carries the extension name and metadata.
///
/// Non-C-contiguous tensors are copied to C order when allowed; with
/// [`ArrowExportOptions::use_permutation`], row-permuted layouts (rows outermost, each row a
/// permutation of a dense tensor, such as transposed matrices) are exported without a copy.
///
/// ```
/// use dlbridge::interop::arrow::{tensor_to_fixed_shape_tensor, ArrowExportOptions};
/// let t = dlbridge::TensorView::from_vec((0..12).collect::<Vec<i32>>(), &[2, 3, 2])?;
/// let col = tensor_to_fixed_shape_tensor(&t, &ArrowExportOptions::named("x"))?;
/// assert_eq!(
///     col.field.metadata().get("ARROW:extension:metadata").unwrap(),
///     r#"{"shape":[3,2]}"#
/// );
/// # Ok::<(), dlbridge::Error>(())
/// ```
pub fn tensor_to_fixed_shape_tensor(
    tensor: &TensorView,
    opts: &ArrowExportOptions,
) -> Result<TensorColumn> {
    require_rows(tensor)?;
    if let Some(names) = &opts.dim_names {
        if names.len() != tensor.ndim() - 1 {
            return Err(Error::InvalidArgument(format!(
                "{} dim_names for rows of {} dimensions",
                names.len(),
                tensor.ndim() - 1
            )));
        }
    }
    let permuted = match row_permutation(tensor) {
        Some(order)
            if opts.use_permutation
                && !tensor.is_c_contiguous()
                && tensor.device().is_host_accessible() =>
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
            let physical = tensor.permute(&axes)?;
            let meta = FixedShapeTensorMeta {
                shape: physical.shape()[1..].to_vec(),
                dim_names: opts
                    .dim_names
                    .as_ref()
                    .map(|n| order.iter().map(|&a| n[a].clone()).collect()),
                permutation: Some(perm),
            };
            (dense_for_arrow(&physical, CopyPolicy::Never)?, meta)
        }
        None => {
            let dense = dense_for_arrow(tensor, opts.copy)?;
            let meta = FixedShapeTensorMeta {
                shape: dense.shape()[1..].to_vec(),
                dim_names: opts.dim_names.clone(),
                permutation: None,
            };
            (dense, meta)
        }
    };
    let row: usize = meta.shape.iter().product();
    let data = list_data(leaf_data(&dense, opts.copy)?, row, dense.shape()[0])?;
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
/// `arrow.fixed_shape_tensor` columns (see [`tensor_to_fixed_shape_tensor`]). 0-D tensors are
/// refused (reshape them to `[1]`).
pub fn tensor_to_arrow(tensor: &TensorView, opts: &ArrowExportOptions) -> Result<TensorColumn> {
    match tensor.ndim() {
        0 => Err(Error::InvalidShape(
            "a 0-d tensor is no Arrow column; reshape it to [1]".into(),
        )),
        1 => {
            let array = tensor_to_primitive(tensor, opts)?;
            let field = Field::new(opts.name.clone(), array.data_type().clone(), false);
            Ok(TensorColumn { field, array })
        }
        _ => tensor_to_fixed_shape_tensor(tensor, opts),
    }
}

// ---------------------------------------------------------------------------------------------
// Import
// ---------------------------------------------------------------------------------------------

/// A read-only view of `shape` over `buffer`'s first bytes as `dtype` elements, without copying;
/// the view's owner holds a clone of the buffer. A buffer not aligned for `dtype` is copied when
/// `copy` allows it, else refused with [`Error::Misaligned`].
///
/// ```
/// use arrow_buffer::Buffer;
/// use dlbridge::{interop::arrow::{tensor_from_buffer, CopyPolicy}, DType};
/// let buf = Buffer::from_vec(vec![1.5f32, 2.5, 3.5, 4.5]);
/// let t = tensor_from_buffer(&buf, DType::F32, &[2, 2], CopyPolicy::Never)?;
/// assert_eq!(t.data_ptr(), buf.as_ptr());
/// assert_eq!(t.to_vec::<f32>()?, vec![1.5, 2.5, 3.5, 4.5]);
/// # Ok::<(), dlbridge::Error>(())
/// ```
pub fn tensor_from_buffer(
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

/// View `shape` C-contiguous elements of `dtype` at byte `start` of `buffer`.
fn view_over_buffer(
    buffer: &Buffer,
    start: usize,
    dtype: DType,
    shape: &[usize],
    opts: &ArrowImportOptions,
) -> Result<TensorView> {
    let size = dtype.itemsize().ok_or(Error::UnsupportedDtype {
        dtype,
        reason: "bit-packed elements cannot be viewed in an Arrow buffer",
    })?;
    let numel = shape
        .iter()
        .try_fold(1usize, |a, &n| a.checked_mul(n))
        .ok_or(Error::Overflow("element count"))?;
    let nbytes = numel
        .checked_mul(size)
        .ok_or(Error::Overflow("byte size"))?;
    let end = start
        .checked_add(nbytes)
        .ok_or(Error::Overflow("byte range"))?;
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
    let parts = Parts {
        data: base.cast_mut(),
        byte_offset: start,
        shape: shape.to_vec(),
        strides: None,
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
    let view = unsafe { TensorView::from_parts(parts, Owner::new(buffer.clone()))? };
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
                    .map_err(|_| Error::InvalidArgument("negative list size".into()))?;
                let child = cur.child_data().first().ok_or_else(|| {
                    Error::InvalidArgument("fixed-size list without child data".into())
                })?;
                start = cur
                    .offset()
                    .checked_add(start)
                    .and_then(|s| s.checked_mul(size))
                    .ok_or(Error::Overflow("list child offset"))?;
                count = count
                    .checked_mul(size)
                    .ok_or(Error::Overflow("list child length"))?;
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

/// A tensor over an Arrow array given as [`ArrayData`]: primitive arrays give 1-D tensors,
/// (nested) fixed-size lists give N-D tensors `[len, size_1, size_2, ...]`, without copying and
/// read-only; slice offsets at every level are honoured. Boolean values are copied into bytes
/// (when allowed), misaligned buffers copied (when allowed), nulls filled (when a fill value is
/// given) or refused.
///
/// Accepts `ArrayData` rather than an array so that data from FFI or IPC that arrow-rs's typed
/// arrays would reject (e.g. misaligned buffers, on which they panic) is handled as an error.
pub fn tensor_from_array_data(data: &ArrayData, opts: &ArrowImportOptions) -> Result<TensorView> {
    let (levels, shape) = flatten(data)?;
    let leaf = levels.last().expect("flatten yields at least one level");
    let dtype = dtype_of_arrow(leaf.data.data_type())?;
    let nulls = levels.iter().map(level_nulls).sum::<Result<usize>>()?;
    if nulls > 0 && opts.null_fill.is_none() {
        return Err(Error::InvalidArgument(format!(
            "the Arrow array has {nulls} null(s), which a tensor cannot hold; give a fill value"
        )));
    }
    let values = leaf
        .data
        .buffers()
        .first()
        .ok_or_else(|| Error::InvalidArgument("Arrow array without a values buffer".into()))?;
    let first = leaf
        .data
        .offset()
        .checked_add(leaf.start)
        .ok_or(Error::Overflow("leaf offset"))?;
    let view = if dtype == DType::BOOL {
        if !opts.copy.allows_copy() && opts.null_fill.is_none() {
            return Err(Error::CopyRequired(
                "Arrow booleans are bit-packed; they must be copied into bytes".into(),
            ));
        }
        let end = first
            .checked_add(leaf.count)
            .ok_or(Error::Overflow("bit range"))?;
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
            .ok_or(Error::Overflow("leaf byte offset"))?;
        view_over_buffer(values, start, dtype, &shape, opts)?
    };
    match opts.null_fill {
        Some(fill) if nulls > 0 => fill_nulls(&view, &leaf_validity(&levels, &shape), fill),
        _ => Ok(view),
    }
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

/// A tensor over an Arrow column, without copying: `arrow.fixed_shape_tensor` columns (tagged on
/// `field`) give `[len, logical row shape...]`, honouring `permutation` by strides; other
/// columns are read as by [`tensor_from_array_data`] (primitive: 1-D; nested fixed-size lists:
/// N-D). The view is read-only and keeps the Arrow values buffer alive.
pub fn tensor_from_arrow(
    field: &Field,
    array: &dyn Array,
    opts: &ArrowImportOptions,
) -> Result<TensorView> {
    let data = array.to_data();
    let Some(meta) = FixedShapeTensorMeta::from_field(field)? else {
        return tensor_from_array_data(&data, opts);
    };
    let DataType::FixedSizeList(item, size) = data.data_type() else {
        return Err(Error::InvalidArgument(format!(
            "{FIXED_SHAPE_TENSOR} storage must be a fixed-size list, not {}",
            data.data_type()
        )));
    };
    if matches!(item.data_type(), DataType::FixedSizeList(..)) {
        return Err(Error::InvalidArgument(format!(
            "{FIXED_SHAPE_TENSOR} storage must be a flat fixed-size list"
        )));
    }
    let row = meta
        .shape
        .iter()
        .try_fold(1usize, |a, &n| a.checked_mul(n))
        .ok_or(Error::Overflow("row size"))?;
    if usize::try_from(*size).ok() != Some(row) {
        return Err(Error::InvalidShape(format!(
            "{FIXED_SHAPE_TENSOR} shape {:?} holds {row} values, the list holds {size}",
            meta.shape
        )));
    }
    let flat = tensor_from_array_data(&data, opts)?;
    let rows = isize::try_from(data.len()).map_err(|_| Error::Overflow("row count"))?;
    let mut physical = vec![rows];
    for &n in &meta.shape {
        physical.push(isize::try_from(n).map_err(|_| Error::Overflow("shape"))?);
    }
    let physical = flat.reshape(&physical)?;
    match meta.permutation {
        None => Ok(physical),
        Some(p) => {
            let axes: Vec<usize> = std::iter::once(0).chain(p.iter().map(|&a| a + 1)).collect();
            physical.permute(&axes)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Record batches and IPC
// ---------------------------------------------------------------------------------------------

/// A record batch with one column per named tensor (see [`tensor_to_arrow`]); every tensor's
/// first axis is the row axis, so all must have the same length along it.
///
/// ```
/// use dlbridge::interop::arrow::*;
/// use dlbridge::TensorView;
/// let images = TensorView::from_vec(vec![0u8; 2 * 4 * 4], &[2, 4, 4])?;
/// let labels = TensorView::from_vec(vec![3i64, 7], &[2])?;
/// let batch = record_batch_from_tensors(&[("images", &images), ("labels", &labels)], &Default::default())?;
/// let mut file = Vec::new();
/// write_ipc_file(&mut file, &[batch])?;
/// let batches = read_ipc_file_buffer(arrow_buffer::Buffer::from_vec(file))?;
/// let cols = tensors_from_record_batch(&batches[0], &Default::default())?;
/// assert_eq!(cols[0].0, "images");
/// assert_eq!(cols[0].1.shape(), &[2, 4, 4]);
/// assert_eq!(cols[1].1.to_vec::<i64>()?, vec![3, 7]);
/// # Ok::<(), dlbridge::Error>(())
/// ```
pub fn record_batch_from_tensors(
    columns: &[(&str, &TensorView)],
    opts: &ArrowExportOptions,
) -> Result<RecordBatch> {
    let mut fields = Vec::with_capacity(columns.len());
    let mut arrays = Vec::with_capacity(columns.len());
    for (name, tensor) in columns {
        let col_opts = ArrowExportOptions {
            name: (*name).to_string(),
            dim_names: None,
            ..opts.clone()
        };
        let col = tensor_to_arrow(tensor, &col_opts)?;
        fields.push(col.field);
        arrays.push(col.array);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(arrow_err)
}

/// Every column of `batch` as a named tensor (see [`tensor_from_arrow`]).
pub fn tensors_from_record_batch(
    batch: &RecordBatch,
    opts: &ArrowImportOptions,
) -> Result<Vec<(String, TensorView)>> {
    let schema = batch.schema();
    schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(field, array)| {
            Ok((
                field.name().clone(),
                tensor_from_arrow(field, array.as_ref(), opts)?,
            ))
        })
        .collect()
}

fn schema_of(batches: &[RecordBatch]) -> Result<Arc<Schema>> {
    let schema = batches
        .first()
        .ok_or_else(|| Error::InvalidArgument("no record batch to write".into()))?
        .schema();
    Ok(schema)
}

/// Write record batches (all with the first one's schema) as an Arrow IPC file.
pub fn write_ipc_file<W: Write>(writer: W, batches: &[RecordBatch]) -> Result<()> {
    let schema = schema_of(batches)?;
    let mut w = ::arrow_ipc::writer::FileWriter::try_new(writer, &schema).map_err(arrow_err)?;
    for b in batches {
        w.write(b).map_err(arrow_err)?;
    }
    w.finish().map_err(arrow_err)
}

/// Write record batches (all with the first one's schema) as an Arrow IPC stream.
pub fn write_ipc_stream<W: Write>(writer: W, batches: &[RecordBatch]) -> Result<()> {
    let schema = schema_of(batches)?;
    let mut w = ::arrow_ipc::writer::StreamWriter::try_new(writer, &schema).map_err(arrow_err)?;
    for b in batches {
        w.write(b).map_err(arrow_err)?;
    }
    w.finish().map_err(arrow_err)
}

/// Read every record batch of an Arrow IPC file (copied from `reader` into Arrow buffers).
pub fn read_ipc_file<R: Read + Seek>(reader: R) -> Result<Vec<RecordBatch>> {
    ::arrow_ipc::reader::FileReader::try_new(reader, None)
        .map_err(arrow_err)?
        .map(|b| b.map_err(arrow_err))
        .collect()
}

/// Read every record batch of an Arrow IPC stream.
pub fn read_ipc_stream<R: Read>(reader: R) -> Result<Vec<RecordBatch>> {
    ::arrow_ipc::reader::StreamReader::try_new(reader, None)
        .map_err(arrow_err)?
        .map(|b| b.map_err(arrow_err))
        .collect()
}

/// Decode an Arrow IPC file held in one [`Buffer`] without copying: the arrays (and the tensors
/// read from them) point into `file`, which they keep alive. Pass a buffer over a memory-mapped
/// file (`Buffer::from_custom_allocation` around the mapping) to read tensors straight from disk.
/// Arrays that are misaligned in the file are copied by arrow-ipc into aligned memory.
pub fn read_ipc_file_buffer(file: Buffer) -> Result<Vec<RecordBatch>> {
    use ::arrow_ipc::reader::{read_footer_length, FileDecoder};
    let invalid = |m: &str| Error::InvalidArgument(format!("not an Arrow IPC file: {m}"));
    let len = file.len();
    if len < 10 {
        return Err(invalid("too short"));
    }
    let trailer: [u8; 10] = file[len - 10..]
        .try_into()
        .map_err(|_| invalid("bad trailer"))?;
    let footer_len = read_footer_length(trailer).map_err(arrow_err)?;
    let footer_start = (len - 10)
        .checked_sub(footer_len)
        .ok_or_else(|| invalid("footer longer than the file"))?;
    let footer = ::arrow_ipc::root_as_footer(&file[footer_start..len - 10])
        .map_err(|e| invalid(&e.to_string()))?;
    let schema = ::arrow_ipc::convert::try_fb_to_schema(
        footer.schema().ok_or_else(|| invalid("no schema"))?,
    )
    .map_err(arrow_err)?;
    let mut decoder = FileDecoder::new(Arc::new(schema), footer.version());
    let block_data = |block: &::arrow_ipc::Block| -> Result<Buffer> {
        let offset = usize::try_from(block.offset()).map_err(|_| invalid("negative offset"))?;
        let block_len = usize::try_from(block.bodyLength())
            .ok()
            .zip(usize::try_from(block.metaDataLength()).ok())
            .and_then(|(b, m)| b.checked_add(m))
            .ok_or_else(|| invalid("bad block length"))?;
        if offset
            .checked_add(block_len)
            .is_none_or(|e| e > footer_start)
        {
            return Err(invalid("block outside the file"));
        }
        Ok(file.slice_with_length(offset, block_len))
    };
    for block in footer.dictionaries().iter().flatten() {
        decoder
            .read_dictionary(block, &block_data(block)?)
            .map_err(arrow_err)?;
    }
    let mut batches = Vec::new();
    for block in footer.recordBatches().iter().flatten() {
        if let Some(batch) = decoder
            .read_record_batch(block, &block_data(block)?)
            .map_err(arrow_err)?
        {
            batches.push(batch);
        }
    }
    Ok(batches)
}

/// Whether `field` is tagged with the `arrow.fixed_shape_tensor` extension name.
pub fn is_fixed_shape_tensor(field: &Field) -> bool {
    field.metadata().get(EXTENSION_NAME_KEY).map(String::as_str) == Some(FIXED_SHAPE_TENSOR)
}
