//! EWS data types (MS-OXWSCDATA, MS-OXWSCORE): ids, shapes, enums, items and folders,
//! with their reading from [`Element`]s and writing through [`XmlWriter`].
//!
//! Ids and ChangeKeys are base64 and case-sensitive: they are compared and stored as the
//! exact strings the server sent.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::soap::XmlWriter;
use crate::xml::Element;

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $wire:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name { $($(#[$vdoc])* $variant,)* }

        impl $name {
            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire,)* }
            }
            /// Parses the wire name (surrounding whitespace ignored).
            pub fn parse(text: &str) -> Option<Self> {
                match text.trim() { $($wire => Some($name::$variant),)* _ => None }
            }
        }
    };
}

wire_enum!(
    /// RequestServerVersion values (MS-OXWSCDATA 2.2.5.x ExchangeVersionType), named as
    /// on the wire.
    #[allow(non_camel_case_types)]
    ServerVersion {
        /// Exchange 2007.
        Exchange2007 = "Exchange2007",
        /// Exchange 2007 SP1.
        Exchange2007_SP1 = "Exchange2007_SP1",
        /// Exchange 2010.
        Exchange2010 = "Exchange2010",
        /// Exchange 2010 SP1.
        Exchange2010_SP1 = "Exchange2010_SP1",
        /// Exchange 2010 SP2.
        Exchange2010_SP2 = "Exchange2010_SP2",
        /// Exchange 2013.
        Exchange2013 = "Exchange2013",
        /// Exchange 2013 SP1 (the default).
        Exchange2013_SP1 = "Exchange2013_SP1",
        /// Exchange 2016.
        Exchange2016 = "Exchange2016",
    }
);

wire_enum!(
    /// BaseShape (MS-OXWSCDATA 2.2.5.9 DefaultShapeNamesType).
    BaseShape { /// Ids only.
        IdOnly = "IdOnly", /// The default property set.
        Default = "Default", /// All properties.
        AllProperties = "AllProperties" }
);

wire_enum!(
    /// DeleteType (MS-OXWSCDATA 2.2.5.12 DisposalType).
    DeleteType { /// Permanently.
        HardDelete = "HardDelete", /// Into the dumpster.
        SoftDelete = "SoftDelete", /// Into Deleted Items.
        MoveToDeletedItems = "MoveToDeletedItems" }
);

wire_enum!(
    /// ConflictResolution of UpdateItem (MS-OXWSCORE 3.1.4.9.3.1).
    ConflictResolution { /// Fail on a stale ChangeKey.
        NeverOverwrite = "NeverOverwrite", /// Merge when possible.
        AutoResolve = "AutoResolve", /// Overwrite.
        AlwaysOverwrite = "AlwaysOverwrite" }
);

wire_enum!(
    /// MessageDisposition of CreateItem/UpdateItem (MS-OXWSCDATA 2.2.5.21).
    MessageDisposition { /// Save only.
        SaveOnly = "SaveOnly", /// Send only.
        SendOnly = "SendOnly", /// Send and save a copy.
        SendAndSaveCopy = "SendAndSaveCopy" }
);

wire_enum!(
    /// Traversal of FindFolder/FindItem.
    Traversal { /// Direct children.
        Shallow = "Shallow", /// All descendants (folders).
        Deep = "Deep", /// Soft-deleted items.
        SoftDeleted = "SoftDeleted", /// Associated items.
        Associated = "Associated" }
);

wire_enum!(
    /// Event types of a subscription (MS-OXWSNTIF 2.2.5.1 NotificationEventTypeType).
    EventType { /// CopiedEvent.
        Copied = "CopiedEvent", /// CreatedEvent.
        Created = "CreatedEvent", /// DeletedEvent.
        Deleted = "DeletedEvent", /// ModifiedEvent.
        Modified = "ModifiedEvent", /// MovedEvent.
        Moved = "MovedEvent", /// NewMailEvent.
        NewMail = "NewMailEvent", /// FreeBusyChangedEvent.
        FreeBusyChanged = "FreeBusyChangedEvent" }
);

