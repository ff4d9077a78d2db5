#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Property values, rows, restrictions and identifiers: round trips in both encodings and
//! known values.

use exmux_mapihttp::ids::{
    GlobCnt, Guid, LongTermId, ObjectId, PclOrder, PredecessorChangeList, Xid,
};
use exmux_mapihttp::prop::{
    NameKind, PropTag, PropType, PropValue, PropertyName, PropertyRow, Reader, RelOp, Restriction,
    RowCell, TaggedValue, ValueEncoding,
};
use proptest::prelude::*;

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..40)
}

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 äöü€😀]{0,20}"
}

fn string8() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(1u8..=255, 0..20)
}

fn finite_f64() -> impl Strategy<Value = f64> {
    -1e12f64..1e12
}

/// Every value type that both encodings carry.
fn value_strategy() -> impl Strategy<Value = PropValue> {
    let v = 0..6usize;
    prop_oneof![
        any::<i16>().prop_map(PropValue::I16),
        any::<i32>().prop_map(PropValue::I32),
        (-1e6f32..1e6).prop_map(PropValue::F32),
        finite_f64().prop_map(PropValue::F64),
        any::<i64>().prop_map(PropValue::Currency),
        finite_f64().prop_map(PropValue::FloatingTime),
        any::<u32>().prop_map(PropValue::Error),
        any::<bool>().prop_map(PropValue::Bool),
        any::<i64>().prop_map(PropValue::I64),
        string8().prop_map(PropValue::String8),
        text().prop_map(PropValue::Unicode),
        any::<u64>().prop_map(PropValue::Time),
        any::<[u8; 16]>().prop_map(|g| PropValue::Guid(Guid(g))),
        bytes().prop_map(PropValue::ServerId),
        bytes().prop_map(PropValue::Binary),
        prop::collection::vec(any::<i16>(), v.clone()).prop_map(PropValue::MvI16),
        prop::collection::vec(any::<i32>(), v.clone()).prop_map(PropValue::MvI32),
        prop::collection::vec(-1e6f32..1e6, v.clone()).prop_map(PropValue::MvF32),
        prop::collection::vec(finite_f64(), v.clone()).prop_map(PropValue::MvF64),
        prop::collection::vec(any::<i64>(), v.clone()).prop_map(PropValue::MvCurrency),
        prop::collection::vec(finite_f64(), v.clone()).prop_map(PropValue::MvFloatingTime),
        prop::collection::vec(any::<i64>(), v.clone()).prop_map(PropValue::MvI64),
        prop::collection::vec(string8(), v.clone()).prop_map(PropValue::MvString8),
        prop::collection::vec(text(), v.clone()).prop_map(PropValue::MvUnicode),
        prop::collection::vec(any::<u64>(), v.clone()).prop_map(PropValue::MvTime),
        prop::collection::vec(any::<[u8; 16]>().prop_map(Guid), v.clone())
            .prop_map(PropValue::MvGuid),
        prop::collection::vec(bytes(), v).prop_map(PropValue::MvBinary),
    ]
}

fn tagged() -> impl Strategy<Value = TaggedValue> {
    (1u16..0x7FFF, value_strategy()).prop_map(|(id, value)| TaggedValue {
        tag: PropTag::new(id, value.ptype()),
        value,
    })
}

fn restriction_strategy() -> impl Strategy<Value = Restriction> {
    let leaf = prop_oneof![
        (any::<u8>(), any::<u32>(), tagged()).prop_map(|(op, tag, value)| Restriction::Property {
            op: RelOp(op),
            tag: PropTag(tag),
            value
        }),
        (any::<u16>(), any::<u16>(), any::<u32>(), tagged()).prop_map(
            |(fuzzy_low, fuzzy_high, tag, value)| Restriction::Content {
                fuzzy_low,
                fuzzy_high,
                tag: PropTag(tag),
                value
            }
        ),
        (any::<u8>(), any::<u32>(), any::<u32>()).prop_map(|(op, a, b)| {
            Restriction::CompareProps {
                op: RelOp(op),
                tag1: PropTag(a),
                tag2: PropTag(b),
            }
        }),
        (any::<u8>(), any::<u32>(), any::<u32>()).prop_map(|(op, tag, mask)| {
            Restriction::Bitmask {
                op,
                tag: PropTag(tag),
                mask,
            }
        }),
        (any::<u8>(), any::<u32>(), any::<u32>()).prop_map(|(op, tag, size)| Restriction::Size {
            op: RelOp(op),
            tag: PropTag(tag),
            size
        }),
        any::<u32>().prop_map(|tag| Restriction::Exist(PropTag(tag))),
    ];
    leaf.prop_recursive(3, 16, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Restriction::And),
            prop::collection::vec(inner.clone(), 0..4).prop_map(Restriction::Or),
            inner.clone().prop_map(|r| Restriction::Not(Box::new(r))),
            (any::<u32>(), inner.clone()).prop_map(|(tag, r)| Restriction::SubObject {
                subobject: PropTag(tag),
                restriction: Box::new(r)
            }),
            (any::<u32>(), inner.clone()).prop_map(|(count, r)| Restriction::Count {
                count,
                restriction: Box::new(r)
            }),
            (
                prop::collection::vec(tagged(), 0..3),
                prop::option::of(inner)
            )
                .prop_map(|(values, r)| Restriction::Comment {
                    values,
                    restriction: r.map(Box::new)
                }),
        ]
    })
}

