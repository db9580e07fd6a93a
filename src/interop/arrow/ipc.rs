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

/// Read every record batch of an Arrow IPC file (copied from `reader` into Arrow buffers).
pub fn read_file<R: Read + Seek>(reader: R) -> Result<Vec<RecordBatch>> {
    ::arrow_ipc::reader::FileReader::try_new(reader, None)
        .map_err(arrow_err)?
        .map(|b| b.map_err(arrow_err))
        .collect()
}

/// Read every record batch of an Arrow IPC stream.
pub fn read_stream<R: Read>(reader: R) -> Result<Vec<RecordBatch>> {
    ::arrow_ipc::reader::StreamReader::try_new(reader, None)
        .map_err(arrow_err)?
        .map(|b| b.map_err(arrow_err))
        .collect()
}

/// Decode an Arrow IPC file held in one [`Buffer`] without copying: the arrays (and the tensors
/// read from them) point into `file`, which they keep alive. Pass a buffer over a memory-mapped
/// file (`Buffer::from_custom_allocation` around the mapping) to read tensors straight from disk.
/// Arrays that are misaligned in the file are copied by arrow-ipc into aligned memory.
pub fn read_file_buffer(file: Buffer) -> Result<Vec<RecordBatch>> {
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
        Ok(file.slice_with_length(offset, block_len))
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
