//! IDSET and GLOBSET (MS-OXCFXICS 2.2.2.4 to 2.2.2.6) in both replica forms, and the four
//! ICS state properties (MS-OXCFXICS 2.2.1.1).
//!
//! A GLOBSET encoding is not unique, so sets are compared after decoding, never as bytes.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::ids::{GLOBCNT_MAX, Guid};
use crate::prop::{PropError, Reader};

/// Errors from decoding an IDSET or GLOBSET.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdsetError {
    /// The input ended inside a command or a replica key.
    #[error(transparent)]
    Wire(#[from] PropError),
    /// A GLOBSET command byte outside the defined set.
    #[error("unknown GLOBSET command 0x{command:02X} at offset {offset}")]
    UnknownCommand {
        /// The command byte.
        command: u8,
        /// Byte offset of the command.
        offset: usize,
    },
    /// A command that the prefix stack does not allow (a push past 6 bytes, a pop of an
    /// empty stack, a bitmask without a 5-byte prefix, a range with a full prefix).
    #[error("invalid GLOBSET command 0x{command:02X} at offset {offset}: {problem}")]
    BadStack {
        /// The command byte.
        command: u8,
        /// Byte offset of the command.
        offset: usize,
        /// The rule of the prefix stack that the command breaks.
        problem: &'static str,
    },
    /// A range whose low value is above its high value.
    #[error("invalid GLOBSET range at offset {offset}: low 0x{low:X} is above high 0x{high:X}")]
    InvertedRange {
        /// Byte offset of the command.
        offset: usize,
        /// Low value.
        low: u64,
        /// High value.
        high: u64,
    },
}

/// A set of 48-bit global counters as sorted, disjoint, non-adjacent inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash, serde::Serialize)]
pub struct GlobSet {
    ranges: Vec<(u64, u64)>,
}

impl GlobSet {
    /// Creates an empty set.
    pub fn new() -> GlobSet {
        GlobSet::default()
    }

    /// Returns the ranges, sorted and merged.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    /// Returns whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Returns whether `value` is in the set.
    pub fn contains(&self, value: u64) -> bool {
        let index = self.ranges.partition_point(|&(_, high)| high < value);
        self.ranges.get(index).is_some_and(|&(low, _)| low <= value)
    }

    /// Adds one value.
    pub fn insert(&mut self, value: u64) {
        self.insert_range(value, value);
    }

    /// Adds the inclusive range `low..=high` (ignored when `low > high`), merging it with
    /// overlapping and adjacent ranges. Values are clamped to 48 bits.
    pub fn insert_range(&mut self, low: u64, high: u64) {
        let (low, high) = (low.min(GLOBCNT_MAX), high.min(GLOBCNT_MAX));
        if low > high {
            return;
        }
        let start = self
            .ranges
            .partition_point(|&(_, h)| h.saturating_add(1) < low);
        let mut end = start;
        let (mut new_low, mut new_high) = (low, high);
        while let Some(&(l, h)) = self.ranges.get(end) {
            if l > high.saturating_add(1) {
                break;
            }
            new_low = new_low.min(l);
            new_high = new_high.max(h);
            end += 1;
        }
        self.ranges.splice(start..end, [(new_low, new_high)]);
    }

    /// Adds every value of `other`.
    pub fn union_with(&mut self, other: &GlobSet) {
        for &(low, high) in &other.ranges {
            self.insert_range(low, high);
        }
    }

