//! Which dtype is which Arrow type.

use ::arrow_schema::DataType;

use crate::{DType, Error, Result};

/// The Arrow type of a dtype's elements (booleans map to bit-packed `Boolean`).
pub(crate) fn arrow_type_of(dtype: DType) -> Result<DataType> {
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
        _ => return Err(Error::UnsupportedArrowType(format!("dtype {dtype}"))),
    })
}

/// The dtype of an Arrow primitive or boolean type.
pub(crate) fn dtype_of_arrow(data_type: &DataType) -> Result<DType> {
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
        other => return Err(Error::UnsupportedArrowType(format!("Arrow type {other}"))),
    })
}

/// The Arrow type of a dtype's elements: booleans become bit-packed `Boolean`; dtypes Arrow has no
/// type for (bfloat16, complex, float8, sub-byte, vector lanes) are
/// [`Error::UnsupportedArrowType`].
///
/// ```
/// use arrow_schema::DataType;
/// use dlbridge::DType;
/// assert_eq!(DataType::try_from(DType::F16)?, DataType::Float16);
/// assert_eq!(DType::try_from(&DataType::UInt8)?, DType::U8);
/// assert!(DataType::try_from(DType::BF16).is_err());
/// assert!(DType::try_from(&DataType::Utf8).is_err());
/// # Ok::<(), dlbridge::Error>(())
/// ```
impl TryFrom<DType> for DataType {
    type Error = Error;
    fn try_from(dtype: DType) -> Result<DataType> {
        arrow_type_of(dtype)
    }
}

/// The dtype of an Arrow boolean or primitive numeric type; any other type is
/// [`Error::UnsupportedArrowType`].
impl TryFrom<&DataType> for DType {
    type Error = Error;
    fn try_from(data_type: &DataType) -> Result<DType> {
        dtype_of_arrow(data_type)
    }
}
