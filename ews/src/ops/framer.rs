//! Splits a response body that arrives in chunks into its list elements (the changes of
//! SyncFolderItems, the items of FindItem and GetItem) and the rest of the document. A
//! client can so parse each change or item as soon as its bytes are in, and keep at most
//! one unfinished element and one chunk in memory besides the envelope.
//!
//! The rest of the document, the "skeleton", is the body with every list element cut
//! out: the envelope, the response codes, SyncState and paging attributes. It is parsed
//! at the end by the operation's ordinary parser, so faults, error messages and
//! malformed bodies give the same errors as when the whole body is parsed at once.
//!
//! The framer only finds element boundaries. Each list element is handed out with the
//! namespace declarations in scope around it, wrapped in a `frame` element, and parsed
//! by the typed readers of [`super::sync`] and [`super::items`].
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::VecDeque;

use quick_xml::events::{BytesStart, Event};

use super::sync::SyncChange;
use super::typed;
use crate::error::EwsError;
use crate::types::Item;
use crate::xml::{RawStep, XmlReader};

/// The list of a response that the framer cuts out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ListKind {
    /// `m:Changes` of a SyncFolderItemsResponseMessage (SyncFolderItems, MS-OXWSSYNC
    /// 3.1.4.2).
    SyncChanges,
    /// `t:Items` of the `m:RootFolder` of a FindItemResponseMessage (FindItem,
    /// MS-OXWSSRCH 3.1.4.2).
    FindItems,
    /// `m:Items` of a GetItemResponseMessage (GetItem, MS-OXWSCORE 3.1.4.4).
    GetItems,
}

impl ListKind {
    /// Returns the local names of the list element's parent and of the list element.
    fn path(self) -> (&'static [u8], &'static [u8]) {
        match self {
            Self::SyncChanges => (b"SyncFolderItemsResponseMessage", b"Changes"),
            Self::FindItems => (b"RootFolder", b"Items"),
            Self::GetItems => (b"GetItemResponseMessage", b"Items"),
        }
    }
}

/// One list element cut out of the body, with its namespace context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// The position of the response message that contains the element, from 0.
    pub message_index: usize,
    /// A small document: a `frame` element that declares the namespaces in scope and
    /// contains the list element.
    pub document: Vec<u8>,
}

impl Fragment {
    /// Parses the fragment as a SyncFolderItems change. `None` for a change element this
    /// crate does not know, which the whole-body reader skips too.
    ///
    /// # Errors
    ///
    /// [`EwsError::MalformedXml`] for a change that is not well-formed, with the offset
    /// inside the fragment.
    pub fn parse_change(&self) -> Result<Option<SyncChange>, EwsError> {
        let mut reader = XmlReader::new(&self.document);
        let Some(start) = open_frame(&mut reader)? else {
            return Ok(None);
        };
        let change = typed::read_change(&mut reader, &start)?;
        if change.is_none() {
            let name = String::from_utf8_lossy(start.local_name());
            tracing::warn!(element = %name, "SyncFolderItems: skipping an unknown change element");
        }
        Ok(change)
    }

    /// Parses the fragment as an item of any kind.
    ///
    /// # Errors
    ///
    /// [`EwsError::MalformedXml`] for an item that is not well-formed, with the offset
    /// inside the fragment.
    pub fn parse_item(&self) -> Result<Option<Item>, EwsError> {
        let mut reader = XmlReader::new(&self.document);
        let Some(start) = open_frame(&mut reader)? else {
            return Ok(None);
        };
        typed::read_item(&mut reader, &start).map(Some)
    }
}

/// Reads the frame's start tag and returns the start tag of the element inside it.
fn open_frame<'a>(
    reader: &mut XmlReader<'a>,
) -> Result<Option<crate::xml::RawStart<'a>>, EwsError> {
    match reader.next_raw()? {
        RawStep::Start(frame) if !frame.empty => reader.next_child_raw(),
        _ => Ok(None),
    }
}

