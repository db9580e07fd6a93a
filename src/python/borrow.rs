//! The borrow registry: which byte ranges of memory Rust code holds views of, shared or
//! exclusive, across every extension built with dlbridge in the process.
//!
//! Each extension links its own copy of dlbridge, so the registry cannot be a static: the
//! first extension to need it creates it and publishes a versioned table of C functions in a
//! capsule (module `_dlbridge_borrow_registry` in `sys.modules`, attribute `api`); the others
//! find it there. It is published with `dict.setdefault`, one C call, so two extensions (or
//! threads) that both make one end up using the same.
//! The table and its state are leaked on purpose: they live as long as the process, like the
//! extension modules that use them.
//!
//! Rule: an exclusive borrow conflicts with any borrow of an overlapping byte range; shared
//! borrows coexist. Ranges are the lowest to one-past-highest byte a view reaches, so views of
//! interleaved elements (`a[::2]` and `a[1::2]`) conservatively conflict, while disjoint rows or
//! blocks do not.

use std::ffi::{c_int, c_void, CStr};
use std::ops::Range;
use std::sync::OnceLock;

use pyo3::exceptions::{PyBufferError, PyRuntimeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule};

use super::runtime::{with_gil, PyObjectOwner};
use super::spin::{gil_serializes, SpinLock};
use crate::layout::layout_span;
use crate::tensor::CheckedParts;
use crate::{Owner, TensorView};

const MODULE: &str = "_dlbridge_borrow_registry";
const CAPSULE: &CStr = c"dlbridge.borrow_registry";
const VERSION: u32 = 2;

/// The published table. Its layout is a contract between dlbridge versions: append only, and
/// bump `VERSION` for incompatible changes.
#[repr(C)]
struct RegistryApi {
    version: u32,
    state: *const c_void,
    /// 0: granted; 1: conflicts with a live borrow. The caller is attached to the interpreter
    /// (holds the GIL where there is one).
    acquire: unsafe extern "C" fn(*const c_void, usize, usize, c_int) -> c_int,
    /// The caller is attached, as for `acquire` (version 1 allowed any thread).
    release: unsafe extern "C" fn(*const c_void, usize, usize, c_int),
}

/// The registry's state: the live borrows, sorted by address. A request finds its
/// neighbours by binary search (O(log n) in the live borrows); registering or releasing one
/// shifts the entries after it, a memmove of 16 to 24 bytes per entry, which stays below the
/// cost of a tree's node allocation for any realistic count (thousands of live views).
///
/// Where the interpreter has a GIL ([`gil_serializes`], decided by the extension that
/// publishes the registry), the GIL alone guards them: every caller is attached. A free-threaded
/// build has a [`SpinLock`] guard them. (See the `spin` module for the costs.)
struct State {
    gil: bool,
    entries: SpinLock<Entries>,
}

impl State {
    /// Run `f` on the entries, from a thread attached to the interpreter.
    #[inline(always)]
    fn with<R>(&self, f: impl FnOnce(&mut Entries) -> R) -> R {
        if self.gil {
            // SAFETY: every call reaches the entries through here (`gil` never changes) from a
            // thread holding the GIL (the table's contract), and `f` releases nothing.
            unsafe { self.entries.with_unlocked(f) }
        } else {
            self.entries.with(f)
        }
    }
}

#[derive(Default)]
struct Entries {
    /// Exclusive borrows `(start, end)`, sorted by start. They never overlap each other (nor
    /// any shared one).
    exclusive: Vec<(usize, usize)>,
    /// Shared borrows `(start, end, how many views hold exactly that range)`, sorted by range.
    shared: Vec<(usize, usize, usize)>,
    /// An upper bound on the length of every live shared range (reset when none lives): an
    /// exclusive request need only look at shared ranges starting this far below its own.
    longest_shared: usize,
}

impl Entries {
    /// Whether `lo..hi` overlaps an exclusive borrow. They are disjoint, so only the last one
    /// starting below `hi` can.
    fn overlaps_exclusive(&self, lo: usize, hi: usize) -> bool {
        let below = self.exclusive.partition_point(|&(start, _)| start < hi);
        below > 0 && self.exclusive[below - 1].1 > lo
    }

