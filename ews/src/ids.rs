//! The MAPI identities inside EWS ids: an ItemId or FolderId carries the object's MAPI
//! entry id (MS-OXCDATA 2.2.4.1 Folder EntryID, 2.2.4.2 Message EntryID), and a
//! ChangeKey carries the PidTagChangeKey XID (MS-OXCFXICS 2.2.2.2).
//!
//! Neither layout is in Microsoft's specifications. Both follow what Exchange sends, as
//! seen in public captures of Exchange 2010 to Exchange Online:
//!
//! ```text
//! EWS id     00 | 03 | u16 LE n | n ASCII bytes: the mailbox GUID | 00 | u16 LE m | m bytes: entry id
//! ChangeKey  u32 LE class (1 folder, 9 message) | u32 LE 22 | the 22-byte XID
//! ```
//!
//! The first id byte is 0 for an uncompressed id and the second is the id's storage type
//! (3 means "mailbox identified by GUID"). Exchange writes the byte between the mailbox and
//! the entry id as 0; its meaning is not documented. Exchange's ids are those bytes in
//! standard base64. The open-source server in the same captures sends the bare entry id
//! followed by one byte, and a bare 22-byte XID as ChangeKey. Both decoders accept those
//! forms too.
//!
//! Ids are case-sensitive base64: decode them, never compare them case-insensitively.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The ObjectType of a private folder's entry id (MS-OXCDATA 2.2.4, eitLTPrivateFolder).
pub const OBJECT_TYPE_PRIVATE_FOLDER: u16 = 0x0001;
/// The ObjectType of a private message's entry id (MS-OXCDATA 2.2.4,
/// eitLTPrivateMessage).
pub const OBJECT_TYPE_PRIVATE_MESSAGE: u16 = 0x0007;

/// The ChangeKey class Exchange writes for folders.
pub const CHANGE_KEY_CLASS_FOLDER: u32 = 1;
/// The ChangeKey class Exchange writes for messages.
pub const CHANGE_KEY_CLASS_MESSAGE: u32 = 9;

const FOLDER_ENTRY_ID_LEN: usize = 46;
const MESSAGE_ENTRY_ID_LEN: usize = 70;
/// The longest XID: a 16-byte GUID and an 8-byte local id (MS-OXCFXICS 2.2.2.2).
const XID_MAX_LEN: usize = 24;

/// An EWS id or ChangeKey whose bytes are not in a known layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The text is not standard base64.
    #[error(
        "{what} {value:?} is not base64; pass the Id or ChangeKey exactly as the server sent it"
    )]
    NotBase64 {
        /// The kind of value decoded (`ItemId`, `ChangeKey`, `entry id`).
        what: &'static str,
        /// The text as given.
        value: String,
    },
    /// The bytes do not have the layout of an Exchange id, an entry id or a change key.
    #[error(
        "{what} {value:?} has an unknown layout ({reason}); translate it with ConvertId instead"
    )]
    UnknownLayout {
        /// The kind of value decoded.
        what: &'static str,
        /// The text as given (base64 for ids and change keys, hex for entry ids).
        value: String,
        /// The first check that failed.
        reason: &'static str,
    },
}

/// A GUID and a 6-byte global counter: the long-term identity of a folder or message
/// (MS-OXCDATA 2.2.1.3 Global Identifier).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GlobalId {
    /// DatabaseGuid: the GUID that the replica id of a MAPI FID or MID stands for.
    pub database_guid: [u8; 16],
    /// GlobalCounter, as written on the wire (most significant byte first).
    pub global_counter: [u8; 6],
}

impl GlobalId {
    /// Returns the global counter as an integer.
    pub fn counter(&self) -> u64 {
        let [a, b, c, d, e, f] = self.global_counter;
        u64::from_be_bytes([0, 0, a, b, c, d, e, f])
    }
}

