//! Identifiers and change-tracking values in MS-OXCDATA terms: GLOBCNT, folder, message
//! and change numbers, XIDs and predecessor change lists.

use std::fmt;

/// The replica id of the mailbox's own replica (MS-OXCDATA 2.2.1.1: the REPLID that
/// pairs with the store's replica GUID). Every id this store assigns carries it.
pub const REPLICA_ID: u16 = 1;

/// The largest value of a 48-bit global counter (MS-OXCDATA 2.2.1.1, GlobalCounter).
pub const GLOBCNT_MAX: u64 = (1 << 48) - 1;

/// A 48-bit global counter (MS-OXCDATA 2.2.1.1). Folder ids, message ids and change
/// numbers of one replica are all drawn from one GLOBCNT space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Globcnt(u64);

impl Globcnt {
    /// Creates a counter value, or `None` when `value` does not fit in 48 bits.
    pub fn new(value: u64) -> Option<Self> {
        (value <= GLOBCNT_MAX).then_some(Self(value))
    }

    /// Creates a counter value, clamping `value` to [`GLOBCNT_MAX`].
    pub fn saturating(value: u64) -> Self {
        Self(value.min(GLOBCNT_MAX))
    }

    /// Returns the counter as an integer.
    pub fn get(self) -> u64 {
        self.0
    }

    /// Returns the 6-byte wire form, most significant byte first, as GLOBCNT values are
    /// written inside ids and XIDs (MS-OXCFXICS 2.2.2.5; a change key from Gromox ends
    /// in `00 00 00 00 00 04` for counter 4).
    pub fn to_bytes(self) -> [u8; 6] {
        let b = self.0.to_be_bytes();
        [b[2], b[3], b[4], b[5], b[6], b[7]]
    }

    /// Reads the 6-byte wire form written by [`Globcnt::to_bytes`].
    pub fn from_bytes(bytes: [u8; 6]) -> Self {
        let [a, b, c, d, e, f] = bytes;
        Self(u64::from_be_bytes([0, 0, a, b, c, d, e, f]))
    }
}

/// Writes the 8-byte id form of MS-OXCDATA 2.2.1.1/2.2.1.2: the 2-byte replica id
/// (little-endian) followed by the 6-byte global counter.
fn id_bytes(globcnt: Globcnt) -> [u8; 8] {
    let r = REPLICA_ID.to_le_bytes();
    let g = globcnt.to_bytes();
    [r[0], r[1], g[0], g[1], g[2], g[3], g[4], g[5]]
}

macro_rules! object_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub Globcnt);

        impl $name {
            /// Returns the replica id part, always [`REPLICA_ID`] for this store.
            pub fn replica_id(self) -> u16 {
                REPLICA_ID
            }

            /// Returns the global counter part.
            pub fn globcnt(self) -> Globcnt {
                self.0
            }

            /// Returns the 8-byte MS-OXCDATA form: replica id (2 bytes, little-endian),
            /// then the global counter (6 bytes).
            pub fn to_bytes(self) -> [u8; 8] {
                id_bytes(self.0)
            }

            /// Returns the id as the little-endian integer of its 8-byte form, as ROPs
            /// carry a FID or MID in one 64-bit field.
            pub fn to_u64(self) -> u64 {
                u64::from_le_bytes(self.to_bytes())
            }

            /// Reads an id from the integer form of [`Self::to_u64`]. Returns `None`
            /// when its replica id is not [`REPLICA_ID`].
            pub fn from_u64(value: u64) -> Option<Self> {
                let [r0, r1, a, b, c, d, e, f] = value.to_le_bytes();
                (u16::from_le_bytes([r0, r1]) == REPLICA_ID)
                    .then(|| Self(Globcnt::from_bytes([a, b, c, d, e, f])))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}-{:#x}"), REPLICA_ID, self.0.get())
            }
        }
    };
}

object_id!(
    /// A folder id (FID, MS-OXCDATA 2.2.1.1). Stable across rename and move.
    Fid,
    "fid:"
);
object_id!(
    /// A message id (MID, MS-OXCDATA 2.2.1.2). Stable across modification; a move or
    /// copy gives the item a new MID.
    Mid,
    "mid:"
);
object_id!(
    /// A change number (CN): the store-wide counter stamped on every change, drawn from
    /// the same GLOBCNT space as FIDs and MIDs (MS-OXCFXICS 2.2.2.1 and 2.2.2.5).
    Cn,
    "cn:"
);

