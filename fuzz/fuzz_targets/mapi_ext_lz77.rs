#![no_main]
//! Fuzzes RPC_HEADER_EXT chains and LZ77: no panic on any input, decompression stays
//! within its declared size, and compress then decompress is the identity.

use exmux_mapihttp::lz77;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    exmux_mapihttp::ext::fuzz_check(data);

    // The first two bytes declare the size, the rest is the compressed stream.
    if let [low, high, stream @ ..] = data {
        let size = usize::from(u16::from_le_bytes([*low, *high]));
        if let Ok(out) = lz77::decompress(stream, size) {
            assert_eq!(out.len(), size);
        }
    }

    let packed = lz77::compress(data);
    assert_eq!(lz77::decompress(&packed, data.len()).as_deref(), Ok(data));
});
