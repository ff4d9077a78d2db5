#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Borrowed row views (`RowView`) against the owned decoder (`PropertyRow`): the same
//! rows in, the same values out, and the same inputs rejected.

use exmux_mapihttp::prop::{
    CellRef, PropTag, PropType, PropValue, PropertyRow, Reader, RowCell, RowView, decode_row_views,
};
use proptest::prelude::*;

fn cell_value() -> impl Strategy<Value = PropValue> {
    prop_oneof![
        any::<i16>().prop_map(PropValue::I16),
        any::<i32>().prop_map(PropValue::I32),
        any::<bool>().prop_map(PropValue::Bool),
        any::<i64>().prop_map(PropValue::I64),
        any::<u64>().prop_map(PropValue::Time),
        any::<u32>().prop_map(PropValue::Error),
        "[a-z \u{e9}\u{4e2d}]{0,10}".prop_map(PropValue::Unicode),
        prop::collection::vec(1u8..=0xFF, 0..10).prop_map(PropValue::String8),
        prop::collection::vec(any::<u8>(), 0..10).prop_map(PropValue::Binary),
        prop::collection::vec(any::<i32>(), 0..3).prop_map(PropValue::MvI32),
    ]
}

/// Cells with their columns. A PtypUnspecified column puts the type on the wire, and a
/// flagged row may have missing and error cells.
fn row() -> impl Strategy<Value = (Vec<PropTag>, PropertyRow)> {
    (
        prop::collection::vec((cell_value(), any::<bool>(), 0u8..4), 0..6),
        any::<bool>(),
    )
        .prop_map(|(cells, flagged)| {
            let mut columns = Vec::new();
            let mut row = Vec::new();
            for (id, (value, unspecified, kind)) in (1u16..).zip(cells) {
                let ptype = if unspecified {
                    PropType::UNSPECIFIED
                } else {
                    value.ptype()
                };
                columns.push(PropTag::new(id, ptype));
                row.push(match (flagged, kind) {
                    (true, 0) => RowCell::Missing {
                        ptype: unspecified.then(|| value.ptype()),
                    },
                    (true, 1) => RowCell::Error {
                        code: 0x8004_010F,
                        ptype: unspecified.then(|| value.ptype()),
                    },
                    _ => RowCell::Value(value),
                });
            }
            (
                columns,
                PropertyRow {
                    flagged,
                    cells: row,
                },
            )
        })
}

fn cell_matches(view: CellRef<'_>, owned: &RowCell) -> bool {
    match (view, owned) {
        (CellRef::Missing, RowCell::Missing { .. }) => true,
        (CellRef::Error { code }, RowCell::Error { code: expected, .. }) => code == *expected,
        (CellRef::Value { .. }, RowCell::Value(value)) => {
            view.to_value().unwrap().as_ref() == Some(value)
        }
        _ => false,
    }
}

proptest! {
    #[test]
    fn view_matches_owned_rows((columns, row) in row(), count in 1usize..4) {
        let mut bytes = Vec::new();
        for _ in 0..count {
            row.encode(&mut bytes, &columns);
        }
        bytes.push(0xEE);

        let mut owned_reader = Reader::new(&bytes);
        let mut view_reader = Reader::new(&bytes);
        let views = decode_row_views(&mut view_reader, count, &columns).unwrap();
        for view in &views {
            let owned = PropertyRow::decode(&mut owned_reader, &columns).unwrap();
            prop_assert_eq!(view.flagged(), owned.flagged);
            let cells: Vec<CellRef<'_>> = view.cells().collect();
            prop_assert_eq!(cells.len(), owned.cells.len());
            for (cell, expected) in cells.iter().zip(&owned.cells) {
                prop_assert!(cell_matches(*cell, expected), "{:?} against {:?}", cell, expected);
            }
        }
        prop_assert_eq!(view_reader.offset(), owned_reader.offset());
        prop_assert_eq!(view_reader.rest(), &[0xEE][..]);
    }

    #[test]
    fn view_rejects_what_owned_rejects((columns, row) in row(), cut in any::<prop::sample::Index>()) {
        let mut bytes = Vec::new();
        row.encode(&mut bytes, &columns);
        let end = cut.index(bytes.len() + 1);
        let prefix = bytes.get(..end).unwrap();
        let owned = PropertyRow::decode(&mut Reader::new(prefix), &columns);
        let view = RowView::decode(&mut Reader::new(prefix), &columns);
        prop_assert_eq!(owned.is_ok(), view.is_ok());
    }
}

