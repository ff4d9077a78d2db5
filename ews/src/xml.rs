//! Namespace-aware XML reading for EWS over quick-xml's pull reader: a small owned element
//! tree built one subtree at a time, and borrowed start tags for the typed readers that
//! fill items without a tree. The reader resolves namespace declarations itself, in the
//! same pass that checks each start tag's attributes.
//!
//! Policy (XML 1.0 section 2.2 and 4.1, and what Exchange sends):
//! - No DTD: a `<!DOCTYPE` is rejected, and only the five predefined entities are known;
//!   any other entity reference is an error. Nothing is ever expanded from a DTD.
//! - Character references to characters XML 1.0 forbids (C0 controls other than tab, line
//!   feed and carriage return, NUL, surrogates, U+FFFE/U+FFFF) are accepted and always
//!   replaced by U+FFFD. Exchange writes such references for control characters stored in
//!   subjects and bodies; the replacement is the same every time, so an item compares
//!   equal across syncs. Raw control bytes are passed through as they are: quick-xml
//!   does not check them, and rejecting them would fail a whole batch for one subject.
//! - Elements are matched by namespace URI and local name, never by prefix. The `https://`
//!   spellings of the SOAP and EWS namespaces found in Microsoft's documentation are
//!   accepted as the `http://` ones.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::borrow::Cow;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{PrefixDeclaration, QName};

use crate::error::EwsError;

/// SOAP 1.1 envelope namespace.
pub const NS_SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// EWS messages namespace (`m:`).
pub const NS_MESSAGES: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
/// EWS types namespace (`t:`).
pub const NS_TYPES: &str = "http://schemas.microsoft.com/exchange/services/2006/types";
/// EWS errors namespace, used in fault details.
pub const NS_ERRORS: &str = "http://schemas.microsoft.com/exchange/services/2006/errors";

/// Deepest element nesting accepted; EWS documents stay far below it.
const MAX_DEPTH: usize = 128;

/// The namespace an element was bound to, reduced to the ones EWS uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ns {
    /// `http://schemas.xmlsoap.org/soap/envelope/`
    Soap,
    /// The EWS messages namespace.
    Messages,
    /// The EWS types namespace.
    Types,
    /// The EWS errors namespace.
    Errors,
    /// No namespace (an unqualified element).
    None,
    /// Any other namespace.
    Other,
}

impl Ns {
    fn from_uri(uri: &[u8]) -> Ns {
        let uri = uri.strip_prefix(b"https://").map_or(uri, |rest| rest);
        let uri = uri.strip_prefix(b"http://").map_or(uri, |rest| rest);
        match uri {
            b"schemas.xmlsoap.org/soap/envelope/" => Ns::Soap,
            b"schemas.microsoft.com/exchange/services/2006/messages" => Ns::Messages,
            b"schemas.microsoft.com/exchange/services/2006/types" => Ns::Types,
            b"schemas.microsoft.com/exchange/services/2006/errors" => Ns::Errors,
            _ => Ns::Other,
        }
    }

    /// Whether this is one of the EWS namespaces (or none, as servers sometimes leave
    /// EWS elements unqualified). Servers mix `m:` and `t:` for the same element, so
    /// readers of EWS content accept any of these.
    pub fn is_ews(self) -> bool {
        matches!(self, Ns::Messages | Ns::Types | Ns::Errors | Ns::None)
    }
}

/// One XML element with its attributes (local names), text and child elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// Namespace of the element.
    pub ns: Ns,
    /// Local name of the element (names EWS uses are static, others owned).
    pub name: Cow<'static, str>,
    /// Attributes by local name, in document order; namespace declarations are left out.
    pub attrs: Vec<(Cow<'static, str>, String)>,
    /// Concatenated character data directly inside this element.
    pub text: String,
    /// Child elements in document order.
    pub children: Vec<Element>,
}

impl Element {
    /// The value of the attribute with this local name.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether this is an EWS-namespace element with this local name.
    pub fn is(&self, name: &str) -> bool {
        self.ns.is_ews() && self.name == name
    }

    /// The first EWS child with this local name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(name))
    }

    /// All EWS children with this local name.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.is(name))
    }

    /// The trimmed text of the first EWS child with this local name.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }

    /// The first descendant (depth first, self excluded) with this local name.
    pub fn descendant(&self, name: &str) -> Option<&Element> {
        for c in &self.children {
            if c.is(name) {
                return Some(c);
            }
            if let Some(found) = c.descendant(name) {
                return Some(found);
            }
        }
        None
    }
}

/// A namespace-aware pull reader over a complete document in memory that hands out
/// steps and subtrees as [`Element`]s.
pub struct XmlReader<'a> {
    inner: Reader<&'a [u8]>,
    /// The whole input as text when it is valid UTF-8. It is checked once, so names,
    /// values and text taken from it need no check of their own. With `None` each piece
    /// is checked alone.
    doc: Option<&'a str>,
    pending: Option<RawStep<'a>>,
    depth: usize,
    /// Namespace declarations in scope, innermost last.
    bindings: Vec<Binding>,
}

