//! LZ77 + DIRECT2 compression of extended buffers (MS-OXCRPC 3.1.4.1.1.2), the same
//! bitstream as MS-XCA 2.3/2.4 "Plain LZ77".
//!
//! The stream is a sequence of groups. Each group starts with a 32-bit little-endian
//! flag word that describes the next 32 items, most significant bit first: 0 is one
//! literal byte, 1 is a match. A match is a u16 `((distance - 1) << 3) | length code`,
//! followed for long matches by a shared nibble, a byte, a u16 and (MS-XCA only) a u32.
//! Distances reach back at most 8192 bytes; matches are at least 3 bytes long and may
//! overlap the bytes they produce.
//!
//! The format has no end marker: the decompressed size travels out of band (SizeActual
//! in RPC_HEADER_EXT), so [`decompress`] takes it and stops exactly there.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

/// Largest distance a match can reach back (13-bit field plus one).
pub const MAX_DISTANCE: usize = 8192;

/// Shortest match the format can express.
pub const MIN_MATCH: usize = 3;

/// Longest match [`compress`] emits: the u16 length form stores `length - 3`, and 0 in
/// that field would announce the u32 form, which MS-OXCRPC payloads never need.
const MAX_MATCH: usize = 0xFFFF + 3;

/// Error of a malformed compressed stream. Offsets count bytes into the compressed
/// input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Lz77Error {
    /// The input ended before the declared number of bytes was produced.
    #[error(
        "LZ77 decompression: input ended at offset {offset} after producing {produced} of \
         {declared} bytes; the payload is cut short or its declared size is too large"
    )]
    Truncated {
        /// Offset at which more input was needed.
        offset: usize,
        /// Bytes produced so far.
        produced: usize,
        /// Decompressed size the caller declared.
        declared: usize,
    },
    /// A match reaches back before the start of the output.
    #[error(
        "LZ77 decompression: match at offset {offset} reaches back {distance} bytes but only \
         {produced} bytes exist; the payload is corrupt (was it XOR-obfuscated and not \
         de-obfuscated first?)"
    )]
    DistanceOutOfRange {
        /// Offset of the match item.
        offset: usize,
        /// Distance the match names.
        distance: usize,
        /// Bytes produced before the match.
        produced: usize,
    },
    /// A match would write past the declared decompressed size.
    #[error(
        "LZ77 decompression: match of {length} bytes at offset {offset} overruns the declared \
         size {declared} (already produced {produced}); the payload or its SizeActual is wrong"
    )]
    Overrun {
        /// Offset of the match item.
        offset: usize,
        /// Length the match names.
        length: usize,
        /// Bytes produced before the match.
        produced: usize,
        /// Decompressed size the caller declared.
        declared: usize,
    },
    /// The explicit u16/u32 length of a match is below what its short forms cover.
    #[error(
        "LZ77 decompression: explicit match length {value} at offset {offset} is below 22, \
         which no encoder writes; the payload is corrupt"
    )]
    InvalidLength {
        /// Offset of the length field.
        offset: usize,
        /// Raw value of the field.
        value: u32,
    },
}

/// Decompresses `input` to exactly `size` bytes.
///
/// `size` is the caller's bound (SizeActual of an RPC_HEADER_EXT, at most 65535): the
/// output buffer is allocated once at that size and never grows. Bytes left in `input`
/// after `size` bytes are produced (the padding of a final flag word) are ignored.
///
/// # Errors
///
/// [`Lz77Error`] when the input ends early, a match reaches before the start of the
/// output, a match overruns `size`, or an explicit length is malformed.
pub fn decompress(input: &[u8], size: usize) -> Result<Vec<u8>, Lz77Error> {
    let mut out = vec![0u8; size];
    decompress_to_slice(input, &mut out)?;
    Ok(out)
}