wire_enum!(
    /// Id formats of ConvertId (MS-OXWSCDATA 2.2.5.19 IdFormatType).
    IdFormat { /// EWS legacy id.
        EwsLegacyId = "EwsLegacyId", /// EWS id.
        EwsId = "EwsId", /// Outlook/MAPI entry id, base64.
        EntryId = "EntryId", /// Entry id as hex.
        HexEntryId = "HexEntryId", /// Store id.
        StoreId = "StoreId", /// OWA id.
        OwaId = "OwaId" }
);

wire_enum!(
    /// DistinguishedFolderId names (MS-OXWSCDATA 2.2.5.10), the ones a mail sync uses.
    DistinguishedFolder {
        /// Inbox.
        Inbox = "inbox", /// Drafts.
        Drafts = "drafts", /// Sent Items.
        SentItems = "sentitems", /// Deleted Items.
        DeletedItems = "deleteditems", /// Outbox.
        Outbox = "outbox", /// Junk E-Mail.
        JunkEmail = "junkemail", /// Root of the IPM subtree.
        MsgFolderRoot = "msgfolderroot", /// Mailbox root.
        Root = "root", /// Calendar.
        Calendar = "calendar", /// Contacts.
        Contacts = "contacts", /// Tasks.
        Tasks = "tasks", /// Notes.
        Notes = "notes", /// Journal.
        Journal = "journal", /// Public folder root.
        PublicFoldersRoot = "publicfoldersroot", /// Search folders.
        SearchFolders = "searchfolders", /// Voice mail.
        VoiceMail = "voicemail", /// Recoverable items root.
        RecoverableItemsRoot = "recoverableitemsroot", /// Recoverable deletions.
        RecoverableItemsDeletions = "recoverableitemsdeletions", /// Archive root.
        ArchiveMsgFolderRoot = "archivemsgfolderroot", /// Conversation history.
        ConversationHistory = "conversationhistory", /// Sync issues.
        SyncIssues = "syncissues", /// Conflicts.
        Conflicts = "conflicts", /// Local failures.
        LocalFailures = "localfailures", /// Server failures.
        ServerFailures = "serverfailures"
    }
);

/// ExchangeImpersonation's ConnectingSID (MS-OXWSCDATA 2.2.4.x ConnectingSIDType).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Impersonation {
    /// PrimarySmtpAddress.
    PrimarySmtpAddress(String),
    /// SmtpAddress.
    SmtpAddress(String),
    /// PrincipalName (UPN).
    PrincipalName(String),
    /// SID.
    Sid(String),
}

impl Impersonation {
    pub(crate) fn element(&self) -> (&'static str, &str) {
        match self {
            Impersonation::PrincipalName(v) => ("t:PrincipalName", v),
            Impersonation::Sid(v) => ("t:SID", v),
            Impersonation::PrimarySmtpAddress(v) => ("t:PrimarySmtpAddress", v),
            Impersonation::SmtpAddress(v) => ("t:SmtpAddress", v),
        }
    }

    pub(crate) fn from_element(e: &Element) -> Option<Self> {
        let v = e.text.trim().to_owned();
        match &*e.name {
            "PrincipalName" => Some(Impersonation::PrincipalName(v)),
            "SID" => Some(Impersonation::Sid(v)),
            "PrimarySmtpAddress" => Some(Impersonation::PrimarySmtpAddress(v)),
            "SmtpAddress" => Some(Impersonation::SmtpAddress(v)),
            _ => None,
        }
    }
}

/// ServerVersionInfo from a response header (MS-OXWSCDATA 2.2.3.x).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerVersionInfo {
    /// MajorVersion.
    pub major: u32,
    /// MinorVersion.
    pub minor: u32,
    /// MajorBuildNumber.
    pub major_build: u32,
    /// MinorBuildNumber.
    pub minor_build: u32,
    /// Version (`V2017_07_11`, `Exchange2010_SP2`), when sent (Exchange 2007 does not).
    pub version: Option<String>,
}

