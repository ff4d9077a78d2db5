#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Property tests: every ROP request and response encodes and decodes back to itself,
//! and whole buffers round-trip through the context-aware decoder.

use exmux_mapihttp::ids::{GlobCnt, Guid, LongTermId, ObjectId};
use exmux_mapihttp::notify::Notification;
use exmux_mapihttp::prop::{
    NameKind, PropTag, PropValue, PropertyName, PropertyRow, Reader, RelOp, Restriction, RowCell,
    TaggedValue,
};
use exmux_mapihttp::rop::{
    GhostInfo, LogonResponse, MessageReadState, ModifyRecipientRow, OpenMessageResponse,
    OpenRecipientRow, PropertyProblem, ReadRecipientRow, ReadStatusChange, ResponseBody,
    ResponseContext, RopBuffer, RopRequest, RopResponse, RopResult, RopString, SortOrder,
    TypedString, decode_request_buffer, decode_response_buffer, encode_request_buffer,
    encode_response_buffer, rop_id,
};
use proptest::prelude::*;

fn id() -> impl Strategy<Value = ObjectId> {
    any::<u64>().prop_map(ObjectId)
}

fn ids() -> impl Strategy<Value = Vec<ObjectId>> {
    prop::collection::vec(id(), 0..5)
}

fn blob() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..24)
}

fn tags() -> impl Strategy<Value = Vec<PropTag>> {
    prop::collection::vec(any::<u32>().prop_map(PropTag), 0..5)
}

fn text() -> impl Strategy<Value = String> {
    "[a-z0-9 ]{0,12}"
}

fn nul8() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(1u8..=255, 0..12)
}

fn value() -> impl Strategy<Value = TaggedValue> {
    prop_oneof![
        any::<i32>().prop_map(PropValue::I32),
        any::<bool>().prop_map(PropValue::Bool),
        any::<i64>().prop_map(PropValue::I64),
        text().prop_map(PropValue::Unicode),
        blob().prop_map(PropValue::Binary),
        prop::collection::vec(blob(), 0..3).prop_map(PropValue::MvBinary),
    ]
    .prop_flat_map(|v| {
        (1u16..0x7FFF).prop_map(move |pid| TaggedValue {
            tag: PropTag::new(pid, v.ptype()),
            value: v.clone(),
        })
    })
}

fn values() -> impl Strategy<Value = Vec<TaggedValue>> {
    prop::collection::vec(value(), 0..4)
}

fn rop_string() -> impl Strategy<Value = (bool, RopString)> {
    prop_oneof![
        text().prop_map(|t| (true, RopString::Unicode(t))),
        nul8().prop_map(|t| (false, RopString::String8(t))),
    ]
}

fn restriction() -> impl Strategy<Value = Option<Restriction>> {
    prop::option::of(prop_oneof![
        any::<u32>().prop_map(|t| Restriction::Exist(PropTag(t))),
        (any::<u8>(), value()).prop_map(|(op, value)| Restriction::Property {
            op: RelOp(op),
            tag: value.tag,
            value
        }),
    ])
}

fn name() -> impl Strategy<Value = PropertyName> {
    (
        any::<[u8; 16]>(),
        prop_oneof![
            any::<u32>().prop_map(NameKind::Lid),
            text().prop_map(NameKind::Name)
        ],
    )
        .prop_map(|(guid, kind)| PropertyName {
            guid: Guid(guid),
            kind,
        })
}

type H = (u8, u8, u8);

fn handles() -> impl Strategy<Value = H> {
    (any::<u8>(), any::<u8>(), any::<u8>())
}

fn requests_a() -> impl Strategy<Value = RopRequest> {
    prop_oneof![
        handles().prop_map(|(l, i, _)| RopRequest::Release {
            logon_id: l,
            input_handle: i
        }),
        (handles(), id(), any::<u8>()).prop_map(|((l, i, o), f, m)| RopRequest::OpenFolder {
            logon_id: l,
            input_handle: i,
            output_handle: o,
            folder_id: f,
            open_mode_flags: m
        }),
        (handles(), any::<u16>(), id(), any::<u8>(), id()).prop_map(|((l, i, o), c, f, m, mid)| {
            RopRequest::OpenMessage {
                logon_id: l,
                input_handle: i,
                output_handle: o,
                code_page_id: c,
                folder_id: f,
                open_mode_flags: m,
                message_id: mid,
            }
        }),
        (handles(), any::<u8>()).prop_map(|((l, i, o), t)| RopRequest::GetHierarchyTable {
            logon_id: l,
            input_handle: i,
            output_handle: o,
            table_flags: t
        }),
        (handles(), any::<u8>()).prop_map(|((l, i, o), t)| RopRequest::GetContentsTable {
            logon_id: l,
            input_handle: i,
            output_handle: o,
            table_flags: t
        }),
        (handles(), any::<u16>(), id(), any::<bool>()).prop_map(|((l, i, o), c, f, a)| {
            RopRequest::CreateMessage {
                logon_id: l,
                input_handle: i,
                output_handle: o,
                code_page_id: c,
                folder_id: f,
                associated: a,
            }
        }),
        (handles(), any::<u16>(), any::<u16>(), tags()).prop_map(|((l, i, _), s, u, t)| {
            RopRequest::GetPropertiesSpecific {
                logon_id: l,
                input_handle: i,
                property_size_limit: s,
                want_unicode: u,
                tags: t,
            }
        }),
        (handles(), any::<u16>(), any::<u16>()).prop_map(|((l, i, _), s, u)| {
            RopRequest::GetPropertiesAll {
                logon_id: l,
                input_handle: i,
                property_size_limit: s,
                want_unicode: u,
            }
        }),
        handles().prop_map(|(l, i, _)| RopRequest::GetPropertiesList {
            logon_id: l,
            input_handle: i
        }),
        (handles(), values()).prop_map(|((l, i, _), v)| RopRequest::SetProperties {
            logon_id: l,
            input_handle: i,
            values: v
        }),
    ]
}

