//! FastTransfer streams (MS-OXCFXICS 2.2.4): an incremental lexer that accepts a stream
//! cut anywhere between RopFastTransferSourceGetBuffer buffers (inside a value, inside a
//! tag), a parser for the contents-sync and hierarchy-sync grammar (MS-OXCFXICS 2.2.4.3),
//! and a writer for the emulator.
//!
//! The stream is a sequence of elements that each start with a u32 tag: a marker (a bare
//! tag) or a property (tag, name for named properties, value with u32 lengths).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::idset::{IcsState, IdSet, IdsetError, IdsetForm, StateProperty};
use crate::prop::{PropError, PropTag, PropValue, PropertyName, Reader, ValueEncoding};
use crate::rop::writer::Put;

/// Errors from reading a FastTransfer stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FxError {
    /// An element was malformed.
    #[error("malformed FastTransfer element at stream offset {offset}: {source}")]
    Element {
        /// Stream offset of the element.
        offset: usize,
        /// The malformed part.
        source: PropError,
    },
    /// One element would need more bytes than the reader's limit.
    #[error(
        "FastTransfer element at stream offset {offset} needs {needed} bytes, over the limit of {limit}; raise the limit with FxReader::with_limit if the value is legitimate"
    )]
    TooLarge {
        /// Stream offset of the element.
        offset: usize,
        /// Bytes the element needs.
        needed: usize,
        /// The limit.
        limit: usize,
    },
    /// The stream ended (TransferStatus Done) inside an element.
    #[error(
        "FastTransfer stream ended inside an element at offset {offset} ({pending} bytes pending)"
    )]
    Incomplete {
        /// Stream offset of the cut element.
        offset: usize,
        /// Bytes buffered for it.
        pending: usize,
    },
    /// An end marker without its start marker, or the stream ended with open markers.
    #[error("unbalanced FastTransfer marker 0x{marker:08X} at stream offset {offset}: {problem}")]
    Unbalanced {
        /// The marker.
        marker: u32,
        /// Stream offset of the marker (or of the stream end).
        offset: usize,
        /// The problem.
        problem: &'static str,
    },
    /// An element that the sync grammar does not allow at this point.
    #[error("unexpected FastTransfer element at stream offset {offset}: {problem}")]
    Grammar {
        /// Stream offset of the element.
        offset: usize,
        /// The grammar rule that was broken.
        problem: &'static str,
    },
    /// An IDSET inside the stream was malformed.
    #[error("malformed IDSET in property 0x{tag:08X}: {source}")]
    Idset {
        /// The property.
        tag: u32,
        /// The malformed part.
        source: IdsetError,
    },
}

/// Marker tags (MS-OXCFXICS 2.2.4.1.4).
#[allow(missing_docs)]
pub mod marker {
    pub const START_TOP_FLD: u32 = 0x4009_0003;
    pub const START_SUB_FLD: u32 = 0x400A_0003;
    pub const END_FOLDER: u32 = 0x400B_0003;
    pub const START_MESSAGE: u32 = 0x400C_0003;
    pub const END_MESSAGE: u32 = 0x400D_0003;
    pub const START_FAI_MSG: u32 = 0x4010_0003;
    pub const START_EMBED: u32 = 0x4001_0003;
    pub const END_EMBED: u32 = 0x4002_0003;
    pub const START_RECIP: u32 = 0x4003_0003;
    pub const END_TO_RECIP: u32 = 0x4004_0003;
    pub const NEW_ATTACH: u32 = 0x4000_0003;
    pub const END_ATTACH: u32 = 0x400E_0003;
    pub const INCR_SYNC_CHG: u32 = 0x4012_0003;
    pub const INCR_SYNC_CHG_PARTIAL: u32 = 0x407D_0003;
    pub const INCR_SYNC_DEL: u32 = 0x4013_0003;
    pub const INCR_SYNC_END: u32 = 0x4014_0003;
    pub const INCR_SYNC_MESSAGE: u32 = 0x4015_0003;
    pub const INCR_SYNC_READ: u32 = 0x402F_0003;
    pub const INCR_SYNC_STATE_BEGIN: u32 = 0x403A_0003;
    pub const INCR_SYNC_STATE_END: u32 = 0x403B_0003;
    pub const INCR_SYNC_PROGRESS_MODE: u32 = 0x4074_000B;
    pub const INCR_SYNC_PROGRESS_PER_MSG: u32 = 0x4075_000B;
    pub const INCR_SYNC_GROUP_INFO: u32 = 0x407B_0102;
    pub const FX_ERROR_INFO: u32 = 0x4018_0003;

