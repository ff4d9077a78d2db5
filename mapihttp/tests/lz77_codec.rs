#![allow(clippy::unwrap_used, clippy::expect_used)]
//! LZ77 + DIRECT2: known-answer vectors, real Outlook captures, agreement with compcol
//! and with the two Python reference decoders, property round trips, and malformed input.

use std::path::Path;
use std::process::Command;

use exmux_mapihttp::lz77::{self, Lz77Error};
use proptest::prelude::*;

/// Reads the data lines of a `.hex` vector (comments start with `#`).
fn hex_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

fn unhex(text: &str) -> Vec<u8> {
    let digits: String = text.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

fn hex_file(path: &Path) -> Vec<u8> {
    unhex(&hex_lines(path).join(" "))
}

/// Decompresses with compcol, whose xpress framing is a u64 size and the raw stream.
fn compcol_decompress(stream: &[u8], size: usize) -> Vec<u8> {
    let mut framed = (size as u64).to_le_bytes().to_vec();
    framed.extend_from_slice(stream);
    compcol::vec::decompress_to_vec::<compcol::xpress::Xpress>(&framed).unwrap()
}

fn compcol_compress(data: &[u8]) -> Vec<u8> {
    let framed = compcol::vec::compress_to_vec::<compcol::xpress::Xpress>(data).unwrap();
    framed[8..].to_vec()
}

/// Builds a ROP response as a server does: QueryRows-style property rows with UTF-16
/// subjects, message ids, FILETIMEs, flags and sizes.
fn realistic_payload(rows: usize, seed: u64) -> Vec<u8> {
    let subjects = [
        "RE: Quarterly report",
        "Meeting notes",
        "FW: Invoice",
        "Lunch on Friday?",
        "Build failed on main",
        "Your order has shipped",
    ];
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = Vec::new();
    out.extend_from_slice(&[0x15, 0x01, 0, 0, 0, 0, 0x02]);
    out.extend_from_slice(&(rows as u16).to_le_bytes());
    let mut time: u64 = 0x01DC_6F3A_0000_0000;
    for i in 0..rows {
        out.push(0);
        let subject = format!("{} {}", subjects[(next() % 6) as usize], next() % 500);
        for unit in subject.encode_utf16() {
            out.extend_from_slice(&unit.to_le_bytes());
        }
        out.extend_from_slice(&[0, 0]);
        let mid: u64 = 0x0001 | ((0x1000 + i as u64) << 16);
        out.extend_from_slice(&mid.to_le_bytes());
        time += next() % 10_000_000_000;
        out.extend_from_slice(&time.to_le_bytes());
        out.extend_from_slice(&((next() % 4) as u32).to_le_bytes());
        out.extend_from_slice(&((next() % 100_000) as u32).to_le_bytes());
    }
    out
}

#[test]
fn synthetic_vectors_round_trip() {
    let Some(dir) = exmux_testkit::shared_path("captures/mapi") else {
        return;
    };
    for n in 1..=6 {
        let lines = hex_lines(&dir.join(format!("lz77-synthetic-{n}.hex")));
        let plain = unhex(lines.iter().find_map(|l| l.strip_prefix("A:")).unwrap());
        let packed = unhex(lines.iter().find_map(|l| l.strip_prefix("B:")).unwrap());
        assert_eq!(
            lz77::decompress(&packed, plain.len()).unwrap(),
            plain,
            "vector {n}"
        );
        assert_eq!(
            compcol_decompress(&packed, plain.len()),
            plain,
            "compcol, vector {n}"
        );
        let ours = lz77::compress(&plain);
        assert_eq!(
            lz77::decompress(&ours, plain.len()).unwrap(),
            plain,
            "vector {n}"
        );
        assert_eq!(
            compcol_decompress(&ours, plain.len()),
            plain,
            "compcol on ours, vector {n}"
        );
    }
}

#[test]
fn outlook_rgbin_decompresses_to_rops() {
    let Some(dir) = exmux_testkit::shared_path("captures/mapi") else {
        return;
    };
    for (n, size) in [(1, 459usize), (2, 380)] {
        let rgbin = hex_file(&dir.join(format!("rgbin-compressed-{n}.hex")));
        let expected = hex_file(&dir.join(format!("rop-request-buffer-{n}.hex")));
        assert_eq!(expected.len(), size);
        let payload = &rgbin[8..];
        assert_eq!(
            lz77::decompress(payload, size).unwrap(),
            expected,
            "capture {n}"
        );
        // Our compressor's output of the same bytes reads back through both decoders.
        let ours = lz77::compress(&expected);
        assert_eq!(lz77::decompress(&ours, size).unwrap(), expected);
        assert_eq!(compcol_decompress(&ours, size), expected);
    }
}

#[test]
fn malformed_streams_give_typed_errors() {
    // A match before any output.
    let stream = [0x00, 0x00, 0x00, 0x80, 0x08, 0x00];
    assert!(matches!(
        lz77::decompress(&stream, 10),
        Err(Lz77Error::DistanceOutOfRange {
            distance: 2,
            produced: 0,
            ..
        })
    ));
    // Literal then a 3-byte match while only 2 bytes are declared.
    let stream = [0x00, 0x00, 0x00, 0x40, b'a', 0x00, 0x00];
    assert!(matches!(
        lz77::decompress(&stream, 2),
        Err(Lz77Error::Overrun { length: 3, .. })
    ));
    // Input ends inside the literals.
    let stream = [0x00, 0x00, 0x00, 0x00, b'a'];
    assert!(matches!(
        lz77::decompress(&stream, 5),
        Err(Lz77Error::Truncated { .. })
    ));
    // Explicit u16 length below 22.
    let stream = [
        0x00, 0x00, 0x00, 0x40, b'a', 0x07, 0x00, 0x0F, 0xFF, 0x05, 0x00,
    ];
    assert!(matches!(
        lz77::decompress(&stream, 400),
        Err(Lz77Error::InvalidLength { value: 5, .. })
    ));
    // Empty input for a non-empty output.
    assert!(matches!(
        lz77::decompress(&[], 1),
        Err(Lz77Error::Truncated { offset: 0, .. })
    ));
}

#[test]
fn u32_length_form_of_ms_xca_is_accepted() {
    // One literal, then a match with u16 0 and u32 (length - 3 + 22 - 22 ...): length 400.
    let mut stream = vec![
        0x00, 0x00, 0x00, 0x40, b'z', 0x07, 0x00, 0x0F, 0xFF, 0x00, 0x00,
    ];
    stream.extend_from_slice(&(400u32 - 3).to_le_bytes());
    let out = lz77::decompress(&stream, 401).unwrap();
    assert_eq!(out, vec![b'z'; 401]);
}

#[test]
fn ratio_matches_compcol_or_better() {
    let data = realistic_payload(1000, 7);
    let ours = lz77::compress(&data);
    let theirs = compcol_compress(&data);
    assert_eq!(compcol_decompress(&ours, data.len()), data);
    assert_eq!(lz77::decompress(&theirs, data.len()).unwrap(), data);
    assert!(
        ours.len() <= theirs.len(),
        "ours {} bytes, compcol {} bytes",
        ours.len(),
        theirs.len()
    );
}

#[test]
fn python_decoders_agree_on_corpus() {
    let Some(shared) = exmux_testkit::shared_dir() else {
        return;
    };
    let tools = shared.join("protocol/tools");
    if Command::new("python3").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 is required under CI for the LZ77 cross-check"
        );
        eprintln!("skipping: python3 not found");
        return;
    }
    let dir = std::env::temp_dir().join(format!("exmux-lz77-corpus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"a".to_vec(),
        vec![0x51; 70_000],
        realistic_payload(200, 3),
        realistic_payload(5, 11),
    ];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for len in [1usize, 31, 32, 33, 300, 4096, 20_000] {
        let mut data = Vec::with_capacity(len);
        for _ in 0..len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Small alphabet: many matches of every length class.
            data.push(b"abcab\0\x01"[(state % 7) as usize]);
        }
        inputs.push(data);
    }
    for (i, data) in inputs.iter().enumerate() {
        std::fs::write(dir.join(format!("{i}.plain")), data).unwrap();
        std::fs::write(dir.join(format!("{i}.lz")), lz77::compress(data)).unwrap();
    }
    let script = format!(
        "import sys\nsys.path.insert(0, {tools:?})\nimport lz, lz_ms\nbad = 0\n\
         for i in range({count}):\n    p = open({dir:?} + '/%d.plain' % i, 'rb').read()\n    \
         c = open({dir:?} + '/%d.lz' % i, 'rb').read()\n    \
         if lz.decompress(c, len(p)) != p: print('lz.py differs on', i); bad += 1\n    \
         if lz_ms.decompress_ms(c, len(p)) != p: print('lz_ms.py differs on', i); bad += 1\n\
         print('checked', {count}, 'bad', bad)\nsys.exit(1 if bad else 0)\n",
        tools = tools.display().to_string(),
        dir = dir.display().to_string(),
        count = inputs.len(),
    );
    let output = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        output.status.success(),
        "python decoders disagree: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn fuzz_entry_generated_inputs() {
    let mut state = 0x1234_5678_9ABC_DEF0u64;
    for round in 0..4000u32 {
        let len = (round % 97) as usize;
        let mut data = Vec::with_capacity(len);
        for _ in 0..len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            data.push(state as u8);
        }
        // Arbitrary bytes as a stream: decoding must return, never panic.
        let _ = lz77::decompress(&data, (state % 600) as usize);
        // Arbitrary bytes as data: the round trip is the identity.
        let packed = lz77::compress(&data);
        assert_eq!(lz77::decompress(&packed, data.len()).unwrap(), data);
    }
}

