//! A Rust buffer goes to PyTorch and back without a copy; torch releases it when done.
//!
//! ```sh
//! source ~/.cache/dlbridge/venv/bin/activate; export LIBTORCH_USE_PYTORCH=1
//! cargo run --features tch --example torch_roundtrip
//! ```

#[cfg(feature = "tch")]
fn main() -> Result<(), dlbridge::Error> {
    use dlbridge::{CopyPolicy, TensorView};
    use tch::Kind;

    // A Vec, described as a 3x4 matrix and transposed (a strided view, no copy).
    let view = TensorView::from_vec((0..12).map(|x| x as f32).collect(), &[3, 4])?.transpose()?;
    println!(
        "view:  shape {:?} strides {:?} at {:p}",
        view.shape(),
        view.strides(),
        view.data_ptr()
    );

    // To torch: same memory, same strides; torch now co-owns the Vec.
    let t = view.to_tch()?;
    println!(
        "torch: shape {:?} strides {:?} at {:p}",
        t.size(),
        t.stride(),
        t.data_ptr()
    );
    drop(view); // the Vec lives on inside torch's storage
    let row_sums = t.sum_dim_intlist(&[1i64][..], false, Kind::Float);
    println!("torch row sums of the transpose: {row_sums}");

    // Back from torch: still the same memory.
    let back = TensorView::from_tch(&t.narrow(0, 1, 2))?;
    println!(
        "back:  shape {:?} strides {:?} at {:p} = {:?}",
        back.shape(),
        back.strides(),
        back.data_ptr(),
        back.to_vec::<f32>()?
    );

    // Read-only memory needs an explicit copy to reach torch.
    static TABLE: [i32; 4] = [1, 2, 3, 4];
    let ro = TensorView::from_static(&TABLE, &[4])?;
    match ro.to_tch() {
        Err(e) => println!("read-only refused: {e}"),
        Ok(_) => unreachable!("torch tensors are writable"),
    }
    let copy = ro.to_tch_with(CopyPolicy::IfNeeded)?;
    println!("read-only copied:  {copy}");
    Ok(())
}

#[cfg(not(feature = "tch"))]
fn main() {
    println!("skipped: build with `--features tch` to run this example");
}