/// An open element outside the list elements: its local name and the namespace
/// declarations on its start tag, as raw `(prefix, value)` bytes (an empty prefix is
/// the default namespace).
#[derive(Debug)]
struct Open {
    name: Vec<u8>,
    declarations: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The framer: push chunks in, take fragments out, and take the skeleton at the end.
/// It does no I/O and never fails: input it cannot follow goes to the skeleton, where
/// the operation's parser reports it.
#[derive(Debug)]
pub struct Framer {
    kind: ListKind,
    /// Bytes received and not yet moved to the skeleton or to a fragment.
    pending: Vec<u8>,
    /// The end of the last event read, in `pending`.
    scanned: usize,
    /// The end of the bytes already copied to the skeleton or cut out, in `pending`.
    flushed: usize,
    /// The document without its list elements.
    skeleton: Vec<u8>,
    /// The open elements outside list elements, outermost first.
    open: Vec<Open>,
    /// Inside a list element: its start offset in `pending` and the number of its
    /// elements open, itself included.
    element: Option<(usize, usize)>,
    /// Response messages seen so far (children of `ResponseMessages`).
    messages: usize,
    /// Set on a DTD: from then on everything goes to the skeleton, so the operation's
    /// parser rejects the document as it would without the framer.
    passthrough: bool,
    ready: VecDeque<Fragment>,
    high_water: usize,
}

impl Framer {
    /// Creates a framer that cuts out the elements of `kind`.
    pub fn new(kind: ListKind) -> Self {
        Self {
            kind,
            pending: Vec::new(),
            scanned: 0,
            flushed: 0,
            skeleton: Vec::new(),
            open: Vec::new(),
            element: None,
            messages: 0,
            passthrough: false,
            ready: VecDeque::new(),
            high_water: 0,
        }
    }

    /// Adds the next chunk of the body and cuts out every list element it completes.
    pub fn push(&mut self, chunk: &[u8]) {
        self.pending.extend_from_slice(chunk);
        self.high_water = self.high_water.max(self.pending.len());
        if !self.passthrough {
            self.scan();
        }
        if self.passthrough {
            self.skeleton.append(&mut self.pending);
            self.scanned = 0;
            self.flushed = 0;
        }
    }

    /// Returns the next complete list element, in document order.
    pub fn next_fragment(&mut self) -> Option<Fragment> {
        self.ready.pop_front()
    }

    /// Returns the largest number of bytes the framer held at once outside the
    /// skeleton: about the longest list element plus one chunk.
    pub fn high_water(&self) -> usize {
        self.high_water
    }

    /// Returns the length of the skeleton so far.
    pub fn skeleton_len(&self) -> usize {
        self.skeleton.len()
    }

    /// Ends the body and returns the skeleton. The bytes of an unfinished list element
    /// go back into it, so a truncated body fails in the operation's parser.
    pub fn finish(mut self) -> Vec<u8> {
        let rest = self.pending.get(self.flushed..).unwrap_or_default();
        self.skeleton.extend_from_slice(rest);
        self.skeleton
    }

    /// Reads the complete events of `pending` after `scanned`, cutting out each list
    /// element that ends and copying the bytes between them to the skeleton.
    fn scan(&mut self) {
        // Taken out so the reader can borrow it while the state changes.
        let pending = std::mem::take(&mut self.pending);
        let input = pending.get(self.scanned..).unwrap_or_default();
        let base = self.scanned;
        let mut reader = quick_xml::Reader::from_reader(input);
        // Each scan starts in the middle of the document, after start tags that this
        // reader did not see.
        reader.config_mut().check_end_names = false;
        reader.config_mut().allow_unmatched_ends = true;
        let mut completed = Vec::new();
        loop {
            let before = base + position(&reader);
            let event = match reader.read_event() {
                Ok(event) => event,
                // Most likely an event cut at the end of the chunk, so wait for more. A
                // real syntax error stays in the skeleton for the final parse to report.
                Err(_) => break,
            };
            let after = base + position(&reader);
            match event {
                Event::Eof => break,
                // Text at the end may continue in the next chunk. It is consumed all
                // the same: only tag boundaries matter here, and the next scan starting
                // inside the text reads the rest as text too. So a large MimeContent is
                // scanned once, not once per chunk.
                Event::DocType(_) => {
                    self.passthrough = true;
                    break;
                }
                Event::Start(start) => self.on_start(&start, before),
                Event::Empty(_) => {
                    if self.element.is_none() && self.at_list() {
                        self.complete(&pending, before, after);
                        completed.push((before, after));
                    } else if self.element.is_none() && self.in_messages() {
                        self.messages += 1;
                    }
                }
                Event::End(_) => match self.element {
                    Some((start, 1)) => {
                        self.complete(&pending, start, after);
                        completed.push((start, after));
                        self.element = None;
                    }
                    Some((start, depth)) => self.element = Some((start, depth - 1)),
                    None => {
                        self.open.pop();
                    }
                },
                _ => {}
            }
            self.scanned = after;
        }
        self.pending = pending;
        if self.passthrough {
            return;
        }

        for (start, end) in completed {
            self.cut(start, end);
        }
        let keep_from = match self.element {
            Some((start, _)) => start,
            None => self.scanned,
        };
        if keep_from > self.flushed {
            let bytes = self
                .pending
                .get(self.flushed..keep_from)
                .unwrap_or_default();
            self.skeleton.extend_from_slice(bytes);
            self.flushed = keep_from;
        }
        self.pending.drain(..self.flushed.min(self.pending.len()));
        self.scanned = self.scanned.saturating_sub(self.flushed);
        if let Some((start, depth)) = self.element {
            self.element = Some((start.saturating_sub(self.flushed), depth));
        }
        self.flushed = 0;
    }