proptest! {
    #[test]
    fn random_bytes_round_trip(data in proptest::collection::vec(any::<u8>(), 0..5000)) {
        let packed = lz77::compress(&data);
        prop_assert_eq!(lz77::decompress(&packed, data.len()).unwrap(), data);
    }

    #[test]
    fn repetitive_bytes_agree_with_compcol(
        pieces in proptest::collection::vec((proptest::collection::vec(0u8..4, 1..40), 1usize..400), 1..20)
    ) {
        let mut data = Vec::new();
        for (piece, repeat) in pieces {
            for _ in 0..repeat.min(2000 / piece.len().max(1)) {
                data.extend_from_slice(&piece);
            }
        }
        let packed = lz77::compress(&data);
        prop_assert_eq!(&lz77::decompress(&packed, data.len()).unwrap(), &data);
        prop_assert_eq!(&compcol_decompress(&packed, data.len()), &data);
        let theirs = compcol_compress(&data);
        prop_assert_eq!(&lz77::decompress(&theirs, data.len()).unwrap(), &data);
    }

    #[test]
    fn realistic_rows_round_trip(rows in 0usize..300, seed in any::<u64>()) {
        let data = realistic_payload(rows, seed);
        let packed = lz77::compress(&data);
        prop_assert_eq!(lz77::decompress(&packed, data.len()).unwrap(), data);
    }
}
