//! SyncFolderItems (MS-OXWSSYNC 3.1.4.2) and FindItem (MS-OXWSSRCH 3.1.4.2), read
//! incrementally: the envelope is read up to the list of changes or items, and each
//! change or item is read when the caller asks for it, straight into typed values, so
//! memory holds one change at a time whatever the response size.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::{IndexedPage, Paging, Shape, read_item_ids, typed};
use crate::error::{EwsError, MessageError};
use crate::operation::{EwsOperation, EwsServerOperation, Response, check_body_element, missing};
use crate::soap::{EnvelopeReader, XmlWriter, message_status, write_message};
use crate::types::{FolderRef, Item, ItemId, ServerVersionInfo, Traversal, parse_bool};
use crate::xml::{Element, RawStart, XmlReader};

/// SyncFolderItems (MS-OXWSSYNC 3.1.4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncFolderItems {
    /// ItemShape.
    pub shape: Shape,
    /// SyncFolderId.
    pub folder: FolderRef,
    /// SyncState of the previous page; `None` for a first sync.
    pub sync_state: Option<String>,
    /// Items to leave out (Ignore).
    pub ignore: Vec<ItemId>,
    /// MaxChangesReturned (1 to 512).
    pub max_changes: u32,
}

/// One change of a SyncFolderItems page.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncChange {
    /// A new item (of any item kind).
    Create(Item),
    /// A changed item.
    Update(Item),
    /// A deleted item.
    Delete(ItemId),
    /// Only the read flag changed.
    ReadFlagChange {
        /// The item.
        item_id: ItemId,
        /// The new state.
        is_read: bool,
    },
}

impl SyncChange {
    /// The id of the changed item, when the server sent one.
    pub fn item_id(&self) -> Option<&ItemId> {
        match self {
            SyncChange::Create(i) | SyncChange::Update(i) => i.item_id.as_ref(),
            SyncChange::Delete(id) | SyncChange::ReadFlagChange { item_id: id, .. } => Some(id),
        }
    }

    fn from_element(e: Element) -> Option<Self> {
        match &*e.name {
            "Create" => e
                .children
                .into_iter()
                .next()
                .map(|i| SyncChange::Create(Item::from_owned(i))),
            "Update" => e
                .children
                .into_iter()
                .next()
                .map(|i| SyncChange::Update(Item::from_owned(i))),
            "Delete" => e
                .child("ItemId")
                .and_then(ItemId::from_element)
                .map(SyncChange::Delete),
            "ReadFlagChange" => Some(SyncChange::ReadFlagChange {
                item_id: e.child("ItemId").and_then(ItemId::from_element)?,
                is_read: e.child_text("IsRead").and_then(parse_bool)?,
            }),
            _ => None,
        }
    }

    fn write(&self, w: &mut XmlWriter) {
        match self {
            SyncChange::Create(i) => {
                w.start("t:Create", &[]);
                i.write(w);
                w.end();
            }
            SyncChange::Update(i) => {
                w.start("t:Update", &[]);
                i.write(w);
                w.end();
            }
            SyncChange::Delete(id) => {
                w.start("t:Delete", &[]);
                id.write(w, "t:ItemId");
                w.end();
            }
            SyncChange::ReadFlagChange { item_id, is_read } => {
                w.start("t:ReadFlagChange", &[]);
                item_id.write(w, "t:ItemId");
                w.bool("t:IsRead", *is_read);
                w.end();
            }
        }
    }
}

/// A whole SyncFolderItems page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemSync {
    /// The new SyncState: store it only after applying every change of the page.
    pub sync_state: String,
    /// IncludesLastItemInRange: false means call again with `sync_state`.
    pub includes_last: bool,
    /// Changes in server order.
    pub changes: Vec<SyncChange>,
}

/// How the list readers turn each change or item into a typed value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decode {
    /// Straight from the reader's steps ([`super::typed`]).
    Typed,
    /// Through an [`Element`] tree per change or item: the reference the typed readers
    /// are tested against.
    Tree,
}

/// Reads a list of elements one at a time from a response held in memory.
struct ListReader<'a> {
    reader: XmlReader<'a>,
    /// True while positioned inside the list element.
    open: bool,
    decode: Decode,
}

