//! Notifications (MS-OXWSNTIF): Subscribe (pull and streaming), GetEvents,
//! GetStreamingEvents, Unsubscribe, typed events, and the framer that splits a
//! GetStreamingEvents body into SOAP documents.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use time::OffsetDateTime;

use crate::error::{EwsError, MessageError};
use crate::operation::{EwsOperation, EwsServerOperation, Response, missing, parse_messages};
use crate::soap::{XmlWriter, write_message};
use crate::types::{
    EventType, FolderId, FolderRef, ItemId, format_datetime, parse_bool, parse_datetime,
};
use crate::xml::Element;

/// Subscribe (MS-OXWSNTIF 3.1.4.2): a pull or a streaming subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Pull or streaming, with its parameters.
    pub kind: SubscriptionKind,
    /// Folders to watch; empty means every folder (SubscribeToAllFolders).
    pub folders: Vec<FolderRef>,
    /// Event types.
    pub event_types: Vec<EventType>,
}

/// Subscription flavour.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscriptionKind {
    /// PullSubscriptionRequest.
    Pull {
        /// Watermark to resume from, if any.
        watermark: Option<String>,
        /// Timeout in minutes (1 to 1440).
        timeout_minutes: u32,
    },
    /// StreamingSubscriptionRequest.
    Streaming,
}

/// A Subscribe result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// SubscriptionId.
    pub subscription_id: String,
    /// Watermark; some servers send none.
    pub watermark: Option<String>,
}

impl EwsOperation for Subscribe {
    type Response = Response<Subscription>;
    const NAME: &'static str = "Subscribe";

    fn write_body(&self, w: &mut XmlWriter) -> Result<(), EwsError> {
        if self.event_types.is_empty() {
            return Err(EwsError::InvalidRequest {
                operation: Self::NAME,
                reason: "no event types".into(),
            });
        }
        w.start_root("m:Subscribe", &[]);
        let name = match self.kind {
            SubscriptionKind::Pull { .. } => "m:PullSubscriptionRequest",
            SubscriptionKind::Streaming => "m:StreamingSubscriptionRequest",
        };
        if self.folders.is_empty() {
            w.start(name, &[("SubscribeToAllFolders", "true")]);
        } else {
            w.start(name, &[]);
            w.start("t:FolderIds", &[]);
            for f in &self.folders {
                f.write(w);
            }
            w.end();
        }
        w.start("t:EventTypes", &[]);
        for e in &self.event_types {
            w.text("t:EventType", e.as_str());
        }
        w.end();
        if let SubscriptionKind::Pull {
            watermark,
            timeout_minutes,
        } = &self.kind
        {
            if !(1..=1440).contains(timeout_minutes) {
                return Err(EwsError::InvalidRequest {
                    operation: Self::NAME,
                    reason: format!("pull Timeout {timeout_minutes} minutes is outside 1..=1440"),
                });
            }
            w.opt_text("t:Watermark", watermark.as_deref());
            w.text("t:Timeout", &timeout_minutes.to_string());
        }
        w.end();
        w.end();
        Ok(())
    }

    fn parse_response(body: &[u8]) -> Result<Self::Response, EwsError> {
        parse_messages(body, Self::NAME, "SubscribeResponse", |m| {
            Ok(Subscription {
                subscription_id: m
                    .child_text("SubscriptionId")
                    .ok_or_else(|| missing(Self::NAME, "a SubscriptionId"))?
                    .to_owned(),
                watermark: m
                    .child_text("Watermark")
                    .filter(|w| !w.is_empty())
                    .map(str::to_owned),
            })
        })
    }
}