/// One `xmlns` or `xmlns:prefix` declaration, reduced to the [`Ns`] it names.
#[derive(Debug)]
struct Binding {
    /// The prefix; empty for the default namespace.
    prefix: Vec<u8>,
    ns: Ns,
    /// Depth of the element that declared it.
    depth: usize,
}

/// One step of [`XmlReader::next_step`].
#[derive(Debug)]
pub enum Step<'a> {
    /// A start tag (or an empty element, with `empty` set).
    Start {
        /// The element without its content.
        element: Element,
        /// True for `<x/>`: no matching [`Step::End`] follows.
        empty: bool,
    },
    /// An end tag.
    End,
    /// Character data (already unescaped).
    Text(Cow<'a, str>),
    /// End of input.
    Eof,
}

/// One step of [`XmlReader::next_raw`]: a [`Step`] whose start tag is still borrowed.
#[derive(Debug)]
pub(crate) enum RawStep<'a> {
    /// A start tag or an empty element.
    Start(RawStart<'a>),
    /// An end tag.
    End,
    /// Character data (already unescaped).
    Text(Cow<'a, str>),
    /// End of input.
    Eof,
}

/// A start tag borrowed from the input, with its namespace resolved.
#[derive(Debug)]
pub(crate) struct RawStart<'a> {
    /// Namespace of the element.
    pub(crate) ns: Ns,
    /// The tag, attributes unread.
    pub(crate) tag: BytesStart<'a>,
    /// True for `<x/>`: no matching end tag follows.
    pub(crate) empty: bool,
    /// Byte offset of the tag, for errors.
    pub(crate) offset: u64,
    /// The input as text, as in [`XmlReader`].
    doc: Option<&'a str>,
    /// Start of the local name in the qualified name: after the first `:`, as
    /// quick-xml's `QName::local_name` splits it, or 0 without a prefix.
    local_start: usize,
    /// The attributes, when [`scan_attributes`] could read them.
    attrs: Option<AttrSpans>,
}

/// Maximum number of attributes per tag that [`scan_attributes`] keeps. Tags with more
/// are read with quick-xml's attribute iterator. An EWS ItemId carries two.
const MAX_SCANNED_ATTRS: usize = 4;

/// Byte ranges of a start tag's attributes in [`BytesStart::attributes_raw`].
#[derive(Debug, Clone, Copy, Default)]
struct AttrSpans {
    len: usize,
    /// Bit `i` set when the value of attribute `i` contains `&` and so needs unescaping.
    references: u8,
    spans: [AttrSpan; MAX_SCANNED_ATTRS],
}

/// The qualified name and the value (without quotes, still escaped) of one attribute.
#[derive(Debug, Clone, Copy, Default)]
struct AttrSpan {
    key: (u16, u16),
    value: (u16, u16),
}

impl AttrSpans {
    fn iter<'s>(&self, raw: &'s [u8]) -> impl Iterator<Item = (&'s [u8], &'s [u8])> + use<'s> {
        self.iter_indexed(raw).map(|(_, key, value)| (key, value))
    }

    /// As [`AttrSpans::iter`], with the position of each attribute.
    fn iter_indexed<'s>(
        &self,
        raw: &'s [u8],
    ) -> impl Iterator<Item = (usize, &'s [u8], &'s [u8])> + use<'s> {
        let spans = self.spans;
        (0..self.len.min(MAX_SCANNED_ATTRS)).filter_map(move |i| {
            let span = spans.get(i)?;
            Some((
                i,
                raw.get(usize::from(span.key.0)..usize::from(span.key.1))?,
                raw.get(usize::from(span.value.0)..usize::from(span.value.1))?,
            ))
        })
    }

    fn has_reference(&self, i: usize) -> bool {
        self.references & (1 << i) != 0
    }
}

