//! Item operations (MS-OXWSCORE): GetItem, CreateItem, UpdateItem, DeleteItem, MoveItem,
//! CopyItem, SendItem (MS-OXWSMSG), and ConvertId (MS-OXWSCVTID).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::{Shape, read_item_ids, req_attr, typed, write_item_ids};
use crate::error::EwsError;
use crate::operation::{EwsOperation, EwsServerOperation, Response, missing, parse_messages};
use crate::soap::{EnvelopeReader, XmlWriter, finish, message_status, write_message};
use crate::types::{
    ConflictResolution, DeleteType, FolderRef, IdFormat, Item, ItemId, MessageDisposition,
    PropertyPath, parse_bool,
};
use crate::xml::Element;

fn items_of(msg: &Element) -> Vec<Item> {
    msg.child("Items")
        .map(|i| i.children.iter().map(Item::from_element).collect())
        .unwrap_or_default()
}

fn write_items_message(w: &mut XmlWriter, items: &[Item]) {
    w.start("m:Items", &[]);
    for i in items {
        i.write(w);
    }
    w.end();
}

fn write_items_response(
    w: &mut XmlWriter,
    root: &'static str,
    message: &'static str,
    r: &Response<Vec<Item>>,
) -> Result<(), EwsError> {
    w.start_root(root, &[]);
    w.start("m:ResponseMessages", &[]);
    for m in &r.messages {
        write_message(w, message, m, |w, items| {
            write_items_message(w, items);
            Ok(())
        })?;
    }
    w.end();
    w.end();
    Ok(())
}

/// GetItem (MS-OXWSCORE 3.1.4.4), batched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetItem {
    /// ItemShape (IncludeMimeContent, AdditionalProperties).
    pub shape: Shape,
    /// Items to read; the response has one message per id, in this order.
    pub item_ids: Vec<ItemId>,
}

impl EwsOperation for GetItem {
    type Response = Response<Vec<Item>>;
    const NAME: &'static str = "GetItem";

    fn write_body(&self, w: &mut XmlWriter) -> Result<(), EwsError> {
        w.start_root("m:GetItem", &[]);
        self.shape.write(w, "m:ItemShape", true);
        write_item_ids(w, "m:ItemIds", &self.item_ids, Self::NAME)?;
        w.end();
        Ok(())
    }

    fn parse_response(body: &[u8]) -> Result<Self::Response, EwsError> {
        parse_item_messages(body, Self::NAME, "GetItemResponse")
    }
}

impl GetItem {
    /// Parses a response as [`EwsOperation::parse_response`] does, but reads each item
    /// through an element tree: the slower reference implementation that tests compare
    /// the typed reader with.
    ///
    /// # Errors
    /// As [`EwsOperation::parse_response`].
    #[doc(hidden)]
    pub fn parse_response_reference(body: &[u8]) -> Result<Response<Vec<Item>>, EwsError> {
        parse_messages(body, Self::NAME, "GetItemResponse", |m| Ok(items_of(m)))
    }
}

/// Parses a response whose messages carry an `Items` list, reading the items with the
/// typed reader and the rest of each message as a tree. Gives what
/// `parse_messages(.., items_of)` gives on the same input.
fn parse_item_messages(
    input: &[u8],
    operation: &'static str,
    response_element: &str,
) -> Result<Response<Vec<Item>>, EwsError> {
    let env = EnvelopeReader::open(input, operation)?;
    if !env.body.is(response_element) || env.body_empty {
        // Another response element or an empty one: the tree path reports it.
        return parse_messages(input, operation, response_element, |m| Ok(items_of(m)));
    }
    let server_version = env.server_version();
    let mut reader = env.reader;
    let mut messages = Vec::new();
    // The tree path checks the whole document before any message, so a message without
    // a valid ResponseClass is reported only once the rest has been read.
    let mut status_error = None;
    let mut seen_list = false;
    while let Some(start) = reader.next_child_raw()? {
        if seen_list || !start.is("ResponseMessages") {
            reader.skip_raw(&start)?;
            continue;
        }
        seen_list = true;
        if start.empty {
            continue;
        }
        let mut index = 0;
        while let Some(message_start) = reader.next_child_raw()? {
            let mut message = message_start.element()?;
            let mut items = None;
            if !message_start.empty {
                while let Some(child) = reader.next_child_raw()? {
                    if items.is_none() && child.is("Items") {
                        items = Some(typed::read_items(&mut reader, &child)?);
                        continue;
                    }
                    let element = child.element()?;
                    message
                        .children
                        .push(reader.complete(element, child.empty)?);
                }
            }
            if status_error.is_none() {
                match message_status(&message, index, operation) {
                    Ok(Ok(_)) => messages.push(Ok(items.unwrap_or_default())),
                    Ok(Err(e)) => messages.push(Err(e)),
                    Err(e) => status_error = Some(e),
                }
            }
            index += 1;
        }
    }
    finish(&mut reader)?;
    if let Some(e) = status_error {
        return Err(e);
    }
    Ok(Response {
        server_version,
        messages,
    })
}