    /// Returns whether `tag` is a marker (an element without a value).
    pub fn is_marker(tag: u32) -> bool {
        matches!(
            tag,
            START_TOP_FLD
                | START_SUB_FLD
                | END_FOLDER
                | START_MESSAGE
                | END_MESSAGE
                | START_FAI_MSG
                | START_EMBED
                | END_EMBED
                | START_RECIP
                | END_TO_RECIP
                | NEW_ATTACH
                | END_ATTACH
                | INCR_SYNC_CHG
                | INCR_SYNC_CHG_PARTIAL
                | INCR_SYNC_DEL
                | INCR_SYNC_END
                | INCR_SYNC_MESSAGE
                | INCR_SYNC_READ
                | INCR_SYNC_STATE_BEGIN
                | INCR_SYNC_STATE_END
                | INCR_SYNC_PROGRESS_MODE
                | INCR_SYNC_PROGRESS_PER_MSG
                | INCR_SYNC_GROUP_INFO
                | FX_ERROR_INFO
        )
    }

    /// Returns whether `tag` opens a nested structure that an end marker closes.
    pub fn opens(tag: u32) -> bool {
        matches!(
            tag,
            START_TOP_FLD
                | START_SUB_FLD
                | START_MESSAGE
                | START_FAI_MSG
                | START_EMBED
                | START_RECIP
                | NEW_ATTACH
                | INCR_SYNC_STATE_BEGIN
        )
    }

    /// Returns the start markers an end marker closes, if `tag` is an end marker.
    pub fn opener_of(tag: u32) -> Option<&'static [u32]> {
        match tag {
            END_FOLDER => Some(&[START_TOP_FLD, START_SUB_FLD]),
            END_MESSAGE => Some(&[START_MESSAGE, START_FAI_MSG]),
            END_EMBED => Some(&[START_EMBED]),
            END_TO_RECIP => Some(&[START_RECIP]),
            END_ATTACH => Some(&[NEW_ATTACH]),
            INCR_SYNC_STATE_END => Some(&[INCR_SYNC_STATE_BEGIN]),
            _ => None,
        }
    }
}

/// MetaTagIdsetGiven as the state stream writes it: typed PtypInteger32, but the value is
/// a u32 length and IDSET bytes, like a binary value (MS-OXCFXICS 2.2.1.1.1).
const IDSET_GIVEN_INT32: u32 = 0x4017_0003;

/// A property element.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FxProp {
    /// The tag.
    pub tag: PropTag,
    /// The name, for named properties (id 0x8000 and above).
    pub name: Option<PropertyName>,
    /// The value (for MetaTagIdsetGiven typed as Integer32, a binary value).
    pub value: PropValue,
}

/// One lexical element of a FastTransfer stream.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub enum FxElement {
    /// A marker.
    Marker(u32),
    /// A property.
    Property(FxProp),
}

impl FxElement {
    /// Decodes one element from the start of `bytes`, which hold `base` as stream offset.
    /// Returns `Ok(None)` when `bytes` ends inside the element.
    ///
    /// # Errors
    /// [`FxError::Element`] when the element is malformed.
    pub fn decode(bytes: &[u8], base: usize) -> Result<Option<(FxElement, usize)>, FxError> {
        let mut r = Reader::with_base(bytes, base);
        match Self::decode_inner(&mut r) {
            Ok(element) => Ok(Some((element, r.position()))),
            Err(PropError::Truncated { .. } | PropError::Unterminated { .. }) => Ok(None),
            Err(source) => Err(FxError::Element {
                offset: base,
                source,
            }),
        }
    }

    fn decode_inner(r: &mut Reader<'_>) -> Result<FxElement, PropError> {
        let tag = r.u32("FastTransfer tag")?;
        if marker::is_marker(tag) {
            return Ok(FxElement::Marker(tag));
        }
        let tag = PropTag(tag);
        let name = if tag.is_named() {
            Some(PropertyName::decode_fast_transfer(r)?)
        } else {
            None
        };
        let value = if tag.0 == IDSET_GIVEN_INT32 {
            let len = r.u32("MetaTagIdsetGiven length")? as usize;
            PropValue::Binary(r.take(len, "MetaTagIdsetGiven")?.to_vec())
        } else {
            PropValue::decode(r, tag.ptype(), ValueEncoding::FastTransfer)?
        };
        Ok(FxElement::Property(FxProp { tag, name, value }))
    }

