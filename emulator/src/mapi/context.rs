//! Session contexts (MS-OXCMAPIHTTP 3.2.5): cookies, sequence, expiry, the server object
//! handle table, and the notifications queued for the context.

use std::collections::{BTreeMap, VecDeque};

use exmux_core::Secret;

use exmux_mapihttp::ids::ObjectId;
use exmux_mapihttp::notify::{self, Notification, TableEvent, notification_type, table_event};
use exmux_mapihttp::prop::PropTag;
use exmux_mapihttp::rop::RopResponse;

use crate::store::{
    EventKind, Fid, ListOptions, Notice, ObjectId as StoreObject, SessionId, Store, SubscriptionId,
};

use super::props::{SourceKeys, item_props};
use super::rops::{Object, row_over};

/// All live contexts of a front end.
#[derive(Debug, Default)]
pub(crate) struct Contexts {
    contexts: BTreeMap<u64, Context>,
    next_id: u64,
    /// Feeds the cookie tokens: a counter mixed through a fixed permutation, so values
    /// are unique and do not reveal how many contexts exist.
    token_counter: u64,
}

impl Contexts {
    pub(crate) fn len(&self) -> usize {
        self.contexts.len()
    }

    /// Returns a new opaque cookie value.
    pub(crate) fn fresh_token(&mut self) -> Secret {
        self.token_counter += 1;
        // splitmix64: a bijection, so distinct counters give distinct tokens.
        let mut z = self.token_counter.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Secret::new(format!("{z:016x}"))
    }

    pub(crate) fn create(&mut self, session: SessionId, nspi: bool, now: u64) -> &Context {
        self.next_id += 1;
        let id = self.next_id;
        let cookie = self.fresh_token();
        let sequence = self.fresh_token();
        let context = Context {
            id,
            cookie,
            sequence,
            session,
            nspi,
            last_activity: now,
            objects: BTreeMap::new(),
            next_handle: 1,
            queued: VecDeque::new(),
            session_index: u16::try_from(id & 0xFFFF).unwrap_or_default(),
        };
        self.contexts.entry(id).or_insert(context)
    }

    pub(crate) fn by_cookie(&self, cookie: &Secret) -> Option<&Context> {
        self.contexts.values().find(|c| c.cookie == *cookie)
    }

    pub(crate) fn by_cookie_mut(&mut self, cookie: &Secret) -> Option<&mut Context> {
        self.contexts.values_mut().find(|c| c.cookie == *cookie)
    }

    pub(crate) fn by_id_mut(&mut self, id: u64) -> Option<&mut Context> {
        self.contexts.get_mut(&id)
    }

    pub(crate) fn remove_by_cookie(&mut self, cookie: &Secret) -> Option<Context> {
        let id = self.by_cookie(cookie)?.id;
        self.contexts.remove(&id)
    }

    /// Removes and returns the contexts idle for longer than `expiration` ms.
    pub(crate) fn expire_idle(&mut self, now: u64, expiration: u64) -> Vec<Context> {
        let idle: Vec<u64> = self
            .contexts
            .values()
            .filter(|c| now.saturating_sub(c.last_activity) > expiration)
            .map(|c| c.id)
            .collect();
        idle.iter()
            .filter_map(|id| self.contexts.remove(id))
            .collect()
    }
}

/// One session context.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) id: u64,
    /// The context cookie's value.
    pub(crate) cookie: Secret,
    /// The sequence cookie's current value.
    pub(crate) sequence: Secret,
    /// The store session every write of this context is made in.
    pub(crate) session: SessionId,
    /// Whether this is an address book context.
    #[allow(dead_code, reason = "kept for diagnostics of a context's kind")]
    pub(crate) nspi: bool,
    /// Clock time of the last request, in ms.
    pub(crate) last_activity: u64,
    /// The server object handle table: handle value to object.
    pub(crate) objects: BTreeMap<u32, Object>,
    pub(crate) next_handle: u32,
    /// RopNotify entries waiting for the next Execute.
    pub(crate) queued: VecDeque<RopResponse>,
    /// The SessionIndex RopPending names.
    pub(crate) session_index: u16,
}

impl Context {
    /// Frees the context's store resources.
    pub(crate) fn close(self, store: &mut Store) {
        for object in self.objects.values() {
            if let Some(id) = object.subscription() {
                store.unsubscribe(id);
            }
        }
        store.close_session(self.session);
    }

    /// Adds an object to the handle table and returns its handle value.
    pub(crate) fn insert(&mut self, object: Object) -> u32 {
        let handle = self.next_handle;
        self.next_handle = self.next_handle.wrapping_add(1).max(1);
        self.objects.insert(handle, object);
        handle
    }

    /// Moves the store's notices for this context's subscriptions into `queued` as
    /// RopNotify entries, acknowledging them in the store.
    pub(crate) fn collect_notices(&mut self, store: &mut Store, keys: &SourceKeys) {
        let sources: Vec<NoticeSource> = self
            .objects
            .iter()
            .filter_map(|(handle, object)| match object {
                Object::Subscription { id, logon_id } => Some(NoticeSource {
                    handle: *handle,
                    subscription: *id,
                    logon_id: *logon_id,
                    table: None,
                }),
                Object::Table(table) => table.subscription.map(|id| NoticeSource {
                    handle: *handle,
                    subscription: id,
                    logon_id: table.logon_id,
                    table: Some((table.fid, table.columns.clone())),
                }),
                _ => None,
            })
            .collect();
        for source in sources {
            let NoticeSource {
                handle,
                subscription: id,
                logon_id,
                table,
            } = source;
            let Ok(batch) = store.poll_notices(id, None, 1024) else {
                continue;
            };
            if batch.notices.is_empty() {
                continue;
            }
            let _ = store.poll_notices(id, Some(batch.watermark), 0);
            for notice in &batch.notices {
                let data = match &table {
                    None => Some(notification_of(notice, store)),
                    Some((fid, columns)) => table_notification(notice, store, keys, *fid, columns),
                };
                if let Some(data) = data {
                    self.queued.push_back(RopResponse::Notify {
                        notification_handle: handle,
                        logon_id,
                        data,
                    });
                }
            }
        }
    }
}