impl ServerVersionInfo {
    pub(crate) fn from_element(e: &Element) -> Self {
        let num = |n: &str| e.attr(n).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
        Self {
            major: num("MajorVersion"),
            minor: num("MinorVersion"),
            major_build: num("MajorBuildNumber"),
            minor_build: num("MinorBuildNumber"),
            version: e.attr("Version").map(str::to_owned),
        }
    }
}

/// An ItemId with its optional ChangeKey (MS-OXWSCORE 2.2.4.x ItemIdType). Both are
/// case-sensitive base64 strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemId {
    /// Id.
    pub id: String,
    /// ChangeKey, when sent.
    pub change_key: Option<String>,
}

impl ItemId {
    /// An id without ChangeKey.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            change_key: None,
        }
    }

    /// Reads an `ItemId`-shaped element (ItemId, OldItemId, MovedItemId, ...).
    pub fn from_element(e: &Element) -> Option<Self> {
        Some(Self {
            id: e.attr("Id")?.to_owned(),
            change_key: e.attr("ChangeKey").map(str::to_owned),
        })
    }

    /// Reads the `Id` and `ChangeKey` attributes, taking the strings.
    pub(crate) fn from_owned(attrs: Vec<(std::borrow::Cow<'static, str>, String)>) -> Option<Self> {
        let mut id = None;
        let mut change_key = None;
        for (k, v) in attrs {
            match &*k {
                "Id" => id = Some(v),
                "ChangeKey" => change_key = Some(v),
                _ => {}
            }
        }
        Some(Self {
            id: id?,
            change_key,
        })
    }

    /// Writes it as `name`.
    pub fn write(&self, w: &mut XmlWriter, name: &str) {
        match &self.change_key {
            Some(ck) => w.empty(name, &[("Id", &self.id), ("ChangeKey", ck)]),
            None => w.empty(name, &[("Id", &self.id)]),
        }
    }
}

/// A FolderId with its optional ChangeKey.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FolderId {
    /// Id.
    pub id: String,
    /// ChangeKey, when sent.
    pub change_key: Option<String>,
}

impl FolderId {
    /// An id without ChangeKey.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            change_key: None,
        }
    }

    /// Reads a `FolderId`-shaped element.
    pub fn from_element(e: &Element) -> Option<Self> {
        Some(Self {
            id: e.attr("Id")?.to_owned(),
            change_key: e.attr("ChangeKey").map(str::to_owned),
        })
    }

    fn write(&self, w: &mut XmlWriter, name: &str) {
        match &self.change_key {
            Some(ck) => w.empty(name, &[("Id", &self.id), ("ChangeKey", ck)]),
            None => w.empty(name, &[("Id", &self.id)]),
        }
    }
}

/// A folder reference: by id or by distinguished name (optionally in another mailbox).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FolderRef {
    /// A FolderId.
    Id(FolderId),
    /// A DistinguishedFolderId.
    Distinguished {
        /// The name.
        name: DistinguishedFolder,
        /// The mailbox's SMTP address, for another mailbox.
        mailbox: Option<String>,
    },
}

impl FolderRef {
    /// A distinguished folder of the caller's mailbox.
    pub fn distinguished(name: DistinguishedFolder) -> Self {
        FolderRef::Distinguished {
            name,
            mailbox: None,
        }
    }

    /// Writes it as `t:FolderId` or `t:DistinguishedFolderId`.
    pub fn write(&self, w: &mut XmlWriter) {
        match self {
            FolderRef::Id(id) => id.write(w, "t:FolderId"),
            FolderRef::Distinguished {
                name,
                mailbox: None,
            } => {
                w.empty("t:DistinguishedFolderId", &[("Id", name.as_str())]);
            }
            FolderRef::Distinguished {
                name,
                mailbox: Some(mb),
            } => {
                w.start("t:DistinguishedFolderId", &[("Id", name.as_str())]);
                w.start("t:Mailbox", &[]);
                w.text("t:EmailAddress", mb);
                w.end();
                w.end();
            }
        }
    }