    /// Whether `lo..hi` overlaps a shared borrow: one starting below `hi` and at most
    /// `longest_shared` below `lo`, that ends after `lo`.
    fn overlaps_shared(&self, lo: usize, hi: usize) -> bool {
        let from = lo.saturating_sub(self.longest_shared);
        let first = self.shared.partition_point(|&(start, _, _)| start < from);
        self.shared[first..]
            .iter()
            .take_while(|&&(start, _, _)| start < hi)
            .any(|&(_, end, _)| end > lo)
    }

    fn acquire(&mut self, lo: usize, hi: usize, exclusive: bool) -> bool {
        let conflict = (!self.exclusive.is_empty() && self.overlaps_exclusive(lo, hi))
            || (exclusive && self.overlaps_shared(lo, hi));
        if conflict {
            return false;
        }
        if exclusive {
            let at = self.exclusive.partition_point(|&(start, _)| start < lo);
            self.exclusive.insert(at, (lo, hi));
        } else {
            let at = self.shared.partition_point(|&(s, e, _)| (s, e) < (lo, hi));
            match self.shared.get_mut(at) {
                Some(entry) if (entry.0, entry.1) == (lo, hi) => entry.2 += 1,
                None => self.shared.push((lo, hi, 1)),
                Some(_) => self.shared.insert(at, (lo, hi, 1)),
            }
            self.longest_shared = self.longest_shared.max(hi - lo);
        }
        true
    }

    fn release(&mut self, lo: usize, hi: usize, exclusive: bool) {
        if exclusive {
            let at = self.exclusive.partition_point(|&(start, _)| start < lo);
            if self.exclusive.get(at) == Some(&(lo, hi)) {
                self.exclusive.remove(at);
            }
            return;
        }
        let at = self.shared.partition_point(|&(s, e, _)| (s, e) < (lo, hi));
        if let Some(entry) = self.shared.get_mut(at) {
            if (entry.0, entry.1) == (lo, hi) {
                entry.2 -= 1;
                if entry.2 == 0 {
                    if at + 1 == self.shared.len() {
                        self.shared.pop();
                    } else {
                        self.shared.remove(at);
                    }
                    if self.shared.is_empty() {
                        self.longest_shared = 0;
                    }
                }
            }
        }
    }
}

/// # Safety
/// `state` is the `State` this table was published with; the caller is attached.
unsafe extern "C" fn acquire(
    state: *const c_void,
    lo: usize,
    hi: usize,
    exclusive: c_int,
) -> c_int {
    // SAFETY: per the contract: a leaked, never freed State.
    let state = unsafe { &*state.cast::<State>() };
    c_int::from(!state.with(|entries| entries.acquire(lo, hi, exclusive != 0)))
}

/// # Safety
/// `state` is the `State` this table was published with; the caller is attached.
unsafe extern "C" fn release(state: *const c_void, lo: usize, hi: usize, exclusive: c_int) {
    // SAFETY: per the contract: a leaked, never freed State.
    let state = unsafe { &*state.cast::<State>() };
    state.with(|entries| entries.release(lo, hi, exclusive != 0));
}

