#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Decoding a whole Execute response as a client receives it: the text preamble, the
//! body, and the RPC_HEADER_EXT segment with XOR and LZ77, beside memcpy.
//!
//! Run: `cargo bench -p exmux-mapihttp --bench body -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use exmux_mapihttp::body::{ExecuteResponse, ExecuteSuccess, Response, WireBody};
use exmux_mapihttp::ext::{self, EncodeOptions};
use exmux_mapihttp::http;

/// Builds a ROP output buffer of `rows` property rows with UTF-16 subjects, ids and times.
fn rop_payload(rows: usize) -> Vec<u8> {
    let mut out = vec![0x15, 0x01, 0, 0, 0, 0, 0x02];
    out.extend_from_slice(&(rows as u16).to_le_bytes());
    for i in 0..rows {
        out.push(0);
        for unit in format!("Status report {}", i % 97).encode_utf16() {
            out.extend_from_slice(&unit.to_le_bytes());
        }
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(0x0001u64 | ((0x1000 + i as u64) << 16)).to_le_bytes());
        out.extend_from_slice(&(0x01DC_6F3A_0000_0000u64 + i as u64 * 600_000_000).to_le_bytes());
        out.extend_from_slice(&((i % 4) as u32).to_le_bytes());
    }
    let rop_size = (out.len() + 2) as u16;
    let mut buffer = rop_size.to_le_bytes().to_vec();
    buffer.extend_from_slice(&out);
    buffer.extend_from_slice(&[1, 0, 0, 0]);
    buffer
}

fn response(options: EncodeOptions) -> Vec<u8> {
    let payload = rop_payload(600);
    let rop_buffer = ext::encode_chain(&[&payload], options).unwrap();
    let body = ExecuteResponse::Success(ExecuteSuccess {
        error_code: 0,
        flags: 0,
        rop_buffer,
        aux: Vec::new(),
    })
    .encode()
    .unwrap();
    let mut wire = Vec::new();
    http::write_preamble(1, 12, "Fri, 04 Dec 2026 20:08:24 GMT", &mut wire);
    wire.extend_from_slice(&body);
    wire
}

fn decode(wire: &[u8]) -> usize {
    let framed = http::parse_body(wire).unwrap();
    let Response::Success(execute) = ExecuteResponse::decode(&framed.body).unwrap() else {
        unreachable!("the benchmark builds a success body");
    };
    ext::decode_payload(&execute.rop_buffer).unwrap().len()
}

fn bench(c: &mut Criterion) {
    let plain = response(EncodeOptions::default());
    let packed = response(EncodeOptions {
        compress: true,
        xor: true,
    });
    let payload_len = rop_payload(600).len();
    println!(
        "ROP payload {payload_len} bytes; plain response {} bytes; compressed and obfuscated {} bytes",
        plain.len(),
        packed.len()
    );

    let mut group = c.benchmark_group("execute_response");
    group.throughput(Throughput::Bytes(payload_len as u64));
    group.bench_function("memcpy", |b| {
        let mut dst = vec![0u8; plain.len()];
        b.iter(|| dst.copy_from_slice(black_box(&plain)))
    });
    group.bench_function("decode/plain", |b| b.iter(|| decode(black_box(&plain))));
    group.bench_function("decode/lz77_xor", |b| b.iter(|| decode(black_box(&packed))));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