impl EwsServerOperation for Subscribe {
    fn from_request(body: &Element) -> Result<Self, EwsError> {
        let (req, kind) = if let Some(p) = body.child("PullSubscriptionRequest") {
            let timeout_minutes = p
                .child_text("Timeout")
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| missing(Self::NAME, "a Timeout"))?;
            (
                p,
                SubscriptionKind::Pull {
                    watermark: p.child_text("Watermark").map(str::to_owned),
                    timeout_minutes,
                },
            )
        } else if let Some(s) = body.child("StreamingSubscriptionRequest") {
            (s, SubscriptionKind::Streaming)
        } else {
            return Err(missing(
                Self::NAME,
                "a pull or streaming subscription request",
            ));
        };
        Ok(Self {
            kind,
            folders: req
                .child("FolderIds")
                .map(FolderRef::all_in)
                .unwrap_or_default(),
            event_types: req
                .child("EventTypes")
                .map(|e| {
                    e.children
                        .iter()
                        .filter_map(|t| EventType::parse(&t.text))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    fn write_response(response: &Self::Response, w: &mut XmlWriter) -> Result<(), EwsError> {
        w.start_root("m:SubscribeResponse", &[]);
        w.start("m:ResponseMessages", &[]);
        for m in &response.messages {
            write_message(w, "m:SubscribeResponseMessage", m, |w, s| {
                w.text("m:SubscriptionId", &s.subscription_id);
                w.opt_text("m:Watermark", s.watermark.as_deref());
                Ok(())
            })?;
        }
        w.end();
        w.end();
        Ok(())
    }
}

/// The kind of a notification event (MS-OXWSNTIF 2.2.4.x).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// NewMailEvent.
    NewMail,
    /// CreatedEvent.
    Created,
    /// ModifiedEvent.
    Modified,
    /// DeletedEvent.
    Deleted,
    /// MovedEvent.
    Moved,
    /// CopiedEvent.
    Copied,
    /// StatusEvent (a heartbeat of pull subscriptions).
    Status,
    /// FreeBusyChangedEvent.
    FreeBusyChanged,
}

impl EventKind {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "NewMailEvent" => EventKind::NewMail,
            "CreatedEvent" => EventKind::Created,
            "ModifiedEvent" => EventKind::Modified,
            "DeletedEvent" => EventKind::Deleted,
            "MovedEvent" => EventKind::Moved,
            "CopiedEvent" => EventKind::Copied,
            "StatusEvent" => EventKind::Status,
            "FreeBusyChangedEvent" => EventKind::FreeBusyChanged,
            _ => return None,
        })
    }

    fn element(self) -> &'static str {
        match self {
            EventKind::NewMail => "t:NewMailEvent",
            EventKind::Created => "t:CreatedEvent",
            EventKind::Modified => "t:ModifiedEvent",
            EventKind::Deleted => "t:DeletedEvent",
            EventKind::Moved => "t:MovedEvent",
            EventKind::Copied => "t:CopiedEvent",
            EventKind::Status => "t:StatusEvent",
            EventKind::FreeBusyChanged => "t:FreeBusyChangedEvent",
        }
    }
}

/// One notification event. Events are hints that a folder changed: a server may send
/// them without watermark or ChangeKey, several for one update, and for items already
/// deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Kind.
    pub kind: EventKind,
    /// Watermark, when the server sends one.
    pub watermark: Option<String>,
    /// TimeStamp.
    pub timestamp: Option<OffsetDateTime>,
    /// ItemId (with ChangeKey when sent) of an item event.
    pub item_id: Option<ItemId>,
    /// FolderId of a folder event.
    pub folder_id: Option<FolderId>,
    /// ParentFolderId.
    pub parent_folder_id: Option<FolderId>,
    /// OldItemId of a move or copy.
    pub old_item_id: Option<ItemId>,
    /// OldFolderId of a folder move or copy.
    pub old_folder_id: Option<FolderId>,
    /// OldParentFolderId of a move or copy.
    pub old_parent_folder_id: Option<FolderId>,
    /// UnreadCount of a folder ModifiedEvent.
    pub unread_count: Option<u32>,
}

impl Event {
    /// An event of this kind with nothing else set.
    pub fn new(kind: EventKind) -> Self {
        Self {
            kind,
            watermark: None,
            timestamp: None,
            item_id: None,
            folder_id: None,
            parent_folder_id: None,
            old_item_id: None,
            old_folder_id: None,
            old_parent_folder_id: None,
            unread_count: None,
        }
    }

