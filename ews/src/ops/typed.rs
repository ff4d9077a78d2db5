//! Typed readers that fill [`Item`] and [`SyncChange`] straight from the XML reader's
//! steps, without building an [`Element`](crate::xml::Element) per tag.
//!
//! They give the same values as [`Item::from_owned`] and the tree-based change reader
//! on the same input (a differential test checks this), and reject the same documents,
//! because [`XmlReader`] checks every tag, skipped or not.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::borrow::Cow;

use super::sync::SyncChange;
use crate::error::EwsError;
use crate::types::{FolderId, Item, ItemId, ItemKind, Mailbox, parse_bool, parse_datetime};
use crate::xml::{RawStart, RawStep, XmlReader};

/// Reads a change element (`Create`, `Update`, `Delete`, `ReadFlagChange`) whose start tag
/// was just read. `None` for a change this crate does not know or one without the
/// children it needs; the caller skips it.
pub(crate) fn read_change<'a>(
    reader: &mut XmlReader<'a>,
    start: &RawStart<'a>,
) -> Result<Option<SyncChange>, EwsError> {
    match start.local_name() {
        b"Create" => read_first_item(reader, start, SyncChange::Create),
        b"Update" => read_first_item(reader, start, SyncChange::Update),
        b"Delete" => {
            let mut item_id = None;
            read_children(reader, start, |reader, child| {
                if item_id.is_none() && child.is("ItemId") {
                    item_id = Some(read_item_id(child)?);
                    return reader.skip_raw(child);
                }
                reader.skip_raw(child)
            })?;
            Ok(item_id.flatten().map(SyncChange::Delete))
        }
        b"ReadFlagChange" => {
            let mut item_id = None;
            let mut is_read = None;
            read_children(reader, start, |reader, child| {
                if item_id.is_none() && child.is("ItemId") {
                    item_id = Some(read_item_id(child)?);
                    return reader.skip_raw(child);
                }
                if is_read.is_none() && child.is("IsRead") {
                    is_read = Some(parse_bool(&reader.read_text(child)?));
                    return Ok(());
                }
                reader.skip_raw(child)
            })?;
            Ok(match (item_id.flatten(), is_read.flatten()) {
                (Some(item_id), Some(is_read)) => {
                    Some(SyncChange::ReadFlagChange { item_id, is_read })
                }
                _ => None,
            })
        }
        _ => {
            reader.skip_raw(start)?;
            Ok(None)
        }
    }
}

/// Reads every child element of an `Items` list whose start tag was just read as an item.
///
/// # Errors
/// [`EwsError::MalformedXml`] for input that is not well-formed.
pub(crate) fn read_items<'a>(
    reader: &mut XmlReader<'a>,
    start: &RawStart<'a>,
) -> Result<Vec<Item>, EwsError> {
    let mut items = Vec::new();
    read_children(reader, start, |reader, child| {
        items.push(read_item(reader, child)?);
        Ok(())
    })?;
    Ok(items)
}

/// Reads the first child element of a `Create` or `Update` as an item, skipping any
/// others.
fn read_first_item<'a>(
    reader: &mut XmlReader<'a>,
    start: &RawStart<'a>,
    wrap: fn(Item) -> SyncChange,
) -> Result<Option<SyncChange>, EwsError> {
    // The change is built first and its item filled in place, because an item is a large
    // struct and each move of it costs a copy.
    let mut change = None;
    read_children(reader, start, |reader, child| {
        if change.is_none() {
            let change = change.insert(wrap(Item::new(item_kind(child))));
            if let SyncChange::Create(item) | SyncChange::Update(item) = change {
                fill_item(reader, child, item)?;
            }
            return Ok(());
        }
        reader.skip_raw(child)
    })?;
    Ok(change)
}

/// Reads an item element of any kind whose start tag was just read, up to and including
/// its end tag. Unknown children are checked and skipped.
///
/// # Errors
/// [`EwsError::MalformedXml`] for input that is not well-formed.
pub(crate) fn read_item<'a>(
    reader: &mut XmlReader<'a>,
    start: &RawStart<'a>,
) -> Result<Item, EwsError> {
    let mut item = Item::new(item_kind(start));
    fill_item(reader, start, &mut item)?;
    Ok(item)
}

fn item_kind(start: &RawStart<'_>) -> ItemKind {
    ItemKind::from_name(start.local_name_str().unwrap_or_default())
}

/// Reads the children of the item element `start` into `item`.
fn fill_item<'a>(
    reader: &mut XmlReader<'a>,
    start: &RawStart<'a>,
    item: &mut Item,
) -> Result<(), EwsError> {
    read_children(reader, start, |reader, child| {
        read_item_field(reader, child, item)
    })
}

