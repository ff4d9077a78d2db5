//! MAPI properties of the store's items and folders (MS-OXPROPS tags), and the item
//! updates that property writes make.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use exmux_mapihttp::prop::tags::*;
use exmux_mapihttp::prop::{PropTag, PropType, PropValue, TaggedValue};

use crate::store::{
    Body, BodyType, FlagStatus, Folder, Importance, Item, ItemUpdate, Mid, Store, Xid,
};

/// PidTagImportance.
pub(crate) const PID_TAG_IMPORTANCE: PropTag = PropTag(0x0017_0003);
/// PidTagFlagStatus.
pub(crate) const PID_TAG_FLAG_STATUS: PropTag = PropTag(0x1090_0003);
/// PidTagDisplayTo.
pub(crate) const PID_TAG_DISPLAY_TO: PropTag = PropTag(0x0E04_001F);
/// PidTagDisplayCc.
const PID_TAG_DISPLAY_CC: PropTag = PropTag(0x0E03_001F);
/// PidTagSenderAddressType.
const PID_TAG_SENDER_ADDRESS_TYPE: PropTag = PropTag(0x0C1E_001F);
/// PidTagSenderEmailAddress.
const PID_TAG_SENDER_EMAIL_ADDRESS: PropTag = PropTag(0x0C1F_001F);
/// PidTagSenderSmtpAddress.
const PID_TAG_SENDER_SMTP_ADDRESS: PropTag = PropTag(0x5D01_001F);
/// PidTagClientSubmitTime.
const PID_TAG_CLIENT_SUBMIT_TIME: PropTag = PropTag(0x0039_0040);
/// PidTagHtml.
const PID_TAG_HTML: PropTag = PropTag(0x1013_0102);

/// Source keys that clients chose on ICS import (MS-OXCFXICS 2.2.1.2.5), kept with the
/// message they name. Every other message's source key is the store's replica GUID plus
/// the MID's counter.
#[derive(Debug, Default)]
pub(crate) struct SourceKeys {
    by_key: BTreeMap<Vec<u8>, Mid>,
    by_mid: BTreeMap<Mid, Vec<u8>>,
}

impl SourceKeys {
    /// Records that `key` names `mid`.
    pub(crate) fn bind(&mut self, key: Vec<u8>, mid: Mid) {
        if let Some(old) = self.by_mid.insert(mid, key.clone()) {
            self.by_key.remove(&old);
        }
        self.by_key.insert(key, mid);
    }

    /// Returns the message a source key names: a client-chosen key, or a key of the store's own
    /// form for an item that exists.
    pub(crate) fn resolve(&self, store: &Store, key: &[u8]) -> Option<Mid> {
        if let Some(mid) = self.by_key.get(key) {
            return Some(*mid);
        }
        let xid = Xid::from_bytes(key).ok()?;
        if xid.namespace() != store.replica_guid() {
            return None;
        }
        let bytes: [u8; 6] = xid.local_id().try_into().ok()?;
        let mid = Mid(crate::store::Globcnt::from_bytes(bytes));
        store.item(mid).map(|_| mid)
    }

    /// Returns the source key of a message.
    pub(crate) fn of(&self, store: &Store, mid: Mid) -> Vec<u8> {
        self.by_mid
            .get(&mid)
            .cloned()
            .unwrap_or_else(|| Xid::from_globcnt(store.replica_guid(), mid.0).to_bytes())
    }
}

/// Returns the source key of a folder.
pub(crate) fn folder_source_key(store: &Store, folder: &Folder) -> Vec<u8> {
    Xid::from_globcnt(store.replica_guid(), folder.fid.0).to_bytes()
}

/// Converts a time to a FILETIME (100 ns units since 1601-01-01 UTC).
pub(crate) fn filetime(time: SystemTime) -> u64 {
    const EPOCH_DIFFERENCE: u64 = 11_644_473_600;
    let since_unix = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    since_unix
        .as_secs()
        .saturating_add(EPOCH_DIFFERENCE)
        .saturating_mul(10_000_000)
        .saturating_add(u64::from(since_unix.subsec_nanos() / 100))
}

