//! numpy's stride tricks, done in Rust without copying: sliding windows, a moving average over
//! them, broadcasting, and a refused out-of-bounds window.
//!
//! `cargo run --example stride_tricks`

use dlbridge::{Error, Order, TensorView};

fn main() -> Result<(), Error> {
    let signal: Vec<f32> = (0..10).map(|x| (x * x) as f32).collect();
    let t = TensorView::from_vec(signal, &[10])?;

    // Sliding windows of width 3, step 1: shape (8, 3), strides (1, 1); same memory.
    let windows = t.as_strided(&[8, 3], &[1, 1], 0)?;
    assert_eq!(windows.data_ptr(), t.data_ptr());
    let values = windows.to_vec::<f32>()?;
    let means: Vec<f32> = values
        .chunks(3)
        .map(|w| w.iter().sum::<f32>() / 3.0)
        .collect();
    println!(
        "windows {:?} strides {:?} at {:p}",
        windows.shape(),
        windows.strides(),
        windows.data_ptr()
    );
    println!("moving average: {means:?}");
    assert_eq!(means[0], (0.0 + 1.0 + 4.0) / 3.0);

    // Windows of width 4 with hop 2 (shape (4, 4), strides (2, 1)).
    let hops = t.as_strided(&[4, 4], &[2, 1], 0)?;
    assert_eq!(hops.to_vec::<f32>()?[4..8], [4.0, 9.0, 16.0, 25.0]);

    // A window reaching past the end is refused, never read.
    let err = t.as_strided(&[9, 3], &[1, 1], 0).unwrap_err();
    println!("out-of-range window refused: {err}");
    assert!(matches!(err, Error::OutOfBounds(_)));

    // Broadcasting a row to a matrix: stride 0, no copy, until a copy is asked for.
    let row = t.reshape(&[1, 10])?;
    let matrix = row.broadcast_to(&[4, 10])?;
    println!(
        "broadcast {:?} strides {:?} at {:p}",
        matrix.shape(),
        matrix.strides(),
        matrix.data_ptr()
    );
    assert_eq!(matrix.strides(), &[0, 1]);
    assert_eq!(matrix.data_ptr(), t.data_ptr());
    let dense = matrix.to_contiguous(Order::C)?;
    assert!(dense.is_copied() && dense.data_ptr() != t.data_ptr());
    println!(
        "materialised copy at {:p} (is_copied = {})",
        dense.data_ptr(),
        dense.is_copied()
    );
    Ok(())
}
