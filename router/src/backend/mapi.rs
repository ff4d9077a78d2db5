//! MAPI/HTTP results as core inputs: ICS contents downloads (MS-OXCFXICS) with change
//! keys and predecessor change lists, read-state sets and deletions, and RopNotify
//! notices (MS-OXCNOTIF).

use exmux_mapihttp::ids::ObjectId;
use exmux_mapihttp::session::{ContentsSync, ItemChange as MapiItemChange, Notice};

use crate::core::{ChangeKind, ItemChange, SyncChange, SyncPage, SyncState};
use crate::ids::{BackendItemId, FolderKey};
use crate::journal::ChangeKey;

fn item_id(fid: u64, mid: ObjectId) -> BackendItemId {
    BackendItemId::Mapi { fid, mid: mid.0 }
}

/// Turns one downloaded message change into a core change. ICS does not say whether a
/// message is new to the client, so the kind is [`ChangeKind::Upserted`]. Returns
/// `None` for a change without PidTagMid, which no item can be matched to.
pub fn item_change(fid: u64, change: &MapiItemChange) -> Option<SyncChange> {
    let mid = change.message_id?;
    let predecessors = change
        .predecessors
        .as_ref()
        .map(|list| {
            list.xids()
                .iter()
                .map(|xid| {
                    let mut bytes = Vec::new();
                    xid.encode(&mut bytes);
                    ChangeKey(bytes)
                })
                .collect()
        })
        .unwrap_or_default();
    Some(SyncChange::Item(ItemChange {
        id: item_id(fid, mid),
        kind: ChangeKind::Upserted,
        change_key: change.change_key.clone().map(ChangeKey),
        predecessors,
        read: change.read,
    }))
}

/// Turns an ICS contents download of folder `fid` into one core sync page: message
/// changes first, then read-state changes, then deletions (including messages no
/// longer in scope), as MS-OXCFXICS orders the stream. The session client reads the
/// whole download, so the page is always the last.
pub fn contents_page(folder: FolderKey, fid: u64, sync: &ContentsSync) -> SyncPage {
    let mut changes: Vec<SyncChange> = sync
        .changes
        .iter()
        .filter(|change| !change.associated)
        .filter_map(|change| item_change(fid, change))
        .collect();
    for (ids, read) in [(&sync.read, true), (&sync.unread, false)] {
        changes.extend(ids.iter().map(|mid| SyncChange::ReadState {
            id: item_id(fid, *mid),
            read,
        }));
    }
    for mid in sync.deleted.iter().chain(&sync.no_longer_in_scope) {
        changes.push(SyncChange::Deleted {
            id: item_id(fid, *mid),
        });
    }
    SyncPage {
        folder,
        changes,
        new_state: SyncState(sync.state.to_bytes()),
        more_available: false,
    }
}

/// The MAPI side of a mailbox's EWS ids: the mailbox GUID of the logon and the replica
/// map that turns a replica id (REPLID) into its database GUID (REPLGUID).
pub struct EwsIdContext<'a> {
    /// The MailboxGuid of the RopLogon response, as sent (MS-OXCROPS 2.2.3.1.3).
    pub mailbox_guid: [u8; 16],
    /// Returns the database GUID of a replica id.
    pub guid_of: &'a dyn Fn(u16) -> Option<[u8; 16]>,
}

impl EwsIdContext<'_> {
    fn global_id(&self, id: ObjectId) -> Option<exmux_ews::ids::GlobalId> {
        Some(exmux_ews::ids::GlobalId {
            database_guid: (self.guid_of)(id.replid())?,
            global_counter: id.globcnt().to_bytes(),
        })
    }

    fn encode(&self, folder: ObjectId, message: Option<ObjectId>) -> Option<String> {
        let entry = exmux_ews::ids::EntryId {
            // MS-OXCDATA 2.2.4.1: the ProviderUID of a private mailbox's entry ids is the
            // MailboxGuid of the logon.
            provider_uid: self.mailbox_guid,
            folder: self.global_id(folder)?,
            message: match message {
                Some(mid) => Some(self.global_id(mid)?),
                None => None,
            },
        };
        // The GUID is sent in the little-endian layout of MS-DTYP 2.3.4.2; the id
        // carries its text form.
        // NOTE: Exchange's id layout (mailbox GUID text, then the entry id) comes from
        // captures, not a specification. A server that rejects a built id needs EWS
        // ConvertId, which this path does not call.
        let mailbox = uuid::Uuid::from_bytes_le(self.mailbox_guid)
            .hyphenated()
            .to_string();
        Some(exmux_ews::ids::encode_ews_id(&mailbox, &entry.to_bytes()))
    }

    /// Returns the EWS ItemId of message `mid` in folder `fid`: the message's entry id
    /// (MS-OXCDATA 2.2.4.2) in Exchange's EWS id layout. `None` when the replica map
    /// does not name a replica id of the two.
    pub fn item_id(&self, fid: u64, mid: u64) -> Option<String> {
        self.encode(ObjectId(fid), Some(ObjectId(mid)))
    }

    /// Returns the EWS FolderId of folder `fid`: the folder's entry id (MS-OXCDATA
    /// 2.2.4.1) in Exchange's EWS id layout. `None` when the replica map does not name
    /// its replica id.
    pub fn folder_id(&self, fid: u64) -> Option<String> {
        self.encode(ObjectId(fid), None)
    }
}