    /// Appends the encoding of this element.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            FxElement::Marker(tag) => out.put_u32(*tag),
            FxElement::Property(prop) => {
                out.put_u32(prop.tag.0);
                if let Some(name) = &prop.name {
                    name.encode_fast_transfer(out);
                }
                prop.value.encode(out, ValueEncoding::FastTransfer);
            }
        }
    }

    /// Returns the bytes needed to know whether an element that starts with `bytes` is complete;
    /// used to enforce the size limit on a value being buffered.
    fn declared_need(bytes: &[u8], base: usize) -> usize {
        let mut r = Reader::with_base(bytes, base);
        match Self::decode_inner(&mut r) {
            Err(PropError::Truncated {
                needed,
                available,
                offset,
                ..
            }) => (offset - base) + needed.max(available),
            _ => bytes.len(),
        }
    }
}

/// Default limit on the size of one element (one property value), 64 MiB.
pub const DEFAULT_ELEMENT_LIMIT: usize = 64 << 20;

/// An incremental FastTransfer lexer. Feed it each TransferBuffer in order. It returns
/// whole elements and keeps a cut element (inside a tag, a length or a value) until the
/// next buffer completes it, and it checks that start and end markers pair up.
#[derive(Debug, Clone)]
pub struct FxReader {
    buf: Vec<u8>,
    start: usize,
    stream_offset: usize,
    limit: usize,
    open: Vec<u32>,
}

impl Default for FxReader {
    fn default() -> Self {
        FxReader::new()
    }
}

impl FxReader {
    /// Creates a reader with the default element limit.
    pub fn new() -> FxReader {
        FxReader::with_limit(DEFAULT_ELEMENT_LIMIT)
    }

    /// Creates a reader that rejects any element longer than `limit` bytes.
    pub fn with_limit(limit: usize) -> FxReader {
        FxReader {
            buf: Vec::new(),
            start: 0,
            stream_offset: 0,
            limit,
            open: Vec::new(),
        }
    }

    /// Appends the next TransferBuffer.
    pub fn feed(&mut self, bytes: &[u8]) {
        // Compacts when the consumed prefix dominates, so large streams stay linear.
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Returns the stream offset of the next element.
    pub fn offset(&self) -> usize {
        self.stream_offset
    }

    /// Returns the number of bytes buffered but not yet returned as elements.
    pub fn pending(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }

    /// Returns the markers opened and not yet closed, innermost last.
    pub fn open_markers(&self) -> &[u32] {
        &self.open
    }

    /// Returns the next whole element, or `Ok(None)` when more input is needed.
    ///
    /// # Errors
    /// [`FxError::Element`] for a malformed element, [`FxError::TooLarge`] for an element
    /// over the limit, [`FxError::Unbalanced`] for an end marker without its start.
    pub fn next_element(&mut self) -> Result<Option<FxElement>, FxError> {
        let rest = self.buf.get(self.start..).unwrap_or_default();
        let Some((element, used)) = FxElement::decode(rest, self.stream_offset)? else {
            let needed = FxElement::declared_need(rest, self.stream_offset);
            if needed > self.limit {
                return Err(FxError::TooLarge {
                    offset: self.stream_offset,
                    needed,
                    limit: self.limit,
                });
            }
            return Ok(None);
        };
        if let FxElement::Marker(tag) = element {
            self.track_marker(tag)?;
        }
        self.start += used;
        self.stream_offset += used;
        Ok(Some(element))
    }

    fn track_marker(&mut self, tag: u32) -> Result<(), FxError> {
        if let Some(openers) = marker::opener_of(tag) {
            match self.open.last() {
                Some(open) if openers.contains(open) => {
                    self.open.pop();
                }
                _ => {
                    return Err(FxError::Unbalanced {
                        marker: tag,
                        offset: self.stream_offset,
                        problem: "end marker without its start marker",
                    });
                }
            }
        } else if marker::opens(tag) {
            self.open.push(tag);
        }
        Ok(())
    }

    /// Checks that the stream is complete: no element is cut and every start marker is
    /// closed. Call it once TransferStatus is Done.
    ///
    /// # Errors
    /// [`FxError::Incomplete`] or [`FxError::Unbalanced`].
    pub fn finish(&self) -> Result<(), FxError> {
        if self.pending() > 0 {
            return Err(FxError::Incomplete {
                offset: self.stream_offset,
                pending: self.pending(),
            });
        }
        if let Some(&open) = self.open.last() {
            return Err(FxError::Unbalanced {
                marker: open,
                offset: self.stream_offset,
                problem: "the stream ended before this marker was closed",
            });
        }
        Ok(())
    }

    /// Reads a complete stream into elements.
    ///
    /// # Errors
    /// As [`FxReader::next_element`] and [`FxReader::finish`].
    pub fn read_all(bytes: &[u8]) -> Result<Vec<FxElement>, FxError> {
        let mut reader = FxReader::new();
        reader.feed(bytes);
        let mut elements = Vec::new();
        while let Some(element) = reader.next_element()? {
            elements.push(element);
        }
        reader.finish()?;
        Ok(elements)
    }
}

/// Encodes elements into a stream.
pub fn encode_elements(elements: &[FxElement]) -> Vec<u8> {
    let mut out = Vec::new();
    for element in elements {
        element.encode(&mut out);
    }
    out
}

/// The contents of a message in a stream: properties, recipients and attachments
/// (messageContent, MS-OXCFXICS 2.2.4.3.1).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct MessageContent {
    /// The message's properties, including MetaTagFXDelProp entries in stream order.
    pub props: Vec<FxProp>,
    /// One property list per recipient.
    pub recipients: Vec<Vec<FxProp>>,
    /// The attachments.
    pub attachments: Vec<Attachment>,
}