impl<'a> ListReader<'a> {
    /// The start tag of the next element of the list; after the list ends, checks that
    /// the rest of the document is well-formed.
    fn next_start(&mut self) -> Result<Option<RawStart<'a>>, EwsError> {
        if !self.open {
            return Ok(None);
        }
        match self.reader.next_child_raw()? {
            Some(start) => Ok(Some(start)),
            None => {
                self.open = false;
                drain(&mut self.reader)?;
                Ok(None)
            }
        }
    }

    /// Reads the element `start` as a tree.
    fn complete(&mut self, start: &RawStart<'a>) -> Result<Element, EwsError> {
        let element = start.element()?;
        self.reader.complete(element, start.empty)
    }

    /// The next change of a SyncFolderItems list: `Ok(Some(None))` for a change element
    /// that is skipped.
    fn next_change(&mut self) -> Result<Option<Option<SyncChange>>, EwsError> {
        let Some(start) = self.next_start()? else {
            return Ok(None);
        };
        let change = match self.decode {
            Decode::Typed => typed::read_change(&mut self.reader, &start)?,
            Decode::Tree => SyncChange::from_element(self.complete(&start)?),
        };
        if change.is_none() {
            // A change element this crate does not know is skipped: dropping the page
            // would lose its SyncState and every other change.
            let name = String::from_utf8_lossy(start.local_name());
            tracing::warn!(element = %name, "SyncFolderItems: skipping an unknown change element");
        }
        Ok(Some(change))
    }

    /// The next item of a FindItem list.
    fn next_item(&mut self) -> Result<Option<Item>, EwsError> {
        let Some(start) = self.next_start()? else {
            return Ok(None);
        };
        Ok(Some(match self.decode {
            Decode::Typed => typed::read_item(&mut self.reader, &start)?,
            Decode::Tree => Item::from_owned(self.complete(&start)?),
        }))
    }
}

fn drain(reader: &mut XmlReader<'_>) -> Result<(), EwsError> {
    crate::soap::finish(reader)
}

/// A response message as [`open_single_message`] found it.
enum Opened {
    /// Only the start tag was read; the reader is inside the message.
    Streaming,
    /// The whole message was read (it was empty), and the document after it checked.
    Complete(Element),
}

/// The reader, the header's ServerVersionInfo, and the first message.
type OpenedMessage<'a> = (
    XmlReader<'a>,
    Option<ServerVersionInfo>,
    Result<Opened, MessageError>,
);

/// Opens a response envelope and positions the reader at the first response message.
/// Returns how the message was read, or the error of an Error-class message.
fn open_single_message<'a>(
    input: &'a [u8],
    operation: &'static str,
    response_element: &str,
) -> Result<OpenedMessage<'a>, EwsError> {
    let env = EnvelopeReader::open(input, operation)?;
    let server_version = env.server_version();
    if !env.body.is(response_element) {
        let (body, _) = env.body_tree()?;
        check_body_element(&body, operation, response_element)?;
        return Err(missing(operation, "the operation's response element"));
    }
    let mut reader = env.reader;
    if env.body_empty {
        return Err(missing(operation, "ResponseMessages"));
    }
    let (rm, rm_empty) = reader
        .next_child()?
        .ok_or_else(|| missing(operation, "ResponseMessages"))?;
    if !rm.is("ResponseMessages") || rm_empty {
        return Err(missing(operation, "a response message"));
    }
    let (msg, msg_empty) = reader
        .next_child()?
        .ok_or_else(|| missing(operation, "a response message"))?;
    let class = msg
        .attr("ResponseClass")
        .and_then(crate::error::ResponseClass::parse);
    if class == Some(crate::error::ResponseClass::Error) || msg_empty {
        let full = reader.complete(msg, msg_empty)?;
        drain(&mut reader)?;
        return match message_status(&full, 0, operation)? {
            Err(e) => Ok((reader, server_version, Err(e))),
            Ok(_) => Ok((reader, server_version, Ok(Opened::Complete(full)))),
        };
    }
    if class.is_none() {
        return Err(EwsError::Unexpected {
            operation,
            expected: "a ResponseClass of Success, Warning or Error",
            found: format!("{:?}", msg.attr("ResponseClass")),
        });
    }
    Ok((reader, server_version, Ok(Opened::Streaming)))
}