/// Reads the attributes of a start tag (the bytes after its name) in one pass. Only the
/// plain shape `S name S? = S? "value"` repeated is read, with names of ASCII letters,
/// digits and `_:.-`, no duplicate name and at most [`MAX_SCANNED_ATTRS`] attributes.
/// Returns `None` for anything else, and the caller then uses quick-xml's checked
/// iterator, so the accepted documents and the error messages stay quick-xml's. What is
/// accepted here is split exactly as quick-xml splits it (a unit test compares them).
fn scan_attributes(raw: &[u8]) -> Option<AttrSpans> {
    let is_space = |b: &u8| matches!(b, b' ' | b'\r' | b'\n' | b'\t');
    let is_name = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'.' | b'-');
    let mut out = AttrSpans::default();
    let mut at = 0;
    loop {
        let spaces = raw.get(at..)?.iter().take_while(|b| is_space(b)).count();
        if at + spaces == raw.len() {
            return Some(out);
        }
        // An attribute needs white space before it (XML 1.0 section 3.1, production 40).
        if spaces == 0 {
            return None;
        }
        at += spaces;
        let key_start = at;
        let first = *raw.get(at)?;
        if !(first.is_ascii_alphabetic() || first == b'_' || first == b':') {
            return None;
        }
        at += raw.get(at..)?.iter().take_while(|b| is_name(b)).count();
        let key = (key_start, at);
        at += raw.get(at..)?.iter().take_while(|b| is_space(b)).count();
        if raw.get(at) != Some(&b'=') {
            return None;
        }
        at += 1;
        at += raw.get(at..)?.iter().take_while(|b| is_space(b)).count();
        let quote = *raw.get(at)?;
        if quote != b'"' && quote != b'\'' {
            return None;
        }
        at += 1;
        // One search finds the closing quote or a reference before it. ItemId values are
        // long, so searching each value again for `&` would cost about as much again.
        let rest = raw.get(at..)?;
        let first = memchr::memchr2(quote, b'&', rest)?;
        let (value_len, has_reference) = if rest.get(first) == Some(&quote) {
            (first, false)
        } else {
            let after = first + 1;
            (after + memchr::memchr(quote, rest.get(after..)?)?, true)
        };
        let value = (at, at + value_len);
        at += value_len + 1;

        let name = raw.get(key.0..key.1)?;
        if out.iter(raw).any(|(seen, _)| seen == name) {
            return None;
        }
        let slot = out.spans.get_mut(out.len)?;
        // Offsets are kept in 16 bits to keep each step small; a longer tag is not scanned.
        let narrow = |n: usize| u16::try_from(n).ok();
        *slot = AttrSpan {
            key: (narrow(key.0)?, narrow(key.1)?),
            value: (narrow(value.0)?, narrow(value.1)?),
        };
        out.references |= u8::from(has_reference) << out.len;
        out.len += 1;
    }
}

/// Returns the local part of a qualified name, after the first `:`, as quick-xml's
/// `QName::local_name` splits it. A byte loop is faster than its memchr call on the short
/// names of attributes.
fn local_part<'n>(name: QName<'n>) -> &'n [u8] {
    let name = name.into_inner();
    match name.iter().position(|b| *b == b':') {
        Some(colon) => name.get(colon + 1..).unwrap_or_default(),
        None => name,
    }
}

/// Returns the slice `bytes` as text taken from `doc` (already checked as UTF-8) when
/// `bytes` lies inside it, so the check is not repeated. Returns `None` otherwise.
fn doc_str<'a>(doc: Option<&'a str>, bytes: &[u8]) -> Option<&'a str> {
    let doc = doc?;
    let start = bytes.as_ptr().addr().checked_sub(doc.as_ptr().addr())?;
    doc.get(start..start.checked_add(bytes.len())?)
}

/// Returns the slice as text, from `doc` when it lies inside it and otherwise checked here.
fn as_text<'s>(doc: Option<&'s str>, bytes: &'s [u8]) -> Result<&'s str, std::str::Utf8Error> {
    match doc_str(doc, bytes) {
        Some(text) => Ok(text),
        None => std::str::from_utf8(bytes),
    }
}

impl<'a> RawStart<'a> {
    /// The local name as bytes.
    pub(crate) fn local_name(&self) -> &[u8] {
        let name = self.tag.name().into_inner();
        name.get(self.local_start..).unwrap_or(name)
    }

    /// Returns the local name as text, from the checked input when there is one. Returns
    /// `None` when the name is not UTF-8.
    pub(crate) fn local_name_str(&self) -> Option<&str> {
        as_text(self.doc, self.local_name()).ok()
    }

    /// Whether this is an EWS-namespace element with this local name.
    pub(crate) fn is(&self, name: &str) -> bool {
        self.ns.is_ews() && self.local_name() == name.as_bytes()
    }

    fn bad(&self, reason: String) -> EwsError {
        EwsError::MalformedXml {
            offset: self.offset,
            reason,
        }
    }