/// An attachment in a stream.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct Attachment {
    /// The attachment's properties.
    pub props: Vec<FxProp>,
    /// The embedded message, for attachments of method 5.
    pub embedded: Option<Box<MessageContent>>,
}

/// A message change of a contents sync (messageChange).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct MessageChange {
    /// The header (PidTagSourceKey, PidTagLastModificationTime, PidTagChangeKey,
    /// PidTagPredecessorChangeList, PidTagAssociated, and with the matching flags PidTagMid,
    /// PidTagMessageSize, PidTagChangeNumber).
    pub header: Vec<FxProp>,
    /// The progressPerMessage that preceded it: message size and whether it is FAI.
    pub progress: Option<(i32, bool)>,
    /// Whether it came as IncrSyncChgPartial.
    pub partial: bool,
    /// The message content after IncrSyncMessage.
    pub content: MessageContent,
}

impl MessageChange {
    /// Returns the header property with `tag`.
    pub fn header_value(&self, tag: PropTag) -> Option<&PropValue> {
        self.header.iter().find(|p| p.tag == tag).map(|p| &p.value)
    }
}

/// One unit of a synchronization download.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub enum SyncEvent {
    /// progressTotal: the 32-byte progress information.
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    ProgressTotal(Vec<u8>),
    /// A message change (contents sync).
    MessageChange(Box<MessageChange>),
    /// A folder change (hierarchy sync): the folder's properties.
    FolderChange(Vec<FxProp>),
    /// Deletions: REPLID-form IDSETs of deleted ids, ids no longer in scope, and expired
    /// ids. A real server reported soft deletes only as "no longer in scope".
    Deletions {
        /// MetaTagIdsetDeleted.
        deleted: Option<IdSet>,
        /// MetaTagIdsetNoLongerInScope.
        no_longer_in_scope: Option<IdSet>,
        /// MetaTagIdsetExpired.
        expired: Option<IdSet>,
    },
    /// Read-state changes: REPLID-form IDSETs of messages marked read and unread.
    ReadStateChanges {
        /// MetaTagIdsetRead.
        read: Option<IdSet>,
        /// MetaTagIdsetUnread.
        unread: Option<IdSet>,
    },
    /// The final ICS state.
    State(IcsState),
    /// IncrSyncEnd: the stream is over.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Top,
    ProgressTotal,
    ProgressPerMessage,
    ChangeHeader,
    Deletions,
    ReadStates,
    State,
    Ended,
}

