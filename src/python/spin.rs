//! The locks of the module's two process-wide tables (the borrow registry, the per-type
//! cache), taken on every tensor argument and every import.
//!
//! Their critical sections are a short search and at most a memmove or an allocation, and they
//! run no Python code. Where the interpreter has a GIL, every thread that reaches them holds it,
//! and the GIL alone keeps them apart: [`GilLock`] then costs no atomic operation at all. A
//! free-threaded build has no GIL to lean on; there a [`SpinLock`] guards them.
//! `std::sync::Mutex` costs two atomic read-modify-writes per section (lock, and unlock to
//! check for waiters); the spin lock costs one, and unlocking is a plain release store. A
//! waiter spins briefly, then yields its time slice.
//!
//! Profiles of a numpy argument (two sections: borrow and release) showed the spin lock's
//! atomics as a sixth of its cost on this crate's 2-core benchmark machine, and the GIL path as
//! none.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

/// `T` behind a spin lock; reached through [`SpinLock::with`], or through
/// [`SpinLock::with_unlocked`] by users that exclude each other by other means (never both for
/// one lock).
pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: `value` is reached only inside `with`, which holds the lock, or inside
// `with_unlocked`, whose callers guarantee exclusion: one thread at a time touches it, so sharing
// the lock is as safe as sending `T`.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub(crate) const fn new(value: T) -> SpinLock<T> {
        SpinLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Run `f` on the value with the lock held (released on unwind too).
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut spins = 0u32;
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.locked.load(Ordering::Relaxed) {
                spins = spins.saturating_add(1);
                if spins < 100 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
        struct Unlock<'a>(&'a AtomicBool);
        impl Drop for Unlock<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _unlock = Unlock(&self.locked);
        // SAFETY: this thread holds the lock until `_unlock` drops, after `f` returns: no other
        // reference to the value exists meanwhile.
        f(unsafe { &mut *self.value.get() })
    }

    /// Run `f` on the value without taking the lock.
    ///
    /// # Safety
    /// No other thread reaches the value meanwhile: every user of this lock holds one other
    /// lock (the GIL) around every call, and none takes this one.
    #[inline]
    pub(crate) unsafe fn with_unlocked<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: exclusive by the caller's contract.
        f(unsafe { &mut *self.value.get() })
    }
}

/// Whether this interpreter has a GIL that keeps attached threads apart: always before Python
/// 3.13, and on 3.13+ unless it is a free-threaded build (`Py_GIL_DISABLED`; its GIL, even
/// when switched on, is not relied upon). Decided once per copy of dlbridge (every copy in a
/// process decides the same). A `PyOnceLock`: the first answer runs Python code, which may let
/// another thread take the GIL and ask too.
pub(crate) fn gil_serializes(py: Python<'_>) -> bool {
    static SERIALIZES: PyOnceLock<bool> = PyOnceLock::new();
    *SERIALIZES.get_or_init(py, || {
        let free_threaded = || -> PyResult<bool> {
            let sys = py.import("sys")?;
            // `sys._is_gil_enabled` exists from 3.13, the first version with free-threaded
            // builds; before that every build has a GIL.
            if !sys.hasattr("_is_gil_enabled")? {
                return Ok(false);
            }
            let flag = py
                .import("sysconfig")?
                .call_method1("get_config_var", ("Py_GIL_DISABLED",))?;
            flag.is_truthy()
        };
        // An interpreter that cannot say is taken for free-threaded: the spin lock is correct
        // everywhere, the GIL path only where there is a GIL.
        matches!(free_threaded(), Ok(false))
    })
}

/// `T` reached by threads attached to the interpreter, one at a time: ordered by the GIL alone
/// where it has one ([`gil_serializes`]), by a spin lock where it has not.
pub(crate) struct GilLock<T> {
    lock: SpinLock<T>,
}

impl<T> GilLock<T> {
    pub(crate) const fn new(value: T) -> GilLock<T> {
        GilLock {
            lock: SpinLock::new(value),
        }
    }

    /// Run `f` on the value, from a thread attached to the interpreter (`py`).
    ///
    /// # Safety
    /// `f` does not release the GIL (it runs no Python code and no `py.detach`; dropping
    /// Python objects counts, since a destructor is Python code) and does not reach this lock
    /// again: where the GIL is the only guard, either would let another thread in.
    #[inline]
    pub(crate) unsafe fn with<R>(&self, py: Python<'_>, f: impl FnOnce(&mut T) -> R) -> R {
        if gil_serializes(py) {
            // SAFETY: this thread holds the GIL (`py`) and keeps it until `f` returns (the
            // caller's contract); every call reaches the value through here with the GIL held,
            // and in a process with a GIL `gil_serializes` is true for all of them.
            unsafe { self.lock.with_unlocked(f) }
        } else {
            self.lock.with(f)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SpinLock;

    #[test]
    fn threads_take_turns() {
        let lock = SpinLock::new(0u64);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        lock.with(|n| *n += 1);
                    }
                });
            }
        });
        assert_eq!(lock.with(|n| *n), 40_000);
    }
}
