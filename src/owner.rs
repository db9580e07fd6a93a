//! Keep-alive handles: what makes a view's memory outlive the view's creator.

use std::alloc::{self, Layout};
use std::any::Any;
use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU64, Ordering};

use smallvec::SmallVec;

/// A reference-counted keep-alive for the memory a [`crate::TensorView`] points into.
///
/// An `Owner` wraps any `Send + Sync` value (a `Vec`, an ndarray array, an Arrow buffer, an
/// imported DLPack managed tensor, a Python object, a torch tensor): the memory stays valid while
/// any clone of the owner lives, and the value is dropped — releasing the memory — exactly once,
/// when the last clone goes. Cloning a view clones its owner; it never copies data.
///
/// An owner may also hold other owners ([`Owner::with_dependencies`]): memory described by one
/// producer but kept alive by several objects. [`Owner::visit`] walks the whole tree, which is
/// how a host garbage collector (Python's) learns which of its objects a view keeps alive.
///
/// The owner also counts the **writable foreign aliases** of its memory that this crate handed
/// out (DLPack exports without `READ_ONLY`, torch tensors): while one lives, foreign code may
/// write the memory at any time, so safe Rust gets no `&[T]` of it (see
/// [`TensorView::as_slice`](crate::TensorView::as_slice)).
///
/// # Invariants
/// An `Owner` is an `Arc`-like handle written for the one thing `Arc` cannot do: both counts
/// live in one atomic word, so an export that takes a handle *and* counts a
/// writable alias, and the deleter that gives both back, each cost one atomic operation.
/// - Every live `Owner` stands for one unit of the strong count (low half of the word).
/// - Every writable alias counted on an owner (high half) holds a handle on it, or on a wrapper
///   that holds one: an alias is counted on the owner its export was made from and on every
///   owner that one depends on ([`Owner::with_dependencies`]), down to the leaves, so sibling
///   wrappers of one memory see each other's aliases. The word is exactly `1` only for the last
///   handle with no alias.
/// - The block (`Box<Keep<dyn Held>>`) is freed by the handle whose release takes the word to
///   0, after an acquire fence, as in `Arc`; nothing else frees it.
pub struct Owner(NonNull<Keep<dyn Held>>);

// SAFETY: an `Owner` is a shared handle on a `Keep<dyn Held>` whose value is `Send + Sync`
// (the `Held` bound); the counts are atomic and the block is freed exactly once, by whichever
// thread releases the last handle (after an acquire fence). As for `Arc<T: Send + Sync>`.
unsafe impl Send for Owner {}
// SAFETY: `&Owner` reads the held value only through `&` and changes nothing but the atomics.
unsafe impl Sync for Owner {}

// Both counts of an owner live in one 64-bit atomic word (see `Owner`'s invariants).
#[cfg(not(target_has_atomic = "64"))]
compile_error!("dlbridge needs 64-bit atomics (every tier-1 target has them)");

/// One strong handle in [`Keep::counts`].
const STRONG: u64 = 1;
/// One writable foreign alias in [`Keep::counts`].
const WRITABLE: u64 = 1 << 32;
/// Beyond this many handles (or aliases) the process aborts, as `Arc` does past `isize::MAX`:
/// 2^31 handles of one owner take 32 GiB of views, so in practice only leaked handles
/// (`mem::forget` in a loop) get there, and wrapping would free live memory. The check runs
/// after the increment, with 2^31 of headroom for increments racing on other threads.
const COUNT_LIMIT: u64 = 1 << 31;

/// The shared allocation: the counts every export and slice touches as a plain field (no
/// virtual call on the hot paths), then the held value behind a vtable.
struct Keep<H: ?Sized> {
    /// Strong handles (`STRONG` units, low 32 bits) plus writable foreign aliases (`WRITABLE`
    /// units, high 32 bits).
    counts: AtomicU64,
    /// Whether `held` has dependencies, whose writable exports count as this owner's too.
    has_dependencies: bool,
    held: H,
}

/// What an [`Owner`] holds: a value plus the owners it depends on.
trait Held: Send + Sync {
    fn value(&self) -> &(dyn Any + Send + Sync);
    fn dependencies(&self) -> &[Owner];
}

/// A value and its dependencies, dropped in that order (field order).
struct Holding<T> {
    value: T,
    /// Inline for the common single dependency (a borrow token wrapping one producer's owner).
    dependencies: SmallVec<[Owner; 1]>,
}

impl<T: Any + Send + Sync> Held for Holding<T> {
    fn value(&self) -> &(dyn Any + Send + Sync) {
        &self.value
    }
    fn dependencies(&self) -> &[Owner] {
        &self.dependencies
    }
}

