//! The folder, item and sync operations on the store. Each returns one response message
//! per requested object, so one failed object never hides the others.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use exmux_ews::ops::folders::{
    CreateFolder, DeleteFolder, FindFolder, FindFolderResult, GetFolder, HierarchyChange,
    HierarchySync, MoveFolder, SyncFolderHierarchy, UpdateFolder,
};
use exmux_ews::ops::items::{
    AlternateId, ConvertId, CreateItem, DeleteItem, GetItem, ItemUpdate as EwsUpdate, MoveCopyItem,
    SendItem, UpdateItem, UpdateResult,
};
use exmux_ews::ops::sync::{FindItem, FindItemPage, ItemSync, SyncChange, SyncFolderItems};
use exmux_ews::ops::{Paging, Shape};
use exmux_ews::types::{
    self as ews, BaseShape, ConflictResolution, DeleteType, FolderRef, IdFormat,
    MessageDisposition, PropertyPath, Traversal,
};
use exmux_ews::{MessageError, Response, ResponseCode};
use tracing::warn;

use super::convert;
use super::error::{code_error, store_error};
use super::ids::IdCodec;
use super::{EwsFrontEnd, Quirk, Quirks, single};
use crate::store::{
    ChangeKind, Fid, FlagStatus, ImportStamp, Importance, ItemUpdate, ListOptions, Mid, NewItem,
    NewItemContent, SessionId, Store, SyncKind, SyncOptions, SyncState, WellKnownFolder,
};

/// The store, session, id codec and quirk switches of one request.
pub(crate) struct Ctx<'a> {
    pub(crate) store: &'a mut Store,
    pub(crate) session: SessionId,
    pub(crate) ids: IdCodec,
    pub(crate) quirks: Quirks,
    pub(crate) front_end: &'a EwsFrontEnd,
    pub(crate) mailbox: &'a str,
}

impl Ctx<'_> {
    fn folder(&self, folder: &FolderRef) -> Result<Fid, MessageError> {
        self.ids.resolve_folder(self.store, folder)
    }

    fn item(&self, id: &ews::ItemId) -> Result<Mid, MessageError> {
        self.ids.resolve_item(self.store, id)
    }

    fn well_known(&self, folder: WellKnownFolder) -> Result<Fid, MessageError> {
        self.store.well_known_folder(folder).ok_or_else(|| {
            code_error(
                ResponseCode::ErrorFolderNotFound,
                format!("the mailbox has no {} folder", folder.ews_name()),
            )
        })
    }

    fn folder_out(&self, fid: Fid, shape: &Shape) -> Result<ews::Folder, MessageError> {
        let folder = self.store.folder(fid).ok_or_else(|| {
            code_error(
                ResponseCode::ErrorFolderNotFound,
                format!("folder {fid} not found"),
            )
        })?;
        Ok(convert::folder(self.store, &self.ids, folder, shape))
    }

    fn item_out(&self, mid: Mid, shape: &Shape) -> Result<ews::Item, MessageError> {
        let item = self.store.item(mid).ok_or_else(|| {
            code_error(
                ResponseCode::ErrorItemNotFound,
                format!("item {mid} not found"),
            )
        })?;
        Ok(convert::item(&self.ids, item, shape))
    }

    fn id_only_item(&self, mid: Mid) -> Result<ews::Item, MessageError> {
        self.item_out(mid, &Shape::base(BaseShape::IdOnly))
    }
}

fn id_shape() -> Shape {
    Shape::base(BaseShape::IdOnly)
}

pub(crate) fn get_folder(ctx: &mut Ctx<'_>, op: GetFolder) -> Response<Vec<ews::Folder>> {
    let messages = op
        .folder_ids
        .iter()
        .map(|folder| {
            let fid = ctx.folder(folder)?;
            Ok(vec![ctx.folder_out(fid, &op.shape)?])
        })
        .collect();
    Response::new(messages)
}

pub(crate) fn find_folder(ctx: &mut Ctx<'_>, op: FindFolder) -> Response<FindFolderResult> {
    let messages = op
        .parents
        .iter()
        .map(|parent| {
            let fid = ctx.folder(parent)?;
            let found: Vec<Fid> = match op.traversal {
                Traversal::Deep => ctx
                    .store
                    .descendant_folders(fid)
                    .into_iter()
                    .map(|(_, folder)| folder.fid)
                    .collect(),
                _ => ctx
                    .store
                    .child_folders(fid)
                    .into_iter()
                    .map(|folder| folder.fid)
                    .collect(),
            };
            let (range, paging) = page(found.len(), op.page.map(|p| (p.offset, p.max_entries)));
            let folders = found
                .get(range)
                .unwrap_or_default()
                .iter()
                .map(|fid| ctx.folder_out(*fid, &op.shape))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(FindFolderResult { paging, folders })
        })
        .collect();
    Response::new(messages)
}

