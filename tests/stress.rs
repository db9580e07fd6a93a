//! Concurrency stress: threads clone, slice, export, import and drop views of shared sources
//! (core DLPack, plus ndarray / Arrow / tch when those features are on). Every source has an
//! owner whose drops are counted: each must end at exactly 1, and values must read right on
//! every thread. Loops are bounded by count and by time (a few seconds per test).

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

use dlbridge::ffi::{
    DLDataType, DLDataTypeCode, DLDevice, DLDeviceType, DLManagedTensorVersioned, DLPackVersion,
    DLTensor,
};
use dlbridge::{Error, ManagedTensorLegacy, ManagedTensorVersioned, Order, SliceArg, TensorView};

const THREADS: usize = 4;
const ROUNDS: usize = 3_000;
const BUDGET: Duration = Duration::from_secs(4);

/// Owns `values` and counts its own drops.
mod common;

/// A `[rows, cols]` i64 tensor holding `0..rows*cols`, with a drop counter on its owner.
fn counted(rows: usize, cols: usize) -> (TensorView, Arc<AtomicUsize>) {
    common::counted_tensor((0..(rows * cols) as i64).collect(), &[rows, cols])
}

/// Run `f(thread index, deadline)` on `THREADS` scoped threads released together.
fn run(f: impl Fn(usize, Instant) + Sync) {
    let barrier = Barrier::new(THREADS);
    let deadline = Instant::now() + BUDGET;
    std::thread::scope(|s| {
        for i in 0..THREADS {
            let (f, barrier) = (&f, &barrier);
            s.spawn(move || {
                barrier.wait();
                f(i, deadline)
            });
        }
    });
}

/// A tiny deterministic generator (no extra dependency).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

fn at(t: &TensorView, index: &[usize]) -> i64 {
    let off = t.offset_of(index).unwrap();
    // SAFETY: `offset_of` checked the index against the shape; the view is host i64 memory
    // kept alive by `t`'s owner, and i64 reads of it are aligned (checked by the tests' dtype).
    unsafe { *t.data_ptr().offset(off).cast::<i64>() }
}

#[test]
fn views_and_dlpack_round_trips_across_threads() {
    let (src, drops) = counted(64, 32);
    let base = src.data_ptr() as usize;
    let done = AtomicUsize::new(0);
    run(|i, deadline| {
        let mut rng = Lcg(i as u64 + 1);
        let mut held: Vec<TensorView> = Vec::new();
        for _ in 0..ROUNDS {
            if Instant::now() > deadline {
                break;
            }
            let (r, c) = (rng.next(64), rng.next(32));
            let v = match rng.next(9) {
                0 => src.clone(),
                1 => src
                    .slice(0, SliceArg::step(-3))
                    .unwrap()
                    .slice(1, SliceArg::step(2))
                    .unwrap(),
                2 => src.transpose().unwrap(),
                3 => src.reshape_infer(&[Some(32), None]).unwrap(),
                4 => TensorView::from_dlpack_versioned(src.to_dlpack_versioned()).unwrap(),
                5 => TensorView::from_dlpack_legacy(src.to_dlpack_legacy().unwrap()).unwrap(),
                6 => {
                    // Through a raw pointer, as a C consumer would hold it.
                    let raw = src.transpose().unwrap().into_dlpack_versioned().into_raw();
                    // SAFETY: `raw` is a live managed tensor we own, taken back once.
                    let m = unsafe { ManagedTensorVersioned::from_raw(raw) }.unwrap();
                    TensorView::from_dlpack_versioned(m).unwrap()
                }
                7 => src
                    .broadcast_to(&[2, 64, 32])
                    .unwrap()
                    .select(0, 1)
                    .unwrap(),
                _ => {
                    let c = src.slice(0, SliceArg::range(8, 16)).unwrap();
                    let copy = c.to_contiguous(Order::F).unwrap();
                    assert!(copy.is_copied() && copy.data_ptr() != c.data_ptr());
                    assert_eq!(at(&copy, &[1, 2]), 9 * 32 + 2);
                    continue;
                }
            };
            // Check a value through the view's own indexing, whatever its layout.
            let idx: Vec<usize> = v
                .shape()
                .iter()
                .enumerate()
                .map(|(d, &n)| [r, c][d % 2] % n.max(1))
                .collect();
            let off = v.offset_of(&idx).unwrap();
            // SAFETY: `offset_of` is in bounds; the address lies inside `src`'s buffer.
            let addr = unsafe { v.data_ptr().offset(off) } as usize;
            let flat = (addr - base) / 8;
            assert_eq!(at(&v, &idx), flat as i64);
            assert!(
                v.owner().ptr_eq(src.owner()),
                "every view shares the one owner"
            );
            held.push(v);
            if held.len() > 32 {
                held.drain(..rng.next(32));
            }
        }
        done.fetch_add(1, SeqCst);
    });
    assert_eq!(done.load(SeqCst), THREADS);
    assert_eq!(drops.load(SeqCst), 0);
    assert_eq!(
        src.owner().strong_count(),
        1,
        "every thread's handle was released"
    );
    drop(src);
    assert_eq!(drops.load(SeqCst), 1);
}