impl<T> Keep<Holding<T>> {
    fn boxed(value: T, dependencies: SmallVec<[Owner; 1]>) -> Box<Keep<Holding<T>>> {
        Box::new(Keep {
            counts: AtomicU64::new(STRONG),
            has_dependencies: !dependencies.is_empty(),
            held: Holding {
                value,
                dependencies,
            },
        })
    }
}

impl Owner {
    /// Wrap `value` as the keep-alive of some memory.
    pub fn new<T: Any + Send + Sync>(value: T) -> Owner {
        Owner::from_box(Keep::boxed(value, SmallVec::new()))
    }

    /// The first handle on a fresh block (its count is already one `STRONG`).
    fn from_box<T: Any + Send + Sync>(keep: Box<Keep<Holding<T>>>) -> Owner {
        Owner::from_raw(Box::into_raw(keep))
    }

    /// The first handle on a block from `Box::into_raw`.
    fn from_raw<T: Any + Send + Sync>(raw: *mut Keep<Holding<T>>) -> Owner {
        let raw: *mut Keep<dyn Held> = raw;
        Owner(NonNull::new(raw).expect("Box::into_raw never returns null"))
    }

    fn keep(&self) -> &Keep<dyn Held> {
        // SAFETY: the block lives while this handle does (type invariant), and is only ever
        // shared (`&`) once it has a handle.
        unsafe { self.0.as_ref() }
    }

    /// Wrap `value`, letting `f` look at it in its final place first (with exclusive access):
    /// what a caller needs to find memory that lives inside the value, at the address it keeps
    /// from then on.
    pub(crate) fn new_inspected<T: Any + Send + Sync, R>(
        value: T,
        f: impl FnOnce(&mut T) -> R,
    ) -> (Owner, R) {
        // The box becomes the owner first: moving a `Box` after `f` took pointers into it would
        // invalidate them (the move asserts uniqueness), and if `f` unwinds the owner frees it.
        let raw: *mut Keep<Holding<T>> = Box::into_raw(Keep::boxed(value, SmallVec::new()));
        let owner = Owner::from_raw(raw);
        // SAFETY: the block is fresh and this is its only handle, not yet shared: nothing else
        // reads or writes it while `f` has the exclusive reference.
        let seen = f(unsafe { &mut (*raw).held.value });
        (owner, seen)
    }

    /// Wrap `value` together with other owners that must live as long as it (a Python object
    /// and the buffer it exposes, say). All are released together, `value` first.
    pub fn with_dependencies<T: Any + Send + Sync>(value: T, dependencies: Vec<Owner>) -> Owner {
        Owner::from_box(Keep::boxed(value, SmallVec::from_vec(dependencies)))
    }

    /// [`Owner::with_dependencies`] with one dependency, in a single allocation.
    #[cfg(feature = "pyo3")]
    pub(crate) fn with_dependency<T: Any + Send + Sync>(value: T, dependency: Owner) -> Owner {
        let mut dependencies = SmallVec::new();
        dependencies.push(dependency);
        Owner::from_box(Keep::boxed(value, dependencies))
    }

    /// How many handles (views, exports, owner clones) currently keep the memory alive. A
    /// snapshot for diagnostics: another thread may change it at any time; decisions that
    /// grant access use [`Owner::is_unique`].
    pub fn strong_count(&self) -> usize {
        (self.keep().counts.load(Ordering::Relaxed) % WRITABLE) as usize
    }

    /// True when this is the only handle on the memory. Like `Arc::get_mut`, the check
    /// synchronises with the release of every other handle (an acquire load of the count), so
    /// whatever another thread did through its handle before dropping it happens before
    /// anything the caller does next.
    ///
    /// An owner that wraps other owners ([`Owner::with_dependencies`]) is unique only when they
    /// are too: the memory is theirs, and another wrapper of the same dependency reaches it.
    ///
    /// The answer holds while nobody else can clone this handle: callers decide on a handle they
    /// have exclusive access to (`&mut` of the view that holds it).
    pub fn is_unique(&self) -> bool {
        let keep = self.keep();
        // Acquire pairs with the release decrement of the other handles (and of the aliases,
        // which hold handles of their own, so the word is 1 only when none is left).
        keep.counts.load(Ordering::Acquire) == STRONG
            && (!keep.has_dependencies || keep.held.dependencies().iter().all(Owner::is_unique))
    }