impl EwsServerOperation for GetItem {
    fn from_request(body: &Element) -> Result<Self, EwsError> {
        Ok(Self {
            shape: Shape::read(body.child("ItemShape"), Self::NAME)?,
            item_ids: read_item_ids(body.child("ItemIds")),
        })
    }

    fn write_response(response: &Self::Response, w: &mut XmlWriter) -> Result<(), EwsError> {
        write_items_response(w, "m:GetItemResponse", "m:GetItemResponseMessage", response)
    }
}

/// CreateItem (MS-OXWSCORE 3.1.4.2): MIME upload into a folder, or sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateItem {
    /// MessageDisposition (SaveOnly to store, SendAndSaveCopy to send).
    pub disposition: Option<MessageDisposition>,
    /// SavedItemFolderId.
    pub saved_folder: Option<FolderRef>,
    /// Items (usually a Message with MimeContent and IsRead).
    pub items: Vec<Item>,
}

impl EwsOperation for CreateItem {
    type Response = Response<Vec<Item>>;
    const NAME: &'static str = "CreateItem";

    fn write_body(&self, w: &mut XmlWriter) -> Result<(), EwsError> {
        if self.items.is_empty() {
            return Err(EwsError::InvalidRequest {
                operation: Self::NAME,
                reason: "no items to create".into(),
            });
        }
        match self.disposition {
            Some(d) => w.start_root("m:CreateItem", &[("MessageDisposition", d.as_str())]),
            None => w.start_root("m:CreateItem", &[]),
        }
        if let Some(f) = &self.saved_folder {
            w.start("m:SavedItemFolderId", &[]);
            f.write(w);
            w.end();
        }
        write_items_message(w, &self.items);
        w.end();
        Ok(())
    }

    fn parse_response(body: &[u8]) -> Result<Self::Response, EwsError> {
        parse_messages(body, Self::NAME, "CreateItemResponse", |m| Ok(items_of(m)))
    }
}

impl EwsServerOperation for CreateItem {
    fn from_request(body: &Element) -> Result<Self, EwsError> {
        Ok(Self {
            disposition: body
                .attr("MessageDisposition")
                .and_then(MessageDisposition::parse),
            saved_folder: body
                .child("SavedItemFolderId")
                .and_then(|f| FolderRef::all_in(f).into_iter().next()),
            items: items_of(body),
        })
    }

    fn write_response(response: &Self::Response, w: &mut XmlWriter) -> Result<(), EwsError> {
        write_items_response(
            w,
            "m:CreateItemResponse",
            "m:CreateItemResponseMessage",
            response,
        )
    }
}

/// One update of an item (MS-OXWSCORE 2.2.4.x SetItemField / DeleteItemField).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ItemUpdate {
    /// message:IsRead.
    SetIsRead(bool),
    /// item:Flag with this FlagStatus (Exchange 2013 and later).
    SetFlagStatus(String),
    /// item:Categories.
    SetCategories(Vec<String>),
    /// item:Importance (Low, Normal, High).
    SetImportance(String),
    /// DeleteItemField of this path.
    Delete(PropertyPath),
}