    /// Reads a `FolderId` or `DistinguishedFolderId` element.
    pub fn from_element(e: &Element) -> Option<Self> {
        if e.is("FolderId") {
            return FolderId::from_element(e).map(FolderRef::Id);
        }
        if e.is("DistinguishedFolderId") {
            let name = DistinguishedFolder::parse(e.attr("Id")?)?;
            let mailbox = e
                .child("Mailbox")
                .and_then(|m| m.child_text("EmailAddress"))
                .map(str::to_owned);
            return Some(FolderRef::Distinguished { name, mailbox });
        }
        None
    }

    /// Reads every folder reference among `e`'s children.
    pub fn all_in(e: &Element) -> Vec<Self> {
        e.children
            .iter()
            .filter_map(FolderRef::from_element)
            .collect()
    }
}

/// A property path (MS-OXWSCORE 2.2.4.x BasePathToElementType).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PropertyPath {
    /// `t:FieldURI FieldURI="item:Subject"`.
    Field(String),
    /// `t:IndexedFieldURI`.
    Indexed {
        /// FieldURI.
        field: String,
        /// FieldIndex.
        index: String,
    },
    /// `t:ExtendedFieldURI` with a property tag and type.
    Extended {
        /// PropertyTag (`0x1081`).
        tag: String,
        /// PropertyType (`Integer`).
        property_type: String,
    },
}

impl PropertyPath {
    /// A FieldURI path.
    pub fn field(uri: &str) -> Self {
        PropertyPath::Field(uri.to_owned())
    }

    /// Writes the path element.
    pub fn write(&self, w: &mut XmlWriter) {
        match self {
            PropertyPath::Field(f) => w.empty("t:FieldURI", &[("FieldURI", f)]),
            PropertyPath::Indexed { field, index } => {
                w.empty(
                    "t:IndexedFieldURI",
                    &[("FieldURI", field), ("FieldIndex", index)],
                );
            }
            PropertyPath::Extended { tag, property_type } => {
                w.empty(
                    "t:ExtendedFieldURI",
                    &[("PropertyTag", tag), ("PropertyType", property_type)],
                );
            }
        }
    }

    /// Reads a path element.
    pub fn from_element(e: &Element) -> Option<Self> {
        match &*e.name {
            "FieldURI" => Some(PropertyPath::Field(e.attr("FieldURI")?.to_owned())),
            "IndexedFieldURI" => Some(PropertyPath::Indexed {
                field: e.attr("FieldURI")?.to_owned(),
                index: e.attr("FieldIndex")?.to_owned(),
            }),
            "ExtendedFieldURI" => Some(PropertyPath::Extended {
                tag: e.attr("PropertyTag")?.to_owned(),
                property_type: e.attr("PropertyType")?.to_owned(),
            }),
            _ => None,
        }
    }
}

/// Parses an xs:dateTime. Values without an offset are taken as UTC, as Exchange means.
pub fn parse_datetime(text: &str) -> Option<OffsetDateTime> {
    let t = text.trim();
    if let Some(v) = parse_utc_seconds(t) {
        return Some(v);
    }
    if let Ok(v) = OffsetDateTime::parse(t, &Rfc3339) {
        return Some(v);
    }
    let with_z = format!("{t}Z");
    OffsetDateTime::parse(&with_z, &Rfc3339).ok()
}