    fn from_element(e: &Element) -> Option<Self> {
        let mut ev = Event::new(EventKind::from_name(&e.name)?);
        for c in &e.children {
            match &*c.name {
                "Watermark" => {
                    ev.watermark = Some(c.text.trim().to_owned()).filter(|w| !w.is_empty())
                }
                "TimeStamp" => ev.timestamp = parse_datetime(&c.text),
                "ItemId" => ev.item_id = ItemId::from_element(c),
                "FolderId" => ev.folder_id = FolderId::from_element(c),
                "ParentFolderId" => ev.parent_folder_id = FolderId::from_element(c),
                "OldItemId" => ev.old_item_id = ItemId::from_element(c),
                "OldFolderId" => ev.old_folder_id = FolderId::from_element(c),
                "OldParentFolderId" => ev.old_parent_folder_id = FolderId::from_element(c),
                "UnreadCount" => ev.unread_count = c.text.trim().parse().ok(),
                _ => {}
            }
        }
        Some(ev)
    }

    fn write(&self, w: &mut XmlWriter) {
        w.start(self.kind.element(), &[]);
        w.opt_text("t:Watermark", self.watermark.as_deref());
        if self.kind != EventKind::Status {
            let ts = self
                .timestamp
                .map(format_datetime)
                .unwrap_or_else(|| "1970-01-01T00:00:00Z".into());
            w.text("t:TimeStamp", &ts);
            let write_fid = |w: &mut XmlWriter, name: &str, id: &FolderId| match &id.change_key {
                Some(ck) => w.empty(name, &[("Id", &id.id), ("ChangeKey", ck)]),
                None => w.empty(name, &[("Id", &id.id)]),
            };
            if let Some(id) = &self.item_id {
                id.write(w, "t:ItemId");
            } else if let Some(id) = &self.folder_id {
                write_fid(w, "t:FolderId", id);
            }
            if let Some(id) = &self.parent_folder_id {
                write_fid(w, "t:ParentFolderId", id);
            }
            if let Some(id) = &self.old_item_id {
                id.write(w, "t:OldItemId");
            } else if let Some(id) = &self.old_folder_id {
                write_fid(w, "t:OldFolderId", id);
            }
            if let Some(id) = &self.old_parent_folder_id {
                write_fid(w, "t:OldParentFolderId", id);
            }
            if let Some(n) = self.unread_count {
                w.text("t:UnreadCount", &n.to_string());
            }
        }
        w.end();
    }
}

/// A Notification (MS-OXWSNTIF 2.2.4.x NotificationType).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// SubscriptionId.
    pub subscription_id: String,
    /// PreviousWatermark.
    pub previous_watermark: Option<String>,
    /// MoreEvents: call GetEvents again at once.
    pub more_events: bool,
    /// Events in server order.
    pub events: Vec<Event>,
}

impl Notification {
    fn from_element(e: &Element) -> Self {
        Self {
            subscription_id: e
                .child_text("SubscriptionId")
                .unwrap_or_default()
                .to_owned(),
            previous_watermark: e.child_text("PreviousWatermark").map(str::to_owned),
            more_events: e
                .child_text("MoreEvents")
                .and_then(parse_bool)
                .unwrap_or(false),
            events: e.children.iter().filter_map(Event::from_element).collect(),
        }
    }

    fn write(&self, w: &mut XmlWriter, name: &'static str) {
        w.start(name, &[]);
        w.text("t:SubscriptionId", &self.subscription_id);
        w.opt_text("t:PreviousWatermark", self.previous_watermark.as_deref());
        w.bool("t:MoreEvents", self.more_events);
        for e in &self.events {
            e.write(w);
        }
        w.end();
    }
}

impl Event {
    /// Whether reacting to this event may fetch the item: never for a deletion, whose
    /// item is gone (a fetch would only give ErrorItemNotFound).
    pub fn may_fetch(&self) -> bool {
        self.item_id.is_some() && !matches!(self.kind, EventKind::Deleted | EventKind::Status)
    }
}