    /// Calls `f` with the local name and unescaped value of every attribute other than
    /// namespace declarations, in document order, after checking the element name.
    pub(crate) fn for_each_attr(
        &self,
        mut f: impl FnMut(&str, Cow<'_, str>),
    ) -> Result<(), EwsError> {
        as_text(self.doc, self.local_name())
            .map_err(|_| self.bad("element name is not UTF-8".into()))?;
        let Some(spans) = self.attrs else {
            // The reader checked for duplicates when it read the tag.
            for attr in self.tag.attributes().with_checks(false) {
                let attr = attr.map_err(|e| self.bad(e.to_string()))?;
                self.visit_attr(attr.key, &attr.value, true, &mut f)?;
            }
            return Ok(());
        };
        for (i, key, value) in spans.iter_indexed(self.tag.attributes_raw()) {
            self.visit_attr(QName(key), value, spans.has_reference(i), &mut f)?;
        }
        Ok(())
    }

    /// Passes one attribute to `f` unless it is a namespace declaration. A false
    /// `may_have_reference` means that the value contains no `&`.
    fn visit_attr(
        &self,
        key: QName<'_>,
        value: &[u8],
        may_have_reference: bool,
        f: &mut impl FnMut(&str, Cow<'_, str>),
    ) -> Result<(), EwsError> {
        if key.as_namespace_binding().is_some() {
            return Ok(());
        }
        let key = as_text(self.doc, local_part(key))
            .map_err(|_| self.bad("attribute name is not UTF-8".into()))?;
        let raw = as_text(self.doc, value)
            .map_err(|_| self.bad("attribute value is not UTF-8".into()))?;
        let value = if may_have_reference && raw.contains('&') {
            Cow::Owned(unescape(raw).map_err(|r| self.bad(r))?)
        } else {
            Cow::Borrowed(raw)
        };
        f(key, value);
        Ok(())
    }

    /// The element without its content.
    pub(crate) fn element(&self) -> Result<Element, EwsError> {
        let mut attrs = Vec::new();
        self.for_each_attr(|key, value| attrs.push((intern(key), value.into_owned())))?;
        let name = as_text(self.doc, self.local_name())
            .map_err(|_| self.bad("element name is not UTF-8".into()))?;
        Ok(Element {
            ns: self.ns,
            name: intern(name),
            attrs,
            text: String::new(),
            children: Vec::new(),
        })
    }
}

impl<'a> XmlReader<'a> {
    /// A reader over `input`.
    pub fn new(input: &'a [u8]) -> Self {
        let mut inner = Reader::from_reader(input);
        let config = inner.config_mut();
        config.check_end_names = true;
        config.expand_empty_elements = false;
        Self {
            inner,
            doc: std::str::from_utf8(input).ok(),
            pending: None,
            depth: 0,
            bindings: Vec::new(),
        }
    }

    /// Byte offset of the reader in the input.
    pub fn position(&self) -> u64 {
        self.inner.buffer_position()
    }

    /// Current element depth (0 outside the root element).
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The next structural step, skipping comments, processing instructions and the XML
    /// declaration, and joining adjacent text, CDATA and references into one
    /// [`Step::Text`].
    ///
    /// # Errors
    /// [`EwsError::MalformedXml`] with the byte offset for input that is not well-formed,
    /// declares a DTD or uses an unknown entity.
    pub fn next_step(&mut self) -> Result<Step<'a>, EwsError> {
        Ok(match self.next_raw()? {
            RawStep::Start(start) => Step::Start {
                element: start.element()?,
                empty: start.empty,
            },
            RawStep::End => Step::End,
            RawStep::Text(t) => Step::Text(t),
            RawStep::Eof => Step::Eof,
        })
    }

    /// As [`XmlReader::next_step`], but a start tag stays borrowed from the input: the
    /// typed readers use it to skip building an [`Element`] for every tag. Every tag is
    /// checked here, so readers that skip a tag reject the same documents as readers that
    /// build it.
    pub(crate) fn next_raw(&mut self) -> Result<RawStep<'a>, EwsError> {
        if let Some(step) = self.pending.take() {
            return Ok(step);
        }
        let mut text: Option<Cow<'a, str>> = None;
        loop {
            let before = self.inner.buffer_position();
            let bad = |reason: String| EwsError::MalformedXml {
                offset: before,
                reason,
            };
            // The result is matched in place, because moving the event out of it first
            // costs a copy per event.
            let piece: Cow<'a, str> = match self.inner.read_event() {
                Err(e) => {
                    return Err(EwsError::MalformedXml {
                        offset: self.inner.error_position(),
                        reason: e.to_string(),
                    });
                }
                Ok(Event::Text(t)) => match t.into_inner() {
                    Cow::Borrowed(b) => Cow::Borrowed(
                        as_text(self.doc, b).map_err(|_| bad("text is not UTF-8".into()))?,
                    ),
                    Cow::Owned(b) => Cow::Owned(
                        String::from_utf8(b).map_err(|_| bad("text is not UTF-8".into()))?,
                    ),
                },
                Ok(Event::CData(c)) => Cow::Owned(
                    std::str::from_utf8(&c)
                        .map_err(|_| bad("CDATA is not UTF-8".into()))?
                        .to_owned(),
                ),
                Ok(Event::GeneralRef(r)) => {
                    // Appended in place: a reference between two texts is common (`&amp;`
                    // in a subject), and a string per reference would cost an allocation.
                    let c = resolve_reference(&r).map_err(bad)?;
                    let acc = text.get_or_insert(Cow::Borrowed(""));
                    if let Cow::Borrowed(run) = acc {
                        // Sized once for the rest of the text up to the next tag, which
                        // unescaping can only shorten, so later pieces do not grow it.
                        let rest = self.raw_text_ahead();
                        let mut owned = String::with_capacity(run.len() + c.len_utf8() + rest);
                        owned.push_str(run);
                        *acc = Cow::Owned(owned);
                    }
                    acc.to_mut().push(c);
                    continue;
                }
                Ok(Event::DocType(_)) => {
                    return Err(bad(
                        "a DTD is not accepted (no DTD processing or entity expansion)".into(),
                    ));
                }
                Ok(Event::Comment(_) | Event::PI(_) | Event::Decl(_)) => continue,
                Ok(Event::Start(s)) => {
                    self.depth += 1;
                    if self.depth > MAX_DEPTH {
                        return Err(bad(format!("elements nested deeper than {MAX_DEPTH}")));
                    }
                    let (ns, attrs, local_start) = self.open_scope(&s, before)?;
                    let start = RawStart {
                        local_start,
                        ns,
                        tag: s,
                        empty: false,
                        offset: before,
                        doc: self.doc,
                        attrs,
                    };
                    return Ok(self.after_text(text, RawStep::Start(start)));
                }
                Ok(Event::Empty(s)) => {
                    // The element's own declarations apply to it and end with it.
                    self.depth += 1;
                    let scope = self.open_scope(&s, before);
                    self.close_scope();
                    let (ns, attrs, local_start) = scope?;
                    let start = RawStart {
                        local_start,
                        ns,
                        tag: s,
                        empty: true,
                        offset: before,
                        doc: self.doc,
                        attrs,
                    };
                    return Ok(self.after_text(text, RawStep::Start(start)));
                }
                Ok(Event::End(_)) => {
                    self.close_scope();
                    return Ok(self.after_text(text, RawStep::End));
                }
                Ok(Event::Eof) => return Ok(self.after_text(text, RawStep::Eof)),
            };
            text = Some(match text {
                None => piece,
                Some(mut acc) => {
                    acc.to_mut().push_str(&piece);
                    acc
                }
            });
        }
    }

    /// Checks a start tag (its name and every attribute, as [`RawStart::element`] reads
    /// them), records its namespace declarations at the current depth, and returns the
    /// namespace of the element. Done here, in one pass over the attributes, so that
    /// readers which keep nothing of a tag need not look at it again.
    fn open_scope(
        &mut self,
        tag: &BytesStart<'_>,
        offset: u64,
    ) -> Result<(Ns, Option<AttrSpans>, usize), EwsError> {
        let bad = |reason: String| EwsError::MalformedXml { offset, reason };
        let name = tag.name().into_inner();
        // Names are short, so a byte loop beats a memchr call here.
        let colon = name.iter().position(|b| *b == b':');
        let (prefix, local_start) = match colon {
            Some(at) => (name.get(..at), at + 1),
            None => (None, 0),
        };
        // A name in a document checked as a whole needs no check: quick-xml ends it at an
        // ASCII byte, so it cannot end inside a character.
        if self.doc.is_none() {
            std::str::from_utf8(name).map_err(|_| bad("element name is not UTF-8".into()))?;
        }
        let raw = tag.attributes_raw();
        // Most EWS elements have no attributes: skip setting up the iterator for them.
        if raw.iter().all(u8::is_ascii_whitespace) {
            let ns = self.resolve(prefix);
            return Ok((ns, Some(AttrSpans::default()), local_start));
        }
        let spans = scan_attributes(raw);
        match &spans {
            Some(spans) => {
                for (i, key, value) in spans.iter_indexed(raw) {
                    self.check_attr(QName(key), value, offset, Some(spans.has_reference(i)))?;
                }
            }
            None => {
                for attr in tag.attributes() {
                    let attr = attr.map_err(|e| bad(e.to_string()))?;
                    self.check_attr(attr.key, &attr.value, offset, None)?;
                }
            }
        }
        let ns = self.resolve(prefix);
        Ok((ns, spans, local_start))
    }

    /// Checks one attribute of the start tag at `offset` as [`RawStart::for_each_attr`]
    /// reads it, and records it when it is a namespace declaration. `has_reference` is
    /// whether the value contains `&`, when the attribute scan has found it out.
    fn check_attr(
        &mut self,
        key: QName<'_>,
        value: &[u8],
        offset: u64,
        has_reference: Option<bool>,
    ) -> Result<(), EwsError> {
        let bad = |reason: String| EwsError::MalformedXml { offset, reason };
        as_text(self.doc, local_part(key))
            .map_err(|_| bad("attribute name is not UTF-8".into()))?;
        let raw =
            as_text(self.doc, value).map_err(|_| bad("attribute value is not UTF-8".into()))?;
        let value = if has_reference.unwrap_or_else(|| raw.contains('&')) {
            Cow::Owned(unescape(raw).map_err(bad)?)
        } else {
            Cow::Borrowed(raw)
        };
        let prefix = match key.as_namespace_binding() {
            None => return Ok(()),
            Some(PrefixDeclaration::Default) => Vec::new(),
            Some(PrefixDeclaration::Named(prefix)) => prefix.to_vec(),
        };
        // `xmlns=""` undeclares the default namespace (Namespaces in XML 1.0, 6.2).
        let ns = if value.is_empty() {
            Ns::None
        } else {
            Ns::from_uri(value.as_bytes())
        };
        self.bindings.push(Binding {
            prefix,
            ns,
            depth: self.depth,
        });
        Ok(())
    }

    /// The namespace bound to an element prefix; an undeclared prefix (and `xml`) gives
    /// [`Ns::Other`], no prefix without a default declaration gives [`Ns::None`].
    fn resolve(&self, prefix: Option<&[u8]>) -> Ns {
        let key = prefix.unwrap_or_default();
        // Prefixes are one or two bytes in practice; comparing them inline is cheaper
        // than a memcmp call per tag.
        let same = |b: &Binding| {
            b.prefix.len() == key.len() && b.prefix.iter().zip(key).all(|(x, y)| x == y)
        };
        match self.bindings.iter().rev().find(|b| same(b)) {
            Some(binding) => binding.ns,
            None if prefix.is_some() => Ns::Other,
            None => Ns::None,
        }
    }

    /// Length in bytes of the input from the reader's position up to the next `<` (or the
    /// end), or 0 when the input is not UTF-8. It bounds the text still to come before
    /// the next tag, CDATA section or comment.
    fn raw_text_ahead(&self) -> usize {
        let Some(rest) = usize::try_from(self.position())
            .ok()
            .and_then(|at| self.doc?.get(at..))
        else {
            return 0;
        };
        memchr::memchr(b'<', rest.as_bytes()).unwrap_or(rest.len())
    }

    /// Ends the innermost element: its declarations go out of scope.
    fn close_scope(&mut self) {
        while self.bindings.last().is_some_and(|b| b.depth >= self.depth) {
            self.bindings.pop();
        }
        self.depth = self.depth.saturating_sub(1);
    }

    fn after_text(&mut self, text: Option<Cow<'a, str>>, step: RawStep<'a>) -> RawStep<'a> {
        match text {
            Some(t) => {
                self.pending = Some(step);
                RawStep::Text(t)
            }
            None => step,
        }
    }

    /// The next start tag of a child of the current element, skipping text; `None` at
    /// the current element's end tag.
    pub(crate) fn next_child_raw(&mut self) -> Result<Option<RawStart<'a>>, EwsError> {
        loop {
            match self.next_raw()? {
                RawStep::Start(start) => return Ok(Some(start)),
                RawStep::End => return Ok(None),
                RawStep::Text(_) => {}
                RawStep::Eof => {
                    return Err(EwsError::MalformedXml {
                        offset: self.position(),
                        reason: "input ends inside an element".into(),
                    });
                }
            }
        }
    }

    /// Skips the element whose start tag `start` was just returned, up to and including
    /// its end tag.
    pub(crate) fn skip_raw(&mut self, start: &RawStart<'a>) -> Result<(), EwsError> {
        if start.empty {
            return Ok(());
        }
        let mut depth = 0usize;
        loop {
            match self.next_raw()? {
                RawStep::Start(inner) => {
                    if !inner.empty {
                        depth += 1;
                    }
                }
                RawStep::End => {
                    if depth == 0 {
                        return Ok(());
                    }
                    depth -= 1;
                }
                RawStep::Text(_) => {}
                RawStep::Eof => return Err(self.cut_short(start)),
            }
        }
    }

    /// Reads the content of the element `start` as [`XmlReader::read_into`] would fill
    /// its `text`: character data directly inside it, with whitespace before a child
    /// element dropped, and child elements skipped.
    pub(crate) fn read_text(&mut self, start: &RawStart<'a>) -> Result<Cow<'a, str>, EwsError> {
        if start.empty {
            return Ok(Cow::Borrowed(""));
        }
        let mut text: Cow<'a, str> = Cow::Borrowed("");
        let mut had_child = false;
        loop {
            match self.next_raw()? {
                RawStep::Text(t) => {
                    if !had_child || !t.trim().is_empty() {
                        if text.is_empty() {
                            text = t;
                        } else {
                            text.to_mut().push_str(&t);
                        }
                    }
                }
                RawStep::Start(child) => {
                    if text.trim().is_empty() {
                        text = Cow::Borrowed("");
                    }
                    self.skip_raw(&child)?;
                    had_child = true;
                }
                RawStep::End => return Ok(text),
                RawStep::Eof => return Err(self.cut_short(start)),
            }
        }
    }

    /// The error for input that ends inside the element `start`, worded as
    /// [`XmlReader::read_into`] words it.
    pub(crate) fn cut_short(&self, start: &RawStart<'_>) -> EwsError {
        let name = String::from_utf8_lossy(start.local_name()).into_owned();
        EwsError::MalformedXml {
            offset: self.position(),
            reason: format!("input ends inside <{name}>"),
        }
    }

    /// Reads the content of an element whose start step was just returned (with
    /// `empty == false`) up to and including its end tag, into `element`.
    ///
    /// # Errors
    /// As [`XmlReader::next_step`]; also when the input ends inside the element.
    pub fn read_into(&mut self, element: &mut Element) -> Result<(), EwsError> {
        // An explicit stack instead of recursion: the depth limit is enforced by `next`.
        let mut stack: Vec<Element> = Vec::new();
        loop {
            match self.next_step()? {
                Step::Start {
                    element: child,
                    empty,
                } => {
                    let parent = match stack.last_mut() {
                        Some(top) => top,
                        None => &mut *element,
                    };
                    // Whitespace before a child element is formatting, not content; in a
                    // leaf element it is content and is kept.
                    if parent.text.trim().is_empty() {
                        parent.text.clear();
                    }
                    if empty {
                        parent.children.push(child);
                    } else {
                        stack.push(child);
                    }
                }
                Step::Text(t) => {
                    let target = match stack.last_mut() {
                        Some(top) => top,
                        None => &mut *element,
                    };
                    if target.children.is_empty() || !t.trim().is_empty() {
                        target.text.push_str(&t);
                    }
                }
                Step::End => match stack.pop() {
                    Some(done) => match stack.last_mut() {
                        Some(top) => top.children.push(done),
                        None => element.children.push(done),
                    },
                    None => return Ok(()),
                },
                Step::Eof => {
                    return Err(EwsError::MalformedXml {
                        offset: self.position(),
                        reason: format!("input ends inside <{}>", element.name),
                    });
                }
            }
        }
    }

    /// Skips the content of an element whose start step was just returned, up to and
    /// including its end tag.
    ///
    /// # Errors
    /// As [`XmlReader::next_step`].
    pub fn skip(&mut self) -> Result<(), EwsError> {
        let mut depth = 0usize;
        loop {
            match self.next_step()? {
                Step::Start { empty: false, .. } => depth += 1,
                Step::End => {
                    if depth == 0 {
                        return Ok(());
                    }
                    depth -= 1;
                }
                Step::Eof => {
                    return Err(EwsError::MalformedXml {
                        offset: self.position(),
                        reason: "input ends inside an element".into(),
                    });
                }
                _ => {}
            }
        }
    }

    /// The next start step of a child of the current element, skipping text; `None` at
    /// the current element's end tag.
    ///
    /// # Errors
    /// As [`XmlReader::next_step`].
    pub fn next_child(&mut self) -> Result<Option<(Element, bool)>, EwsError> {
        loop {
            match self.next_step()? {
                Step::Start { element, empty } => return Ok(Some((element, empty))),
                Step::End => return Ok(None),
                Step::Text(_) => {}
                Step::Eof => {
                    return Err(EwsError::MalformedXml {
                        offset: self.position(),
                        reason: "input ends inside an element".into(),
                    });
                }
            }
        }
    }

    /// Reads a whole element given its start step.
    ///
    /// # Errors
    /// As [`XmlReader::next_step`].
    pub fn complete(&mut self, mut element: Element, empty: bool) -> Result<Element, EwsError> {
        if !empty {
            self.read_into(&mut element)?;
        }
        Ok(element)
    }
}