/// A process-lived table (found or published).
#[derive(Clone, Copy)]
pub(crate) struct ApiRef(&'static RegistryApi);

// SAFETY: the table is immutable after publication, and its functions guard the state (the GIL
// their callers hold, or the state's spin lock).
unsafe impl Send for ApiRef {}
// SAFETY: as above.
unsafe impl Sync for ApiRef {}

/// The registry of this process, once found.
static FOUND: OnceLock<ApiRef> = OnceLock::new();

/// The registry of this process: found in `sys.modules`, or published there. The first call
/// in each extension runs Python code (imports, object creation, which can start a garbage
/// collection and its callbacks); every later one is a load.
#[inline]
pub(crate) fn registry(py: Python<'_>) -> PyResult<ApiRef> {
    match FOUND.get() {
        Some(api) => Ok(*api),
        None => find_registry(py),
    }
}

/// [`registry`]'s first call in this extension.
#[cold]
fn find_registry(py: Python<'_>) -> PyResult<ApiRef> {
    // Decided first: the first answer runs Python code, which may let another thread in.
    let gil = gil_serializes(py);
    let modules = py
        .import("sys")?
        .getattr("modules")?
        .cast_into::<PyDict>()?;
    let module = match modules.get_item(MODULE)? {
        Some(module) => module,
        // `dict.setdefault` publishes in one C call: should another thread or extension have
        // published while ours was made (making objects can run the garbage collector, and
        // with it Python code), theirs is used and ours is never reached.
        None => modules.call_method1("setdefault", (MODULE, new_registry(py, gil)?))?,
    };
    let capsule = module.getattr("api")?;
    // SAFETY: GIL held; a live object. The name check makes any other capsule fail.
    let ptr = unsafe { ffi::PyCapsule_GetPointer(capsule.as_ptr(), CAPSULE.as_ptr()) };
    if ptr.is_null() {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: a capsule of this name holds a leaked, process-lived RegistryApi.
    let api: &'static RegistryApi = unsafe { &*ptr.cast::<RegistryApi>() };
    // Version 1 allowed releases from any thread; this one always calls attached, which meets
    // that contract too.
    if api.version != VERSION && api.version != 1 {
        return Err(PyRuntimeError::new_err(format!(
            "another extension registered dlbridge borrow registry version {}, this one speaks \
             1 and {VERSION}",
            api.version
        )));
    }
    Ok(*FOUND.get_or_init(|| ApiRef(api)))
}

/// A new registry module (not yet published): its table and state are leaked, process-lived.
fn new_registry(py: Python<'_>, gil: bool) -> PyResult<Bound<'_, PyModule>> {
    let state: &'static State = Box::leak(Box::new(State {
        gil,
        entries: SpinLock::new(Entries::default()),
    }));
    let api: &'static RegistryApi = Box::leak(Box::new(RegistryApi {
        version: VERSION,
        state: std::ptr::from_ref(state).cast(),
        acquire,
        release,
    }));
    let ptr = std::ptr::from_ref(api).cast_mut().cast::<c_void>();
    // SAFETY: GIL held; the pointer is process-lived and the capsule has no destructor.
    let capsule = unsafe { ffi::PyCapsule_New(ptr, CAPSULE.as_ptr(), None) };
    if capsule.is_null() {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: a new reference.
    let capsule = unsafe { Bound::from_owned_ptr(py, capsule) };
    let module = PyModule::new(py, MODULE)?;
    module.add("api", capsule)?;
    Ok(module)
}

/// A live borrow of a byte range, released when dropped (from any thread: one without the GIL
/// attaches first; at interpreter shutdown, where it cannot, the entry simply stays).
pub(crate) struct Borrow {
    api: ApiRef,
    lo: usize,
    hi: usize,
    exclusive: bool,
}

impl Borrow {
    /// Give the range back now (dropping the borrow then does nothing).
    fn release(&mut self, _attached: Python<'_>) {
        if self.lo >= self.hi {
            return; // an empty range was never registered, or it is given back already
        }
        // SAFETY: the table's own state; the entry was pushed by `acquire`; `_attached` says
        // this thread is attached.
        unsafe {
            (self.api.0.release)(
                self.api.0.state,
                self.lo,
                self.hi,
                c_int::from(self.exclusive),
            )
        };
        self.hi = self.lo;
    }
}

impl Drop for Borrow {
    fn drop(&mut self) {
        if self.lo < self.hi {
            let _ = with_gil(|py| self.release(py));
        }
    }
}

/// The bytes `view` reaches, lowest to one past highest (empty for empty tensors).
#[inline]
fn byte_range(view: &TensorView) -> (usize, usize) {
    let start = view.data_ptr() as usize;
    let reach = match view.itemsize() {
        Some(size) => layout_span(view.shape(), view.strides(), size)
            .ok()
            .and_then(|span| span.bytes),
        // Bit-packed: always C-contiguous, `nbytes` from the first element.
        None => (view.nbytes() > 0).then(|| (0, view.nbytes() as isize)),
    };
    match reach {
        Some((lo, hi)) => (start.wrapping_add_signed(lo), start.wrapping_add_signed(hi)),
        None => (start, start),
    }
}

