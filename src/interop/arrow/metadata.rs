//! The `arrow.fixed_shape_tensor` extension metadata: parsing and writing its JSON.

use ::arrow_schema::Field;

use super::{EXTENSION_METADATA_KEY, EXTENSION_NAME_KEY, FIXED_SHAPE_TENSOR};
use crate::layout::check_permutation;
use crate::{Error, Result};

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
        let bad = |what: &str| Error::InvalidExtensionMetadata(format!("{json:?}: {what}"));
        let value: serde_json::Value = serde_json::from_str(json).map_err(|e| {
            Error::UnreadableExtensionMetadata(crate::ForeignError::new("serde_json", e))
        })?;
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
        if !is_fixed_shape_tensor(field) {
            return Ok(None);
        }
        let json = field
            .metadata()
            .get(EXTENSION_METADATA_KEY)
            .ok_or_else(|| {
                Error::InvalidExtensionMetadata("a field of this type without metadata".into())
            })?;
        Self::parse(json).map(Some)
    }
}

/// Whether `field` is tagged with the `arrow.fixed_shape_tensor` extension name.
pub fn is_fixed_shape_tensor(field: &Field) -> bool {
    field.metadata().get(EXTENSION_NAME_KEY).map(String::as_str) == Some(FIXED_SHAPE_TENSOR)
}
