#![allow(clippy::unwrap_used, clippy::expect_used)]
//! FastTransfer streams: the gromox contents sync, a stream split across GetBuffer
//! responses at awkward places, and the writer.

use exmux_mapihttp::fxics::{
    FxElement, FxError, FxProp, FxReader, FxWriter, MessageChange, SyncEvent, SyncParser,
    encode_elements, marker, split_stream,
};
use exmux_mapihttp::ids::Guid;
use exmux_mapihttp::idset::{IcsState, IdSet, Replica};
use exmux_mapihttp::prop::{PropTag, PropValue, tags};
use exmux_mapihttp::rop::{ResponseBody, RopResponse};

fn parse_hex(text: &str) -> Vec<u8> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(|line| line.split_whitespace())
        .map(|pair| u8::from_str_radix(pair, 16).unwrap())
        .collect()
}

fn gromox_stream() -> Option<Vec<u8>> {
    let path = exmux_testkit::shared_path(
        "captures/mapi-gromox/12-Execute-ics-syncconfigure-contents-emptystate-getbuffer.fxstream.bin",
    )?;
    Some(std::fs::read(path).unwrap())
}

fn parse_events(elements: Vec<FxElement>) -> Vec<SyncEvent> {
    let mut parser = SyncParser::new();
    let mut events = Vec::new();
    for element in elements {
        parser.push(element, 0, &mut events).unwrap();
    }
    assert!(parser.is_done());
    events
}

#[test]
fn gromox_stream_lexes_and_round_trips() {
    let Some(stream) = gromox_stream() else {
        return;
    };
    assert_eq!(stream.len(), 23691);
    let elements = FxReader::read_all(&stream).unwrap();
    assert_eq!(elements.len(), 665);
    let count = |tag: u32| {
        elements
            .iter()
            .filter(|e| **e == FxElement::Marker(tag))
            .count()
    };
    assert_eq!(count(marker::INCR_SYNC_CHG), 10);
    assert_eq!(count(marker::INCR_SYNC_MESSAGE), 10);
    assert_eq!(count(marker::START_RECIP), 10);
    assert_eq!(count(marker::NEW_ATTACH), 1);
    assert_eq!(count(marker::INCR_SYNC_END), 1);
    assert_eq!(encode_elements(&elements), stream);
}

#[test]
fn gromox_stream_parses_as_contents_sync() {
    let Some(stream) = gromox_stream() else {
        return;
    };
    let events = parse_events(FxReader::read_all(&stream).unwrap());

    let SyncEvent::ProgressTotal(progress) = &events[0] else {
        panic!("{:?}", events[0])
    };
    assert_eq!(progress.len(), 32);
    let changes: Vec<&MessageChange> = events
        .iter()
        .filter_map(|e| match e {
            SyncEvent::MessageChange(change) => Some(&**change),
            _ => None,
        })
        .collect();
    assert_eq!(changes.len(), 10);

    let first = changes[0];
    assert_eq!(first.progress, Some((0x1EA, false)));
    let PropValue::Binary(source_key) = first.header_value(tags::PID_TAG_SOURCE_KEY).unwrap()
    else {
        panic!()
    };
    let xid = exmux_mapihttp::ids::Xid::decode(source_key, 0).unwrap();
    assert_eq!(xid.globcnt().unwrap().get(), 0x30000);
    assert_eq!(
        first.header_value(tags::PID_TAG_MID),
        Some(&PropValue::I64(0x0000_0300_0000_0001))
    );
    assert_eq!(
        first.header_value(tags::PID_TAG_ASSOCIATED),
        Some(&PropValue::Bool(false))
    );
    let subject = first
        .content
        .props
        .iter()
        .find(|p| p.tag == tags::PID_TAG_SUBJECT)
        .unwrap();
    assert_eq!(subject.value, PropValue::Unicode("peer smoke test".into()));
    let class = first
        .content
        .props
        .iter()
        .find(|p| p.tag == tags::PID_TAG_MESSAGE_CLASS_STRING8)
        .unwrap();
    assert_eq!(class.value, PropValue::String8(b"IPM.Note".to_vec()));
    assert_eq!(first.content.recipients.len(), 1);
    assert_eq!(
        changes
            .iter()
            .map(|c| c.content.attachments.len())
            .sum::<usize>(),
        1
    );

    let Some(SyncEvent::State(state)) = events.iter().rev().nth(1) else {
        panic!()
    };
    let replica = Replica::Guid(Guid::parse_str("00000001-18a5-6f7b-bcdc-ea1ed03c5657").unwrap());
    assert_eq!(
        state.idset_given.get(replica).unwrap().ranges(),
        &[(0x30000, 0x30004), (0x30052, 0x30056)]
    );
    assert_eq!(
        state.cnset_seen.get(replica).unwrap().ranges(),
        &[(1, 0x159)]
    );
    assert_eq!(
        state.cnset_seen_fai.get(replica).unwrap().ranges(),
        &[(1, 0x159)]
    );
    assert_eq!(
        state.cnset_read.get(replica).unwrap().ranges(),
        &[(1, 0x15A)]
    );
    assert_eq!(events.last(), Some(&SyncEvent::End));
}