/// Parses a whole document and returns its root element.
///
/// # Errors
/// [`EwsError::MalformedXml`] for input that is not well-formed, including an empty
/// document.
pub fn parse_document(input: &[u8]) -> Result<Element, EwsError> {
    let mut reader = XmlReader::new(input);
    loop {
        match reader.next_step()? {
            Step::Start { element, empty } => {
                let root = reader.complete(element, empty)?;
                // Only whitespace, comments and processing instructions may follow.
                loop {
                    match reader.next_step()? {
                        Step::Eof => return Ok(root),
                        Step::Text(t) if t.trim().is_empty() => {}
                        _ => {
                            return Err(EwsError::MalformedXml {
                                offset: reader.position(),
                                reason: "content after the root element".into(),
                            });
                        }
                    }
                }
            }
            Step::Text(t) if t.trim().is_empty() => {}
            Step::Eof => {
                return Err(EwsError::MalformedXml {
                    offset: 0,
                    reason: "no root element".into(),
                });
            }
            _ => {
                return Err(EwsError::MalformedXml {
                    offset: reader.position(),
                    reason: "content before the root element".into(),
                });
            }
        }
    }
}

macro_rules! interned {
    ($($name:literal),* $(,)?) => {
        /// The local name as a string, borrowed from a static table for the names EWS
        /// responses repeat (saving an allocation per element), owned otherwise.
        fn intern(text: &str) -> Cow<'static, str> {
            match text {
                $($name => Cow::Borrowed($name),)*
                other => Cow::Owned(other.to_owned()),
            }
        }
    };
}

