//! The EWS operations exmux implements, each with its typed request and response, its
//! client side ([`EwsOperation`](crate::operation::EwsOperation)) and its server side
//! ([`EwsServerOperation`](crate::operation::EwsServerOperation)).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod folders;
pub mod framer;
pub mod items;
pub mod notify;
pub mod sync;
mod typed;

use crate::error::EwsError;
use crate::operation::missing;
use crate::soap::XmlWriter;
use crate::types::{BaseShape, ItemId, PropertyPath};
use crate::xml::Element;

/// A response shape (MS-OXWSCDATA 2.2.4.x ItemResponseShapeType / FolderResponseShapeType).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// BaseShape.
    pub base: BaseShape,
    /// IncludeMimeContent (items only).
    pub include_mime_content: bool,
    /// AdditionalProperties.
    pub additional: Vec<PropertyPath>,
}

impl Shape {
    /// A shape with only a base shape.
    pub fn base(base: BaseShape) -> Self {
        Self {
            base,
            include_mime_content: false,
            additional: Vec::new(),
        }
    }

    pub(crate) fn write(&self, w: &mut XmlWriter, name: &'static str, items: bool) {
        w.start(name, &[]);
        w.text("t:BaseShape", self.base.as_str());
        if items && self.include_mime_content {
            w.bool("t:IncludeMimeContent", true);
        }
        if !self.additional.is_empty() {
            w.start("t:AdditionalProperties", &[]);
            for p in &self.additional {
                p.write(w);
            }
            w.end();
        }
        w.end();
    }

    pub(crate) fn read(e: Option<&Element>, operation: &'static str) -> Result<Self, EwsError> {
        let e = e.ok_or_else(|| missing(operation, "a response shape"))?;
        let base = e
            .child_text("BaseShape")
            .and_then(BaseShape::parse)
            .ok_or_else(|| missing(operation, "a BaseShape"))?;
        Ok(Self {
            base,
            include_mime_content: e
                .child_text("IncludeMimeContent")
                .and_then(crate::types::parse_bool)
                .unwrap_or(false),
            additional: e
                .child("AdditionalProperties")
                .map(|a| {
                    a.children
                        .iter()
                        .filter_map(PropertyPath::from_element)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

/// Indexed paging (MS-OXWSSRCH IndexedPageViewType).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexedPage {
    /// MaxEntriesReturned.
    pub max_entries: u32,
    /// Offset from the beginning.
    pub offset: u32,
}

impl IndexedPage {
    pub(crate) fn write(&self, w: &mut XmlWriter, name: &str) {
        let max = self.max_entries.to_string();
        let offset = self.offset.to_string();
        w.empty(
            name,
            &[
                ("MaxEntriesReturned", &max),
                ("Offset", &offset),
                ("BasePoint", "Beginning"),
            ],
        );
    }

    pub(crate) fn read(e: &Element) -> Option<Self> {
        Some(Self {
            max_entries: e.attr("MaxEntriesReturned")?.trim().parse().ok()?,
            offset: e
                .attr("Offset")
                .and_then(|o| o.trim().parse().ok())
                .unwrap_or(0),
        })
    }
}

/// Paging attributes of a FindItem/FindFolder RootFolder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Paging {
    /// IndexedPagingOffset: the offset to request next.
    pub indexed_paging_offset: Option<u32>,
    /// TotalItemsInView.
    pub total_items_in_view: Option<u32>,
    /// IncludesLastItemInRange.
    pub includes_last_item_in_range: bool,
}

impl Paging {
    pub(crate) fn read(e: &Element) -> Self {
        let num = |n: &str| e.attr(n).and_then(|v| v.trim().parse().ok());
        Self {
            indexed_paging_offset: num("IndexedPagingOffset"),
            total_items_in_view: num("TotalItemsInView"),
            // The schema makes it optional; servers leave it out only on answers that
            // fit one page, so absent is taken as the last page.
            includes_last_item_in_range: e
                .attr("IncludesLastItemInRange")
                .and_then(crate::types::parse_bool)
                .unwrap_or(true),
        }
    }

    pub(crate) fn attrs(&self) -> Vec<(&'static str, String)> {
        let mut v = Vec::new();
        if let Some(o) = self.indexed_paging_offset {
            v.push(("IndexedPagingOffset", o.to_string()));
        }
        if let Some(t) = self.total_items_in_view {
            v.push(("TotalItemsInView", t.to_string()));
        }
        v.push((
            "IncludesLastItemInRange",
            self.includes_last_item_in_range.to_string(),
        ));
        v
    }

    /// The offset of the next page: `None` when this was the last page.
    ///
    /// The next offset is the server's IndexedPagingOffset (the server may cap the page
    /// size, so the offset is never computed from the requested size).
    ///
    /// # Errors
    /// [`EwsError::PagingStalled`] when the server says more items remain but the offset
    /// does not advance past `previous_offset`.
    pub fn next_offset(
        &self,
        operation: &'static str,
        previous_offset: u32,
    ) -> Result<Option<u32>, EwsError> {
        if self.includes_last_item_in_range {
            return Ok(None);
        }
        match self.indexed_paging_offset {
            Some(next) if next > previous_offset => Ok(Some(next)),
            _ => Err(EwsError::PagingStalled {
                operation,
                offset: previous_offset,
            }),
        }
    }
}

pub(crate) fn write_item_ids(
    w: &mut XmlWriter,
    name: &'static str,
    ids: &[ItemId],
    operation: &'static str,
) -> Result<(), EwsError> {
    if ids.is_empty() {
        return Err(EwsError::InvalidRequest {
            operation,
            reason: "no item ids; pass at least one".into(),
        });
    }
    w.start(name, &[]);
    for id in ids {
        id.write(w, "t:ItemId");
    }
    w.end();
    Ok(())
}

pub(crate) fn read_item_ids(e: Option<&Element>) -> Vec<ItemId> {
    e.map(|e| {
        e.children_named("ItemId")
            .filter_map(ItemId::from_element)
            .collect()
    })
    .unwrap_or_default()
}

pub(crate) fn req_attr<'a>(
    e: &'a Element,
    name: &str,
    operation: &'static str,
    what: &'static str,
) -> Result<&'a str, EwsError> {
    e.attr(name).ok_or_else(|| missing(operation, what))
}
