//! Element types: every DLPack 1.3 type code, with bits and lanes.

use std::fmt;

use crate::{Error, Result};

/// A DLPack type code (`DLDataTypeCode`): the kind of number an element is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum DTypeCode {
    Int = 0,
    UInt = 1,
    Float = 2,
    OpaqueHandle = 3,
    BFloat = 4,
    Complex = 5,
    Bool = 6,
    Float8E3M4 = 7,
    Float8E4M3 = 8,
    Float8E4M3B11Fnuz = 9,
    Float8E4M3Fn = 10,
    Float8E4M3Fnuz = 11,
    Float8E5M2 = 12,
    Float8E5M2Fnuz = 13,
    Float8E8M0Fnu = 14,
    Float6E2M3Fn = 15,
    Float6E3M2Fn = 16,
    Float4E2M1Fn = 17,
}

impl DTypeCode {
    /// The code for a raw DLPack `code` byte, or `None` for a code DLPack 1.3 does not define.
    pub fn from_u8(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }

    /// Every code, indexed by its number.
    const ALL: [DTypeCode; 18] = {
        use DTypeCode::*;
        [
            Int,
            UInt,
            Float,
            OpaqueHandle,
            BFloat,
            Complex,
            Bool,
            Float8E3M4,
            Float8E4M3,
            Float8E4M3B11Fnuz,
            Float8E4M3Fn,
            Float8E4M3Fnuz,
            Float8E5M2,
            Float8E5M2Fnuz,
            Float8E8M0Fnu,
            Float6E2M3Fn,
            Float6E3M2Fn,
            Float4E2M1Fn,
        ]
    };

    /// The one bit width DLPack allows for the fixed-width float8/6/4 codes, if this is one.
    fn fixed_bits(self) -> Option<u8> {
        use DTypeCode::*;
        match self {
            Float8E3M4 | Float8E4M3 | Float8E4M3B11Fnuz | Float8E4M3Fn | Float8E4M3Fnuz
            | Float8E5M2 | Float8E5M2Fnuz | Float8E8M0Fnu => Some(8),
            Float6E2M3Fn | Float6E3M2Fn => Some(6),
            Float4E2M1Fn => Some(4),
            _ => None,
        }
    }

    /// The numpy / ml_dtypes style name stem of the fixed-width float codes.
    fn fixed_name(self) -> Option<&'static str> {
        use DTypeCode::*;
        Some(match self {
            Float8E3M4 => "float8_e3m4",
            Float8E4M3 => "float8_e4m3",
            Float8E4M3B11Fnuz => "float8_e4m3b11fnuz",
            Float8E4M3Fn => "float8_e4m3fn",
            Float8E4M3Fnuz => "float8_e4m3fnuz",
            Float8E5M2 => "float8_e5m2",
            Float8E5M2Fnuz => "float8_e5m2fnuz",
            Float8E8M0Fnu => "float8_e8m0fnu",
            Float6E2M3Fn => "float6_e2m3fn",
            Float6E3M2Fn => "float6_e3m2fn",
            Float4E2M1Fn => "float4_e2m1fn",
            _ => return None,
        })
    }
}

/// An element type: DLPack's `DLDataType` (`code`, `bits`, `lanes`), validated.
///
/// A `DType` value always satisfies the DLPack 1.3 rules for its code (bool is 8 bits, bfloat16
/// 16, complex 32/64/128, float8 8, float6 6, float4 4, ints and uints 1 to 64, floats 8 to 64),
/// so code holding one never has to re-check. Elements narrower than a byte
/// ([`DType::is_subbyte`]) are bit-packed in memory unless a tensor says they are padded.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DType {
    /// A valid [`DTypeCode`] number, kept as a plain byte: a `DType` then has no niche, so a
    /// `TensorView` has none but its owner pointer, and the `Option`s and `Result`s that carry
    /// views move them as whole aligned blocks (with the enum's niche byte inside a view, every
    /// move copied the bytes around it with misaligned loads that defeat store forwarding).
    code: u8,
    bits: u8,
    lanes: u16,
}