/// A GUID in the byte order MAPI writes it: the first three fields little-endian.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Guid(pub [u8; 16]);

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            b[3],
            b[2],
            b[1],
            b[0],
            b[5],
            b[4],
            b[7],
            b[6],
            b[8],
            b[9],
            b[10],
            b[11],
            b[12],
            b[13],
            b[14],
            b[15]
        )
    }
}

/// The largest local id an XID may carry, in bytes (MS-OXCFXICS 2.2.2.2: an XID is a
/// GUID plus a local id of 1 to 8 bytes).
pub const XID_LOCAL_ID_MAX: usize = 8;

/// An XID (MS-OXCFXICS 2.2.2.2): a namespace GUID plus a local id of 1 to 8 bytes. A
/// change key (PidTagChangeKey) is an XID, and the store's own change keys use its replica
/// GUID and a 6-byte counter, 22 bytes in all.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Xid {
    namespace: Guid,
    local_id: Vec<u8>,
}

impl Xid {
    /// Creates an XID.
    ///
    /// # Errors
    ///
    /// [`XidError::LocalIdLength`] when `local_id` is empty or longer than 8 bytes.
    pub fn new(namespace: Guid, local_id: &[u8]) -> Result<Self, XidError> {
        if local_id.is_empty() || local_id.len() > XID_LOCAL_ID_MAX {
            return Err(XidError::LocalIdLength {
                length: local_id.len(),
            });
        }
        Ok(Self {
            namespace,
            local_id: local_id.to_vec(),
        })
    }

    /// Creates the store's change key for counter `counter`: `namespace` plus the
    /// 6-byte GLOBCNT.
    pub fn from_globcnt(namespace: Guid, counter: Globcnt) -> Self {
        Self {
            namespace,
            local_id: counter.to_bytes().to_vec(),
        }
    }

    /// Returns the namespace GUID.
    pub fn namespace(&self) -> Guid {
        self.namespace
    }

    /// Returns the local id bytes.
    pub fn local_id(&self) -> &[u8] {
        &self.local_id
    }

    /// Returns the wire form: 16 GUID bytes, then the local id.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.local_id.len());
        out.extend_from_slice(&self.namespace.0);
        out.extend_from_slice(&self.local_id);
        out
    }

    /// Reads the wire form of [`Xid::to_bytes`]: the local id is everything after the
    /// GUID.
    ///
    /// # Errors
    ///
    /// [`XidError::Length`] when `bytes` is not 17 to 24 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, XidError> {
        let Some((guid, local_id)) = bytes.split_first_chunk::<16>() else {
            return Err(XidError::Length {
                length: bytes.len(),
            });
        };
        if local_id.is_empty() || local_id.len() > XID_LOCAL_ID_MAX {
            return Err(XidError::Length {
                length: bytes.len(),
            });
        }
        Ok(Self {
            namespace: Guid(*guid),
            local_id: local_id.to_vec(),
        })
    }

    /// Compares the local ids of two XIDs of one namespace as unsigned big-endian
    /// numbers, so a longer id with leading zeros equals a shorter one.
    fn local_id_cmp(&self, other: &Self) -> std::cmp::Ordering {
        let value = |bytes: &[u8]| {
            bytes
                .iter()
                .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte))
        };
        value(&self.local_id).cmp(&value(&other.local_id))
    }
}

/// A malformed XID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XidError {
    /// The local id is not 1 to 8 bytes long.
    #[error("invalid XID local id of {length} bytes: it must be 1 to 8 bytes")]
    LocalIdLength {
        /// The rejected length.
        length: usize,
    },
    /// The whole XID is not 17 to 24 bytes long.
    #[error("invalid XID of {length} bytes: it must be a 16-byte GUID plus 1 to 8 bytes")]
    Length {
        /// The rejected length.
        length: usize,
    },
    /// A predecessor change list entry runs past the end of the buffer.
    #[error("truncated predecessor change list: entry at offset {offset} runs past the end")]
    TruncatedPcl {
        /// The offset of the entry's size byte.
        offset: usize,
    },
}

/// A predecessor change list (PidTagPredecessorChangeList, MS-OXCFXICS 2.2.1.2.8 and
/// 2.2.2.3): at most one XID per namespace GUID, keeping the greatest local id, ordered
/// by GUID.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Pcl {
    entries: Vec<Xid>,
}

impl Pcl {
    /// Creates an empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `xid`, replacing the entry of its namespace when `xid` is greater.
    pub fn merge_xid(&mut self, xid: &Xid) {
        match self
            .entries
            .binary_search_by(|entry| entry.namespace.cmp(&xid.namespace))
        {
            Ok(position) => {
                if let Some(entry) = self.entries.get_mut(position)
                    && xid.local_id_cmp(entry).is_gt()
                {
                    *entry = xid.clone();
                }
            }
            Err(position) => self.entries.insert(position, xid.clone()),
        }
    }