/// Coalesces the events of one notification per item: for each ItemId only the last
/// event is kept (a deletion after modifications leaves only the deletion), in the order
/// of those last events. A MovedEvent or CopiedEvent is keyed by its new ItemId, and an
/// earlier event on its OldItemId is dropped, so the caller re-keys once. Folder events
/// are coalesced per FolderId the same way; status events are dropped.
pub fn coalesce_events(events: &[Event]) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    for ev in events {
        if ev.kind == EventKind::Status {
            continue;
        }
        out.retain(|kept| {
            let same_item = match (&kept.item_id, &ev.item_id) {
                (Some(a), Some(b)) => a.id == b.id,
                _ => false,
            };
            let moved_from = match (&kept.item_id, &ev.old_item_id) {
                (Some(a), Some(b)) => a.id == b.id,
                _ => false,
            };
            let same_folder = kept.item_id.is_none()
                && ev.item_id.is_none()
                && match (&kept.folder_id, &ev.folder_id) {
                    (Some(a), Some(b)) => a.id == b.id,
                    _ => false,
                };
            !(same_item || moved_from || same_folder)
        });
        out.push(ev.clone());
    }
    out
}

/// GetEvents (MS-OXWSNTIF 3.1.4.1) on a pull subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetEvents {
    /// SubscriptionId.
    pub subscription_id: String,
    /// Watermark of the last event seen.
    pub watermark: String,
}

impl EwsOperation for GetEvents {
    type Response = Response<Notification>;
    const NAME: &'static str = "GetEvents";

    fn write_body(&self, w: &mut XmlWriter) -> Result<(), EwsError> {
        w.start_root("m:GetEvents", &[]);
        w.text("m:SubscriptionId", &self.subscription_id);
        w.text("m:Watermark", &self.watermark);
        w.end();
        Ok(())
    }

    fn parse_response(body: &[u8]) -> Result<Self::Response, EwsError> {
        // Messages are matched by position, whatever their element name (one server
        // names them `m:x`).
        parse_messages(body, Self::NAME, "GetEventsResponse", |m| {
            let n = m
                .child("Notification")
                .ok_or_else(|| missing(Self::NAME, "a Notification"))?;
            Ok(Notification::from_element(n))
        })
    }
}

impl EwsServerOperation for GetEvents {
    fn from_request(body: &Element) -> Result<Self, EwsError> {
        Ok(Self {
            subscription_id: body
                .child_text("SubscriptionId")
                .ok_or_else(|| missing(Self::NAME, "a SubscriptionId"))?
                .to_owned(),
            watermark: body.child_text("Watermark").unwrap_or_default().to_owned(),
        })
    }

    fn write_response(response: &Self::Response, w: &mut XmlWriter) -> Result<(), EwsError> {
        w.start_root("m:GetEventsResponse", &[]);
        w.start("m:ResponseMessages", &[]);
        for m in &response.messages {
            write_message(w, "m:GetEventsResponseMessage", m, |w, n| {
                n.write(w, "m:Notification");
                Ok(())
            })?;
        }
        w.end();
        w.end();
        Ok(())
    }
}

/// GetStreamingEvents (MS-OXWSNTIF 3.1.4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetStreamingEvents {
    /// SubscriptionIds.
    pub subscription_ids: Vec<String>,
    /// ConnectionTimeout in minutes (1 to 30).
    pub connection_timeout_minutes: u32,
}

/// ConnectionStatus of a streaming response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionStatus {
    /// OK: the stream stays open.
    Ok,
    /// Closed: the server ends this response; reopen with the same ids.
    Closed,
    /// Anything else, as sent.
    Other(String),
}

/// One document of a streaming response: notifications, or a heartbeat with none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamingEvents {
    /// Notifications (possibly none: a heartbeat).
    pub notifications: Vec<Notification>,
    /// ConnectionStatus, when sent.
    pub connection_status: Option<ConnectionStatus>,
}

