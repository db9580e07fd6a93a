//! Helpers shared by the integration tests (each test file includes this module).
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dlbridge::{Element, TensorView};

/// A `Vec` that counts its drops: the owner of a test tensor whose release is watched.
pub struct Counted<T> {
    pub values: Vec<T>,
    pub drops: Arc<AtomicUsize>,
}

impl<T> Counted<T> {
    /// An owner of `values` and its (zeroed) drop counter.
    pub fn new(values: Vec<T>) -> (Counted<T>, Arc<AtomicUsize>) {
        let drops = Arc::new(AtomicUsize::new(0));
        let owner = Counted {
            values,
            drops: drops.clone(),
        };
        (owner, drops)
    }
}

impl<T> AsRef<[T]> for Counted<T> {
    fn as_ref(&self) -> &[T] {
        &self.values
    }
}

impl<T> AsMut<[T]> for Counted<T> {
    fn as_mut(&mut self) -> &mut [T] {
        &mut self.values
    }
}

impl<T> Drop for Counted<T> {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// A writable tensor of `shape` over `values`, owned by a [`Counted`], and its drop counter.
pub fn counted_tensor<T: Element + Send + Sync>(
    values: Vec<T>,
    shape: &[usize],
) -> (TensorView, Arc<AtomicUsize>) {
    let (owner, drops) = Counted::new(values);
    (TensorView::from_owner_mut(owner, shape).unwrap(), drops)
}

/// A read-only tensor of `shape` over `values` (`TensorView::from_owner`), owned by a
/// [`Counted`], and its drop counter.
pub fn counted_read_only_tensor<T: Element + Send + Sync>(
    values: Vec<T>,
    shape: &[usize],
) -> (TensorView, Arc<AtomicUsize>) {
    let (owner, drops) = Counted::new(values);
    (TensorView::from_owner(owner, shape).unwrap(), drops)
}

/// How many times the owner was dropped so far.
pub fn drops(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}