impl ItemUpdate {
    fn write(&self, w: &mut XmlWriter) {
        let (uri, item) = match self {
            ItemUpdate::Delete(path) => {
                w.start("t:DeleteItemField", &[]);
                path.write(w);
                w.end();
                return;
            }
            ItemUpdate::SetIsRead(v) => {
                let mut item = Item::new(crate::types::ItemKind::Message);
                item.is_read = Some(*v);
                ("message:IsRead", item)
            }
            ItemUpdate::SetFlagStatus(s) => {
                let mut item = Item::new(crate::types::ItemKind::Message);
                item.flag_status = Some(s.clone());
                ("item:Flag", item)
            }
            ItemUpdate::SetCategories(c) => {
                let mut item = Item::new(crate::types::ItemKind::Message);
                item.categories = c.clone();
                ("item:Categories", item)
            }
            ItemUpdate::SetImportance(s) => {
                let mut item = Item::new(crate::types::ItemKind::Message);
                item.importance = Some(s.clone());
                ("item:Importance", item)
            }
        };
        w.start("t:SetItemField", &[]);
        w.empty("t:FieldURI", &[("FieldURI", uri)]);
        item.write(w);
        w.end();
    }

    fn read(e: &Element) -> Option<Self> {
        let path = e.children.iter().find_map(PropertyPath::from_element)?;
        if e.name == "DeleteItemField" {
            return Some(ItemUpdate::Delete(path));
        }
        let PropertyPath::Field(uri) = path else {
            return None;
        };
        let item = e
            .children
            .iter()
            .find(|c| !c.name.ends_with("FieldURI"))
            .map(Item::from_element)?;
        match uri.as_str() {
            "message:IsRead" => item.is_read.map(ItemUpdate::SetIsRead),
            "item:Flag" => item.flag_status.map(ItemUpdate::SetFlagStatus),
            "item:Categories" => Some(ItemUpdate::SetCategories(item.categories)),
            "item:Importance" => item.importance.map(ItemUpdate::SetImportance),
            _ => None,
        }
    }
}

/// UpdateItem (MS-OXWSCORE 3.1.4.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateItem {
    /// ConflictResolution.
    pub conflict_resolution: ConflictResolution,
    /// MessageDisposition (required by the server for messages; SaveOnly by default).
    pub disposition: MessageDisposition,
    /// (item with its ChangeKey, updates) pairs.
    pub changes: Vec<(ItemId, Vec<ItemUpdate>)>,
}

/// The result of one item change: the new ItemId and ChangeKey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateResult {
    /// The item with its new ChangeKey, when the server returned it.
    pub item_id: Option<ItemId>,
    /// ConflictResults/Count.
    pub conflict_count: u32,
}

impl EwsOperation for UpdateItem {
    type Response = Response<UpdateResult>;
    const NAME: &'static str = "UpdateItem";

    fn write_body(&self, w: &mut XmlWriter) -> Result<(), EwsError> {
        if self.changes.is_empty() {
            return Err(EwsError::InvalidRequest {
                operation: Self::NAME,
                reason: "no item changes".into(),
            });
        }
        w.start_root(
            "m:UpdateItem",
            &[
                ("MessageDisposition", self.disposition.as_str()),
                ("ConflictResolution", self.conflict_resolution.as_str()),
            ],
        );
        w.start("m:ItemChanges", &[]);
        for (id, updates) in &self.changes {
            if updates.is_empty() {
                return Err(EwsError::InvalidRequest {
                    operation: Self::NAME,
                    reason: format!("no updates for item {}", id.id),
                });
            }
            w.start("t:ItemChange", &[]);
            id.write(w, "t:ItemId");
            w.start("t:Updates", &[]);
            for u in updates {
                u.write(w);
            }
            w.end();
            w.end();
        }
        w.end();
        w.end();
        Ok(())
    }

    fn parse_response(body: &[u8]) -> Result<Self::Response, EwsError> {
        parse_messages(body, Self::NAME, "UpdateItemResponse", |m| {
            Ok(UpdateResult {
                item_id: items_of(m).into_iter().next().and_then(|i| i.item_id),
                conflict_count: m
                    .child("ConflictResults")
                    .and_then(|c| c.child_text("Count"))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0),
            })
        })
    }
}

