//! ICS downloads (MS-OXCFXICS 2.2.4.3, 3.2.5): the store's sync batches written as
//! FastTransfer streams, and conversion between the wire's REPLGUID-form IDSETs and the
//! store's sets.

use exmux_mapihttp::fxics::{
    Attachment as FxAttachment, FxProp, FxWriter, MessageChange, MessageContent,
};
use exmux_mapihttp::ids::Guid as WireGuid;
use exmux_mapihttp::idset::{IcsState, IdSet, Replica, StateProperty};
use exmux_mapihttp::prop::tags::*;
use exmux_mapihttp::prop::{PropValue, TaggedValue};

use crate::store::{
    Fid, GlobSet, Globcnt, Guid, Store, StoreError, SyncKind, SyncOptions, SyncState,
};

use super::Quirks;
use super::attachments;
use super::props::{self, SourceKeys};

/// The store's replica id in REPLID-form IDSETs.
const REPLICA_ID: u16 = crate::store::ids::REPLICA_ID;

/// SynchronizationFlags (MS-OXCFXICS 2.2.3.2.1.1.1).
const FLAG_NO_DELETIONS: u16 = 0x0002;
const FLAG_READ_STATE: u16 = 0x0008;
const FLAG_FAI: u16 = 0x0010;
const FLAG_NORMAL: u16 = 0x0020;
const FLAG_PROGRESS: u16 = 0x8000;
/// SynchronizationExtraFlags.
const EXTRA_EID: u32 = 0x0001;
const EXTRA_MESSAGE_SIZE: u32 = 0x0002;
const EXTRA_CN: u32 = 0x0004;

/// Returns the counters of `replica` in a REPLGUID-form IDSET as a store set. Entries of
/// other replicas are left out because the store has only one.
pub(crate) fn globset_of(idset: &IdSet, replica: Guid) -> GlobSet {
    let mut set = GlobSet::new();
    if let Some(globset) = idset.get(Replica::Guid(WireGuid(replica.0))) {
        for &(low, high) in globset.ranges() {
            if let (Some(low), Some(high)) = (Globcnt::new(low), Globcnt::new(high)) {
                set.insert_range(low, high);
            }
        }
    }
    set
}

/// Returns a store set as an IDSET keyed by `replica`.
fn idset_of(set: &GlobSet, replica: Replica) -> IdSet {
    let mut idset = IdSet::new();
    for (low, high) in set.ranges() {
        idset.insert_range(replica, low.get(), high.get());
    }
    idset
}

/// Returns the set of a state that one state property carries.
pub(crate) fn state_set(state: &mut SyncState, property: StateProperty) -> &mut GlobSet {
    match property {
        StateProperty::IdsetGiven => &mut state.given,
        StateProperty::CnsetSeen => &mut state.seen,
        StateProperty::CnsetSeenFai => &mut state.seen_fai,
        _ => &mut state.read,
    }
}

/// Returns a store state as the four wire IDSETs.
pub(crate) fn ics_state(state: &SyncState, replica: Guid) -> IcsState {
    let key = Replica::Guid(WireGuid(replica.0));
    IcsState {
        idset_given: idset_of(&state.given, key),
        cnset_seen: idset_of(&state.seen, key),
        cnset_seen_fai: idset_of(&state.seen_fai, key),
        cnset_read: idset_of(&state.read, key),
    }
}

/// Writes the stream of RopSynchronizationGetTransferState: one `state` element.
pub(crate) fn state_stream(state: &SyncState, replica: Guid, kind: SyncKind) -> Vec<u8> {
    let mut writer = FxWriter::new();
    writer.state(&ics_state(state, replica), kind == SyncKind::Contents);
    writer.into_bytes()
}

fn fx(value: TaggedValue) -> FxProp {
    FxProp {
        tag: value.tag,
        name: None,
        value: value.value,
    }
}