#[test]
fn exports_cross_threads_through_channels() {
    // Producers export, consumers on other threads import and drop (deleters run elsewhere).
    let sources: Vec<(TensorView, Arc<AtomicUsize>)> = (0..3).map(|_| counted(16, 16)).collect();
    let views: Vec<TensorView> = sources.iter().map(|(t, _)| t.clone()).collect();
    let (tx, rx) = mpsc::sync_channel::<(usize, usize, bool)>(64);
    let rx = std::sync::Mutex::new(rx);
    let received = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for p in 0..2 {
            let (tx, views) = (tx.clone(), &views);
            s.spawn(move || {
                let mut rng = Lcg(p + 7);
                let deadline = Instant::now() + BUDGET;
                for _ in 0..ROUNDS {
                    if Instant::now() > deadline {
                        break;
                    }
                    let k = rng.next(3);
                    let v = views[k].slice(0, SliceArg::range(1, 15)).unwrap();
                    let legacy = rng.next(2) == 0;
                    let raw = if legacy {
                        v.to_dlpack_legacy().unwrap().into_raw() as usize
                    } else {
                        v.to_dlpack_versioned().into_raw() as usize
                    };
                    tx.send((k, raw, legacy)).unwrap();
                }
            });
        }
        drop(tx);
        for _ in 0..2 {
            let (rx, received) = (&rx, &received);
            s.spawn(move || loop {
                let msg = rx.lock().unwrap().recv();
                let Ok((k, raw, legacy)) = msg else { break };
                // SAFETY: each raw pointer was exported once and is taken back exactly once.
                let t = unsafe {
                    if legacy {
                        TensorView::from_dlpack_legacy(
                            ManagedTensorLegacy::from_raw(raw as *mut _).unwrap(),
                        )
                    } else {
                        TensorView::from_dlpack_versioned(
                            ManagedTensorVersioned::from_raw(raw as *mut _).unwrap(),
                        )
                    }
                }
                .unwrap();
                assert_eq!(t.shape(), &[14, 16]);
                assert_eq!(at(&t, &[0, 3]), 16 + 3, "source {k}");
                received.fetch_add(1, SeqCst);
            });
        }
    });
    assert!(received.load(SeqCst) > 0);
    drop(views);
    for (t, drops) in sources {
        assert_eq!(drops.load(SeqCst), 0);
        assert_eq!(t.owner().strong_count(), 1);
        drop(t);
        assert_eq!(drops.load(SeqCst), 1);
    }
}

/// A foreign (not dlbridge-made) managed tensor whose deleter counts its calls.
struct Foreign {
    managed: DLManagedTensorVersioned,
    shape: [i64; 1],
    strides: [i64; 1],
    data: Vec<f64>,
    calls: Arc<AtomicUsize>,
}

unsafe extern "C" fn foreign_deleter(m: *mut DLManagedTensorVersioned) {
    // SAFETY: `manager_ctx` is the boxed `Foreign` made by `foreign`, freed here exactly once.
    let ctx = unsafe { Box::from_raw((*m).manager_ctx.cast::<Foreign>()) };
    ctx.calls.fetch_add(1, SeqCst);
}