fn requests_b() -> impl Strategy<Value = RopRequest> {
    prop_oneof![
        (handles(), tags()).prop_map(|((l, i, _), t)| RopRequest::DeleteProperties {
            logon_id: l,
            input_handle: i,
            tags: t
        }),
        (handles(), any::<u8>()).prop_map(|((l, i, r), s)| RopRequest::SaveChangesMessage {
            logon_id: l,
            response_handle: r,
            input_handle: i,
            save_flags: s
        }),
        (handles(), any::<u32>()).prop_map(|((l, i, _), r)| RopRequest::RemoveAllRecipients {
            logon_id: l,
            input_handle: i,
            reserved: r
        }),
        (
            handles(),
            tags(),
            prop::collection::vec((any::<u32>(), any::<u8>(), blob()), 0..3)
        )
            .prop_map(|((l, i, _), columns, rows)| RopRequest::ModifyRecipients {
                logon_id: l,
                input_handle: i,
                columns,
                rows: rows
                    .into_iter()
                    .map(
                        |(row_id, recipient_type, recipient_row)| ModifyRecipientRow {
                            row_id,
                            recipient_type,
                            recipient_row,
                        }
                    )
                    .collect(),
            }),
        (handles(), any::<u32>(), any::<u16>()).prop_map(|((l, i, _), r, x)| {
            RopRequest::ReadRecipients {
                logon_id: l,
                input_handle: i,
                row_id: r,
                reserved: x,
            }
        }),
        (handles(), any::<u8>(), tags()).prop_map(|((l, i, _), f, t)| RopRequest::SetColumns {
            logon_id: l,
            input_handle: i,
            set_columns_flags: f,
            tags: t
        }),
        (
            handles(),
            any::<u8>(),
            any::<u16>(),
            any::<u16>(),
            prop::collection::vec((any::<u32>(), any::<u8>()), 0..3)
        )
            .prop_map(|((l, i, _), f, c, e, s)| RopRequest::SortTable {
                logon_id: l,
                input_handle: i,
                sort_table_flags: f,
                categorized_count: c,
                expanded_count: e,
                sort_orders: s
                    .into_iter()
                    .map(|(t, o)| SortOrder {
                        tag: PropTag(t),
                        order: o
                    })
                    .collect(),
            }),
        (handles(), any::<u8>(), restriction()).prop_map(|((l, i, _), f, r)| {
            RopRequest::Restrict {
                logon_id: l,
                input_handle: i,
                restrict_flags: f,
                restriction: r,
            }
        }),
        (handles(), any::<u8>(), any::<bool>(), any::<u16>()).prop_map(|((l, i, _), f, d, c)| {
            RopRequest::QueryRows {
                logon_id: l,
                input_handle: i,
                query_rows_flags: f,
                forward_read: d,
                row_count: c,
            }
        }),
        (handles(), any::<u8>(), any::<i32>(), any::<bool>()).prop_map(|((l, i, _), o, c, w)| {
            RopRequest::SeekRow {
                logon_id: l,
                input_handle: i,
                origin: o,
                row_count: c,
                want_row_moved_count: w,
            }
        }),
    ]
}

