//! Tensors into an Arrow IPC file (readable by pyarrow as `fixed_shape_tensor` columns) and back,
//! without copying on either side of the file.
//!
//! `cargo run --features arrow-ipc --example arrow_ipc`
//!
//! Then, in Python: `pa.ipc.open_file(path).read_all().column("images").combine_chunks()
//! .to_numpy_ndarray()`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    use dlbridge::interop::arrow::*;
    use dlbridge::TensorView;

    let images = TensorView::from_vec((0..4 * 3 * 8).map(|x| x as f32).collect(), &[4, 3, 8])?;
    let labels = TensorView::from_vec(vec![1i64, 0, 3, 2], &[4])?;
    let masks = TensorView::from_vec((0..4 * 8 * 3).map(|x| x as u8).collect(), &[4, 8, 3])?
        .permute(&[0, 2, 1])?; // transposed rows: exported in C order, hence copied
    println!(
        "images  {:?} at {:p}; labels {:?} at {:p}; masks {:?} strides {:?}",
        images.shape(),
        images.data_ptr(),
        labels.shape(),
        labels.data_ptr(),
        masks.shape(),
        masks.strides()
    );

    let batch = record_batch_from_tensors(
        &[("images", &images), ("labels", &labels), ("masks", &masks)],
        &ArrowExportOptions::default().allow_copy(),
    )?;
    for field in batch.schema().fields() {
        println!(
            "column {:8} {} {:?}",
            field.name(),
            field.data_type(),
            field.metadata().get(EXTENSION_METADATA_KEY)
        );
    }

    let path = std::env::temp_dir().join("dlbridge_tensors.arrow");
    ipc::write_file(std::fs::File::create(&path)?, &[batch])?;
    println!(
        "wrote {} ({} bytes)",
        path.display(),
        std::fs::metadata(&path)?.len()
    );

    // Read the whole file into one Arrow buffer and decode without copying: every tensor points
    // into that buffer (a memory-mapped file works the same way).
    let file = arrow_buffer::Buffer::from_vec(std::fs::read(&path)?);
    let range = file.as_ptr() as usize..file.as_ptr() as usize + file.len();
    let batches = ipc::read_file_buffer(file)?;
    for (name, t) in tensors_from_record_batch(&batches[0], &ArrowImportOptions::default())? {
        println!(
            "read {name:8} {:?} {} at {:p} (inside the file buffer: {}, read-only: {})",
            t.shape(),
            t.dtype(),
            t.data_ptr(),
            range.contains(&(t.data_ptr() as usize)),
            t.is_read_only()
        );
    }
    let back = tensors_from_record_batch(&batches[0], &ArrowImportOptions::default())?;
    assert_eq!(back[0].1.to_vec::<f32>()?, images.to_vec::<f32>()?);
    assert_eq!(back[1].1.to_vec::<i64>()?, labels.to_vec::<i64>()?);
    assert_eq!(back[2].1.to_vec::<u8>()?, masks.to_vec::<u8>()?);
    println!("values equal; python: pyarrow.ipc.open_file({path:?}).read_all()");
    Ok(())
}