proptest! {
    #[test]
    fn value_round_trip_rop(value in value_strategy()) {
        let mut out = Vec::new();
        value.encode(&mut out, ValueEncoding::Rop);
        let mut reader = Reader::new(&out);
        let decoded = PropValue::decode(&mut reader, value.ptype(), ValueEncoding::Rop).unwrap();
        prop_assert!(reader.is_empty());
        prop_assert_eq!(decoded, value);
    }

    #[test]
    fn value_round_trip_fast_transfer(value in value_strategy()) {
        let mut out = Vec::new();
        value.encode(&mut out, ValueEncoding::FastTransfer);
        let mut reader = Reader::new(&out);
        let decoded =
            PropValue::decode(&mut reader, value.ptype(), ValueEncoding::FastTransfer).unwrap();
        prop_assert!(reader.is_empty());
        prop_assert_eq!(decoded, value);
    }

    #[test]
    fn restriction_round_trip(restriction in restriction_strategy()) {
        let mut out = Vec::new();
        restriction.encode(&mut out);
        let mut reader = Reader::new(&out);
        prop_assert_eq!(Restriction::decode(&mut reader).unwrap(), restriction);
        prop_assert!(reader.is_empty());
    }

    #[test]
    fn row_round_trip(
        cells in prop::collection::vec((value_strategy(), 0u8..3, any::<u32>()), 0..6),
        flagged in any::<bool>(),
    ) {
        let columns: Vec<PropTag> = cells
            .iter()
            .enumerate()
            .map(|(i, (value, _, _))| PropTag::new(i as u16 + 1, value.ptype()))
            .collect();
        let cells: Vec<RowCell> = cells
            .into_iter()
            .map(|(value, kind, code)| match (flagged, kind) {
                (true, 1) => RowCell::Missing { ptype: None },
                (true, 2) => RowCell::Error { code, ptype: None },
                _ => RowCell::Value(value),
            })
            .collect();
        let row = PropertyRow { flagged, cells };
        let mut out = Vec::new();
        row.encode(&mut out, &columns);
        let mut reader = Reader::new(&out);
        prop_assert_eq!(PropertyRow::decode(&mut reader, &columns).unwrap(), row);
        prop_assert!(reader.is_empty());
    }

    #[test]
    fn typed_row_round_trip(values in prop::collection::vec(value_strategy(), 0..5)) {
        // PtypUnspecified columns carry each value's own type before it.
        let columns = vec![PropTag::new(1, PropType::UNSPECIFIED); values.len()];
        let row = PropertyRow { flagged: false, cells: values.into_iter().map(RowCell::Value).collect() };
        let mut out = Vec::new();
        row.encode(&mut out, &columns);
        prop_assert_eq!(PropertyRow::decode(&mut Reader::new(&out), &columns).unwrap(), row);
    }

    #[test]
    fn object_id_parts(replid in any::<u16>(), counter in 0u64..=0xFFFF_FFFF_FFFF) {
        let id = ObjectId::from_parts(replid, GlobCnt::new(counter).unwrap());
        prop_assert_eq!(id.replid(), replid);
        prop_assert_eq!(id.globcnt().get(), counter);
    }

    #[test]
    fn long_term_id_round_trip(guid in any::<[u8; 16]>(), counter in 0u64..=0xFFFF_FFFF_FFFF, pad in any::<u16>()) {
        let id = LongTermId { database_guid: Guid(guid), globcnt: GlobCnt::new(counter).unwrap(), pad };
        let mut out = Vec::new();
        id.encode(&mut out);
        prop_assert_eq!(LongTermId::decode(&out, 0).unwrap(), id);
    }

    #[test]
    fn pcl_round_trip(entries in prop::collection::vec((any::<[u8; 16]>(), prop::collection::vec(any::<u8>(), 1..=8)), 0..5)) {
        let pcl: PredecessorChangeList = entries
            .iter()
            .map(|(guid, local)| Xid::new(Guid(*guid), local).unwrap())
            .collect();
        let decoded = PredecessorChangeList::decode(&pcl.to_vec(), 0).unwrap();
        prop_assert_eq!(&decoded, &pcl);
        prop_assert!(pcl.includes(&pcl));
    }

    #[test]
    fn property_name_round_trip(guid in any::<[u8; 16]>(), lid in any::<u32>(), name in text(), use_name in any::<bool>()) {
        let kind = if use_name { NameKind::Name(name) } else { NameKind::Lid(lid) };
        let property = PropertyName { guid: Guid(guid), kind };
        let mut out = Vec::new();
        property.encode(&mut out);
        prop_assert_eq!(PropertyName::decode(&mut Reader::new(&out)).unwrap(), property.clone());
        let mut out = Vec::new();
        property.encode_fast_transfer(&mut out);
        prop_assert_eq!(PropertyName::decode_fast_transfer(&mut Reader::new(&out)).unwrap(), property);
    }
}