impl EwsServerOperation for UpdateItem {
    fn from_request(body: &Element) -> Result<Self, EwsError> {
        let mut changes = Vec::new();
        for change in body
            .child("ItemChanges")
            .map(|c| c.children.as_slice())
            .unwrap_or_default()
        {
            let id = change
                .child("ItemId")
                .and_then(ItemId::from_element)
                .ok_or_else(|| missing(Self::NAME, "an ItemId"))?;
            let updates = change
                .child("Updates")
                .map(|u| u.children.iter().filter_map(ItemUpdate::read).collect())
                .unwrap_or_default();
            changes.push((id, updates));
        }
        Ok(Self {
            conflict_resolution: body
                .attr("ConflictResolution")
                .and_then(ConflictResolution::parse)
                .unwrap_or(ConflictResolution::AutoResolve),
            disposition: body
                .attr("MessageDisposition")
                .and_then(MessageDisposition::parse)
                .unwrap_or(MessageDisposition::SaveOnly),
            changes,
        })
    }

    fn write_response(response: &Self::Response, w: &mut XmlWriter) -> Result<(), EwsError> {
        w.start_root("m:UpdateItemResponse", &[]);
        w.start("m:ResponseMessages", &[]);
        for m in &response.messages {
            write_message(w, "m:UpdateItemResponseMessage", m, |w, r| {
                w.start("m:Items", &[]);
                if let Some(id) = &r.item_id {
                    w.start("t:Message", &[]);
                    id.write(w, "t:ItemId");
                    w.end();
                }
                w.end();
                w.start("m:ConflictResults", &[]);
                w.text("t:Count", &r.conflict_count.to_string());
                w.end();
                Ok(())
            })?;
        }
        w.end();
        w.end();
        Ok(())
    }
}

/// DeleteItem (MS-OXWSCORE 3.1.4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteItem {
    /// HardDelete, SoftDelete or MoveToDeletedItems.
    pub delete_type: DeleteType,
    /// Items to delete.
    pub item_ids: Vec<ItemId>,
}

impl EwsOperation for DeleteItem {
    type Response = Response<()>;
    const NAME: &'static str = "DeleteItem";

    fn write_body(&self, w: &mut XmlWriter) -> Result<(), EwsError> {
        w.start_root(
            "m:DeleteItem",
            &[
                ("DeleteType", self.delete_type.as_str()),
                ("SendMeetingCancellations", "SendToNone"),
                ("AffectedTaskOccurrences", "AllOccurrences"),
            ],
        );
        write_item_ids(w, "m:ItemIds", &self.item_ids, Self::NAME)?;
        w.end();
        Ok(())
    }

    fn parse_response(body: &[u8]) -> Result<Self::Response, EwsError> {
        parse_messages(body, Self::NAME, "DeleteItemResponse", |_| Ok(()))
    }
}

impl EwsServerOperation for DeleteItem {
    fn from_request(body: &Element) -> Result<Self, EwsError> {
        let dt = req_attr(body, "DeleteType", Self::NAME, "a DeleteType attribute")?;
        Ok(Self {
            delete_type: DeleteType::parse(dt)
                .ok_or_else(|| missing(Self::NAME, "a known DeleteType"))?,
            item_ids: read_item_ids(body.child("ItemIds")),
        })
    }

    fn write_response(response: &Self::Response, w: &mut XmlWriter) -> Result<(), EwsError> {
        w.start_root("m:DeleteItemResponse", &[]);
        w.start("m:ResponseMessages", &[]);
        for m in &response.messages {
            write_message(w, "m:DeleteItemResponseMessage", m, |_, _| Ok(()))?;
        }
        w.end();
        w.end();
        Ok(())
    }
}

/// MoveItem or CopyItem (MS-OXWSCORE 3.1.4.7 and 3.1.4.1); `MOVE` selects which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveCopyItem<const MOVE: bool> {
    /// ToFolderId.
    pub to: FolderRef,
    /// Items to move or copy.
    pub item_ids: Vec<ItemId>,
    /// ReturnNewItemIds; `None` leaves the element out.
    pub return_new_item_ids: Option<bool>,
}