/// Returns the index range of one IndexedPageView page over `total` entries and its
/// paging attributes (MS-OXWSSRCH IndexedPageViewType).
fn page(total: usize, view: Option<(u32, u32)>) -> (std::ops::Range<usize>, Paging) {
    let (offset, max) = view.map_or((0, total), |(offset, max)| {
        (
            usize::try_from(offset).unwrap_or(usize::MAX),
            usize::try_from(max).unwrap_or(0),
        )
    });
    let start = offset.min(total);
    let end = start.saturating_add(max).min(total);
    let paging = Paging {
        indexed_paging_offset: u32::try_from(end).ok(),
        total_items_in_view: u32::try_from(total).ok(),
        includes_last_item_in_range: end >= total,
    };
    (start..end, paging)
}

pub(crate) fn create_folder(ctx: &mut Ctx<'_>, op: CreateFolder) -> Response<Vec<ews::Folder>> {
    let parent = ctx.folder(&op.parent);
    let messages = op
        .folders
        .iter()
        .map(|folder| {
            let parent = parent.clone()?;
            let name = folder.display_name.as_deref().unwrap_or_default();
            let written = ctx
                .store
                .create_folder(
                    ctx.session,
                    parent,
                    name,
                    folder.folder_class.as_deref(),
                    &ImportStamp::default(),
                )
                .map_err(|error| store_error(&error))?;
            Ok(vec![ctx.folder_out(written.id, &id_shape())?])
        })
        .collect();
    Response::new(messages)
}

pub(crate) fn update_folder(ctx: &mut Ctx<'_>, op: UpdateFolder) -> Response<Vec<ews::Folder>> {
    let messages = op
        .renames
        .iter()
        .map(|(folder, name)| {
            let fid = ctx.folder(folder)?;
            let written = ctx
                .store
                .rename_folder(ctx.session, fid, name, &ImportStamp::default())
                .map_err(|error| store_error(&error))?;
            Ok(vec![ctx.folder_out(written.id, &id_shape())?])
        })
        .collect();
    Response::new(messages)
}

pub(crate) fn move_folder(ctx: &mut Ctx<'_>, op: MoveFolder) -> Response<Vec<ews::Folder>> {
    let target = ctx.folder(&op.to);
    let messages = op
        .folder_ids
        .iter()
        .map(|folder| {
            let target = target.clone()?;
            let fid = ctx.folder(folder)?;
            let written = ctx
                .store
                .move_folder(ctx.session, fid, target)
                .map_err(|error| store_error(&error))?;
            Ok(vec![ctx.folder_out(written.id, &id_shape())?])
        })
        .collect();
    Response::new(messages)
}

pub(crate) fn delete_folder(ctx: &mut Ctx<'_>, op: DeleteFolder) -> Response<()> {
    let messages = op
        .folder_ids
        .iter()
        .map(|folder| {
            let fid = ctx.folder(folder)?;
            if op.delete_type == DeleteType::MoveToDeletedItems {
                let deleted_items = ctx.well_known(WellKnownFolder::DeletedItems)?;
                ctx.store
                    .move_folder(ctx.session, fid, deleted_items)
                    .map_err(|error| store_error(&error))?;
            } else {
                // NOTE: the store has no recoverable-items folder, so SoftDelete removes
                // a folder for good, as HardDelete does.
                ctx.store
                    .delete_folder(ctx.session, fid)
                    .map_err(|error| store_error(&error))?;
            }
            Ok(())
        })
        .collect();
    Response::new(messages)
}

