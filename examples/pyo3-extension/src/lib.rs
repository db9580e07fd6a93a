//! An example Python extension built with dlbridge, as an extension author writes one: every
//! function takes any framework's tensor (numpy, torch, jax, pyarrow, dlbridge, ...) without
//! copying it, and returns tensors that every framework reads without copying.

use std::str::FromStr;

use dlbridge::python::{Framework, Requirements};
use dlbridge::{DType, TensorView};
use ndarray::{Axis, Ix2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// The sum of any real tensor, as float64 (a reduction over any input: other dtypes and
/// layouts are converted by a copy, which the GIL-free loop then reads).
#[pyfunction]
fn total(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<f64> {
    let x = Requirements::new()
        .dtype(DType::F64)
        .c_contiguous()
        .allow_copy()
        .extract(x)?;
    py.detach(|| Ok(x.as_slice::<f64>()?.iter().sum()))
}

/// `x` as checked by a `Requirements` built from the keywords: the tensor shares the caller's
/// memory unless `allow_copy` made a copy (`is_copied`). For testing the checks' messages.
#[pyfunction]
#[pyo3(signature = (x, *, dtype=None, ndim=None, shape=None, c_contiguous=false,
                    f_contiguous=false, writable=false, allow_copy=false))]
#[allow(clippy::too_many_arguments)]
fn require(
    x: &Bound<'_, PyAny>,
    dtype: Option<&str>,
    ndim: Option<usize>,
    shape: Option<Vec<Option<usize>>>,
    c_contiguous: bool,
    f_contiguous: bool,
    writable: bool,
    allow_copy: bool,
) -> PyResult<TensorView> {
    let mut req = Requirements::new();
    if let Some(name) = dtype {
        let dtype = DType::from_str(name).map_err(|e| PyValueError::new_err(e.to_string()))?;
        req = req.dtype(dtype);
    }
    if let Some(ndim) = ndim {
        req = req.ndim(ndim);
    }
    if let Some(shape) = &shape {
        req = req.shape(shape);
    }
    if c_contiguous {
        req = req.c_contiguous();
    }
    if f_contiguous {
        req = req.f_contiguous();
    }
    if writable {
        req = req.writable();
    }
    if allow_copy {
        req = req.allow_copy();
    }
    req.extract(x)
}

/// `0, 1, ..., n-1` as float32, allocated by Rust and returned without a copy.
#[pyfunction]
fn ramp(n: usize) -> PyResult<TensorView> {
    Ok(TensorView::from_vec(
        (0..n).map(|i| i as f32).collect(),
        &[n],
    )?)
}

/// `0, 1, ..., n-1` as float32 in the framework of `like` (numpy in, numpy out; torch in, torch
/// out; ...), over the Rust allocation.
#[pyfunction]
fn ramp_like<'py>(
    py: Python<'py>,
    like: &Bound<'py, PyAny>,
    n: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let values = TensorView::from_vec((0..n).map(|i| i as f32).collect(), &[n])?;
    Framework::of(like).wrap(py, values)
}

/// `x` (any tensor) handed over in the framework of `like`, sharing memory where it can.
#[pyfunction]
fn reframe<'py>(
    py: Python<'py>,
    x: TensorView,
    like: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    Framework::of(like).wrap(py, x)
}

/// Multiply a float32 or float64 tensor by `factor` in place (a numpy array, a torch tensor,
/// any writable C-contiguous tensor), outside the GIL.
#[pyfunction]
fn scale_inplace(py: Python<'_>, x: &Bound<'_, PyAny>, factor: f64) -> PyResult<()> {
    let mut x = Requirements::new().c_contiguous().extract_mut(x)?;
    let dtype = x.dtype();
    py.detach(|| -> dlbridge::Result<()> {
        match dtype {
            DType::F32 => x
                .as_mut_slice::<f32>()?
                .iter_mut()
                .for_each(|v| *v *= factor as f32),
            _ => x
                .as_mut_slice::<f64>()?
                .iter_mut()
                .for_each(|v| *v *= factor),
        }
        Ok(())
    })?;
    Ok(())
}

/// `dst += src` for float64 tensors of one shape: `dst` borrowed mutably, `src` shared, so
/// passing overlapping memory raises `BufferError` instead of aliasing.
#[pyfunction]
fn add_into(dst: &Bound<'_, PyAny>, src: &Bound<'_, PyAny>) -> PyResult<()> {
    let need = Requirements::new().dtype(DType::F64).c_contiguous();
    let mut dst = need.extract_mut(dst)?;
    let src = need.extract(src)?;
    if src.shape() != dst.shape() {
        return Err(PyValueError::new_err("dst and src differ in shape"));
    }
    let src = src.as_slice::<f64>()?;
    for (d, s) in dst.as_mut_slice::<f64>()?.iter_mut().zip(src) {
        *d += s;
    }
    Ok(())
}

/// Double every element of a 2-D float64 tensor in place through an ndarray view (any
/// strides).
#[pyfunction]
fn double_2d(x: &Bound<'_, PyAny>) -> PyResult<()> {
    let mut x = Requirements::new()
        .dtype(DType::F64)
        .ndim(2)
        .extract_mut(x)?;
    x.as_array_mut::<f64, Ix2>()?.map_inplace(|v| *v *= 2.0);
    Ok(())
}

/// Call `callback()` while holding a mutable borrow of `x` (for testing what else may borrow it
/// meanwhile, from this extension or another).
#[pyfunction]
fn with_mut<'py>(
    x: &Bound<'py, PyAny>,
    callback: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let _guard = Requirements::new().extract_mut(x)?;
    callback.call0()
}

/// The name of `x`'s framework as `Framework::of` sees it.
#[pyfunction]
fn framework_of(x: &Bound<'_, PyAny>) -> String {
    format!("{:?}", Framework::of(x))
}

/// The Euclidean norm of every row of a 2-D float64 tensor, computed with ndarray outside the
/// GIL; any framework's tensor in, a new tensor out.
#[pyfunction]
fn row_norms(py: Python<'_>, x: TensorView) -> PyResult<TensorView> {
    let norms = py.detach(|| -> dlbridge::Result<_> {
        let rows = x.as_array::<f64, Ix2>()?;
        Ok(rows.map_axis(Axis(1), |row| row.dot(&row).sqrt()))
    })?;
    Ok(TensorView::from_ndarray(norms)?)
}

/// The example extension.
#[pymodule]
fn dlbridge_example(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(total, m)?)?;
    m.add_function(wrap_pyfunction!(require, m)?)?;
    m.add_function(wrap_pyfunction!(ramp, m)?)?;
    m.add_function(wrap_pyfunction!(row_norms, m)?)?;
    m.add_function(wrap_pyfunction!(ramp_like, m)?)?;
    m.add_function(wrap_pyfunction!(framework_of, m)?)?;
    m.add_function(wrap_pyfunction!(reframe, m)?)?;
    m.add_function(wrap_pyfunction!(scale_inplace, m)?)?;
    m.add_function(wrap_pyfunction!(add_into, m)?)?;
    m.add_function(wrap_pyfunction!(double_2d, m)?)?;
    m.add_function(wrap_pyfunction!(with_mut, m)?)?;
    Ok(())
}