/// A parser of the contents-sync and hierarchy-sync grammar (MS-OXCFXICS 2.2.4.3.20 and
/// 2.2.4.3.21) over the lexer's elements.
///
/// It needs no lookahead across buffers: a unit is emitted once the element that ends it
/// arrives.
#[derive(Debug, Clone)]
pub struct SyncParser {
    section: Section,
    offset: usize,
    pending_progress: Vec<PropValue>,
    progress: Option<(i32, bool)>,
    change: Option<MessageChange>,
    in_message: bool,
    // Stack of open content scopes: the message, then per StartEmbed an embedded message.
    contents: Vec<MessageContent>,
    attachments: Vec<Attachment>,
    recipient: Option<Vec<FxProp>>,
    props: Vec<FxProp>,
    state: IcsState,
}

impl Default for SyncParser {
    fn default() -> Self {
        SyncParser::new()
    }
}

fn idset_of(prop: &FxProp, form: IdsetForm) -> Result<IdSet, FxError> {
    let bytes = match &prop.value {
        PropValue::Binary(bytes) => bytes.as_slice(),
        _ => &[],
    };
    IdSet::decode(bytes, form).map_err(|source| FxError::Idset {
        tag: prop.tag.0,
        source,
    })
}

impl SyncParser {
    /// Creates a parser at the start of a stream.
    pub fn new() -> SyncParser {
        SyncParser {
            section: Section::Top,
            offset: 0,
            pending_progress: Vec::new(),
            progress: None,
            change: None,
            in_message: false,
            contents: Vec::new(),
            attachments: Vec::new(),
            recipient: None,
            props: Vec::new(),
            state: IcsState::default(),
        }
    }

    /// Returns whether IncrSyncEnd was seen.
    pub fn is_done(&self) -> bool {
        self.section == Section::Ended
    }

    /// Consumes one element; appends the units it completes to `out`. `offset` is the
    /// element's stream offset, for error messages.
    ///
    /// # Errors
    /// [`FxError::Grammar`] for an element the grammar does not allow here,
    /// [`FxError::Idset`] for a malformed IDSET.
    pub fn push(
        &mut self,
        element: FxElement,
        offset: usize,
        out: &mut Vec<SyncEvent>,
    ) -> Result<(), FxError> {
        self.offset = offset;
        match element {
            FxElement::Property(prop) => self.push_prop(prop, out),
            FxElement::Marker(tag) => self.push_marker(tag, out),
        }
    }

    fn grammar(&self, problem: &'static str) -> FxError {
        FxError::Grammar {
            offset: self.offset,
            problem,
        }
    }

    fn push_prop(&mut self, prop: FxProp, out: &mut Vec<SyncEvent>) -> Result<(), FxError> {
        match self.section {
            Section::ProgressTotal => {
                let PropValue::Binary(bytes) = prop.value else {
                    return Err(self.grammar("progressTotal needs a binary value"));
                };
                out.push(SyncEvent::ProgressTotal(bytes));
                self.section = Section::Top;
            }
            Section::ProgressPerMessage => {
                self.pending_progress.push(prop.value);
                if let [PropValue::I32(size), PropValue::Bool(fai)] =
                    self.pending_progress.as_slice()
                {
                    self.progress = Some((*size, *fai));
                    self.pending_progress.clear();
                    self.section = Section::Top;
                } else if self.pending_progress.len() >= 2 {
                    return Err(self.grammar("progressPerMessage needs an Int32 and a Boolean"));
                }
            }
            Section::ChangeHeader => {
                if self.in_message {
                    self.add_content_prop(prop)?;
                } else if let Some(change) = self.change.as_mut() {
                    change.header.push(prop);
                }
            }
            Section::Deletions | Section::ReadStates => self.props.push(prop),
            Section::State => {
                if let Some(property) = StateProperty::from_tag(prop.tag.0) {
                    let set = idset_of(&prop, IdsetForm::ReplGuid)?;
                    *self.state.get_mut(property) = set;
                }
            }
            Section::Top | Section::Ended => {
                return Err(self.grammar("a property outside any change, deletion or state"));
            }
        }
        Ok(())
    }

    fn add_content_prop(&mut self, prop: FxProp) -> Result<(), FxError> {
        if let Some(recipient) = self.recipient.as_mut() {
            recipient.push(prop);
        } else if let Some(attachment) = self.attachments.last_mut() {
            attachment.props.push(prop);
        } else if let Some(content) = self.contents.last_mut() {
            content.props.push(prop);
        } else {
            return Err(self.grammar("a message property outside a message"));
        }
        Ok(())
    }