/// An incremental reader of a SyncFolderItems response: the page's SyncState and
/// IncludesLastItemInRange come first (the schema puts them before Changes), then the
/// changes one at a time through [`Iterator`].
pub struct SyncItemsReader<'a> {
    /// ServerVersionInfo.
    pub server_version: Option<ServerVersionInfo>,
    /// The new SyncState.
    pub sync_state: String,
    /// IncludesLastItemInRange.
    pub includes_last: bool,
    list: ListReader<'a>,
}

impl<'a> SyncItemsReader<'a> {
    /// Opens a response. An Error-class message (ErrorInvalidSyncStateData, ErrorServerBusy,
    /// ...) is returned as [`EwsError::Message`].
    ///
    /// # Errors
    /// Any decoding error, a fault, or the message's error.
    pub fn new(input: &'a [u8]) -> Result<Self, EwsError> {
        Self::open(input, Decode::Typed)
    }

    /// As [`SyncItemsReader::new`], but each change is read through an element tree:
    /// the slower reference implementation that tests compare the typed reader with.
    ///
    /// # Errors
    /// As [`SyncItemsReader::new`].
    #[doc(hidden)]
    pub fn new_reference(input: &'a [u8]) -> Result<Self, EwsError> {
        Self::open(input, Decode::Tree)
    }

    fn open(input: &'a [u8], decode: Decode) -> Result<Self, EwsError> {
        const OP: &str = "SyncFolderItems";
        let (mut reader, server_version, msg) =
            open_single_message(input, OP, "SyncFolderItemsResponse")?;
        let msg = msg.map_err(|e| EwsError::Message {
            operation: OP,
            error: Box::new(e),
        })?;
        let mut sync_state = String::new();
        let mut includes_last = true;
        let mut open = false;
        match msg {
            Opened::Complete(full) => {
                sync_state = full.child_text("SyncState").unwrap_or_default().to_owned();
                includes_last = full
                    .child_text("IncludesLastItemInRange")
                    .and_then(parse_bool)
                    .unwrap_or(true);
            }
            Opened::Streaming => loop {
                let Some((el, empty)) = reader.next_child()? else {
                    drain(&mut reader)?;
                    break;
                };
                if el.is("Changes") && !empty {
                    open = true;
                    break;
                }
                let el = reader.complete(el, empty)?;
                if el.is("SyncState") {
                    sync_state = el.text.trim().to_owned();
                } else if el.is("IncludesLastItemInRange") {
                    includes_last = parse_bool(&el.text).unwrap_or(true);
                }
            },
        }
        Ok(Self {
            server_version,
            sync_state,
            includes_last,
            list: ListReader {
                reader,
                open,
                decode,
            },
        })
    }

    /// Reads the remaining changes into an [`ItemSync`].
    ///
    /// # Errors
    /// As the iterator.
    pub fn collect_page(mut self) -> Result<ItemSync, EwsError> {
        let mut changes = Vec::new();
        for c in &mut self {
            changes.push(c?);
        }
        Ok(ItemSync {
            sync_state: self.sync_state,
            includes_last: self.includes_last,
            changes,
        })
    }
}