#[allow(missing_docs)]
impl DType {
    pub const BOOL: DType = DType::scalar(DTypeCode::Bool, 8);
    pub const I8: DType = DType::scalar(DTypeCode::Int, 8);
    pub const I16: DType = DType::scalar(DTypeCode::Int, 16);
    pub const I32: DType = DType::scalar(DTypeCode::Int, 32);
    pub const I64: DType = DType::scalar(DTypeCode::Int, 64);
    pub const U8: DType = DType::scalar(DTypeCode::UInt, 8);
    pub const U16: DType = DType::scalar(DTypeCode::UInt, 16);
    pub const U32: DType = DType::scalar(DTypeCode::UInt, 32);
    pub const U64: DType = DType::scalar(DTypeCode::UInt, 64);
    pub const F16: DType = DType::scalar(DTypeCode::Float, 16);
    pub const F32: DType = DType::scalar(DTypeCode::Float, 32);
    pub const F64: DType = DType::scalar(DTypeCode::Float, 64);
    pub const BF16: DType = DType::scalar(DTypeCode::BFloat, 16);
    pub const C64: DType = DType::scalar(DTypeCode::Complex, 64);
    pub const C128: DType = DType::scalar(DTypeCode::Complex, 128);

    const fn scalar(code: DTypeCode, bits: u8) -> DType {
        DType {
            code: code as u8,
            bits,
            lanes: 1,
        }
    }

    /// Validate a DLPack `(code, bits, lanes)` triple.
    pub fn new(code: u8, bits: u8, lanes: u16) -> Result<DType> {
        let Some(kind) = DTypeCode::from_u8(code) else {
            return Err(Error::UnknownDtype { code, bits, lanes });
        };
        let dtype = DType {
            code: kind as u8,
            bits,
            lanes,
        };
        let reject = |reason| Err(Error::UnsupportedDtype { dtype, reason });
        if lanes == 0 {
            return reject("lanes must be at least 1");
        }
        let bits_ok = match kind {
            DTypeCode::Int | DTypeCode::UInt => matches!(bits, 1 | 2 | 4 | 8 | 16 | 32 | 64),
            DTypeCode::Float => matches!(bits, 8 | 16 | 32 | 64),
            DTypeCode::BFloat => bits == 16,
            DTypeCode::Complex => matches!(bits, 32 | 64 | 128),
            DTypeCode::Bool => bits == 8,
            DTypeCode::OpaqueHandle => bits > 0 && bits.is_multiple_of(8),
            fixed => fixed.fixed_bits() == Some(bits),
        };
        if !bits_ok {
            return reject("bit width not allowed for this type code");
        }
        if bits < 8 && lanes != 1 {
            return reject("vector lanes of sub-byte elements are not supported");
        }
        Ok(dtype)
    }

    /// Whether every bit pattern of an element is a valid value: false for booleans, whose
    /// bytes must be 0 or 1 (what Rust's `bool` requires).
    pub const fn any_bit_pattern(self) -> bool {
        !matches!(self.code(), DTypeCode::Bool)
    }

    /// The type code.
    pub const fn code(self) -> DTypeCode {
        DTypeCode::ALL[self.code as usize]
    }
    /// Bits of one lane.
    pub const fn bits(self) -> u8 {
        self.bits
    }
    /// Number of lanes (1 for scalars).
    pub const fn lanes(self) -> u16 {
        self.lanes
    }
    /// Bits of one element (`bits * lanes`).
    pub const fn element_bits(self) -> u32 {
        self.bits as u32 * self.lanes as u32
    }
    /// True for elements narrower than a byte (int1/2/4, float6, float4), which DLPack packs.
    pub const fn is_subbyte(self) -> bool {
        self.bits < 8
    }
    /// Bytes one element occupies when elements are byte-addressable (`None` for sub-byte types).
    pub const fn itemsize(self) -> Option<usize> {
        if self.is_subbyte() {
            None
        } else {
            Some(self.element_bits() as usize / 8)
        }
    }
    /// Byte size of a stored element: [`DType::itemsize`], or 1 for a padded sub-byte element.
    pub(crate) const fn storage_size(self, subbyte_padded: bool) -> Option<usize> {
        match self.itemsize() {
            Some(n) => Some(n),
            None if subbyte_padded => Some(1),
            None => None,
        }
    }
    /// The natural alignment of the element in bytes (the lane size, at most 16).
    pub fn alignment(self) -> usize {
        let lane = match self.code() {
            DTypeCode::Complex => self.bits as usize / 16,
            _ => (self.bits as usize).div_ceil(8),
        };
        lane.clamp(1, 16)
    }

