//! The MAPI/HTTP side of the transport: one [`MapiSession`] with its logon, and the
//! calls the driver makes on it.

use std::collections::BTreeMap;
use std::sync::Arc;

use exmux_core::Clock;
use exmux_core::auth::Credentials;
use exmux_ews::types::DistinguishedFolder;
use exmux_mapihttp::ids::{Guid, ObjectId, Xid};
use exmux_mapihttp::prop::{PropValue, RowCell, tags};
use exmux_mapihttp::session::record::Recorder;
use exmux_mapihttp::session::{
    FolderRow, LogonInfo, MapiSession, SessionConfig, SessionError, SyncState as MapiState,
};

use crate::backend::mapi::{self as mapi_adapter, EwsIdContext};
use crate::core::{FetchOutcome, Input, SyncFailure, SyncState, WriteOutcome};
use crate::ids::{BackendItemId, FolderKey};
use crate::journal::ChangeKey;

/// MAPI_E_NOT_FOUND, the error code of a missing object (MS-OXCDATA).
const EC_NOT_FOUND: u32 = 0x8004_010F;

/// The notification types the transport registers for (NotificationTypes of
/// RopRegisterNotification, MS-OXCNOTIF):
/// new mail, object created, deleted, modified, moved and copied.
pub(crate) const NOTIFICATION_TYPES: u8 = 0x02 | 0x04 | 0x08 | 0x10 | 0x20 | 0x40;

pub(crate) struct MapiBackend {
    pub(crate) session: MapiSession,
    pub(crate) logon: LogonInfo,
}

impl MapiBackend {
    /// Connects a session (Connect, then RopLogon), recording every exchange when a
    /// recorder is given.
    pub(crate) async fn connect(
        url: &str,
        user_dn: &str,
        credentials: Credentials,
        http: &exmux_core::http::HttpOptions,
        clock: Arc<dyn Clock>,
        recorder: Option<Arc<dyn Recorder>>,
    ) -> Result<MapiBackend, SessionError> {
        let usage = |error: exmux_core::http::HttpConfigError| SessionError::Usage {
            operation: "connect",
            reason: error.to_string(),
        };
        let client = http.build_client().map_err(usage)?;
        let mut config = SessionConfig::new(url, user_dn, credentials, client);
        // The connections the session opens itself for NTLM and Negotiate trust what the
        // pooled client trusts.
        config.owned_tls = Some(http.tls_config().map_err(usage)?);
        config.owned_proxy = http.proxy.clone();
        config.clock = clock;
        config.recorder = recorder;
        let session = MapiSession::new(config);
        let logon = session.connect().await?;
        Ok(MapiBackend { session, logon })
    }

    /// Returns the session's name for the write journal: its X-ClientInfo GUID.
    pub(crate) fn session_label(&self) -> String {
        self.session.client_guid().hyphenated().to_string()
    }

    /// Returns the replica id of a database GUID, from the logon's replica map.
    pub(crate) fn replid_of(&self, guid: &[u8; 16]) -> Option<u16> {
        std::iter::once((&self.logon.logon_replica.0, &self.logon.logon_replica.1))
            .chain(&self.logon.replicas)
            .find(|(_, replica)| replica.0 == *guid)
            .map(|(replid, _)| *replid)
    }

    /// Returns the database GUID of a replica id, from the logon's replica map.
    fn guid_of(&self, replid: u16) -> Option<[u8; 16]> {
        if self.logon.logon_replica.0 == replid {
            return Some(self.logon.logon_replica.1.0);
        }
        self.logon.replicas.get(&replid).map(|guid| guid.0)
    }

    /// Returns the source key (PidTagSourceKey, MS-OXCFXICS 2.2.1.2.5) of message `mid`:
    /// the replica GUID of its REPLID followed by its GLOBCNT. ICS import names
    /// messages by source key. `None` when the logon's replica map lacks the REPLID.
    pub(crate) fn source_key(&self, mid: u64) -> Option<Vec<u8>> {
        let id = ObjectId(mid);
        let guid = self.guid_of(id.replid())?;
        Some(Xid::from_globcnt(Guid(guid), id.globcnt()).to_vec())
    }

    /// Returns the EWS ItemId of message `mid` in folder `fid`, built from the ids.
    pub(crate) fn ews_item_id(&self, fid: u64, mid: u64) -> Option<String> {
        let guid_of = |replid| self.guid_of(replid);
        EwsIdContext {
            mailbox_guid: self.logon.mailbox_guid.0,
            guid_of: &guid_of,
        }
        .item_id(fid, mid)
    }