impl EwsOperation for GetStreamingEvents {
    /// Errors carry ErrorSubscriptionIds in [`MessageError::subscription_ids`]; any
    /// subscription error means the subscription is dead whatever ConnectionStatus says.
    type Response = Response<StreamingEvents>;
    const NAME: &'static str = "GetStreamingEvents";

    fn write_body(&self, w: &mut XmlWriter) -> Result<(), EwsError> {
        if self.subscription_ids.is_empty() {
            return Err(EwsError::InvalidRequest {
                operation: Self::NAME,
                reason: "no subscription ids".into(),
            });
        }
        if !(1..=30).contains(&self.connection_timeout_minutes) {
            return Err(EwsError::InvalidRequest {
                operation: Self::NAME,
                reason: format!(
                    "ConnectionTimeout {} minutes is outside 1..=30",
                    self.connection_timeout_minutes
                ),
            });
        }
        w.start_root("m:GetStreamingEvents", &[]);
        w.start("m:SubscriptionIds", &[]);
        for id in &self.subscription_ids {
            w.text("t:SubscriptionId", id);
        }
        w.end();
        w.text(
            "m:ConnectionTimeout",
            &self.connection_timeout_minutes.to_string(),
        );
        w.end();
        Ok(())
    }

    fn parse_response(body: &[u8]) -> Result<Self::Response, EwsError> {
        parse_messages(body, Self::NAME, "GetStreamingEventsResponse", |m| {
            Ok(StreamingEvents {
                notifications: m
                    .child("Notifications")
                    .map(|n| {
                        n.children_named("Notification")
                            .map(Notification::from_element)
                            .collect()
                    })
                    .unwrap_or_default(),
                connection_status: m.child_text("ConnectionStatus").map(|s| match s {
                    "OK" => ConnectionStatus::Ok,
                    "Closed" => ConnectionStatus::Closed,
                    other => ConnectionStatus::Other(other.to_owned()),
                }),
            })
        })
    }
}

impl EwsServerOperation for GetStreamingEvents {
    fn from_request(body: &Element) -> Result<Self, EwsError> {
        Ok(Self {
            subscription_ids: body
                .child("SubscriptionIds")
                .map(|s| {
                    s.children
                        .iter()
                        .map(|c| c.text.trim().to_owned())
                        .collect()
                })
                .unwrap_or_default(),
            connection_timeout_minutes: body
                .child_text("ConnectionTimeout")
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| missing(Self::NAME, "a ConnectionTimeout"))?,
        })
    }

    fn write_response(response: &Self::Response, w: &mut XmlWriter) -> Result<(), EwsError> {
        w.start_root("m:GetStreamingEventsResponse", &[]);
        w.start("m:ResponseMessages", &[]);
        for m in &response.messages {
            write_streaming_message(w, m);
        }
        w.end();
        w.end();
        Ok(())
    }
}

fn write_streaming_message(w: &mut XmlWriter, m: &Result<StreamingEvents, MessageError>) {
    let status = |w: &mut XmlWriter, s: &Option<ConnectionStatus>| {
        if let Some(s) = s {
            let text = match s {
                ConnectionStatus::Ok => "OK",
                ConnectionStatus::Closed => "Closed",
                ConnectionStatus::Other(o) => o,
            };
            w.text("m:ConnectionStatus", text);
        }
    };
    match m {
        Ok(ev) => {
            w.start(
                "m:GetStreamingEventsResponseMessage",
                &[("ResponseClass", "Success")],
            );
            w.text("m:ResponseCode", "NoError");
            if !ev.notifications.is_empty() {
                w.start("m:Notifications", &[]);
                for n in &ev.notifications {
                    n.write(w, "t:Notification");
                }
                w.end();
            }
            status(w, &ev.connection_status);
        }
        Err(err) => {
            w.start(
                "m:GetStreamingEventsResponseMessage",
                &[("ResponseClass", err.class.as_str())],
            );
            w.opt_text("m:MessageText", err.text.as_deref());
            w.text("m:ResponseCode", err.code.as_str());
            if !err.subscription_ids.is_empty() {
                w.start("m:ErrorSubscriptionIds", &[]);
                for id in &err.subscription_ids {
                    w.text("t:SubscriptionId", id);
                }
                w.end();
            }
            status(w, &Some(ConnectionStatus::Closed));
        }
    }
    w.end();
}