/// MoveItem: the response maps each old id (by position) to its new id.
pub type MoveItem = MoveCopyItem<true>;
/// CopyItem: the response gives each copy's id (by position).
pub type CopyItem = MoveCopyItem<false>;

impl<const MOVE: bool> MoveCopyItem<MOVE> {
    const ROOT: &'static str = if MOVE { "m:MoveItem" } else { "m:CopyItem" };
    const RESPONSE: &'static str = if MOVE {
        "MoveItemResponse"
    } else {
        "CopyItemResponse"
    };
}

impl<const MOVE: bool> EwsOperation for MoveCopyItem<MOVE> {
    /// One entry per requested id: the new ItemId and ChangeKey, or `None` when the
    /// server did not return it (a move to another mailbox returns empty Items). `None`
    /// is not an error: the caller resyncs the target folder to learn the id.
    type Response = Response<Option<ItemId>>;
    const NAME: &'static str = if MOVE { "MoveItem" } else { "CopyItem" };

    fn write_body(&self, w: &mut XmlWriter) -> Result<(), EwsError> {
        w.start_root(Self::ROOT, &[]);
        w.start("m:ToFolderId", &[]);
        self.to.write(w);
        w.end();
        write_item_ids(w, "m:ItemIds", &self.item_ids, Self::NAME)?;
        if let Some(r) = self.return_new_item_ids {
            w.bool("m:ReturnNewItemIds", r);
        }
        w.end();
        Ok(())
    }

    fn parse_response(body: &[u8]) -> Result<Self::Response, EwsError> {
        parse_messages(body, Self::NAME, Self::RESPONSE, |m| {
            Ok(items_of(m).into_iter().next().and_then(|i| i.item_id))
        })
    }
}

impl<const MOVE: bool> EwsServerOperation for MoveCopyItem<MOVE> {
    fn from_request(body: &Element) -> Result<Self, EwsError> {
        let to = body
            .child("ToFolderId")
            .and_then(|p| FolderRef::all_in(p).into_iter().next())
            .ok_or_else(|| missing(Self::NAME, "a ToFolderId"))?;
        Ok(Self {
            to,
            item_ids: read_item_ids(body.child("ItemIds")),
            return_new_item_ids: body.child_text("ReturnNewItemIds").and_then(parse_bool),
        })
    }

