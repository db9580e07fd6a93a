//! Arrow IPC files and streams of record batches (feature `arrow-ipc`).

use std::io::{Read, Seek, Write};
use std::sync::Arc;

use ::arrow_array::RecordBatch;
use ::arrow_buffer::Buffer;
use ::arrow_schema::Schema;

use super::arrow_err;
use crate::{Error, Result};

fn schema_of(batches: &[RecordBatch]) -> Result<Arc<Schema>> {
    let schema = batches
        .first()
        .ok_or_else(|| Error::NothingToWrite("an Arrow IPC file or stream needs a record batch"))?
        .schema();
    Ok(schema)
}

/// Write record batches (all with the first one's schema) as an Arrow IPC file.
pub fn write_file<W: Write>(writer: W, batches: &[RecordBatch]) -> Result<()> {
    let schema = schema_of(batches)?;
    let mut w = ::arrow_ipc::writer::FileWriter::try_new(writer, &schema).map_err(arrow_err)?;
    for b in batches {
        w.write(b).map_err(arrow_err)?;
    }
    w.finish().map_err(arrow_err)
}

/// Write record batches (all with the first one's schema) as an Arrow IPC stream.
pub fn write_stream<W: Write>(writer: W, batches: &[RecordBatch]) -> Result<()> {
    let schema = schema_of(batches)?;
    let mut w = ::arrow_ipc::writer::StreamWriter::try_new(writer, &schema).map_err(arrow_err)?;
    for b in batches {
        w.write(b).map_err(arrow_err)?;
    }
    w.finish().map_err(arrow_err)
}

/// Read every record batch of an Arrow IPC file (copied from `reader` into one Arrow buffer
/// of the file's size, which the batches then share).
///
/// arrow-ipc's own `FileReader` sizes each block's buffer from the footer before reading it, so
/// a corrupt footer claiming terabytes can abort the process (apache/arrow-rs#10921); here every
/// block is checked against the bytes actually read first ([`read_file_buffer`]).
pub fn read_file<R: Read + Seek>(mut reader: R) -> Result<Vec<RecordBatch>> {
    let io = |e: std::io::Error| Error::Foreign(crate::ForeignError::new("io", e));
    let len = reader.seek(std::io::SeekFrom::End(0)).map_err(io)?;
    reader.seek(std::io::SeekFrom::Start(0)).map_err(io)?;
    let len = usize::try_from(len).map_err(|_| Error::Overflow("Arrow IPC file length"))?;
    let mut file = ::arrow_buffer::MutableBuffer::from_len_zeroed(len);
    reader.read_exact(file.as_slice_mut()).map_err(io)?;
    read_file_buffer(file.into())
}

/// Read every record batch of an Arrow IPC stream (read into memory first).
///
/// arrow-ipc's `StreamReader` allocates each message body from its declared length before
/// reading it, so a corrupt length can abort the process (apache/arrow-rs#10521): every message's
/// lengths and buffers are checked against the bytes actually read before it decodes them.
pub fn read_stream<R: Read>(mut reader: R) -> Result<Vec<RecordBatch>> {
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Foreign(crate::ForeignError::new("io", e)))?;
    check_stream_messages(&bytes)
        .map_err(|m| Error::MalformedArrow(format!("not an Arrow IPC stream: {m}")))?;
    without_panics(|| {
        ::arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(&bytes[..]), None)
            .map_err(arrow_err)?
            .map(|b| b.map_err(arrow_err))
            .collect()
    })
}

/// Walk the messages of an IPC stream: each prefix, metadata and body lies inside `bytes`, and
/// each buffer inside its body (see [`check_block_buffers`]).
fn check_stream_messages(bytes: &[u8]) -> std::result::Result<(), String> {
    let mut pos = 0usize;
    while pos < bytes.len() {
        let word = |at: usize| -> std::result::Result<u32, String> {
            bytes
                .get(at..at + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| format!("a message prefix cut off at byte {at}"))
        };
        let (prefix, meta_len) = match word(pos)? {
            0xffff_ffff => (8, word(pos + 4)?),
            legacy => (4, legacy),
        };
        if meta_len == 0 {
            return Ok(()); // end-of-stream marker
        }
        let meta_len =
            usize::try_from(i32::try_from(meta_len).map_err(|_| "negative metadata length")?)
                .map_err(|_| "negative metadata length")?;
        let meta_end = pos
            .checked_add(prefix + meta_len)
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| format!("a message of {meta_len} metadata bytes past the end"))?;
        let message = ::arrow_ipc::root_as_message(&bytes[pos + prefix..meta_end])
            .map_err(|e| format!("unreadable message: {e}"))?;
        let body_len = usize::try_from(message.bodyLength()).map_err(|_| "negative body length")?;
        let end = meta_end
            .checked_add(body_len)
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| format!("a message body of {body_len} bytes past the end"))?;
        check_message_buffers(&message, body_len)?;
        pos = end;
    }
    Ok(())
}

