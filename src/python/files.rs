//! `save` and `load` of tensor files (features `safetensors` and `arrow-ipc`): see
//! [`crate::files`].

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyMapping};

use super::import::asarray;
use super::tensor::Tensor;
use crate::{files, TensorView};

/// Write the named array-likes of `tensors` (a mapping of `str` to anything `asarray` accepts)
/// to `path`: safetensors when the name ends in `.safetensors`, an Arrow IPC file otherwise.
/// The data is written without the GIL.
pub fn save(path: PathBuf, tensors: &Bound<'_, PyMapping>) -> PyResult<()> {
    let py = tensors.py();
    let mut named: Vec<(String, TensorView)> = Vec::with_capacity(tensors.len()?);
    for item in tensors.items()?.iter() {
        let (name, value): (String, Bound<'_, PyAny>) = item.extract()?;
        named.push((name, asarray(&value, None)?));
    }
    let refs: Vec<(&str, &TensorView)> = named.iter().map(|(n, t)| (n.as_str(), t)).collect();
    py.detach(|| files::save(&path, &refs))?;
    Ok(())
}

/// Map the tensor file at `path` (either format, told by its contents) and return its tensors
/// by name, in file order: read-only views into the mapping, read from disk only when touched.
/// They keep the mapping alive, also after the file is unlinked.
///
/// The file must not be changed or truncated while any of the tensors lives (as with
/// `numpy.memmap` and `safetensors.safe_open`); `save` replaces files by a rename, which is
/// safe.
pub fn load<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyDict>> {
    // SAFETY: the contract is the caller's, stated above and in the Python docs: nobody
    // changes or truncates the file while its tensors live.
    let tensors = py.detach(|| unsafe { files::map(&path) })?;
    let out = PyDict::new(py);
    for (name, view) in tensors {
        out.set_item(name, Bound::new(py, Tensor::from_view(view))?)?;
    }
    Ok(out)
}