/// Unsubscribe (MS-OXWSNTIF 3.1.4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// SubscriptionId.
    pub subscription_id: String,
}

impl EwsOperation for Unsubscribe {
    type Response = Response<()>;
    const NAME: &'static str = "Unsubscribe";

    fn write_body(&self, w: &mut XmlWriter) -> Result<(), EwsError> {
        w.start_root("m:Unsubscribe", &[]);
        w.text("m:SubscriptionId", &self.subscription_id);
        w.end();
        Ok(())
    }

    fn parse_response(body: &[u8]) -> Result<Self::Response, EwsError> {
        parse_messages(body, Self::NAME, "UnsubscribeResponse", |_| Ok(()))
    }
}

impl EwsServerOperation for Unsubscribe {
    fn from_request(body: &Element) -> Result<Self, EwsError> {
        Ok(Self {
            subscription_id: body
                .child_text("SubscriptionId")
                .ok_or_else(|| missing(Self::NAME, "a SubscriptionId"))?
                .to_owned(),
        })
    }

    fn write_response(response: &Self::Response, w: &mut XmlWriter) -> Result<(), EwsError> {
        w.start_root("m:UnsubscribeResponse", &[]);
        w.start("m:ResponseMessages", &[]);
        for m in &response.messages {
            write_message(w, "m:UnsubscribeResponseMessage", m, |_, _| Ok(()))?;
        }
        w.end();
        w.end();
        Ok(())
    }
}

/// Largest streaming document accepted (a notification batch is a few kilobytes; this
/// bounds memory against a server that never closes its root element).
pub const MAX_STREAM_DOCUMENT: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    Text,
    Tag { end: bool, quote: u8 },
    Comment,
    Pi,
    CData,
}

/// Splits the (de-chunked) body of a GetStreamingEvents response into SOAP documents,
/// whatever the chunk boundaries: a document may span chunks and a chunk may hold several.
/// It tracks tags, quotes, comments, CDATA and processing instructions, one top-level
/// element per document; an XML declaration before the root belongs to its document.
#[derive(Debug)]
pub struct StreamFramer {
    buf: Vec<u8>,
    pos: usize,
    depth: usize,
    root_seen: bool,
    state: Scan,
    done: Option<usize>,
}