/// Parses the one shape Exchange writes, `YYYY-MM-DDTHH:MM:SSZ`, without the general
/// RFC 3339 parser (a quarter of its cost). `None` for any other shape, including a
/// leap second, which the caller then parses with `time`.
fn parse_utc_seconds(t: &str) -> Option<OffsetDateTime> {
    let b = t.as_bytes();
    if b.len() != 20
        || b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || b.get(10) != Some(&b'T')
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
        || b.get(19) != Some(&b'Z')
    {
        return None;
    }
    let number = |from: usize, len: usize| -> Option<u32> {
        b.get(from..from + len)?.iter().try_fold(0u32, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let year = i32::try_from(number(0, 4)?).ok()?;
    let month = time::Month::try_from(u8::try_from(number(5, 2)?).ok()?).ok()?;
    let date =
        time::Date::from_calendar_date(year, month, u8::try_from(number(8, 2)?).ok()?).ok()?;
    let time = time::Time::from_hms(
        u8::try_from(number(11, 2)?).ok()?,
        u8::try_from(number(14, 2)?).ok()?,
        u8::try_from(number(17, 2)?).ok()?,
    )
    .ok()?;
    Some(time::PrimitiveDateTime::new(date, time).assume_utc())
}

/// Formats an xs:dateTime in UTC.
pub fn format_datetime(value: OffsetDateTime) -> String {
    value
        .to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_default()
}

pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    match text.trim() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// The element an item was sent as (the ItemType substitution group, MS-OXWSCORE 2.2.4.x).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ItemKind {
    /// `t:Item`.
    Item,
    /// `t:Message`.
    Message,
    /// `t:MeetingRequest`.
    MeetingRequest,
    /// `t:MeetingResponse`.
    MeetingResponse,
    /// `t:MeetingCancellation`.
    MeetingCancellation,
    /// `t:MeetingMessage`.
    MeetingMessage,
    /// `t:CalendarItem`.
    CalendarItem,
    /// `t:Contact`.
    Contact,
    /// `t:DistributionList`.
    DistributionList,
    /// `t:Task`.
    Task,
    /// `t:PostItem`.
    PostItem,
    /// Any other element: kept by name so the item is still delivered.
    Other(String),
}

impl ItemKind {
    /// Maps an element local name.
    pub fn from_name(name: &str) -> Self {
        match name {
            "Item" => ItemKind::Item,
            "Message" => ItemKind::Message,
            "MeetingRequest" => ItemKind::MeetingRequest,
            "MeetingResponse" => ItemKind::MeetingResponse,
            "MeetingCancellation" => ItemKind::MeetingCancellation,
            "MeetingMessage" => ItemKind::MeetingMessage,
            "CalendarItem" => ItemKind::CalendarItem,
            "Contact" => ItemKind::Contact,
            "DistributionList" => ItemKind::DistributionList,
            "Task" => ItemKind::Task,
            "PostItem" => ItemKind::PostItem,
            other => ItemKind::Other(other.to_owned()),
        }
    }

    /// The element local name.
    pub fn name(&self) -> &str {
        match self {
            ItemKind::Item => "Item",
            ItemKind::Message => "Message",
            ItemKind::MeetingRequest => "MeetingRequest",
            ItemKind::MeetingResponse => "MeetingResponse",
            ItemKind::MeetingCancellation => "MeetingCancellation",
            ItemKind::MeetingMessage => "MeetingMessage",
            ItemKind::CalendarItem => "CalendarItem",
            ItemKind::Contact => "Contact",
            ItemKind::DistributionList => "DistributionList",
            ItemKind::Task => "Task",
            ItemKind::PostItem => "PostItem",
            ItemKind::Other(n) => n,
        }
    }

    fn wire(&self) -> &'static str {
        match self {
            ItemKind::Message | ItemKind::Other(_) => "t:Message",
            ItemKind::Item => "t:Item",
            ItemKind::MeetingRequest => "t:MeetingRequest",
            ItemKind::MeetingResponse => "t:MeetingResponse",
            ItemKind::MeetingCancellation => "t:MeetingCancellation",
            ItemKind::MeetingMessage => "t:MeetingMessage",
            ItemKind::CalendarItem => "t:CalendarItem",
            ItemKind::Contact => "t:Contact",
            ItemKind::DistributionList => "t:DistributionList",
            ItemKind::Task => "t:Task",
            ItemKind::PostItem => "t:PostItem",
        }
    }
}

/// A mailbox (name and address).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mailbox {
    /// Display name.
    pub name: Option<String>,
    /// SMTP address.
    pub email: Option<String>,
}

impl Mailbox {
    fn from_element(e: &Element) -> Self {
        let mb = e.child("Mailbox").unwrap_or(e);
        Self {
            name: mb.child_text("Name").map(str::to_owned),
            email: mb.child_text("EmailAddress").map(str::to_owned),
        }
    }

    fn write(&self, w: &mut XmlWriter) {
        w.start("t:Mailbox", &[]);
        w.opt_text("t:Name", self.name.as_deref());
        w.opt_text("t:EmailAddress", self.email.as_deref());
        w.end();
    }
}