    /// The wrapped value, if it is a `T` (lets an integration recognise its own owners).
    ///
    /// `None` also while a writable foreign alias of the memory lives
    /// ([`Owner::writable_exports`]): the value (a `Vec<T>`, say) would hand out references to
    /// elements foreign code may be writing, which [`TensorView::as_slice`] refuses for the
    /// same reason.
    ///
    /// [`TensorView::as_slice`]: crate::TensorView::as_slice
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        if self.writable_exports() != 0 {
            return None;
        }
        self.keep().held.value().downcast_ref::<T>()
    }

    /// True when both handles keep the same value alive.
    pub fn ptr_eq(&self, other: &Owner) -> bool {
        std::ptr::addr_eq(self.0.as_ptr(), other.0.as_ptr())
    }

    /// Call `f` on this owner's value and, depth first, on the values of its dependencies.
    pub fn visit(&self, f: &mut dyn FnMut(&(dyn Any + Send + Sync))) {
        f(self.keep().held.value());
        for dependency in self.keep().held.dependencies() {
            dependency.visit(f);
        }
    }

    /// How many writable foreign aliases of the memory live now (acquire: when it reads 0, the
    /// writes made through the aliases happen before what the caller does next).
    ///
    /// An owner that wraps other owners ([`Owner::with_dependencies`]) counts theirs too: the
    /// memory is theirs.
    pub fn writable_exports(&self) -> usize {
        let keep = self.keep();
        let own = (keep.counts.load(Ordering::Acquire) / WRITABLE) as usize;
        if !keep.has_dependencies {
            return own;
        }
        // The dependencies count this owner's aliases too (and those of its siblings).
        keep.held
            .dependencies()
            .iter()
            .map(Owner::writable_exports)
            .fold(own, usize::max)
    }

    /// The held value, if it is a `T`, whatever the exports: for the crate's own wrappers,
    /// which never reach the memory through it.
    #[cfg(feature = "pyo3")]
    pub(crate) fn value_ref<T: Any>(&self) -> Option<&T> {
        self.keep().held.value().downcast_ref::<T>()
    }

    /// The owners this one depends on.
    #[cfg(feature = "pyo3")]
    pub(crate) fn dependencies(&self) -> &[Owner] {
        self.keep().held.dependencies()
    }

    /// Add `delta` to the counts (relaxed, as `Arc::clone`: a new handle is made from a live
    /// one, so nobody can free the block meanwhile), aborting before either half could wrap.
    fn add(&self, delta: u64) {
        let old = self.keep().counts.fetch_add(delta, Ordering::Relaxed);
        if old % WRITABLE >= COUNT_LIMIT || old / WRITABLE >= COUNT_LIMIT {
            std::process::abort();
        }
    }

    /// Give back `delta`, which includes this handle's `STRONG`, and free the block if that
    /// was the last of everything. Consumes the handle.
    fn release(self, delta: u64) {
        let ptr = self.0;
        std::mem::forget(self);
        // SAFETY: the handle was live until now, so the block is.
        let keep = unsafe { ptr.as_ref() };
        // Release: this handle's (and alias's) accesses happen before the block is freed by
        // whichever thread frees it.
        if keep.counts.fetch_sub(delta, Ordering::Release) != delta {
            return;
        }
        // Pairs with the release decrements of every other handle.
        fence(Ordering::Acquire);
        // SAFETY: the count reached zero: no handle is left, so nobody else can reach the
        // block, which came from `Box::into_raw` in `from_box` and is freed only here.
        drop(unsafe { Box::from_raw(ptr.as_ptr()) });
    }

    /// One more handle that also counts a writable foreign alias of the memory, in one atomic
    /// step: the keep-alive of a DLPack export without `READ_ONLY`. Ended by
    /// [`Owner::release_writable_export`] (the export is over and its handle dropped) or
    /// [`Owner::end_writable_export`] (the handle lives on as an ordinary one).
    pub(crate) fn clone_writable_export(&self) -> Owner {
        self.add(STRONG + WRITABLE);
        self.count_on_dependencies(true);
        Owner(self.0)
    }

    /// Count this handle as a writable foreign alias (ended as for
    /// [`Owner::clone_writable_export`]).
    pub(crate) fn begin_writable_export(&self) {
        self.add(WRITABLE);
        self.count_on_dependencies(true);
    }

    /// The alias counted on this handle is gone; the handle stays.
    pub(crate) fn end_writable_export(&self) {
        self.count_on_dependencies(false);
        // Release: the foreign code's writes happen before a later acquire load that sees no
        // alias. The handle still holds a `STRONG`, so this never reaches zero.
        self.keep().counts.fetch_sub(WRITABLE, Ordering::Release);
    }

    /// The alias counted on this handle is gone, and so is the handle.
    pub(crate) fn release_writable_export(self) {
        // First, while this handle keeps the dependencies alive.
        self.count_on_dependencies(false);
        self.release(STRONG + WRITABLE);
    }

    /// Count (`up`) or give back one writable alias on every owner this one depends on, down
    /// to the leaves. Called while this handle is live, so the dependencies are; a count given
    /// back never reaches zero there (this owner still holds a handle on each).
    fn count_on_dependencies(&self, up: bool) {
        let keep = self.keep();
        if !keep.has_dependencies {
            return;
        }
        for dependency in keep.held.dependencies() {
            // Each one counts the alias on itself and passes it down to its own dependencies.
            if up {
                dependency.begin_writable_export();
            } else {
                dependency.end_writable_export();
            }
        }
    }
}