    /// The numpy-style name: `"float32"`, `"bfloat16"`, `"bool"`, `"complex64"`,
    /// `"float8_e4m3fn"`, with `"x{lanes}"` appended for vector types.
    pub fn name(self) -> String {
        let base = match (self.code(), self.code().fixed_name()) {
            (_, Some(fixed)) => fixed.to_string(),
            (DTypeCode::Int, _) => format!("int{}", self.bits),
            (DTypeCode::UInt, _) => format!("uint{}", self.bits),
            (DTypeCode::Float, _) => format!("float{}", self.bits),
            (DTypeCode::BFloat, _) => format!("bfloat{}", self.bits),
            (DTypeCode::Complex, _) => format!("complex{}", self.bits),
            (DTypeCode::Bool, _) => "bool".to_string(),
            (_, None) => format!("opaque{}", self.bits),
        };
        if self.lanes == 1 {
            base
        } else {
            format!("{base}x{}", self.lanes)
        }
    }

    /// Parse a name produced by [`DType::name`].
    pub fn from_name(name: &str) -> Result<DType> {
        let unknown = || Error::UnknownDtypeName(name.to_owned());
        if let Some(d) = Self::scalar_from_name(name, 1) {
            return d;
        }
        // A vector type: "<scalar>x<lanes>", e.g. "float32x4".
        let (base, lanes) = name.rsplit_once('x').ok_or_else(unknown)?;
        let lanes: u16 = lanes.parse().map_err(|_| unknown())?;
        Self::scalar_from_name(base, lanes).ok_or_else(unknown)?
    }

    fn scalar_from_name(base: &str, lanes: u16) -> Option<Result<DType>> {
        for code in (0..=17u8).filter_map(DTypeCode::from_u8) {
            if code.fixed_name() == Some(base) {
                return Some(DType::new(code as u8, code.fixed_bits()?, lanes));
            }
        }
        if base == "bool" {
            return Some(DType::new(DTypeCode::Bool as u8, 8, lanes));
        }
        let stems = [
            ("uint", DTypeCode::UInt),
            ("int", DTypeCode::Int),
            ("bfloat", DTypeCode::BFloat),
            ("float", DTypeCode::Float),
            ("complex", DTypeCode::Complex),
            ("opaque", DTypeCode::OpaqueHandle),
        ];
        let (stem, code) = stems.iter().find(|(stem, _)| base.starts_with(stem))?;
        let bits: u8 = base[stem.len()..].parse().ok()?;
        Some(DType::new(*code as u8, bits, lanes))
    }

    /// The DLPack ABI form.
    pub fn to_dlpack(self) -> dlpark::ffi::DLDataType {
        dlpark::ffi::DLDataType {
            code: dlpark::ffi::DLDataTypeCode(self.code),
            bits: self.bits,
            lanes: self.lanes,
        }
    }

    /// Validate a DLPack ABI dtype.
    pub fn from_dlpack(raw: dlpark::ffi::DLDataType) -> Result<DType> {
        DType::new(raw.code.0, raw.bits, raw.lanes)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl fmt::Debug for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DType({})", self.name())
    }
}

/// A Rust type whose values are elements of a [`DType`].
///
/// # Safety
/// `DTYPE` must describe exactly the size and layout of `Self`, and `Self` must have no padding
/// and be `Copy`. If `ANY_BIT_PATTERN` is true, every bit pattern of `size_of::<Self>()` bytes
/// must be a valid `Self` (so foreign memory can be read as `&[Self]` without checks). The only
/// check this crate knows how to make is `bool`'s (every byte 0 or 1): an implementation with
/// `ANY_BIT_PATTERN = false` must have `DTYPE == DType::BOOL` and accept exactly the bytes 0 and
/// 1 (typed access to any other such type is refused with [`Error::UnsupportedDtype`]).
///
/// [`Error::UnsupportedDtype`]: crate::Error::UnsupportedDtype
pub unsafe trait Element: Copy + Send + Sync + 'static {
    /// The dtype of one element.
    const DTYPE: DType;
    /// Whether any bit pattern is a valid value (false for `bool`).
    const ANY_BIT_PATTERN: bool = true;
}