    /// Returns the EWS FolderId of folder `fid`, built from the id.
    pub(crate) fn ews_folder_id(&self, fid: u64) -> Option<String> {
        let guid_of = |replid| self.guid_of(replid);
        EwsIdContext {
            mailbox_guid: self.logon.mailbox_guid.0,
            guid_of: &guid_of,
        }
        .folder_id(fid)
    }

    /// Returns the folder id an EWS FolderId carries, when it decodes.
    pub(crate) fn fid_of_ews_folder(&self, ews_id: &str) -> Option<u64> {
        crate::backend::ews::mapi_folder_id_with(ews_id, |guid| self.replid_of(guid))
    }

    /// Returns the FID of a distinguished folder name (`inbox`), from the logon.
    pub(crate) fn folder_id(&self, name: &str) -> Option<u64> {
        let id = match DistinguishedFolder::parse(name)? {
            DistinguishedFolder::Inbox => self.logon.inbox(),
            DistinguishedFolder::DeletedItems => self.logon.deleted_items(),
            DistinguishedFolder::SentItems => self.logon.sent_items(),
            DistinguishedFolder::Outbox => self.logon.outbox(),
            DistinguishedFolder::MsgFolderRoot => self.logon.ipm_subtree(),
            _ => return None,
        };
        Some(id.0)
    }

    /// Returns the distinguished name (`inbox`) of folder `fid`, when the logon names it.
    pub(crate) fn distinguished_name(&self, fid: u64) -> Option<&'static str> {
        [
            ("inbox", self.logon.inbox()),
            ("deleteditems", self.logon.deleted_items()),
            ("sentitems", self.logon.sent_items()),
            ("outbox", self.logon.outbox()),
            ("msgfolderroot", self.logon.ipm_subtree()),
        ]
        .into_iter()
        .find_map(|(name, id)| (id.0 == fid).then_some(name))
    }

    /// Lists every folder under the IPM subtree, with its folder id and display name, by
    /// one ICS hierarchy download from an empty state (MS-OXCFXICS).
    pub(crate) async fn folders(&self) -> Result<Vec<(u64, String)>, SessionError> {
        let sync = self
            .session
            .sync_hierarchy(self.logon.ipm_subtree(), &MapiState::default())
            .await?;
        Ok(sync
            .changes
            .into_iter()
            .filter_map(|change| {
                Some((change.folder_id?.0, change.display_name.unwrap_or_default()))
            })
            .collect())
    }

    /// Finds folder `fid` in the IPM subtree's deep hierarchy table, for its parent and
    /// display name, which RopMoveFolder and RopDeleteFolder need.
    pub(crate) async fn folder_row(&self, fid: u64) -> Result<Option<FolderRow>, SessionError> {
        let rows = self
            .session
            .hierarchy_table(self.logon.ipm_subtree(), true)
            .await?;
        Ok(rows.into_iter().find(|row| row.folder_id.0 == fid))
    }

    /// Reads the message id and PidTagChangeKey of every message in folder `fid` from
    /// its contents table. A message without a change key maps to `None`.
    pub(crate) async fn message_change_keys(
        &self,
        fid: u64,
    ) -> Result<BTreeMap<u64, Option<Vec<u8>>>, SessionError> {
        let columns = [tags::PID_TAG_MID, tags::PID_TAG_CHANGE_KEY];
        let rows = self.session.contents_table(ObjectId(fid), &columns).await?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                let Some(PropValue::I64(mid)) = row
                    .get(&columns, tags::PID_TAG_MID)
                    .and_then(RowCell::value)
                else {
                    return None;
                };
                let change_key = match row
                    .get(&columns, tags::PID_TAG_CHANGE_KEY)
                    .and_then(RowCell::value)
                {
                    Some(PropValue::Binary(key)) => Some(key.clone()),
                    _ => None,
                };
                // PidTagMid is a PtypInteger64 holding the unsigned 64-bit message id.
                Some((u64::from_le_bytes(mid.to_le_bytes()), change_key))
            })
            .collect())
    }

    /// Downloads the changes of folder `fid` since `from` and returns the core input.
    pub(crate) async fn sync(&self, folder: FolderKey, fid: u64, from: &SyncState) -> Input {
        // A state saved by the other backend does not parse here: start over.
        let state = if from.is_empty() {
            MapiState::default()
        } else {
            MapiState::from_bytes(&from.0).unwrap_or_default()
        };
        match self.session.sync_contents(ObjectId(fid), &state).await {
            Ok(sync) => Input::SyncPage(mapi_adapter::contents_page(folder, fid, &sync)),
            Err(SessionError::InvalidSyncState { .. }) => Input::SyncFailed {
                folder,
                failure: SyncFailure::InvalidSyncState,
            },
            Err(error) => Input::SyncFailed {
                folder,
                failure: SyncFailure::Other {
                    message: format!("ICS download failed: {error}"),
                    retryable: error.is_retryable(),
                },
            },
        }
    }

    /// Checks that a message exists by opening it.
    pub(crate) async fn verify(&self, folder: FolderKey, id: BackendItemId) -> Input {
        let BackendItemId::Mapi { fid, mid } = id else {
            return Input::FetchResult {
                folder,
                id,
                outcome: FetchOutcome::Failed { retryable: false },
            };
        };
        let outcome = match self
            .session
            .open_message(ObjectId(fid), ObjectId(mid), false)
            .await
        {
            Ok(handle) => {
                let _ = self.session.release(handle).await;
                FetchOutcome::Found {
                    change_key: None,
                    read: None,
                }
            }
            Err(SessionError::Rop {
                code: EC_NOT_FOUND, ..
            }) => FetchOutcome::NotFound,
            Err(error) => FetchOutcome::Failed {
                retryable: error.is_retryable(),
            },
        };
        Input::FetchResult {
            folder,
            id,
            outcome,
        }
    }
}