interned!(
    "Id",
    "ChangeKey",
    "ResponseClass",
    "ItemId",
    "ParentFolderId",
    "FolderId",
    "Message",
    "Create",
    "Update",
    "Delete",
    "ReadFlagChange",
    "Subject",
    "Body",
    "BodyType",
    "DateTimeReceived",
    "DateTimeSent",
    "LastModifiedTime",
    "Size",
    "Categories",
    "String",
    "Importance",
    "HasAttachments",
    "Sender",
    "From",
    "ToRecipients",
    "CcRecipients",
    "Mailbox",
    "Name",
    "EmailAddress",
    "RoutingType",
    "MailboxType",
    "InternetMessageId",
    "IsRead",
    "ItemClass",
    "MimeContent",
    "Flag",
    "FlagStatus",
    "Sensitivity",
    "ResponseCode",
    "MessageText",
    "SyncState",
    "IncludesLastItemInRange",
    "Changes",
    "Items",
    "RootFolder",
    "Folder",
    "Folders",
    "DisplayName",
    "FolderClass",
    "TotalCount",
    "ChildFolderCount",
    "UnreadCount",
    "Envelope",
    "Header",
    "ServerVersionInfo",
    "ResponseMessages",
    "Notification",
    "TimeStamp",
    "Watermark",
    "CreatedEvent",
    "ModifiedEvent",
    "DeletedEvent",
    "MovedEvent",
    "NewMailEvent",
    "SyncFolderItemsResponseMessage",
    "FindItemResponseMessage",
    "GetItemResponseMessage",
    "IndexedPagingOffset",
    "TotalItemsInView",
    "MeetingRequest",
    "CalendarItem",
);