    fn finish_unit(&mut self, out: &mut Vec<SyncEvent>) -> Result<(), FxError> {
        match self.section {
            Section::ChangeHeader => {
                if self.recipient.is_some()
                    || !self.attachments.is_empty()
                    || self.contents.len() > 1
                {
                    return Err(self.grammar("a change ended inside a recipient or attachment"));
                }
                if let Some(mut change) = self.change.take() {
                    if self.in_message {
                        change.content = self.contents.pop().unwrap_or_default();
                        out.push(SyncEvent::MessageChange(Box::new(change)));
                    } else {
                        out.push(SyncEvent::FolderChange(change.header));
                    }
                }
                self.in_message = false;
                self.contents.clear();
            }
            Section::Deletions => {
                let mut deleted = None;
                let mut no_longer_in_scope = None;
                let mut expired = None;
                for prop in std::mem::take(&mut self.props) {
                    let set = Some(idset_of(&prop, IdsetForm::ReplId)?);
                    match prop.tag.0 {
                        0x67E5_0102 => deleted = set,
                        0x4021_0102 => no_longer_in_scope = set,
                        0x6793_0102 => expired = set,
                        _ => {}
                    }
                }
                out.push(SyncEvent::Deletions {
                    deleted,
                    no_longer_in_scope,
                    expired,
                });
            }
            Section::ReadStates => {
                let mut read = None;
                let mut unread = None;
                for prop in std::mem::take(&mut self.props) {
                    let set = Some(idset_of(&prop, IdsetForm::ReplId)?);
                    match prop.tag.0 {
                        0x402D_0102 => read = set,
                        0x402E_0102 => unread = set,
                        _ => {}
                    }
                }
                out.push(SyncEvent::ReadStateChanges { read, unread });
            }
            _ => {}
        }
        self.section = Section::Top;
        Ok(())
    }

    fn push_marker(&mut self, tag: u32, out: &mut Vec<SyncEvent>) -> Result<(), FxError> {
        use marker::*;
        if self.section == Section::Ended {
            return Err(self.grammar("an element after IncrSyncEnd"));
        }
        if self.section == Section::ChangeHeader
            && self.in_message
            && self.push_content_marker(tag)?.is_some()
        {
            return Ok(());
        }
        match tag {
            INCR_SYNC_MESSAGE => {
                if self.section != Section::ChangeHeader || self.in_message {
                    return Err(self.grammar("IncrSyncMessage outside a message change header"));
                }
                self.in_message = true;
                self.contents.push(MessageContent::default());
            }
            INCR_SYNC_PROGRESS_MODE => {
                self.finish_unit(out)?;
                self.section = Section::ProgressTotal;
            }
            INCR_SYNC_PROGRESS_PER_MSG => {
                self.finish_unit(out)?;
                self.section = Section::ProgressPerMessage;
            }
            INCR_SYNC_CHG | INCR_SYNC_CHG_PARTIAL => {
                self.finish_unit(out)?;
                self.section = Section::ChangeHeader;
                self.change = Some(MessageChange {
                    progress: self.progress.take(),
                    partial: tag == INCR_SYNC_CHG_PARTIAL,
                    ..MessageChange::default()
                });
            }
            INCR_SYNC_DEL => {
                self.finish_unit(out)?;
                self.section = Section::Deletions;
            }
            INCR_SYNC_READ => {
                self.finish_unit(out)?;
                self.section = Section::ReadStates;
            }
            INCR_SYNC_STATE_BEGIN => {
                self.finish_unit(out)?;
                self.section = Section::State;
            }
            INCR_SYNC_STATE_END => {
                if self.section != Section::State {
                    return Err(self.grammar("IncrSyncStateEnd without IncrSyncStateBegin"));
                }
                out.push(SyncEvent::State(std::mem::take(&mut self.state)));
                self.section = Section::Top;
            }
            INCR_SYNC_END => {
                self.finish_unit(out)?;
                out.push(SyncEvent::End);
                self.section = Section::Ended;
            }
            // Group information of partial changes is not interpreted.
            INCR_SYNC_GROUP_INFO => {}
            _ => return Err(self.grammar("a marker that the sync grammar does not allow here")),
        }
        Ok(())
    }

