//! The `send` operation, journaled as the creation of its copy in Sent Items.
//!
//! A send files a copy of the message in Sent Items, which the next sync of that folder
//! reports. A send to a registered Sent Items folder is therefore journaled like a
//! create there. The transport learns the copy's id and change key by reading the
//! folder's message list before and after the send, so the core recognises the copy as
//! this transport's own. When the copy cannot be picked out (the server files it later, as
//! Exchange's transport service does, or another client added a message at the same
//! time), the write is reported as lost, so the copy arrives with origin `Unknown`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use exmux_ews::ops::IndexedPage;
use exmux_ews::ops::folders::GetFolder;
use exmux_ews::ops::items::CreateItem;
use exmux_ews::ops::sync::FindItem;
use exmux_ews::types::{
    BaseShape, DistinguishedFolder, FolderRef, Item, ItemKind, MessageDisposition, Traversal,
};
use uuid::Uuid;

use super::{Shared, Transport, TransportError, ews_write_result, lock, mapi};
use crate::backend::ews as ews_adapter;
use crate::core::{IssuedWrite, WriteIntent, WriteOutcome};
use crate::ids::{BackendFolderId, BackendItemId, FolderKey};
use crate::journal::ChangeKey;
use crate::operation::{Backend, Operation};

/// The FindItem page size when listing Sent Items.
const FIND_PAGE: u32 = 500;

/// A folder's message ids with their change keys.
type MessageList<Id> = BTreeMap<Id, Option<Vec<u8>>>;

impl Transport {
    /// Sends a message given as MIME bytes (the `send` operation) and keeps a copy in
    /// Sent Items: CreateItem with SendAndSaveCopy over EWS; over MAPI/HTTP a message
    /// created in the Outbox and submitted (RopSubmitMessage). A message without a
    /// Message-ID header gets one first.
    ///
    /// When Sent Items is a folder of this transport, the send is journaled as the
    /// creation of its copy there. The copy's id and change key are read back, so the
    /// next sync of Sent Items drops the copy as this transport's own. A copy that
    /// cannot be found at once arrives with origin `Unknown`.
    ///
    /// # Errors
    /// [`TransportError::Ews`], [`TransportError::Mapi`], or
    /// [`TransportError::Rejected`] when the server rejects the message.
    pub async fn send(&self, mime: &[u8]) -> Result<(), TransportError> {
        let operation = Operation::Send;
        let domain = self
            .shared
            .mailbox
            .rsplit_once('@')
            .map_or("localhost", |(_, domain)| domain);
        let mime = with_message_id(mime, domain);
        if self.routed_to_mapi(operation) {
            return self.send_mapi(&mime).await;
        }
        self.send_ews(&mime).await
    }

    async fn send_ews(&self, mime: &[u8]) -> Result<(), TransportError> {
        let operation = Operation::Send;
        let ews = self.ews_client(operation)?;
        let sent_items = FolderRef::distinguished(DistinguishedFolder::SentItems);
        let issued = match self.sent_items_key_ews().await {
            Some(folder) => Some(self.begin_send(folder, Backend::Ews, String::new())?),
            None => None,
        };
        // A failed listing leaves the copy unknown, as a copy filed later does.
        let before = match issued {
            Some(_) => self.ews_message_list(&sent_items).await,
            None => None,
        };

        let mut message = Item::new(ItemKind::Message);
        message.mime_content = Some(STANDARD.encode(mime));
        let result = ews
            .call(&CreateItem {
                disposition: Some(MessageDisposition::SendAndSaveCopy),
                saved_folder: Some(sent_items.clone()),
                items: vec![message],
            })
            .await
            .map(|response| response.into_single("CreateItem"));
        let Some(issued) = issued else {
            return ews_write_result(operation, "message", result)
                .map(drop)
                .map_err(|failure| failure.1);
        };
        if let Err(failure) = ews_write_result(operation, "message", result) {
            let (outcome, error) = *failure;
            Shared::report_write(&self.shared, issued.id, outcome)?;
            return Err(error);
        }

        let after = match before {
            Some(_) => self.ews_message_list(&sent_items).await,
            None => None,
        };
        let copy = before
            .zip(after)
            .and_then(|(before, after)| mapi::appeared_message(&before, after, None));
        let outcome = match copy {
            Some((id, change_key)) => WriteOutcome::Succeeded {
                change_key: change_key.map(ChangeKey),
                new_id: Some(BackendItemId::Ews(id)),
            },
            None => WriteOutcome::Lost,
        };
        Shared::report_write(&self.shared, issued.id, outcome)?;
        Ok(())
    }

