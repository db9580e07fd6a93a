//! Living with the interpreter: attaching from any thread, shutdown, and Python objects as
//! memory owners.

use pyo3::prelude::*;

/// `Py_IsFinalizing` (3.13+) or `_Py_IsFinalizing` (3.11, 3.12), found at run time: neither is in
/// the stable ABI this module is built for, and each exists in only some of the versions it runs
/// on. `None` when neither is exported.
fn finalizing_probe() -> Option<unsafe extern "C" fn() -> std::ffi::c_int> {
    static PROBE: std::sync::OnceLock<Option<unsafe extern "C" fn() -> std::ffi::c_int>> =
        std::sync::OnceLock::new();
    *PROBE.get_or_init(|| {
        #[cfg(unix)]
        for name in [c"Py_IsFinalizing", c"_Py_IsFinalizing"] {
            // SAFETY: dlsym with RTLD_DEFAULT searches the loaded images (the interpreter is one)
            // for a NUL-terminated symbol name; it does not call the symbol.
            let symbol = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
            if !symbol.is_null() {
                // SAFETY: both functions are `int (*)(void)` in every CPython that exports them.
                return Some(unsafe {
                    std::mem::transmute::<
                        *mut libc::c_void,
                        unsafe extern "C" fn() -> std::ffi::c_int,
                    >(symbol)
                });
            }
        }
        None
    })
}

/// True while the interpreter is shutting down (`sys.is_finalizing()`): not merely after `atexit`
/// handlers ran, which a program may trigger itself.
fn interpreter_finalizing() -> bool {
    // SAFETY: both functions only read a runtime flag and may be called without the GIL.
    finalizing_probe().is_some_and(|probe| unsafe { probe() } != 0)
}

/// Whether this thread holds the GIL (any thread may ask).
pub(crate) fn gil_held() -> bool {
    // SAFETY: PyGILState_Check may be called from any thread, with or without the GIL.
    unsafe { PyGILState_Check() == 1 }
}

extern "C" {
    // Exported by every CPython since 3.4, though outside the limited API pyo3 binds here.
    fn PyGILState_Check() -> std::ffi::c_int;
}

/// Run `f` attached to the interpreter, from any thread; `None` (and `f` not run) when this
/// thread is not attached and the interpreter is shutting down or gone, where attaching could
/// hang or crash. A thread that already holds the GIL (the one running the finalizer, say) may
/// always release references.
///
/// A thread pyo3 attached (a `#[pyfunction]` dropping its arguments, the common case) runs `f`
/// at once: pyo3 counts its attachments in a thread-local. Any other thread goes through
/// `PyGILState_Ensure`, which nests when the thread holds the GIL already. (`PyGILState_Check`
/// is no proof of holding it: CPython answers yes on every thread once a subinterpreter
/// exists.)
#[inline]
pub(crate) fn with_gil<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> Option<R> {
    // pyo3 checks for shutdown itself only when built for 3.13+; this module is built for 3.11.
    if interpreter_finalizing() && !gil_held() {
        return None;
    }
    Python::try_attach(f)
}

/// A Python object kept alive as the [`crate::Owner`] of memory it exposes. Dropping it takes
/// the GIL (from any thread) to release the reference, or leaks it at interpreter shutdown.
/// Views over it report it to Python's garbage collector (see `Tensor.__traverse__`).
pub(crate) struct PyObjectOwner(Option<Py<PyAny>>);

impl PyObjectOwner {
    pub(crate) fn new(obj: Py<PyAny>) -> PyObjectOwner {
        PyObjectOwner(Some(obj))
    }

    /// The object held (for the garbage collector's traversal).
    pub(crate) fn object(&self) -> Option<&Py<PyAny>> {
        self.0.as_ref()
    }

    /// Release the reference now (dropping the owner then does nothing).
    pub(crate) fn release(&mut self, py: Python<'_>) {
        if let Some(obj) = self.0.take() {
            // At once: dropping the `Py` could defer it to pyo3's pool, which only drains when
            // pyo3 itself next takes the GIL.
            obj.drop_ref(py);
        }
    }
}

impl Drop for PyObjectOwner {
    fn drop(&mut self) {
        if self.0.is_some() && with_gil(|py| self.release(py)).is_none() {
            // Interpreter finalizing: releasing now would touch a dying interpreter.
            std::mem::forget(self.0.take());
        }
    }
}