/// Converts a FILETIME to a time.
pub(crate) fn from_filetime(filetime: u64) -> SystemTime {
    const EPOCH_DIFFERENCE: u64 = 11_644_473_600;
    let seconds = (filetime / 10_000_000).saturating_sub(EPOCH_DIFFERENCE);
    UNIX_EPOCH
        + std::time::Duration::from_secs(seconds)
        + std::time::Duration::from_nanos((filetime % 10_000_000) * 100)
}

fn string(text: &str) -> PropValue {
    PropValue::Unicode(text.to_owned())
}

fn i64_of(value: u64) -> PropValue {
    PropValue::I64(i64::from_le_bytes(value.to_le_bytes()))
}

/// Returns the properties of an item, in a fixed order, each with its native type.
pub(crate) fn item_props(store: &Store, keys: &SourceKeys, item: &Item) -> Vec<TaggedValue> {
    let props = &item.props;
    let mut flags = 0_i32;
    if props.read {
        flags |= 0x1;
    }
    if props.has_attachments {
        flags |= 0x10;
    }
    if item.associated {
        flags |= 0x40;
    }
    let parent_key = store
        .folder(item.folder)
        .map(|folder| folder_source_key(store, folder))
        .unwrap_or_default();
    let mut out = vec![
        (PID_TAG_MID, i64_of(item.mid.to_u64())),
        (PID_TAG_FOLDER_ID, i64_of(item.folder.to_u64())),
        (PID_TAG_PARENT_FOLDER_ID, i64_of(item.folder.to_u64())),
        (PID_TAG_INST_ID, i64_of(item.mid.to_u64())),
        (PID_TAG_INSTANCE_NUM, PropValue::I32(0)),
        (PID_TAG_CHANGE_NUMBER, i64_of(item.stamp.cn.to_u64())),
        (
            PID_TAG_CHANGE_KEY,
            PropValue::Binary(item.stamp.change_key.to_bytes()),
        ),
        (
            PID_TAG_PREDECESSOR_CHANGE_LIST,
            PropValue::Binary(item.stamp.pcl.to_bytes()),
        ),
        (
            PID_TAG_SOURCE_KEY,
            PropValue::Binary(keys.of(store, item.mid)),
        ),
        (PID_TAG_PARENT_SOURCE_KEY, PropValue::Binary(parent_key)),
        (
            PID_TAG_LAST_MODIFICATION_TIME,
            PropValue::Time(filetime(item.stamp.time)),
        ),
        (
            PID_TAG_CREATION_TIME,
            PropValue::Time(filetime(props.received.unwrap_or(item.stamp.time))),
        ),
        (PID_TAG_MESSAGE_FLAGS, PropValue::I32(flags)),
        (PID_TAG_READ, PropValue::Bool(props.read)),
        (PID_TAG_ASSOCIATED, PropValue::Bool(item.associated)),
        (
            PID_TAG_MESSAGE_SIZE,
            PropValue::I32(i32::try_from(item.size).unwrap_or(i32::MAX)),
        ),
        (PID_TAG_SUBJECT, string(&props.subject)),
        (PID_TAG_NORMALIZED_SUBJECT, string(&props.subject)),
        (PID_TAG_MESSAGE_CLASS, string(&props.item_class)),
        (
            PID_TAG_HAS_ATTACHMENTS,
            PropValue::Bool(props.has_attachments),
        ),
        (
            PID_TAG_IMPORTANCE,
            PropValue::I32(match props.importance {
                Importance::Low => 0,
                Importance::High => 2,
                _ => 1,
            }),
        ),
    ];
    if let Some(received) = props.received {
        out.push((
            PID_TAG_MESSAGE_DELIVERY_TIME,
            PropValue::Time(filetime(received)),
        ));
        out.push((
            PID_TAG_CLIENT_SUBMIT_TIME,
            PropValue::Time(filetime(received)),
        ));
    }
    match props.flag {
        FlagStatus::Flagged => out.push((PID_TAG_FLAG_STATUS, PropValue::I32(2))),
        FlagStatus::Complete => out.push((PID_TAG_FLAG_STATUS, PropValue::I32(1))),
        _ => {}
    }
    if let Some(sender) = &props.sender {
        let name = if sender.name.is_empty() {
            &sender.address
        } else {
            &sender.name
        };
        out.push((PID_TAG_SENDER_NAME, string(name)));
        out.push((PID_TAG_SENT_REPRESENTING_NAME, string(name)));
        out.push((PID_TAG_SENDER_ADDRESS_TYPE, string("SMTP")));
        out.push((PID_TAG_SENDER_EMAIL_ADDRESS, string(&sender.address)));
        out.push((PID_TAG_SENDER_SMTP_ADDRESS, string(&sender.address)));
    }
    for (tag, list) in [
        (PID_TAG_DISPLAY_TO, &props.to),
        (PID_TAG_DISPLAY_CC, &props.cc),
    ] {
        if list.is_empty() {
            continue;
        }
        let names: Vec<&str> = list
            .iter()
            .map(|m| {
                if m.name.is_empty() {
                    m.address.as_str()
                } else {
                    m.name.as_str()
                }
            })
            .collect();
        out.push((tag, string(&names.join("; "))));
    }
    match &props.body {
        Some(body) if body.body_type == BodyType::Text => {
            out.push((PID_TAG_BODY, string(&body.content)));
        }
        Some(body) => {
            out.push((
                PID_TAG_HTML,
                PropValue::Binary(body.content.clone().into_bytes()),
            ));
        }
        None => {}
    }
    out.into_iter()
        .map(|(tag, value)| TaggedValue { tag, value })
        .collect()
}