/// An item with the properties a mail sync reads (MS-OXWSCORE 2.2.4.x ItemType and
/// MessageType). Properties the server did not send are `None`/empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Which substitution-group element it came as.
    pub kind: ItemKind,
    /// MimeContent, base64 as sent.
    pub mime_content: Option<String>,
    /// ItemId and ChangeKey.
    pub item_id: Option<ItemId>,
    /// ParentFolderId.
    pub parent_folder_id: Option<FolderId>,
    /// ItemClass (`IPM.Note`).
    pub item_class: Option<String>,
    /// Subject.
    pub subject: Option<String>,
    /// Body text and whether it is HTML.
    pub body: Option<(String, bool)>,
    /// DateTimeReceived.
    pub date_time_received: Option<OffsetDateTime>,
    /// Size in bytes.
    pub size: Option<u64>,
    /// Categories.
    pub categories: Vec<String>,
    /// Importance (Low, Normal, High).
    pub importance: Option<String>,
    /// DateTimeSent.
    pub date_time_sent: Option<OffsetDateTime>,
    /// HasAttachments.
    pub has_attachments: Option<bool>,
    /// LastModifiedTime.
    pub last_modified_time: Option<OffsetDateTime>,
    /// Flag/FlagStatus (NotFlagged, Flagged, Complete); an Exchange 2013 element.
    pub flag_status: Option<String>,
    /// Sender.
    pub sender: Option<Mailbox>,
    /// ToRecipients.
    pub to_recipients: Vec<Mailbox>,
    /// InternetMessageId.
    pub internet_message_id: Option<String>,
    /// IsRead.
    pub is_read: Option<bool>,
    /// From.
    pub from: Option<Mailbox>,
}

impl Item {
    /// An empty item of this kind.
    pub fn new(kind: ItemKind) -> Self {
        Self {
            kind,
            mime_content: None,
            item_id: None,
            parent_folder_id: None,
            item_class: None,
            subject: None,
            body: None,
            date_time_received: None,
            size: None,
            categories: Vec::new(),
            importance: None,
            date_time_sent: None,
            has_attachments: None,
            last_modified_time: None,
            flag_status: None,
            sender: None,
            to_recipients: Vec::new(),
            internet_message_id: None,
            is_read: None,
            from: None,
        }
    }

    /// Reads an item element of any kind; unknown children are skipped.
    pub fn from_element(e: &Element) -> Self {
        Self::from_owned(e.clone())
    }

    /// Reads an item element of any kind, taking its strings instead of copying them.
    pub fn from_owned(e: Element) -> Self {
        // Trimmed text without a copy when there is nothing to trim.
        fn trimmed(mut s: String) -> String {
            let end = s.trim_end().len();
            s.truncate(end);
            let start = s.len() - s.trim_start().len();
            if start > 0 {
                s.drain(..start);
            }
            s
        }
        let mut item = Item::new(ItemKind::from_name(&e.name));
        for mut c in e.children {
            // Only EWS elements are item properties; an element of another namespace that
            // happens to share a local name is not.
            if !c.ns.is_ews() {
                continue;
            }
            match &*c.name {
                "MimeContent" => item.mime_content = Some(trimmed(c.text)),
                "ItemId" => item.item_id = ItemId::from_owned(c.attrs),
                "ParentFolderId" => {
                    item.parent_folder_id = ItemId::from_owned(c.attrs).map(|i| FolderId {
                        id: i.id,
                        change_key: i.change_key,
                    })
                }
                "ItemClass" => item.item_class = Some(trimmed(c.text)),
                "Subject" => item.subject = Some(c.text),
                "Body" => {
                    let html = c.attr("BodyType") == Some("HTML");
                    item.body = Some((std::mem::take(&mut c.text), html));
                }
                "DateTimeReceived" => item.date_time_received = parse_datetime(&c.text),
                "Size" => item.size = c.text.trim().parse().ok(),
                "Categories" => item.categories = c.children.into_iter().map(|s| s.text).collect(),
                "Importance" => item.importance = Some(trimmed(c.text)),
                "DateTimeSent" => item.date_time_sent = parse_datetime(&c.text),
                "HasAttachments" => item.has_attachments = parse_bool(&c.text),
                "LastModifiedTime" => item.last_modified_time = parse_datetime(&c.text),
                "Flag" => item.flag_status = c.child_text("FlagStatus").map(str::to_owned),
                "Sender" => item.sender = Some(Mailbox::from_element(&c)),
                "ToRecipients" => {
                    item.to_recipients = c.children.iter().map(Mailbox::from_element).collect()
                }
                "InternetMessageId" => item.internet_message_id = Some(trimmed(c.text)),
                "IsRead" => item.is_read = parse_bool(&c.text),
                "From" => item.from = Some(Mailbox::from_element(&c)),
                _ => {}
            }
        }
        item
    }