/// Resolves one `&name;` reference: a predefined entity or a character reference.
fn resolve_reference(r: &[u8]) -> Result<char, String> {
    match r {
        b"lt" => Ok('<'),
        b"gt" => Ok('>'),
        b"amp" => Ok('&'),
        b"apos" => Ok('\''),
        b"quot" => Ok('"'),
        _ => match r.strip_prefix(b"#") {
            Some(num) => char_reference(num),
            None => Err(format!(
                "unknown entity &{};: no DTD is processed, so only the five predefined entities exist",
                String::from_utf8_lossy(r)
            )),
        },
    }
}

/// A numeric character reference (without `&#` and `;`), mapping the characters XML 1.0
/// forbids to U+FFFD (see the module documentation).
fn char_reference(num: &[u8]) -> Result<char, String> {
    let text =
        std::str::from_utf8(num).map_err(|_| "character reference is not ASCII".to_string())?;
    let value = match text.strip_prefix('x') {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => text.parse::<u32>(),
    }
    .map_err(|_| format!("bad character reference &#{text};"))?;
    let allowed =
        matches!(value, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF);
    if !allowed {
        if value <= 0x10FFFF {
            return Ok(char::REPLACEMENT_CHARACTER);
        }
        return Err(format!("character reference &#{text}; is beyond Unicode"));
    }
    char::from_u32(value).ok_or_else(|| format!("bad character reference &#{text};"))
}

