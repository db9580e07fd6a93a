//! Keep-alive handles: what makes a view's memory outlive the view's creator.

use std::alloc::{self, Layout};
use std::any::{Any, TypeId};
use std::cell::UnsafeCell;
use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

use smallvec::SmallVec;

/// A reference-counted keep-alive for the memory a [`crate::TensorView`] points into.
///
/// An `Owner` wraps any `Send + Sync` value (a `Vec`, an ndarray array, an Arrow buffer, an
/// imported DLPack managed tensor, a Python object, a torch tensor): the memory stays valid while
/// any clone of the owner lives, and the value is dropped — releasing the memory — exactly once,
/// when the last clone goes. Cloning a view clones its owner; it never copies data.
///
/// An owner may also hold other owners ([`Owner::with_dependencies`]): memory described by one
/// producer but kept alive by several objects. The crate walks that tree to tell a host garbage
/// collector (Python's) which of its objects a view keeps alive.
///
/// The owner also counts the **writable foreign aliases** of its memory that this crate handed
/// out (DLPack exports without `READ_ONLY`, torch tensors): while one lives, foreign code may
/// write the memory at any time, so safe Rust gets no `&[T]` of it (see
/// [`TensorView::as_slice`](crate::TensorView::as_slice)). And it records whether safe Rust
/// may hold such references: then no writable alias is made (see the crate's aliasing rules).
///
/// # Invariants
/// An `Owner` is an `Arc`-like handle written for the one thing `Arc` cannot do: both counts
/// live in one atomic word, so an export that takes a handle *and* counts a
/// writable alias, and the deleter that gives both back, each cost one atomic operation.
/// - Every live `Owner` stands for one unit of the strong count (low half of the word).
/// - Every writable alias counted on an owner (high half) holds a handle on it, or on a wrapper
///   that holds one, or ends before the handle it was counted on is released: an alias is
///   counted on the owner its export was made from and on every
///   owner that one depends on ([`Owner::with_dependencies`]), down to the leaves, so sibling
///   wrappers of one memory see each other's aliases. The word is exactly `1` only for the last
///   handle with no alias.
/// - The block (`Box<Keep<dyn Held>>`) is freed by the handle whose release takes the word to
///   0, after an acquire fence, as in `Arc`; nothing else frees it.
/// - The block's `this` field holds the block's own (wide) pointer from before its first handle
///   on: a handle carried as a thin pointer (`Owner::into_thin_raw`, for a C `void *`) is the
///   address of that field, and still counts as a handle.
/// - A shared reference to the memory (`&[T]`, an ndarray view, `&T` of the value) and a
///   writable foreign alias never coexist: references are made only after marking the owner
///   as read while no alias lives (`begin_shared_reads`), and aliases only while no mark is
///   set (`try_clone_writable_export`); the mark outlives every reference. Memory torch can
///   write counts one alias for the owner's whole life (`new_foreign_writable`).
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

/// In [`Keep::readers`]: shared references to the memory may have been made through this
/// owner ([`Owner::begin_shared_reads`]). The bits below count the owners wrapping this one
/// (directly or not) that carry the mark: at most one per live handle, so below 2^31.
const READ_HERE: u32 = 1 << 31;

/// Add (`up`) or take back one reader on every owner `keep` depends on, down to the leaves:
/// how a wrapper's mark reaches the owners its siblings share.
fn count_reader_below(keep: &Keep<dyn Held>, up: bool) {
    if !keep.has_dependencies {
        return;
    }
    for dependency in keep.held.dependencies() {
        let below = dependency.keep();
        if up {
            below.readers.fetch_add(1, Ordering::SeqCst);
        } else {
            below.readers.fetch_sub(1, Ordering::SeqCst);
        }
        count_reader_below(below, up);
    }
}

/// The shared allocation: the counts every export and slice touches as a plain field (no
/// virtual call on the hot paths), then the held value behind a vtable.
struct Keep<H: ?Sized> {
    /// Strong handles (`STRONG` units, low 32 bits) plus writable foreign aliases (`WRITABLE`
    /// units, high 32 bits).
    counts: AtomicU64,
    /// The shared-reference state ([`READ_HERE`] plus a count of readers above, see
    /// [`Owner::begin_shared_reads`]).
    readers: AtomicU32,
    /// Whether `held` has dependencies, whose writable exports count as this owner's too.
    has_dependencies: bool,
    /// Whether code outside this crate's counting may write the memory at any time (a torch
    /// tensor: any tensor sharing its storage can write it through tch's safe API): counted as
    /// one writable alias for as long as the owner lives.
    foreign_writer: bool,
    /// This block as a handle points to it (with `held`'s vtable), written once before the
    /// first handle exists: what turns the address of this field, a thin pointer
    /// ([`Owner::into_thin_raw`]), back into a handle.
    this: Option<NonNull<Keep<dyn Held>>>,
    held: H,
}

