#![allow(clippy::unwrap_used, clippy::expect_used)]
//! RecipientRow (MS-OXCDATA 2.8.3): the recipient that Outlook added with
//! RopModifyRecipients in a real capture, built rows of each address type, and the
//! typed errors for rows whose fields disagree with their flags.

use exmux_mapihttp::prop::{PropTag, PropType, PropValue, PropertyRow, RowCell};
use exmux_mapihttp::rop::{
    DistributionListRecipient, ModifyRecipientRow, OpenRecipientRow, RecipientFlags, RecipientRow,
    RopError, RopRequest, RopString, X500Recipient, decode_request_buffer,
};
use proptest::prelude::*;

fn parse_hex(text: &str) -> Vec<u8> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(|line| line.split_whitespace())
        .map(|pair| u8::from_str_radix(pair, 16).unwrap())
        .collect()
}

#[test]
fn outlook_modify_recipients_row() {
    let Some(path) = exmux_testkit::shared_path("captures/mapi/rop-request-buffer-1.hex") else {
        return;
    };
    let bytes = parse_hex(&std::fs::read_to_string(path).unwrap());
    let buffer = decode_request_buffer(&bytes).unwrap();
    let RopRequest::ModifyRecipients { columns, rows, .. } = &buffer.rops[1] else {
        panic!(
            "second ROP is not RopModifyRecipients: {:?}",
            buffer.rops[1]
        );
    };
    let recipient = rows[0].recipient(columns).unwrap().unwrap();

    // 0x0651: type X500DN, D, S, U and I.
    assert_eq!(recipient.flags, RecipientFlags(0x0651));
    assert_eq!(recipient.flags.address_type(), RecipientFlags::TYPE_X500DN);
    assert_eq!(
        recipient.x500,
        Some(X500Recipient {
            address_prefix_used: 69,
            display_type: 0,
            x500_dn: b"Jkerihuel".to_vec(),
        })
    );
    assert_eq!(recipient.email_address, None);
    assert_eq!(
        recipient.display_name,
        Some(RopString::Unicode("Julien Kerihuel".into()))
    );
    assert_eq!(
        recipient.simple_display_name,
        Some(RopString::Unicode("jkerihuel".into()))
    );
    assert_eq!(recipient.transmittable_display_name, None);
    assert_eq!(usize::from(recipient.column_count), columns.len());
    assert!(!recipient.properties.flagged);
    assert_eq!(recipient.properties.cells.len(), 12);
    assert_eq!(
        recipient.properties.cells[11],
        RowCell::Value(PropValue::I32(0))
    );

    let again = recipient.to_bytes(columns).unwrap();
    assert_eq!(again, rows[0].recipient_row);

    // The fuzz entry point re-encodes this recipient too, and must accept it.
    exmux_mapihttp::rop::fuzz::rop_buffers(&bytes);
}

fn columns() -> Vec<PropTag> {
    vec![
        PropTag::new(0x0FFE, PropType::INTEGER32),
        PropTag::new(0x3001, PropType::STRING),
    ]
}

#[test]
fn smtp_recipient_round_trip() {
    let columns = columns();
    let mut recipient = RecipientRow::smtp("Ann Example", "ann@example.test");
    recipient.column_count = 2;
    recipient.properties = PropertyRow {
        flagged: true,
        cells: vec![
            RowCell::Value(PropValue::I32(6)),
            RowCell::Missing { ptype: None },
        ],
    };

    let row = ModifyRecipientRow::new(1, 1, &recipient, &columns).unwrap();
    let bytes = &row.recipient_row;
    // RecipientFlags 0x0619: type SMTP, E, D, U and I.
    assert_eq!(bytes.get(..2), Some(&[0x1B, 0x06][..]));
    assert_eq!(row.recipient(&columns).unwrap(), Some(recipient));
}