proptest! {
    #[test]
    fn view_and_owned_agree_on_noise(
        bytes in prop::collection::vec(any::<u8>(), 0..64),
        types in prop::collection::vec(
            prop::sample::select(vec![0x0000u16, 0x0002, 0x0003, 0x000B, 0x0014, 0x001E, 0x001F, 0x0040, 0x0048, 0x0102, 0x1003, 0x1102, 0x000D, 0x0001]),
            0..5,
        ),
    ) {
        let columns: Vec<PropTag> = (1u16..).zip(types).map(|(id, t)| PropTag::new(id, PropType(t))).collect();
        let mut owned_reader = Reader::new(&bytes);
        let mut view_reader = Reader::new(&bytes);
        let owned = PropertyRow::decode(&mut owned_reader, &columns);
        let view = RowView::decode(&mut view_reader, &columns);
        prop_assert_eq!(owned.is_ok(), view.is_ok());
        if let (Ok(owned), Ok(view)) = (owned, view) {
            prop_assert_eq!(owned_reader.offset(), view_reader.offset());
            for (cell, expected) in view.cells().zip(&owned.cells) {
                prop_assert!(cell_matches(cell, expected), "{:?} against {:?}", cell, expected);
            }
        }
    }
}

#[test]
fn view_accessors() {
    let columns = [
        PropTag::new(0x674A, PropType::INTEGER64),
        PropTag::new(0x0037, PropType::STRING),
        PropTag::new(0x0E07, PropType::INTEGER32),
        PropTag::new(0x3008, PropType::TIME),
    ];
    let row = PropertyRow {
        flagged: false,
        cells: vec![
            RowCell::Value(PropValue::I64(0x0001_0000_0000_0A01)),
            RowCell::Value(PropValue::Unicode("Status report".into())),
            RowCell::Value(PropValue::I32(3)),
            RowCell::Value(PropValue::Time(134_090_000_000_000_000)),
        ],
    };
    let mut bytes = Vec::new();
    row.encode(&mut bytes, &columns);

    let view = RowView::decode(&mut Reader::new(&bytes), &columns).unwrap();
    assert_eq!(
        view.get(columns[0]).unwrap().as_u64(),
        Some(0x0001_0000_0000_0A01)
    );
    assert_eq!(
        view.get(columns[1]).unwrap().to_text().as_deref(),
        Some("Status report")
    );
    assert_eq!(view.get(columns[2]).unwrap().as_i32(), Some(3));
    assert_eq!(
        view.get(columns[3]).unwrap().as_u64(),
        Some(134_090_000_000_000_000)
    );
    assert_eq!(view.get(PropTag::new(0x1000, PropType::STRING)), None);
    assert_eq!(view.get(columns[2]).unwrap().as_u64(), None);
}

#[test]
fn query_rows_view_response() {
    use exmux_mapihttp::rop::{
        ResponseBody, RopError, RopResponse, RopResult, decode_query_rows_view,
    };

    let columns = [PropTag::new(0x0E07, PropType::INTEGER32)];
    let rows: Vec<PropertyRow> = (0..3)
        .map(|i| PropertyRow {
            flagged: false,
            cells: vec![RowCell::Value(PropValue::I32(i))],
        })
        .collect();
    let response = RopResponse::Result(RopResult {
        rop_id: 0x15,
        handle_index: 4,
        return_value: 0,
        body: ResponseBody::QueryRows { origin: 2, rows },
    });
    let mut bytes = Vec::new();
    response.try_encode(&mut bytes).unwrap();

    let view = decode_query_rows_view(&mut Reader::new(&bytes), &columns).unwrap();
    assert_eq!(view.handle_index, 4);
    assert_eq!(view.return_value, 0);
    assert_eq!(view.origin, 2);
    let values: Vec<Option<i32>> = view
        .rows
        .iter()
        .map(|row| row.cells().next().and_then(|cell| cell.as_i32()))
        .collect();
    assert_eq!(values, vec![Some(0), Some(1), Some(2)]);

    // A failure has no Origin and no rows.
    let failed = [0x15, 0x04, 0x0F, 0x01, 0x04, 0x80];
    let view = decode_query_rows_view(&mut Reader::new(&failed), &columns).unwrap();
    assert_eq!(view.return_value, 0x8004_010F);
    assert!(view.rows.is_empty());

    // Another ROP at that position is a typed error.
    let other = [0x12, 0x04, 0, 0, 0, 0, 0];
    assert!(matches!(
        decode_query_rows_view(&mut Reader::new(&other), &columns),
        Err(RopError::UnexpectedResponse { found_id: 0x12, .. })
    ));
}