/// What an [`Owner`] holds: a value plus the owners it depends on.
trait Held: Send + Sync {
    /// The value's type, known without a reference to the value.
    fn value_type(&self) -> TypeId;
    /// The value's address (a `*const T` for the `T` of `value_type`).
    fn value_ptr(&self) -> *const ();
    fn dependencies(&self) -> &[Owner];
}

/// A value and its dependencies, dropped in that order (field order).
///
/// The value sits in an `UnsafeCell` because it may hold the elements themselves (an array
/// moved into [`TensorView::from_owner_mut`](crate::TensorView::from_owner_mut)), which
/// exports and `&mut` slices write through raw pointers while other threads read the counts
/// through `&Keep`: the cell keeps those shared references from asserting that the value's
/// bytes are frozen. The value itself is only ever read through `&`, and a reference to it is
/// made only once its type is known to match (`Owner::value_as`), so no reference is made to a
/// value (such as an inline array) the caller does not ask for.
struct Holding<T> {
    value: UnsafeCell<T>,
    /// Inline for the common single dependency (a borrow token wrapping one producer's owner).
    dependencies: SmallVec<[Owner; 1]>,
}

// SAFETY: `Holding` is `Sync` exactly when `T` is: the cell is never used to mutate the value
// through `&Holding` (only `new_inspected` writes, through the block's sole handle), so sharing
// it across threads shares only `&T`.
unsafe impl<T: Send + Sync> Sync for Holding<T> {}

impl<T: Any + Send + Sync> Held for Holding<T> {
    fn value_type(&self) -> TypeId {
        TypeId::of::<T>()
    }
    fn value_ptr(&self) -> *const () {
        self.value.get().cast_const().cast()
    }
    fn dependencies(&self) -> &[Owner] {
        &self.dependencies
    }
}

impl<T> Keep<Holding<T>> {
    fn boxed(
        value: T,
        dependencies: SmallVec<[Owner; 1]>,
        foreign_writer: bool,
    ) -> Box<Keep<Holding<T>>> {
        Box::new(Keep {
            counts: AtomicU64::new(STRONG),
            readers: AtomicU32::new(0),
            has_dependencies: !dependencies.is_empty(),
            foreign_writer,
            this: None, // set by `Owner::from_raw`
            held: Holding {
                value: UnsafeCell::new(value),
                dependencies,
            },
        })
    }
}

impl Owner {
    /// Wrap `value` as the keep-alive of some memory.
    pub fn new<T: Any + Send + Sync>(value: T) -> Owner {
        Owner::from_box(Keep::boxed(value, SmallVec::new(), false))
    }

    /// Wrap `value`, the keep-alive of memory that code outside this crate's counting may
    /// write at any time (a torch tensor's storage, which every tensor sharing it can write
    /// through tch's safe API): it counts as one writable foreign alias for the owner's whole
    /// life, so safe Rust never gets `&[T]` of it ([`Owner::writable_exports`]).
    #[cfg_attr(not(feature = "tch"), allow(dead_code))]
    pub(crate) fn new_foreign_writable<T: Any + Send + Sync>(value: T) -> Owner {
        Owner::from_box(Keep::boxed(value, SmallVec::new(), true))
    }

    /// The first handle on a fresh block (its count is already one `STRONG`).
    fn from_box<T: Any + Send + Sync>(keep: Box<Keep<Holding<T>>>) -> Owner {
        Owner::from_raw(Box::into_raw(keep))
    }

    /// The first handle on a block from `Box::into_raw`.
    fn from_raw<T: Any + Send + Sync>(raw: *mut Keep<Holding<T>>) -> Owner {
        let raw: *mut Keep<dyn Held> = raw;
        let this = NonNull::new(raw).expect("Box::into_raw never returns null");
        // SAFETY: a fresh block from `Box::into_raw`, not yet shared: this is the only access.
        unsafe { (*raw).this = Some(this) };
        Owner(this)
    }

