#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Decoding a RopQueryRows response of 1000 rows (ids, UTF-16 subjects, flags, times),
//! beside a memcpy of the same bytes. The rows are kept small enough for the whole
//! response to fit one ROP buffer, whose RopSize field is 16 bits.
//!
//! Run with `cargo bench -p exmux-mapihttp --bench rows`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use exmux_mapihttp::ids::{GlobCnt, ObjectId};
use exmux_mapihttp::prop::Reader;
use exmux_mapihttp::prop::{PropTag, PropValue, PropertyRow, RowCell, tags};
use exmux_mapihttp::rop::{
    ResponseBody, ResponseContext, RopBuffer, RopRequest, RopResponse, RopResult,
    decode_query_rows_view, decode_response_buffer, encode_response_buffer, split_buffer,
};
use std::hint::black_box;
use std::time::Duration;

const COLUMNS: [PropTag; 4] = [
    tags::PID_TAG_MID,
    tags::PID_TAG_SUBJECT,
    tags::PID_TAG_MESSAGE_FLAGS,
    tags::PID_TAG_LAST_MODIFICATION_TIME,
];

fn query_rows_buffer() -> (Vec<u8>, Vec<RopRequest>) {
    let rows = (0..1000u64)
        .map(|i| PropertyRow {
            flagged: false,
            cells: vec![
                RowCell::Value(PropValue::I64(
                    ObjectId::from_parts(1, GlobCnt::new(0x30000 + i).unwrap()).0 as i64,
                )),
                RowCell::Value(PropValue::Unicode(format!("Status report {i:04}"))),
                RowCell::Value(PropValue::I32(if i % 3 == 0 { 1 } else { 3 })),
                RowCell::Value(PropValue::Time(134_090_000_000_000_000 + i * 10_000_000)),
            ],
        })
        .collect();
    let requests = vec![
        RopRequest::SetColumns {
            logon_id: 0,
            input_handle: 2,
            set_columns_flags: 0,
            tags: COLUMNS.to_vec(),
        },
        RopRequest::QueryRows {
            logon_id: 0,
            input_handle: 2,
            query_rows_flags: 0,
            forward_read: true,
            row_count: 1000,
        },
    ];
    let buffer = RopBuffer {
        rops: vec![
            RopResponse::Result(RopResult {
                rop_id: 0x12,
                handle_index: 2,
                return_value: 0,
                body: ResponseBody::TableStatus(0),
            }),
            RopResponse::Result(RopResult {
                rop_id: 0x15,
                handle_index: 2,
                return_value: 0,
                body: ResponseBody::QueryRows { origin: 2, rows },
            }),
        ],
        handles: vec![1, 2, 3],
    };
    let bytes = encode_response_buffer(&buffer);
    assert!(bytes.len() < 0xFFFF, "the response must fit one ROP buffer");
    (bytes, requests)
}

fn rows(c: &mut Criterion) {
    let (bytes, requests) = query_rows_buffer();
    let mut group = c.benchmark_group("query_rows_1000");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));

    group.bench_function("decode", |b| {
        b.iter(|| {
            let context = ResponseContext {
                requests: &requests,
                ..Default::default()
            };
            decode_response_buffer(black_box(&bytes), &context).unwrap()
        })
    });
    // The same buffer as borrowed row views: RopSetColumns decoded as usual, then the
    // RopQueryRows rows checked and cut out without owning their values.
    group.bench_function("decode_view", |b| {
        b.iter(|| {
            let (list, _handles) = split_buffer(black_box(&bytes)).unwrap();
            let mut reader = Reader::with_base(list, 2);
            RopResponse::decode(&mut reader, Some(&requests[0]), None).unwrap();
            let view = decode_query_rows_view(&mut reader, &COLUMNS).unwrap();
            assert_eq!(view.rows.len(), 1000);
            view.rows.len()
        })
    });
    group.bench_function("memcpy", |b| b.iter(|| black_box(&bytes).to_vec()));
    group.finish();
}

criterion_group!(benches, rows);
criterion_main!(benches);