/// Returns the properties of a folder, each with its native type.
pub(crate) fn folder_props(store: &Store, folder: &Folder) -> Vec<TaggedValue> {
    let counts = store.folder_counts(folder.fid).unwrap_or_default();
    let parent = folder.parent.map_or(0, |fid| fid.to_u64());
    let parent_key = folder
        .parent
        .and_then(|fid| store.folder(fid))
        .map(|parent| folder_source_key(store, parent))
        .unwrap_or_default();
    let mut out = vec![
        (PID_TAG_FOLDER_ID, i64_of(folder.fid.to_u64())),
        (PID_TAG_PARENT_FOLDER_ID, i64_of(parent)),
        (PID_TAG_DISPLAY_NAME, string(&folder.display_name)),
        (
            PID_TAG_CONTENT_COUNT,
            PropValue::I32(i32::try_from(counts.total).unwrap_or(i32::MAX)),
        ),
        (
            PID_TAG_CONTENT_UNREAD_COUNT,
            PropValue::I32(i32::try_from(counts.unread).unwrap_or(i32::MAX)),
        ),
        (
            PID_TAG_SUBFOLDERS,
            PropValue::Bool(!store.child_folders(folder.fid).is_empty()),
        ),
        (PID_TAG_CHANGE_NUMBER, i64_of(folder.stamp.cn.to_u64())),
        (
            PID_TAG_CHANGE_KEY,
            PropValue::Binary(folder.stamp.change_key.to_bytes()),
        ),
        (
            PID_TAG_PREDECESSOR_CHANGE_LIST,
            PropValue::Binary(folder.stamp.pcl.to_bytes()),
        ),
        (
            PID_TAG_SOURCE_KEY,
            PropValue::Binary(folder_source_key(store, folder)),
        ),
        (PID_TAG_PARENT_SOURCE_KEY, PropValue::Binary(parent_key)),
        (
            PID_TAG_LAST_MODIFICATION_TIME,
            PropValue::Time(filetime(folder.stamp.time)),
        ),
        (PID_TAG_FOLDER_TYPE, PropValue::I32(1)),
        (PID_TAG_DELETED_COUNT_TOTAL, PropValue::I32(0)),
    ];
    if let Some(class) = &folder.container_class {
        out.push((PID_TAG_CONTAINER_CLASS, string(class)));
    }
    out.into_iter()
        .map(|(tag, value)| TaggedValue { tag, value })
        .collect()
}