impl Clone for Owner {
    #[inline]
    fn clone(&self) -> Owner {
        self.add(STRONG);
        Owner(self.0)
    }
}

impl Drop for Owner {
    #[inline]
    fn drop(&mut self) {
        // `self` is being dropped and never used again: a bitwise copy of the handle takes its
        // place and gives its count back exactly once (`release` forgets the copy).
        let handle = Owner(self.0);
        handle.release(STRONG);
    }
}

impl fmt::Debug for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Owner(handles: {})", self.strong_count())
    }
}

/// A heap block aligned to [`AlignedBuffer::ALIGN`] bytes: the destination of every copy.
pub(crate) struct AlignedBuffer {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the buffer is plain bytes owned uniquely by this value; nothing in it is tied to a
// thread, and shared access only ever hands out its address.
unsafe impl Send for AlignedBuffer {}
// SAFETY: as above; `&AlignedBuffer` exposes no interior mutability.
unsafe impl Sync for AlignedBuffer {}

impl AlignedBuffer {
    /// Cache-line alignment: enough for every DLPack element and for SIMD loads.
    pub(crate) const ALIGN: usize = 64;

    /// Allocate `len` uninitialised bytes (at least one, so the pointer is never dangling).
    pub(crate) fn new_uninit(len: usize) -> crate::Result<AlignedBuffer> {
        let layout = Layout::from_size_align(len.max(1), Self::ALIGN)
            .map_err(|_| crate::Error::Overflow("copy buffer size"))?;
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc::alloc(layout) };
        // A refused allocation is an error, not an abort: sizes come from tensor metadata.
        let ptr = NonNull::new(raw).ok_or_else(|| crate::Error::AllocationFailed(len))?;
        advise_huge_pages(raw, len);
        Ok(AlignedBuffer { ptr, layout })
    }

    /// Allocate `len` zeroed bytes (at least one): the memory of tensors made by the Python
    /// exchange API's allocator.
    #[cfg(feature = "pyo3")]
    pub(crate) fn new_zeroed(len: usize) -> crate::Result<AlignedBuffer> {
        let layout = Layout::from_size_align(len.max(1), Self::ALIGN)
            .map_err(|_| crate::Error::Overflow("buffer size"))?;
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).ok_or_else(|| crate::Error::AllocationFailed(len))?;
        Ok(AlignedBuffer { ptr, layout })
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

/// Buffers of at least `HUGE_PAGES_MIN` bytes ask Linux for transparent huge pages, as numpy
/// does for its arrays (`madvise(MADV_HUGEPAGE)` from 4 MiB): a fresh 64 MiB copy then takes
/// 32 page faults instead of 16,384, which were most of the cost of copying into new memory.
/// Only the 2 MiB blocks wholly inside the buffer are advised: that is all THP can back, and a
/// 2 MiB boundary is a page boundary whatever the kernel's page size (4, 16 or 64 KiB), so the
/// advice never reaches a neighbour's memory. The advice is optional: a kernel without THP (or
/// with it off) changes nothing.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64"),
    not(miri)
))]
fn advise_huge_pages(ptr: *mut u8, len: usize) {
    const HUGE_PAGES_MIN: usize = 4 << 20;
    const BLOCK: usize = 2 << 20;
    const MADV_HUGEPAGE: std::ffi::c_int = 14; // the same on every Linux architecture above
    extern "C" {
        fn madvise(
            addr: *mut std::ffi::c_void,
            len: usize,
            advice: std::ffi::c_int,
        ) -> std::ffi::c_int;
    }
    if len < HUGE_PAGES_MIN {
        return;
    }
    let start = (ptr as usize).next_multiple_of(BLOCK);
    let end = (ptr as usize + len) / BLOCK * BLOCK;
    if end > start {
        // SAFETY: madvise only changes how the kernel backs the range with pages; the range
        // starts and ends on 2 MiB boundaries (page boundaries for every page size) inside this
        // fresh allocation of `len` bytes. Its result is ignored: the advice is optional (EINVAL
        // where THP is not built in).
        unsafe { madvise(start as *mut std::ffi::c_void, end - start, MADV_HUGEPAGE) };
    }
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64"),
    not(miri)
)))]
fn advise_huge_pages(_ptr: *mut u8, _len: usize) {}

impl Drop for AlignedBuffer {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc::alloc` with exactly this layout and is freed only here.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}