/// Reads a SyncState: base64 of the store's state bytes. An absent state starts a full
/// sync. With [`Quirk::AcceptCorruptSyncState`] an unreadable state does too.
fn sync_state(
    ctx: &Ctx<'_>,
    text: Option<&str>,
    kind: SyncKind,
    fid: Fid,
) -> Result<SyncState, MessageError> {
    let Some(text) = text else {
        return Ok(SyncState::empty(kind, fid));
    };
    let parsed = STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|bytes| SyncState::from_bytes(&bytes).ok())
        .filter(|state| state.kind == kind && state.folder == fid);
    match parsed {
        Some(state) => Ok(state),
        None if ctx.quirks.on(Quirk::AcceptCorruptSyncState) => {
            warn!(folder = %fid, "quirk: taking an unreadable SyncState as empty");
            Ok(SyncState::empty(kind, fid))
        }
        None => Err(code_error(
            ResponseCode::ErrorInvalidSyncStateData,
            "The synchronization state data is corrupt or otherwise invalid.".to_owned(),
        )),
    }
}

pub(crate) fn sync_hierarchy(
    ctx: &mut Ctx<'_>,
    op: SyncFolderHierarchy,
) -> Response<HierarchySync> {
    single((|| {
        // NOTE: without SyncFolderId the whole IPM subtree (msgfolderroot) is synced;
        // Exchange may include folders above it, which a mail sync does not use.
        let fid = match &op.folder {
            Some(folder) => ctx.folder(folder)?,
            None => ctx.well_known(WellKnownFolder::MsgFolderRoot)?,
        };
        let state = sync_state(ctx, op.sync_state.as_deref(), SyncKind::Hierarchy, fid)?;
        let options = SyncOptions {
            max_changes: usize::MAX,
            include_fai: false,
        };
        let batch = ctx
            .store
            .sync_hierarchy(&state, options)
            .map_err(|error| store_error(&error))?;
        let mut changes = Vec::new();
        for change in &batch.changes {
            let folder = convert::folder(ctx.store, &ctx.ids, &change.folder, &op.shape);
            changes.push(match change.kind {
                ChangeKind::Created => HierarchyChange::Create(folder),
                _ => HierarchyChange::Update(folder),
            });
        }
        for fid in &batch.deletions {
            changes.push(HierarchyChange::Delete(ews::FolderId::new(
                ctx.ids.folder_id_text(*fid),
            )));
        }
        Ok(HierarchySync {
            sync_state: STANDARD.encode(batch.state.to_bytes()),
            includes_last: !batch.more_available,
            changes,
        })
    })())
}

pub(crate) fn sync_items(ctx: &mut Ctx<'_>, op: SyncFolderItems) -> Response<ItemSync> {
    single((|| {
        let fid = ctx.folder(&op.folder)?;
        let state = sync_state(ctx, op.sync_state.as_deref(), SyncKind::Contents, fid)?;
        let options = SyncOptions {
            max_changes: usize::try_from(op.max_changes.clamp(1, 512)).unwrap_or(512),
            include_fai: false,
        };
        let batch = ctx
            .store
            .sync_contents(&state, options)
            .map_err(|error| store_error(&error))?;
        let ignored = |id: &ews::ItemId| op.ignore.iter().any(|ignore| ignore.id == id.id);

        let mut changes = Vec::new();
        for change in &batch.changes {
            let item = convert::item(&ctx.ids, &change.item, &op.shape);
            if item.item_id.as_ref().is_some_and(ignored) {
                continue;
            }
            changes.push(match change.kind {
                ChangeKind::Created => SyncChange::Create(item),
                _ => SyncChange::Update(item),
            });
        }
        for mid in &batch.deletions {
            let id = ctx.ids.item_id_at(fid, *mid);
            if !ignored(&id) {
                changes.push(SyncChange::Delete(id));
            }
        }
        for read in &batch.read_changes {
            let id = ctx.ids.item_id_at(fid, read.mid);
            let also_update = ctx.quirks.on(Quirk::ReadChangeAlsoAsUpdate);
            if let Some(item) = ctx.store.item(read.mid).filter(|_| also_update) {
                warn!(item = %read.mid, "quirk: reporting a read-state change as an update too");
                changes.push(SyncChange::Update(convert::item(&ctx.ids, item, &op.shape)));
            }
            if !ignored(&id) {
                changes.push(SyncChange::ReadFlagChange {
                    item_id: id,
                    is_read: read.read,
                });
            }
        }
        Ok(ItemSync {
            sync_state: STANDARD.encode(batch.state.to_bytes()),
            includes_last: !batch.more_available,
            changes,
        })
    })())
}