fn requests_c() -> impl Strategy<Value = RopRequest> {
    prop_oneof![
        (
            handles(),
            any::<u8>(),
            any::<bool>(),
            any::<u8>(),
            rop_string(),
            text(),
            nul8()
        )
            .prop_map(|((l, i, o), t, e, r, (unicode, name), ct, c8)| {
                RopRequest::CreateFolder {
                    logon_id: l,
                    input_handle: i,
                    output_handle: o,
                    folder_type: t,
                    use_unicode: unicode,
                    open_existing: e,
                    reserved: r,
                    display_name: name,
                    comment: if unicode {
                        RopString::Unicode(ct)
                    } else {
                        RopString::String8(c8)
                    },
                }
            }),
        (handles(), any::<u8>(), id()).prop_map(|((l, i, _), f, fid)| RopRequest::DeleteFolder {
            logon_id: l,
            input_handle: i,
            delete_folder_flags: f,
            folder_id: fid
        }),
        (handles(), any::<bool>(), any::<bool>(), ids()).prop_map(|((l, i, _), a, n, m)| {
            RopRequest::DeleteMessages {
                logon_id: l,
                input_handle: i,
                want_asynchronous: a,
                notify_non_read: n,
                message_ids: m,
            }
        }),
        (handles(), any::<u8>()).prop_map(|((l, i, o), t)| RopRequest::GetAttachmentTable {
            logon_id: l,
            input_handle: i,
            output_handle: o,
            table_flags: t
        }),
        (handles(), any::<u8>(), any::<u32>()).prop_map(|((l, i, o), f, a)| {
            RopRequest::OpenAttachment {
                logon_id: l,
                input_handle: i,
                output_handle: o,
                open_attachment_flags: f,
                attachment_id: a,
            }
        }),
        handles().prop_map(|(l, i, o)| RopRequest::CreateAttachment {
            logon_id: l,
            input_handle: i,
            output_handle: o
        }),
        (handles(), any::<u32>()).prop_map(|((l, i, _), a)| RopRequest::DeleteAttachment {
            logon_id: l,
            input_handle: i,
            attachment_id: a
        }),
        (handles(), any::<u8>()).prop_map(|((l, i, r), s)| RopRequest::SaveChangesAttachment {
            logon_id: l,
            response_handle: r,
            input_handle: i,
            save_flags: s
        }),
        (
            handles(),
            any::<u8>(),
            any::<u8>(),
            any::<bool>(),
            id(),
            id()
        )
            .prop_map(
                |((l, i, o), t, r, w, f, m)| RopRequest::RegisterNotification {
                    logon_id: l,
                    input_handle: i,
                    output_handle: o,
                    notification_types: t,
                    reserved: r,
                    want_whole_store: w,
                    folder_id: if w { ObjectId(0) } else { f },
                    message_id: if w { ObjectId(0) } else { m },
                }
            ),
        (handles(), any::<u32>(), any::<u8>()).prop_map(|((l, i, o), t, m)| {
            RopRequest::OpenStream {
                logon_id: l,
                input_handle: i,
                output_handle: o,
                tag: PropTag(t),
                open_mode_flags: m,
            }
        }),
    ]
}

fn requests_d() -> impl Strategy<Value = RopRequest> {
    prop_oneof![
        (
            handles(),
            prop_oneof![
                any::<u16>()
                    .prop_filter("not BABE", |c| *c != 0xBABE)
                    .prop_map(|c| (c, None)),
                any::<u32>().prop_map(|m| (0xBABE, Some(m)))
            ]
        )
            .prop_map(|((l, i, _), (c, m))| RopRequest::ReadStream {
                logon_id: l,
                input_handle: i,
                byte_count: c,
                maximum_byte_count: m
            }),
        (handles(), blob()).prop_map(|((l, i, _), d)| RopRequest::WriteStream {
            logon_id: l,
            input_handle: i,
            data: d
        }),
        (handles(), any::<u64>()).prop_map(|((l, i, _), s)| RopRequest::SetStreamSize {
            logon_id: l,
            input_handle: i,
            stream_size: s
        }),
        (handles(), any::<u8>()).prop_map(|((l, i, _), s)| RopRequest::SubmitMessage {
            logon_id: l,
            input_handle: i,
            submit_flags: s
        }),
        (handles(), ids(), any::<bool>(), any::<bool>()).prop_map(|((l, s, d), m, a, c)| {
            RopRequest::MoveCopyMessages {
                logon_id: l,
                source_handle: s,
                destination_handle: d,
                message_ids: m,
                want_asynchronous: a,
                want_copy: c,
            }
        }),
        (handles(), any::<bool>(), id(), rop_string()).prop_map(|((l, s, d), a, f, (u, n))| {
            RopRequest::MoveFolder {
                logon_id: l,
                source_handle: s,
                destination_handle: d,
                want_asynchronous: a,
                use_unicode: u,
                folder_id: f,
                new_folder_name: n,
            }
        }),
        (handles(), any::<bool>(), any::<bool>(), id(), rop_string()).prop_map(
            |((l, s, d), a, r, f, (u, n))| RopRequest::CopyFolder {
                logon_id: l,
                source_handle: s,
                destination_handle: d,
                want_asynchronous: a,
                want_recursive: r,
                use_unicode: u,
                folder_id: f,
                new_folder_name: n
            }
        ),
        (handles(), any::<u8>()).prop_map(|((l, i, o), t)| RopRequest::GetRulesTable {
            logon_id: l,
            input_handle: i,
            output_handle: o,
            table_flags: t
        }),
        (handles(), id()).prop_map(|((l, i, _), o)| RopRequest::LongTermIdFromId {
            logon_id: l,
            input_handle: i,
            object_id: o
        }),
        (
            handles(),
            any::<[u8; 16]>(),
            0u64..=0xFFFF_FFFF_FFFF,
            any::<u16>()
        )
            .prop_map(|((l, i, _), g, c, p)| RopRequest::IdFromLongTermId {
                logon_id: l,
                input_handle: i,
                long_term_id: LongTermId {
                    database_guid: Guid(g),
                    globcnt: GlobCnt::new(c).unwrap(),
                    pad: p
                },
            }),
    ]
}

