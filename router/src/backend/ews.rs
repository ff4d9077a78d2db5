//! EWS results as core inputs: SyncFolderItems changes (MS-OXWSSYNC 3.1.4.2), ChangeKeys
//! (MS-OXWSCORE 2.2.4.25), notification events (MS-OXWSNTIF 2.2.4) and errors.

use exmux_ews::client::ClientError;
use exmux_ews::ops::notify::{Event as EwsEvent, EventKind};
use exmux_ews::ops::sync::{ItemSync, SyncChange as EwsSyncChange};
use exmux_ews::types::Item;

use crate::core::{ChangeKind, ItemChange, SyncChange, SyncFailure, SyncPage, SyncState};
use crate::ids::{BackendItemId, FolderKey};
use crate::journal::ChangeKey;

/// Turns an EWS ChangeKey into the router's change key: the PidTagChangeKey XID it
/// carries (after Exchange's short header, or bare as some servers send it), or the
/// ChangeKey's own bytes when its layout is unknown, so equal ChangeKeys still compare
/// equal.
pub fn change_key(text: &str) -> ChangeKey {
    match exmux_ews::ids::decode_change_key(text) {
        Ok(xid) => ChangeKey(xid),
        Err(_) => ChangeKey(text.as_bytes().to_vec()),
    }
}

fn item_change(item: Item, kind: ChangeKind) -> Option<SyncChange> {
    let item_id = item.item_id?;
    Some(SyncChange::Item(ItemChange {
        id: BackendItemId::Ews(item_id.id),
        kind,
        change_key: item_id.change_key.as_deref().map(change_key),
        predecessors: Vec::new(),
        read: item.is_read,
    }))
}

/// The replica id (REPLID) of the mailbox's own database in MAPI ids. MS-OXCDATA
/// 2.2.1.1 leaves the mapping to the logon; servers give their own replica 1.
const OWN_REPLID: u16 = 1;

/// Returns the MAPI folder and message ids an EWS ItemId carries: the id wraps the
/// message's entry id (MS-OXCDATA 2.2.4.2), whose global ids contain the database GUIDs
/// and counters. `None` when the id does not decode or is not a message id.
///
/// NOTE: the replica id is assumed to be the mailbox's own (1). Callers with a MAPI
/// logon use [`mapi_item_id_with`] and the logon's replica map instead.
pub fn mapi_item_id(ews_id: &str) -> Option<BackendItemId> {
    mapi_item_id_with(ews_id, |_| Some(OWN_REPLID))
}

/// Returns the MAPI folder and message ids an EWS ItemId carries, mapping each database
/// GUID of its entry id to a replica id with `replid_of` (the MAPI logon's replica map).
/// `None` when the id does not decode, is not a message id, or names a database GUID
/// that `replid_of` does not map. EWS ConvertId is the fallback then.
pub fn mapi_item_id_with(
    ews_id: &str,
    replid_of: impl Fn(&[u8; 16]) -> Option<u16>,
) -> Option<BackendItemId> {
    let entry = exmux_ews::ids::decode_ews_id(ews_id).ok()?;
    let message = entry.message?;
    let object = |id: exmux_ews::ids::GlobalId| {
        let replid = replid_of(&id.database_guid)?;
        let counter = exmux_mapihttp::ids::GlobCnt::from_bytes(id.global_counter);
        Some(exmux_mapihttp::ids::ObjectId::from_parts(replid, counter).0)
    };
    Some(BackendItemId::Mapi {
        fid: object(entry.folder)?,
        mid: object(message)?,
    })
}

/// Returns the MAPI folder id an EWS FolderId carries. The id wraps the folder's entry
/// id (MS-OXCDATA 2.2.4.1), whose global id contains the database GUID and counter.
/// `replid_of` maps the GUID to a replica id (the MAPI logon's replica map). Returns
/// `None` when the id does not decode, is a message id, or names a GUID that
/// `replid_of` does not map.
pub fn mapi_folder_id_with(
    ews_id: &str,
    replid_of: impl Fn(&[u8; 16]) -> Option<u16>,
) -> Option<u64> {
    let entry = exmux_ews::ids::decode_ews_id(ews_id).ok()?;
    if entry.message.is_some() {
        return None;
    }
    let replid = replid_of(&entry.folder.database_guid)?;
    let counter = exmux_mapihttp::ids::GlobCnt::from_bytes(entry.folder.global_counter);
    Some(exmux_mapihttp::ids::ObjectId::from_parts(replid, counter).0)
}

