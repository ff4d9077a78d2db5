//! Folders, items and their properties: the protocol-neutral content of the mailbox.

use std::time::SystemTime;

use super::ids::{Cn, Fid, Mid, Pcl, Xid};
use super::session::SessionId;

/// The well-known folders every mailbox has (EWS DistinguishedFolderId names them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum WellKnownFolder {
    /// The mailbox root, above the IPM subtree (no parent).
    Root,
    /// "Top of Information Store", the IPM subtree root (EWS `msgfolderroot`).
    MsgFolderRoot,
    /// Inbox.
    Inbox,
    /// Drafts.
    Drafts,
    /// Sent Items.
    SentItems,
    /// Deleted Items.
    DeletedItems,
    /// Outbox.
    Outbox,
    /// Junk Email.
    Junk,
    /// Calendar.
    Calendar,
    /// Contacts.
    Contacts,
}

impl WellKnownFolder {
    /// Every well-known folder, parents first: the order the store creates them in.
    pub const ALL: [WellKnownFolder; 10] = [
        WellKnownFolder::Root,
        WellKnownFolder::MsgFolderRoot,
        WellKnownFolder::Inbox,
        WellKnownFolder::Drafts,
        WellKnownFolder::SentItems,
        WellKnownFolder::DeletedItems,
        WellKnownFolder::Outbox,
        WellKnownFolder::Junk,
        WellKnownFolder::Calendar,
        WellKnownFolder::Contacts,
    ];

    /// Returns the English display name Exchange gives the folder.
    pub fn display_name(self) -> &'static str {
        match self {
            WellKnownFolder::Root => "",
            WellKnownFolder::MsgFolderRoot => "Top of Information Store",
            WellKnownFolder::Inbox => "Inbox",
            WellKnownFolder::Drafts => "Drafts",
            WellKnownFolder::SentItems => "Sent Items",
            WellKnownFolder::DeletedItems => "Deleted Items",
            WellKnownFolder::Outbox => "Outbox",
            WellKnownFolder::Junk => "Junk Email",
            WellKnownFolder::Calendar => "Calendar",
            WellKnownFolder::Contacts => "Contacts",
        }
    }

    /// Returns the container class (PidTagContainerClass), if the folder has one.
    pub fn container_class(self) -> Option<&'static str> {
        match self {
            WellKnownFolder::Root | WellKnownFolder::MsgFolderRoot => None,
            WellKnownFolder::Calendar => Some("IPF.Appointment"),
            WellKnownFolder::Contacts => Some("IPF.Contact"),
            _ => Some("IPF.Note"),
        }
    }

    /// Returns the EWS DistinguishedFolderId name.
    pub fn ews_name(self) -> &'static str {
        match self {
            WellKnownFolder::Root => "root",
            WellKnownFolder::MsgFolderRoot => "msgfolderroot",
            WellKnownFolder::Inbox => "inbox",
            WellKnownFolder::Drafts => "drafts",
            WellKnownFolder::SentItems => "sentitems",
            WellKnownFolder::DeletedItems => "deleteditems",
            WellKnownFolder::Outbox => "outbox",
            WellKnownFolder::Junk => "junkemail",
            WellKnownFolder::Calendar => "calendar",
            WellKnownFolder::Contacts => "contacts",
        }
    }

    /// Returns the parent of the folder in a new mailbox.
    pub(crate) fn parent(self) -> Option<WellKnownFolder> {
        match self {
            WellKnownFolder::Root => None,
            WellKnownFolder::MsgFolderRoot => Some(WellKnownFolder::Root),
            _ => Some(WellKnownFolder::MsgFolderRoot),
        }
    }
}

/// The change-tracking stamp of a folder or item: what ICS and EWS use to tell versions
/// apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeStamp {
    /// The change number of the last change (PidTagChangeNumber).
    pub cn: Cn,
    /// The change key of the last change (PidTagChangeKey).
    pub change_key: Xid,
    /// The predecessor change list (PidTagPredecessorChangeList); includes
    /// `change_key`.
    pub pcl: Pcl,
    /// The session that made the last change.
    pub session: SessionId,
    /// When the last change was made.
    pub time: SystemTime,
}

