//! Extended buffers (MS-OXCRPC 2.2.2.1 RPC_HEADER_EXT, 3.1.4.1.1): the framing around
//! every ROP buffer and auxiliary buffer, with optional LZ77 compression and XOR 0xA5
//! obfuscation, and the AUX_HEADER blocks inside auxiliary buffers (MS-OXCRPC 2.2.2.2).
//!
//! An extended buffer is a chain of segments. Each segment is an 8-byte header
//! (Version, Flags, Size, SizeActual, all u16) and Size payload bytes; the Last flag marks
//! the final one. A sender compresses and then obfuscates; a receiver undoes the XOR
//! first and then decompresses to exactly SizeActual bytes (MS-OXCRPC 3.1.4.1.1.1).

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::lz77::{self, Lz77Error};

/// The only RPC_HEADER_EXT version defined (MS-OXCRPC 2.2.2.1).
pub const HEADER_VERSION: u16 = 0x0000;

/// Size of RPC_HEADER_EXT on the wire.
pub const HEADER_LEN: usize = 8;

/// Largest uncompressed payload of one segment of a request ROP buffer (MS-OXCRPC
/// 3.1.4.2.1.1; servers reject larger ones).
pub const MAX_REQUEST_PAYLOAD: usize = 0x8000;

/// Byte every payload byte is XORed with when the XorMagic flag is set.
pub const XOR_MAGIC: u8 = 0xA5;

/// The Flags field of RPC_HEADER_EXT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub struct ExtFlags(pub u16);

impl ExtFlags {
    /// The payload is LZ77 compressed; SizeActual is its size after decompression.
    pub const COMPRESSED: u16 = 0x0001;
    /// Every payload byte is XORed with 0xA5.
    pub const XOR_MAGIC: u16 = 0x0002;
    /// No segment follows this one.
    pub const LAST: u16 = 0x0004;

    /// Returns true when the Compressed bit is set.
    pub fn compressed(self) -> bool {
        self.0 & Self::COMPRESSED != 0
    }

    /// Returns true when the XorMagic bit is set.
    pub fn xor_magic(self) -> bool {
        self.0 & Self::XOR_MAGIC != 0
    }

    /// Returns true when the Last bit is set.
    pub fn last(self) -> bool {
        self.0 & Self::LAST != 0
    }
}

/// One RPC_HEADER_EXT as read from the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RpcHeaderExt {
    /// Version; 0 is the only defined value.
    pub version: u16,
    /// Compressed, XorMagic and Last bits.
    pub flags: ExtFlags,
    /// Payload bytes as transmitted.
    pub size: u16,
    /// Payload bytes after decompression (equal to `size` when not compressed).
    pub size_actual: u16,
}

impl RpcHeaderExt {
    /// Reads a header from the first 8 bytes of `bytes`.
    ///
    /// # Errors
    ///
    /// [`ExtError::Truncated`] when fewer than 8 bytes are given.
    pub fn decode(bytes: &[u8], offset: usize) -> Result<Self, ExtError> {
        let field = |at: usize| -> Result<u16, ExtError> {
            let pair = bytes.get(at..at + 2).ok_or(ExtError::Truncated {
                offset: offset + at,
                needed: HEADER_LEN,
                available: bytes.len(),
            })?;
            Ok(u16::from_le_bytes([
                pair.first().copied().unwrap_or(0),
                pair.get(1).copied().unwrap_or(0),
            ]))
        };
        Ok(Self {
            version: field(0)?,
            flags: ExtFlags(field(2)?),
            size: field(4)?,
            size_actual: field(6)?,
        })
    }

    /// Appends the 8 header bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.flags.0.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.size_actual.to_le_bytes());
    }
}

/// One decoded segment: its header as sent and its plain payload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Segment {
    /// The header as it was on the wire.
    pub header: RpcHeaderExt,
    /// The payload after XOR removal and decompression (`header.size_actual` bytes).
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    pub payload: Vec<u8>,
}

