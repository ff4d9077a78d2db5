#![allow(clippy::unwrap_used, clippy::expect_used)]
//! LZ77 compression and decompression on a realistic ROP payload (QueryRows-style rows
//! with UTF-16 subjects, ids and times), beside compcol and memcpy in the same run.
//!
//! Run: `cargo bench -p exmux-mapihttp --bench lz77 -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use exmux_mapihttp::lz77;

/// Property rows as a RopQueryRows response carries them; kept in step with the
/// generator in the LZ77 tests.
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

fn bench(c: &mut Criterion) {
    // About 32 KiB: the largest uncompressed segment a ROP buffer carries.
    let mut data = realistic_payload(470, 7);
    data.truncate(0x8000);
    let ours = lz77::compress(&data);
    let theirs_framed = compcol::vec::compress_to_vec::<compcol::xpress::Xpress>(&data).unwrap();
    println!(
        "payload {} bytes; exmux ratio {:.2} ({} bytes); compcol ratio {:.2} ({} bytes)",
        data.len(),
        data.len() as f64 / ours.len() as f64,
        ours.len(),
        data.len() as f64 / (theirs_framed.len() - 8) as f64,
        theirs_framed.len() - 8
    );
    // compcol's framing is a u64 size and the raw stream; feed it our stream framed
    // the same way so both decoders read identical bytes.
    let mut ours_framed = (data.len() as u64).to_le_bytes().to_vec();
    ours_framed.extend_from_slice(&ours);

    let mut group = c.benchmark_group("lz77");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("memcpy", |b| {
        let mut dst = vec![0u8; data.len()];
        b.iter(|| {
            dst.copy_from_slice(black_box(&data));
            black_box(&dst);
        })
    });
    group.bench_function("decompress/exmux", |b| {
        let mut out = vec![0u8; data.len()];
        b.iter(|| lz77::decompress_to_slice(black_box(&ours), &mut out).unwrap())
    });
    group.bench_function("decompress/compcol", |b| {
        b.iter(|| {
            compcol::vec::decompress_to_vec::<compcol::xpress::Xpress>(black_box(&ours_framed))
                .unwrap()
        })
    });
    group.bench_function("compress/exmux", |b| {
        let mut out = Vec::with_capacity(lz77::compress_bound(data.len()));
        b.iter(|| {
            out.clear();
            lz77::compress_into(black_box(&data), &mut out);
        })
    });
    group.bench_function("compress/compcol", |b| {
        b.iter(|| {
            compcol::vec::compress_to_vec::<compcol::xpress::Xpress>(black_box(&data)).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