/// Returns the folder ids a notice names: the folder of the object and, for moves and
/// copies, the folder it left. Notices are hints, each naming a folder to sync.
pub fn notice_folders(notice: &Notice) -> Vec<u64> {
    let mut folders = Vec::new();
    for id in [notice.folder_id, notice.old_folder_id]
        .into_iter()
        .flatten()
    {
        if !folders.contains(&id.0) {
            folders.push(id.0);
        }
    }
    folders
}

#[cfg(test)]
mod tests {
    use exmux_mapihttp::ids::{Guid, PredecessorChangeList, Xid};
    use exmux_mapihttp::session::SyncState as MapiState;

    use super::*;

    fn change(mid: u64, read: Option<bool>) -> MapiItemChange {
        MapiItemChange {
            source_key: vec![1; 22],
            message_id: Some(ObjectId(mid)),
            change_key: Some(vec![7; 22]),
            change_xid: None,
            predecessors: None,
            change_number: None,
            associated: false,
            read,
            raw: Box::default(),
        }
    }

    #[test]
    fn download_becomes_one_last_page() {
        let mut associated = change(9, None);
        associated.associated = true;
        let sync = ContentsSync {
            changes: vec![change(1, Some(false)), associated],
            deleted: vec![ObjectId(2)],
            no_longer_in_scope: vec![ObjectId(3)],
            read: vec![ObjectId(4)],
            unread: vec![ObjectId(5)],
            state: MapiState::default(),
        };
        let page = contents_page(FolderKey(1), 0x10, &sync);

        assert!(!page.more_available);
        let ids: Vec<String> = page.changes.iter().map(|c| c.id().to_string()).collect();
        assert_eq!(
            ids,
            [
                "mapi:0x10/0x1",
                "mapi:0x10/0x4",
                "mapi:0x10/0x5",
                "mapi:0x10/0x2",
                "mapi:0x10/0x3"
            ]
        );
        assert!(matches!(
            &page.changes[0],
            SyncChange::Item(ItemChange {
                kind: ChangeKind::Upserted,
                read: Some(false),
                change_key: Some(_),
                ..
            })
        ));
        assert!(matches!(
            page.changes[1],
            SyncChange::ReadState { read: true, .. }
        ));
        assert!(matches!(
            page.changes[2],
            SyncChange::ReadState { read: false, .. }
        ));
        assert!(matches!(page.changes[3], SyncChange::Deleted { .. }));
    }

    #[test]
    fn predecessors_keep_their_xids() {
        let namespace = Guid([3; 16]);
        let xid = Xid::new(namespace, &[0, 0, 0, 0, 0, 9]).unwrap();
        let mut bytes = vec![22];
        xid.encode(&mut bytes);
        let list = PredecessorChangeList::decode(&bytes, 0).unwrap();
        let mut with_list = change(1, None);
        with_list.predecessors = Some(list);

        let Some(SyncChange::Item(item)) = item_change(1, &with_list) else {
            panic!("a change with a MID maps to an item change");
        };
        let mut expected = Vec::new();
        xid.encode(&mut expected);
        assert_eq!(item.predecessors, [ChangeKey(expected)]);
    }

    fn context_guid(replid: u16) -> Option<[u8; 16]> {
        (replid == 1).then_some([0x5a; 16])
    }

    #[test]
    fn ews_item_id_round_trips_through_decoding() {
        let context = EwsIdContext {
            mailbox_guid: [0x42; 16],
            guid_of: &context_guid,
        };
        let fid = ObjectId::from_parts(
            1,
            exmux_mapihttp::ids::GlobCnt::from_bytes([0, 0, 0, 0, 0, 0x21]),
        )
        .0;
        let mid = ObjectId::from_parts(
            1,
            exmux_mapihttp::ids::GlobCnt::from_bytes([0, 0, 0, 0, 1, 0x02]),
        )
        .0;

        let text = context.item_id(fid, mid).unwrap();
        let replid_of = |guid: &[u8; 16]| (guid == &[0x5a; 16]).then_some(1);
        assert_eq!(
            crate::backend::ews::mapi_item_id_with(&text, replid_of),
            Some(BackendItemId::Mapi { fid, mid })
        );
        let entry = exmux_ews::ids::decode_ews_id(&text).unwrap();
        assert_eq!(entry.provider_uid, [0x42; 16]);
    }

    #[test]
    fn ews_folder_id_round_trips_through_decoding() {
        let context = EwsIdContext {
            mailbox_guid: [0x42; 16],
            guid_of: &context_guid,
        };
        let fid = ObjectId::from_parts(
            1,
            exmux_mapihttp::ids::GlobCnt::from_bytes([0, 0, 0, 0, 0, 0x33]),
        )
        .0;
        let text = context.folder_id(fid).unwrap();
        let replid_of = |guid: &[u8; 16]| (guid == &[0x5a; 16]).then_some(1);
        assert_eq!(
            crate::backend::ews::mapi_folder_id_with(&text, replid_of),
            Some(fid)
        );
        assert_eq!(
            crate::backend::ews::mapi_item_id_with(&text, replid_of),
            None
        );
    }

    #[test]
    fn ews_id_of_unknown_replica_is_none() {
        let context = EwsIdContext {
            mailbox_guid: [0x42; 16],
            guid_of: &context_guid,
        };
        let foreign = ObjectId::from_parts(
            7,
            exmux_mapihttp::ids::GlobCnt::from_bytes([0, 0, 0, 0, 0, 1]),
        )
        .0;
        assert_eq!(context.folder_id(foreign), None);
    }

    #[test]
    fn change_without_mid_is_skipped() {
        let mut anonymous = change(1, None);
        anonymous.message_id = None;
        assert_eq!(item_change(1, &anonymous), None);
    }
}