/// Turns one SyncFolderItems change into a core sync change. Returns `None` for a
/// Create or Update without an ItemId, which no item can be matched to.
pub fn sync_change(change: EwsSyncChange) -> Option<SyncChange> {
    match change {
        EwsSyncChange::Create(item) => item_change(item, ChangeKind::Created),
        EwsSyncChange::Update(item) => item_change(item, ChangeKind::Modified),
        EwsSyncChange::Delete(id) => Some(SyncChange::Deleted {
            id: BackendItemId::Ews(id.id),
        }),
        EwsSyncChange::ReadFlagChange { item_id, is_read } => Some(SyncChange::ReadState {
            id: BackendItemId::Ews(item_id.id),
            read: is_read,
        }),
        _ => None,
    }
}

/// Turns one SyncFolderItems page of `folder` into a core sync page. The SyncState
/// text becomes the opaque state bytes.
pub fn sync_page(folder: FolderKey, page: ItemSync) -> SyncPage {
    SyncPage {
        folder,
        changes: page.changes.into_iter().filter_map(sync_change).collect(),
        new_state: SyncState(page.sync_state.into_bytes()),
        more_available: !page.includes_last,
    }
}

/// Returns the EWS SyncState text of a core state, or `None` for the empty state (a
/// first sync).
///
/// # Errors
/// The state's bytes when they are not UTF-8, which means the state was saved by the
/// other backend: sync from empty instead.
pub fn sync_state_text(state: &SyncState) -> Result<Option<String>, Vec<u8>> {
    if state.is_empty() {
        return Ok(None);
    }
    String::from_utf8(state.0.clone())
        .map(Some)
        .map_err(|error| error.into_bytes())
}

/// Classifies a failed SyncFolderItems call: `ErrorInvalidSyncStateData` is the only
/// failure that leads to a full resync; the rest are retried when a retry can help.
pub fn sync_failure(error: &ClientError) -> SyncFailure {
    if error.ews().is_some_and(|ews| ews.is_invalid_sync_state()) {
        return SyncFailure::InvalidSyncState;
    }
    SyncFailure::Other {
        message: format!("SyncFolderItems failed: {error}"),
        retryable: error.is_retryable(),
    }
}

/// Returns the folder ids a notification event says changed: the folder that holds
/// the item, the folder an item left (moves), or the folder itself for folder events.
/// Status events (heartbeats) name none. These are hints: each names a folder to sync.
pub fn notice_folders(event: &EwsEvent) -> Vec<String> {
    if matches!(event.kind, EventKind::Status | EventKind::FreeBusyChanged) {
        return Vec::new();
    }
    let mut folders = Vec::new();
    for id in [&event.parent_folder_id, &event.old_parent_folder_id]
        .into_iter()
        .flatten()
    {
        if !folders.contains(&id.id) {
            folders.push(id.id.clone());
        }
    }
    folders
}

#[cfg(test)]
mod tests {
    use exmux_ews::ops::notify::Event as EwsEvent;
    use exmux_ews::types::{FolderId, ItemId, ItemKind};

    use super::*;

    fn item(id: &str, change_key: Option<&str>, read: Option<bool>) -> Item {
        let mut item = Item::new(ItemKind::Message);
        item.item_id = Some(ItemId {
            id: id.to_owned(),
            change_key: change_key.map(str::to_owned),
        });
        item.is_read = read;
        item
    }

    fn message_ews_id(folder_guid: [u8; 16], message_guid: [u8; 16]) -> String {
        let entry = exmux_ews::ids::EntryId {
            provider_uid: [9; 16],
            folder: exmux_ews::ids::GlobalId {
                database_guid: folder_guid,
                global_counter: [0, 0, 0, 0, 0, 0x21],
            },
            message: Some(exmux_ews::ids::GlobalId {
                database_guid: message_guid,
                global_counter: [0, 0, 0, 0, 1, 0x02],
            }),
        };
        exmux_ews::ids::encode_ews_id("9362c853-fa03-45d1-9d7c-ef09db45f783", &entry.to_bytes())
    }