/// Decompresses `input` into `out`, producing exactly `out.len()` bytes, and returns the
/// number of input bytes consumed.
///
/// # Errors
///
/// As [`decompress`].
pub fn decompress_to_slice(input: &[u8], out: &mut [u8]) -> Result<usize, Lz77Error> {
    let size = out.len();
    let mut ip = 0usize;
    let mut op = 0usize;
    let mut flags: u32 = 0;
    let mut flag_bits: u32 = 0;
    // High half of a nibble byte that an earlier long match read the low half of.
    let mut pending_nibble: Option<u8> = None;

    let truncated = |offset: usize, produced: usize| Lz77Error::Truncated {
        offset,
        produced,
        declared: size,
    };

    while op < size {
        if flag_bits == 0 {
            flags = read_u32(input, ip).ok_or_else(|| truncated(ip, op))?;
            ip += 4;
            flag_bits = 32;
        }

        // A run of 0 bits is a run of literals: copy them in one step.
        let literals = flags.leading_zeros().min(flag_bits) as usize;
        if literals > 0 {
            let n = literals.min(size - op);
            let src = input.get(ip..ip + n).ok_or_else(|| truncated(ip, op))?;
            if let Some(dst) = out.get_mut(op..op + n) {
                dst.copy_from_slice(src);
            }
            ip += n;
            op += n;
            flags = flags.checked_shl(n as u32).unwrap_or(0);
            flag_bits -= n as u32;
            continue;
        }

        flags <<= 1;
        flag_bits -= 1;
        let item_offset = ip;
        let metadata = read_u16(input, ip).ok_or_else(|| truncated(ip, op))?;
        ip += 2;
        let distance = usize::from(metadata >> 3) + 1;
        let mut length = usize::from(metadata & 7);
        if length == 7 {
            let nibble = match pending_nibble.take() {
                Some(high) => high,
                None => {
                    let byte = *input.get(ip).ok_or_else(|| truncated(ip, op))?;
                    ip += 1;
                    pending_nibble = Some(byte >> 4);
                    byte & 0x0F
                }
            };
            length = usize::from(nibble);
            if length == 15 {
                length = usize::from(*input.get(ip).ok_or_else(|| truncated(ip, op))?);
                ip += 1;
                if length == 255 {
                    let field_offset = ip;
                    let mut value =
                        u32::from(read_u16(input, ip).ok_or_else(|| truncated(ip, op))?);
                    ip += 2;
                    if value == 0 {
                        value = read_u32(input, ip).ok_or_else(|| truncated(ip, op))?;
                        ip += 4;
                    }
                    if value < 22 {
                        return Err(Lz77Error::InvalidLength {
                            offset: field_offset,
                            value,
                        });
                    }
                    length = value as usize - 22;
                }
                length += 15;
            }
            length += 7;
        }
        length += 3;

        if distance > op {
            return Err(Lz77Error::DistanceOutOfRange {
                offset: item_offset,
                distance,
                produced: op,
            });
        }
        if length > size - op {
            return Err(Lz77Error::Overrun {
                offset: item_offset,
                length,
                produced: op,
                declared: size,
            });
        }
        copy_match(out, op, distance, length);
        op += length;
    }
    Ok(ip)
}

/// Copies `length` bytes from `op - distance` to `op`, where the source may overlap
/// the destination. The caller has checked `distance <= op` and `op + length <=
/// out.len()`.
#[inline]
fn copy_match(out: &mut [u8], op: usize, distance: usize, length: usize) {
    let src = op - distance;
    // Short matches dominate ROP payloads: copy a fixed 16 bytes, which compiles to two
    // moves. Bytes written past `op + length` lie ahead of the output position and
    // are overwritten before anything reads them.
    if length <= 16 && distance >= 16 && op + 16 <= out.len() {
        out.copy_within(src..src + 16, op);
        return;
    }
    if distance >= length {
        out.copy_within(src..src + length, op);
        return;
    }
    if distance == 1 {
        let byte = out.get(src).copied().unwrap_or(0);
        if let Some(dst) = out.get_mut(op..op + length) {
            dst.fill(byte);
        }
        return;
    }
    // The output from `src` repeats with period `distance`, and so with any multiple of
    // it: copy one period, then double the copied span each step.
    out.copy_within(src..op, op);
    let mut copied = distance;
    while copied < length {
        let n = copied.min(length - copied);
        out.copy_within(op..op + n, op + copied);
        copied += n;
    }
}

#[inline]
fn read_u16(input: &[u8], at: usize) -> Option<u16> {
    let bytes = input.get(at..at + 2)?;
    Some(u16::from_le_bytes([*bytes.first()?, *bytes.get(1)?]))
}

#[inline]
fn read_u32(input: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = input.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(bytes))
}

#[inline]
fn read_u64(input: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; 8] = input.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// Upper bound of the compressed size of `len` input bytes: every byte a literal, plus
/// one flag word per 32 items and the final flag word.
pub fn compress_bound(len: usize) -> usize {
    len + 4 * (len / 32) + 4
}

/// Compresses `input` into a new buffer. Any conforming decoder reads the result back;
/// the bytes need not match what Exchange writes for the same input.
pub fn compress(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(compress_bound(input.len()));
    compress_into(input, &mut out);
    out
}

const HASH_BITS: u32 = 13;
const HASH_SIZE: usize = 1 << HASH_BITS;

/// Hashes 4 bytes. Hashing 4 rather than 3 bytes finds fewer but longer matches, which
/// on ROP payloads (UTF-16 text full of `x 00` pairs) both compresses better and runs
/// faster.
#[inline]
fn hash4(word: u32) -> usize {
    (word.wrapping_mul(2_654_435_761) >> (32 - HASH_BITS)) as usize
}

/// The flag word being filled and where it goes in the output.
struct FlagWriter {
    at: usize,
    word: u32,
    bits: u32,
}

impl FlagWriter {
    #[inline]
    fn push(&mut self, out: &mut Vec<u8>, bit: u32) {
        self.word = (self.word << 1) | bit;
        self.bits += 1;
        if self.bits == 32 {
            write_u32_at(out, self.at, self.word);
            self.at = out.len();
            out.extend_from_slice(&[0; 4]);
            self.word = 0;
            self.bits = 0;
        }
    }