/// A folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Folder {
    /// The folder id.
    pub fid: Fid,
    /// The parent folder; `None` only for the mailbox root.
    pub parent: Option<Fid>,
    /// The display name (PidTagDisplayName).
    pub display_name: String,
    /// The container class (PidTagContainerClass), such as `IPF.Note`.
    pub container_class: Option<String>,
    /// The well-known folder this is, if any. Well-known folders cannot be deleted,
    /// renamed or moved.
    pub well_known: Option<WellKnownFolder>,
    /// The last change.
    pub stamp: ChangeStamp,
    /// The session that created the folder.
    pub created_by: SessionId,
}

/// The importance of an item (PidTagImportance).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
#[non_exhaustive]
pub enum Importance {
    /// Low (0).
    Low,
    /// Normal (1).
    #[default]
    Normal,
    /// High (2).
    High,
}

/// The follow-up flag state of an item (PidTagFlagStatus; EWS `Flag/FlagStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
#[non_exhaustive]
pub enum FlagStatus {
    /// Not flagged (property absent).
    #[default]
    NotFlagged,
    /// Flagged for follow-up (2).
    Flagged,
    /// Follow-up complete (1).
    Complete,
}

/// The format of an item body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BodyType {
    /// Plain text (PidTagBody).
    Text,
    /// HTML (PidTagHtml).
    Html,
}

/// An item body.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Body {
    /// The format.
    pub body_type: BodyType,
    /// The content.
    pub content: String,
}

/// A mailbox as a display name plus an SMTP address.
#[derive(Clone, Debug, PartialEq, Eq, Default, Hash)]
pub struct Mailbox {
    /// The display name, possibly empty.
    pub name: String,
    /// The SMTP address.
    pub address: String,
}

impl Mailbox {
    /// Creates a mailbox.
    pub fn new(name: impl Into<String>, address: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            address: address.into(),
        }
    }
}

/// A file attachment stored by value (PidTagAttachMethod afByValue, 1): its data is
/// in PidTagAttachDataBinary.
#[derive(Clone, Debug, PartialEq, Eq, Default, Hash)]
pub struct Attachment {
    /// The attachment number (PidTagAttachNumber), unique within the item.
    pub number: u32,
    /// The file name (PidTagAttachLongFilename).
    pub file_name: Option<String>,
    /// The MIME content type (PidTagAttachMimeTag), such as `application/pdf`.
    pub mime_type: Option<String>,
    /// The content id of an inline attachment (PidTagAttachContentId), without angle
    /// brackets.
    pub content_id: Option<String>,
    /// The content (PidTagAttachDataBinary).
    pub data: Vec<u8>,
}

/// The properties of an item that a mail sync reads and writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemProps {
    /// The message class (PidTagMessageClass), such as `IPM.Note`.
    pub item_class: String,
    /// The subject.
    pub subject: String,
    /// The sender (From).
    pub sender: Option<Mailbox>,
    /// To recipients.
    pub to: Vec<Mailbox>,
    /// Cc recipients.
    pub cc: Vec<Mailbox>,
    /// Bcc recipients.
    pub bcc: Vec<Mailbox>,
    /// The received time (PidTagMessageDeliveryTime).
    pub received: Option<SystemTime>,
    /// The read flag. The store changes it only through read-state changes, which ICS
    /// tracks apart from content changes.
    pub read: bool,
    /// The follow-up flag.
    pub flag: FlagStatus,
    /// The categories (PidNameKeywords).
    pub categories: Vec<String>,
    /// The importance.
    pub importance: Importance,
    /// Whether the item has attachments (PidTagHasAttachments). The store sets it
    /// whenever `attachments` is not empty; a caller may set it on an item without
    /// attachment objects.
    pub has_attachments: bool,
    /// The body, if any.
    pub body: Option<Body>,
    /// The file attachments, ordered by attachment number.
    pub attachments: Vec<Attachment>,
}

impl Default for ItemProps {
    fn default() -> Self {
        Self {
            item_class: "IPM.Note".to_owned(),
            subject: String::new(),
            sender: None,
            to: Vec::new(),
            cc: Vec::new(),
            bcc: Vec::new(),
            received: None,
            read: false,
            flag: FlagStatus::NotFlagged,
            categories: Vec::new(),
            importance: Importance::Normal,
            has_attachments: false,
            body: None,
            attachments: Vec::new(),
        }
    }
}