/// Builds the whole download stream of a synchronization context from its uploaded
/// state, and returns it with the state it ends in.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site passes the context's fields"
)]
pub(crate) fn download_stream(
    store: &Store,
    keys: &SourceKeys,
    fid: Fid,
    kind: SyncKind,
    flags: u16,
    extra_flags: u32,
    state: &SyncState,
    quirks: Quirks,
) -> Result<(Vec<u8>, SyncState), StoreError> {
    let mut state = state.clone();
    state.kind = kind;
    state.folder = fid;
    let replica = store.replica_guid();
    let options = SyncOptions {
        max_changes: usize::MAX,
        include_fai: flags & FLAG_FAI != 0,
    };
    let mut writer = FxWriter::new();
    let replid = Replica::Id(REPLICA_ID);

    let next = match kind {
        SyncKind::Hierarchy => {
            let batch = store.sync_hierarchy(&state, options)?;
            for change in &batch.changes {
                let folder = &change.folder;
                let all = props::folder_props(store, folder);
                let pick = |tag| props::lookup(&all, tag);
                // The folders directly below the synchronized one carry an empty parent
                // source key (MS-OXCFXICS 2.2.4.3.21).
                let parent_key = if folder.parent == Some(fid) {
                    PropValue::Binary(Vec::new())
                } else {
                    pick(PID_TAG_PARENT_SOURCE_KEY).unwrap_or(PropValue::Binary(Vec::new()))
                };
                let mut list = vec![FxProp {
                    tag: PID_TAG_PARENT_SOURCE_KEY,
                    name: None,
                    value: parent_key,
                }];
                for tag in [
                    PID_TAG_SOURCE_KEY,
                    PID_TAG_LAST_MODIFICATION_TIME,
                    PID_TAG_CHANGE_KEY,
                    PID_TAG_PREDECESSOR_CHANGE_LIST,
                    PID_TAG_DISPLAY_NAME,
                ] {
                    if let Some(value) = pick(tag) {
                        list.push(FxProp {
                            tag,
                            name: None,
                            value,
                        });
                    }
                }
                if extra_flags & EXTRA_EID != 0 {
                    for tag in [PID_TAG_FOLDER_ID, PID_TAG_PARENT_FOLDER_ID] {
                        if let Some(value) = pick(tag) {
                            list.push(FxProp {
                                tag,
                                name: None,
                                value,
                            });
                        }
                    }
                }
                if let Some(value) = pick(PID_TAG_CONTAINER_CLASS) {
                    list.push(FxProp {
                        tag: PID_TAG_CONTAINER_CLASS,
                        name: None,
                        value,
                    });
                }
                writer.folder_change(&list);
            }
            if flags & FLAG_NO_DELETIONS == 0 {
                let mut gone = IdSet::new();
                for fid in &batch.deletions {
                    gone.insert(replid, fid.0.get());
                }
                write_deletions(&mut writer, &gone, quirks);
            }
            batch.state
        }
        _ => {
            let batch = store.sync_contents(&state, options)?;
            let wanted = |item: &crate::store::Item| {
                item.associated || flags & FLAG_NORMAL != 0 || flags & FLAG_FAI == 0
            };
            if flags & FLAG_PROGRESS != 0 {
                writer.marker(exmux_mapihttp::fxics::marker::INCR_SYNC_PROGRESS_MODE);
                writer.value(
                    exmux_mapihttp::prop::PropTag(0x0000_0102),
                    PropValue::Binary(progress_total(
                        batch.changes.iter().map(|c| &c.item).filter(|i| wanted(i)),
                    )),
                );
            }
            for change in &batch.changes {
                let item = &change.item;
                if !wanted(item) {
                    continue;
                }
                let all = props::item_props(store, keys, item);
                let mut header_tags = vec![
                    PID_TAG_SOURCE_KEY,
                    PID_TAG_LAST_MODIFICATION_TIME,
                    PID_TAG_CHANGE_KEY,
                    PID_TAG_PREDECESSOR_CHANGE_LIST,
                    PID_TAG_ASSOCIATED,
                ];
                if extra_flags & EXTRA_EID != 0 {
                    header_tags.push(PID_TAG_MID);
                }
                if extra_flags & EXTRA_MESSAGE_SIZE != 0 {
                    header_tags.push(PID_TAG_MESSAGE_SIZE);
                }
                if extra_flags & EXTRA_CN != 0 {
                    header_tags.push(PID_TAG_CHANGE_NUMBER);
                }
                let header = header_tags
                    .iter()
                    .filter_map(|tag| {
                        props::lookup(&all, *tag).map(|value| FxProp {
                            tag: *tag,
                            name: None,
                            value,
                        })
                    })
                    .collect();
                // Identity and change tracking travel in the header; the content carries
                // the rest.
                let skip = [
                    PID_TAG_SOURCE_KEY,
                    PID_TAG_LAST_MODIFICATION_TIME,
                    PID_TAG_CHANGE_KEY,
                    PID_TAG_PREDECESSOR_CHANGE_LIST,
                    PID_TAG_ASSOCIATED,
                    PID_TAG_MID,
                    PID_TAG_MESSAGE_SIZE,
                    PID_TAG_CHANGE_NUMBER,
                    PID_TAG_FOLDER_ID,
                    PID_TAG_PARENT_FOLDER_ID,
                    PID_TAG_INST_ID,
                    PID_TAG_INSTANCE_NUM,
                    PID_TAG_PARENT_SOURCE_KEY,
                ];
                let content = MessageContent {
                    props: all
                        .into_iter()
                        .filter(|v| !skip.contains(&v.tag))
                        .map(fx)
                        .collect(),
                    recipients: Vec::new(),
                    // Each attachment travels as its own property list, after the
                    // message's properties and recipients.
                    attachments: item
                        .props
                        .attachments
                        .iter()
                        .map(|attachment| FxAttachment {
                            props: attachments::values_of(attachment)
                                .into_iter()
                                .map(fx)
                                .collect(),
                            embedded: None,
                        })
                        .collect(),
                };
                let progress = (flags & FLAG_PROGRESS != 0).then(|| {
                    (
                        i32::try_from(item.size).unwrap_or(i32::MAX),
                        item.associated,
                    )
                });
                writer.message_change(&MessageChange {
                    header,
                    progress,
                    partial: false,
                    content,
                });
            }
            if flags & FLAG_NO_DELETIONS == 0 {
                let mut gone = IdSet::new();
                for mid in &batch.deletions {
                    gone.insert(replid, mid.0.get());
                }
                write_deletions(&mut writer, &gone, quirks);
            }
            if flags & FLAG_READ_STATE != 0 {
                let mut read = IdSet::new();
                let mut unread = IdSet::new();
                for change in &batch.read_changes {
                    let set = if change.read { &mut read } else { &mut unread };
                    set.insert(replid, change.mid.0.get());
                }
                writer.read_state_changes(&read, &unread);
            }
            batch.state
        }
    };
    writer.state(&ics_state(&next, replica), kind == SyncKind::Contents);
    writer.end();
    Ok((writer.into_bytes(), next))
}