/// arrow-ipc 60 (and arrow-data's validation under it) panics on some malformed input (a buffer
/// outside its message body is sliced with an assertion; a fixed-size list whose length
/// overflows is an `expect`): such a panic is reported as [`Error::MalformedArrow`]. The
/// readers hold no state of ours across the unwind, so nothing is left half-updated.
fn without_panics<T>(read: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).unwrap_or_else(|panic| {
        let message = super::c_data::panic_message(panic.as_ref());
        Err(Error::MalformedArrow(format!(
            "unreadable Arrow IPC data: {message}"
        )))
    })
}

/// Decode an Arrow IPC file held in one [`Buffer`] without copying: the arrays (and the tensors
/// read from them) point into `file`, which they keep alive. Pass a buffer over a memory-mapped
/// file (`Buffer::from_custom_allocation` around the mapping) to read tensors straight from disk.
/// Arrays that are misaligned in the file are copied by arrow-ipc into aligned memory.
pub fn read_file_buffer(file: Buffer) -> Result<Vec<RecordBatch>> {
    without_panics(|| decode_file_buffer(file))
}

fn decode_file_buffer(file: Buffer) -> Result<Vec<RecordBatch>> {
    use ::arrow_ipc::reader::{read_footer_length, FileDecoder};
    let invalid = |m: &str| Error::MalformedArrow(format!("not an Arrow IPC file: {m}"));
    let len = file.len();
    if len < 10 {
        return Err(invalid("too short"));
    }
    let trailer: [u8; 10] = file[len - 10..]
        .try_into()
        .map_err(|_| invalid("bad trailer"))?;
    let footer_len = read_footer_length(trailer).map_err(arrow_err)?;
    let footer_start = (len - 10)
        .checked_sub(footer_len)
        .ok_or_else(|| invalid("footer longer than the file"))?;
    let footer = ::arrow_ipc::root_as_footer(&file[footer_start..len - 10])
        .map_err(|e| invalid(&e.to_string()))?;
    let schema = ::arrow_ipc::convert::try_fb_to_schema(
        footer.schema().ok_or_else(|| invalid("no schema"))?,
    )
    .map_err(arrow_err)?;
    let mut decoder = FileDecoder::new(Arc::new(schema), footer.version());
    let block_data = |block: &::arrow_ipc::Block| -> Result<Buffer> {
        let offset = usize::try_from(block.offset()).map_err(|_| invalid("negative offset"))?;
        let block_len = usize::try_from(block.bodyLength())
            .ok()
            .zip(usize::try_from(block.metaDataLength()).ok())
            .and_then(|(b, m)| b.checked_add(m))
            .ok_or_else(|| invalid("bad block length"))?;
        if offset
            .checked_add(block_len)
            .is_none_or(|e| e > footer_start)
        {
            return Err(invalid("block outside the file"));
        }
        let data = file.slice_with_length(offset, block_len);
        check_block_buffers(&data, block).map_err(|m| invalid(&m))?;
        Ok(data)
    };
    for block in footer.dictionaries().iter().flatten() {
        decoder
            .read_dictionary(block, &block_data(block)?)
            .map_err(arrow_err)?;
    }
    let mut batches = Vec::new();
    for block in footer.recordBatches().iter().flatten() {
        if let Some(batch) = decoder
            .read_record_batch(block, &block_data(block)?)
            .map_err(arrow_err)?
        {
            batches.push(batch);
        }
    }
    Ok(batches)
}

/// What arrow-ipc 60 trusts in a block and panics on (slicing past the end) instead of
/// reporting: a message prefix shorter than 8 bytes, and buffers outside the message body.
/// Checked here first, so a malformed file is an error, never a panic.
fn check_block_buffers(data: &[u8], block: &::arrow_ipc::Block) -> std::result::Result<(), String> {
    let meta_len =
        usize::try_from(block.metaDataLength()).map_err(|_| "negative metadata length")?;
    if meta_len < 8 || meta_len > data.len() {
        return Err(format!("a message of {meta_len} metadata bytes"));
    }
    let body_len = data.len() - meta_len;
    let flatbuffer = if data[..4] == [0xff; 4] {
        &data[8..meta_len]
    } else {
        &data[4..meta_len]
    };
    let message =
        ::arrow_ipc::root_as_message(flatbuffer).map_err(|e| format!("unreadable message: {e}"))?;
    check_message_buffers(&message, body_len)
}

/// Every buffer of a record-batch or dictionary message lies inside its `body_len`-byte body.
fn check_message_buffers(
    message: &::arrow_ipc::Message<'_>,
    body_len: usize,
) -> std::result::Result<(), String> {
    let buffers = match message.header_type() {
        ::arrow_ipc::MessageHeader::RecordBatch => message
            .header_as_record_batch()
            .and_then(|batch| batch.buffers()),
        ::arrow_ipc::MessageHeader::DictionaryBatch => message
            .header_as_dictionary_batch()
            .and_then(|dict| dict.data())
            .and_then(|batch| batch.buffers()),
        _ => None,
    };
    for buffer in buffers.iter().flatten() {
        let inside = usize::try_from(buffer.offset())
            .ok()
            .zip(usize::try_from(buffer.length()).ok())
            .and_then(|(offset, len)| offset.checked_add(len))
            .is_some_and(|end| end <= body_len);
        if !inside {
            return Err(format!(
                "a buffer at {}..+{} outside the {body_len}-byte message body",
                buffer.offset(),
                buffer.length()
            ));
        }
    }
    Ok(())
}