/// Borrow `view`'s bytes: `BufferError` when they overlap an exclusive borrow (or, for an
/// exclusive request, any borrow).
#[inline]
pub(crate) fn borrow(py: Python<'_>, view: &TensorView, exclusive: bool) -> PyResult<Borrow> {
    let (lo, hi) = byte_range(view);
    borrow_range(py, lo, hi, exclusive)
}

/// Borrow the bytes `lo..hi` (see [`borrow`]).
#[inline]
fn borrow_range(py: Python<'_>, lo: usize, hi: usize, exclusive: bool) -> PyResult<Borrow> {
    borrow_range_in(registry(py)?, lo, hi, exclusive)
}

/// [`borrow_range`] in a registry already found: Rust code only, no Python code runs.
#[inline]
fn borrow_range_in(api: ApiRef, lo: usize, hi: usize, exclusive: bool) -> PyResult<Borrow> {
    if lo < hi {
        // SAFETY: the table's own state; this thread is attached (`py`).
        let conflict = unsafe { (api.0.acquire)(api.0.state, lo, hi, c_int::from(exclusive)) };
        if conflict != 0 {
            return Err(PyBufferError::new_err(if exclusive {
                "the tensor's memory is already borrowed by a dlbridge view (shared or mutable); \
                 drop it first"
            } else {
                "the tensor's memory is already mutably borrowed (a dlbridge extract_mut guard \
                 lives)"
            }));
        }
    }
    Ok(Borrow {
        api,
        lo,
        hi: hi.max(lo),
        exclusive,
    })
}

/// `view` holding a shared borrow of its memory for as long as it or a clone lives: the form
/// every Rust-facing import returns, so that no `extract_mut` guard can alias it.
#[inline]
pub(crate) fn shared(py: Python<'_>, mut view: TensorView) -> PyResult<TensorView> {
    let (lo, hi) = byte_range(&view);
    let token = borrow_range(py, lo, hi, false)?;
    // Views derived from this one (`as_strided`) stay inside the borrowed bytes: the rest of a
    // larger allocation may be mutably borrowed by someone else.
    view.confine_extent(lo..hi);
    view.wrap_owner(|inner| {
        Owner::with_dependency(
            SharedBorrow {
                token,
                object: None,
            },
            inner,
        )
    });
    Ok(view)
}

/// The view of `parts`, a fresh import whose memory `object` keeps alive, owned by `object`
/// and holding a shared borrow of the memory, both in one allocation.
///
/// `parts` must come from `RawParts` without an `extent` (a fresh import), so that their extent
/// is exactly the bytes the view reaches: the range borrowed. (With a known larger allocation
/// the whole allocation would be borrowed: not unsound, but too much.)
///
/// # Safety
/// `parts` are valid for [`CheckedParts::with_owner`] with an owner that holds `object`.
pub(crate) unsafe fn share_object(
    py: Python<'_>,
    parts: CheckedParts,
    object: Py<PyAny>,
) -> PyResult<TensorView> {
    // A fresh import's extent is exactly the bytes it reaches: the range to borrow.
    let bytes = parts.extent().clone();
    share_object_with(registry(py)?, bytes, object, |owner| {
        // SAFETY: forwarded; the owner holds `object`.
        unsafe { parts.with_owner(owner) }
    })
}