/// Error of a malformed extended buffer, or of a payload that cannot be framed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtError {
    /// The buffer ends inside a header or payload.
    #[error(
        "extended buffer: {needed} bytes needed at offset {offset} but only {available} are \
         there; the buffer is cut short or a Size field is wrong"
    )]
    Truncated {
        /// Offset of the header or payload that does not fit.
        offset: usize,
        /// Bytes that field needs.
        needed: usize,
        /// Bytes left from that offset.
        available: usize,
    },
    /// A header carries a version other than 0.
    #[error(
        "extended buffer: RPC_HEADER_EXT at offset {offset} has version {version:#06x}, only 0 is defined"
    )]
    UnsupportedVersion {
        /// Offset of the header.
        offset: usize,
        /// Version found.
        version: u16,
    },
    /// An uncompressed segment whose Size and SizeActual differ.
    #[error(
        "extended buffer: uncompressed segment at offset {offset} has Size {size} but \
         SizeActual {size_actual}; they must be equal"
    )]
    SizeMismatch {
        /// Offset of the header.
        offset: usize,
        /// Size field.
        size: u16,
        /// SizeActual field.
        size_actual: u16,
    },
    /// A compressed payload that does not decompress to SizeActual bytes.
    #[error("extended buffer: compressed segment at offset {offset} is corrupt: {source}")]
    Decompress {
        /// Offset of the header.
        offset: usize,
        /// Error the LZ77 decoder returned.
        source: Lz77Error,
    },
    /// Bytes follow the segment marked Last.
    #[error(
        "extended buffer: {count} bytes follow the segment marked Last (at offset {offset}); \
         the buffer length or a Last flag is wrong"
    )]
    TrailingBytes {
        /// Offset of the first extra byte.
        offset: usize,
        /// Number of extra bytes.
        count: usize,
    },
    /// The buffer ended without a segment marked Last.
    #[error("extended buffer: no segment is marked Last in {len} bytes; the chain is cut short")]
    MissingLast {
        /// Length of the buffer.
        len: usize,
    },
    /// The buffer contains no segment at all.
    #[error("extended buffer: empty, at least one RPC_HEADER_EXT is required")]
    Empty,
    /// A payload too large for the u16 Size field.
    #[error(
        "extended buffer: payload of {len} bytes exceeds the 65535-byte limit of one segment; split it"
    )]
    PayloadTooLarge {
        /// Payload length.
        len: usize,
    },
    /// An AUX_HEADER block whose Size is below 4 or beyond the buffer.
    #[error(
        "auxiliary buffer: AUX_HEADER at offset {offset} declares size {size} but only \
         {available} bytes remain (and at least 4 are needed)"
    )]
    BadAuxBlock {
        /// Offset of the block in the auxiliary payload.
        offset: usize,
        /// Size field of the block.
        size: u16,
        /// Bytes left from that offset.
        available: usize,
    },
}

/// Transforms [`encode_segment`] applies to a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EncodeOptions {
    /// Compress with LZ77 when that makes the payload smaller (otherwise send it plain
    /// and leave the flag clear, as MS-OXCRPC 3.1.4.1.1.2 allows).
    pub compress: bool,
    /// Obfuscate with XOR 0xA5.
    pub xor: bool,
}

/// XORs every byte with 0xA5 in place (the transform is its own inverse).
pub fn xor_in_place(bytes: &mut [u8]) {
    for byte in bytes {
        *byte ^= XOR_MAGIC;
    }
}

/// Decodes a whole extended buffer: segments up to and including the one marked Last,
/// with nothing after it.
///
/// # Errors
///
/// [`ExtError`] for a truncated header or payload, a version other than 0, a size
/// mismatch, a corrupt compressed payload, a missing Last flag or trailing bytes.
pub fn decode_chain(buf: &[u8]) -> Result<Vec<Segment>, ExtError> {
    if buf.is_empty() {
        return Err(ExtError::Empty);
    }
    let mut segments = Vec::new();
    let mut offset = 0usize;
    loop {
        let rest = buf.get(offset..).unwrap_or(&[]);
        if rest.is_empty() {
            return Err(ExtError::MissingLast { len: buf.len() });
        }
        let (segment, used) = decode_segment(rest, offset)?;
        let last = segment.header.flags.last();
        segments.push(segment);
        offset += used;
        if last {
            break;
        }
    }
    if offset < buf.len() {
        return Err(ExtError::TrailingBytes {
            offset,
            count: buf.len() - offset,
        });
    }
    Ok(segments)
}

