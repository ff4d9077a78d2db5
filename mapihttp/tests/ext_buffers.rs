#![allow(clippy::unwrap_used, clippy::expect_used)]
//! RPC_HEADER_EXT chains, XOR obfuscation and auxiliary blocks: real Outlook vectors,
//! the XOR-before-decompress order, chains, malformed headers and round trips.

use std::path::Path;

use exmux_mapihttp::body::{ExecuteResponse, Response, WireBody};
use exmux_mapihttp::ext::{
    self, AuxBlock, EncodeOptions, ExtError, ExtFlags, RpcHeaderExt, decode_aux_blocks,
    decode_chain, encode_aux_blocks, encode_chain,
};
use exmux_mapihttp::http;
use exmux_mapihttp::lz77::Lz77Error;
use proptest::prelude::*;

fn hex_file(path: &Path) -> Vec<u8> {
    let text: String = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ");
    let digits: String = text.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn outlook_aux_buffers_unxor_and_reencode() {
    let Some(dir) = exmux_testkit::shared_path("captures/mapi") else {
        return;
    };
    for n in 1..=2 {
        let wire = hex_file(&dir.join(format!("auxin-xor-{n}.hex")));
        let plain = hex_file(&dir.join(format!("auxin-plain-{n}.hex")));
        let segments = decode_chain(&wire).unwrap();
        assert_eq!(segments.len(), 1);
        let header = segments[0].header;
        assert_eq!(header.flags, ExtFlags(0x0006));
        assert_eq!((header.size, header.size_actual), (40, 40));
        assert_eq!(segments[0].payload, plain);

        let blocks = decode_aux_blocks(&plain).unwrap();
        assert_eq!(blocks.len(), 3);
        assert_eq!((blocks[0].version, blocks[0].block_type), (1, 0x01));
        assert_eq!((blocks[1].block_type, blocks[2].block_type), (0x0C, 0x0C));
        assert_eq!(blocks[0].body.len(), 4);
        assert_eq!(blocks[1].body.len(), 12);
        assert_eq!(encode_aux_blocks(&blocks).unwrap(), plain);

        // XOR without compression is a unique encoding: the bytes come back identical.
        let again = encode_chain(
            &[&plain],
            EncodeOptions {
                compress: false,
                xor: true,
            },
        )
        .unwrap();
        assert_eq!(again, wire);
    }
    assert_eq!(ext::decode_aux_buffer(&[]).unwrap(), Vec::new());
    let from_wire = ext::decode_aux_buffer(&hex_file(&dir.join("auxin-xor-1.hex"))).unwrap();
    assert_eq!(from_wire.len(), 3);
    let first = decode_aux_blocks(&hex_file(&dir.join("auxin-plain-1.hex"))).unwrap();
    assert_eq!(from_wire, first);
    assert_eq!(first[0].body, [0x01, 0x00, 0xa3, 0x00]);
}

#[test]
fn outlook_compressed_rgbin_decodes() {
    let Some(dir) = exmux_testkit::shared_path("captures/mapi") else {
        return;
    };
    for n in 1..=2 {
        let wire = hex_file(&dir.join(format!("rgbin-compressed-{n}.hex")));
        let rops = hex_file(&dir.join(format!("rop-request-buffer-{n}.hex")));
        let segments = decode_chain(&wire).unwrap();
        assert_eq!(segments.len(), 1);
        assert_eq!(segments[0].header.flags, ExtFlags(0x0005));
        assert_eq!(segments[0].payload, rops);
        // Our own compressed form reads back to the same ROP bytes.
        let ours = encode_chain(
            &[&rops],
            EncodeOptions {
                compress: true,
                xor: true,
            },
        )
        .unwrap();
        let header = RpcHeaderExt::decode(&ours, 0).unwrap();
        assert_eq!(header.flags, ExtFlags(0x0007));
        assert!(header.size < header.size_actual);
        assert_eq!(ext::decode_payload(&ours).unwrap(), rops);
    }
}

/// Builds the expected plaintext of the XOR-then-decompress case: a RopQueryRows
/// response of three rows.
fn c28_plaintext() -> Vec<u8> {
    let mut out = vec![0x56, 0x00, 0x15, 0x01, 0, 0, 0, 0, 0x02, 0x03, 0x00];
    for (subject, flags) in [("Invoice 1", 1u32), ("Invoice 2", 1), ("Invoice 3", 0)] {
        out.push(0);
        for unit in subject.encode_utf16() {
            out.extend_from_slice(&unit.to_le_bytes());
        }
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&flags.to_le_bytes());
    }
    out.extend_from_slice(&0x123u32.to_le_bytes());
    out.extend_from_slice(&0x456u32.to_le_bytes());
    out
}