    async fn send_mapi(&self, mime: &[u8]) -> Result<(), TransportError> {
        let operation = Operation::Send;
        let mapi = self.mapi_backend(operation)?;
        let fail = |source| TransportError::Mapi { operation, source };
        let (message, props) = exmux_mapihttp::session::mime::parse(mime).map_err(fail)?;
        let sent_fid = mapi.logon.sent_items().0;
        let folder = lock(&self.shared.mapi_folders).get(&sent_fid).copied();
        let issued = match folder {
            Some(folder) => Some(self.begin_send(folder, Backend::Mapi, mapi.session_label())?),
            None => None,
        };
        // A failed read leaves the copy unknown, as a copy filed later does.
        let before = match issued {
            Some(_) => mapi.message_change_keys(sent_fid).await.ok(),
            None => None,
        };

        let result = mapi
            .session
            .create_message_with_content(
                mapi.logon.outbox(),
                props,
                &message.recipients,
                &message.attachments,
                true,
            )
            .await
            .map(drop);
        let Some(issued) = issued else {
            return result.map_err(fail);
        };
        if result.is_err() {
            Shared::report_write(&self.shared, issued.id, mapi::write_outcome(&result))?;
            return result.map_err(fail);
        }

        let after = match before {
            Some(_) => mapi.message_change_keys(sent_fid).await.ok(),
            None => None,
        };
        let copy = before
            .zip(after)
            .and_then(|(before, after)| mapi::appeared_message(&before, after, None));
        let outcome = match copy {
            Some((mid, change_key)) => WriteOutcome::Succeeded {
                change_key: change_key.map(ChangeKey),
                new_id: Some(BackendItemId::Mapi { fid: sent_fid, mid }),
            },
            None => WriteOutcome::Lost,
        };
        Shared::report_write(&self.shared, issued.id, outcome)?;
        Ok(())
    }

    // Journals a send as the creation of its copy in Sent Items (`folder`).
    fn begin_send(
        &self,
        folder: FolderKey,
        backend: Backend,
        session: String,
    ) -> Result<IssuedWrite, TransportError> {
        let issued = Shared::begin_write(
            &self.shared,
            WriteIntent {
                operation: Operation::Send,
                item: None,
                folder,
                backend,
                session,
                assign_change_key: false,
                read_state: None,
                target_folder: None,
            },
        )?;
        Ok(issued)
    }

    // Returns the key of Sent Items when it is a folder of this transport: added by its
    // distinguished name, by its MAPI folder id, or by the EWS id that GetFolder returns
    // for it. `None` when it is not, or when the lookup fails. The send then goes
    // unjournaled, since no sync of Sent Items reports its copy.
    async fn sent_items_key_ews(&self) -> Option<FolderKey> {
        let name = DistinguishedFolder::SentItems.as_str();
        if let Some(key) = lock(&self.shared.folders).get(name).copied() {
            return Some(key);
        }
        if let Some(mapi) = &self.shared.mapi
            && let Some(key) = lock(&self.shared.mapi_folders)
                .get(&mapi.logon.sent_items().0)
                .copied()
        {
            return Some(key);
        }
        let registered = lock(&self.shared.core)
            .state()
            .folders
            .values()
            .any(|folder| {
                folder
                    .ids
                    .iter()
                    .any(|id| matches!(id, BackendFolderId::Ews(_)))
            });
        if !registered {
            return None;
        }
        let found = self
            .shared
            .ews
            .as_ref()?
            .call(&GetFolder {
                shape: exmux_ews::ops::Shape::base(BaseShape::IdOnly),
                folder_ids: vec![FolderRef::distinguished(DistinguishedFolder::SentItems)],
            })
            .await
            .ok()?
            .into_single("GetFolder")
            .ok()?;
        let id = found.into_iter().next()?.folder_id?.id;
        lock(&self.shared.folders).get(&id).copied()
    }