    /// Handles recipient, attachment and embedded-message markers inside a message;
    /// returns `None` for markers that end the message.
    fn push_content_marker(&mut self, tag: u32) -> Result<Option<()>, FxError> {
        use marker::*;
        match tag {
            START_RECIP => {
                if self.recipient.is_some() {
                    return Err(self.grammar("StartRecip inside a recipient"));
                }
                self.recipient = Some(Vec::new());
            }
            END_TO_RECIP => {
                let Some(recipient) = self.recipient.take() else {
                    return Err(self.grammar("EndToRecip without StartRecip"));
                };
                let Some(content) = self.contents.last_mut() else {
                    return Err(self.grammar("a recipient outside a message"));
                };
                content.recipients.push(recipient);
            }
            NEW_ATTACH => {
                if self.attachments.len() >= self.contents.len() {
                    return Err(self.grammar("NewAttach inside an attachment"));
                }
                self.attachments.push(Attachment::default());
            }
            END_ATTACH => {
                if self.attachments.len() != self.contents.len() {
                    return Err(self.grammar("EndAttach without NewAttach"));
                }
                let Some(attachment) = self.attachments.pop() else {
                    return Err(self.grammar("EndAttach without NewAttach"));
                };
                let Some(content) = self.contents.last_mut() else {
                    return Err(self.grammar("an attachment outside a message"));
                };
                content.attachments.push(attachment);
            }
            START_EMBED => {
                if self.attachments.len() != self.contents.len() {
                    return Err(self.grammar("StartEmbed outside an attachment"));
                }
                self.contents.push(MessageContent::default());
            }
            END_EMBED => {
                if self.contents.len() < 2 || self.attachments.len() + 1 != self.contents.len() {
                    return Err(self.grammar("EndEmbed without StartEmbed"));
                }
                let embedded = self.contents.pop().unwrap_or_default();
                if let Some(attachment) = self.attachments.last_mut() {
                    attachment.embedded = Some(Box::new(embedded));
                }
            }
            _ => return Ok(None),
        }
        Ok(Some(()))
    }
}

/// Writes FastTransfer streams for the emulator.
#[derive(Debug, Clone, Default)]
pub struct FxWriter {
    out: Vec<u8>,
}

impl FxWriter {
    /// Creates an empty stream.
    pub fn new() -> FxWriter {
        FxWriter::default()
    }

    /// Appends a marker.
    pub fn marker(&mut self, tag: u32) -> &mut Self {
        self.out.put_u32(tag);
        self
    }

    /// Appends a property.
    pub fn prop(&mut self, prop: &FxProp) -> &mut Self {
        FxElement::Property(prop.clone()).encode(&mut self.out);
        self
    }

    /// Appends an unnamed property; the caller pairs the value with a tag of its type.
    pub fn value(&mut self, tag: PropTag, value: PropValue) -> &mut Self {
        self.prop(&FxProp {
            tag,
            name: None,
            value,
        })
    }

    /// Appends the message content: properties, recipients, attachments.
    pub fn message_content(&mut self, content: &MessageContent) -> &mut Self {
        for prop in &content.props {
            self.prop(prop);
        }
        for recipient in &content.recipients {
            self.marker(marker::START_RECIP);
            for prop in recipient {
                self.prop(prop);
            }
            self.marker(marker::END_TO_RECIP);
        }
        for attachment in &content.attachments {
            self.marker(marker::NEW_ATTACH);
            for prop in &attachment.props {
                self.prop(prop);
            }
            if let Some(embedded) = &attachment.embedded {
                self.marker(marker::START_EMBED);
                self.message_content(embedded);
                self.marker(marker::END_EMBED);
            }
            self.marker(marker::END_ATTACH);
        }
        self
    }

    /// Appends a message change (with its progressPerMessage when present).
    pub fn message_change(&mut self, change: &MessageChange) -> &mut Self {
        if let Some((size, fai)) = change.progress {
            self.marker(marker::INCR_SYNC_PROGRESS_PER_MSG);
            self.value(PropTag(0x0000_0003), PropValue::I32(size));
            self.value(PropTag(0x0000_000B), PropValue::Bool(fai));
        }
        self.marker(if change.partial {
            marker::INCR_SYNC_CHG_PARTIAL
        } else {
            marker::INCR_SYNC_CHG
        });
        for prop in &change.header {
            self.prop(prop);
        }
        self.marker(marker::INCR_SYNC_MESSAGE);
        self.message_content(&change.content)
    }