#[test]
fn gromox_stream_split_everywhere() {
    let Some(stream) = gromox_stream() else {
        return;
    };
    let whole = FxReader::read_all(&stream).unwrap();
    // Buffer sizes that cut tags, lengths and values at every alignment.
    for size in [1, 2, 3, 5, 7, 64, 1000, 8191] {
        let mut reader = FxReader::new();
        let mut elements = Vec::new();
        for chunk in split_stream(&stream, size) {
            reader.feed(chunk);
            while let Some(element) = reader.next_element().unwrap() {
                elements.push(element);
            }
        }
        reader.finish().unwrap();
        assert_eq!(elements, whole, "buffer size {size}");
    }
}

#[test]
fn split_buffer_case_from_get_buffer_responses() {
    let Some(path) = exmux_testkit::shared_path("cases/inputs/C29-fasttransfer-split-buffer.hex")
    else {
        return;
    };
    let text = std::fs::read_to_string(path).unwrap();
    // Three "--- Execute" sections, each one ROP output buffer.
    let mut buffers: Vec<Vec<u8>> = Vec::new();
    for line in text.lines() {
        if line.starts_with("# --- Execute") {
            buffers.push(Vec::new());
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            buffers.last_mut().unwrap().extend(parse_hex(line));
        }
    }
    assert_eq!(buffers.len(), 3);

    let mut reader = FxReader::new();
    let mut elements = Vec::new();
    let mut statuses = Vec::new();
    for buffer in &buffers {
        let partial = exmux_mapihttp::rop::decode_response_buffer_partial(buffer).unwrap();
        assert_eq!(partial.stopped, None);
        let RopResponse::Result(result) = &partial.rops[0] else {
            panic!()
        };
        let ResponseBody::FastTransferBuffer {
            transfer_status,
            transfer_buffer,
            ..
        } = &result.body
        else {
            panic!()
        };
        statuses.push(*transfer_status);
        reader.feed(transfer_buffer);
        while let Some(element) = reader.next_element().unwrap() {
            elements.push(element);
        }
        if *transfer_status == 1 {
            // While Partial, a cut element or an open attachment is normal.
            assert!(reader.pending() > 0 || !reader.open_markers().is_empty());
        }
    }
    assert_eq!(statuses, vec![1, 1, 3]);
    reader.finish().unwrap();

    assert_eq!(elements.len(), 12);
    assert_eq!(elements[0], FxElement::Marker(marker::NEW_ATTACH));
    let FxElement::Property(data) = &elements[4] else {
        panic!()
    };
    assert_eq!(data.tag, tags::PID_TAG_ATTACH_DATA_BINARY);
    let PropValue::Binary(bytes) = &data.value else {
        panic!()
    };
    assert_eq!(bytes.len(), 48);
    let FxElement::Property(name) = &elements[9] else {
        panic!()
    };
    assert_eq!(name.value, PropValue::Unicode("notes.bin".into()));
    assert_eq!(elements[11], FxElement::Marker(marker::END_ATTACH));
}

#[test]
fn finish_rejects_cut_stream_and_open_markers() {
    let mut reader = FxReader::new();
    reader.feed(&[0x03, 0x00, 0x00, 0x40, 0x03, 0x00]);
    assert_eq!(
        reader.next_element().unwrap(),
        Some(FxElement::Marker(marker::NEW_ATTACH))
    );
    assert_eq!(reader.next_element().unwrap(), None);
    assert!(matches!(
        reader.finish(),
        Err(FxError::Incomplete {
            offset: 4,
            pending: 2
        })
    ));

    let mut reader = FxReader::new();
    reader.feed(&marker::NEW_ATTACH.to_le_bytes());
    reader.next_element().unwrap();
    assert!(matches!(reader.finish(), Err(FxError::Unbalanced { .. })));

    let mut reader = FxReader::new();
    reader.feed(&marker::END_ATTACH.to_le_bytes());
    assert!(matches!(
        reader.next_element(),
        Err(FxError::Unbalanced { .. })
    ));
}