fn foreign(n: usize) -> (ManagedTensorVersioned, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut f = Box::new(Foreign {
        managed: DLManagedTensorVersioned {
            version: DLPackVersion { major: 1, minor: 3 },
            manager_ctx: std::ptr::null_mut(),
            deleter: Some(foreign_deleter),
            flags: dlpark::DlpackFlags::empty(),
            dl_tensor: DLTensor {
                data: std::ptr::null_mut(),
                device: DLDevice {
                    device_type: DLDeviceType::CPU,
                    device_id: 0,
                },
                ndim: 1,
                dtype: DLDataType {
                    code: DLDataTypeCode::FLOAT,
                    bits: 64,
                    lanes: 1,
                },
                shape: std::ptr::null_mut(),
                strides: std::ptr::null_mut(),
                byte_offset: 0,
            },
        },
        shape: [n as i64],
        strides: [1],
        data: (0..n).map(|x| x as f64).collect(),
        calls: calls.clone(),
    });
    f.managed.dl_tensor.data = f.data.as_mut_ptr().cast::<c_void>();
    f.managed.dl_tensor.shape = f.shape.as_mut_ptr();
    f.managed.dl_tensor.strides = f.strides.as_mut_ptr();
    let raw = Box::into_raw(f);
    // SAFETY: `raw` is live; its first field is the managed tensor, whose context points back.
    unsafe {
        (*raw).managed.manager_ctx = raw.cast::<c_void>();
        let m = ManagedTensorVersioned::from_raw(std::ptr::addr_of_mut!((*raw).managed)).unwrap();
        (m, calls)
    }
}

#[test]
fn foreign_tensor_shared_by_threads_deleted_once() {
    for _ in 0..20 {
        let (m, calls) = foreign(1000);
        let t = TensorView::from_dlpack_versioned(m).unwrap();
        run(|i, deadline| {
            let mut kept = Vec::new();
            for k in 0..200 {
                if Instant::now() > deadline {
                    break;
                }
                let v = t.slice(0, SliceArg::step(i as isize + 1)).unwrap();
                // Re-export and re-import: our export wraps the foreign owner.
                let back = TensorView::from_dlpack_versioned(v.to_dlpack_versioned()).unwrap();
                assert_eq!(back.to_vec::<f64>().unwrap()[3], (3 * (i + 1)) as f64);
                if k % 7 == 0 {
                    kept.push(back.to_dlpack_versioned());
                }
            }
        });
        assert_eq!(calls.load(SeqCst), 0);
        drop(t);
        assert_eq!(calls.load(SeqCst), 1);
    }
}

