//! A C-struct buffer exposed without copying, the way a C++ framework hands its arrays to
//! Python: an array of `Particle { x, y, z: f32, id: u32 }` becomes an (n, 3) float32 tensor of
//! positions (strides (4, 1) in elements) and an (n,) uint32 tensor of ids, both kept alive by
//! the one buffer, exported through DLPack.
//!
//! `cargo run --example c_struct_buffer`

use std::sync::atomic::{AtomicUsize, Ordering};

use dlbridge::{DType, Error, Owner, Parts, TensorView};

#[repr(C)]
struct Particle {
    pos: [f32; 3],
    id: u32,
}

static RELEASED: AtomicUsize = AtomicUsize::new(0);

/// The framework's own buffer type; its drop is what "freeing the C array" means.
struct ParticleBuffer(Vec<Particle>);
impl Drop for ParticleBuffer {
    fn drop(&mut self) {
        RELEASED.fetch_add(1, Ordering::SeqCst);
    }
}

fn main() -> Result<(), Error> {
    let particles: Vec<Particle> = (0..5)
        .map(|i| Particle {
            pos: [i as f32, 10.0 + i as f32, -(i as f32)],
            id: 100 + i,
        })
        .collect();
    let mut buffer = ParticleBuffer(particles);
    let base = buffer.0.as_mut_ptr().cast::<u8>();
    let n = buffer.0.len();
    let start = base as usize;
    let extent = start..start + n * std::mem::size_of::<Particle>();

    // One Owner for the whole buffer; every view below holds a handle to it.
    let owner = Owner::new(buffer);
    let describe = |byte_offset, shape: Vec<usize>, strides, dtype| {
        Parts::contiguous(base, shape, dtype)
            .with_byte_offset(byte_offset)
            .with_strides(strides)
            .with_extent(extent.clone())
    };
    // SAFETY: the Vec<Particle> lives in `owner` (its heap block does not move); `pos` sits at
    // byte 0 and `id` at byte 12 of each 16-byte struct; both layouts stay inside the extent.
    let positions = unsafe {
        TensorView::from_parts(
            describe(0, vec![n, 3], vec![4, 1], DType::F32),
            owner.clone(),
        )?
    };
    // SAFETY: as above.
    let ids = unsafe { TensorView::from_parts(describe(12, vec![n], vec![4], DType::U32), owner)? };

    println!(
        "positions {:?} strides {:?} at {:p}",
        positions.shape(),
        positions.strides(),
        positions.data_ptr()
    );
    println!(
        "ids       {:?} strides {:?} at {:p}",
        ids.shape(),
        ids.strides(),
        ids.data_ptr()
    );
    assert_eq!(positions.data_ptr() as usize, start);
    assert_eq!(ids.to_vec::<u32>()?, vec![100, 101, 102, 103, 104]);
    assert_eq!(
        positions.select(1, 1)?.to_vec::<f32>()?,
        vec![10.0, 11.0, 12.0, 13.0, 14.0]
    );

    // Hand the positions to any DLPack consumer (Python, torch, ...): zero-copy.
    let managed = positions.to_dlpack_versioned();
    drop((positions, ids));
    assert_eq!(
        RELEASED.load(Ordering::SeqCst),
        0,
        "the export keeps the buffer alive"
    );
    let back = TensorView::from_dlpack_versioned(managed)?;
    assert_eq!(back.data_ptr() as usize, start);
    drop(back);
    assert_eq!(RELEASED.load(Ordering::SeqCst), 1);
    println!("buffer released exactly once after the last view");
    Ok(())
}
