//! Store identifiers of MS-OXCDATA 2.2.1 and MS-OXCFXICS 2.2.2: GUIDs, FID/MID/CN
//! (replica id plus a 48-bit global counter), GLOBCNT, LongTermId, XID, SizedXid and
//! predecessor change lists.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::cmp::Ordering;
use std::fmt;

/// Errors from decoding identifiers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdsError {
    /// The input ended inside an identifier.
    #[error(
        "truncated {what} at offset {offset}: needs {needed} bytes, {available} left; the identifier is cut short"
    )]
    Truncated {
        /// The identifier being read.
        what: &'static str,
        /// Byte offset of the identifier in the input.
        offset: usize,
        /// Bytes the identifier needs.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// An identifier had a length outside what its type allows.
    #[error("invalid {what} at offset {offset}: length {length} is outside {min}..={max}")]
    BadLength {
        /// The identifier being read.
        what: &'static str,
        /// Byte offset of the identifier in the input.
        offset: usize,
        /// The length found.
        length: usize,
        /// Smallest valid length.
        min: usize,
        /// Largest valid length.
        max: usize,
    },
}

/// A 16-byte GUID as MAPI writes it (MS-DTYP 2.3.4.2): the first three fields little-endian.
///
/// The bytes are kept in wire order; `Display` prints the usual text form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// The all-zero GUID.
    pub const NIL: Guid = Guid([0; 16]);

    /// Parses the text form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` into wire bytes.
    pub fn parse_str(text: &str) -> Option<Guid> {
        let parsed = uuid::Uuid::parse_str(text).ok()?;
        Some(Guid(parsed.to_bytes_le()))
    }
}

/// A GUID serializes in its registry form.
impl serde::Serialize for Guid {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", uuid::Uuid::from_bytes_le(self.0))
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

/// Largest value of a 48-bit global counter.
pub const GLOBCNT_MAX: u64 = 0xFFFF_FFFF_FFFF;

/// A 48-bit global counter (GLOBCNT, MS-OXCFXICS 2.2.2.5), written big-endian in 6 bytes so
/// that counters compare byte-wise in time order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct GlobCnt(u64);

impl GlobCnt {
    /// Makes a counter from the low 48 bits of `value`; returns `None` above 2^48 - 1.
    pub fn new(value: u64) -> Option<GlobCnt> {
        (value <= GLOBCNT_MAX).then_some(GlobCnt(value))
    }

    /// Returns the counter value.
    pub fn get(self) -> u64 {
        self.0
    }

    /// Reads the 6-byte big-endian form.
    pub fn from_bytes(bytes: [u8; 6]) -> GlobCnt {
        let [a, b, c, d, e, f] = bytes;
        GlobCnt(u64::from_be_bytes([0, 0, a, b, c, d, e, f]))
    }

    /// Returns the 6-byte big-endian form.
    pub fn to_bytes(self) -> [u8; 6] {
        let [_, _, a, b, c, d, e, f] = self.0.to_be_bytes();
        [a, b, c, d, e, f]
    }
}

/// A GLOBCNT serializes as its number.
impl serde::Serialize for GlobCnt {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl fmt::Debug for GlobCnt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GlobCnt(0x{:X})", self.0)
    }
}

/// A folder id, message id or change number (MS-OXCDATA 2.2.1.1/2.2.1.2): a 16-bit replica
/// id followed by a 6-byte big-endian global counter, handled on the wire as a u64 read
/// little-endian.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ObjectId(pub u64);

/// A folder id (FID).
pub type FolderId = ObjectId;
/// A message id (MID).
pub type MessageId = ObjectId;
/// A change number (CN), shaped like a FID/MID.
pub type ChangeNumber = ObjectId;

impl ObjectId {
    /// Builds an id from its replica id and global counter.
    pub fn from_parts(replid: u16, globcnt: GlobCnt) -> ObjectId {
        let [a, b, c, d, e, f] = globcnt.to_bytes();
        let [r0, r1] = replid.to_le_bytes();
        ObjectId(u64::from_le_bytes([r0, r1, a, b, c, d, e, f]))
    }

    /// Returns the replica id (REPLID).
    pub fn replid(self) -> u16 {
        let [r0, r1, ..] = self.0.to_le_bytes();
        u16::from_le_bytes([r0, r1])
    }

    /// Returns the global counter.
    pub fn globcnt(self) -> GlobCnt {
        let [_, _, a, b, c, d, e, f] = self.0.to_le_bytes();
        GlobCnt::from_bytes([a, b, c, d, e, f])
    }

    /// Returns the 8 wire bytes.
    pub fn to_bytes(self) -> [u8; 8] {
        self.0.to_le_bytes()
    }
}