    /// Writes the item in schema order (ItemType, then MessageType's own elements). Kinds
    /// this crate does not model are written as `t:Message`.
    pub fn write(&self, w: &mut XmlWriter) {
        w.start(self.kind.wire(), &[]);
        w.opt_text("t:MimeContent", self.mime_content.as_deref());
        if let Some(id) = &self.item_id {
            id.write(w, "t:ItemId");
        }
        if let Some(id) = &self.parent_folder_id {
            id.write(w, "t:ParentFolderId");
        }
        w.opt_text("t:ItemClass", self.item_class.as_deref());
        w.opt_text("t:Subject", self.subject.as_deref());
        if let Some((body, html)) = &self.body {
            w.start(
                "t:Body",
                &[("BodyType", if *html { "HTML" } else { "Text" })],
            );
            crate::xml::escape_into(w_out(w), body);
            w.end();
        }
        if let Some(d) = self.date_time_received {
            w.text("t:DateTimeReceived", &format_datetime(d));
        }
        if let Some(s) = self.size {
            w.text("t:Size", &s.to_string());
        }
        if !self.categories.is_empty() {
            w.start("t:Categories", &[]);
            for c in &self.categories {
                w.text("t:String", c);
            }
            w.end();
        }
        w.opt_text("t:Importance", self.importance.as_deref());
        if let Some(d) = self.date_time_sent {
            w.text("t:DateTimeSent", &format_datetime(d));
        }
        if let Some(b) = self.has_attachments {
            w.bool("t:HasAttachments", b);
        }
        if let Some(d) = self.last_modified_time {
            w.text("t:LastModifiedTime", &format_datetime(d));
        }
        // NOTE: t:Flag is an Exchange 2013 element; it follows the 2010 SP2 ItemType
        // elements here, where the 2013 schema puts it, and is outside the validated schema.
        if let Some(f) = &self.flag_status {
            w.start("t:Flag", &[]);
            w.text("t:FlagStatus", f);
            w.end();
        }
        let is_message = matches!(
            self.kind,
            ItemKind::Message
                | ItemKind::MeetingRequest
                | ItemKind::MeetingResponse
                | ItemKind::MeetingCancellation
                | ItemKind::MeetingMessage
                | ItemKind::Other(_)
        );
        if is_message {
            if let Some(s) = &self.sender {
                w.start("t:Sender", &[]);
                s.write(w);
                w.end();
            }
            if !self.to_recipients.is_empty() {
                w.start("t:ToRecipients", &[]);
                for r in &self.to_recipients {
                    r.write(w);
                }
                w.end();
            }
            if let Some(f) = &self.from {
                w.start("t:From", &[]);
                f.write(w);
                w.end();
            }
            w.opt_text("t:InternetMessageId", self.internet_message_id.as_deref());
            if let Some(r) = self.is_read {
                w.bool("t:IsRead", r);
            }
        }
        w.end();
    }
}

fn w_out(w: &mut XmlWriter) -> &mut Vec<u8> {
    w.out_mut()
}