/// Picks the value for a requested tag out of `props` by property id. A Unicode value is
/// converted when the tag requests PtypString8 and returned as is for PtypUnspecified.
/// Returns `None` when the property is missing or of another type.
pub(crate) fn lookup(props: &[TaggedValue], tag: PropTag) -> Option<PropValue> {
    let found = props.iter().find(|p| p.tag.id() == tag.id())?;
    let wanted = tag.ptype();
    if wanted == PropType::UNSPECIFIED || wanted == found.tag.ptype() {
        return Some(found.value.clone());
    }
    match (&found.value, wanted) {
        (PropValue::Unicode(text), PropType::STRING8) => {
            Some(PropValue::String8(text.chars().map(latin1).collect()))
        }
        _ => None,
    }
}

fn latin1(c: char) -> u8 {
    u8::try_from(u32::from(c)).unwrap_or(b'?')
}

/// Returns the text of a string value of either width.
pub(crate) fn text_of(value: &PropValue) -> Option<String> {
    match value {
        PropValue::Unicode(text) => Some(text.clone()),
        PropValue::String8(bytes) => Some(bytes.iter().map(|b| char::from(*b)).collect()),
        _ => None,
    }
}

/// Converts property writes into an item update, plus the read flag when PidTagRead or
/// PidTagMessageFlags was written.
pub(crate) fn update_from(values: &[TaggedValue]) -> (ItemUpdate, Option<bool>) {
    let mut update = ItemUpdate::default();
    let mut read = None;
    for value in values {
        let tag = value.tag;
        match tag.id() {
            id if id == PID_TAG_SUBJECT.id() => update.subject = text_of(&value.value),
            id if id == PID_TAG_NORMALIZED_SUBJECT.id() && update.subject.is_none() => {
                update.subject = text_of(&value.value);
            }
            id if id == PID_TAG_MESSAGE_CLASS.id() => update.item_class = text_of(&value.value),
            id if id == PID_TAG_BODY.id() => {
                update.body = Some(text_of(&value.value).map(|content| Body {
                    body_type: BodyType::Text,
                    content,
                }));
            }
            id if id == PID_TAG_IMPORTANCE.id() => {
                if let PropValue::I32(level) = value.value {
                    update.importance = Some(match level {
                        0 => Importance::Low,
                        2 => Importance::High,
                        _ => Importance::Normal,
                    });
                }
            }
            id if id == PID_TAG_FLAG_STATUS.id() => {
                if let PropValue::I32(status) = value.value {
                    update.flag = Some(match status {
                        2 => FlagStatus::Flagged,
                        1 => FlagStatus::Complete,
                        _ => FlagStatus::NotFlagged,
                    });
                }
            }
            id if id == PID_TAG_MESSAGE_DELIVERY_TIME.id() => {
                if let PropValue::Time(time) = value.value {
                    update.received = Some(Some(from_filetime(time)));
                }
            }
            id if id == PID_TAG_READ.id() => {
                if let PropValue::Bool(flag) = value.value {
                    read = Some(flag);
                }
            }
            id if id == PID_TAG_MESSAGE_FLAGS.id() => {
                if let PropValue::I32(flags) = value.value {
                    read = Some(flags & 0x1 != 0);
                }
            }
            // NOTE: other properties (recipients, named properties such as categories,
            // HTML bodies) are accepted and not stored.
            _ => {}
        }
    }
    (update, read)
}