/// An object that receives notifications: a subscription, or a contents table with the
/// folder and columns its rows are built from.
struct NoticeSource {
    handle: u32,
    subscription: SubscriptionId,
    logon_id: u8,
    table: Option<(Fid, Vec<PropTag>)>,
}

/// Builds the TableModified notification of a contents table over `fid` for a store
/// notice (MS-OXCNOTIF 2.2.1.4.1.2): a row added, modified or deleted, with the row's data
/// over the table's columns. Returns `None` for notices that change no row.
fn table_notification(
    notice: &Notice,
    store: &Store,
    keys: &SourceKeys,
    fid: Fid,
    columns: &[PropTag],
) -> Option<Notification> {
    let StoreObject::Item(mid) = notice.object else {
        return None;
    };
    let event = match notice.kind {
        EventKind::Created | EventKind::Copied => table_event::ROW_ADDED,
        EventKind::Modified => table_event::ROW_MODIFIED,
        EventKind::Moved if notice.parent == fid => table_event::ROW_ADDED,
        EventKind::Deleted | EventKind::Moved => table_event::ROW_DELETED,
        EventKind::NewMail => return None,
    };
    let folder = ObjectId(fid.to_u64());
    let row_message = match (notice.kind, notice.old_object) {
        (EventKind::Moved, Some(StoreObject::Item(old))) if notice.parent != fid => old,
        _ => mid,
    };
    let mut table = TableEvent {
        event_type: event,
        row_folder_id: Some(folder),
        row_message: Some((ObjectId(row_message.to_u64()), 0)),
        ..TableEvent::default()
    };
    if event != table_event::ROW_DELETED {
        let item = store.item(mid)?;
        let options = ListOptions {
            offset: 0,
            max_entries: usize::MAX,
            associated: item.associated,
        };
        // The row that precedes this one in id order; all zero means the top.
        let previous = store
            .list_items(fid, options)
            .ok()?
            .items
            .iter()
            .take_while(|other| other.mid < mid)
            .last()
            .map_or(0, |other| other.mid.to_u64());
        let values = item_props(store, keys, item);
        let mut row = Vec::new();
        row_over(&values, columns).encode(&mut row, columns);
        table.insert_after_folder_id = Some(folder);
        table.insert_after_message = Some((ObjectId(previous), 0));
        table.row_data = Some(row);
    }
    Some(Notification {
        flags: notification_type::TABLE_MODIFIED | notify::FLAG_MESSAGE,
        table: Some(table),
        ..Notification::default()
    })
}

fn object_u64(object: StoreObject) -> ObjectId {
    match object {
        StoreObject::Item(mid) => ObjectId(mid.to_u64()),
        StoreObject::Folder(fid) => ObjectId(fid.to_u64()),
    }
}

/// NotificationData for a store notice (MS-OXCNOTIF 2.2.1.4.1.2). The notice carries no
/// originator, as on a real server.
pub(crate) fn notification_of(notice: &Notice, store: &Store) -> Notification {
    let is_message = matches!(notice.object, StoreObject::Item(_));
    let kind = match notice.kind {
        EventKind::NewMail => notification_type::NEW_MAIL,
        EventKind::Created => notification_type::OBJECT_CREATED,
        EventKind::Deleted => notification_type::OBJECT_DELETED,
        EventKind::Modified => notification_type::OBJECT_MODIFIED,
        EventKind::Moved => notification_type::OBJECT_MOVED,
        EventKind::Copied => notification_type::OBJECT_COPIED,
    };
    let mut data = Notification {
        flags: kind | if is_message { notify::FLAG_MESSAGE } else { 0 },
        ..Notification::default()
    };
    let parent = ObjectId(notice.parent.to_u64());
    if is_message {
        data.folder_id = Some(parent);
        data.message_id = Some(object_u64(notice.object));
    } else {
        data.folder_id = Some(object_u64(notice.object));
    }
    let with_parent = matches!(
        notice.kind,
        EventKind::Created | EventKind::Deleted | EventKind::Moved | EventKind::Copied
    );
    if with_parent && !is_message {
        data.parent_folder_id = Some(parent);
    }
    if matches!(notice.kind, EventKind::Moved | EventKind::Copied) {
        let old_parent = notice.old_parent.map(|fid| ObjectId(fid.to_u64()));
        if is_message {
            data.old_folder_id = old_parent;
            data.old_message_id = notice.old_object.map(object_u64);
        } else {
            data.old_folder_id = notice.old_object.map(object_u64);
            data.old_parent_folder_id = old_parent;
        }
    }
    if matches!(notice.kind, EventKind::Created | EventKind::Modified) {
        // The captured server always sent an empty changed-property list.
        data.tag_count = Some(0);
    }
    if notice.kind == EventKind::NewMail {
        let class = match notice.object {
            StoreObject::Item(mid) => store
                .item(mid)
                .map(|item| item.props.item_class.clone())
                .unwrap_or_else(|| "IPM.Note".to_owned()),
            _ => "IPM.Note".to_owned(),
        };
        let bytes = class
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect::<Vec<u8>>();
        data.new_mail = Some((0, true, bytes));
    }
    data
}