/// The view `view` builds over `bytes` with an owner that holds `object` and a shared borrow
/// of `bytes` in `registry`, both in one allocation. `bytes` must be the range the view
/// reaches (its extent), as for every borrow. No Python code runs before `view` is called
/// (the registry is found already; the rest is Rust code and one allocation), so what `view`
/// reads of a Python object is what the caller read before.
#[inline(always)]
pub(crate) fn share_object_with(
    registry: ApiRef,
    bytes: Range<usize>,
    object: Py<PyAny>,
    view: impl FnOnce(Owner) -> TensorView,
) -> PyResult<TensorView> {
    let token = borrow_range_in(registry, bytes.start, bytes.end, false)?;
    let owner = Owner::new(SharedBorrow {
        token,
        object: Some(PyObjectOwner::new(object)),
    });
    let view = view(owner);
    debug_assert_eq!(byte_range(&view), (bytes.start, bytes.end));
    Ok(view)
}

/// `view` without its shared borrow (when it becomes a Python `Tensor`, from which Rust code
/// gets views only by importing again, which borrows again).
///
/// A view imported straight from a Python object gets an owner of its own, which shares none
/// of the old one's marks ([`Owner::begin_shared_reads`]): while other handles of the old one
/// live, Rust code may hold references through them, so the tensor is then read-only.
pub(crate) fn unshared(py: Python<'_>, mut view: TensorView) -> TensorView {
    if let Some(shared) = view.owner.value_ref::<SharedBorrow>() {
        if let Some(object) = shared.object.as_ref().and_then(PyObjectOwner::object) {
            let object = object.clone_ref(py);
            let others = !view.owner.is_unique();
            view.owner = Owner::new(PyObjectOwner::new(object));
            if others {
                view = view.into_read_only();
            }
        } else if let [inner] = view.owner.dependencies() {
            view.owner = inner.clone();
        }
    }
    view
}

/// The owner value that keeps a shared borrow alive, and with it either the owner it depends
/// on or (for imports straight from a Python object) that object.
pub(crate) struct SharedBorrow {
    token: Borrow,
    object: Option<PyObjectOwner>,
}

impl Drop for SharedBorrow {
    fn drop(&mut self) {
        // Both given back in one attachment (the common end of a numpy argument). Where none
        // can be had (shutdown), the fields' own drops decide.
        let _ = with_gil(|py| {
            self.token.release(py);
            if let Some(object) = self.object.as_mut() {
                object.release(py);
            }
        });
    }
}

impl SharedBorrow {
    /// The Python object held, if any (for the garbage collector's traversal).
    pub(crate) fn object(&self) -> Option<&Py<PyAny>> {
        self.object.as_ref().and_then(PyObjectOwner::object)
    }
}

#[cfg(test)]
mod tests {
    use super::Entries;

    #[test]
    fn shared_ranges_coexist_and_exclusive_ones_do_not() {
        let mut e = Entries::default();
        assert!(e.acquire(100, 200, false));
        assert!(e.acquire(150, 250, false));
        assert!(e.acquire(100, 200, false)); // the same range twice: counted
        assert!(!e.acquire(199, 201, true)); // overlaps both shared ranges
        assert!(!e.acquire(0, 101, true)); // overlaps the first from below
        assert!(e.acquire(250, 300, true)); // touches, does not overlap
        assert!(!e.acquire(299, 300, false)); // inside the exclusive one
        assert!(!e.acquire(260, 270, true));
        assert!(e.acquire(0, 100, true));
        e.release(150, 250, false);
        e.release(100, 200, false);
        assert!(!e.acquire(150, 160, true)); // one (100, 200) still lives
        e.release(100, 200, false);
        assert!(e.acquire(100, 250, true));
        assert_eq!(e.longest_shared, 0, "reset once no shared borrow lives");
        e.release(250, 300, true);
        assert!(e.acquire(260, 270, false));
    }

    #[test]
    fn a_long_shared_range_far_below_is_still_seen() {
        let mut e = Entries::default();
        assert!(e.acquire(0, 1 << 20, false)); // long
        for k in 0..100 {
            assert!(e.acquire(k * 16, k * 16 + 8, false)); // many short ones
        }
        assert!(!e.acquire((1 << 20) - 1, 1 << 21, true));
        assert!(e.acquire(1 << 20, 1 << 21, true));
        // Releasing an unknown range changes nothing.
        e.release(5, 6, false);
        e.release(5, 6, true);
        assert!(!e.acquire(3, 4, true));
    }
}