    #[test]
    fn item_id_maps_guids_through_replica_map() {
        let id = message_ews_id([1; 16], [2; 16]);
        let replid_of = |guid: &[u8; 16]| match guid {
            [1, ..] => Some(5),
            [2, ..] => Some(7),
            _ => None,
        };
        let fid = exmux_mapihttp::ids::ObjectId::from_parts(
            5,
            exmux_mapihttp::ids::GlobCnt::from_bytes([0, 0, 0, 0, 0, 0x21]),
        );
        let mid = exmux_mapihttp::ids::ObjectId::from_parts(
            7,
            exmux_mapihttp::ids::GlobCnt::from_bytes([0, 0, 0, 0, 1, 0x02]),
        );
        assert_eq!(
            mapi_item_id_with(&id, replid_of),
            Some(BackendItemId::Mapi {
                fid: fid.0,
                mid: mid.0
            })
        );
    }

    #[test]
    fn item_id_with_unmapped_guid_is_none() {
        let id = message_ews_id([1; 16], [3; 16]);
        let replid_of = |guid: &[u8; 16]| (guid == &[1; 16]).then_some(5);
        assert_eq!(mapi_item_id_with(&id, replid_of), None);
        assert_eq!(mapi_item_id_with("not an id", replid_of), None);
    }

    #[test]
    fn bare_xid_change_key_is_the_xid() {
        // 16-byte GUID and a 6-byte local id: the 22-byte bare layout.
        let xid: Vec<u8> = (1..=22).collect();
        let text = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &xid);
        assert_eq!(change_key(&text), ChangeKey(xid));
    }

    #[test]
    fn unknown_change_key_layout_keeps_its_bytes() {
        assert_eq!(
            change_key("not base64!"),
            ChangeKey(b"not base64!".to_vec())
        );
    }

    #[test]
    fn page_maps_every_change_kind() {
        let page = ItemSync {
            sync_state: "H4sI".to_owned(),
            includes_last: false,
            changes: vec![
                EwsSyncChange::Create(item("a", None, Some(false))),
                EwsSyncChange::Update(item("b", None, None)),
                EwsSyncChange::Delete(ItemId {
                    id: "c".to_owned(),
                    change_key: None,
                }),
                EwsSyncChange::ReadFlagChange {
                    item_id: ItemId {
                        id: "d".to_owned(),
                        change_key: None,
                    },
                    is_read: true,
                },
                EwsSyncChange::Create(Item::new(ItemKind::Message)),
            ],
        };
        let page = sync_page(FolderKey(3), page);
        assert!(page.more_available);
        assert_eq!(page.new_state, SyncState(b"H4sI".to_vec()));
        assert_eq!(page.changes.len(), 4, "the change without an id is skipped");
        assert!(matches!(
            &page.changes[0],
            SyncChange::Item(ItemChange {
                kind: ChangeKind::Created,
                read: Some(false),
                ..
            })
        ));
        assert!(matches!(
            &page.changes[1],
            SyncChange::Item(ItemChange {
                kind: ChangeKind::Modified,
                read: None,
                ..
            })
        ));
        assert_eq!(
            page.changes[2],
            SyncChange::Deleted {
                id: BackendItemId::Ews("c".into())
            }
        );
        assert_eq!(
            page.changes[3],
            SyncChange::ReadState {
                id: BackendItemId::Ews("d".into()),
                read: true
            }
        );
    }

    #[test]
    fn state_text_round_trips_and_rejects_binary() {
        assert_eq!(sync_state_text(&SyncState::default()), Ok(None));
        assert_eq!(
            sync_state_text(&SyncState(b"abc".to_vec())),
            Ok(Some("abc".to_owned()))
        );
        assert!(sync_state_text(&SyncState(vec![0xff, 0xfe])).is_err());
    }

    #[test]
    fn move_event_names_both_folders_and_status_none() {
        let mut event = EwsEvent::new(EventKind::Moved);
        event.parent_folder_id = Some(FolderId {
            id: "to".into(),
            change_key: None,
        });
        event.old_parent_folder_id = Some(FolderId {
            id: "from".into(),
            change_key: None,
        });
        assert_eq!(notice_folders(&event), ["to", "from"]);
        assert!(notice_folders(&EwsEvent::new(EventKind::Status)).is_empty());
    }
}