#[test]
fn distribution_list_and_address_type_round_trip() {
    let columns = columns();
    let list = RecipientRow {
        flags: RecipientFlags(RecipientFlags::TYPE_PERSONAL_DISTRIBUTION_LIST1 | RecipientFlags::D),
        x500: None,
        distribution_list: Some(DistributionListRecipient {
            entry_id: vec![1, 2, 3],
            search_key: b"SMTP:LIST@EXAMPLE.TEST\0".to_vec(),
        }),
        address_type: None,
        email_address: None,
        display_name: Some(RopString::String8(b"List".to_vec())),
        simple_display_name: None,
        transmittable_display_name: None,
        column_count: 1,
        properties: PropertyRow {
            flagged: false,
            cells: vec![RowCell::Value(PropValue::I32(6))],
        },
    };
    let bytes = list.to_bytes(&columns).unwrap();
    assert_eq!(RecipientRow::decode(&bytes, &columns, 0).unwrap(), list);

    let other = RecipientRow {
        flags: RecipientFlags(RecipientFlags::O | RecipientFlags::E | RecipientFlags::U),
        distribution_list: None,
        address_type: Some(b"X400".to_vec()),
        email_address: Some(RopString::Unicode("c=us;a= ;p=x;o=y;s=z".into())),
        display_name: None,
        column_count: 0,
        properties: PropertyRow {
            flagged: false,
            cells: Vec::new(),
        },
        ..list
    };
    let bytes = other.to_bytes(&columns).unwrap();
    assert_eq!(bytes.get(2..7), Some(&b"X400\0"[..]));
    assert_eq!(RecipientRow::decode(&bytes, &columns, 0).unwrap(), other);
}

#[test]
fn flags_disagreeing_with_fields_rejected() {
    let columns = columns();

    let mut no_display_flag = RecipientRow::smtp("Ann", "ann@example.test");
    no_display_flag.flags = RecipientFlags(no_display_flag.flags.0 & !RecipientFlags::D);
    assert!(matches!(
        no_display_flag.to_bytes(&columns),
        Err(RopError::InvalidRecipientRow { .. })
    ));

    let mut narrow = RecipientRow::smtp("Ann", "ann@example.test");
    narrow.display_name = Some(RopString::String8(b"Ann".to_vec()));
    assert!(matches!(
        narrow.to_bytes(&columns),
        Err(RopError::InvalidRecipientRow { .. })
    ));

    let mut x500_without_type = RecipientRow::smtp("Ann", "ann@example.test");
    x500_without_type.x500 = Some(X500Recipient {
        address_prefix_used: 0,
        display_type: 0,
        x500_dn: b"/o=x".to_vec(),
    });
    assert!(matches!(
        x500_without_type.to_bytes(&columns),
        Err(RopError::InvalidRecipientRow { .. })
    ));

    let mut too_many_columns = RecipientRow::smtp("Ann", "ann@example.test");
    too_many_columns.column_count = 3;
    assert!(matches!(
        too_many_columns.to_bytes(&columns),
        Err(RopError::InvalidRecipientRow { .. })
    ));
}

#[test]
fn malformed_rows_rejected() {
    let columns = columns();
    let bytes = RecipientRow::smtp("Ann", "ann@example.test")
        .to_bytes(&columns)
        .unwrap();

    // Cut anywhere, the row is a typed error, never a panic.
    for end in 0..bytes.len() {
        let cut = bytes.get(..end).unwrap();
        assert!(
            RecipientRow::decode(cut, &columns, 0).is_err(),
            "cut at {end}"
        );
    }

    let mut trailing = bytes.clone();
    trailing.push(0);
    assert_eq!(
        RecipientRow::decode(&trailing, &columns, 100).unwrap_err(),
        RopError::TrailingBytes {
            offset: 100 + bytes.len(),
            len: 1,
        }
    );

    // RecipientColumnCount 3 over a column set of 2.
    let mut over = bytes;
    let count_at = over.len() - 3;
    over[count_at] = 3;
    assert!(matches!(
        RecipientRow::decode(&over, &columns, 0),
        Err(RopError::Wire(_))
    ));
}