/// An id serializes as its hexadecimal value with the replica id and GLOBCNT it holds.
impl serde::Serialize for ObjectId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut id = serializer.serialize_struct("ObjectId", 3)?;
        id.serialize_field("id", &format!("0x{:016X}", self.0))?;
        id.serialize_field("replid", &self.replid())?;
        id.serialize_field("globcnt", &self.globcnt().get())?;
        id.end()
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ObjectId(0x{:016X}: replid {}, globcnt 0x{:X})",
            self.0,
            self.replid(),
            self.globcnt().get()
        )
    }
}

/// A LongTermId (MS-OXCDATA 2.2.1.3.1): a FID/MID with the replica id replaced by the
/// replica GUID, 24 bytes on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, serde::Serialize)]
pub struct LongTermId {
    /// Database (replica) GUID.
    pub database_guid: Guid,
    /// Global counter of the object.
    pub globcnt: GlobCnt,
    /// Two padding bytes, zero on the wire but kept for exact re-encoding.
    pub pad: u16,
}

impl LongTermId {
    /// Size on the wire.
    pub const SIZE: usize = 24;

    /// Decodes 24 bytes.
    ///
    /// # Errors
    /// [`IdsError::Truncated`] when fewer than 24 bytes are given.
    pub fn decode(bytes: &[u8], offset: usize) -> Result<LongTermId, IdsError> {
        let Some(head) = bytes.get(..Self::SIZE) else {
            return Err(IdsError::Truncated {
                what: "LongTermId",
                offset,
                needed: Self::SIZE,
                available: bytes.len(),
            });
        };
        let mut guid = [0u8; 16];
        let mut counter = [0u8; 6];
        let mut pad = [0u8; 2];
        guid.copy_from_slice(head.get(..16).unwrap_or_default());
        counter.copy_from_slice(head.get(16..22).unwrap_or_default());
        pad.copy_from_slice(head.get(22..24).unwrap_or_default());
        Ok(LongTermId {
            database_guid: Guid(guid),
            globcnt: GlobCnt::from_bytes(counter),
            pad: u16::from_le_bytes(pad),
        })
    }

    /// Appends the 24 wire bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.database_guid.0);
        out.extend_from_slice(&self.globcnt.to_bytes());
        out.extend_from_slice(&self.pad.to_le_bytes());
    }
}

/// An XID (MS-OXCFXICS 2.2.2.2): a namespace GUID and a 1 to 8 byte local id. Exchange uses
/// 6-byte local ids (22-byte XIDs); the local id compares as a big-endian number.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Xid {
    /// Namespace GUID (a replica GUID, or a client's own namespace for imported changes).
    pub namespace: Guid,
    local_len: u8,
    local: [u8; 8],
}

impl Xid {
    /// Builds an XID; returns `None` when `local_id` is empty or longer than 8 bytes.
    pub fn new(namespace: Guid, local_id: &[u8]) -> Option<Xid> {
        if local_id.is_empty() || local_id.len() > 8 {
            return None;
        }
        let mut local = [0u8; 8];
        local.get_mut(..local_id.len())?.copy_from_slice(local_id);
        Some(Xid {
            namespace,
            local_len: u8::try_from(local_id.len()).ok()?,
            local,
        })
    }

    /// Returns the XID of a global counter: the namespace GUID and the 6-byte counter, the form of
    /// PidTagSourceKey and of server-made PidTagChangeKey values.
    pub fn from_globcnt(namespace: Guid, globcnt: GlobCnt) -> Xid {
        let [a, b, c, d, e, f] = globcnt.to_bytes();
        Xid {
            namespace,
            local_len: 6,
            local: [a, b, c, d, e, f, 0, 0],
        }
    }

    /// Returns the local id bytes.
    pub fn local_id(&self) -> &[u8] {
        self.local
            .get(..usize::from(self.local_len))
            .unwrap_or_default()
    }

    /// Returns the local id as a global counter, when it is 6 bytes long.
    pub fn globcnt(&self) -> Option<GlobCnt> {
        let bytes: [u8; 6] = self.local_id().try_into().ok()?;
        Some(GlobCnt::from_bytes(bytes))
    }

    /// Length on the wire (17 to 24).
    pub fn wire_len(&self) -> usize {
        16 + usize::from(self.local_len)
    }

    /// Decodes an XID that fills `bytes` (the whole value of a binary property).
    ///
    /// # Errors
    /// [`IdsError::BadLength`] unless `bytes` is 17 to 24 bytes long.
    pub fn decode(bytes: &[u8], offset: usize) -> Result<Xid, IdsError> {
        let bad = IdsError::BadLength {
            what: "XID",
            offset,
            length: bytes.len(),
            min: 17,
            max: 24,
        };
        let (Some(guid), Some(local)) = (bytes.get(..16), bytes.get(16..)) else {
            return Err(bad);
        };
        let mut namespace = [0u8; 16];
        namespace.copy_from_slice(guid);
        Xid::new(Guid(namespace), local).ok_or(bad)
    }