#[test]
fn xor_is_undone_before_decompression() {
    let Some(path) = exmux_testkit::shared_path("cases/inputs/C28-xor-then-decompress.hex") else {
        return;
    };
    let whole = hex_file(&path);
    let framed = http::parse_body(&whole).unwrap();
    assert_eq!(framed.headers.elapsed_time, Some(0));
    let Response::Success(execute) = ExecuteResponse::decode(&framed.body).unwrap() else {
        panic!("expected the success layout");
    };
    assert_eq!(execute.rop_buffer.len(), 71);
    let segments = decode_chain(&execute.rop_buffer).unwrap();
    assert_eq!(segments.len(), 1);
    assert_eq!(segments[0].header.flags, ExtFlags(0x0007));
    assert_eq!(
        (segments[0].header.size, segments[0].header.size_actual),
        (63, 94)
    );
    let expected = c28_plaintext();
    assert_eq!(expected.len(), 94);
    assert_eq!(segments[0].payload, expected);

    // The wrong order (decompress the obfuscated bytes) must fail with a typed error,
    // never a panic and never silent garbage of the right length.
    let obfuscated = &execute.rop_buffer[8..];
    let wrong = exmux_mapihttp::lz77::decompress(obfuscated, 94);
    assert!(wrong.is_err() || wrong.as_deref() != Ok(expected.as_slice()));

    // A SizeActual one byte long is a truncation; one byte short stops after exactly
    // that many bytes (the format has no end marker).
    let mut tampered = execute.rop_buffer.clone();
    tampered[6..8].copy_from_slice(&95u16.to_le_bytes());
    match decode_chain(&tampered) {
        Err(ExtError::Decompress { source, .. }) => {
            assert!(
                matches!(
                    source,
                    Lz77Error::Truncated {
                        produced: 94,
                        declared: 95,
                        ..
                    }
                ),
                "{source}"
            )
        }
        other => panic!("SizeActual 95: {other:?}"),
    }
    tampered[6..8].copy_from_slice(&93u16.to_le_bytes());
    assert_eq!(decode_chain(&tampered).unwrap()[0].payload, expected[..93]);
}

#[test]
fn chain_marks_only_final_segment_last() {
    let parts: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 100 + usize::from(i)]).collect();
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let wire = encode_chain(
        &refs,
        EncodeOptions {
            compress: true,
            xor: false,
        },
    )
    .unwrap();
    let segments = decode_chain(&wire).unwrap();
    assert_eq!(segments.len(), 8);
    for (i, segment) in segments.iter().enumerate() {
        assert_eq!(segment.payload, parts[i]);
        assert_eq!(segment.header.flags.last(), i == 7);
        assert!(segment.header.flags.compressed());
    }
}