    /// Decodes one GLOBSET, up to and including its End command.
    ///
    /// # Errors
    /// [`IdsetError`] when a command is unknown, the stack state forbids it, or the input
    /// ends first.
    pub fn decode(reader: &mut Reader<'_>) -> Result<GlobSet, IdsetError> {
        let mut set = GlobSet::new();
        // The prefix stack: pushed byte groups, at most 6 bytes in all.
        let mut prefix = [0u8; 6];
        let mut prefix_len = 0usize;
        let mut groups: Vec<usize> = Vec::new();

        loop {
            let offset = reader.offset();
            let command = reader.u8("GLOBSET command")?;
            match command {
                0x00 => return Ok(set),
                0x01..=0x06 => {
                    let n = usize::from(command);
                    if prefix_len + n > 6 {
                        return Err(IdsetError::BadStack {
                            command,
                            offset,
                            problem: "push would make the prefix longer than 6 bytes",
                        });
                    }
                    let bytes = reader.take(n, "GLOBSET push operand")?;
                    if let Some(slot) = prefix.get_mut(prefix_len..prefix_len + n) {
                        slot.copy_from_slice(bytes);
                    }
                    if prefix_len + n == 6 {
                        // A full 6-byte stack is one value; the push is undone at once.
                        set.insert(be48(&prefix));
                    } else {
                        prefix_len += n;
                        groups.push(n);
                    }
                }
                0x42 => {
                    if prefix_len != 5 {
                        return Err(IdsetError::BadStack {
                            command,
                            offset,
                            problem: "bitmask needs exactly 5 prefix bytes",
                        });
                    }
                    let start = reader.u8("GLOBSET bitmask start")?;
                    let mask = reader.u8("GLOBSET bitmask")?;
                    let base = be48(&prefix) & !0xFF;
                    let low = base | u64::from(start);
                    set.insert(low);
                    for bit in 0..8u64 {
                        if mask & (1 << bit) != 0 {
                            set.insert(low + bit + 1);
                        }
                    }
                }
                0x50 => {
                    let Some(n) = groups.pop() else {
                        return Err(IdsetError::BadStack {
                            command,
                            offset,
                            problem: "pop of an empty prefix stack",
                        });
                    };
                    prefix_len -= n;
                }
                0x52 => {
                    if prefix_len >= 6 {
                        return Err(IdsetError::BadStack {
                            command,
                            offset,
                            problem: "range with a full 6-byte prefix",
                        });
                    }
                    let rest = 6 - prefix_len;
                    let mut low = prefix;
                    let mut high = prefix;
                    if let Some(slot) = low.get_mut(prefix_len..) {
                        slot.copy_from_slice(reader.take(rest, "GLOBSET range low")?);
                    }
                    if let Some(slot) = high.get_mut(prefix_len..) {
                        slot.copy_from_slice(reader.take(rest, "GLOBSET range high")?);
                    }
                    let (low, high) = (be48(&low), be48(&high));
                    if low > high {
                        return Err(IdsetError::InvertedRange { offset, low, high });
                    }
                    set.insert_range(low, high);
                }
                _ => return Err(IdsetError::UnknownCommand { command, offset }),
            }
        }
    }

    /// Appends an encoding: the common prefix of the whole set pushed once, then per
    /// range a 6-byte push for a single value or a push of the range's own common prefix,
    /// a Range command and a pop, then End.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (Some(&(first, _)), Some(&(_, last))) = (self.ranges.first(), self.ranges.last())
        else {
            out.push(0x00);
            return;
        };
        let first_bytes = to_be48(first);
        let common = common_prefix(&first_bytes, &to_be48(last)).min(5);
        if common > 0 {
            out.push(common as u8);
            out.extend_from_slice(first_bytes.get(..common).unwrap_or_default());
        }
        for &(low, high) in &self.ranges {
            let low_bytes = to_be48(low);
            let high_bytes = to_be48(high);
            if low == high {
                out.push((6 - common) as u8);
                out.extend_from_slice(low_bytes.get(common..).unwrap_or_default());
                continue;
            }
            let shared = common_prefix(&low_bytes, &high_bytes).min(5);
            if shared > common {
                out.push((shared - common) as u8);
                out.extend_from_slice(low_bytes.get(common..shared).unwrap_or_default());
            }
            out.push(0x52);
            out.extend_from_slice(low_bytes.get(shared..).unwrap_or_default());
            out.extend_from_slice(high_bytes.get(shared..).unwrap_or_default());
            if shared > common {
                out.push(0x50);
            }
        }
        if common > 0 {
            out.push(0x50);
        }
        out.push(0x00);
    }
}

impl FromIterator<(u64, u64)> for GlobSet {
    fn from_iter<I: IntoIterator<Item = (u64, u64)>>(iter: I) -> Self {
        let mut set = GlobSet::new();
        for (low, high) in iter {
            set.insert_range(low, high);
        }
        set
    }
}

fn be48(bytes: &[u8; 6]) -> u64 {
    let [a, b, c, d, e, f] = *bytes;
    u64::from_be_bytes([0, 0, a, b, c, d, e, f])
}

fn to_be48(value: u64) -> [u8; 6] {
    let [_, _, a, b, c, d, e, f] = value.to_be_bytes();
    [a, b, c, d, e, f]
}

fn common_prefix(a: &[u8; 6], b: &[u8; 6]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// The replica key of one IDSET entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[non_exhaustive]
pub enum Replica {
    /// REPLID form: a 16-bit replica id (stream IDSETs such as MetaTagIdsetDeleted).
    Id(u16),
    /// REPLGUID form: a replica GUID (the ICS state properties).
    Guid(Guid),
}

/// The replica key form of an IDSET.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub enum IdsetForm {
    /// 2-byte REPLIDs.
    ReplId,
    /// 16-byte REPLGUIDs.
    ReplGuid,
}