macro_rules! element {
    ($($t:ty => $d:expr),* $(,)?) => {$(
        // SAFETY: the dtype's bit width equals size_of::<$t>() * 8; these types have no padding
        // and every bit pattern is a valid value.
        unsafe impl Element for $t {
            const DTYPE: DType = $d;
        }
    )*};
}

element! {
    i8 => DType::I8, i16 => DType::I16, i32 => DType::I32, i64 => DType::I64,
    u8 => DType::U8, u16 => DType::U16, u32 => DType::U32, u64 => DType::U64,
    f32 => DType::F32, f64 => DType::F64,
    half::f16 => DType::F16, half::bf16 => DType::BF16,
    num_complex::Complex<f32> => DType::C64, num_complex::Complex<f64> => DType::C128,
}

// SAFETY: bool is one byte, DLPack's bool is 8 bits; only 0 and 1 are valid, which
// ANY_BIT_PATTERN = false makes typed reads check.
unsafe impl Element for bool {
    const DTYPE: DType = DType::BOOL;
    const ANY_BIT_PATTERN: bool = false;
}

impl From<DType> for dlpark::ffi::DLDataType {
    /// [`DType::to_dlpack`].
    fn from(dtype: DType) -> Self {
        dtype.to_dlpack()
    }
}

impl TryFrom<dlpark::ffi::DLDataType> for DType {
    type Error = Error;
    /// [`DType::from_dlpack`].
    fn try_from(raw: dlpark::ffi::DLDataType) -> Result<DType> {
        DType::from_dlpack(raw)
    }
}

impl TryFrom<u8> for DTypeCode {
    type Error = Error;
    /// [`DTypeCode::from_u8`], with [`Error::UnknownDtype`] for codes DLPack 1.3 does not define.
    fn try_from(code: u8) -> Result<DTypeCode> {
        DTypeCode::from_u8(code).ok_or_else(|| Error::UnknownDtype {
            code,
            bits: 0,
            lanes: 0,
        })
    }
}

impl std::str::FromStr for DType {
    type Err = Error;
    /// [`DType::from_name`]: `"float32".parse::<DType>()`.
    fn from_str(name: &str) -> Result<DType> {
        DType::from_name(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte code keeps `DType` free of niches (see the field): were it the enum again,
    /// `Option<DType>` would shrink to 4 bytes and views would regain a niche byte.
    #[test]
    fn dtype_has_no_niche() {
        assert_eq!(std::mem::size_of::<DType>(), 4);
        assert!(std::mem::size_of::<Option<DType>>() > 4);
        for code in 0..=17u8 {
            assert_eq!(DTypeCode::from_u8(code).unwrap() as u8, code);
        }
    }

    #[test]
    fn names_round_trip_for_every_code() {
        for code in 0..=17u8 {
            let kind = DTypeCode::from_u8(code).unwrap();
            let bits = match kind {
                DTypeCode::Bool => 8,
                DTypeCode::BFloat => 16,
                DTypeCode::Complex => 64,
                k => k.fixed_bits().unwrap_or(32),
            };
            let d = DType::new(code, bits, 1).unwrap();
            assert_eq!(DType::from_name(&d.name()).unwrap(), d, "{d}");
        }
        let v = DType::new(2, 32, 4).unwrap();
        assert_eq!(v.name(), "float32x4");
        assert_eq!(DType::from_name("float32x4").unwrap(), v);
        assert_eq!(DType::from_name("float8_e4m3fn").unwrap().bits(), 8);
    }

    #[test]
    fn invalid_triples_are_refused() {
        assert!(DType::new(18, 8, 1).is_err());
        assert!(DType::new(6, 1, 1).is_err());
        assert!(DType::new(2, 32, 0).is_err());
        assert!(DType::new(15, 8, 1).is_err());
        assert!(DType::new(17, 4, 2).is_err());
        assert!(DType::from_name("float7").is_err());
        assert!(DType::from_name("").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(DType::C64.itemsize(), Some(8));
        assert_eq!(DType::C64.alignment(), 4);
        let f4 = DType::new(17, 4, 1).unwrap();
        assert!(f4.is_subbyte());
        assert_eq!(f4.itemsize(), None);
        assert_eq!(f4.storage_size(true), Some(1));
    }
}
