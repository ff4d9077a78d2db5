//! ICS hierarchy upload (MS-OXCFXICS 2.2.3.2.4.3): folders created, renamed and moved
//! with RopSynchronizationImportHierarchyChange, and deleted with
//! RopSynchronizationImportDeletes on a hierarchy collector.
//!
//! A folder keeps the change key and predecessor change list the client gave it, and
//! the collector's state records the change, so the context's checkpoint leaves it out
//! of the next hierarchy download.
// NOTE: a client-chosen folder source key resolves on later imports, but hierarchy
// downloads still report the store's own source key for that folder.

use std::collections::BTreeMap;

use exmux_mapihttp::prop::tags::{
    PID_TAG_CHANGE_KEY, PID_TAG_CONTAINER_CLASS, PID_TAG_DISPLAY_NAME, PID_TAG_PARENT_SOURCE_KEY,
    PID_TAG_PREDECESSOR_CHANGE_LIST, PID_TAG_SOURCE_KEY,
};
use exmux_mapihttp::prop::{PropTag, PropValue, TaggedValue};
use exmux_mapihttp::rop::error_code;

use crate::store::{Cn, Fid, Globcnt, ImportStamp, Pcl, Store, Xid};

use super::props;

/// Folder source keys that clients chose on import, with the folder each names.
#[derive(Debug, Default)]
pub(crate) struct FolderKeys {
    by_key: BTreeMap<Vec<u8>, Fid>,
}

impl FolderKeys {
    /// Returns the folder a source key names: a client-chosen key, or a key of the
    /// store's own form for a folder that exists.
    pub(crate) fn resolve(&self, store: &Store, key: &[u8]) -> Option<Fid> {
        if let Some(fid) = self.by_key.get(key) {
            return store.folder(*fid).map(|_| *fid);
        }
        let xid = Xid::from_bytes(key).ok()?;
        if xid.namespace() != store.replica_guid() {
            return None;
        }
        let bytes: [u8; 6] = xid.local_id().try_into().ok()?;
        let fid = Fid(Globcnt::from_bytes(bytes));
        store.folder(fid).map(|_| fid)
    }

    fn bind(&mut self, key: Vec<u8>, fid: Fid) {
        self.by_key.insert(key, fid);
    }
}

fn binary(values: &[TaggedValue], tag: PropTag) -> Option<&[u8]> {
    match &values.iter().find(|v| v.tag == tag)?.value {
        PropValue::Binary(bytes) => Some(bytes),
        _ => None,
    }
}

/// A folder change to import, read from the two property lists of the ROP.
pub(crate) struct FolderChange {
    parent_key: Vec<u8>,
    source_key: Vec<u8>,
    name: String,
    container_class: Option<String>,
    stamp: ImportStamp,
}

impl FolderChange {
    /// Reads HierarchyValues (the parent source key, source key, change key, predecessor
    /// change list and display name) and PropertyValues (the container class).
    ///
    /// # Errors
    ///
    /// ecInvalidParam when the source key or display name is missing, or the change key
    /// or predecessor change list does not decode.
    pub(crate) fn read(hierarchy: &[TaggedValue], values: &[TaggedValue]) -> Result<Self, u32> {
        let invalid = error_code::INVALID_PARAMETER;
        let source_key = binary(hierarchy, PID_TAG_SOURCE_KEY).ok_or(invalid)?;
        let name = hierarchy
            .iter()
            .chain(values)
            .find(|v| v.tag.id() == PID_TAG_DISPLAY_NAME.id())
            .and_then(|v| props::text_of(&v.value))
            .ok_or(invalid)?;
        let change_key = binary(hierarchy, PID_TAG_CHANGE_KEY)
            .map(|bytes| Xid::from_bytes(bytes).map_err(|_| invalid))
            .transpose()?;
        let pcl = binary(hierarchy, PID_TAG_PREDECESSOR_CHANGE_LIST)
            .map(|bytes| Pcl::from_bytes(bytes).map_err(|_| invalid))
            .transpose()?;
        let container_class = values
            .iter()
            .find(|v| v.tag.id() == PID_TAG_CONTAINER_CLASS.id())
            .and_then(|v| props::text_of(&v.value));
        Ok(FolderChange {
            parent_key: binary(hierarchy, PID_TAG_PARENT_SOURCE_KEY)
                .unwrap_or_default()
                .to_vec(),
            source_key: source_key.to_vec(),
            name,
            container_class,
            stamp: ImportStamp { change_key, pcl },
        })
    }
}

/// The outcome of an import: the folder and, when the import changed it, the change
/// number.
pub(crate) struct Imported {
    pub(crate) fid: Fid,
    pub(crate) cn: Option<Cn>,
}

/// Applies a folder change below `root`, the collector's folder: creates the folder when
/// its source key names none, else moves it to its parent and renames it as needed. An
/// empty parent source key means `root`.
///
/// # Errors
///
/// ecNotFound when the parent source key names no folder, and the store's errors
/// (a name taken, a move into the folder's own subtree) as ROP error codes.
pub(crate) fn import_change(
    store: &mut Store,
    keys: &mut FolderKeys,
    session: crate::store::SessionId,
    root: Fid,
    change: FolderChange,
    store_error: impl Fn(&crate::store::StoreError) -> u32,
) -> Result<Imported, u32> {
    let parent = if change.parent_key.is_empty() {
        root
    } else {
        keys.resolve(store, &change.parent_key)
            .ok_or(error_code::NOT_FOUND)?
    };
    let Some(fid) = keys.resolve(store, &change.source_key) else {
        let created = store
            .create_folder(
                session,
                parent,
                &change.name,
                change.container_class.as_deref(),
                &change.stamp,
            )
            .map_err(|e| store_error(&e))?;
        keys.bind(change.source_key, created.id);
        return Ok(Imported {
            fid: created.id,
            cn: Some(created.cn),
        });
    };

    let mut cn = None;
    if store.folder(fid).and_then(|f| f.parent) != Some(parent) {
        let moved = store
            .move_folder(session, fid, parent)
            .map_err(|e| store_error(&e))?;
        cn = Some(moved.cn);
    }
    let current = store.folder(fid).map(|f| f.display_name.clone());
    if current.as_deref() != Some(change.name.as_str()) {
        let renamed = store
            .rename_folder(session, fid, &change.name, &change.stamp)
            .map_err(|e| store_error(&e))?;
        cn = Some(renamed.cn);
    }
    Ok(Imported { fid, cn })
}

/// Deletes the folders that `keys_to_delete` name; a key naming no folder is skipped,
/// because deleting what is already gone is not an error for ICS. Returns the folders
/// deleted.
///
/// # Errors
///
/// The store's errors (a well-known folder) as ROP error codes.
pub(crate) fn import_deletes(
    store: &mut Store,
    keys: &FolderKeys,
    session: crate::store::SessionId,
    keys_to_delete: &[Vec<u8>],
    store_error: impl Fn(&crate::store::StoreError) -> u32,
) -> Result<Vec<Fid>, u32> {
    let mut deleted = Vec::new();
    for key in keys_to_delete {
        let Some(fid) = keys.resolve(store, key) else {
            continue;
        };
        store
            .delete_folder(session, fid)
            .map_err(|e| store_error(&e))?;
        deleted.push(fid);
    }
    Ok(deleted)
}