#[test]
fn object_id_known_answer() {
    // Bytes 01 00 00 00 00 33 51 09: REPLID 1, counter 0x000000335109.
    let id = ObjectId(u64::from_le_bytes([
        0x01, 0x00, 0x00, 0x00, 0x00, 0x33, 0x51, 0x09,
    ]));
    assert_eq!(id, ObjectId(0x0951_3300_0000_0001));
    assert_eq!(id.replid(), 1);
    assert_eq!(id.globcnt().get(), 0x33_5109);
}

#[test]
fn pcl_comparison_rule() {
    let server = Guid([1; 16]);
    let client = Guid([2; 16]);
    let at = |guid, n: u64| Xid::from_globcnt(guid, GlobCnt::new(n).unwrap());

    let base: PredecessorChangeList = [at(server, 10)].into_iter().collect();
    let mut ours = base.clone();
    ours.merge(at(client, 1));
    assert_eq!(ours.xids().len(), 2);
    assert_eq!(ours.compare(&base), PclOrder::FirstNewer);
    assert_eq!(base.compare(&ours), PclOrder::SecondNewer);
    assert_eq!(ours.compare(&ours.clone()), PclOrder::Equal);

    let mut theirs = base.clone();
    theirs.merge(at(server, 11));
    assert_eq!(theirs.xids().len(), 1, "one entry per namespace");
    assert_eq!(ours.compare(&theirs), PclOrder::Conflict);

    // A lower local id does not replace a higher one.
    let mut kept = theirs.clone();
    kept.merge(at(server, 5));
    assert_eq!(kept, theirs);
}

#[test]
fn xid_length_limits() {
    assert!(Xid::decode(&[0; 16], 0).is_err());
    assert!(Xid::decode(&[0; 25], 0).is_err());
    assert_eq!(Xid::decode(&[0; 22], 0).unwrap().local_id().len(), 6);
    assert!(PredecessorChangeList::decode(&[0x30, 0, 0], 0).is_err());
}

#[test]
fn boolean_width_differs_by_encoding() {
    let mut rop = Vec::new();
    PropValue::Bool(true).encode(&mut rop, ValueEncoding::Rop);
    assert_eq!(rop, [1]);
    let mut fast_transfer = Vec::new();
    PropValue::Bool(true).encode(&mut fast_transfer, ValueEncoding::FastTransfer);
    assert_eq!(fast_transfer, [1, 0]);
}

#[test]
fn huge_counts_are_rejected_before_allocating() {
    // A multi-valued count of 2^32-1 with four bytes behind it.
    let bytes = [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0];
    let result = PropValue::decode(
        &mut Reader::new(&bytes),
        PropType(0x1003),
        ValueEncoding::Rop,
    );
    assert!(result.is_err());
    let unknown = PropValue::decode(
        &mut Reader::new(&bytes),
        PropType(0x0099),
        ValueEncoding::Rop,
    );
    assert!(unknown.is_err());
}

#[test]
fn tagged_value_checks_type() {
    assert!(TaggedValue::new(PropTag(0x0037_001F), PropValue::Unicode("x".into())).is_some());
    assert!(TaggedValue::new(PropTag(0x0037_001F), PropValue::I32(1)).is_none());
}

// NameSize is one byte: a name of more than 126 UTF-16 code units cannot be carried in
// the ROP form, and its encoding must still state exactly the bytes it writes, or every
// ROP after it in the buffer is misread (found by the ROP response fuzz target).
#[test]
fn property_name_too_long_is_cut_to_fit() {
    let long = "é".repeat(100) + &"😀".repeat(100);
    let property = PropertyName {
        guid: Guid([7; 16]),
        kind: NameKind::Name(long.clone()),
    };
    let mut out = Vec::new();
    property.encode(&mut out);
    out.extend_from_slice(&[0xAB, 0xCD]);

    let size = usize::from(out[17]);
    assert!(size <= 254, "NameSize {size}");
    assert_eq!(
        out.len(),
        1 + 16 + 1 + size + 2,
        "NameSize must equal the bytes written"
    );

    let mut reader = Reader::new(&out);
    let decoded = PropertyName::decode(&mut reader).unwrap();
    let NameKind::Name(name) = decoded.kind else {
        panic!("decoded kind is not a name: {:?}", decoded.kind);
    };
    assert!(
        long.starts_with(&name),
        "the name is cut at a character boundary"
    );
    assert_eq!(name.encode_utf16().count(), 126);
    assert_eq!(
        reader.remaining(),
        2,
        "the bytes after the name stay in place"
    );
}