/// Reads one child of an item into its field; later children of the same name replace
/// earlier ones, as in [`Item::from_owned`].
fn read_item_field<'a>(
    reader: &mut XmlReader<'a>,
    child: &RawStart<'a>,
    item: &mut Item,
) -> Result<(), EwsError> {
    if !child.ns.is_ews() {
        return reader.skip_raw(child);
    }
    match child.local_name() {
        b"MimeContent" => item.mime_content = Some(trimmed(reader.read_text(child)?)),
        b"ItemId" => {
            item.item_id = read_item_id(child)?;
            reader.skip_raw(child)?;
        }
        b"ParentFolderId" => {
            item.parent_folder_id = read_item_id(child)?.map(|i| FolderId {
                id: i.id,
                change_key: i.change_key,
            });
            reader.skip_raw(child)?;
        }
        b"ItemClass" => item.item_class = Some(trimmed(reader.read_text(child)?)),
        b"Subject" => item.subject = Some(reader.read_text(child)?.into_owned()),
        b"Body" => {
            let mut html = None;
            child.for_each_attr(|key, value| {
                if html.is_none() && key == "BodyType" {
                    html = Some(value == "HTML");
                }
            })?;
            let text = reader.read_text(child)?.into_owned();
            item.body = Some((text, html.unwrap_or(false)));
        }
        b"DateTimeReceived" => item.date_time_received = parse_datetime(&reader.read_text(child)?),
        b"Size" => item.size = reader.read_text(child)?.trim().parse().ok(),
        b"Categories" => {
            let mut categories = Vec::new();
            read_children(reader, child, |reader, string| {
                categories.push(reader.read_text(string)?.into_owned());
                Ok(())
            })?;
            item.categories = categories;
        }
        b"Importance" => item.importance = Some(trimmed(reader.read_text(child)?)),
        b"DateTimeSent" => item.date_time_sent = parse_datetime(&reader.read_text(child)?),
        b"HasAttachments" => item.has_attachments = parse_bool(&reader.read_text(child)?),
        b"LastModifiedTime" => item.last_modified_time = parse_datetime(&reader.read_text(child)?),
        b"Flag" => {
            let mut status = None;
            read_children(reader, child, |reader, c| {
                if status.is_none() && c.is("FlagStatus") {
                    status = Some(trimmed(reader.read_text(c)?));
                    return Ok(());
                }
                reader.skip_raw(c)
            })?;
            item.flag_status = status;
        }
        b"Sender" => item.sender = Some(read_mailbox_holder(reader, child)?),
        b"ToRecipients" => {
            let mut recipients = Vec::new();
            read_children(reader, child, |reader, c| {
                recipients.push(read_mailbox_holder(reader, c)?);
                Ok(())
            })?;
            item.to_recipients = recipients;
        }
        b"InternetMessageId" => item.internet_message_id = Some(trimmed(reader.read_text(child)?)),
        b"IsRead" => item.is_read = parse_bool(&reader.read_text(child)?),
        b"From" => item.from = Some(read_mailbox_holder(reader, child)?),
        _ => reader.skip_raw(child)?,
    }
    Ok(())
}

/// Reads an element that holds a `Mailbox` (Sender, From, a recipient), or that is one:
/// the first `Mailbox` child wins, otherwise its own `Name` and `EmailAddress`.
fn read_mailbox_holder<'a>(
    reader: &mut XmlReader<'a>,
    start: &RawStart<'a>,
) -> Result<Mailbox, EwsError> {
    // The holder's own fields are read first. The first `Mailbox` child's fields replace
    // them.
    let mut mailbox = Mailbox::default();
    let mut seen = (false, false);
    let mut from_child = false;
    read_children(reader, start, |reader, child| {
        if from_child {
            return reader.skip_raw(child);
        }
        if child.is("Mailbox") {
            from_child = true;
            mailbox = Mailbox::default();
            let mut seen = (false, false);
            return read_children(reader, child, |reader, field| {
                read_mailbox_field(reader, field, &mut mailbox, &mut seen)
            });
        }
        read_mailbox_field(reader, child, &mut mailbox, &mut seen)
    })?;
    Ok(mailbox)
}

/// Reads a `Name` or `EmailAddress` child into `mailbox` when it is the first of its
/// name (`seen` records which were found), skipping anything else.
fn read_mailbox_field<'a>(
    reader: &mut XmlReader<'a>,
    child: &RawStart<'a>,
    mailbox: &mut Mailbox,
    seen: &mut (bool, bool),
) -> Result<(), EwsError> {
    if !seen.0 && child.is("Name") {
        seen.0 = true;
        mailbox.name = Some(trimmed(reader.read_text(child)?));
        return Ok(());
    }
    if !seen.1 && child.is("EmailAddress") {
        seen.1 = true;
        mailbox.email = Some(trimmed(reader.read_text(child)?));
        return Ok(());
    }
    reader.skip_raw(child)
}

/// Reads the `Id` and `ChangeKey` attributes of an ItemId-shaped start tag; `None` when
/// `Id` is missing. Later duplicates cannot occur: the reader rejects them.
fn read_item_id(start: &RawStart<'_>) -> Result<Option<ItemId>, EwsError> {
    let mut id = None;
    let mut change_key = None;
    start.for_each_attr(|key, value| match key {
        "Id" => id = Some(value.into_owned()),
        "ChangeKey" => change_key = Some(value.into_owned()),
        _ => {}
    })?;
    Ok(id.map(|id| ItemId { id, change_key }))
}

/// Calls `f` for every child element of `start` (whose start tag was just read), skipping
/// text, up to and including the end tag. `f` must consume the child it is given.
fn read_children<'a>(
    reader: &mut XmlReader<'a>,
    start: &RawStart<'a>,
    mut f: impl FnMut(&mut XmlReader<'a>, &RawStart<'a>) -> Result<(), EwsError>,
) -> Result<(), EwsError> {
    if start.empty {
        return Ok(());
    }
    loop {
        match reader.next_raw()? {
            RawStep::Start(child) => f(reader, &child)?,
            RawStep::End => return Ok(()),
            RawStep::Text(_) => {}
            RawStep::Eof => return Err(reader.cut_short(start)),
        }
    }
}

/// Returns the text with surrounding whitespace removed. An owned text without such
/// whitespace (one that had a reference, as in `&lt;id@host&gt;`) is moved, not copied.
fn trimmed(text: Cow<'_, str>) -> String {
    match text {
        Cow::Owned(owned) if owned.trim().len() == owned.len() => owned,
        text => text.trim().to_owned(),
    }
}