/// An IDSET: per replica, a set of global counters. Entries with one key are merged and
/// kept sorted by key, so equal sets compare equal whatever their encoding.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash, serde::Serialize)]
pub struct IdSet {
    entries: Vec<(Replica, GlobSet)>,
}

impl IdSet {
    /// Creates an empty set.
    pub fn new() -> IdSet {
        IdSet::default()
    }

    /// Returns the entries, sorted by replica key.
    pub fn entries(&self) -> &[(Replica, GlobSet)] {
        &self.entries
    }

    /// Returns whether no replica has any value.
    pub fn is_empty(&self) -> bool {
        self.entries.iter().all(|(_, set)| set.is_empty())
    }

    /// Returns the counters of `replica`.
    pub fn get(&self, replica: Replica) -> Option<&GlobSet> {
        self.entries
            .iter()
            .find(|(r, _)| *r == replica)
            .map(|(_, s)| s)
    }

    /// Returns whether `value` of `replica` is in the set.
    pub fn contains(&self, replica: Replica, value: u64) -> bool {
        self.get(replica).is_some_and(|set| set.contains(value))
    }

    /// Adds the range `low..=high` of `replica`.
    pub fn insert_range(&mut self, replica: Replica, low: u64, high: u64) {
        match self.entries.binary_search_by(|(r, _)| r.cmp(&replica)) {
            Ok(index) => {
                if let Some((_, set)) = self.entries.get_mut(index) {
                    set.insert_range(low, high);
                }
            }
            Err(index) => {
                let mut set = GlobSet::new();
                set.insert_range(low, high);
                self.entries.insert(index, (replica, set));
            }
        }
    }

    /// Adds one value of `replica`.
    pub fn insert(&mut self, replica: Replica, value: u64) {
        self.insert_range(replica, value, value);
    }

    /// Decodes an IDSET that fills `bytes`.
    ///
    /// # Errors
    /// [`IdsetError`] when a GLOBSET is malformed or the input ends inside an entry.
    pub fn decode(bytes: &[u8], form: IdsetForm) -> Result<IdSet, IdsetError> {
        Self::decode_at(bytes, form, 0)
    }

    /// Decodes an IDSET that fills `bytes`, reporting offsets from `base`.
    ///
    /// # Errors
    /// See [`IdSet::decode`].
    pub fn decode_at(bytes: &[u8], form: IdsetForm, base: usize) -> Result<IdSet, IdsetError> {
        let mut reader = Reader::with_base(bytes, base);
        let mut idset = IdSet::new();
        while !reader.is_empty() {
            let replica = match form {
                IdsetForm::ReplId => Replica::Id(reader.u16("REPLID")?),
                IdsetForm::ReplGuid => Replica::Guid(Guid(reader.array("REPLGUID")?)),
            };
            let set = GlobSet::decode(&mut reader)?;
            for &(low, high) in set.ranges() {
                idset.insert_range(replica, low, high);
            }
            if set.is_empty() && idset.get(replica).is_none() {
                idset.entries.push((replica, set));
                idset.entries.sort_by_key(|e| e.0);
            }
        }
        Ok(idset)
    }

    /// Encodes the set. Entries whose key does not match `form` are skipped, so a caller
    /// maps REPLIDs to REPLGUIDs (or back) before encoding.
    pub fn encode(&self, form: IdsetForm) -> Vec<u8> {
        let mut out = Vec::new();
        for (replica, set) in &self.entries {
            match (replica, form) {
                (Replica::Id(id), IdsetForm::ReplId) => out.extend_from_slice(&id.to_le_bytes()),
                (Replica::Guid(guid), IdsetForm::ReplGuid) => out.extend_from_slice(&guid.0),
                _ => continue,
            }
            set.encode(&mut out);
        }
        out
    }

    /// Rewrites REPLID keys as REPLGUID keys (or the reverse) with `map`; keys that `map`
    /// leaves out stay as they are.
    pub fn map_replicas(&self, map: impl Fn(Replica) -> Option<Replica>) -> IdSet {
        let mut out = IdSet::new();
        for (replica, set) in &self.entries {
            let key = map(*replica).unwrap_or(*replica);
            for &(low, high) in set.ranges() {
                out.insert_range(key, low, high);
            }
        }
        out
    }
}

