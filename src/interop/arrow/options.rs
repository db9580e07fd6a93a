//! How tensors are exported to and imported from Arrow.

use crate::{CopyPolicy, DType, Error, Result};
use ::arrow_array::ArrayRef;
use ::arrow_schema::Field;

/// How [`TensorView::to_arrow`](crate::TensorView::to_arrow) and friends export a tensor.
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
    pub(crate) fn bytes_for(self, dtype: DType) -> Result<Vec<u8>> {
        let bad = || Error::UnrepresentableFill {
            value: format!("{self:?}"),
            dtype,
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

/// How [`TensorView::from_arrow`](crate::TensorView::from_arrow) and friends import an array.
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