impl Iterator for SyncItemsReader<'_> {
    type Item = Result<SyncChange, EwsError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.list.next_change() {
                Ok(Some(Some(change))) => return Some(Ok(change)),
                Ok(Some(None)) => {}
                Ok(None) => return None,
                Err(e) => {
                    self.list.open = false;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl EwsOperation for SyncFolderItems {
    type Response = Response<ItemSync>;
    const NAME: &'static str = "SyncFolderItems";

    fn write_body(&self, w: &mut XmlWriter) -> Result<(), EwsError> {
        if !(1..=512).contains(&self.max_changes) {
            return Err(EwsError::InvalidRequest {
                operation: Self::NAME,
                reason: format!("MaxChangesReturned {} is outside 1..=512", self.max_changes),
            });
        }
        w.start_root("m:SyncFolderItems", &[]);
        self.shape.write(w, "m:ItemShape", true);
        w.start("m:SyncFolderId", &[]);
        self.folder.write(w);
        w.end();
        if let Some(s) = self.sync_state.as_deref().filter(|s| !s.is_empty()) {
            w.text("m:SyncState", s);
        }
        if !self.ignore.is_empty() {
            w.start("m:Ignore", &[]);
            for id in &self.ignore {
                id.write(w, "t:ItemId");
            }
            w.end();
        }
        w.text("m:MaxChangesReturned", &self.max_changes.to_string());
        w.end();
        Ok(())
    }

    fn parse_response(body: &[u8]) -> Result<Self::Response, EwsError> {
        match SyncItemsReader::new(body) {
            Ok(reader) => {
                let server_version = reader.server_version.clone();
                Ok(Response {
                    server_version,
                    messages: vec![Ok(reader.collect_page()?)],
                })
            }
            Err(EwsError::Message { error, .. }) => Ok(Response {
                // Only the header is read again: the message was an error, so it is short.
                server_version: EnvelopeReader::open(body, Self::NAME)
                    .ok()
                    .and_then(|e| e.server_version()),
                messages: vec![Err(*error)],
            }),
            Err(e) => Err(e),
        }
    }
}

impl EwsServerOperation for SyncFolderItems {
    fn from_request(body: &Element) -> Result<Self, EwsError> {
        Ok(Self {
            shape: Shape::read(body.child("ItemShape"), Self::NAME)?,
            folder: body
                .child("SyncFolderId")
                .and_then(|f| FolderRef::all_in(f).into_iter().next())
                .ok_or_else(|| missing(Self::NAME, "a SyncFolderId"))?,
            sync_state: body
                .child_text("SyncState")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            ignore: read_item_ids(body.child("Ignore")),
            max_changes: body
                .child_text("MaxChangesReturned")
                .and_then(|m| m.parse().ok())
                .ok_or_else(|| missing(Self::NAME, "a numeric MaxChangesReturned"))?,
        })
    }

    fn write_response(response: &Self::Response, w: &mut XmlWriter) -> Result<(), EwsError> {
        w.start_root("m:SyncFolderItemsResponse", &[]);
        w.start("m:ResponseMessages", &[]);
        for m in &response.messages {
            write_message(w, "m:SyncFolderItemsResponseMessage", m, |w, page| {
                w.text("m:SyncState", &page.sync_state);
                w.bool("m:IncludesLastItemInRange", page.includes_last);
                w.start("m:Changes", &[]);
                for c in &page.changes {
                    c.write(w);
                }
                w.end();
                Ok(())
            })?;
        }
        w.end();
        w.end();
        Ok(())
    }
}

/// FindItem (MS-OXWSSRCH 3.1.4.2), paged with IndexedPageItemView.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindItem {
    /// Shallow, SoftDeleted or Associated.
    pub traversal: Traversal,
    /// ItemShape.
    pub shape: Shape,
    /// IndexedPageItemView.
    pub page: Option<IndexedPage>,
    /// ParentFolderIds.
    pub parents: Vec<FolderRef>,
}

/// One FindItem page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindItemPage {
    /// Paging attributes: use [`Paging::next_offset`] for the next request.
    pub paging: Paging,
    /// Items of this page.
    pub items: Vec<Item>,
}

/// An incremental reader of a FindItem response: the paging attributes first, then the
/// items one at a time through [`Iterator`].
pub struct FindItemReader<'a> {
    /// ServerVersionInfo.
    pub server_version: Option<ServerVersionInfo>,
    /// Paging attributes of RootFolder.
    pub paging: Paging,
    list: ListReader<'a>,
}

impl<'a> FindItemReader<'a> {
    /// Opens a response.
    ///
    /// # Errors
    /// Any decoding error, a fault, or the message's error as [`EwsError::Message`].
    pub fn new(input: &'a [u8]) -> Result<Self, EwsError> {
        Self::open(input, Decode::Typed)
    }

    /// As [`FindItemReader::new`], but each item is read through an element tree: the
    /// slower reference implementation that tests compare the typed reader with.
    ///
    /// # Errors
    /// As [`FindItemReader::new`].
    #[doc(hidden)]
    pub fn new_reference(input: &'a [u8]) -> Result<Self, EwsError> {
        Self::open(input, Decode::Tree)
    }

