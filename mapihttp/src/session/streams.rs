//! Property streams (MS-OXCROPS 2.2.9): message properties too large for one ROP are
//! written with RopOpenStream, RopWriteStream and RopCommitStream, and read with
//! RopOpenStream and RopReadStream after the server returned them as ecMAPIOOM.
//!
//! A stream contains the property's bytes: UTF-16LE code units without a terminator for
//! PtypString, the bytes for PtypString8 and PtypBinary.

use super::batch::{Batch, HandleRef};
use super::ops;
use super::{MapiSession, Replay, SessionError};
use crate::prop::{PropTag, PropType, PropValue, TaggedValue};
use crate::rop::{ResponseBody, RopRequest};

/// ecMAPIOOM: the server returns it in place of a value too large to return inline.
pub(super) const NOT_ENOUGH_MEMORY: u32 = 0x8007_000E;
/// Values larger than this, in stream bytes, are written through a stream. It keeps a
/// RopSetProperties well below the 32 KiB of one request buffer.
pub(super) const STREAM_THRESHOLD: usize = 0x3000;
/// The bytes of one RopWriteStream: with its ROP header, two fit in one request buffer.
const WRITE_CHUNK: usize = 0x3800;
/// The ByteCount of each RopReadStream.
const READ_CHUNK: u16 = 0x7000;
/// OpenModeFlags: read only.
const READ_ONLY: u8 = 0x00;
/// OpenModeFlags: create the property empty, or truncate it, and open it for writing.
const CREATE: u8 = 0x02;

/// Returns the stream bytes of a value, or `None` for a type streams do not carry.
pub(super) fn stream_bytes(value: &PropValue) -> Option<Vec<u8>> {
    match value {
        PropValue::Unicode(text) => Some(text.encode_utf16().flat_map(u16::to_le_bytes).collect()),
        PropValue::String8(bytes) | PropValue::Binary(bytes) => Some(bytes.clone()),
        _ => None,
    }
}

/// Returns the value of a property of type `ptype` read from a stream, or `None` for a
/// type streams do not carry or a PtypString stream of an odd length.
pub(super) fn value_from(ptype: PropType, bytes: Vec<u8>) -> Option<PropValue> {
    match ptype {
        PropType::STRING => {
            if !bytes.len().is_multiple_of(2) {
                return None;
            }
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|pair| match pair {
                    [low, high] => u16::from_le_bytes([*low, *high]),
                    _ => 0,
                })
                .collect();
            Some(PropValue::Unicode(String::from_utf16_lossy(&units)))
        }
        PropType::STRING8 => Some(PropValue::String8(bytes)),
        PropType::BINARY => Some(PropValue::Binary(bytes)),
        _ => None,
    }
}

/// Splits `props` into those small enough for RopSetProperties and those to write
/// through a stream, with their stream bytes.
pub(super) fn split_large(props: Vec<TaggedValue>) -> (Vec<TaggedValue>, Vec<(PropTag, Vec<u8>)>) {
    let mut inline = Vec::new();
    let mut large = Vec::new();
    for prop in props {
        match stream_bytes(&prop.value) {
            Some(bytes) if bytes.len() > STREAM_THRESHOLD => large.push((prop.tag, bytes)),
            _ => inline.push(prop),
        }
    }
    (inline, large)
}

/// Appends the ROPs that write `bytes` to `tag` of the message or attachment in slot
/// `message`: open a stream that creates the property, write it in chunks, commit,
/// release. The value takes effect with the object's next RopSaveChangesMessage or
/// RopSaveChangesAttachment.
pub(super) fn push_write(batch: &mut Batch, message: u8, tag: PropTag, bytes: &[u8]) {
    let stream = batch.output();
    batch.push(RopRequest::OpenStream {
        logon_id: 0,
        input_handle: message,
        output_handle: stream,
        tag,
        open_mode_flags: CREATE,
    });
    for chunk in bytes.chunks(WRITE_CHUNK) {
        batch.push(RopRequest::WriteStream {
            logon_id: 0,
            input_handle: stream,
            data: chunk.to_vec(),
        });
    }
    batch.push(RopRequest::CommitStream {
        logon_id: 0,
        input_handle: stream,
    });
    batch.push(RopRequest::Release {
        logon_id: 0,
        input_handle: stream,
    });
}