    /// Writes the last flag word, padding the unused low bits with 1 as MS-XCA encoders
    /// do.
    fn finish(self, out: &mut [u8]) {
        let word = if self.bits == 0 {
            u32::MAX
        } else {
            let unused = 32 - self.bits;
            (self.word << unused) | ((1u32 << unused) - 1)
        };
        write_u32_at(out, self.at, word);
    }
}

#[inline]
fn write_u32_at(out: &mut [u8], at: usize, value: u32) {
    if let Some(slot) = out.get_mut(at..at + 4) {
        slot.copy_from_slice(&value.to_le_bytes());
    }
}

/// Appends the compressed form of `input` to `out`.
///
/// The matcher is greedy over a hash table of one candidate per 4-byte prefix, within
/// the 8192-byte window.
pub fn compress_into(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(compress_bound(input.len()));
    let mut flags = FlagWriter {
        at: out.len(),
        word: 0,
        bits: 0,
    };
    out.extend_from_slice(&[0; 4]);
    // Index of the byte whose high nibble is still free for the next long match.
    let mut nibble_at: Option<usize> = None;
    // One candidate per bucket, stored as position + 1 so 0 is empty.
    let mut table = vec![0u32; HASH_SIZE];

    let n = input.len();
    let mut pos = 0usize;
    // The last 3 bytes are literals: the 4-byte read below cannot start a match there.
    while pos < n {
        let Some(word) = read_u32(input, pos) else {
            break;
        };
        let Some(bucket) = table.get_mut(hash4(word)) else {
            break;
        };
        let candidate = std::mem::replace(bucket, pos as u32 + 1) as usize;

        // The 4-byte read above succeeded, so `limit` is at least 4.
        let limit = (n - pos).min(MAX_MATCH);
        let mut best_len = 0usize;
        let mut best_dist = 0usize;
        if candidate != 0 {
            let cand = candidate - 1;
            let dist = pos - cand;
            if dist <= MAX_DISTANCE && read_u32(input, cand) == Some(word) {
                best_len = 4 + match_length(input, cand + 4, pos + 4, limit - 4);
                best_dist = dist;
            }
        }

        if best_len < MIN_MATCH {
            out.push((word & 0xFF) as u8);
            flags.push(out, 0);
            pos += 1;
            continue;
        }

        emit_match(out, &mut nibble_at, best_dist, best_len);
        flags.push(out, 1);

        // Index the last positions inside the match too: indexing every position costs
        // more time than the ratio it gains on ROP payloads.
        let end = pos + best_len;
        let start = if best_len > 4 { end - 2 } else { pos + 1 };
        for p in start..end {
            let Some(w) = read_u32(input, p) else {
                break;
            };
            if let Some(bucket) = table.get_mut(hash4(w)) {
                *bucket = p as u32 + 1;
            }
        }
        pos = end;
    }

    for &byte in input.get(pos..).unwrap_or(&[]) {
        out.push(byte);
        flags.push(out, 0);
    }
    flags.finish(out);
}

/// Length of the common run of `input[cand..]` and `input[pos..]`, at most `limit`.
#[inline]
fn match_length(input: &[u8], cand: usize, pos: usize, limit: usize) -> usize {
    let mut len = 0usize;
    while len + 8 <= limit {
        let (Some(a), Some(b)) = (read_u64(input, cand + len), read_u64(input, pos + len)) else {
            break;
        };
        let diff = a ^ b;
        if diff != 0 {
            return len + (diff.trailing_zeros() / 8) as usize;
        }
        len += 8;
    }
    while len < limit {
        match (input.get(cand + len), input.get(pos + len)) {
            (Some(a), Some(b)) if a == b => len += 1,
            _ => break,
        }
    }
    len
}

/// Appends one match item (metadata word and any length extension bytes).
#[inline]
fn emit_match(out: &mut Vec<u8>, nibble_at: &mut Option<usize>, distance: usize, length: usize) {
    let code = (length - 3).min(7) as u16;
    let metadata = (((distance - 1) as u16) << 3) | code;
    out.extend_from_slice(&metadata.to_le_bytes());
    if length - 3 < 7 {
        return;
    }
    let rest = length - 10;
    let nibble = rest.min(15) as u8;
    match nibble_at.take() {
        Some(at) => {
            if let Some(byte) = out.get_mut(at) {
                *byte |= nibble << 4;
            }
        }
        None => {
            *nibble_at = Some(out.len());
            out.push(nibble);
        }
    }
    if rest < 15 {
        return;
    }
    let rest = rest - 15;
    out.push(rest.min(255) as u8);
    if rest < 255 {
        return;
    }
    out.extend_from_slice(&((length - 3) as u16).to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_round_trips() {
        let packed = compress(&[]);
        assert_eq!(packed, [0xFF, 0xFF, 0xFF, 0xFF]);
        assert_eq!(decompress(&packed, 0).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn overlapping_match_repeats_its_period() {
        let data: Vec<u8> = b"abc".iter().copied().cycle().take(1000).collect();
        let packed = compress(&data);
        assert!(packed.len() < 20, "{} bytes", packed.len());
        assert_eq!(decompress(&packed, data.len()).unwrap(), data);
    }
}