#[test]
fn open_message_row_accessor() {
    let columns = columns();
    let recipient = RecipientRow::smtp("Bob", "bob@example.test");
    let row = OpenRecipientRow {
        recipient_type: 2,
        code_page_id: 0x04E4,
        reserved: 0,
        recipient_row: recipient.to_bytes(&columns).unwrap(),
    };
    assert_eq!(row.recipient(&columns).unwrap(), recipient);
}

fn string8() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(1u8..=0xFF, 0..12)
}

fn rop_string(unicode: bool) -> BoxedStrategy<RopString> {
    if unicode {
        "[a-zA-Z0-9 @.\u{e9}\u{4e2d}]{0,12}"
            .prop_map(RopString::Unicode)
            .boxed()
    } else {
        string8().prop_map(RopString::String8).boxed()
    }
}

/// A RecipientRow whose fields agree with its flags, over `columns()`.
fn recipient() -> impl Strategy<Value = RecipientRow> {
    (0u16..8, any::<bool>(), any::<bool>(), any::<u16>()).prop_flat_map(
        |(kind, unicode, other_type, extra)| {
            // R, S and N change no layout; E, D, I and T are drawn from `extra` too.
            let mut flags = kind | (extra & 0x01F8 & !RecipientFlags::U);
            flags |= extra & RecipientFlags::I;
            if unicode {
                flags |= RecipientFlags::U;
            }
            if other_type {
                flags |= RecipientFlags::O;
            }
            let flags = RecipientFlags(flags);
            let optional = |flag: u16| {
                let present = flags.has(flag);
                rop_string(unicode).prop_map(move |s| present.then_some(s))
            };
            let x500 = (any::<u8>(), any::<u8>(), string8()).prop_map(move |(a, d, dn)| {
                (kind == RecipientFlags::TYPE_X500DN).then_some(X500Recipient {
                    address_prefix_used: a,
                    display_type: d,
                    x500_dn: dn,
                })
            });
            let list = (
                prop::collection::vec(any::<u8>(), 0..8),
                prop::collection::vec(any::<u8>(), 0..8),
            )
                .prop_map(move |(entry_id, search_key)| {
                    (kind >= RecipientFlags::TYPE_PERSONAL_DISTRIBUTION_LIST1).then_some(
                        DistributionListRecipient {
                            entry_id,
                            search_key,
                        },
                    )
                });
            let address_type = string8().prop_map(move |t| {
                (kind == RecipientFlags::TYPE_NONE && flags.has(RecipientFlags::O)).then_some(t)
            });
            let properties =
                (any::<bool>(), any::<i32>(), 0u16..=2).prop_map(|(flagged, number, count)| {
                    let cells = [
                        RowCell::Value(PropValue::I32(number)),
                        if flagged {
                            RowCell::Missing { ptype: None }
                        } else {
                            RowCell::Value(PropValue::Unicode("x".into()))
                        },
                    ];
                    (
                        count,
                        PropertyRow {
                            flagged,
                            cells: cells.into_iter().take(usize::from(count)).collect(),
                        },
                    )
                });
            (
                x500,
                list,
                address_type,
                optional(RecipientFlags::E),
                optional(RecipientFlags::D),
                optional(RecipientFlags::I),
                optional(RecipientFlags::T),
                properties,
            )
                .prop_map(
                    move |(x500, list, address_type, email, display, simple, transmit, props)| {
                        RecipientRow {
                            flags,
                            x500,
                            distribution_list: list,
                            address_type,
                            email_address: email,
                            display_name: display,
                            simple_display_name: simple,
                            transmittable_display_name: transmit,
                            column_count: props.0,
                            properties: props.1,
                        }
                    },
                )
        },
    )
}

proptest! {
    #[test]
    fn recipient_row_round_trip(recipient in recipient()) {
        let columns = columns();
        let bytes = recipient.to_bytes(&columns).unwrap();
        prop_assert_eq!(RecipientRow::decode(&bytes, &columns, 0).unwrap(), recipient);
    }
}