    /// Appends a folder change of a hierarchy sync.
    pub fn folder_change(&mut self, props: &[FxProp]) -> &mut Self {
        self.marker(marker::INCR_SYNC_CHG);
        for prop in props {
            self.prop(prop);
        }
        self
    }

    /// Appends a deletions unit with REPLID-form IDSETs; empty sets are left out.
    pub fn deletions(&mut self, deleted: &IdSet, no_longer_in_scope: &IdSet) -> &mut Self {
        if deleted.is_empty() && no_longer_in_scope.is_empty() {
            return self;
        }
        self.marker(marker::INCR_SYNC_DEL);
        for (tag, set) in [(0x67E5_0102, deleted), (0x4021_0102, no_longer_in_scope)] {
            if !set.is_empty() {
                self.value(
                    PropTag(tag),
                    PropValue::Binary(set.encode(IdsetForm::ReplId)),
                );
            }
        }
        self
    }

    /// Appends a read-state unit with REPLID-form IDSETs; empty sets are left out.
    pub fn read_state_changes(&mut self, read: &IdSet, unread: &IdSet) -> &mut Self {
        if read.is_empty() && unread.is_empty() {
            return self;
        }
        self.marker(marker::INCR_SYNC_READ);
        for (tag, set) in [(0x402D_0102, read), (0x402E_0102, unread)] {
            if !set.is_empty() {
                self.value(
                    PropTag(tag),
                    PropValue::Binary(set.encode(IdsetForm::ReplId)),
                );
            }
        }
        self
    }

    /// Appends the state unit; `contents` adds the FAI and read sets of a contents sync.
    pub fn state(&mut self, state: &IcsState, contents: bool) -> &mut Self {
        self.marker(marker::INCR_SYNC_STATE_BEGIN);
        for property in StateProperty::ALL {
            let contents_only = matches!(
                property,
                StateProperty::CnsetSeenFai | StateProperty::CnsetRead
            );
            if contents_only && !contents {
                continue;
            }
            let bytes = state.get(property).encode(IdsetForm::ReplGuid);
            self.value(PropTag(property.tag()), PropValue::Binary(bytes));
        }
        self.marker(marker::INCR_SYNC_STATE_END)
    }

    /// Appends IncrSyncEnd.
    pub fn end(&mut self) -> &mut Self {
        self.marker(marker::INCR_SYNC_END)
    }

    /// Returns the stream so far.
    pub fn bytes(&self) -> &[u8] {
        &self.out
    }

    /// Consumes the writer and returns the stream.
    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }
}

/// Splits a stream into TransferBuffers of at most `max` bytes (at least 1); a reader
/// accepts cuts anywhere, including inside tags and values.
pub fn split_stream(stream: &[u8], max: usize) -> Vec<&[u8]> {
    stream.chunks(max.max(1)).collect()
}

/// Fuzzing entry point: feeds `data` to the lexer in two buffers cut where the first byte
/// says, runs the sync parser over the elements, and checks that the elements re-encode
/// to a stream that lexes to the same encoding.
///
/// # Panics
/// When the re-encoding is not stable, which is a codec bug.
#[doc(hidden)]
pub fn fuzz_stream(data: &[u8]) {
    let cut = usize::from(data.first().copied().unwrap_or(0)).min(data.len());
    let (head, tail) = data.split_at(cut);
    let mut reader = FxReader::with_limit(1 << 20);
    let mut parser = SyncParser::new();
    let mut events = Vec::new();
    let mut elements = Vec::new();
    for part in [head, tail] {
        reader.feed(part);
        loop {
            let offset = reader.offset();
            match reader.next_element() {
                Ok(Some(element)) => {
                    let _ = parser.push(element.clone(), offset, &mut events);
                    elements.push(element);
                }
                Ok(None) | Err(_) => break,
            }
        }
    }
    let _ = reader.finish();

    let first = encode_elements(&elements);
    let mut again = FxReader::with_limit(1 << 20);
    again.feed(&first);
    let mut relexed = Vec::new();
    while let Ok(Some(element)) = again.next_element() {
        relexed.push(element);
    }
    assert_eq!(
        encode_elements(&relexed),
        first,
        "FastTransfer encoding is not stable"
    );
}