    // Lists the ItemIds and change keys of the messages in `folder` with FindItem, page
    // by page. `None` when a page fails.
    async fn ews_message_list(&self, folder: &FolderRef) -> Option<MessageList<String>> {
        let ews = self.shared.ews.as_ref()?;
        let mut messages = BTreeMap::new();
        let mut offset = 0u32;
        loop {
            let page = ews
                .call(&FindItem {
                    traversal: Traversal::Shallow,
                    shape: exmux_ews::ops::Shape::base(BaseShape::IdOnly),
                    page: Some(IndexedPage {
                        max_entries: FIND_PAGE,
                        offset,
                    }),
                    parents: vec![folder.clone()],
                })
                .await
                .ok()?
                .into_single("FindItem")
                .ok()?;
            let listed = page.items.len();
            for id in page.items.into_iter().filter_map(|item| item.item_id) {
                let change_key = id
                    .change_key
                    .as_deref()
                    .map(|key| ews_adapter::change_key(key).0);
                messages.insert(id.id, change_key);
            }
            // A page that adds nothing, or an offset that does not advance, ends the
            // listing, so a server that repeats a page cannot keep the loop going.
            let next = page.paging.indexed_paging_offset.unwrap_or(offset);
            if page.paging.includes_last_item_in_range || listed == 0 || next <= offset {
                return Some(messages);
            }
            offset = next;
        }
    }
}

/// Returns `mime` with a Message-ID header (RFC 5322 section 3.6.4) added at the top
/// when its header section has none, so the sent copy has a stable internet message id.
/// The id is a random UUID at `domain`.
pub(crate) fn with_message_id<'a>(mime: &'a [u8], domain: &str) -> Cow<'a, [u8]> {
    if has_message_id(mime) {
        return Cow::Borrowed(mime);
    }
    // The added line ends the way the message's first line does.
    let first_line_end = mime.iter().position(|&byte| byte == b'\n');
    let crlf = first_line_end.is_none_or(|end| end > 0 && mime.get(end - 1) == Some(&b'\r'));
    let line_end = if crlf { "\r\n" } else { "\n" };
    let header = format!(
        "Message-ID: <{}@{domain}>{line_end}",
        Uuid::new_v4().simple()
    );
    let mut out = Vec::with_capacity(header.len().saturating_add(mime.len()));
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(mime);
    Cow::Owned(out)
}

// Returns whether the header section (up to the first empty line) has a Message-ID
// field. Header field names are case-insensitive.
fn has_message_id(mime: &[u8]) -> bool {
    const NAME: &[u8] = b"message-id:";
    for line in mime.split(|&byte| byte == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return false;
        }
        if line
            .get(..NAME.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(NAME))
        {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn message_id_kept_when_present() {
        let mime = b"Subject: a\r\nmessage-ID: <x@y>\r\n\r\nbody\r\n";
        let out = with_message_id(mime, "example.test");
        assert!(matches!(out, Cow::Borrowed(_)));
    }

    #[test]
    fn message_id_added_when_missing() {
        let mime = b"Subject: a\r\n\r\nbody\r\n";
        let out = with_message_id(mime, "example.test");
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.starts_with("Message-ID: <"), "{text}");
        assert!(text.contains("@example.test>\r\nSubject: a\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nbody\r\n"), "{text}");
    }

    #[test]
    fn message_id_in_body_does_not_count() {
        let mime = b"Subject: a\n\nMessage-ID: <not-a-header@y>\n";
        let out = with_message_id(mime, "example.test");
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.starts_with("Message-ID: <"), "{text}");
        assert!(text.contains(">\nSubject: a\n"), "bare LF kept: {text}");
    }

    #[test]
    fn message_id_added_parses_back() {
        let mime = b"From: a@example.test\r\nSubject: a\r\n\r\nbody\r\n";
        let out = with_message_id(mime, "example.test");
        let (message, _) = exmux_mapihttp::session::mime::parse(&out).unwrap();
        let id = message.message_id.unwrap();
        assert!(id.ends_with("@example.test>"), "{id}");
    }
}
