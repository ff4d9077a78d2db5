//! A ROP batch under construction: the requests and the server object handle table
//! they index. Handles are named by the object they refer to, not by server value, so a
//! batch can be sent again after a reconnect gave every object a new server handle.

use std::collections::HashMap;

use crate::prop::PropTag;
use crate::rop::{RopRequest, RopResult};

/// An object the caller keeps open across batches (a folder or a message). The session
/// reopens it after a reconnect the next time a batch uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectHandle(pub(crate) u32);

/// The content of one slot of the server object handle table (MS-OXCROPS 2.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HandleRef {
    /// The logon object of the private mailbox.
    Logon,
    /// An object the caller holds.
    Object(ObjectHandle),
    /// A raw server handle returned by an earlier batch of the same session context (a
    /// table, a download or upload context). It dies with the context.
    Raw(u32),
    /// An output slot: 0xFFFFFFFF in the request, filled by the server.
    Output,
}

/// A batch of ROP requests for one Execute (MS-OXCMAPIHTTP 2.2.4.2).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub(crate) rops: Vec<RopRequest>,
    pub(crate) slots: Vec<HandleRef>,
    pub(crate) columns: HashMap<u8, Vec<PropTag>>,
}

impl Batch {
    /// Creates an empty batch. Sent as is, it collects pending notifications (MS-OXCMAPIHTTP
    /// 3.2.5.4: a ROP buffer may hold zero ROPs).
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the slot index of an input handle, adding it on first use.
    pub fn input(&mut self, handle: HandleRef) -> u8 {
        if handle != HandleRef::Output
            && let Some(index) = self.slots.iter().position(|s| *s == handle)
        {
            return index as u8;
        }
        self.slots.push(handle);
        (self.slots.len() - 1) as u8
    }

    /// Reserves an output slot for a ROP that creates an object; later ROPs of the batch
    /// may use the returned index as their input.
    pub fn output(&mut self) -> u8 {
        self.slots.push(HandleRef::Output);
        (self.slots.len() - 1) as u8
    }

    /// Appends a request and returns its position, the key of its result.
    pub fn push(&mut self, rop: RopRequest) -> usize {
        self.rops.push(rop);
        self.rops.len() - 1
    }

    /// Declares the column set of a table whose RopSetColumns was in an earlier batch,
    /// so RopQueryRows responses in this batch can be decoded.
    pub fn with_columns(&mut self, slot: u8, columns: Vec<PropTag>) {
        self.columns.insert(slot, columns);
    }

    /// Returns whether the batch contains no ROP.
    pub fn is_empty(&self) -> bool {
        self.rops.is_empty()
    }

    /// Returns the requests.
    pub fn rops(&self) -> &[RopRequest] {
        &self.rops
    }
}

/// The response to one batch.
#[derive(Debug, Clone)]
pub struct BatchResult {
    /// One entry per request, in request order; `None` for RopRelease, which has no
    /// response, and for requests the server did not reach.
    pub results: Vec<Option<RopResult>>,
    /// The server object handle table of the response.
    pub handles: Vec<u32>,
    /// The session context generation the batch ran in. It changes at every reconnect,
    /// after which raw handles of earlier batches are dead.
    pub generation: u64,
}

impl BatchResult {
    /// Returns the result of request `index`.
    pub fn result(&self, index: usize) -> Option<&RopResult> {
        self.results.get(index).and_then(Option::as_ref)
    }

    /// Returns the server handle at `slot` of the response's handle table.
    pub fn handle(&self, slot: u8) -> Option<u32> {
        self.handles
            .get(usize::from(slot))
            .copied()
            .filter(|h| *h != u32::MAX)
    }
}