fn requests_e() -> impl Strategy<Value = RopRequest> {
    prop_oneof![
        (
            handles(),
            prop_oneof![
                any::<u16>()
                    .prop_filter("not BABE", |c| *c != 0xBABE)
                    .prop_map(|c| (c, None)),
                any::<u16>().prop_map(|m| (0xBABE, Some(m)))
            ]
        )
            .prop_map(
                |((l, i, _), (b, m))| RopRequest::FastTransferSourceGetBuffer {
                    logon_id: l,
                    input_handle: i,
                    buffer_size: b,
                    maximum_buffer_size: m
                }
            ),
        (handles(), any::<u8>(), restriction(), any::<u8>(), blob()).prop_map(
            |((l, i, _), f, r, o, b)| RopRequest::FindRow {
                logon_id: l,
                input_handle: i,
                find_row_flags: f,
                restriction: r,
                origin: o,
                bookmark: b
            }
        ),
        (handles(), prop::collection::vec(any::<u16>(), 0..4)).prop_map(|((l, i, _), p)| {
            RopRequest::GetNamesFromPropertyIds {
                logon_id: l,
                input_handle: i,
                property_ids: p,
            }
        }),
        (handles(), any::<u8>(), prop::collection::vec(name(), 0..3)).prop_map(
            |((l, i, _), f, n)| RopRequest::GetPropertyIdsFromNames {
                logon_id: l,
                input_handle: i,
                flags: f,
                names: n
            }
        ),
        handles().prop_map(|(l, i, _)| RopRequest::CommitStream {
            logon_id: l,
            input_handle: i
        }),
        handles().prop_map(|(l, i, _)| RopRequest::GetStreamSize {
            logon_id: l,
            input_handle: i
        }),
        (handles(), any::<bool>(), any::<u8>(), ids()).prop_map(|((l, i, _), a, f, m)| {
            RopRequest::SetReadFlags {
                logon_id: l,
                input_handle: i,
                want_asynchronous: a,
                read_flags: f,
                message_ids: m,
            }
        }),
        (
            handles(),
            any::<u8>(),
            any::<u8>(),
            any::<u16>(),
            blob(),
            any::<u32>(),
            tags()
        )
            .prop_map(|((l, i, o), t, s, f, r, e, tg)| {
                RopRequest::SynchronizationConfigure {
                    logon_id: l,
                    input_handle: i,
                    output_handle: o,
                    synchronization_type: t,
                    send_options: s,
                    synchronization_flags: f,
                    restriction_data: r,
                    synchronization_extra_flags: e,
                    tags: tg,
                }
            }),
        (handles(), any::<u8>(), values()).prop_map(|((l, i, o), f, v)| {
            RopRequest::SynchronizationImportMessageChange {
                logon_id: l,
                input_handle: i,
                output_handle: o,
                import_flag: f,
                values: v,
            }
        }),
        (handles(), values(), values()).prop_map(|((l, i, _), h, v)| {
            RopRequest::SynchronizationImportHierarchyChange {
                logon_id: l,
                input_handle: i,
                hierarchy_values: h,
                values: v,
            }
        }),
    ]
}