/// A private-mailbox folder or message entry id (MS-OXCDATA 2.2.4.1 and 2.2.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntryId {
    /// ProviderUID: the mailbox's store GUID.
    pub provider_uid: [u8; 16],
    /// The folder: the object itself for a folder entry id, the parent for a message.
    pub folder: GlobalId,
    /// The message, for a message entry id.
    pub message: Option<GlobalId>,
}

impl EntryId {
    /// Reads a folder entry id (46 bytes) or a message entry id (70 bytes).
    ///
    /// # Errors
    ///
    /// [`IdError::UnknownLayout`] for another length, nonzero flags or an object type
    /// other than a private folder or message.
    pub fn parse(bytes: &[u8]) -> Result<Self, IdError> {
        let fail = |reason| IdError::UnknownLayout {
            what: "entry id",
            value: hex(bytes),
            reason,
        };
        let mut reader = Reader { bytes };
        let flags = reader
            .take::<4>()
            .ok_or_else(|| fail("shorter than 4 bytes"))?;
        if flags != [0; 4] {
            return Err(fail("the flags are not 0"));
        }
        let provider_uid = reader.take::<16>().ok_or_else(|| fail("truncated"))?;
        let object_type = u16::from_le_bytes(reader.take::<2>().ok_or_else(|| fail("truncated"))?);
        let folder = reader.global_id().ok_or_else(|| fail("truncated"))?;
        let message = match (object_type, bytes.len()) {
            (OBJECT_TYPE_PRIVATE_FOLDER, FOLDER_ENTRY_ID_LEN) => None,
            (OBJECT_TYPE_PRIVATE_MESSAGE, MESSAGE_ENTRY_ID_LEN) => {
                Some(reader.global_id().ok_or_else(|| fail("truncated"))?)
            }
            (OBJECT_TYPE_PRIVATE_FOLDER | OBJECT_TYPE_PRIVATE_MESSAGE, _) => {
                return Err(fail("the length does not match the object type"));
            }
            _ => return Err(fail("not a private folder or message")),
        };
        Ok(Self {
            provider_uid,
            folder,
            message,
        })
    }

    /// Writes the entry id: 46 bytes for a folder, 70 for a message.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MESSAGE_ENTRY_ID_LEN);
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&self.provider_uid);
        let object_type = match self.message {
            Some(_) => OBJECT_TYPE_PRIVATE_MESSAGE,
            None => OBJECT_TYPE_PRIVATE_FOLDER,
        };
        out.extend_from_slice(&object_type.to_le_bytes());
        for id in std::iter::once(&self.folder).chain(self.message.as_ref()) {
            out.extend_from_slice(&id.database_guid);
            out.extend_from_slice(&id.global_counter);
            out.extend_from_slice(&[0; 2]);
        }
        out
    }
}

/// Encodes an entry id as an EWS id in Exchange's layout (see the module docs), for the
/// mailbox whose GUID is `mailbox_guid` (its text form, such as
/// `9362c853-fa03-45d1-9d7c-ef09db45f783`).
pub fn encode_ews_id(mailbox_guid: &str, entry_id: &[u8]) -> String {
    let mailbox = mailbox_guid.as_bytes();
    let mut out = Vec::with_capacity(6 + mailbox.len() + entry_id.len());
    out.extend_from_slice(&[0, 3]);
    out.extend_from_slice(&u16::try_from(mailbox.len()).unwrap_or(0).to_le_bytes());
    out.extend_from_slice(mailbox);
    out.push(0);
    out.extend_from_slice(&u16::try_from(entry_id.len()).unwrap_or(0).to_le_bytes());
    out.extend_from_slice(entry_id);
    STANDARD.encode(out)
}