pub(crate) fn find_item(ctx: &mut Ctx<'_>, op: FindItem) -> Response<FindItemPage> {
    let messages = op
        .parents
        .iter()
        .map(|parent| {
            let fid = ctx.folder(parent)?;
            if op.traversal == Traversal::SoftDeleted {
                // The emulator lists a folder's soft-deleted items here, as Exchange 2007
                // did. Exchange 2010 and later move them to the Recoverable Items folders
                // at once (EWS Managed API reference, DeleteMode).
                let recoverable = ctx.store.recoverable_items(fid);
                let (range, paging) = page(
                    recoverable.len(),
                    op.page.map(|p| (p.offset, p.max_entries)),
                );
                let items = recoverable
                    .get(range)
                    .unwrap_or_default()
                    .iter()
                    .map(|item| convert::item(&ctx.ids, item, &op.shape))
                    .collect();
                return Ok(FindItemPage { paging, items });
            }
            let associated = op.traversal == Traversal::Associated;
            let total = ctx
                .store
                .list_items(
                    fid,
                    ListOptions {
                        offset: 0,
                        max_entries: 0,
                        associated,
                    },
                )
                .map_err(|error| store_error(&error))?
                .total;
            let (range, paging) = page(total, op.page.map(|p| (p.offset, p.max_entries)));
            let listed = ctx
                .store
                .list_items(
                    fid,
                    ListOptions {
                        offset: range.start,
                        max_entries: range.len(),
                        associated,
                    },
                )
                .map_err(|error| store_error(&error))?;
            let items = listed
                .items
                .iter()
                .map(|item| convert::item(&ctx.ids, item, &op.shape))
                .collect();
            Ok(FindItemPage { paging, items })
        })
        .collect();
    Response::new(messages)
}

pub(crate) fn get_item(ctx: &mut Ctx<'_>, op: GetItem) -> Response<Vec<ews::Item>> {
    let unknown: Vec<&str> = op
        .shape
        .additional
        .iter()
        .filter_map(|path| match path {
            PropertyPath::Field(uri) if !convert::is_known_field(uri) => Some(uri.as_str()),
            _ => None,
        })
        .collect();
    if !unknown.is_empty() {
        // Exchange rejects unknown FieldURIs with a schema fault, but the emulator
        // leaves the fields out and logs them.
        warn!(
            ?unknown,
            "GetItem: leaving out fields the emulator does not store"
        );
    }
    let messages = op
        .item_ids
        .iter()
        .map(|id| {
            let mid = ctx.item(id)?;
            Ok(vec![ctx.item_out(mid, &op.shape)?])
        })
        .collect();
    Response::new(messages)
}

pub(crate) fn create_item(ctx: &mut Ctx<'_>, op: CreateItem) -> Response<Vec<ews::Item>> {
    let disposition = op.disposition.unwrap_or(MessageDisposition::SaveOnly);
    let messages = op
        .items
        .iter()
        .map(|item| {
            let target = match (&op.saved_folder, disposition) {
                (Some(folder), _) => ctx.folder(folder)?,
                (None, MessageDisposition::SaveOnly) => ctx.well_known(WellKnownFolder::Drafts)?,
                (None, _) => ctx.well_known(WellKnownFolder::SentItems)?,
            };
            let content = match &item.mime_content {
                Some(mime) => NewItemContent::Mime(STANDARD.decode(mime.trim()).map_err(|_| {
                    code_error(
                        ResponseCode::Other("ErrorMimeContentConversionFailed".to_owned()),
                        "MimeContent is not base64".to_owned(),
                    )
                })?),
                None => NewItemContent::Props(convert::props_of(item)),
            };
            let from_mime = matches!(content, NewItemContent::Mime(_));
            let written = ctx
                .store
                .create_item(
                    ctx.session,
                    target,
                    NewItem {
                        content,
                        ..NewItem::default()
                    },
                )
                .map_err(|error| store_error(&error))?;

            let read = match item.is_read {
                Some(read) => Some(read),
                None if from_mime && ctx.quirks.on(Quirk::MimeItemsStoredRead) => {
                    warn!("quirk: storing an item created from MIME as read");
                    Some(true)
                }
                None => None,
            };
            // Only a real change: a read-state change also notifies subscribers.
            let stored = ctx.store.item(written.id).map(|item| item.props.read);
            if let Some(read) = read.filter(|read| from_mime && stored != Some(*read)) {
                ctx.store
                    .set_read(ctx.session, written.id, read)
                    .map_err(|error| store_error(&error))?;
            }

            match disposition {
                MessageDisposition::SaveOnly => Ok(vec![ctx.id_only_item(written.id)?]),
                MessageDisposition::SendOnly => {
                    // Sent without a copy: the emulator delivers nowhere, so the item goes.
                    ctx.store
                        .delete_item(ctx.session, written.id)
                        .map_err(|error| store_error(&error))?;
                    Ok(Vec::new())
                }
                // Exchange returns no item for a sent message.
                _ => Ok(Vec::new()),
            }
        })
        .collect();
    Response::new(messages)
}