/// Field metadata key marking a column that holds one whole tensor as its single row (the
/// layout of [`save_tensor_file`]): reading drops the row axis again.
pub const WHOLE_TENSOR_KEY: &str = "dlbridge.whole_tensor";

/// Write named tensors as an Arrow IPC file of one record batch with one row: each tensor is
/// one column holding the whole tensor as that row, an `arrow.fixed_shape_tensor` whose `shape`
/// is the tensor's (a 0-d tensor: a primitive column of its one value), marked with
/// [`WHOLE_TENSOR_KEY`]. So tensors of any shapes share
/// one file, and pyarrow shows each column's dtype and shape. Non-contiguous tensors and
/// booleans are copied (Arrow bit-packs booleans). Written to a temporary file renamed into
/// place, so a mapping of an older `path` is never truncated under its views.
pub fn save_tensor_file(
    path: impl AsRef<std::path::Path>,
    tensors: &[(&str, &crate::TensorView)],
) -> Result<()> {
    use ::arrow_array::RecordBatchOptions;
    let path = path.as_ref();
    let mut fields = Vec::with_capacity(tensors.len());
    let mut arrays = Vec::with_capacity(tensors.len());
    for &(name, tensor) in tensors {
        let (row, whole) = if tensor.ndim() == 0 {
            (tensor.reshape(&[1])?, "scalar")
        } else {
            (tensor.unsqueeze(0)?, "row")
        };
        let opts = super::ArrowExportOptions::named(name).allow_copy();
        let super::TensorColumn { field, array } = row.to_arrow(&opts)?;
        let mut metadata = field.metadata().clone();
        metadata.insert(WHOLE_TENSOR_KEY.to_string(), whole.to_string());
        fields.push(field.with_metadata(metadata));
        arrays.push(array);
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new_with_options(
        schema.clone(),
        arrays,
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )
    .map_err(arrow_err)?;
    crate::files::write_replacing(path, |file| {
        let mut w = ::arrow_ipc::writer::FileWriter::try_new(file, &schema).map_err(arrow_err)?;
        w.write(&batch).map_err(arrow_err)?;
        w.finish().map_err(arrow_err)
    })
}

/// Views of every column of a mapped Arrow IPC file (one record batch), in schema order: whole
/// tensors written by [`save_tensor_file`] with their own shape, other columns as
/// [`crate::TensorView::from_arrow`] reads them (`[rows, *shape]`).
pub(crate) fn views_of(
    file: &Arc<crate::files::MappedFile>,
) -> Result<Vec<(String, crate::TensorView)>> {
    use crate::files::{malformed, FileFormat};
    let len = file.bytes().len();
    let base = std::ptr::NonNull::new(file.base())
        .ok_or_else(|| malformed(FileFormat::ArrowIpc, "empty file"))?;
    // SAFETY: the mapping is `len` readable bytes from `base`, valid while the allocation
    // handle (the mapping itself) lives, which the buffer keeps.
    let buffer = unsafe { Buffer::from_custom_allocation(base, len, file.clone()) };
    let batches = read_file_buffer(buffer).map_err(|e| match e {
        Error::Foreign(reason) => Error::MalformedFile {
            format: FileFormat::ArrowIpc.name(),
            reason,
        },
        Error::MalformedArrow(reason) => malformed(FileFormat::ArrowIpc, reason),
        other => other,
    })?;
    let batch = match batches.as_slice() {
        [one] => one,
        [] => return Ok(Vec::new()),
        _ => {
            return Err(Error::UnsupportedTensor(
                "an Arrow IPC file of several record batches holds no single tensor per \
                 column (read it with interop::arrow::ipc::read_file_buffer)",
            ))
        }
    };
    let schema = batch.schema();
    let opts = super::ArrowImportOptions::allow_copy();
    let mut views = Vec::with_capacity(batch.num_columns());
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        let view = crate::TensorView::from_arrow(field, array.as_ref(), &opts)?;
        let view = match field.metadata().get(WHOLE_TENSOR_KEY).map(String::as_str) {
            None => view,
            Some("scalar") if view.shape() == [1] => view.reshape(&[])?,
            Some("row") if view.shape().first() == Some(&1) => view.squeeze_axis(0)?,
            Some(other) => {
                return Err(malformed(
                    FileFormat::ArrowIpc,
                    format!(
                        "column {:?} is marked {WHOLE_TENSOR_KEY}={other:?} but has shape {:?}",
                        field.name(),
                        view.shape()
                    ),
                ))
            }
        };
        views.push((field.name().clone(), view));
    }
    Ok(views)
}