    fn open(input: &'a [u8], decode: Decode) -> Result<Self, EwsError> {
        const OP: &str = "FindItem";
        let (mut reader, server_version, msg) = open_single_message(input, OP, "FindItemResponse")?;
        let msg = msg.map_err(|e| EwsError::Message {
            operation: OP,
            error: Box::new(e),
        })?;
        if let Opened::Complete(_) = msg {
            return Err(missing(OP, "a RootFolder"));
        }
        loop {
            let (el, empty) = reader
                .next_child()?
                .ok_or_else(|| missing(OP, "a RootFolder"))?;
            if !el.is("RootFolder") {
                reader.complete(el, empty)?;
                continue;
            }
            let paging = Paging::read(&el);
            let mut list = ListReader {
                reader,
                open: false,
                decode,
            };
            if !empty {
                // Items, or Groups (some servers send an empty Groups beside Items).
                while let Some((child, child_empty)) = list.reader.next_child()? {
                    if child.is("Items") && !child_empty {
                        list.open = true;
                        break;
                    }
                    list.reader.complete(child, child_empty)?;
                }
            }
            if !list.open {
                drain(&mut list.reader)?;
            }
            return Ok(Self {
                server_version,
                paging,
                list,
            });
        }
    }

    /// Reads the remaining items into a [`FindItemPage`].
    ///
    /// # Errors
    /// As the iterator.
    pub fn collect_page(mut self) -> Result<FindItemPage, EwsError> {
        let mut items = Vec::new();
        for i in &mut self {
            items.push(i?);
        }
        Ok(FindItemPage {
            paging: self.paging,
            items,
        })
    }
}

impl Iterator for FindItemReader<'_> {
    type Item = Result<Item, EwsError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.list.next_item() {
            Ok(Some(item)) => Some(Ok(item)),
            Ok(None) => None,
            Err(e) => {
                self.list.open = false;
                Some(Err(e))
            }
        }
    }
}

impl EwsOperation for FindItem {
    type Response = Response<FindItemPage>;
    const NAME: &'static str = "FindItem";

    fn write_body(&self, w: &mut XmlWriter) -> Result<(), EwsError> {
        if self.parents.is_empty() {
            return Err(EwsError::InvalidRequest {
                operation: Self::NAME,
                reason: "no parent folder".into(),
            });
        }
        w.start_root("m:FindItem", &[("Traversal", self.traversal.as_str())]);
        self.shape.write(w, "m:ItemShape", true);
        if let Some(p) = &self.page {
            p.write(w, "m:IndexedPageItemView");
        }
        w.start("m:ParentFolderIds", &[]);
        for p in &self.parents {
            p.write(w);
        }
        w.end();
        w.end();
        Ok(())
    }

    fn parse_response(body: &[u8]) -> Result<Self::Response, EwsError> {
        match FindItemReader::new(body) {
            Ok(reader) => {
                let server_version = reader.server_version.clone();
                Ok(Response {
                    server_version,
                    messages: vec![Ok(reader.collect_page()?)],
                })
            }
            Err(EwsError::Message { error, .. }) => Ok(Response {
                // Only the header is read again: the message was an error, so it is short.
                server_version: EnvelopeReader::open(body, Self::NAME)
                    .ok()
                    .and_then(|e| e.server_version()),
                messages: vec![Err(*error)],
            }),
            Err(e) => Err(e),
        }
    }
}

impl EwsServerOperation for FindItem {
    fn from_request(body: &Element) -> Result<Self, EwsError> {
        Ok(Self {
            traversal: body
                .attr("Traversal")
                .and_then(Traversal::parse)
                .unwrap_or(Traversal::Shallow),
            shape: Shape::read(body.child("ItemShape"), Self::NAME)?,
            page: body
                .child("IndexedPageItemView")
                .and_then(IndexedPage::read),
            parents: body
                .child("ParentFolderIds")
                .map(FolderRef::all_in)
                .unwrap_or_default(),
        })
    }

    fn write_response(response: &Self::Response, w: &mut XmlWriter) -> Result<(), EwsError> {
        w.start_root("m:FindItemResponse", &[]);
        w.start("m:ResponseMessages", &[]);
        for m in &response.messages {
            write_message(w, "m:FindItemResponseMessage", m, |w, page| {
                let attrs = page.paging.attrs();
                let attrs: Vec<(&str, &str)> =
                    attrs.iter().map(|(k, v)| (*k, v.as_str())).collect();
                w.start("m:RootFolder", &attrs);
                w.start("t:Items", &[]);
                for i in &page.items {
                    i.write(w);
                }
                w.end();
                w.end();
                Ok(())
            })?;
        }
        w.end();
        w.end();
        Ok(())
    }
}
