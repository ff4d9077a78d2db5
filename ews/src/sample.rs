//! Synthetic responses written with this crate's own writer, for benchmarks, property
//! tests and fuzz seeds. Not part of the protocol surface.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use time::OffsetDateTime;

use crate::error::EwsError;
use crate::operation::{Response, encode_response};
use crate::ops::Paging;
use crate::ops::sync::{FindItem, FindItemPage, ItemSync, SyncChange, SyncFolderItems};
use crate::types::{FolderId, Item, ItemId, ItemKind, Mailbox, ServerVersionInfo};

/// A message with the properties a mail sync reads, about 1.8 KB once written.
pub fn mail_item(n: usize) -> Item {
    let mut item = Item::new(ItemKind::Message);
    item.item_id = Some(ItemId {
        id: format!(
            "AAMkADkzNjJjODUzLWZhMDMtNDVkMS05ZDdjLWVmMDlkYjQ1Zjc4MwBGAAAAAABSSWVKrmGUTJE+MVIvofglBwDZGACZQpSgSpyNkexYe2b7AAAAAAEMAADZGACZQpSgSpyNkexYe2b7AAA{n:08}AAA="
        ),
        change_key: Some(format!("CQAAABYAAADZGACZQpSgSpyNkexYe2b7AAA{n:06}")),
    });
    item.parent_folder_id = Some(FolderId {
        id: "AQMkADkzNjJjODUzLWZhMDMtNDVkMS05ZDdjLWVmMDlkYjQ1Zjc4MwAuAAADUkllSq5hlEyRPjFSL6H4JQEA2RgAmUKUoEqcjZHsWHtm+wAAAgEMAAAA".into(),
        change_key: Some("AQAAAA==".into()),
    });
    item.item_class = Some("IPM.Note".into());
    item.subject = Some(format!(
        "Quarterly planning notes, part {n} & follow-ups <draft>"
    ));
    let preview = "Hello team, please find the agenda for next week's planning session below. \
        We will review the open items from the last quarter, agree on owners and dates, \
        and go through the budget lines that changed. Bring your notes. ";
    item.body = Some((preview.to_owned(), false));
    let t = OffsetDateTime::from_unix_timestamp(1_700_000_000 + n as i64)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    item.date_time_received = Some(t);
    item.size = Some(12_000 + n as u64);
    // One category: the `ews` crate rejects a Categories element with several strings.
    item.categories = vec!["Planning".into()];
    item.importance = Some("Normal".into());
    item.date_time_sent = Some(t);
    item.has_attachments = Some(n.is_multiple_of(3));
    item.last_modified_time = Some(t);
    let person = |name: &str| Mailbox {
        name: Some(name.into()),
        email: Some(format!("{}@example.test", name.to_lowercase())),
    };
    item.sender = Some(person("Alice"));
    item.to_recipients = vec![person("Bob"), person("Carol"), person("Dave")];
    item.internet_message_id = Some(format!("<msg-{n}.planning@mail.example.test>"));
    item.is_read = Some(n.is_multiple_of(2));
    item.from = Some(person("Alice"));
    item
}

fn info() -> ServerVersionInfo {
    ServerVersionInfo {
        major: 15,
        minor: 20,
        major_build: 8769,
        minor_build: 35,
        version: Some("V2018_01_08".into()),
    }
}

/// A SyncFolderItems response with `changes` Create changes.
///
/// # Errors
/// Only if writing fails, which it does not for these values.
pub fn sync_folder_items_response(changes: usize) -> Result<Vec<u8>, EwsError> {
    let page = ItemSync {
        sync_state: "H4sIAAAAAAAEAO29B2AcSZYlJi9tynt/SvVK1+B0oQiAYBMk2JBAEOzBiM3mkuwdaUcjKasqgcplVmVdZhZAzO2dvPfee++999577733".into(),
        includes_last: false,
        changes: (0..changes).map(|n| SyncChange::Create(mail_item(n))).collect(),
    };
    let response: Response<ItemSync> = Response::new(vec![Ok(page)]);
    encode_response::<SyncFolderItems>(&response, Some(&info()))
}

/// A FindItem response with `items` items.
///
/// # Errors
/// Only if writing fails, which it does not for these values.
pub fn find_item_response(items: usize) -> Result<Vec<u8>, EwsError> {
    let page = FindItemPage {
        paging: Paging {
            indexed_paging_offset: Some(items as u32),
            total_items_in_view: Some(items as u32 * 3),
            includes_last_item_in_range: false,
        },
        items: (0..items).map(mail_item).collect(),
    };
    let response: Response<FindItemPage> = Response::new(vec![Ok(page)]);
    encode_response::<FindItem>(&response, Some(&info()))
}