/// Builds the 32-byte progressTotal value (MS-OXCFXICS 2.2.4.3.20): Version u16, padding u16,
/// FAI count u32, FAI total size u64, normal count u32, padding u32, normal total size
/// u64.
fn progress_total<'a>(items: impl Iterator<Item = &'a crate::store::Item>) -> Vec<u8> {
    let (mut fai_count, mut fai_size, mut normal_count, mut normal_size) =
        (0_u32, 0_u64, 0_u32, 0_u64);
    for item in items {
        if item.associated {
            fai_count = fai_count.saturating_add(1);
            fai_size = fai_size.saturating_add(item.size);
        } else {
            normal_count = normal_count.saturating_add(1);
            normal_size = normal_size.saturating_add(item.size);
        }
    }
    let mut out = Vec::with_capacity(32);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&fai_count.to_le_bytes());
    out.extend_from_slice(&fai_size.to_le_bytes());
    out.extend_from_slice(&normal_count.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&normal_size.to_le_bytes());
    out
}

fn write_deletions(writer: &mut FxWriter, gone: &IdSet, quirks: Quirks) {
    if quirks.deletions_as_out_of_scope {
        if !gone.is_empty() {
            tracing::warn!(
                "deletions_as_out_of_scope quirk: deletions reported only as no longer in scope"
            );
        }
        writer.deletions(&IdSet::new(), gone);
    } else {
        writer.deletions(gone, &IdSet::new());
    }
}