#[test]
fn mutable_access_is_exclusive_under_contention() {
    let (src, drops) = counted(8, 8);
    let wins = AtomicUsize::new(0);
    run(|_, deadline| {
        for _ in 0..ROUNDS {
            if Instant::now() > deadline {
                break;
            }
            let mut v = src.clone();
            // `src` is alive, so no clone may ever get mutable access.
            match v.as_mut_slice::<i64>() {
                Err(Error::NotUnique(n)) => assert!(n >= 1),
                Ok(_) => {
                    wins.fetch_add(1, SeqCst);
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
    });
    assert_eq!(wins.load(SeqCst), 0);
    let mut src = src;
    src.as_mut_slice::<i64>().unwrap()[0] = -1; // alone again: allowed
    drop(src);
    assert_eq!(drops.load(SeqCst), 1);
}

#[cfg(feature = "ndarray")]
#[test]
fn ndarray_views_across_threads() {
    use ndarray::{ArcArray, Array2, Ix2, IxDyn};

    let (src, drops) = counted(32, 32);
    let arc = ArcArray::from_shape_fn((16, 16), |(r, c)| (r * 16 + c) as f32);
    let shared = TensorView::from_arc_array(arc.clone()).unwrap();
    let owned_drops = AtomicUsize::new(0);
    run(|i, deadline| {
        for k in 0..ROUNDS / 4 {
            if Instant::now() > deadline {
                break;
            }
            let a = src.as_array::<i64, Ix2>().unwrap();
            assert_eq!(a[[i, 5]], (i * 32 + 5) as i64);
            let tv = src.transpose().unwrap();
            let b = tv.as_array::<i64, IxDyn>().unwrap();
            assert_eq!(b[[5, i]], (i * 32 + 5) as i64);
            let s = shared.as_array::<f32, Ix2>().unwrap();
            assert_eq!(s[[i, 1]], (i * 16 + 1) as f32);
            // An owned array moved into a view, exported and re-imported on this thread.
            let arr = Array2::<i64>::from_elem((4, 4), k as i64);
            let v = TensorView::from_ndarray(arr).unwrap();
            let back = TensorView::from_dlpack_versioned(v.to_dlpack_versioned()).unwrap();
            drop(v);
            let owned = back.to_owned_array::<i64, Ix2>().unwrap();
            assert!(owned.iter().all(|&x| x == k as i64));
            owned_drops.fetch_add(1, SeqCst);
        }
    });
    assert!(owned_drops.load(SeqCst) > 0);
    assert!(!arc.is_unique());
    drop(shared);
    assert!(
        arc.is_unique(),
        "the ArcArray handle of the view was released"
    );
    drop(src);
    assert_eq!(drops.load(SeqCst), 1);
}

#[cfg(feature = "arrow")]
#[test]
fn arrow_columns_across_threads() {
    use dlbridge::CopyPolicy;

    let (src, drops) = counted(64, 8);
    let column = src.to_arrow(&Default::default()).unwrap();
    let buffer = src.to_arrow_buffer(CopyPolicy::Never).unwrap();
    run(|i, deadline| {
        for _ in 0..ROUNDS / 4 {
            if Instant::now() > deadline {
                break;
            }
            let back =
                TensorView::from_arrow(&column.field, column.array.as_ref(), &Default::default())
                    .unwrap();
            assert_eq!(back.data_ptr(), src.data_ptr());
            assert!(back.is_read_only());
            assert_eq!(at(&back, &[i, 3]), (i * 8 + 3) as i64);
            let sliced = column.array.slice(i, 2);
            let part = TensorView::from_arrow(&column.field, sliced.as_ref(), &Default::default())
                .unwrap();
            assert_eq!(at(&part, &[1, 0]), ((i + 1) * 8) as i64);
            let b = buffer.clone();
            let flat =
                TensorView::from_arrow_buffer(&b, dlbridge::DType::I64, &[512], CopyPolicy::Never)
                    .unwrap();
            let again = flat
                .reshape(&[8, 64])
                .unwrap()
                .to_arrow(&Default::default())
                .unwrap();
            drop((b, flat));
            let x = TensorView::from_arrow(&again.field, again.array.as_ref(), &Default::default())
                .unwrap();
            assert_eq!(at(&x, &[1, i]), (64 + i) as i64);
        }
    });
    drop((column, buffer));
    assert_eq!(drops.load(SeqCst), 0);
    drop(src);
    assert_eq!(drops.load(SeqCst), 1);
}

#[cfg(feature = "tch")]
#[test]
fn tch_tensors_across_threads() {
    let (src, drops) = counted(16, 16);
    run(|i, deadline| {
        for _ in 0..ROUNDS / 10 {
            if Instant::now() > deadline {
                break;
            }
            let t = src.to_tch().unwrap();
            assert_eq!(t.data_ptr() as *const u8, src.data_ptr());
            assert_eq!(t.int64_value(&[i as i64, 2]), (i * 16 + 2) as i64);
            let tt = t.transpose(0, 1);
            drop(t);
            let back = TensorView::from_tch(&tt).unwrap();
            assert_eq!(back.strides(), &[1, 16]);
            assert_eq!(at(&back, &[2, i]), (i * 16 + 2) as i64);
        }
    });
    assert_eq!(drops.load(SeqCst), 0);
    drop(src);
    assert_eq!(drops.load(SeqCst), 1);
}