pub(crate) fn update_item(ctx: &mut Ctx<'_>, op: UpdateItem) -> Response<UpdateResult> {
    let messages = op
        .changes
        .iter()
        .map(|(id, updates)| {
            let mid = ctx.item(id)?;
            let current = ctx.ids.item_id(ctx.store.item(mid).ok_or_else(|| {
                code_error(ResponseCode::ErrorItemNotFound, "item not found".to_owned())
            })?);
            let stale = id
                .change_key
                .as_ref()
                .is_some_and(|key| Some(key) != current.change_key.as_ref());
            if stale
                && op.conflict_resolution == ConflictResolution::NeverOverwrite
                && !ctx.quirks.on(Quirk::IgnoreChangeKeys)
            {
                return Err(MessageError {
                    conflict_count: Some(1),
                    ..code_error(
                        ResponseCode::ErrorIrresolvableConflict,
                        "The send or update operation could not be performed because the \
                         change key passed in the request does not match the current change \
                         key for the item."
                            .to_owned(),
                    )
                });
            }

            let mut update = ItemUpdate::default();
            let mut read = None;
            for change in updates {
                match change {
                    EwsUpdate::SetIsRead(value) => read = Some(*value),
                    EwsUpdate::SetFlagStatus(text) => {
                        update.flag = Some(convert::parse_flag(text).ok_or_else(|| {
                            code_error(
                                ResponseCode::ErrorInvalidRequest,
                                format!("unknown FlagStatus {text:?}"),
                            )
                        })?);
                    }
                    EwsUpdate::SetCategories(categories) => {
                        update.categories = Some(categories.clone());
                    }
                    EwsUpdate::SetImportance(text) => {
                        update.importance =
                            Some(convert::parse_importance(text).ok_or_else(|| {
                                code_error(
                                    ResponseCode::ErrorInvalidRequest,
                                    format!("unknown Importance {text:?}"),
                                )
                            })?);
                    }
                    EwsUpdate::Delete(PropertyPath::Field(uri)) => match uri.as_str() {
                        "item:Categories" => update.categories = Some(Vec::new()),
                        "item:Flag" => update.flag = Some(FlagStatus::NotFlagged),
                        "item:Importance" => update.importance = Some(Importance::Normal),
                        other => {
                            return Err(code_error(
                                ResponseCode::ErrorInvalidPropertySet,
                                format!("the emulator cannot delete the property {other}"),
                            ));
                        }
                    },
                    other => {
                        return Err(code_error(
                            ResponseCode::ErrorInvalidPropertySet,
                            format!("the emulator does not support the update {other:?}"),
                        ));
                    }
                }
            }

            if update != ItemUpdate::default() {
                ctx.store
                    .update_item(ctx.session, mid, update, &ImportStamp::default())
                    .map_err(|error| store_error(&error))?;
            }
            if let Some(read) = read {
                ctx.store
                    .set_read(ctx.session, mid, read)
                    .map_err(|error| store_error(&error))?;
            }
            let item = ctx.store.item(mid).ok_or_else(|| {
                code_error(ResponseCode::ErrorItemNotFound, "item not found".to_owned())
            })?;
            Ok(UpdateResult {
                item_id: Some(ctx.ids.item_id(item)),
                conflict_count: 0,
            })
        })
        .collect();
    Response::new(messages)
}