impl Default for StreamFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamFramer {
    /// An empty framer.
    pub fn new() -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            depth: 0,
            root_seen: false,
            state: Scan::Text,
            done: None,
        }
    }

    /// Adds bytes as they arrive.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes held that do not form a complete document yet (non-whitespace).
    pub fn has_partial(&self) -> bool {
        self.buf.iter().any(|b| !b.is_ascii_whitespace())
    }

    /// The next complete document, if the bytes pushed so far hold one.
    ///
    /// # Errors
    /// [`EwsError::MalformedXml`] for a DTD, text outside any element, or a document
    /// larger than [`MAX_STREAM_DOCUMENT`]; the framer is then reset.
    pub fn next_document(&mut self) -> Result<Option<Vec<u8>>, EwsError> {
        let result = self.scan();
        if result.is_err() {
            *self = Self::new();
        }
        result
    }

    fn scan(&mut self) -> Result<Option<Vec<u8>>, EwsError> {
        if self.done.is_none() {
            self.advance()?;
        }
        let Some(end) = self.done.take() else {
            if self.buf.len() > MAX_STREAM_DOCUMENT {
                return Err(EwsError::MalformedXml {
                    offset: self.buf.len() as u64,
                    reason: format!("streaming document larger than {MAX_STREAM_DOCUMENT} bytes"),
                });
            }
            return Ok(None);
        };
        let doc: Vec<u8> = self.buf.drain(..end).collect();
        self.pos = 0;
        self.depth = 0;
        self.root_seen = false;
        self.state = Scan::Text;
        // Whitespace between documents belongs to none of them.
        let ws = self
            .buf
            .iter()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
        self.buf.drain(..ws);
        Ok(Some(doc))
    }

    fn ends_with_at(&self, i: usize, tail: &[u8]) -> bool {
        i + 1 >= tail.len() && self.buf.get(i + 1 - tail.len()..=i) == Some(tail)
    }

    fn advance(&mut self) -> Result<(), EwsError> {
        while let Some(&b) = self.buf.get(self.pos) {
            let i = self.pos;
            match self.state {
                Scan::Text => {
                    if b == b'<' {
                        let rest = self.buf.get(i..).unwrap_or_default();
                        // Decide the markup kind only once enough bytes are here.
                        if rest.len() < 2 {
                            return Ok(());
                        }
                        if rest.starts_with(b"<?") {
                            self.state = Scan::Pi;
                            self.pos += 2;
                            continue;
                        }
                        if rest.starts_with(b"<!") {
                            if rest.len() < 9
                                && (b"<![CDATA[".starts_with(rest) || b"<!--".starts_with(rest))
                            {
                                return Ok(());
                            }
                            if rest.starts_with(b"<!--") {
                                self.state = Scan::Comment;
                                self.pos += 4;
                                continue;
                            }
                            if rest.starts_with(b"<![CDATA[") && self.depth > 0 {
                                self.state = Scan::CData;
                                self.pos += 9;
                                continue;
                            }
                            return Err(EwsError::MalformedXml {
                                offset: i as u64,
                                reason: "DTD or unexpected markup in a streaming response".into(),
                            });
                        }
                        let end = rest.get(1) == Some(&b'/');
                        self.state = Scan::Tag { end, quote: 0 };
                    } else if self.depth == 0 && !b.is_ascii_whitespace() {
                        return Err(EwsError::MalformedXml {
                            offset: i as u64,
                            reason: "text outside any element".into(),
                        });
                    }
                }
                Scan::Tag { end, quote } => {
                    if quote != 0 {
                        if b == quote {
                            self.state = Scan::Tag { end, quote: 0 };
                        }
                    } else if b == b'"' || b == b'\'' {
                        self.state = Scan::Tag { end, quote: b };
                    } else if b == b'>' {
                        self.state = Scan::Text;
                        let empty = !end && i > 0 && self.buf.get(i - 1) == Some(&b'/');
                        if end {
                            self.depth = self.depth.saturating_sub(1);
                        } else if !empty {
                            self.depth += 1;
                        }
                        self.root_seen = true;
                        if self.depth == 0 {
                            self.done = Some(i + 1);
                            self.pos = i + 1;
                            return Ok(());
                        }
                    }
                }
                Scan::Comment => {
                    if b == b'>' && self.ends_with_at(i, b"-->") {
                        self.state = Scan::Text;
                    }
                }
                Scan::Pi => {
                    if b == b'>' && self.ends_with_at(i, b"?>") {
                        self.state = Scan::Text;
                    }
                }
                Scan::CData => {
                    if b == b'>' && self.ends_with_at(i, b"]]>") {
                        self.state = Scan::Text;
                    }
                }
            }
            self.pos += 1;
        }
        Ok(())
    }
}

/// Frames and parses a GetStreamingEvents body: push bytes as they arrive, then take the
/// parsed documents in order.
#[derive(Debug, Default)]
pub struct StreamingReader {
    framer: StreamFramer,
}

impl StreamingReader {
    /// A reader with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes of the body.
    pub fn push(&mut self, chunk: &[u8]) {
        self.framer.push(chunk);
    }

    /// The next complete document, parsed. A heartbeat is a document with no
    /// notifications; `ConnectionStatus` Closed ends the response.
    ///
    /// # Errors
    /// Framing errors, and decoding errors of the document (a fault included).
    pub fn next_message(&mut self) -> Result<Option<Response<StreamingEvents>>, EwsError> {
        match self.framer.next_document()? {
            Some(doc) => GetStreamingEvents::parse_response(&doc).map(Some),
            None => Ok(None),
        }
    }
}