/// A folder (MS-OXWSCORE 2.2.4.x BaseFolderType).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    /// Element name (`Folder`, `CalendarFolder`, `ContactsFolder`, `SearchFolder`,
    /// `TasksFolder`).
    pub kind: String,
    /// FolderId.
    pub folder_id: Option<FolderId>,
    /// ParentFolderId.
    pub parent_folder_id: Option<FolderId>,
    /// FolderClass (`IPF.Note`).
    pub folder_class: Option<String>,
    /// DisplayName.
    pub display_name: Option<String>,
    /// TotalCount.
    pub total_count: Option<u32>,
    /// ChildFolderCount.
    pub child_folder_count: Option<u32>,
    /// UnreadCount.
    pub unread_count: Option<u32>,
}

impl Folder {
    /// A plain folder with a display name.
    pub fn named(display_name: &str) -> Self {
        Self {
            kind: "Folder".into(),
            folder_id: None,
            parent_folder_id: None,
            folder_class: None,
            display_name: Some(display_name.to_owned()),
            total_count: None,
            child_folder_count: None,
            unread_count: None,
        }
    }

    /// Reads a folder element of any kind.
    pub fn from_element(e: &Element) -> Self {
        let num = |n: &str| e.child_text(n).and_then(|v| v.parse().ok());
        Self {
            kind: e.name.to_string(),
            folder_id: e.child("FolderId").and_then(FolderId::from_element),
            parent_folder_id: e.child("ParentFolderId").and_then(FolderId::from_element),
            folder_class: e.child_text("FolderClass").map(str::to_owned),
            display_name: e.child("DisplayName").map(|d| d.text.clone()),
            total_count: num("TotalCount"),
            child_folder_count: num("ChildFolderCount"),
            unread_count: num("UnreadCount"),
        }
    }

    /// Writes the folder in schema order.
    pub fn write(&self, w: &mut XmlWriter) {
        let name = match self.kind.as_str() {
            "CalendarFolder" => "t:CalendarFolder",
            "ContactsFolder" => "t:ContactsFolder",
            "SearchFolder" => "t:SearchFolder",
            "TasksFolder" => "t:TasksFolder",
            _ => "t:Folder",
        };
        w.start(name, &[]);
        if let Some(id) = &self.folder_id {
            id.write(w, "t:FolderId");
        }
        if let Some(id) = &self.parent_folder_id {
            id.write(w, "t:ParentFolderId");
        }
        w.opt_text("t:FolderClass", self.folder_class.as_deref());
        w.opt_text("t:DisplayName", self.display_name.as_deref());
        if let Some(n) = self.total_count {
            w.text("t:TotalCount", &n.to_string());
        }
        if let Some(n) = self.child_folder_count {
            w.text("t:ChildFolderCount", &n.to_string());
        }
        if let Some(n) = self.unread_count.filter(|_| name == "t:Folder") {
            w.text("t:UnreadCount", &n.to_string());
        }
        w.end();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn utc_seconds_shape_matches_rfc3339() {
        for text in [
            "2023-11-14T22:13:20Z",
            "2024-02-29T00:00:00Z",
            "1999-12-31T23:59:59Z",
            "0001-01-01T00:00:00Z",
        ] {
            let general = OffsetDateTime::parse(text, &Rfc3339).unwrap();
            assert_eq!(parse_utc_seconds(text), Some(general), "{text}");
            assert_eq!(parse_utc_seconds(text).unwrap().offset(), general.offset());
        }
    }

    #[test]
    fn utc_seconds_shape_falls_back() {
        for text in [
            "2023-11-14T22:13:20.5Z",
            "2023-11-14T22:13:20+01:00",
            "2023-11-14T22:13:20",
            "2023-02-30T00:00:00Z",
            "2016-12-31T23:59:60Z",
            "2023-11-14T24:00:00Z",
            "2023-1a-14T22:13:20Z",
        ] {
            assert_eq!(parse_utc_seconds(text), None, "{text}");
        }
        assert_eq!(
            parse_datetime("2023-11-14T22:13:20.5Z"),
            OffsetDateTime::parse("2023-11-14T22:13:20.5Z", &Rfc3339).ok()
        );
        assert_eq!(
            parse_datetime(" 2023-11-14T22:13:20 "),
            OffsetDateTime::parse("2023-11-14T22:13:20Z", &Rfc3339).ok()
        );
    }
}