/// An item (message) in a folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// The message id; changes on move.
    pub mid: Mid,
    /// The folder that contains the item.
    pub folder: Fid,
    /// Whether this is a folder-associated information (FAI) item, synced through
    /// CnsetSeenFAI instead of CnsetSeen.
    pub associated: bool,
    /// The properties.
    pub props: ItemProps,
    /// The full MIME content, when the item has one. An item created from MIME keeps its
    /// bytes. An item whose attachments were set from properties (a MAPI save) gets MIME
    /// composed from its properties and attachments, so the MIME always carries the
    /// attachments that `props.attachments` lists. Other items have none.
    pub mime: Option<Vec<u8>>,
    /// The size in bytes (PidTagMessageSize): the MIME length, or an estimate from the
    /// properties when there is no MIME.
    pub size: u64,
    /// The last content change (everything except the read flag).
    pub stamp: ChangeStamp,
    /// The change number of the last read-state change, if the read flag ever changed
    /// after creation, for CnsetRead (MS-OXCFXICS 2.2.1.1.4).
    pub read_cn: Option<Cn>,
    /// The session that created the item (or, after a move or copy, the session that
    /// moved or copied it).
    pub created_by: SessionId,
}

/// The content of a new item.
// Built once per created item and consumed at once, so boxing the properties would only
// add noise at every call site.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum NewItemContent {
    /// An item built from properties only.
    Props(ItemProps),
    /// An item built from RFC 5322 MIME content. The store fills the properties from
    /// the MIME.
    Mime(Vec<u8>),
    /// An empty `IPM.Note`.
    #[default]
    Empty,
}

/// A change to an item's content properties. `None` fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ItemUpdate {
    /// New message class.
    pub item_class: Option<String>,
    /// New subject.
    pub subject: Option<String>,
    /// New sender.
    pub sender: Option<Option<Mailbox>>,
    /// New To recipients.
    pub to: Option<Vec<Mailbox>>,
    /// New Cc recipients.
    pub cc: Option<Vec<Mailbox>>,
    /// New Bcc recipients.
    pub bcc: Option<Vec<Mailbox>>,
    /// New received time.
    pub received: Option<Option<SystemTime>>,
    /// New follow-up flag.
    pub flag: Option<FlagStatus>,
    /// New categories.
    pub categories: Option<Vec<String>>,
    /// New importance.
    pub importance: Option<Importance>,
    /// New has-attachments flag.
    pub has_attachments: Option<bool>,
    /// New attachments, replacing all current ones. Ignored when `mime` is set, because
    /// the MIME carries the attachments then.
    pub attachments: Option<Vec<Attachment>>,
    /// New body.
    pub body: Option<Option<Body>>,
    /// New MIME content; the store re-reads the properties from it.
    pub mime: Option<Vec<u8>>,
}

/// Change tracking a client supplies with an ICS upload: the PidTagChangeKey and
/// PidTagPredecessorChangeList of an imported change (MS-OXCFXICS 2.2.1.2.7). The store
/// keeps both as given, and a missing PCL becomes the old PCL merged with the change key.
// NOTE: imports are not checked for conflicts against the server's PCL (MS-OXCFXICS
// 3.1.5.6.1), so an import always replaces the current version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportStamp {
    /// The change key the client assigned.
    pub change_key: Option<Xid>,
    /// The predecessor change list the client assigned.
    pub pcl: Option<Pcl>,
}

/// The outcome of a write: the object's id and change tracking after the write, so the
/// caller can checkpoint its sync state ([`super::sync::SyncState::checkpoint`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteResult<Id> {
    /// The id of the written object (for a move or copy, the new id).
    pub id: Id,
    /// The change number of this write.
    pub cn: Cn,
    /// The object's change key after the write.
    pub change_key: Xid,
}

/// The outcome of a read-state change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadResult {
    /// The item.
    pub mid: Mid,
    /// The read-state change number, for CnsetRead.
    pub read_cn: Cn,
}