    fn on_start(&mut self, start: &BytesStart<'_>, offset: usize) {
        if let Some((begin, depth)) = self.element {
            self.element = Some((begin, depth + 1));
            return;
        }
        if self.at_list() {
            self.element = Some((offset, 1));
            return;
        }
        if self.in_messages() {
            self.messages += 1;
        }
        let declarations = start
            .attributes()
            .with_checks(false)
            .flatten()
            .filter_map(|attr| {
                let key = attr.key.as_ref();
                let prefix = if key == b"xmlns" {
                    Vec::new()
                } else {
                    key.strip_prefix(b"xmlns:")?.to_vec()
                };
                Some((prefix, attr.value.to_vec()))
            })
            .collect();
        self.open.push(Open {
            name: start.local_name().as_ref().to_vec(),
            declarations,
        });
    }

    /// Returns whether the innermost open element is the list element.
    fn at_list(&self) -> bool {
        let (parent, list) = self.kind.path();
        match self.open.as_slice() {
            [.., outer, inner] => outer.name == parent && inner.name == list,
            _ => false,
        }
    }

    /// Returns whether the innermost open element is `ResponseMessages`.
    fn in_messages(&self) -> bool {
        self.open
            .last()
            .is_some_and(|open| open.name == b"ResponseMessages")
    }

    /// Queues `pending[start..end]`, a complete list element, as a fragment. Called when
    /// its end is read, while the elements around it are still open.
    fn complete(&mut self, pending: &[u8], start: usize, end: usize) {
        let element = pending.get(start..end).unwrap_or_default();
        let document = self.frame(element);
        self.ready.push_back(Fragment {
            message_index: self.messages.saturating_sub(1),
            document,
        });
    }

    /// Moves the bytes before `pending[start..end]`, a list element already queued, into
    /// the skeleton, and drops the element's own bytes from it.
    fn cut(&mut self, start: usize, end: usize) {
        if start > self.flushed {
            let bytes = self.pending.get(self.flushed..start).unwrap_or_default();
            self.skeleton.extend_from_slice(bytes);
        }
        self.flushed = end;
    }

    /// Wraps `element` in a `frame` element that declares every namespace prefix in
    /// scope, the innermost declaration of each prefix winning.
    fn frame(&self, element: &[u8]) -> Vec<u8> {
        let mut scope: Vec<(&[u8], &[u8])> = Vec::new();
        for open in &self.open {
            for (prefix, value) in &open.declarations {
                scope.retain(|(known, _)| *known != prefix.as_slice());
                scope.push((prefix, value));
            }
        }

        let mut document = Vec::with_capacity(element.len() + 256);
        document.extend_from_slice(b"<frame");
        for (prefix, value) in scope {
            document.extend_from_slice(b" xmlns");
            if !prefix.is_empty() {
                document.push(b':');
                document.extend_from_slice(prefix);
            }
            // The value is copied as it was escaped; only its quotes are chosen here.
            let quote = if value.contains(&b'"') { b'\'' } else { b'"' };
            document.push(b'=');
            document.push(quote);
            document.extend_from_slice(value);
            document.push(quote);
        }
        document.push(b'>');
        document.extend_from_slice(element);
        document.extend_from_slice(b"</frame>");
        document
    }
}

fn position(reader: &quick_xml::Reader<&[u8]>) -> usize {
    usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX)
}