    /// Merges every entry of `other` into this list.
    pub fn merge(&mut self, other: &Pcl) {
        for xid in &other.entries {
            self.merge_xid(xid);
        }
    }

    /// Returns whether this list includes `xid`: an entry of its namespace at least as
    /// great (MS-OXCFXICS 3.1.5.6.1, conflict detection).
    pub fn includes(&self, xid: &Xid) -> bool {
        self.entries
            .iter()
            .any(|entry| entry.namespace == xid.namespace && !entry.local_id_cmp(xid).is_lt())
    }

    /// Returns the entries, ordered by namespace GUID.
    pub fn entries(&self) -> &[Xid] {
        &self.entries
    }

    /// Returns the wire form: each XID as a SizedXid (MS-OXCFXICS 2.2.2.3.1: one size
    /// byte, then the XID).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for xid in &self.entries {
            let bytes = xid.to_bytes();
            // An XID is at most 24 bytes, so its size always fits in the size byte.
            out.push(u8::try_from(bytes.len()).unwrap_or(u8::MAX));
            out.extend_from_slice(&bytes);
        }
        out
    }

    /// Reads the wire form of [`Pcl::to_bytes`], merging entries of one namespace.
    ///
    /// # Errors
    ///
    /// [`XidError`] when an entry is truncated or malformed.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, XidError> {
        let mut pcl = Self::new();
        let mut offset = 0;
        while let Some(&size) = bytes.get(offset) {
            let start = offset + 1;
            let end = start + usize::from(size);
            let Some(entry) = bytes.get(start..end) else {
                return Err(XidError::TruncatedPcl { offset });
            };
            pcl.merge_xid(&Xid::from_bytes(entry)?);
            offset = end;
        }
        Ok(pcl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globcnt_bytes_round_trip() {
        let value = Globcnt::new(0x0102_0304_0506).unwrap();
        assert_eq!(value.to_bytes(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(Globcnt::from_bytes(value.to_bytes()), value);
        assert!(Globcnt::new(GLOBCNT_MAX + 1).is_none());
    }

    #[test]
    fn fid_u64_form_round_trips() {
        let fid = Fid(Globcnt::new(0x1234).unwrap());
        assert_eq!(fid.to_bytes(), [1, 0, 0, 0, 0, 0, 0x12, 0x34]);
        assert_eq!(Fid::from_u64(fid.to_u64()), Some(fid));
        assert_eq!(Fid::from_u64(0), None);
    }

    #[test]
    fn store_change_key_is_22_bytes() {
        let xid = Xid::from_globcnt(Guid([7; 16]), Globcnt::new(5).unwrap());
        assert_eq!(xid.to_bytes().len(), 22);
        assert_eq!(Xid::from_bytes(&xid.to_bytes()).unwrap(), xid);
    }

    #[test]
    fn xid_rejects_bad_lengths() {
        assert!(Xid::from_bytes(&[0; 16]).is_err());
        assert!(Xid::from_bytes(&[0; 25]).is_err());
        assert!(Xid::new(Guid::default(), &[]).is_err());
    }

    #[test]
    fn pcl_keeps_greatest_per_namespace() {
        let a = Guid([1; 16]);
        let b = Guid([2; 16]);
        let mut pcl = Pcl::new();
        pcl.merge_xid(&Xid::new(a, &[0, 5]).unwrap());
        pcl.merge_xid(&Xid::new(b, &[1]).unwrap());
        pcl.merge_xid(&Xid::new(a, &[3]).unwrap());
        assert_eq!(pcl.entries().len(), 2);
        assert_eq!(pcl.entries()[0].local_id(), &[0, 5]);
        pcl.merge_xid(&Xid::new(a, &[9]).unwrap());
        assert_eq!(pcl.entries()[0].local_id(), &[9]);
        assert!(pcl.includes(&Xid::new(a, &[0, 0, 4]).unwrap()));
        assert!(!pcl.includes(&Xid::new(b, &[2]).unwrap()));
    }

    #[test]
    fn pcl_bytes_round_trip() {
        let mut pcl = Pcl::new();
        pcl.merge_xid(&Xid::from_globcnt(Guid([3; 16]), Globcnt::new(77).unwrap()));
        pcl.merge_xid(&Xid::new(Guid([1; 16]), &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap());
        let bytes = pcl.to_bytes();
        assert_eq!(bytes.len(), 23 + 25);
        assert_eq!(Pcl::from_bytes(&bytes).unwrap(), pcl);
        assert!(Pcl::from_bytes(&bytes[..30]).is_err());
    }
}