fn requests_f() -> impl Strategy<Value = RopRequest> {
    prop_oneof![
        (handles(), any::<u8>(), values()).prop_map(|((l, i, _), f, v)| {
            RopRequest::SynchronizationImportDeletes {
                logon_id: l,
                input_handle: i,
                import_delete_flags: f,
                values: v,
            }
        }),
        (handles(), any::<u32>(), any::<u32>()).prop_map(|((l, i, _), s, t)| {
            RopRequest::SynchronizationUploadStateStreamBegin {
                logon_id: l,
                input_handle: i,
                state_property: PropTag(s),
                transfer_buffer_size: t,
            }
        }),
        (handles(), blob()).prop_map(|((l, i, _), d)| {
            RopRequest::SynchronizationUploadStateStreamContinue {
                logon_id: l,
                input_handle: i,
                stream_data: d,
            }
        }),
        handles().prop_map(
            |(l, i, _)| RopRequest::SynchronizationUploadStateStreamEnd {
                logon_id: l,
                input_handle: i
            }
        ),
        (handles(), blob(), blob(), blob(), blob(), blob()).prop_map(
            |((l, i, _), a, b, c, d, e)| RopRequest::SynchronizationImportMessageMove {
                logon_id: l,
                input_handle: i,
                source_folder_id: a,
                source_message_id: b,
                predecessor_change_list: c,
                destination_message_id: d,
                change_number: e
            }
        ),
        (handles(), any::<bool>()).prop_map(|((l, i, o), c)| {
            RopRequest::SynchronizationOpenCollector {
                logon_id: l,
                input_handle: i,
                output_handle: o,
                is_contents_collector: c,
            }
        }),
        (handles(), any::<u32>()).prop_map(|((l, i, _), c)| RopRequest::GetLocalReplicaIds {
            logon_id: l,
            input_handle: i,
            id_count: c
        }),
        (
            handles(),
            prop::collection::vec((blob(), any::<bool>()), 0..3)
        )
            .prop_map(
                |((l, i, _), s)| RopRequest::SynchronizationImportReadStateChanges {
                    logon_id: l,
                    input_handle: i,
                    read_states: s
                        .into_iter()
                        .map(|(message_id, mark_as_read)| MessageReadState {
                            message_id,
                            mark_as_read
                        })
                        .collect(),
                }
            ),
        handles().prop_map(|(l, i, o)| RopRequest::SynchronizationGetTransferState {
            logon_id: l,
            input_handle: i,
            output_handle: o
        }),
        (handles(), any::<u8>(), any::<u32>(), any::<u32>(), nul8()).prop_map(
            |((l, _, o), f, of, s, e)| RopRequest::Logon {
                logon_id: l,
                output_handle: o,
                logon_flags: f,
                open_flags: of,
                store_state: s,
                essdn: e
            }
        ),
    ]
}

fn requests_g() -> impl Strategy<Value = RopRequest> {
    (handles(), any::<u16>(), any::<u8>()).prop_map(|((l, i, o), c, m)| {
        RopRequest::OpenEmbeddedMessage {
            logon_id: l,
            input_handle: i,
            output_handle: o,
            code_page_id: c,
            open_mode_flags: m,
        }
    })
}

fn requests_h() -> impl Strategy<Value = RopRequest> {
    prop_oneof![
        (handles(), any::<u8>()).prop_map(|((l, i, r), f)| {
            RopRequest::SetMessageReadFlag {
                logon_id: l,
                response_handle: r,
                input_handle: i,
                read_flags: f,
            }
        }),
        (handles(), ids(), any::<u8>(), any::<u8>()).prop_map(|((l, i, o), m, c, so)| {
            RopRequest::FastTransferSourceCopyMessages {
                logon_id: l,
                input_handle: i,
                output_handle: o,
                message_ids: m,
                copy_flags: c,
                send_options: so,
            }
        }),
        (handles(), any::<u8>(), any::<u8>()).prop_map(|((l, i, o), c, so)| {
            RopRequest::FastTransferSourceCopyFolder {
                logon_id: l,
                input_handle: i,
                output_handle: o,
                copy_flags: c,
                send_options: so,
            }
        }),
        (handles(), any::<u8>(), any::<u32>(), any::<u8>(), tags()).prop_map(
            |((l, i, o), v, c, so, t)| RopRequest::FastTransferSourceCopyTo {
                logon_id: l,
                input_handle: i,
                output_handle: o,
                level: v,
                copy_flags: c,
                send_options: so,
                tags: t,
            }
        ),
        (handles(), any::<u8>(), any::<u8>(), any::<u8>(), tags()).prop_map(
            |((l, i, o), v, c, so, t)| RopRequest::FastTransferSourceCopyProperties {
                logon_id: l,
                input_handle: i,
                output_handle: o,
                level: v,
                copy_flags: c,
                send_options: so,
                tags: t,
            }
        ),
        (handles(), any::<bool>(), any::<bool>()).prop_map(|((l, i, _), a, d)| {
            RopRequest::HardDeleteMessagesAndSubfolders {
                logon_id: l,
                input_handle: i,
                want_asynchronous: a,
                want_delete_associated: d,
            }
        }),
        (handles(), any::<bool>(), any::<bool>(), ids()).prop_map(|((l, i, _), a, n, m)| {
            RopRequest::HardDeleteMessages {
                logon_id: l,
                input_handle: i,
                want_asynchronous: a,
                notify_non_read: n,
                message_ids: m,
            }
        }),
    ]
}

fn request() -> impl Strategy<Value = RopRequest> {
    prop_oneof![
        requests_h(),
        requests_a(),
        requests_b(),
        requests_c(),
        requests_d(),
        requests_e(),
        requests_f(),
        requests_g()
    ]
}