/// The ICS state of a synchronization context (MS-OXCFXICS 2.2.1.1): four REPLGUID-form
/// IDSETs.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct IcsState {
    /// MetaTagIdsetGiven: ids of the objects the client holds.
    pub idset_given: IdSet,
    /// MetaTagCnsetSeen: change numbers of normal messages (or folders) seen.
    pub cnset_seen: IdSet,
    /// MetaTagCnsetSeenFAI: change numbers of FAI messages seen (contents sync only).
    pub cnset_seen_fai: IdSet,
    /// MetaTagCnsetRead: change numbers of read-state changes seen (contents sync only).
    pub cnset_read: IdSet,
}

/// One of the ICS state properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub enum StateProperty {
    /// MetaTagIdsetGiven, 0x40170003 (also accepted as 0x40170102).
    IdsetGiven,
    /// MetaTagCnsetSeen, 0x67960102.
    CnsetSeen,
    /// MetaTagCnsetSeenFAI, 0x67DA0102.
    CnsetSeenFai,
    /// MetaTagCnsetRead, 0x67D20102.
    CnsetRead,
}

impl StateProperty {
    /// All four, in the order a state stream writes them.
    pub const ALL: [StateProperty; 4] = [
        StateProperty::IdsetGiven,
        StateProperty::CnsetSeen,
        StateProperty::CnsetSeenFai,
        StateProperty::CnsetRead,
    ];

    /// Returns the tag used in RopSynchronizationUploadStateStreamBegin and in state streams.
    pub fn tag(self) -> u32 {
        match self {
            StateProperty::IdsetGiven => 0x4017_0003,
            StateProperty::CnsetSeen => 0x6796_0102,
            StateProperty::CnsetSeenFai => 0x67DA_0102,
            StateProperty::CnsetRead => 0x67D2_0102,
        }
    }

    /// Returns the property of a tag, if it is one of the four.
    pub fn from_tag(tag: u32) -> Option<StateProperty> {
        match tag {
            0x4017_0003 | 0x4017_0102 => Some(StateProperty::IdsetGiven),
            0x6796_0102 => Some(StateProperty::CnsetSeen),
            0x67DA_0102 => Some(StateProperty::CnsetSeenFai),
            0x67D2_0102 => Some(StateProperty::CnsetRead),
            _ => None,
        }
    }
}

impl IcsState {
    /// Returns the IDSET of one property.
    pub fn get(&self, property: StateProperty) -> &IdSet {
        match property {
            StateProperty::IdsetGiven => &self.idset_given,
            StateProperty::CnsetSeen => &self.cnset_seen,
            StateProperty::CnsetSeenFai => &self.cnset_seen_fai,
            StateProperty::CnsetRead => &self.cnset_read,
        }
    }

    /// Returns the IDSET of one property, mutable.
    pub fn get_mut(&mut self, property: StateProperty) -> &mut IdSet {
        match property {
            StateProperty::IdsetGiven => &mut self.idset_given,
            StateProperty::CnsetSeen => &mut self.cnset_seen,
            StateProperty::CnsetSeenFai => &mut self.cnset_seen_fai,
            StateProperty::CnsetRead => &mut self.cnset_read,
        }
    }

    /// Decodes the value of one state property into this state.
    ///
    /// # Errors
    /// [`IdsetError`] when the IDSET is malformed.
    pub fn set_from_bytes(
        &mut self,
        property: StateProperty,
        bytes: &[u8],
    ) -> Result<(), IdsetError> {
        *self.get_mut(property) = IdSet::decode(bytes, IdsetForm::ReplGuid)?;
        Ok(())
    }

    /// Returns the (tag, REPLGUID-form IDSET bytes) pairs to upload with
    /// RopSynchronizationUploadStateStreamBegin/Continue/End.
    pub fn to_upload(&self) -> Vec<(u32, Vec<u8>)> {
        StateProperty::ALL
            .iter()
            .map(|p| (p.tag(), self.get(*p).encode(IdsetForm::ReplGuid)))
            .collect()
    }
}

/// Fuzzing entry point: decodes `data` in both forms and checks that each decoded set
/// encodes and decodes back to itself.
///
/// # Panics
/// When a decoded set does not round-trip, which is a codec bug.
#[doc(hidden)]
pub fn fuzz_idset(data: &[u8]) {
    for form in [IdsetForm::ReplId, IdsetForm::ReplGuid] {
        if let Ok(set) = IdSet::decode(data, form) {
            let again = IdSet::decode(&set.encode(form), form);
            assert_eq!(again.as_ref(), Ok(&set), "IDSET does not round-trip");
        }
    }
}