#[test]
fn oversized_value_is_rejected_before_buffering() {
    let mut reader = FxReader::with_limit(1024);
    let mut bytes = tags::PID_TAG_ATTACH_DATA_BINARY.0.to_le_bytes().to_vec();
    bytes.extend_from_slice(&0x7FFF_FFFFu32.to_le_bytes());
    reader.feed(&bytes);
    assert!(matches!(
        reader.next_element(),
        Err(FxError::TooLarge { .. })
    ));
}

#[test]
fn writer_output_parses_back() {
    let guid = Guid([7; 16]);
    let mut state = IcsState::default();
    state.idset_given.insert_range(Replica::Guid(guid), 1, 5);
    state.cnset_seen.insert_range(Replica::Guid(guid), 1, 9);
    let mut deleted = IdSet::new();
    deleted.insert(Replica::Id(1), 0x42);
    let change = MessageChange {
        header: vec![FxProp {
            tag: tags::PID_TAG_SOURCE_KEY,
            name: None,
            value: PropValue::Binary(vec![7; 22]),
        }],
        progress: Some((100, false)),
        partial: false,
        content: exmux_mapihttp::fxics::MessageContent {
            props: vec![FxProp {
                tag: tags::PID_TAG_SUBJECT,
                name: None,
                value: PropValue::Unicode("hi".into()),
            }],
            recipients: vec![vec![]],
            attachments: vec![exmux_mapihttp::fxics::Attachment {
                props: vec![],
                embedded: Some(Box::default()),
            }],
        },
    };
    let mut writer = FxWriter::new();
    writer
        .message_change(&change)
        .deletions(&deleted, &IdSet::new())
        .state(&state, true)
        .end();
    let events = parse_events(FxReader::read_all(writer.bytes()).unwrap());
    assert_eq!(events[0], SyncEvent::MessageChange(Box::new(change)));
    assert_eq!(
        events[1],
        SyncEvent::Deletions {
            deleted: Some(deleted),
            no_longer_in_scope: None,
            expired: None
        }
    );
    assert_eq!(events[2], SyncEvent::State(state));
    assert_eq!(events[3], SyncEvent::End);
}

#[test]
fn named_property_element_round_trips() {
    let prop = FxProp {
        tag: PropTag(0x8001_001F),
        name: Some(exmux_mapihttp::prop::PropertyName {
            guid: Guid([1; 16]),
            kind: exmux_mapihttp::prop::NameKind::Name("Keywords".into()),
        }),
        value: PropValue::Unicode("x".into()),
    };
    let bytes = encode_elements(&[FxElement::Property(prop.clone())]);
    let decoded = FxElement::decode(&bytes, 0).unwrap().unwrap();
    assert_eq!(decoded, (FxElement::Property(prop), bytes.len()));
}

#[test]
fn hierarchy_sync_stream_parses() {
    let guid = Guid([9; 16]);
    let mut state = IcsState::default();
    state.idset_given.insert_range(Replica::Guid(guid), 1, 2);
    state.cnset_seen.insert(Replica::Guid(guid), 7);
    let folder = |name: &str| {
        vec![
            FxProp {
                tag: tags::PID_TAG_SOURCE_KEY,
                name: None,
                value: PropValue::Binary(vec![9; 22]),
            },
            FxProp {
                tag: tags::PID_TAG_DISPLAY_NAME,
                name: None,
                value: PropValue::Unicode(name.into()),
            },
        ]
    };
    let mut writer = FxWriter::new();
    writer
        .folder_change(&folder("Inbox"))
        .folder_change(&folder("Archive"))
        .state(&state, false)
        .end();

    let events = parse_events(FxReader::read_all(writer.bytes()).unwrap());
    assert_eq!(events.len(), 4);
    assert_eq!(events[0], SyncEvent::FolderChange(folder("Inbox")));
    assert_eq!(events[1], SyncEvent::FolderChange(folder("Archive")));
    assert_eq!(events[2], SyncEvent::State(state));
    assert_eq!(events[3], SyncEvent::End);
}

#[test]
fn sync_parser_rejects_out_of_place_markers() {
    let mut parser = SyncParser::new();
    let mut events = Vec::new();
    let error = parser
        .push(FxElement::Marker(marker::INCR_SYNC_MESSAGE), 0, &mut events)
        .unwrap_err();
    assert!(matches!(error, FxError::Grammar { offset: 0, .. }));

    let mut parser = SyncParser::new();
    parser
        .push(FxElement::Marker(marker::INCR_SYNC_END), 0, &mut events)
        .unwrap();
    let error = parser
        .push(FxElement::Marker(marker::INCR_SYNC_CHG), 4, &mut events)
        .unwrap_err();
    assert!(matches!(error, FxError::Grammar { offset: 4, .. }));
}