fn ghost() -> impl Strategy<Value = Option<GhostInfo>> {
    prop::option::of(
        (any::<u16>(), prop::collection::vec(nul8(), 0..3)).prop_map(
            |(cheap_server_count, servers)| GhostInfo {
                cheap_server_count,
                servers,
            },
        ),
    )
}

fn typed_string() -> impl Strategy<Value = TypedString> {
    prop_oneof![
        Just(TypedString::Absent),
        Just(TypedString::Empty),
        nul8().prop_map(TypedString::String8),
        nul8().prop_map(TypedString::Reduced),
        text().prop_map(TypedString::Unicode),
    ]
}

/// A response body with the RopId that carries it.
fn body() -> impl Strategy<Value = (u8, ResponseBody)> {
    use ResponseBody as B;
    let a = prop_oneof![
        (
            any::<[u64; 13]>(),
            any::<u8>(),
            any::<[u8; 16]>(),
            any::<u16>(),
            any::<[u8; 16]>(),
            any::<[u8; 6]>(),
            any::<u16>(),
            any::<u64>(),
            any::<u32>()
        )
            .prop_map(|(ids, rf, mg, ri, rg, lt, ly, gw, ss)| (
                rop_id::LOGON,
                B::Logon(Box::new(LogonResponse {
                    logon_flags: 1,
                    folder_ids: ids.map(ObjectId),
                    response_flags: rf,
                    mailbox_guid: Guid(mg),
                    repl_id: ri,
                    repl_guid: Guid(rg),
                    logon_time: lt,
                    logon_year: ly,
                    gwart_time: gw,
                    store_state: ss,
                }))
            )),
        (
            any::<[u64; 13]>(),
            any::<u16>(),
            any::<[u8; 16]>(),
            any::<[u8; 16]>()
        )
            .prop_map(|(ids, ri, rg, pu)| (
                rop_id::LOGON,
                B::LogonPublic {
                    logon_flags: 0,
                    folder_ids: ids.map(ObjectId),
                    repl_id: ri,
                    repl_guid: Guid(rg),
                    per_user_guid: Guid(pu),
                }
            )),
        (any::<bool>(), ghost()).prop_map(|(has_rules, ghost)| (
            rop_id::OPEN_FOLDER,
            B::OpenFolder { has_rules, ghost }
        )),
        (
            any::<bool>(),
            typed_string(),
            typed_string(),
            any::<u16>(),
            tags(),
            prop::collection::vec((any::<u8>(), any::<u16>(), any::<u16>(), blob()), 0..3)
        )
            .prop_map(|(named, prefix, subject, count, columns, rows)| (
                rop_id::OPEN_MESSAGE,
                B::OpenMessage(Box::new(OpenMessageResponse {
                    has_named_properties: named,
                    subject_prefix: prefix,
                    normalized_subject: subject,
                    recipient_count: count,
                    recipient_columns: columns,
                    recipient_rows: rows
                        .into_iter()
                        .map(|(t, c, r, row)| OpenRecipientRow {
                            recipient_type: t,
                            code_page_id: c,
                            reserved: r,
                            recipient_row: row
                        })
                        .collect(),
                }))
            )),
        any::<u32>().prop_map(|c| (rop_id::GET_CONTENTS_TABLE, B::RowCount(c))),
        prop::option::of(id())
            .prop_map(|m| (rop_id::CREATE_MESSAGE, B::CreateMessage { message_id: m })),
        values().prop_map(|v| (rop_id::GET_PROPERTIES_ALL, B::PropertyValues(v))),
        tags().prop_map(|t| (rop_id::GET_PROPERTIES_LIST, B::PropertyTags(t))),
        prop::collection::vec((any::<u16>(), any::<u32>(), any::<u32>()), 0..3).prop_map(|p| (
            rop_id::SET_PROPERTIES,
            B::PropertyProblems(
                p.into_iter()
                    .map(|(index, tag, error_code)| PropertyProblem {
                        index,
                        tag: PropTag(tag),
                        error_code
                    })
                    .collect()
            )
        )),
        (any::<u8>(), id()).prop_map(|(i, m)| (
            rop_id::SAVE_CHANGES_MESSAGE,
            B::SaveChangesMessage {
                input_handle: i,
                message_id: m
            }
        )),
    ];
    let b = prop_oneof![
        prop::collection::vec(
            (
                any::<u32>(),
                any::<u8>(),
                any::<u16>(),
                any::<u16>(),
                blob()
            ),
            0..3
        )
        .prop_map(|rows| (
            rop_id::READ_RECIPIENTS,
            B::ReadRecipients(
                rows.into_iter()
                    .map(|(row_id, t, c, r, row)| ReadRecipientRow {
                        row_id,
                        recipient_type: t,
                        code_page_id: c,
                        reserved: r,
                        recipient_row: row
                    })
                    .collect()
            )
        )),
        any::<u8>().prop_map(|s| (rop_id::SET_COLUMNS, B::TableStatus(s))),
        (any::<bool>(), any::<i32>()).prop_map(|(l, r)| (
            rop_id::SEEK_ROW,
            B::SeekRow {
                has_sought_less: l,
                rows_sought: r
            }
        )),
        (id(), prop::option::of((any::<bool>(), ghost()))).prop_map(|(f, e)| (
            rop_id::CREATE_FOLDER,
            B::CreateFolder {
                folder_id: f,
                existing: e
            }
        )),
        any::<bool>().prop_map(|p| (rop_id::DELETE_MESSAGES, B::PartialCompletion(p))),
        any::<u32>().prop_map(|a| (rop_id::CREATE_ATTACHMENT, B::AttachmentId(a))),
        any::<u32>().prop_map(|s| (rop_id::OPEN_STREAM, B::StreamSize(s))),
        blob().prop_map(|d| (rop_id::READ_STREAM, B::ReadStream { data: d })),
        any::<u16>().prop_map(|w| (rop_id::WRITE_STREAM, B::WrittenSize(w))),
        (any::<[u8; 16]>(), 0u64..=0xFFFF_FFFF_FFFF, any::<u16>()).prop_map(|(g, c, p)| (
            rop_id::LONG_TERM_ID_FROM_ID,
            B::LongTermId(LongTermId {
                database_guid: Guid(g),
                globcnt: GlobCnt::new(c).unwrap(),
                pad: p
            })
        )),
    ];
    let c = prop_oneof![
        id().prop_map(|o| (rop_id::ID_FROM_LONG_TERM_ID, B::ObjectId(o))),
        id().prop_map(|o| (
            rop_id::SYNCHRONIZATION_IMPORT_MESSAGE_CHANGE,
            B::ObjectId(o)
        )),
        (0u16..4, any::<u16>(), any::<u16>(), any::<u8>(), blob()).prop_map(|(s, p, t, r, b)| (
            rop_id::FAST_TRANSFER_SOURCE_GET_BUFFER,
            B::FastTransferBuffer {
                transfer_status: s,
                in_progress_count: p,
                total_step_count: t,
                reserved: r,
                transfer_buffer: b,
            }
        )),
        prop::collection::vec(name(), 0..3)
            .prop_map(|n| (rop_id::GET_NAMES_FROM_PROPERTY_IDS, B::PropertyNames(n))),
        prop::collection::vec(any::<u16>(), 0..4)
            .prop_map(|i| (rop_id::GET_PROPERTY_IDS_FROM_NAMES, B::PropertyIds(i))),
        (any::<[u8; 16]>(), 0u64..=0xFFFF_FFFF_FFFF).prop_map(|(g, c)| (
            rop_id::GET_LOCAL_REPLICA_IDS,
            B::LocalReplicaIds {
                repl_guid: Guid(g),
                global_count: GlobCnt::new(c).unwrap(),
            }
        )),
        Just((rop_id::SYNCHRONIZATION_CONFIGURE, B::Empty)),
        Just((rop_id::REGISTER_NOTIFICATION, B::Empty)),
        any::<bool>().prop_map(|p| (rop_id::MOVE_COPY_MESSAGES, B::PartialCompletion(p))),
        any::<bool>().prop_map(|p| (rop_id::SET_READ_FLAGS, B::PartialCompletion(p))),
        any::<bool>().prop_map(|p| (rop_id::HARD_DELETE_MESSAGES, B::PartialCompletion(p))),
        any::<bool>().prop_map(|p| (
            rop_id::HARD_DELETE_MESSAGES_AND_SUBFOLDERS,
            B::PartialCompletion(p)
        )),
        prop::option::of((any::<u8>(), any::<[u8; 24]>())).prop_map(|c| (
            rop_id::SET_MESSAGE_READ_FLAG,
            B::MessageReadFlag {
                changed: c.map(|(logon_id, client_data)| ReadStatusChange {
                    logon_id,
                    client_data,
                }),
            }
        )),
        Just((rop_id::FAST_TRANSFER_SOURCE_COPY_TO, B::Empty)),
        Just((rop_id::FAST_TRANSFER_SOURCE_COPY_PROPERTIES, B::Empty)),
        Just((rop_id::FAST_TRANSFER_SOURCE_COPY_MESSAGES, B::Empty)),
        Just((rop_id::FAST_TRANSFER_SOURCE_COPY_FOLDER, B::Empty)),
    ];
    let d = (any::<u8>(), id(), typed_string(), any::<u16>(), tags()).prop_map(
        |(reserved, message_id, subject, count, columns)| {
            (
                rop_id::OPEN_EMBEDDED_MESSAGE,
                B::OpenEmbeddedMessage {
                    reserved,
                    message_id,
                    message: Box::new(OpenMessageResponse {
                        has_named_properties: true,
                        subject_prefix: TypedString::Empty,
                        normalized_subject: subject,
                        recipient_count: count,
                        recipient_columns: columns,
                        recipient_rows: vec![],
                    }),
                },
            )
        },
    );
    prop_oneof![a, b, c, d]
}

