//! The same `#[pyfunction]`s written with dlbridge and with its peers, for
//! `benchmarks/bench_extension.py`: the cost of taking a tensor argument and of returning a
//! Rust-allocated array.

use dlbridge::python::{Framework, Requirements};
use dlbridge::{DType, TensorView};
use numpy::{PyArray1, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;

/// A `TensorView` argument (any framework): its element count.
#[pyfunction]
fn take_dlbridge(x: TensorView) -> usize {
    x.numel()
}

/// The floor: a `#[pyfunction]` that takes any object and does nothing with it.
#[pyfunction]
fn take_nothing(x: &Bound<'_, PyAny>) -> usize {
    x.is_none().into()
}

/// rust-numpy's read-only array argument (numpy only): its element count.
#[pyfunction]
fn take_numpy(x: PyReadonlyArrayDyn<'_, f64>) -> usize {
    x.len()
}

/// dlpark's DLPack import (`dlpark::python::from_dlpack`; dlpark 0.10 has no `FromPyObject`
/// type): the element count.
#[pyfunction]
fn take_dlpark(x: &Bound<'_, PyAny>) -> PyResult<usize> {
    let imported = dlpark::python::from_dlpack(x.as_borrowed(), None, None)?;
    let tensor = imported
        .validate()
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    Ok(tensor.shape().iter().product::<i64>() as usize)
}

/// A fresh 1 KiB `Vec<f64>` as a numpy array through `Framework::Numpy.wrap`.
#[pyfunction]
fn wrap_dlbridge(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let view = TensorView::from_vec(vec![0f64; 128], &[128])?;
    Framework::Numpy.wrap(py, view)
}

/// The same with rust-numpy's `PyArray1::from_vec`.
#[pyfunction]
fn wrap_numpy(py: Python<'_>) -> Bound<'_, PyArray1<f64>> {
    PyArray1::from_vec(py, vec![0f64; 128])
}

/// The same returned as a dlbridge `Tensor` (no framework conversion).
#[pyfunction]
fn return_tensor() -> PyResult<TensorView> {
    Ok(TensorView::from_vec(vec![0f64; 128], &[128])?)
}

/// The cast kernel: any input converted to a fresh float64 tensor by `Requirements` (a copy
/// that converts the dtype, and the layout when it is not C order): its element count.
#[pyfunction]
fn cast_to_f64_dlbridge(x: &Bound<'_, PyAny>) -> PyResult<usize> {
    let view = Requirements::new()
        .dtype(DType::F64)
        .c_contiguous()
        .allow_copy()
        .extract(x)?;
    Ok(view.numel())
}

/// A test probe, not a benchmark (`python_tests/test_extension.py`): the element count of
/// `x.as_strided([n], [1], 0)`, or its error. A view taken as an argument holds a borrow of the
/// bytes it reaches, so it must not be restrided past them.
#[pyfunction]
fn restride_probe(x: TensorView, n: usize) -> PyResult<usize> {
    Ok(x.as_strided(&[n], &[1], 0)?.numel())
}

/// A test probe, not a benchmark (`python_tests/test_extension.py`): Rust code that hands a
/// tensor to Python while keeping a handle of its own, and reads the memory through it.
#[pyclass]
struct KeptTensor {
    view: TensorView,
}

#[pymethods]
impl KeptTensor {
    #[new]
    fn new(n: usize) -> PyResult<KeptTensor> {
        Ok(KeptTensor {
            view: TensorView::from_vec(vec![1f64; n], &[n])?,
        })
    }

    /// A `Tensor` over the same memory; the Rust handle stays.
    fn tensor(&self) -> TensorView {
        self.view.clone()
    }

    /// A clone of the kept view in the framework of `like`.
    fn wrap<'py>(&self, py: Python<'py>, like: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        Framework::of(like).wrap(py, self.view.clone())
    }

    /// The sum, through a shared slice of the kept handle.
    fn total(&self) -> PyResult<f64> {
        Ok(self.view.as_slice::<f64>()?.iter().sum())
    }
}

/// A test probe, not a benchmark (`python_tests/test_extension.py`): `x` dropped by a thread
/// that was never attached to the interpreter (`on_thread`), or inside `py.detach` on this one,
/// while this thread waits without the GIL. Its borrow and its reference to the array must be
/// given back all the same. Returns the element count.
#[pyfunction]
fn drop_detached(py: Python<'_>, x: TensorView, on_thread: bool) -> usize {
    let n = x.numel();
    py.detach(|| {
        if on_thread {
            std::thread::spawn(move || drop(x))
                .join()
                .expect("dropping a view panicked");
        } else {
            drop(x);
        }
    });
    n
}

/// How many [`CountedBuffer`]s have been freed.
static BUFFERS_FREED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Rust-allocated memory that counts its release.
struct CountedBuffer(Vec<f64>);

impl AsMut<[f64]> for CountedBuffer {
    fn as_mut(&mut self) -> &mut [f64] {
        &mut self.0
    }
}

impl Drop for CountedBuffer {
    fn drop(&mut self) {
        BUFFERS_FREED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A test probe, not a benchmark (`python_tests/test_numpy_capi.py`): `[0, 1, .., n-1]` in
/// memory that counts its release ([`buffers_freed`]), returned (read-only if asked) in the
/// framework of `like`.
#[pyfunction]
#[pyo3(signature = (like, n, read_only = false))]
fn counted_ramp<'py>(
    py: Python<'py>,
    like: &Bound<'py, PyAny>,
    n: usize,
    read_only: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let values = CountedBuffer((0..n).map(|i| i as f64).collect());
    let view = TensorView::from_owner_mut(values, &[n])?;
    let view = if read_only {
        view.into_read_only()
    } else {
        view
    };
    Framework::of(like).wrap(py, view)
}

/// How many buffers made by [`counted_ramp`] have been freed.
#[pyfunction]
fn buffers_freed() -> usize {
    BUFFERS_FREED.load(std::sync::atomic::Ordering::SeqCst)
}

/// A test probe: an argument returned twice, first as a clone (while the argument lives on),
/// then itself.
#[pyfunction]
fn echo_twice(x: TensorView) -> (TensorView, TensorView) {
    (x.clone(), x)
}

#[pymodule]
fn dlbridge_pyo3_bench(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<KeptTensor>()?;
    m.add_function(wrap_pyfunction!(echo_twice, m)?)?;
    m.add_function(wrap_pyfunction!(counted_ramp, m)?)?;
    m.add_function(wrap_pyfunction!(buffers_freed, m)?)?;
    m.add_function(wrap_pyfunction!(drop_detached, m)?)?;
    m.add_function(wrap_pyfunction!(take_dlbridge, m)?)?;
    m.add_function(wrap_pyfunction!(take_numpy, m)?)?;
    m.add_function(wrap_pyfunction!(take_nothing, m)?)?;
    m.add_function(wrap_pyfunction!(take_dlpark, m)?)?;
    m.add_function(wrap_pyfunction!(wrap_dlbridge, m)?)?;
    m.add_function(wrap_pyfunction!(wrap_numpy, m)?)?;
    m.add_function(wrap_pyfunction!(return_tensor, m)?)?;
    m.add_function(wrap_pyfunction!(cast_to_f64_dlbridge, m)?)?;
    m.add_function(wrap_pyfunction!(restride_probe, m)?)?;
    Ok(())
}