/// Decodes a chain and joins the payloads of its segments.
///
/// # Errors
///
/// As [`decode_chain`].
pub fn decode_payload(buf: &[u8]) -> Result<Vec<u8>, ExtError> {
    let segments = decode_chain(buf)?;
    if let [only] = segments.as_slice() {
        return Ok(only.payload.clone());
    }
    Ok(segments.into_iter().flat_map(|s| s.payload).collect())
}

/// Decodes one segment at the start of `bytes` and returns it with the number of bytes
/// it took. `base` is the offset of `bytes` in the enclosing buffer, for errors.
///
/// # Errors
///
/// As [`decode_chain`], except the chain rules.
pub fn decode_segment(bytes: &[u8], base: usize) -> Result<(Segment, usize), ExtError> {
    let header = RpcHeaderExt::decode(bytes, base)?;
    if header.version != HEADER_VERSION {
        return Err(ExtError::UnsupportedVersion {
            offset: base,
            version: header.version,
        });
    }
    let size = usize::from(header.size);
    let wire = bytes
        .get(HEADER_LEN..HEADER_LEN + size)
        .ok_or(ExtError::Truncated {
            offset: base + HEADER_LEN,
            needed: size,
            available: bytes.len().saturating_sub(HEADER_LEN),
        })?;

    let mut payload = wire.to_vec();
    if header.flags.xor_magic() {
        xor_in_place(&mut payload);
    }
    if header.flags.compressed() {
        payload =
            lz77::decompress(&payload, usize::from(header.size_actual)).map_err(|source| {
                ExtError::Decompress {
                    offset: base,
                    source,
                }
            })?;
    } else if header.size != header.size_actual {
        return Err(ExtError::SizeMismatch {
            offset: base,
            size: header.size,
            size_actual: header.size_actual,
        });
    }
    Ok((Segment { header, payload }, HEADER_LEN + size))
}

/// Appends one segment carrying `payload` to `out`.
///
/// # Errors
///
/// [`ExtError::PayloadTooLarge`] when `payload` is longer than 65535 bytes.
pub fn encode_segment(
    payload: &[u8],
    options: EncodeOptions,
    last: bool,
    out: &mut Vec<u8>,
) -> Result<(), ExtError> {
    let size_actual = u16::try_from(payload.len())
        .map_err(|_| ExtError::PayloadTooLarge { len: payload.len() })?;
    let mut flags = if last { ExtFlags::LAST } else { 0 };

    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    let mut wire_len = payload.len();
    if options.compress {
        lz77::compress_into(payload, out);
        let packed = out.len() - start - HEADER_LEN;
        if packed < payload.len() {
            flags |= ExtFlags::COMPRESSED;
            wire_len = packed;
        } else {
            out.truncate(start + HEADER_LEN);
        }
    }
    if flags & ExtFlags::COMPRESSED == 0 {
        out.extend_from_slice(payload);
    }
    if options.xor {
        flags |= ExtFlags::XOR_MAGIC;
        if let Some(body) = out.get_mut(start + HEADER_LEN..) {
            xor_in_place(body);
        }
    }

    let header = RpcHeaderExt {
        version: HEADER_VERSION,
        flags: ExtFlags(flags),
        // wire_len <= payload.len() <= u16::MAX, checked above.
        size: u16::try_from(wire_len).unwrap_or(u16::MAX),
        size_actual,
    };
    let mut bytes = Vec::with_capacity(HEADER_LEN);
    header.encode(&mut bytes);
    if let Some(slot) = out.get_mut(start..start + HEADER_LEN) {
        slot.copy_from_slice(&bytes);
    }
    Ok(())
}

/// Builds an extended buffer from payloads, one segment each, Last on the final one.
///
/// # Errors
///
/// [`ExtError::Empty`] when no payload is given, [`ExtError::PayloadTooLarge`] when one
/// exceeds 65535 bytes.
pub fn encode_chain(payloads: &[&[u8]], options: EncodeOptions) -> Result<Vec<u8>, ExtError> {
    if payloads.is_empty() {
        return Err(ExtError::Empty);
    }
    let mut out = Vec::new();
    let count = payloads.len();
    for (index, payload) in payloads.iter().enumerate() {
        encode_segment(payload, options, index + 1 == count, &mut out)?;
    }
    Ok(out)
}

