//! Conversions between the store's folders and items and the EWS types, honouring the
//! response shape (BaseShape, IncludeMimeContent, AdditionalProperties).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use exmux_ews::ops::Shape;
use exmux_ews::types::{self as ews, BaseShape, ItemKind, PropertyPath};
use time::OffsetDateTime;

use super::ids::IdCodec;
use crate::store::{
    Body, BodyType, FlagStatus, Folder, Importance, Item, ItemProps, Mailbox, Store, compose_mime,
};

/// Returns the EWS folder element of a store folder.
pub(crate) fn folder(store: &Store, ids: &IdCodec, folder: &Folder, shape: &Shape) -> ews::Folder {
    let kind = match folder.container_class.as_deref() {
        Some("IPF.Appointment") => "CalendarFolder",
        Some("IPF.Contact") => "ContactsFolder",
        _ => "Folder",
    };
    let mut out = ews::Folder::named(&folder.display_name);
    out.kind = kind.to_owned();
    out.folder_id = Some(ids.folder_id(folder));
    if shape.base == BaseShape::IdOnly {
        out.display_name = None;
        return out;
    }
    out.parent_folder_id = folder
        .parent
        .map(|parent| ews::FolderId::new(ids.folder_id_text(parent)));
    out.folder_class = folder.container_class.clone();
    let counts = store.folder_counts(folder.fid).unwrap_or_default();
    out.total_count = u32::try_from(counts.total).ok();
    out.child_folder_count = u32::try_from(store.child_folders(folder.fid).len()).ok();
    out.unread_count = u32::try_from(counts.unread).ok();
    out
}

/// The item fields this front end can return, by FieldURI.
const FIELDS: &[&str] = &[
    "item:ParentFolderId",
    "item:ItemClass",
    "item:Subject",
    "item:Body",
    "item:DateTimeReceived",
    "item:Size",
    "item:Categories",
    "item:Importance",
    "item:HasAttachments",
    "item:Flag",
    "message:Sender",
    "message:ToRecipients",
    "message:IsRead",
    "message:From",
    "item:MimeContent",
];

/// Returns the EWS item element of a store item in `shape`.
pub(crate) fn item(ids: &IdCodec, item: &Item, shape: &Shape) -> ews::Item {
    let wanted = |field: &str| match shape.base {
        // Default leaves out the body, as Exchange's Default shape for messages does
        // for large bodies; AllProperties includes it.
        BaseShape::AllProperties => true,
        BaseShape::Default => field != "item:Body" && field != "item:MimeContent",
        _ => false,
    } || shape
        .additional
        .iter()
        .any(|path| matches!(path, PropertyPath::Field(uri) if uri == field));

    let props = &item.props;
    let mut out = ews::Item::new(ItemKind::Message);
    out.item_id = Some(ids.item_id(item));
    if wanted("item:ParentFolderId") {
        out.parent_folder_id = Some(ews::FolderId::new(ids.folder_id_text(item.folder)));
    }
    if wanted("item:ItemClass") {
        out.item_class = Some(props.item_class.clone());
    }
    if wanted("item:Subject") {
        out.subject = Some(props.subject.clone());
    }
    if wanted("item:Body") {
        out.body = props
            .body
            .as_ref()
            .map(|body| (body.content.clone(), body.body_type == BodyType::Html));
    }
    if wanted("item:DateTimeReceived") {
        out.date_time_received = props.received.map(OffsetDateTime::from);
    }
    if wanted("item:Size") {
        out.size = Some(item.size);
    }
    if wanted("item:Categories") {
        out.categories = props.categories.clone();
    }
    if wanted("item:Importance") {
        out.importance = Some(importance_name(props.importance).to_owned());
    }
    if wanted("item:HasAttachments") {
        out.has_attachments = Some(props.has_attachments);
    }
    if wanted("item:Flag") {
        out.flag_status = Some(flag_name(props.flag).to_owned());
    }
    if wanted("message:Sender") {
        out.sender = props.sender.as_ref().map(mailbox);
    }
    if wanted("message:From") {
        out.from = props.sender.as_ref().map(mailbox);
    }
    if wanted("message:ToRecipients") {
        out.to_recipients = props.to.iter().map(mailbox).collect();
    }
    if wanted("message:IsRead") {
        out.is_read = Some(props.read);
    }
    if shape.include_mime_content || wanted("item:MimeContent") {
        let mime = item.mime.clone().unwrap_or_else(|| compose_mime(props));
        out.mime_content = Some(STANDARD.encode(mime));
    }
    out
}

/// Returns whether `field` is an item field this front end reads and writes.
pub(crate) fn is_known_field(field: &str) -> bool {
    FIELDS.contains(&field)
}

fn mailbox(mailbox: &Mailbox) -> ews::Mailbox {
    ews::Mailbox {
        name: Some(mailbox.name.clone()).filter(|name| !name.is_empty()),
        email: Some(mailbox.address.clone()),
    }
}

fn store_mailbox(mailbox: &ews::Mailbox) -> Option<Mailbox> {
    Some(Mailbox::new(
        mailbox.name.clone().unwrap_or_default(),
        mailbox.email.clone()?,
    ))
}

/// Returns the wire name of an importance.
pub(crate) fn importance_name(importance: Importance) -> &'static str {
    match importance {
        Importance::Low => "Low",
        Importance::High => "High",
        _ => "Normal",
    }
}

/// Parses an importance's wire name.
pub(crate) fn parse_importance(text: &str) -> Option<Importance> {
    match text.trim() {
        "Low" => Some(Importance::Low),
        "Normal" => Some(Importance::Normal),
        "High" => Some(Importance::High),
        _ => None,
    }
}

/// Returns the wire name of a follow-up flag state.
pub(crate) fn flag_name(flag: FlagStatus) -> &'static str {
    match flag {
        FlagStatus::Flagged => "Flagged",
        FlagStatus::Complete => "Complete",
        _ => "NotFlagged",
    }
}

/// Parses a follow-up flag state's wire name.
pub(crate) fn parse_flag(text: &str) -> Option<FlagStatus> {
    match text.trim() {
        "NotFlagged" => Some(FlagStatus::NotFlagged),
        "Flagged" => Some(FlagStatus::Flagged),
        "Complete" => Some(FlagStatus::Complete),
        _ => None,
    }
}

/// Returns the store properties of an item sent without MimeContent.
pub(crate) fn props_of(item: &ews::Item) -> ItemProps {
    let mut props = ItemProps::default();
    if let Some(class) = &item.item_class {
        props.item_class = class.clone();
    }
    props.subject = item.subject.clone().unwrap_or_default();
    props.body = item.body.as_ref().map(|(content, html)| Body {
        body_type: if *html {
            BodyType::Html
        } else {
            BodyType::Text
        },
        content: content.clone(),
    });
    props.sender = item
        .from
        .as_ref()
        .or(item.sender.as_ref())
        .and_then(store_mailbox);
    props.to = item
        .to_recipients
        .iter()
        .filter_map(store_mailbox)
        .collect();
    props.categories = item.categories.clone();
    props.importance = item
        .importance
        .as_deref()
        .and_then(parse_importance)
        .unwrap_or_default();
    props.flag = item
        .flag_status
        .as_deref()
        .and_then(parse_flag)
        .unwrap_or_default();
    props.read = item.is_read.unwrap_or(false);
    props.received = item.date_time_received.map(Into::into);
    props
}
