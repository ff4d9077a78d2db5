//! Item operations: create, read, list, update, mark read, delete, move and copy.

use super::mime::{compose_mime, estimate_size, props_from_mime};
use super::model::{ImportStamp, Item, ItemUpdate, NewItemContent, ReadResult, WriteResult};
use super::notify::{EventKind, ObjectId};
use super::{Fid, Mid, SessionId, Store, StoreError, Tombstone};

/// A new item.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewItem {
    /// The content: properties or MIME.
    pub content: NewItemContent,
    /// Whether the item is a folder-associated information (FAI) item.
    pub associated: bool,
    /// Whether the item arrived by delivery: subscriptions then also receive a
    /// [`EventKind::NewMail`] notice.
    pub new_mail: bool,
    /// Change tracking from an ICS upload, kept as given.
    pub import: ImportStamp,
}

/// Paging options of [`Store::list_items`], like an EWS FindItem
/// IndexedPageItemView.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListOptions {
    /// How many items to skip.
    pub offset: usize,
    /// The largest number of items to return.
    pub max_entries: usize,
    /// List FAI items instead of normal ones.
    pub associated: bool,
}

impl Default for ListOptions {
    fn default() -> Self {
        Self {
            offset: 0,
            max_entries: 1000,
            associated: false,
        }
    }
}

/// A page of a folder's items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemPage<'a> {
    /// The items, ordered by message id (creation order).
    pub items: Vec<&'a Item>,
    /// The number of items in the folder that match the options' `associated`.
    pub total: usize,
    /// Whether items follow this page.
    pub more_available: bool,
}

/// The item counts of a folder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FolderCounts {
    /// Normal (non-FAI) items.
    pub total: usize,
    /// Normal items whose read flag is clear.
    pub unread: usize,
    /// Folder-associated (FAI) items.
    pub associated: usize,
}

impl Store {
    /// Returns an item.
    pub fn item(&self, mid: Mid) -> Option<&Item> {
        self.items.get(&mid)
    }

    /// Returns the deletion record of an item that was deleted or moved away.
    pub fn item_tombstone(&self, mid: Mid) -> Option<&Tombstone> {
        self.item_tombstones.get(&mid)
    }

    /// Returns the item counts of a folder (EWS TotalCount and UnreadCount; MAPI
    /// PidTagContentCount, PidTagContentUnreadCount and PidTagAssociatedContentCount).
    ///
    /// # Errors
    ///
    /// [`StoreError::FolderNotFound`] when the folder does not exist.
    pub fn folder_counts(&self, fid: Fid) -> Result<FolderCounts, StoreError> {
        let mids = self
            .folder_items
            .get(&fid)
            .ok_or(StoreError::FolderNotFound {
                operation: "count items",
                fid,
            })?;
        let mut counts = FolderCounts::default();
        for item in mids.iter().filter_map(|mid| self.items.get(mid)) {
            if item.associated {
                counts.associated += 1;
                continue;
            }
            counts.total += 1;
            if !item.props.read {
                counts.unread += 1;
            }
        }
        Ok(counts)
    }