    /// This handle as a thin pointer (what a C `void *`, such as a capsule's, can carry),
    /// still counted: [`Owner::from_thin_raw`] turns it back into the handle.
    #[cfg_attr(not(feature = "pyo3"), allow(dead_code))]
    pub(crate) fn into_thin_raw(self) -> NonNull<std::ffi::c_void> {
        let keep = self.0.as_ptr();
        std::mem::forget(self);
        // SAFETY: the block lives (this handle's unit of the count is kept); `addr_of!` makes
        // no reference, and the field's address is inside the block, so not null.
        unsafe { NonNull::new_unchecked(std::ptr::addr_of_mut!((*keep).this).cast()) }
    }

    /// The handle [`Owner::into_thin_raw`] made into `thin`.
    ///
    /// # Safety
    /// `thin` comes from `into_thin_raw`, and each such pointer is turned back once.
    #[cfg_attr(not(feature = "pyo3"), allow(dead_code))]
    pub(crate) unsafe fn from_thin_raw(thin: NonNull<std::ffi::c_void>) -> Owner {
        // SAFETY: per the contract, `thin` is the address of a live block's `this`, which
        // holds the block's pointer (written before the first handle, never after).
        let keep = unsafe { thin.cast::<Option<NonNull<Keep<dyn Held>>>>().read() };
        // The handle takes over the unit of the count that `into_thin_raw` kept.
        Owner(keep.expect("set before the block's first handle"))
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
        let raw: *mut Keep<Holding<T>> = Box::into_raw(Keep::boxed(value, SmallVec::new(), false));
        let owner = Owner::from_raw(raw);
        // SAFETY: the block is fresh and this is its only handle, not yet shared: nothing else
        // reads or writes it while `f` has the exclusive reference.
        let seen = f(unsafe { &mut *(*raw).held.value.get() });
        (owner, seen)
    }

    /// Wrap `value` together with other owners that must live as long as it (a Python object
    /// and the buffer it exposes, say). All are released together, `value` first.
    pub fn with_dependencies<T: Any + Send + Sync>(value: T, dependencies: Vec<Owner>) -> Owner {
        Owner::from_box(Keep::boxed(value, SmallVec::from_vec(dependencies), false))
    }