/// Decodes an EWS ItemId or FolderId into the entry id it carries: Exchange's layout, or
/// a bare entry id followed by at most one byte.
///
/// # Errors
///
/// [`IdError::NotBase64`], or [`IdError::UnknownLayout`] when the bytes are in neither
/// layout (ids of other servers, or of archive and public folder mailboxes).
pub fn decode_ews_id(id: &str) -> Result<EntryId, IdError> {
    let bytes = STANDARD.decode(id).map_err(|_| IdError::NotBase64 {
        what: "ItemId",
        value: id.to_owned(),
    })?;
    let fail = |reason| IdError::UnknownLayout {
        what: "ItemId",
        value: id.to_owned(),
        reason,
    };

    if let [0, 3, rest @ ..] = bytes.as_slice() {
        let mut reader = Reader { bytes: rest };
        let mailbox_len = u16::from_le_bytes(reader.take::<2>().ok_or_else(|| fail("truncated"))?);
        reader
            .skip(usize::from(mailbox_len))
            .ok_or_else(|| fail("the mailbox is longer than the id"))?;
        reader.skip(1).ok_or_else(|| fail("truncated"))?;
        let entry_len = u16::from_le_bytes(reader.take::<2>().ok_or_else(|| fail("truncated"))?);
        let entry = reader
            .bytes
            .get(..usize::from(entry_len))
            .ok_or_else(|| fail("the entry id is longer than the id"))?;
        return EntryId::parse(entry).map_err(|_| fail("the embedded entry id is not valid"));
    }

    for len in [MESSAGE_ENTRY_ID_LEN, FOLDER_ENTRY_ID_LEN] {
        let fits = bytes.len() == len || bytes.len() == len + 1;
        if fits && let Some(Ok(parsed)) = bytes.get(..len).map(EntryId::parse) {
            return Ok(parsed);
        }
    }
    Err(fail("neither an Exchange id nor a bare entry id"))
}

/// Encodes an XID as a ChangeKey in Exchange's layout, with the class of the object
/// ([`CHANGE_KEY_CLASS_FOLDER`] or [`CHANGE_KEY_CLASS_MESSAGE`]).
pub fn encode_change_key(class: u32, xid: &[u8]) -> String {
    let mut out = Vec::with_capacity(8 + xid.len());
    out.extend_from_slice(&class.to_le_bytes());
    out.extend_from_slice(&u32::try_from(xid.len()).unwrap_or(0).to_le_bytes());
    out.extend_from_slice(xid);
    STANDARD.encode(out)
}