/// Picks the message that a move, copy or send added to a folder, from the folder's
/// message ids (MAPI message ids or EWS ItemIds) and change keys before and after it.
/// With `expected`, the change key a moved message keeps, a message carrying that key
/// wins. Otherwise exactly one new message must have appeared. Returns `None` when the
/// choice is ambiguous, for example when another client added a message to the folder
/// at the same time.
pub(crate) fn appeared_message<Id: Ord + Clone>(
    before: &BTreeMap<Id, Option<Vec<u8>>>,
    after: BTreeMap<Id, Option<Vec<u8>>>,
    expected: Option<&ChangeKey>,
) -> Option<(Id, Option<Vec<u8>>)> {
    let appeared: Vec<(Id, Option<Vec<u8>>)> = after
        .into_iter()
        .filter(|(mid, _)| !before.contains_key(mid))
        .collect();
    if let Some(expected) = expected {
        let mut keyed = appeared
            .iter()
            .filter(|(_, key)| key.as_ref() == Some(&expected.0));
        if let (Some(only), None) = (keyed.next(), keyed.next()) {
            return Some(only.clone());
        }
    }
    let mut appeared = appeared.into_iter();
    match (appeared.next(), appeared.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

/// Turns the result of a MAPI write into its outcome: a ROP error means the server
/// rejected it; a failure before any response leaves the outcome unknown.
pub(crate) fn write_outcome(result: &Result<(), SessionError>) -> WriteOutcome {
    match result {
        Ok(()) => WriteOutcome::Succeeded {
            change_key: None,
            new_id: None,
        },
        Err(error) => failure_outcome(error),
    }
}

/// Returns the outcome of a write that failed with `error`: a ROP error or a misuse
/// means the server applied nothing, and any other failure leaves the outcome unknown.
pub(crate) fn failure_outcome(error: &SessionError) -> WriteOutcome {
    match error {
        SessionError::Rop { .. } | SessionError::Usage { .. } => WriteOutcome::Failed,
        _ => WriteOutcome::Lost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(rows: &[(u64, &[u8])]) -> BTreeMap<u64, Option<Vec<u8>>> {
        rows.iter()
            .map(|(mid, key)| (*mid, Some(key.to_vec())))
            .collect()
    }

    #[test]
    fn single_new_message_is_picked() {
        let before = folder(&[(1, b"a")]);
        let after = folder(&[(1, b"a"), (7, b"copy")]);
        assert_eq!(
            appeared_message(&before, after, None),
            Some((7, Some(b"copy".to_vec())))
        );
    }

    #[test]
    fn expected_key_settles_two_arrivals() {
        let before = folder(&[(1, b"a")]);
        let after = folder(&[(1, b"a"), (7, b"other"), (8, b"moved")]);
        let expected = ChangeKey(b"moved".to_vec());
        assert_eq!(
            appeared_message(&before, after, Some(&expected)),
            Some((8, Some(b"moved".to_vec())))
        );
    }

    #[test]
    fn two_arrivals_without_key_are_ambiguous() {
        let before = folder(&[(1, b"a")]);
        let after = folder(&[(1, b"a"), (7, b"x"), (8, b"y")]);
        assert_eq!(appeared_message(&before, after, None), None);
    }

    #[test]
    fn no_arrival_gives_none() {
        let before = folder(&[(1, b"a")]);
        let after = folder(&[(1, b"a")]);
        let expected = ChangeKey(b"a".to_vec());
        assert_eq!(appeared_message(&before, after, Some(&expected)), None);
    }
}
