//! EWS ids of the store's folders and items, in Exchange's layout: an ItemId or FolderId
//! carries the object's MAPI entry id, and a ChangeKey carries its PidTagChangeKey XID
//! (the layouts are documented in `exmux_ews::ids`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use exmux_ews::ids::{
    CHANGE_KEY_CLASS_FOLDER, CHANGE_KEY_CLASS_MESSAGE, EntryId, GlobalId, decode_ews_id,
    encode_change_key, encode_ews_id,
};
use exmux_ews::types::{DistinguishedFolder, FolderId, FolderRef, ItemId};

use super::error::{code_error, not_found};
use crate::store::{Fid, Folder, Globcnt, Item, Mid, Store, WellKnownFolder, Xid};
use exmux_ews::{MessageError, ResponseCode};

/// Turns store ids into EWS ids and back for one mailbox.
#[derive(Debug, Clone)]
pub(crate) struct IdCodec {
    /// The mailbox GUID in text form, written into every id.
    mailbox_text: String,
    /// The ProviderUID of the entry ids: the mailbox GUID's bytes.
    provider_uid: [u8; 16],
    /// The store's replica GUID: the DatabaseGuid of every folder and message.
    replica: [u8; 16],
}

impl IdCodec {
    pub(crate) fn new(mailbox_guid: uuid::Uuid, store: &Store) -> Self {
        Self {
            mailbox_text: mailbox_guid.hyphenated().to_string(),
            provider_uid: mailbox_guid.to_bytes_le(),
            replica: store.replica_guid().0,
        }
    }

    fn global(&self, counter: Globcnt) -> GlobalId {
        GlobalId {
            database_guid: self.replica,
            global_counter: counter.to_bytes(),
        }
    }

    /// Returns the entry id bytes of a folder.
    pub(crate) fn folder_entry_id(&self, fid: Fid) -> Vec<u8> {
        EntryId {
            provider_uid: self.provider_uid,
            folder: self.global(fid.0),
            message: None,
        }
        .to_bytes()
    }

    /// Returns the EWS id (without ChangeKey) of a folder.
    pub(crate) fn folder_id_text(&self, fid: Fid) -> String {
        encode_ews_id(&self.mailbox_text, &self.folder_entry_id(fid))
    }

    /// Returns the FolderId and ChangeKey of a folder.
    pub(crate) fn folder_id(&self, folder: &Folder) -> FolderId {
        FolderId {
            id: self.folder_id_text(folder.fid),
            change_key: Some(change_key(
                CHANGE_KEY_CLASS_FOLDER,
                &folder.stamp.change_key,
            )),
        }
    }

    /// Returns the ItemId (without ChangeKey) of message `mid` in folder `fid`.
    pub(crate) fn item_id_at(&self, fid: Fid, mid: Mid) -> ItemId {
        let entry = EntryId {
            provider_uid: self.provider_uid,
            folder: self.global(fid.0),
            message: Some(self.global(mid.0)),
        };
        ItemId::new(encode_ews_id(&self.mailbox_text, &entry.to_bytes()))
    }

    /// Returns the ItemId and ChangeKey of an item.
    pub(crate) fn item_id(&self, item: &Item) -> ItemId {
        ItemId {
            change_key: Some(change_key(CHANGE_KEY_CLASS_MESSAGE, &item.stamp.change_key)),
            ..self.item_id_at(item.folder, item.mid)
        }
    }

    /// Returns the entry id of an item, in the mailbox's EWS id text.
    pub(crate) fn decode(&self, id: &str) -> Result<EntryId, MessageError> {
        let entry = decode_ews_id(id).map_err(|error| {
            code_error(ResponseCode::ErrorInvalidIdMalformed, error.to_string())
        })?;
        if entry.folder.database_guid != self.replica {
            return Err(code_error(
                ResponseCode::ErrorInvalidIdMalformed,
                format!("the id {id:?} belongs to another mailbox store"),
            ));
        }
        Ok(entry)
    }

    /// Resolves a folder reference to an existing folder of the store.
    pub(crate) fn resolve_folder(
        &self,
        store: &Store,
        folder: &FolderRef,
    ) -> Result<Fid, MessageError> {
        let fid = match folder {
            FolderRef::Distinguished { name, .. } => {
                let well_known = well_known(*name).ok_or_else(|| {
                    not_found(
                        ResponseCode::ErrorFolderNotFound,
                        format!("the emulator's mailbox has no {} folder", name.as_str()),
                    )
                })?;
                store.well_known_folder(well_known).ok_or_else(|| {
                    not_found(
                        ResponseCode::ErrorFolderNotFound,
                        format!("the {} folder is missing", name.as_str()),
                    )
                })?
            }
            FolderRef::Id(id) => {
                let entry = self.decode(&id.id)?;
                if entry.message.is_some() {
                    return Err(code_error(
                        ResponseCode::ErrorInvalidIdMalformed,
                        format!("the id {:?} is an item id, not a folder id", id.id),
                    ));
                }
                Fid(to_globcnt(&entry.folder)?)
            }
            _ => {
                return Err(code_error(
                    ResponseCode::ErrorInvalidIdMalformed,
                    "unsupported folder reference".to_owned(),
                ));
            }
        };
        if store.folder(fid).is_none() {
            return Err(not_found(
                ResponseCode::ErrorFolderNotFound,
                format!("folder {fid} not found; it may have been deleted"),
            ));
        }
        Ok(fid)
    }

    /// Resolves an ItemId to an existing item of the store.
    pub(crate) fn resolve_item(&self, store: &Store, id: &ItemId) -> Result<Mid, MessageError> {
        let entry = self.decode(&id.id)?;
        let Some(message) = entry.message else {
            return Err(code_error(
                ResponseCode::ErrorInvalidIdMalformed,
                format!("the id {:?} is a folder id, not an item id", id.id),
            ));
        };
        let mid = Mid(to_globcnt(&message)?);
        if store.item(mid).is_none() {
            return Err(not_found(
                ResponseCode::ErrorItemNotFound,
                format!("item {mid} not found; it may have been moved or deleted"),
            ));
        }
        Ok(mid)
    }

    /// Returns the entry id of an EWS id as standard base64 (ConvertId's `EntryId`).
    pub(crate) fn entry_id_base64(&self, id: &str) -> Result<String, MessageError> {
        Ok(STANDARD.encode(self.decode(id)?.to_bytes()))
    }

    /// Returns the EWS id of an entry id.
    pub(crate) fn ews_id_of_entry(&self, entry_id: &[u8]) -> Result<String, MessageError> {
        let entry = EntryId::parse(entry_id).map_err(|error| {
            code_error(ResponseCode::ErrorInvalidIdMalformed, error.to_string())
        })?;
        Ok(encode_ews_id(&self.mailbox_text, &entry.to_bytes()))
    }
}

/// Returns the ChangeKey of an XID in Exchange's layout.
pub(crate) fn change_key(class: u32, xid: &Xid) -> String {
    encode_change_key(class, &xid.to_bytes())
}

fn to_globcnt(id: &GlobalId) -> Result<Globcnt, MessageError> {
    Globcnt::new(id.counter()).ok_or_else(|| {
        code_error(
            ResponseCode::ErrorInvalidIdMalformed,
            "the id's global counter is out of range".to_owned(),
        )
    })
}

/// Maps a DistinguishedFolderId name to the store's well-known folder.
pub(crate) fn well_known(name: DistinguishedFolder) -> Option<WellKnownFolder> {
    WellKnownFolder::ALL
        .into_iter()
        .find(|folder| folder.ews_name() == name.as_str())
}