#[test]
fn malformed_chains_are_typed_errors() {
    assert_eq!(decode_chain(&[]), Err(ExtError::Empty));
    assert!(matches!(
        decode_chain(&[0, 0, 4, 0]),
        Err(ExtError::Truncated { .. })
    ));
    // Version 1.
    assert!(matches!(
        decode_chain(&[1, 0, 4, 0, 0, 0, 0, 0]),
        Err(ExtError::UnsupportedVersion { version: 1, .. })
    ));
    // Size beyond the buffer.
    assert!(matches!(
        decode_chain(&[0, 0, 4, 0, 9, 0, 9, 0, 1]),
        Err(ExtError::Truncated { needed: 9, .. })
    ));
    // Uncompressed with Size != SizeActual.
    assert!(matches!(
        decode_chain(&[0, 0, 4, 0, 1, 0, 2, 0, 7]),
        Err(ExtError::SizeMismatch { .. })
    ));
    // No Last flag.
    assert!(matches!(
        decode_chain(&[0, 0, 0, 0, 1, 0, 1, 0, 7]),
        Err(ExtError::MissingLast { .. })
    ));
    // Bytes after Last.
    assert!(matches!(
        decode_chain(&[0, 0, 4, 0, 1, 0, 1, 0, 7, 9]),
        Err(ExtError::TrailingBytes { count: 1, .. })
    ));
    // Aux block whose size runs past the payload, and one below the header size.
    assert!(matches!(
        decode_aux_blocks(&[9, 0, 1, 1]),
        Err(ExtError::BadAuxBlock { size: 9, .. })
    ));
    assert!(matches!(
        decode_aux_blocks(&[2, 0, 1, 1]),
        Err(ExtError::BadAuxBlock { size: 2, .. })
    ));
    // A payload over 65535 bytes cannot be one segment.
    assert!(matches!(
        encode_chain(&[&vec![0; 70_000]], EncodeOptions::default()),
        Err(ExtError::PayloadTooLarge { len: 70_000 })
    ));
}

#[test]
fn incompressible_payload_is_sent_plain() {
    let data: Vec<u8> = (0..=255u8).collect();
    let wire = encode_chain(
        &[&data],
        EncodeOptions {
            compress: true,
            xor: false,
        },
    )
    .unwrap();
    let header = RpcHeaderExt::decode(&wire, 0).unwrap();
    assert!(!header.flags.compressed());
    assert_eq!(header.size, 256);
    assert_eq!(&wire[8..], data.as_slice());
}

#[test]
fn fuzz_entry_generated_inputs() {
    let mut state = 0xDEAD_BEEF_CAFE_F00Du64;
    let seed = encode_chain(
        &[b"abcabcabcabcabc", b"xyz"],
        EncodeOptions {
            compress: true,
            xor: true,
        },
    )
    .unwrap();
    for round in 0..4000u32 {
        let mut data = seed.clone();
        let flips = 1 + round % 4;
        for _ in 0..flips {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = (state as usize) % data.len();
            data[at] ^= (state >> 32) as u8 | 1;
        }
        if round % 5 == 0 {
            data.truncate((state as usize >> 8) % data.len());
        }
        ext::fuzz_check(&data);
    }
}

proptest! {
    #[test]
    fn chain_round_trip(
        payloads in proptest::collection::vec(proptest::collection::vec(0u8..6, 0..3000), 1..5),
        compress in any::<bool>(),
        xor in any::<bool>(),
    ) {
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let wire = encode_chain(&refs, EncodeOptions { compress, xor }).unwrap();
        let segments = decode_chain(&wire).unwrap();
        prop_assert_eq!(segments.len(), payloads.len());
        for (segment, payload) in segments.iter().zip(&payloads) {
            prop_assert_eq!(&segment.payload, payload);
            prop_assert_eq!(segment.header.flags.xor_magic(), xor);
        }
    }

    #[test]
    fn aux_blocks_round_trip(blocks in proptest::collection::vec((1u8..3, any::<u8>(), proptest::collection::vec(any::<u8>(), 0..40)), 0..10)) {
        let blocks: Vec<AuxBlock> = blocks
            .into_iter()
            .map(|(version, block_type, body)| AuxBlock { version, block_type, body })
            .collect();
        let bytes = encode_aux_blocks(&blocks).unwrap();
        prop_assert_eq!(decode_aux_blocks(&bytes).unwrap(), blocks);
    }
}