/// Unescapes an attribute value or text with references.
fn unescape(raw: &str) -> Result<String, String> {
    if !raw.contains('&') {
        return Ok(raw.to_owned());
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp).unwrap_or_default());
        let after = rest.get(amp + 1..).unwrap_or_default();
        let semi = after
            .find(';')
            .ok_or_else(|| "unterminated reference".to_string())?;
        let name = after.get(..semi).unwrap_or_default();
        out.push(resolve_reference(name.as_bytes())?);
        rest = after.get(semi + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(out)
}

/// Escapes text for element content or a double-quoted attribute value.
pub fn escape_into(out: &mut Vec<u8>, text: &str) {
    for b in text.bytes() {
        match b {
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'&' => out.extend_from_slice(b"&amp;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            b'\r' => out.extend_from_slice(b"&#xD;"),
            // Characters XML 1.0 cannot carry at all are written as U+FFFD, the value a
            // reader of this crate would turn their references into.
            0..=0x08 | 0x0B | 0x0C | 0x0E..=0x1F => out.extend_from_slice("\u{FFFD}".as_bytes()),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// Returns the attributes of `<x{raw}>` as quick-xml's checked iterator reads them, or
    /// `None` when it reports an error.
    fn quick_xml_attrs(raw: &str) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
        let tag = format!("x{raw}");
        let start = BytesStart::from_content(tag.as_str(), 1);
        start
            .attributes()
            .map(|a| {
                a.ok()
                    .map(|a| (a.key.into_inner().to_vec(), a.value.to_vec()))
            })
            .collect()
    }

    #[test]
    fn attribute_scan_matches_quick_xml() {
        let cases = [
            "",
            "   ",
            r#" Id="AAMk+/=" ChangeKey="CQAA""#,
            r#" a = 'x"y'  b="1" "#,
            " xmlns:t=\"urn:t\"\n\tt:Kind=\"a&amp;b\"",
            r#" a="1" b="2" c="3" d="4""#,
            r#" a="""#,
        ];
        for raw in cases {
            let doc = format!("<x{raw}>");
            let bytes = doc.as_bytes().get(2..doc.len() - 1).unwrap();
            let spans = scan_attributes(bytes).unwrap_or_else(|| panic!("{raw:?} not scanned"));
            let scanned: Vec<_> = spans
                .iter(bytes)
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect();
            assert_eq!(Some(scanned), quick_xml_attrs(raw), "{raw:?}");
            for (i, _, value) in spans.iter_indexed(bytes) {
                assert_eq!(spans.has_reference(i), value.contains(&b'&'), "{raw:?}");
            }
        }
    }

    #[test]
    fn attribute_scan_leaves_hard_cases_to_quick_xml() {
        let cases = [
            r#" a="1" a="2""#,
            r#" a=1"#,
            r#" a="1"b="2""#,
            r#" a"#,
            r#" a="unterminated"#,
            r#" 1a="x""#,
            r#" é="x""#,
            r#" a="1" b="2" c="3" d="4" e="5""#,
        ];
        for raw in cases {
            assert!(
                scan_attributes(raw.as_bytes()).is_none(),
                "{raw:?} was scanned"
            );
        }
    }
}