    /// [`Owner::with_dependencies`] with one dependency, in a single allocation.
    #[cfg_attr(not(any(feature = "pyo3", feature = "arrow")), allow(dead_code))]
    pub(crate) fn with_dependency<T: Any + Send + Sync>(value: T, dependency: Owner) -> Owner {
        let mut dependencies = SmallVec::new();
        dependencies.push(dependency);
        Owner::from_box(Keep::boxed(value, dependencies, false))
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
    /// Memory torch can write (a `tch` import) is never unique.
    ///
    /// The answer holds while nobody else can clone this handle: callers decide on a handle they
    /// have exclusive access to (`&mut` of the view that holds it).
    pub fn is_unique(&self) -> bool {
        let keep = self.keep();
        // Acquire pairs with the release decrement of the other handles (and of the aliases,
        // which hold handles of their own, so the word is 1 only when none is left).
        keep.counts.load(Ordering::Acquire) == STRONG
            && !keep.foreign_writer
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
    ///
    /// A `Some` counts as a shared reference to the memory: later writable exports of it go
    /// out read-only (see the crate's aliasing rules).
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        if self.keep().held.value_type() != TypeId::of::<T>() {
            return None;
        }
        self.begin_shared_reads().ok()?;
        self.value_as::<T>()
    }

    /// The held value, if it is a `T`; the reference is made only when the type matches.
    fn value_as<T: Any>(&self) -> Option<&T> {
        let held = &self.keep().held;
        if held.value_type() != TypeId::of::<T>() {
            return None;
        }
        // SAFETY: the value is a `T` (same `TypeId`), alive while this handle is, and never
        // mutated through the cell once the block is shared (see `Holding`).
        Some(unsafe { &*held.value_ptr().cast::<T>() })
    }

    /// True when both handles keep the same value alive.
    pub fn ptr_eq(&self, other: &Owner) -> bool {
        std::ptr::addr_eq(self.0.as_ptr(), other.0.as_ptr())
    }

    /// Call `f` on this owner and, depth first, on the owners it depends on: how the Python
    /// module tells the garbage collector which objects a view keeps alive (`f` looks for
    /// them with [`Owner::value_ref`]).
    #[cfg(feature = "pyo3")]
    pub(crate) fn visit(&self, f: &mut dyn FnMut(&Owner)) {
        f(self);
        for dependency in self.keep().held.dependencies() {
            dependency.visit(f);
        }
    }

    /// How many writable foreign aliases of the memory live now. Sequentially consistent (the
    /// other half of the check that grants shared references); when it reads 0, the writes
    /// made through the aliases happen before what the caller does next.
    ///
    /// An owner that wraps other owners ([`Owner::with_dependencies`]) counts theirs too: the
    /// memory is theirs.
    pub fn writable_exports(&self) -> usize {
        let keep = self.keep();
        let own = (keep.counts.load(Ordering::SeqCst) / WRITABLE) as usize
            + usize::from(keep.foreign_writer);
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

    /// Record that safe Rust may hold shared references (`&[T]`, an ndarray view, `&T` of the
    /// value) to the memory through this owner from now on, unless a writable foreign alias
    /// of it lives: then `Err(how many)`, and no reference may be made.
    ///
    /// This is one half of the aliasing rule; the writable exports are the other
    /// ([`Owner::try_clone_writable_export`]). Each side first writes its own mark (here the
    /// reader mark, there the alias count) and then reads the other's, all sequentially
    /// consistent, on every owner of the tree: two views of one memory share at least one
    /// owner, and of two such races at least one side sees the other and backs off. So a
    /// reference and a writable alias never coexist, whichever thread makes which.
    ///
    /// The mark stays until the owner is freed, or until a sole handle proves no reference
    /// can live any more ([`Owner::forget_shared_reads`]): a reference's lifetime is not
    /// tracked, only that one may exist. Wrappers ([`Owner::with_dependencies`]) make the mark
    /// short-lived where that matters: a Python argument's view is marked on its own wrapper,
    /// which is freed with the view.
    pub(crate) fn begin_shared_reads(&self) -> Result<(), usize> {
        let keep = self.keep();
        if keep.readers.load(Ordering::SeqCst) & READ_HERE == 0 {
            // A refusal visible now leaves no mark (the mark cannot be taken back later: another
            // thread may already rely on it).
            match self.writable_exports() {
                0 => {}
                n => return Err(n),
            }
            // The dependencies first: whoever then sees `READ_HERE` here (and skips this),
            // sees their counts too.
            count_reader_below(keep, true);
            if keep.readers.fetch_or(READ_HERE, Ordering::SeqCst) & READ_HERE != 0 {
                count_reader_below(keep, false); // another thread marked it first
            }
        }
        match self.writable_exports() {
            0 => Ok(()),
            n => Err(n),
        }
    }

    /// Whether shared references to the memory may live ([`Owner::begin_shared_reads`]) on this
    /// owner or any it depends on.
    #[inline]
    fn read_by_rust(&self) -> bool {
        let keep = self.keep();
        keep.readers.load(Ordering::SeqCst) != 0
            || (keep.has_dependencies && keep.held.dependencies().iter().any(Owner::read_by_rust))
    }

    /// [`Owner::forget_shared_reads`] when this is the only handle ([`Owner::is_unique`]) and
    /// a mark is set; a load or two otherwise. The caller's handle must be one no reference is
    /// made through (a view it owns or borrows mutably, or one it never lends).
    #[cfg(feature = "pyo3")]
    #[inline(always)]
    pub(crate) fn forget_shared_reads_if_unique(&self) {
        let keep = self.keep();
        // Relaxed: a sole handle's marks can only have been set through it, by this thread or
        // before an acquire that `is_unique` performs.
        if (keep.readers.load(Ordering::Relaxed) != 0 || keep.has_dependencies) && self.is_unique()
        {
            self.forget_shared_reads();
        }
    }

    /// Clear the reader marks of this owner and its dependencies.
    ///
    /// The caller holds the only handle ([`Owner::is_unique`]) through a view it owns or
    /// borrows mutably, so no reference made through any view of the memory can still live.
    pub(crate) fn forget_shared_reads(&self) {
        let keep = self.keep();
        // A load first: the common case has no mark, and costs no read-modify-write.
        if keep.readers.load(Ordering::Relaxed) & READ_HERE != 0
            && keep.readers.fetch_and(!READ_HERE, Ordering::Relaxed) & READ_HERE != 0
        {
            count_reader_below(keep, false);
        }
        if keep.has_dependencies {
            for dependency in keep.held.dependencies() {
                dependency.forget_shared_reads();
            }
        }
    }

    /// The held value, if it is a `T`, whatever the exports: for the crate's own wrappers,
    /// which never reach the memory through it.
    #[cfg(feature = "pyo3")]
    pub(crate) fn value_ref<T: Any>(&self) -> Option<&T> {
        self.value_as::<T>()
    }

    /// The owners this one depends on.
    #[cfg(feature = "pyo3")]
    pub(crate) fn dependencies(&self) -> &[Owner] {
        self.keep().held.dependencies()
    }

    /// Add `delta` to the counts (relaxed for a plain handle, as `Arc::clone`: a new handle is
    /// made from a live one, so nobody can free the block meanwhile; sequentially consistent
    /// for an alias, see [`Owner::begin_shared_reads`]), aborting before either half could
    /// wrap.
    fn add(&self, delta: u64, order: Ordering) {
        let old = self.keep().counts.fetch_add(delta, order);
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
        // The common end of a view that was never shared (an argument dropped by the function
        // it was passed to): no other handle and no alias left, seen by an acquire load that
        // pairs with the release decrements of every handle gone before. Nobody can add to the
        // count meanwhile (that takes a handle, and there is none), so no atomic
        // read-modify-write is needed; this is how `Arc::get_mut` decides too.
        if keep.counts.load(Ordering::Acquire) != delta {
            // Release: this handle's (and alias's) accesses happen before the block is freed
            // by whichever thread frees it.
            if keep.counts.fetch_sub(delta, Ordering::Release) != delta {
                return;
            }
            // Pairs with the release decrements of every other handle.
            fence(Ordering::Acquire);
        }
        // No reference made through this owner lives any more: its mark on the dependencies
        // goes (while the block, and with it the dependencies, still lives).
        if keep.readers.load(Ordering::Relaxed) & READ_HERE != 0 {
            count_reader_below(keep, false);
        }
        // SAFETY: the count reached zero: no handle is left, so nobody else can reach the
        // block, which came from `Box::into_raw` in `from_box` and is freed only here.
        drop(unsafe { Box::from_raw(ptr.as_ptr()) });
    }

    /// One more handle that also counts a writable foreign alias of the memory, in one atomic
    /// step: the keep-alive of a DLPack export without `READ_ONLY`. `None`, with nothing
    /// changed, while safe Rust may hold shared references to the memory
    /// ([`Owner::begin_shared_reads`]): the export must then go out read-only.
    ///
    /// Ended by [`Owner::release_writable_export`] (the export is over and its handle
    /// dropped) or [`Owner::end_writable_export`] (the handle lives on as an ordinary one).
    pub(crate) fn try_clone_writable_export(&self) -> Option<Owner> {
        // Marks stay once set: one seen now refuses without counting and giving back.
        if self.read_by_rust() {
            return None;
        }
        self.add(STRONG + WRITABLE, Ordering::SeqCst);
        self.count_on_dependencies(true);
        let export = Owner(self.0);
        if self.read_by_rust() {
            export.release_writable_export();
            return None;
        }
        Some(export)
    }

    /// Count this handle as a writable foreign alias (ended as for
    /// [`Owner::try_clone_writable_export`]); false, with nothing changed, while safe Rust may
    /// hold shared references to the memory.
    pub(crate) fn try_begin_writable_export(&self) -> bool {
        if self.read_by_rust() {
            return false; // as in `try_clone_writable_export`
        }
        self.add(WRITABLE, Ordering::SeqCst);
        self.count_on_dependencies(true);
        if self.read_by_rust() {
            self.end_writable_export();
            return false;
        }
        true
    }

    /// [`Owner::try_begin_writable_export`] for a handle the caller gives up to the export (a
    /// view moved into a DLPack export or a numpy array's base): when it is the owner's only
    /// handle, no reference made through it can still live, so the reader marks are cleared
    /// first and the export goes out writable.
    pub(crate) fn try_begin_writable_export_given_up(&mut self) -> bool {
        if self.try_begin_writable_export_alone() {
            return true;
        }
        if self.is_unique() {
            self.forget_shared_reads();
        }
        self.try_begin_writable_export()
    }

    /// [`Owner::try_begin_writable_export_given_up`] for the only handle of an owner without
    /// dependencies: nobody else can mark or count meanwhile (that takes a handle), so the
    /// marks are cleared and the alias counted with plain stores instead of the general path's
    /// fenced read-modify-writes. False, with nothing changed, for any other owner.
    fn try_begin_writable_export_alone(&mut self) -> bool {
        let keep = self.keep();
        // `is_unique`'s acquire load pairs with the release of every other handle gone before.
        if keep.has_dependencies || !self.is_unique() {
            return false;
        }
        // No wrapper holds a handle, so the only mark can be this owner's own.
        keep.readers.store(0, Ordering::Relaxed);
        // Release, as the general path's increment: the handle may go to another thread (through
        // whatever synchronises that) whose last release frees the block without a fence.
        keep.counts.store(STRONG + WRITABLE, Ordering::Release);
        true
    }

    /// Claim exclusive use of the memory for safe Rust `&mut` access through this owner, a
    /// fresh wrapper ([`Owner::with_dependencies`]) made for it: both marks at once, a reader
    /// (so no writable alias is made meanwhile) and a writable alias (so no shared reference
    /// is made meanwhile), then a check that no other mark of either kind exists anywhere in
    /// the tree. The same write-then-read order as [`Owner::begin_shared_reads`] makes two
    /// racing claims see each other. False when another mark exists; the alias is then given
    /// back (the reader mark goes with the wrapper).
    ///
    /// A granted claim ends with [`Owner::end_writable_export`] before the wrapper goes.
    #[cfg(feature = "pyo3")]
    pub(crate) fn try_begin_exclusive_use(&self) -> bool {
        // The result is judged below, with every other mark.
        let _ = self.begin_shared_reads();
        self.add(WRITABLE, Ordering::SeqCst);
        self.count_on_dependencies(true);
        if self.only_marks_of_one_claim(true) {
            return true;
        }
        self.end_writable_export();
        false
    }

    /// Whether the marks on this owner (`top`: the claiming wrapper) and below are exactly one
    /// claim's: one alias everywhere, the reader mark here and one counted reader below.
    #[cfg(feature = "pyo3")]
    fn only_marks_of_one_claim(&self, top: bool) -> bool {
        let keep = self.keep();
        let readers = if top { READ_HERE } else { 1 };
        keep.counts.load(Ordering::SeqCst) / WRITABLE == 1
            && !keep.foreign_writer
            && keep.readers.load(Ordering::SeqCst) == readers
            && keep
                .held
                .dependencies()
                .iter()
                .all(|dependency| dependency.only_marks_of_one_claim(false))
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
    #[inline]
    fn count_on_dependencies(&self, up: bool) {
        if self.keep().has_dependencies {
            self.count_on_each_dependency(up);
        }
    }

    /// [`Owner::count_on_dependencies`] for an owner that has some.
    #[cold]
    fn count_on_each_dependency(&self, up: bool) {
        let keep = self.keep();
        for dependency in keep.held.dependencies() {
            // Each one counts the alias on itself and passes it down to its own dependencies.
            if up {
                dependency.add(WRITABLE, Ordering::SeqCst);
                dependency.count_on_dependencies(true);
            } else {
                dependency.end_writable_export();
            }
        }
    }
}

impl Clone for Owner {
    #[inline]
    fn clone(&self) -> Owner {
        self.add(STRONG, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::Owner;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_thin_pointer_is_a_counted_handle_turned_back_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let owner =
            Owner::with_dependency(Counted(drops.clone()), Owner::new(Counted(drops.clone())));
        let kept = owner.clone();
        let thin = owner.into_thin_raw();
        assert_eq!(kept.strong_count(), 2, "the thin pointer still counts");
        // SAFETY: from `into_thin_raw`, turned back once.
        let back = unsafe { Owner::from_thin_raw(thin) };
        assert!(back.ptr_eq(&kept));
        drop(kept);
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        assert!(back.is_unique());
        drop(back);
        assert_eq!(
            drops.load(Ordering::SeqCst),
            2,
            "each dropped once, with the last handle"
        );
    }

    #[test]
    fn only_a_sole_handle_begins_a_writable_export_alone() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut owner = Owner::new(Counted(drops.clone()));
        let other = owner.clone();
        assert!(
            !owner.try_begin_writable_export_alone(),
            "another handle lives"
        );
        assert_eq!(owner.writable_exports(), 0);
        drop(other);
        let mut wrapper = Owner::with_dependency((), owner.clone());
        assert!(
            !wrapper.try_begin_writable_export_alone(),
            "dependencies: general path"
        );
        drop(wrapper);
        owner.begin_shared_reads().unwrap();
        assert!(owner.try_begin_writable_export_alone());
        assert_eq!(owner.writable_exports(), 1);
        assert!(
            owner.begin_shared_reads().is_err(),
            "no reference while the alias lives"
        );
        owner.release_writable_export();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }
}