impl MapiSession {
    /// Reads the whole value of `tag` on an open message (`message`, a raw handle of the
    /// current context) through a read-only stream.
    ///
    /// # Errors
    ///
    /// [`SessionError`] when opening or reading the stream fails, or the server returns
    /// fewer bytes than the stream size it announced.
    pub(super) async fn read_stream(
        &self,
        operation: &'static str,
        message: u32,
        tag: PropTag,
    ) -> Result<Vec<u8>, SessionError> {
        let mut batch = Batch::new();
        let m = batch.input(HandleRef::Raw(message));
        let stream = batch.output();
        let open = batch.push(RopRequest::OpenStream {
            logon_id: 0,
            input_handle: m,
            output_handle: stream,
            tag,
            open_mode_flags: READ_ONLY,
        });
        let result = self.execute(operation, &batch, Replay::Safe).await?;
        let ResponseBody::StreamSize(size) = ops::ok(&result, open, operation)?.body else {
            return Err(SessionError::MissingResponse {
                operation,
                rop: "RopOpenStream",
            });
        };
        let stream_handle = result.handle(stream).ok_or(SessionError::MissingResponse {
            operation,
            rop: "RopOpenStream",
        })?;
        let size = usize::try_from(size).unwrap_or(usize::MAX);

        let read = self.read_stream_data(operation, stream_handle, size).await;
        let mut release = Batch::new();
        let s = release.input(HandleRef::Raw(stream_handle));
        release.push(RopRequest::Release {
            logon_id: 0,
            input_handle: s,
        });
        if let Err(error) = self.execute(operation, &release, Replay::Safe).await {
            tracing::debug!(operation, %error, "releasing a property stream failed");
        }
        read
    }

    async fn read_stream_data(
        &self,
        operation: &'static str,
        stream: u32,
        size: usize,
    ) -> Result<Vec<u8>, SessionError> {
        // The stream size only sizes the loop; the buffer grows with the data received.
        let mut data = Vec::new();
        while data.len() < size {
            let mut batch = Batch::new();
            let s = batch.input(HandleRef::Raw(stream));
            let read = batch.push(RopRequest::ReadStream {
                logon_id: 0,
                input_handle: s,
                byte_count: READ_CHUNK,
                maximum_byte_count: None,
            });
            let result = self.execute(operation, &batch, Replay::Safe).await?;
            let ResponseBody::ReadStream { data: chunk } = &ops::ok(&result, read, operation)?.body
            else {
                return Err(SessionError::MissingResponse {
                    operation,
                    rop: "RopReadStream",
                });
            };
            if chunk.is_empty() {
                return Err(SessionError::protocol(
                    operation,
                    format!(
                        "the property stream ended after {} of {size} bytes",
                        data.len()
                    ),
                ));
            }
            data.extend_from_slice(chunk);
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn unicode_stream_round_trip() {
        let value = PropValue::Unicode("grüße ".repeat(50));
        let bytes = stream_bytes(&value).unwrap();
        assert_eq!(bytes.len(), 6 * 50 * 2);
        assert_eq!(value_from(PropType::STRING, bytes), Some(value));
    }

    #[test]
    fn odd_unicode_stream_rejected() {
        assert_eq!(value_from(PropType::STRING, vec![1, 2, 3]), None);
    }

    #[test]
    fn split_large_keeps_small_inline() {
        let small = TaggedValue {
            tag: PropTag(0x0037_001F),
            value: PropValue::Unicode("subject".to_owned()),
        };
        let large = TaggedValue {
            tag: PropTag(0x1000_001F),
            value: PropValue::Unicode("x".repeat(STREAM_THRESHOLD)),
        };
        let (inline, streamed) = split_large(vec![small.clone(), large]);
        assert_eq!(inline, vec![small]);
        assert_eq!(streamed.len(), 1);
        assert_eq!(streamed[0].0, PropTag(0x1000_001F));
        assert_eq!(streamed[0].1.len(), STREAM_THRESHOLD * 2);
    }
}
