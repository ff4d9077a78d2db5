//! A small element tree over quick-xml for the autodiscover responses, which are a few
//! kilobytes. Input size and nesting depth are bounded, and a document type declaration
//! is rejected, so no entity beyond the five predefined ones is ever expanded.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// The largest response accepted, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

const MAX_DEPTH: usize = 32;

/// One XML element: its local name (namespace prefix dropped), attributes and children.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Element {
    /// The local name.
    pub name: String,
    /// Attributes by local name, in document order.
    pub attributes: Vec<(String, String)>,
    /// Child elements in document order.
    pub children: Vec<Element>,
    /// The concatenated text content, trimmed.
    pub text: String,
}

impl Element {
    /// Returns the first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|child| child.name == name)
    }

    /// Returns every child named `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |child| child.name == name)
    }

    /// Follows `path` through first children with those names.
    pub fn path(&self, path: &[&str]) -> Option<&Element> {
        path.iter()
            .try_fold(self, |element, name| element.child(name))
    }

    /// Returns the trimmed text of the child at `path`, when it exists and is not empty.
    pub fn text_at(&self, path: &[&str]) -> Option<String> {
        self.path(path)
            .map(|element| element.text.clone())
            .filter(|text| !text.is_empty())
    }

    /// Returns the attribute `name`.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

fn local_name(qualified: &[u8]) -> String {
    let local = qualified
        .iter()
        .position(|&byte| byte == b':')
        .and_then(|colon| qualified.get(colon + 1..))
        .unwrap_or(qualified);
    String::from_utf8_lossy(local).into_owned()
}

/// Parses `bytes` into the root element.
///
/// # Errors
///
/// A message naming the problem: too large, not UTF-8, a DTD, an unknown entity,
/// nesting deeper than 32, malformed markup or no root element.
pub fn parse(bytes: &[u8]) -> Result<Element, String> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(format!(
            "the XML answer is {} bytes, more than the {MAX_DOCUMENT_BYTES}-byte limit",
            bytes.len()
        ));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|error| format!("the XML answer is not UTF-8: {error}"))?;
    let mut reader = Reader::from_str(text);

    let mut stack: Vec<Element> = Vec::new();
    loop {
        let position = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|error| format!("malformed XML at byte {position}: {error}"))?;
        match event {
            Event::Start(start) => {
                open(&mut stack, &start)?;
            }
            Event::Empty(start) => {
                open(&mut stack, &start)?;
                if let Some(root) = close(&mut stack)? {
                    return Ok(root);
                }
            }
            Event::End(_) => {
                if let Some(root) = close(&mut stack)? {
                    return Ok(root);
                }
            }
            Event::Text(content) => {
                let decoded = content
                    .decode()
                    .map_err(|error| format!("invalid text in the XML answer: {error}"))?;
                push_text(&mut stack, &decoded);
            }
            Event::CData(content) => {
                let decoded = content
                    .decode()
                    .map_err(|error| format!("invalid CDATA in the XML answer: {error}"))?;
                push_text(&mut stack, &decoded);
            }
            Event::GeneralRef(reference) => {
                let character = match reference
                    .resolve_char_ref()
                    .map_err(|error| format!("invalid character reference: {error}"))?
                {
                    Some(character) => character,
                    None => match reference.as_ref() {
                        b"amp" => '&',
                        b"lt" => '<',
                        b"gt" => '>',
                        b"quot" => '"',
                        b"apos" => '\'',
                        other => {
                            return Err(format!(
                                "unknown XML entity &{};",
                                String::from_utf8_lossy(other)
                            ));
                        }
                    },
                };
                push_text(&mut stack, character.encode_utf8(&mut [0; 4]));
            }
            Event::DocType(_) => {
                return Err(
                    "the XML answer has a document type declaration, which is not accepted"
                        .to_owned(),
                );
            }
            Event::Eof => {
                return Err("the XML answer ends before its root element closes".to_owned());
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
}

fn open(stack: &mut Vec<Element>, start: &BytesStart<'_>) -> Result<(), String> {
    if stack.len() >= MAX_DEPTH {
        return Err(format!(
            "the XML answer nests deeper than {MAX_DEPTH} elements"
        ));
    }
    let mut element = Element {
        name: local_name(start.name().as_ref()),
        ..Element::default()
    };
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|error| format!("malformed XML attribute: {error}"))?;
        let value = attribute
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|error| format!("malformed XML attribute value: {error}"))?;
        element
            .attributes
            .push((local_name(attribute.key.as_ref()), value.into_owned()));
    }
    stack.push(element);
    Ok(())
}

fn push_text(stack: &mut [Element], text: &str) {
    if let Some(current) = stack.last_mut() {
        current.text.push_str(text);
    }
}

/// Pops the innermost element into its parent, or returns it when it is the root.
fn close(stack: &mut Vec<Element>) -> Result<Option<Element>, String> {
    let mut element = stack
        .pop()
        .ok_or_else(|| "an XML end tag without a start tag".to_owned())?;
    element.text = element.text.trim().to_owned();
    match stack.last_mut() {
        Some(parent) => {
            parent.children.push(element);
            Ok(None)
        }
        None => Ok(Some(element)),
    }
}