    /// Appends the wire bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.namespace.0);
        out.extend_from_slice(self.local_id());
    }

    /// Returns the wire bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.wire_len());
        self.encode(&mut out);
        out
    }

    /// Compares local ids of two XIDs of one namespace and length; `None` otherwise.
    pub fn compare_local(&self, other: &Xid) -> Option<Ordering> {
        if self.namespace != other.namespace || self.local_len != other.local_len {
            return None;
        }
        Some(self.local_id().cmp(other.local_id()))
    }
}

/// An XID serializes as `{namespace GUID}:local id in hex`.
impl serde::Serialize for Xid {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let local: String = self
            .local_id()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        serializer.collect_str(&format_args!("{{{}}}:{local}", self.namespace))
    }
}

impl fmt::Debug for Xid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Xid({{{}}}:", self.namespace)?;
        for byte in self.local_id() {
            write!(f, "{byte:02x}")?;
        }
        write!(f, ")")
    }
}

/// The order of two versions by their predecessor change lists (MS-OXCFXICS 3.1.5.6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub enum PclOrder {
    /// Both lists name the same versions.
    Equal,
    /// The first list includes the second: the second is an older version (or an echo).
    FirstNewer,
    /// The second list includes the first.
    SecondNewer,
    /// Neither includes the other: the versions conflict.
    Conflict,
}

/// A predecessor change list (PidTagPredecessorChangeList, MS-OXCFXICS 2.2.2.4): SizedXids
/// (`XidSize u8 | XID`), at most one per namespace GUID, kept sorted by GUID bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct PredecessorChangeList {
    xids: Vec<Xid>,
}

impl PredecessorChangeList {
    /// Creates an empty list.
    pub fn new() -> PredecessorChangeList {
        PredecessorChangeList::default()
    }

    /// Returns the XIDs in wire order.
    pub fn xids(&self) -> &[Xid] {
        &self.xids
    }

    /// Decodes the value of PidTagPredecessorChangeList, keeping the wire order.
    ///
    /// # Errors
    /// [`IdsError`] when a SizedXid is cut short or its size is outside 17..=24.
    pub fn decode(bytes: &[u8], offset: usize) -> Result<PredecessorChangeList, IdsError> {
        let mut xids = Vec::new();
        let mut pos = 0usize;
        while let Some(rest) = bytes.get(pos..).filter(|r| !r.is_empty()) {
            let size = usize::from(rest.first().copied().unwrap_or_default());
            let Some(body) = rest.get(1..1 + size) else {
                return Err(IdsError::Truncated {
                    what: "SizedXid",
                    offset: offset + pos,
                    needed: 1 + size,
                    available: rest.len(),
                });
            };
            xids.push(Xid::decode(body, offset + pos + 1)?);
            pos += 1 + size;
        }
        Ok(PredecessorChangeList { xids })
    }

    /// Appends the wire bytes (SizedXids in list order).
    pub fn encode(&self, out: &mut Vec<u8>) {
        for xid in &self.xids {
            // wire_len is at most 24, so it fits the size byte.
            out.push(xid.wire_len() as u8);
            xid.encode(out);
        }
    }

    /// Returns the wire bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Adds a change key: replaces the entry of its namespace when the new local id is
    /// higher (or the sizes differ), and keeps the list sorted by GUID bytes.
    pub fn merge(&mut self, xid: Xid) {
        match self.xids.iter_mut().find(|x| x.namespace == xid.namespace) {
            Some(existing) => {
                if existing.compare_local(&xid) != Some(Ordering::Greater) {
                    *existing = xid;
                }
            }
            None => self.xids.push(xid),
        }
        self.xids.sort_by_key(|x| x.namespace.0);
    }

    /// Returns whether this list includes `other`: every XID of `other` has an XID here with the
    /// same namespace, the same size and a local id at least as high.
    pub fn includes(&self, other: &PredecessorChangeList) -> bool {
        other.xids.iter().all(|theirs| {
            self.xids.iter().any(|ours| {
                matches!(
                    ours.compare_local(theirs),
                    Some(Ordering::Greater | Ordering::Equal)
                )
            })
        })
    }

    /// Compares two versions by their lists (the conflict rule of MS-OXCFXICS 3.1.5.6.1).
    pub fn compare(&self, other: &PredecessorChangeList) -> PclOrder {
        match (self.includes(other), other.includes(self)) {
            (true, true) => PclOrder::Equal,
            (true, false) => PclOrder::FirstNewer,
            (false, true) => PclOrder::SecondNewer,
            (false, false) => PclOrder::Conflict,
        }
    }
}

impl FromIterator<Xid> for PredecessorChangeList {
    fn from_iter<I: IntoIterator<Item = Xid>>(iter: I) -> Self {
        let mut list = PredecessorChangeList::new();
        for xid in iter {
            list.merge(xid);
        }
        list
    }
}