    fn write_response(response: &Self::Response, w: &mut XmlWriter) -> Result<(), EwsError> {
        let (root, message) = if MOVE {
            ("m:MoveItemResponse", "m:MoveItemResponseMessage")
        } else {
            ("m:CopyItemResponse", "m:CopyItemResponseMessage")
        };
        w.start_root(root, &[]);
        w.start("m:ResponseMessages", &[]);
        for m in &response.messages {
            write_message(w, message, m, |w, id| {
                w.start("m:Items", &[]);
                if let Some(id) = id {
                    w.start("t:Message", &[]);
                    id.write(w, "t:ItemId");
                    w.end();
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

/// SendItem (MS-OXWSMSG 3.1.4.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendItem {
    /// Items (drafts) to send, with current ChangeKeys.
    pub item_ids: Vec<ItemId>,
    /// Where to save the sent copy; `None` sends without saving.
    pub saved_folder: Option<FolderRef>,
    /// SaveItemToFolder.
    pub save_copy: bool,
}

impl EwsOperation for SendItem {
    type Response = Response<()>;
    const NAME: &'static str = "SendItem";

    fn write_body(&self, w: &mut XmlWriter) -> Result<(), EwsError> {
        w.start_root(
            "m:SendItem",
            &[(
                "SaveItemToFolder",
                if self.save_copy { "true" } else { "false" },
            )],
        );
        write_item_ids(w, "m:ItemIds", &self.item_ids, Self::NAME)?;
        if let Some(f) = &self.saved_folder {
            w.start("m:SavedItemFolderId", &[]);
            f.write(w);
            w.end();
        }
        w.end();
        Ok(())
    }

    fn parse_response(body: &[u8]) -> Result<Self::Response, EwsError> {
        parse_messages(body, Self::NAME, "SendItemResponse", |_| Ok(()))
    }
}

impl EwsServerOperation for SendItem {
    fn from_request(body: &Element) -> Result<Self, EwsError> {
        Ok(Self {
            item_ids: read_item_ids(body.child("ItemIds")),
            saved_folder: body
                .child("SavedItemFolderId")
                .and_then(|f| FolderRef::all_in(f).into_iter().next()),
            save_copy: body
                .attr("SaveItemToFolder")
                .and_then(parse_bool)
                .unwrap_or(true),
        })
    }

    fn write_response(response: &Self::Response, w: &mut XmlWriter) -> Result<(), EwsError> {
        w.start_root("m:SendItemResponse", &[]);
        w.start("m:ResponseMessages", &[]);
        for m in &response.messages {
            write_message(w, "m:SendItemResponseMessage", m, |_, _| Ok(()))?;
        }
        w.end();
        w.end();
        Ok(())
    }
}

/// An id in some format (MS-OXWSCVTID 2.2.4.x AlternateIdType).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlternateId {
    /// Format of `id`.
    pub format: IdFormat,
    /// The id (case-sensitive).
    pub id: String,
    /// The mailbox's SMTP address.
    pub mailbox: String,
}

impl AlternateId {
    fn write(&self, w: &mut XmlWriter) {
        w.empty(
            "t:AlternateId",
            &[
                ("Format", self.format.as_str()),
                ("Id", &self.id),
                ("Mailbox", &self.mailbox),
            ],
        );
    }

    fn read(e: &Element) -> Option<Self> {
        Some(Self {
            format: IdFormat::parse(e.attr("Format")?)?,
            id: e.attr("Id")?.to_owned(),
            mailbox: e.attr("Mailbox").unwrap_or_default().to_owned(),
        })
    }
}

/// ConvertId (MS-OXWSCVTID 3.1.4.1): translate ids to and from MAPI entry ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertId {
    /// DestinationFormat.
    pub destination: IdFormat,
    /// SourceIds.
    pub source_ids: Vec<AlternateId>,
}

impl EwsOperation for ConvertId {
    type Response = Response<Option<AlternateId>>;
    const NAME: &'static str = "ConvertId";

    fn write_body(&self, w: &mut XmlWriter) -> Result<(), EwsError> {
        if self.source_ids.is_empty() {
            return Err(EwsError::InvalidRequest {
                operation: Self::NAME,
                reason: "no source ids".into(),
            });
        }
        w.start_root(
            "m:ConvertId",
            &[("DestinationFormat", self.destination.as_str())],
        );
        w.start("m:SourceIds", &[]);
        for id in &self.source_ids {
            id.write(w);
        }
        w.end();
        w.end();
        Ok(())
    }

    fn parse_response(body: &[u8]) -> Result<Self::Response, EwsError> {
        parse_messages(body, Self::NAME, "ConvertIdResponse", |m| {
            Ok(m.child("AlternateId").and_then(AlternateId::read))
        })
    }
}

impl EwsServerOperation for ConvertId {
    fn from_request(body: &Element) -> Result<Self, EwsError> {
        let dest = req_attr(
            body,
            "DestinationFormat",
            Self::NAME,
            "a DestinationFormat attribute",
        )?;
        Ok(Self {
            destination: IdFormat::parse(dest)
                .ok_or_else(|| missing(Self::NAME, "a known DestinationFormat"))?,
            source_ids: body
                .child("SourceIds")
                .map(|s| s.children.iter().filter_map(AlternateId::read).collect())
                .unwrap_or_default(),
        })
    }

    fn write_response(response: &Self::Response, w: &mut XmlWriter) -> Result<(), EwsError> {
        w.start_root("m:ConvertIdResponse", &[]);
        w.start("m:ResponseMessages", &[]);
        for m in &response.messages {
            write_message(w, "m:ConvertIdResponseMessage", m, |w, id| {
                if let Some(id) = id {
                    w.empty(
                        "m:AlternateId",
                        &[
                            ("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance"),
                            ("xsi:type", "t:AlternateIdType"),
                            ("Format", id.format.as_str()),
                            ("Id", &id.id),
                            ("Mailbox", &id.mailbox),
                        ],
                    );
                }
                Ok(())
            })?;
        }
        w.end();
        w.end();
        Ok(())
    }
}