pub(crate) fn delete_item(ctx: &mut Ctx<'_>, op: DeleteItem) -> Response<()> {
    let messages = op
        .item_ids
        .iter()
        .map(|id| {
            let mid = ctx.item(id)?;
            // MS-OXWSCDATA 2.2.5.9: HardDelete removes the item permanently, SoftDelete
            // moves it to the dumpster, and MoveToDeletedItems to Deleted Items.
            match op.delete_type {
                DeleteType::MoveToDeletedItems => {
                    let deleted_items = ctx.well_known(WellKnownFolder::DeletedItems)?;
                    ctx.store
                        .move_item(ctx.session, mid, deleted_items)
                        .map_err(|error| store_error(&error))?;
                }
                DeleteType::SoftDelete => {
                    // NOTE: a soft-deleted item's old id is not found afterwards, as for
                    // a move, and GetItem on it has not been compared with Exchange.
                    ctx.store
                        .soft_delete_item(ctx.session, mid)
                        .map_err(|error| store_error(&error))?;
                }
                _ => {
                    ctx.store
                        .delete_item(ctx.session, mid)
                        .map_err(|error| store_error(&error))?;
                }
            }
            Ok(())
        })
        .collect();
    Response::new(messages)
}

pub(crate) fn move_copy_item<const MOVE: bool>(
    ctx: &mut Ctx<'_>,
    op: MoveCopyItem<MOVE>,
) -> Response<Option<ews::ItemId>> {
    let target = ctx.folder(&op.to);
    // Exchange 2010 SP1 and later return new ids unless ReturnNewItemIds is false.
    let mut return_ids = op.return_new_item_ids.unwrap_or(true);
    if ctx.quirks.on(Quirk::InvertReturnNewItemIds) {
        return_ids = op.return_new_item_ids.is_none();
    }
    let messages = op
        .item_ids
        .iter()
        .map(|id| {
            let target = target.clone()?;
            let mid = ctx.item(id)?;
            let written = if MOVE {
                ctx.store.move_item(ctx.session, mid, target)
            } else {
                ctx.store.copy_item(ctx.session, mid, target)
            }
            .map_err(|error| store_error(&error))?;
            if !return_ids {
                return Ok(None);
            }
            let item = ctx.store.item(written.id).ok_or_else(|| {
                code_error(ResponseCode::ErrorItemNotFound, "item not found".to_owned())
            })?;
            Ok(Some(ctx.ids.item_id(item)))
        })
        .collect();
    Response::new(messages)
}

pub(crate) fn send_item(ctx: &mut Ctx<'_>, op: SendItem) -> Response<()> {
    let saved = match &op.saved_folder {
        Some(folder) => ctx.folder(folder),
        None => ctx.well_known(WellKnownFolder::SentItems),
    };
    let messages = op
        .item_ids
        .iter()
        .map(|id| {
            let mid = ctx.item(id)?;
            if op.save_copy {
                let saved = saved.clone()?;
                ctx.store
                    .move_item(ctx.session, mid, saved)
                    .map_err(|error| store_error(&error))?;
            } else {
                ctx.store
                    .delete_item(ctx.session, mid)
                    .map_err(|error| store_error(&error))?;
            }
            Ok(())
        })
        .collect();
    Response::new(messages)
}

pub(crate) fn convert_id(ctx: &mut Ctx<'_>, op: ConvertId) -> Response<Option<AlternateId>> {
    let messages = op
        .source_ids
        .iter()
        .map(|source| {
            let entry_id = match source.format {
                IdFormat::EwsId | IdFormat::EwsLegacyId => {
                    STANDARD.decode(ctx.ids.entry_id_base64(&source.id)?).ok()
                }
                IdFormat::EntryId => STANDARD.decode(source.id.trim()).ok(),
                IdFormat::HexEntryId => from_hex(source.id.trim()),
                _ => None,
            }
            .ok_or_else(|| {
                code_error(
                    ResponseCode::ErrorInvalidIdMalformed,
                    format!(
                        "the {} id {:?} cannot be converted",
                        source.format.as_str(),
                        source.id
                    ),
                )
            })?;
            let ews_id = ctx.ids.ews_id_of_entry(&entry_id)?;
            let id = match op.destination {
                IdFormat::EwsId | IdFormat::EwsLegacyId => ews_id,
                IdFormat::EntryId => STANDARD.encode(&entry_id),
                IdFormat::HexEntryId => entry_id.iter().map(|b| format!("{b:02X}")).collect(),
                other => {
                    return Err(code_error(
                        ResponseCode::ErrorInvalidRequest,
                        format!("the emulator cannot convert ids to {}", other.as_str()),
                    ));
                }
            };
            let mailbox = if source.mailbox.is_empty() {
                ctx.mailbox.to_owned()
            } else {
                source.mailbox.clone()
            };
            Ok(Some(AlternateId {
                format: op.destination,
                id,
                mailbox,
            }))
        })
        .collect();
    Response::new(messages)
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect()
}