/// Decodes a ChangeKey into the XID it carries: Exchange's layout, or a bare XID of 17
/// to 24 bytes (a 16-byte GUID and a local id of 1 to 8 bytes).
///
/// # Errors
///
/// [`IdError::NotBase64`], or [`IdError::UnknownLayout`] for any other length or a
/// length field that does not match the bytes that follow it.
pub fn decode_change_key(change_key: &str) -> Result<Vec<u8>, IdError> {
    let bytes = STANDARD
        .decode(change_key)
        .map_err(|_| IdError::NotBase64 {
            what: "ChangeKey",
            value: change_key.to_owned(),
        })?;
    let fail = |reason| IdError::UnknownLayout {
        what: "ChangeKey",
        value: change_key.to_owned(),
        reason,
    };

    if (17..=XID_MAX_LEN).contains(&bytes.len()) {
        return Ok(bytes);
    }
    let mut reader = Reader { bytes: &bytes };
    let _class = reader.take::<4>().ok_or_else(|| fail("too short"))?;
    let len = u32::from_le_bytes(reader.take::<4>().ok_or_else(|| fail("too short"))?);
    let len = usize::try_from(len).map_err(|_| fail("the length field is too large"))?;
    if len != reader.bytes.len() || !(17..=XID_MAX_LEN).contains(&len) {
        return Err(fail("the length field does not match the XID that follows"));
    }
    Ok(reader.bytes.to_vec())
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.bytes.split_first_chunk::<N>()?;
        self.bytes = rest;
        Some(*head)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.bytes = self.bytes.get(n..)?;
        Some(())
    }

    fn global_id(&mut self) -> Option<GlobalId> {
        let database_guid = self.take::<16>()?;
        let global_counter = self.take::<6>()?;
        self.take::<2>()?;
        Some(GlobalId {
            database_guid,
            global_counter,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// A message id from an Exchange 2013 capture.
    const EXCHANGE_ITEM_ID: &str = "AAMkADkzNjJjODUzLWZhMDMtNDVkMS05ZDdjLWVmMDlkYjQ1Zjc4MwBGAAAAAABSSWVKrmGUTJE+MVIvofglBwDZGACZQpSgSpyNkexYe2b7AAAAAAENAADZGACZQpSgSpyNkexYe2b7AAANGFYwAAA=";
    /// A folder id from an Exchange capture.
    const EXCHANGE_FOLDER_ID: &str = "AAMkADhhNjgxMWMwLWFjMjAtNGMxYi1iMmVkLTYxN2ZjZjg0NjYxMwAuAAAAAABrjnF0sj+sSounzj9c5qzwAQBPRrS+NgN2TLdvauFC2S+xAACqkvK4AAA=";
    /// A message id from the open-source server's captures.
    const BARE_ITEM_ID: &str = "AAAAALYiIXmS6U9MovOcbWflWUQHAAEAAAClGHtvvNzqHtA8VlcAAAAAAA0AAAEAAAClGHtvvNzqHtA8VlcAAAADAG8AAAM=";

    #[test]
    fn exchange_message_id_decodes() {
        let entry = decode_ews_id(EXCHANGE_ITEM_ID).unwrap();
        let message = entry.message.unwrap();
        assert_eq!(entry.folder.counter(), 0x10d);
        assert_eq!(message.counter(), 0x0d18_5630);
        assert_eq!(entry.folder.database_guid, message.database_guid);
        assert_eq!(entry.provider_uid[..4], [0x52, 0x49, 0x65, 0x4a]);
    }

    #[test]
    fn exchange_folder_id_decodes() {
        let entry = decode_ews_id(EXCHANGE_FOLDER_ID).unwrap();
        assert_eq!(entry.message, None);
        assert_eq!(entry.folder.counter(), 0xaa92_f2b8);
    }

    #[test]
    fn bare_entry_id_decodes() {
        let entry = decode_ews_id(BARE_ITEM_ID).unwrap();
        assert_eq!(entry.folder.counter(), 0x0d);
        assert_eq!(entry.message.unwrap().counter(), 0x0003_006f);
    }

    #[test]
    fn exchange_id_round_trips() {
        let entry = decode_ews_id(EXCHANGE_ITEM_ID).unwrap();
        let text = encode_ews_id("9362c853-fa03-45d1-9d7c-ef09db45f783", &entry.to_bytes());
        assert_eq!(text, EXCHANGE_ITEM_ID);
    }

    #[test]
    fn change_keys_decode_both_layouts() {
        let exchange = decode_change_key("AQAAABYAAABPRrS+NgN2TLdvauFC2S+xAACqkvK6").unwrap();
        assert_eq!(exchange.len(), 22);
        assert_eq!(exchange[..4], [0x4f, 0x46, 0xb4, 0xbe]);
        let bare = decode_change_key("AQAAAKUYe2+83Ooe0DxWVwAAAAAABA==").unwrap();
        assert_eq!(bare.len(), 22);
        assert_eq!(bare[21], 4);
        let xid = [7u8; 22];
        assert_eq!(
            decode_change_key(&encode_change_key(CHANGE_KEY_CLASS_MESSAGE, &xid)).unwrap(),
            xid
        );
    }

    #[test]
    fn bad_ids_give_typed_errors() {
        assert!(matches!(
            decode_ews_id("not base64!"),
            Err(IdError::NotBase64 { .. })
        ));
        assert!(matches!(
            decode_ews_id("AAMkAA=="),
            Err(IdError::UnknownLayout { .. })
        ));
        assert!(matches!(
            decode_change_key("AQAAAP8AAABPRrS+NgN2TLdvauFC2S+xAACqkvK6"),
            Err(IdError::UnknownLayout { .. })
        ));
    }
}
