//! A Rust application receives a tensor from another crate as DLPack and computes on it with
//! ndarray, without copying: the address printed at each hop never changes.
//!
//! `cargo run --features ndarray --example ndarray_compute`

#[cfg(feature = "ndarray")]
fn main() -> Result<(), dlbridge::Error> {
    use dlbridge::{ManagedTensorVersioned, SliceArg, TensorView};
    use ndarray::{Axis, Ix2};

    /// Stands for another crate's API: it only speaks DLPack. It hands out a 4x3 float64
    /// matrix, transposed on its side (column-major in memory), as an owned managed tensor.
    fn producer() -> (ManagedTensorVersioned, usize) {
        let data: Vec<f64> = (0..12).map(f64::from).collect();
        let t = TensorView::from_vec(data, &[3, 4]).expect("shape matches");
        let t = t.transpose().expect("2-d f64 transposes"); // 4x3 view, strides (1, 4): no copy
        let address = t.data_ptr() as usize;
        println!(
            "producer:   data at {address:#x}, shape {:?}, strides {:?}",
            t.shape(),
            t.strides()
        );
        (t.into_dlpack_versioned(), address)
    }

    let (managed, origin) = producer();
    let raw = managed.dl_tensor()?;
    let hop1 = raw.data as usize + raw.byte_offset as usize;
    println!(
        "DLPack:     data at {hop1:#x}, version {:?}",
        managed.version()
    );

    // Import: the managed tensor becomes the owner; its deleter runs when the last view drops.
    let tensor = TensorView::from_dlpack_versioned(managed)?;
    let hop2 = tensor.data_ptr() as usize;
    println!(
        "TensorView: data at {hop2:#x}, strides {:?}",
        tensor.strides()
    );

    // Compute in ndarray on the same memory.
    let matrix = tensor.as_array::<f64, Ix2>()?;
    let hop3 = matrix.as_ptr() as usize;
    println!(
        "ndarray:    data at {hop3:#x}, strides {:?}",
        matrix.strides()
    );
    let column_sums = matrix.sum_axis(Axis(0));
    println!("column sums: {column_sums}");

    // matrix[i][j] = i + 4 j, so column j sums to 6 + 16 j.
    assert_eq!(column_sums.to_vec(), vec![6.0, 22.0, 38.0]);
    assert!(
        [hop1, hop2, hop3].iter().all(|&a| a == origin),
        "a copy was made"
    );

    // A sub-view (every other row) still needs no copy.
    let every_other = tensor.slice(0, SliceArg::step(2))?;
    let sub = every_other.as_array::<f64, Ix2>()?;
    assert_eq!(sub.as_ptr() as usize, origin);
    assert_eq!(sub.sum_axis(Axis(0)).to_vec(), vec![2.0, 10.0, 18.0]);
    println!(
        "every other row summed: {} (same address: {:#x})",
        sub.sum_axis(Axis(0)),
        origin
    );
    Ok(())
}

#[cfg(not(feature = "ndarray"))]
fn main() {
    println!("skipped: run with `--features ndarray`");
}