    /// Returns a page of a folder's items in message id order.
    ///
    /// # Errors
    ///
    /// [`StoreError::FolderNotFound`] when the folder does not exist.
    pub fn list_items(&self, fid: Fid, options: ListOptions) -> Result<ItemPage<'_>, StoreError> {
        let mids = self
            .folder_items
            .get(&fid)
            .ok_or(StoreError::FolderNotFound {
                operation: "list items",
                fid,
            })?;
        let matching = mids
            .iter()
            .filter_map(|mid| self.items.get(mid))
            .filter(|item| item.associated == options.associated);
        let total = matching.clone().count();
        let items: Vec<&Item> = matching
            .skip(options.offset)
            .take(options.max_entries)
            .collect();
        let more_available = options.offset.saturating_add(items.len()) < total;
        Ok(ItemPage {
            items,
            total,
            more_available,
        })
    }

    /// Creates an item in `folder`. An item from MIME gets its properties from the MIME
    /// and its received time from the `Date` header, or the clock when there is none.
    ///
    /// # Errors
    ///
    /// [`StoreError::UnknownSession`] or [`StoreError::SessionExpired`] for a bad
    /// session, [`StoreError::FolderNotFound`], and [`StoreError::InvalidMime`] when
    /// the MIME cannot be parsed.
    pub fn create_item(
        &mut self,
        session: SessionId,
        folder: Fid,
        new: NewItem,
    ) -> Result<WriteResult<Mid>, StoreError> {
        const OPERATION: &str = "create item";
        self.check_session(OPERATION, session)?;
        self.check_folder(OPERATION, folder)?;

        let (mut props, mime) = match new.content {
            // MIME composed here carries the attachments to the EWS MimeContent.
            NewItemContent::Props(props) if !props.attachments.is_empty() => {
                let mime = compose_mime(&props);
                (props, Some(mime))
            }
            NewItemContent::Props(props) => (props, None),
            NewItemContent::Empty => (Default::default(), None),
            NewItemContent::Mime(mime) => {
                let props = props_from_mime(&mime).ok_or(StoreError::InvalidMime {
                    operation: OPERATION,
                    length: mime.len(),
                })?;
                (props, Some(mime))
            }
        };
        if mime.is_some() && props.received.is_none() {
            props.received = Some(self.clock.now());
        }
        props.has_attachments |= !props.attachments.is_empty();
        let size = match &mime {
            Some(bytes) => u64::try_from(bytes.len()).unwrap_or(u64::MAX),
            None => estimate_size(&props),
        };

        let mid = Mid(self.next_globcnt(OPERATION)?);
        let stamp = self.new_stamp(OPERATION, session, None, &new.import)?;
        let result = WriteResult {
            id: mid,
            cn: stamp.cn,
            change_key: stamp.change_key.clone(),
        };
        self.insert_item(Item {
            mid,
            folder,
            associated: new.associated,
            props,
            mime,
            size,
            stamp,
            read_cn: None,
            created_by: session,
        });

        let object = ObjectId::Item(mid);
        self.emit(
            EventKind::Created,
            object,
            folder,
            None,
            session,
            Some(result.cn),
        );
        if new.new_mail {
            self.emit(
                EventKind::NewMail,
                object,
                folder,
                None,
                session,
                Some(result.cn),
            );
        }
        Ok(result)
    }

    /// Changes an item's content properties: a new change number, change key and PCL,
    /// with the same message id. Setting `mime` re-reads every property from it except
    /// the read and follow-up flags.
    ///
    /// # Errors
    ///
    /// A bad session, [`StoreError::ItemNotFound`], or [`StoreError::InvalidMime`].
    pub fn update_item(
        &mut self,
        session: SessionId,
        mid: Mid,
        update: ItemUpdate,
        import: &ImportStamp,
    ) -> Result<WriteResult<Mid>, StoreError> {
        const OPERATION: &str = "update item";
        self.check_session(OPERATION, session)?;
        let item = self.items.get(&mid).ok_or(StoreError::ItemNotFound {
            operation: OPERATION,
            mid,
        })?;

        // Build the new version completely before committing anything.
        let mut update = update;
        let mut props = item.props.clone();
        let mut mime = item.mime.clone();
        if let Some(bytes) = update.mime.take() {
            let mut parsed = props_from_mime(&bytes).ok_or(StoreError::InvalidMime {
                operation: OPERATION,
                length: bytes.len(),
            })?;
            parsed.read = props.read;
            parsed.flag = props.flag;
            if parsed.received.is_none() {
                parsed.received = props.received;
            }
            props = parsed;
            mime = Some(bytes);
            update.attachments = None;
        }
        let attachments_changed = update.attachments.is_some();
        apply_update(&mut props, update);
        if attachments_changed {
            props.has_attachments = !props.attachments.is_empty();
            // The MIME is composed again so that it carries the new attachments.
            // NOTE: this replaces MIME the item was created from with an equivalent
            // composition, and a later update without attachments leaves the MIME as it
            // is, as it does for any item with MIME.
            if mime.is_some() || !props.attachments.is_empty() {
                mime = Some(compose_mime(&props));
            }
        }
        let size = match &mime {
            Some(bytes) => u64::try_from(bytes.len()).unwrap_or(u64::MAX),
            None => estimate_size(&props),
        };
        let old_stamp = item.stamp.clone();
        let folder = item.folder;

        let stamp = self.new_stamp(OPERATION, session, Some(&old_stamp), import)?;
        let result = WriteResult {
            id: mid,
            cn: stamp.cn,
            change_key: stamp.change_key.clone(),
        };
        if let Some(item) = self.items.get_mut(&mid) {
            item.props = props;
            item.mime = mime;
            item.size = size;
            item.stamp = stamp;
        }

        self.emit(
            EventKind::Modified,
            ObjectId::Item(mid),
            folder,
            None,
            session,
            Some(result.cn),
        );
        Ok(result)
    }

    /// Sets an item's read flag. This is a read-state change: it takes a change number of
    /// its own (for CnsetRead) and leaves the content change number, change key and PCL
    /// as they are, because ICS tracks read state apart (MS-OXCFXICS 3.2.5.6).
    ///
    /// # Errors
    ///
    /// A bad session or [`StoreError::ItemNotFound`].
    pub fn set_read(
        &mut self,
        session: SessionId,
        mid: Mid,
        read: bool,
    ) -> Result<ReadResult, StoreError> {
        const OPERATION: &str = "set read flag";
        self.check_session(OPERATION, session)?;
        let folder = self
            .items
            .get(&mid)
            .ok_or(StoreError::ItemNotFound {
                operation: OPERATION,
                mid,
            })?
            .folder;

        // NOTE: EWS UpdateItem of IsRead may return a new ChangeKey on Exchange; this
        // store follows ICS and keeps the change key, which has not been checked
        // against a server.
        let read_cn = super::Cn(self.next_globcnt(OPERATION)?);
        if let Some(item) = self.items.get_mut(&mid) {
            item.props.read = read;
            item.read_cn = Some(read_cn);
        }

        self.emit(
            EventKind::Modified,
            ObjectId::Item(mid),
            folder,
            None,
            session,
            Some(read_cn),
        );
        Ok(ReadResult { mid, read_cn })
    }

    /// Deletes an item permanently, leaving a tombstone. Returns the change number of
    /// the deletion.
    ///
    /// # Errors
    ///
    /// A bad session or [`StoreError::ItemNotFound`].
    pub fn delete_item(&mut self, session: SessionId, mid: Mid) -> Result<super::Cn, StoreError> {
        const OPERATION: &str = "delete item";
        self.check_session(OPERATION, session)?;
        let folder = self
            .items
            .get(&mid)
            .ok_or(StoreError::ItemNotFound {
                operation: OPERATION,
                mid,
            })?
            .folder;

        let cn = super::Cn(self.next_globcnt(OPERATION)?);
        self.remove_item(mid, cn, session, None);
        self.emit(
            EventKind::Deleted,
            ObjectId::Item(mid),
            folder,
            None,
            session,
            Some(cn),
        );
        Ok(cn)
    }

    /// Soft-deletes an item: it moves to the dumpster (MS-OXWSCDATA 2.2.5.9, DisposalType
    /// `SoftDelete`). The item leaves its folder exactly as [`Store::delete_item`] removes
    /// it, with a tombstone and a Deleted notice, so syncs report it deleted. The store
    /// keeps it as recoverable until [`Store::recover_item`] or
    /// [`Store::purge_recoverable_item`]. Returns the change number of the deletion.
    ///
    /// # Errors
    ///
    /// A bad session or [`StoreError::ItemNotFound`].
    pub fn soft_delete_item(
        &mut self,
        session: SessionId,
        mid: Mid,
    ) -> Result<super::Cn, StoreError> {
        let item = self
            .items
            .get(&mid)
            .ok_or(StoreError::ItemNotFound {
                operation: "soft-delete item",
                mid,
            })?
            .clone();
        let cn = self.delete_item(session, mid)?;
        self.recoverable_items.insert(mid, item);
        Ok(cn)
    }

    /// Returns a soft-deleted item by the id it had in its folder.
    pub fn recoverable_item(&self, mid: Mid) -> Option<&Item> {
        self.recoverable_items.get(&mid)
    }

    /// Returns the items soft-deleted from `fid` and not yet recovered or purged, in
    /// message id order. A folder that no longer exists may still have some.
    pub fn recoverable_items(&self, fid: Fid) -> Vec<&Item> {
        self.recoverable_items
            .values()
            .filter(|item| item.folder == fid)
            .collect()
    }

    /// Restores a soft-deleted item into the folder it was deleted from. As on a move,
    /// the item gets a new message id and change number and keeps its change key, PCL
    /// and properties. Subscribers get a Created notice for the folder.
    ///
    /// # Errors
    ///
    /// A bad session, [`StoreError::ItemNotFound`] when `mid` is not a recoverable
    /// item, or [`StoreError::FolderNotFound`] when its folder was deleted since. The
    /// item stays recoverable after an error.
    pub fn recover_item(
        &mut self,
        session: SessionId,
        mid: Mid,
    ) -> Result<WriteResult<Mid>, StoreError> {
        const OPERATION: &str = "recover item";
        self.check_session(OPERATION, session)?;
        let folder = self
            .recoverable_items
            .get(&mid)
            .ok_or(StoreError::ItemNotFound {
                operation: OPERATION,
                mid,
            })?
            .folder;
        self.check_folder(OPERATION, folder)?;

        let new_mid = Mid(self.next_globcnt(OPERATION)?);
        let mut stamp = self.new_stamp(OPERATION, session, None, &ImportStamp::default())?;
        let Some(original) = self.recoverable_items.remove(&mid) else {
            return Err(StoreError::ItemNotFound {
                operation: OPERATION,
                mid,
            });
        };
        stamp.change_key = original.stamp.change_key.clone();
        stamp.pcl = original.stamp.pcl.clone();
        let cn = stamp.cn;
        let result = WriteResult {
            id: new_mid,
            cn,
            change_key: stamp.change_key.clone(),
        };

        self.insert_item(Item {
            mid: new_mid,
            stamp,
            read_cn: None,
            created_by: session,
            ..original
        });
        self.emit(
            EventKind::Created,
            ObjectId::Item(new_mid),
            folder,
            None,
            session,
            Some(cn),
        );
        Ok(result)
    }

    /// Removes a soft-deleted item for good, as an administrator's purge of the
    /// dumpster does. No notice is sent, since the item left its folder already.
    ///
    /// # Errors
    ///
    /// A bad session, or [`StoreError::ItemNotFound`] when `mid` is not a recoverable
    /// item.
    pub fn purge_recoverable_item(
        &mut self,
        session: SessionId,
        mid: Mid,
    ) -> Result<(), StoreError> {
        const OPERATION: &str = "purge recoverable item";
        self.check_session(OPERATION, session)?;
        self.recoverable_items
            .remove(&mid)
            .map(|_| ())
            .ok_or(StoreError::ItemNotFound {
                operation: OPERATION,
                mid,
            })
    }

    /// Moves an item to `target`. The item gets a new message id and change number in
    /// the target and leaves a tombstone under its old id. Its change key, PCL and
    /// properties stay.
    ///
    /// # Errors
    ///
    /// A bad session, [`StoreError::ItemNotFound`] or [`StoreError::FolderNotFound`].
    pub fn move_item(
        &mut self,
        session: SessionId,
        mid: Mid,
        target: Fid,
    ) -> Result<WriteResult<Mid>, StoreError> {
        const OPERATION: &str = "move item";
        self.transfer_item(OPERATION, session, mid, target, false)
    }

    /// Copies an item to `target` as a new item with a new message id, change key and
    /// PCL. The original stays as it is.
    ///
    /// # Errors
    ///
    /// A bad session, [`StoreError::ItemNotFound`] or [`StoreError::FolderNotFound`].
    pub fn copy_item(
        &mut self,
        session: SessionId,
        mid: Mid,
        target: Fid,
    ) -> Result<WriteResult<Mid>, StoreError> {
        const OPERATION: &str = "copy item";
        self.transfer_item(OPERATION, session, mid, target, true)
    }

    fn transfer_item(
        &mut self,
        operation: &'static str,
        session: SessionId,
        mid: Mid,
        target: Fid,
        copy: bool,
    ) -> Result<WriteResult<Mid>, StoreError> {
        self.check_session(operation, session)?;
        self.check_folder(operation, target)?;
        let original = self
            .items
            .get(&mid)
            .ok_or(StoreError::ItemNotFound { operation, mid })?
            .clone();

        let new_mid = Mid(self.next_globcnt(operation)?);
        let mut stamp = self.new_stamp(operation, session, None, &ImportStamp::default())?;
        if !copy {
            // NOTE: a moved item keeps its change key and PCL here. Whether Exchange
            // assigns a new change key on a move has not been checked against a server.
            stamp.change_key = original.stamp.change_key.clone();
            stamp.pcl = original.stamp.pcl.clone();
        }
        let cn = stamp.cn;
        let result = WriteResult {
            id: new_mid,
            cn,
            change_key: stamp.change_key.clone(),
        };

        if !copy {
            self.remove_item(mid, cn, session, Some(new_mid));
        }
        self.insert_item(Item {
            mid: new_mid,
            folder: target,
            stamp,
            read_cn: None,
            created_by: session,
            ..original.clone()
        });

        let kind = if copy {
            EventKind::Copied
        } else {
            EventKind::Moved
        };
        self.emit(
            kind,
            ObjectId::Item(new_mid),
            target,
            Some((ObjectId::Item(mid), original.folder)),
            session,
            Some(cn),
        );
        Ok(result)
    }

    pub(super) fn insert_item(&mut self, item: Item) {
        self.folder_items
            .entry(item.folder)
            .or_default()
            .insert(item.mid);
        self.items.insert(item.mid, item);
    }

    /// Removes an item and leaves its tombstone.
    pub(super) fn remove_item(
        &mut self,
        mid: Mid,
        cn: super::Cn,
        session: SessionId,
        moved_to: Option<Mid>,
    ) {
        let Some(item) = self.items.remove(&mid) else {
            return;
        };
        if let Some(mids) = self.folder_items.get_mut(&item.folder) {
            mids.remove(&mid);
        }
        self.item_tombstones.insert(
            mid,
            Tombstone {
                parent: item.folder,
                cn,
                session,
                time: self.clock.now(),
                moved_to,
            },
        );
    }

    pub(super) fn check_folder(&self, operation: &'static str, fid: Fid) -> Result<(), StoreError> {
        if self.folders.contains_key(&fid) {
            Ok(())
        } else {
            Err(StoreError::FolderNotFound { operation, fid })
        }
    }
}

fn apply_update(props: &mut super::ItemProps, update: ItemUpdate) {
    if let Some(value) = update.item_class {
        props.item_class = value;
    }
    if let Some(value) = update.subject {
        props.subject = value;
    }
    if let Some(value) = update.sender {
        props.sender = value;
    }
    if let Some(value) = update.to {
        props.to = value;
    }
    if let Some(value) = update.cc {
        props.cc = value;
    }
    if let Some(value) = update.bcc {
        props.bcc = value;
    }
    if let Some(value) = update.received {
        props.received = value;
    }
    if let Some(value) = update.flag {
        props.flag = value;
    }
    if let Some(value) = update.categories {
        props.categories = value;
    }
    if let Some(value) = update.importance {
        props.importance = value;
    }
    if let Some(value) = update.has_attachments {
        props.has_attachments = value;
    }
    if let Some(value) = update.body {
        props.body = value;
    }
    if let Some(value) = update.attachments {
        props.attachments = value;
    }
}