/// One AUX_HEADER block of an auxiliary buffer payload (MS-OXCRPC 2.2.2.2), with its
/// body kept as bytes: a client may ignore every block, and unknown types are skipped
/// by size.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuxBlock {
    /// AUX_VERSION_1 (1) or AUX_VERSION_2 (2).
    pub version: u8,
    /// Block type, e.g. 0x01 AUX_TYPE_PERF_REQUESTID.
    pub block_type: u8,
    /// The bytes after the 4-byte header.
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    pub body: Vec<u8>,
}

/// Splits a plain auxiliary payload into its AUX_HEADER blocks.
///
/// # Errors
///
/// [`ExtError::BadAuxBlock`] when a block's Size is below 4 or runs past the payload.
pub fn decode_aux_blocks(payload: &[u8]) -> Result<Vec<AuxBlock>, ExtError> {
    let mut blocks = Vec::new();
    let mut offset = 0usize;
    while offset < payload.len() {
        let rest = payload.get(offset..).unwrap_or(&[]);
        let bad = |size: u16| ExtError::BadAuxBlock {
            offset,
            size,
            available: rest.len(),
        };
        let (Some(&lo), Some(&hi)) = (rest.first(), rest.get(1)) else {
            return Err(bad(0));
        };
        let size = u16::from_le_bytes([lo, hi]);
        let len = usize::from(size);
        if len < 4 || len > rest.len() {
            return Err(bad(size));
        }
        let (Some(&version), Some(&block_type), Some(body)) =
            (rest.get(2), rest.get(3), rest.get(4..len))
        else {
            return Err(bad(size));
        };
        blocks.push(AuxBlock {
            version,
            block_type,
            body: body.to_vec(),
        });
        offset += len;
    }
    Ok(blocks)
}

/// Decodes the AuxiliaryBuffer of a body: an extended buffer whose payload is a run of
/// AUX_HEADER blocks. An empty buffer (AuxiliaryBufferSize 0) has no segment and gives
/// no blocks.
///
/// # Errors
///
/// As [`decode_chain`] and [`decode_aux_blocks`].
pub fn decode_aux_buffer(buf: &[u8]) -> Result<Vec<AuxBlock>, ExtError> {
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    decode_aux_blocks(&decode_payload(buf)?)
}

/// Writes AUX_HEADER blocks back into a plain auxiliary payload.
///
/// # Errors
///
/// [`ExtError::PayloadTooLarge`] when a block with its header exceeds 65535 bytes.
pub fn encode_aux_blocks(blocks: &[AuxBlock]) -> Result<Vec<u8>, ExtError> {
    let mut out = Vec::new();
    for block in blocks {
        let len = block.body.len() + 4;
        let size = u16::try_from(len).map_err(|_| ExtError::PayloadTooLarge { len })?;
        out.extend_from_slice(&size.to_le_bytes());
        out.push(block.version);
        out.push(block.block_type);
        out.extend_from_slice(&block.body);
    }
    Ok(out)
}

/// Fuzz entry point, shared by the cargo-fuzz target and a stable test: decodes `data`
/// as an extended buffer and, when it decodes, checks that re-encoding the payloads and
/// decoding again gives the same payloads.
///
/// # Panics
///
/// Panics only when that round trip breaks, which is the bug the fuzzer looks for.
#[doc(hidden)]
#[allow(clippy::panic)]
pub fn fuzz_check(data: &[u8]) {
    let Ok(segments) = decode_chain(data) else {
        return;
    };
    let payloads: Vec<&[u8]> = segments.iter().map(|s| s.payload.as_slice()).collect();
    let options = EncodeOptions {
        compress: true,
        xor: true,
    };
    let again = match encode_chain(&payloads, options).map(|wire| decode_chain(&wire)) {
        Ok(Ok(again)) => again,
        other => panic!("re-encoding decoded segments failed: {other:?}"),
    };
    let round: Vec<&[u8]> = again.iter().map(|s| s.payload.as_slice()).collect();
    if round != payloads {
        panic!("extended buffer round trip changed the payloads");
    }
}