proptest! {
    #[test]
    fn request_round_trip(request in request()) {
        let mut bytes = Vec::new();
        request.encode(&mut bytes);
        let mut reader = Reader::new(&bytes);
        let decoded = RopRequest::decode(&mut reader).unwrap();
        prop_assert!(reader.is_empty());
        prop_assert_eq!(decoded, request);
    }

    #[test]
    fn request_buffer_round_trip(
        rops in prop::collection::vec(request(), 0..6),
        handles in prop::collection::vec(any::<u32>(), 0..6),
    ) {
        let buffer = RopBuffer { rops, handles };
        let bytes = encode_request_buffer(&buffer);
        prop_assert_eq!(decode_request_buffer(&bytes).unwrap(), buffer);
    }

    #[test]
    fn response_round_trip((id, body) in body(), handle_index in any::<u8>()) {
        let response = RopResponse::Result(RopResult { rop_id: id, handle_index, return_value: 0, body });
        let mut bytes = Vec::new();
        response.encode(&mut bytes);
        let mut reader = Reader::new(&bytes);
        let decoded = RopResponse::decode(&mut reader, None, None).unwrap();
        prop_assert!(reader.is_empty());
        prop_assert_eq!(decoded, response);
    }

    #[test]
    fn failure_response_round_trip(request in request(), code in 1u32..) {
        prop_assume!(request.has_response());
        prop_assume!(!matches!(code, 0x478 | 0x503 | 0x480 | 0x0004_0380));
        let id = request.rop_id();
        let body = match id {
            0x1E | 0x66 | 0x1D | 0x33 | 0x35 | 0x36 | 0x91 | 0x92 => {
                ResponseBody::PartialCompletion(true)
            }
            0x4E => ResponseBody::FastTransferBuffer {
                transfer_status: 0, in_progress_count: 0, total_step_count: 0, reserved: 0, transfer_buffer: vec![],
            },
            _ => ResponseBody::Empty,
        };
        let response = RopResponse::Result(RopResult {
            rop_id: id, handle_index: request.response_handle_index(), return_value: code, body,
        });
        let buffer = RopBuffer { rops: vec![response], handles: vec![] };
        let bytes = encode_response_buffer(&buffer);
        let requests = [request];
        let context = ResponseContext { requests: &requests, ..Default::default() };
        prop_assert_eq!(decode_response_buffer(&bytes, &context).unwrap(), buffer);
    }

    #[test]
    fn rows_and_notifications_round_trip(
        values in prop::collection::vec(value(), 1..4),
        handle in any::<u32>(),
        folder in id(),
        count in any::<u32>(),
    ) {
        let columns: Vec<PropTag> = values.iter().map(|v| v.tag).collect();
        let row = PropertyRow { flagged: false, cells: values.into_iter().map(|v| RowCell::Value(v.value)).collect() };
        let requests = [
            RopRequest::SetColumns { logon_id: 0, input_handle: 2, set_columns_flags: 0, tags: columns.clone() },
            RopRequest::QueryRows { logon_id: 0, input_handle: 2, query_rows_flags: 0, forward_read: true, row_count: 10 },
            RopRequest::GetPropertiesSpecific { logon_id: 0, input_handle: 1, property_size_limit: 0, want_unicode: 1, tags: columns },
        ];
        let rops = vec![
            RopResponse::Result(RopResult { rop_id: 0x12, handle_index: 2, return_value: 0, body: ResponseBody::TableStatus(0) }),
            RopResponse::Result(RopResult { rop_id: 0x15, handle_index: 2, return_value: 0, body: ResponseBody::QueryRows { origin: 0, rows: vec![row.clone(), row.clone()] } }),
            RopResponse::Result(RopResult { rop_id: 0x07, handle_index: 1, return_value: 0, body: ResponseBody::PropertyRow(row) }),
            RopResponse::Notify { notification_handle: handle, logon_id: 0, data: Notification {
                flags: 0x3010, folder_id: Some(folder), tag_count: Some(0), total_message_count: Some(count), unread_message_count: Some(count / 2),
                ..Notification::default()
            }},
            RopResponse::Pending { session_index: 3 },
        ];
        let buffer = RopBuffer { rops, handles: vec![1, 2, 3] };
        let bytes = encode_response_buffer(&buffer);
        let context = ResponseContext { requests: &requests, ..Default::default() };
        prop_assert_eq!(decode_response_buffer(&bytes, &context).unwrap(), buffer);
    }
}
