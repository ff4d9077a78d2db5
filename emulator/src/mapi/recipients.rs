//! Message recipients as the ROPs carry them: RecipientRows (MS-OXCDATA 2.8.3) in
//! RopModifyRecipients, RopOpenMessage and RopReadRecipients (MS-OXCROPS 2.2.6.5,
//! 2.2.6.1 and 2.2.6.6), over the store's To, Cc and Bcc lists.
//!
//! Row ids number the recipients To first, then Cc, then Bcc, each in list order. The
//! front end writes an empty recipient column set, so every RecipientRow carries
//! only its type, address and names.

use std::collections::BTreeMap;

use exmux_mapihttp::prop::PropTag;
use exmux_mapihttp::rop::{
    ModifyRecipientRow, OpenRecipientRow, ReadRecipientRow, RecipientRow, RopString, error_code,
};
use tracing::debug;

use crate::store::{ItemProps, ItemUpdate, Mailbox};

/// RecipientType of a To recipient.
const TO: u8 = 1;
/// RecipientType of a Cc recipient.
const CC: u8 = 2;
/// RecipientType of a Bcc recipient.
const BCC: u8 = 3;
/// CodePageId of the rows the front end writes: their strings are Unicode.
const CODE_PAGE_UNICODE: u16 = 0x0FFF;
/// Maximum number of recipient rows in one RopOpenMessage response. RopReadRecipients
/// returns the rest.
pub(crate) const OPEN_MESSAGE_ROWS: usize = 16;
/// Maximum number of recipient rows in one RopReadRecipients response. A row with an ordinary name
/// and address takes about 100 bytes, so a response stays near 6 KiB.
const READ_ROWS: usize = 64;

/// A message's recipients by row id: the RecipientType and the mailbox.
pub(crate) type Recipients = BTreeMap<u32, (u8, Mailbox)>;

/// Returns the recipients of stored item properties, numbered To, Cc, then Bcc.
pub(crate) fn of_item(props: &ItemProps) -> Recipients {
    let lists = [(TO, &props.to), (CC, &props.cc), (BCC, &props.bcc)];
    lists
        .into_iter()
        .flat_map(|(kind, list)| list.iter().map(move |mailbox| (kind, mailbox.clone())))
        .enumerate()
        .map(|(row_id, entry)| (u32::try_from(row_id).unwrap_or(u32::MAX), entry))
        .collect()
}

/// Sets the To, Cc and Bcc lists of `update` from `recipients`.
pub(crate) fn apply(recipients: &Recipients, update: &mut ItemUpdate) {
    let list = |kind: u8| {
        recipients
            .values()
            .filter(|(k, _)| *k == kind)
            .map(|(_, mailbox)| mailbox.clone())
            .collect::<Vec<_>>()
    };
    update.to = Some(list(TO));
    update.cc = Some(list(CC));
    update.bcc = Some(list(BCC));
}

/// Applies the rows of a RopModifyRecipients. A row with a RecipientRow adds or replaces
/// the recipient with its row id, and an empty row removes it.
///
/// # Errors
///
/// ecInvalidParam for a RecipientRow that does not decode over `columns`, or whose
/// RecipientType is not To, Cc or Bcc. No row is applied then.
pub(crate) fn modify(
    recipients: &mut Recipients,
    columns: &[PropTag],
    rows: &[ModifyRecipientRow],
) -> Result<(), u32> {
    let mut changed = recipients.clone();
    for row in rows {
        let decoded = row.recipient(columns).map_err(|error| {
            debug!(%error, row_id = row.row_id, "RopModifyRecipients with a malformed RecipientRow");
            error_code::INVALID_PARAMETER
        })?;
        let Some(recipient) = decoded else {
            changed.remove(&row.row_id);
            continue;
        };
        // The low nibble is the type; the bits above it are flags the store does not keep.
        let kind = row.recipient_type & 0x0F;
        if !matches!(kind, TO | CC | BCC) {
            return Err(error_code::INVALID_PARAMETER);
        }
        let address = text(recipient.email_address.as_ref());
        let name = text(
            recipient
                .display_name
                .as_ref()
                .or(recipient.simple_display_name.as_ref()),
        );
        changed.insert(row.row_id, (kind, Mailbox { name, address }));
    }
    *recipients = changed;
    Ok(())
}

fn text(value: Option<&RopString>) -> String {
    match value {
        Some(RopString::Unicode(text)) => text.clone(),
        Some(RopString::String8(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        _ => String::new(),
    }
}

fn row_bytes(mailbox: &Mailbox) -> Vec<u8> {
    // An SMTP RecipientRow over an empty column set always encodes: its flags and
    // fields agree by construction.
    RecipientRow::smtp(&mailbox.name, &mailbox.address)
        .to_bytes(&[])
        .unwrap_or_default()
}

/// Returns the RecipientColumns and the first rows for a RopOpenMessage response.
pub(crate) fn open_rows(recipients: &Recipients) -> (Vec<PropTag>, Vec<OpenRecipientRow>) {
    let rows = recipients
        .values()
        .take(OPEN_MESSAGE_ROWS)
        .map(|(kind, mailbox)| OpenRecipientRow {
            recipient_type: *kind,
            code_page_id: CODE_PAGE_UNICODE,
            reserved: 0,
            recipient_row: row_bytes(mailbox),
        })
        .collect();
    (Vec::new(), rows)
}

/// Returns the rows of a RopReadRecipients that starts at `row_id`.
///
/// # Errors
///
/// ecNotFound when no recipient has a row id at or after `row_id`.
pub(crate) fn read_rows(
    recipients: &Recipients,
    row_id: u32,
) -> Result<Vec<ReadRecipientRow>, u32> {
    let rows: Vec<ReadRecipientRow> = recipients
        .range(row_id..)
        .take(READ_ROWS)
        .map(|(id, (kind, mailbox))| ReadRecipientRow {
            row_id: *id,
            recipient_type: *kind,
            code_page_id: CODE_PAGE_UNICODE,
            reserved: 0,
            recipient_row: row_bytes(mailbox),
        })
        .collect();
    if rows.is_empty() {
        return Err(error_code::NOT_FOUND);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn mailbox(name: &str, address: &str) -> Mailbox {
        Mailbox {
            name: name.to_owned(),
            address: address.to_owned(),
        }
    }

    #[test]
    fn of_item_numbers_to_cc_bcc() {
        let props = ItemProps {
            to: vec![mailbox("A", "a@example.test")],
            cc: vec![mailbox("B", "b@example.test")],
            bcc: vec![mailbox("C", "c@example.test")],
            ..ItemProps::default()
        };
        let recipients = of_item(&props);
        assert_eq!(recipients[&0].0, TO);
        assert_eq!(recipients[&1].0, CC);
        assert_eq!(recipients[&2], (BCC, mailbox("C", "c@example.test")));
    }

    #[test]
    fn modify_adds_replaces_and_removes() {
        let mut recipients = Recipients::new();
        let add = |row_id, kind, name: &str, address: &str| {
            ModifyRecipientRow::new(row_id, kind, &RecipientRow::smtp(name, address), &[]).unwrap()
        };
        modify(
            &mut recipients,
            &[],
            &[
                add(0, TO, "A", "a@example.test"),
                add(1, CC, "B", "b@example.test"),
            ],
        )
        .unwrap();
        modify(
            &mut recipients,
            &[],
            &[
                add(1, BCC, "B2", "b2@example.test"),
                ModifyRecipientRow {
                    row_id: 0,
                    recipient_type: 0,
                    recipient_row: Vec::new(),
                },
            ],
        )
        .unwrap();
        assert_eq!(recipients.len(), 1);
        assert_eq!(recipients[&1], (BCC, mailbox("B2", "b2@example.test")));
    }

    #[test]
    fn modify_rejects_bad_type_atomically() {
        let mut recipients = Recipients::new();
        let rows = [
            ModifyRecipientRow::new(0, TO, &RecipientRow::smtp("A", "a@example.test"), &[])
                .unwrap(),
            ModifyRecipientRow::new(1, 9, &RecipientRow::smtp("B", "b@example.test"), &[]).unwrap(),
        ];
        assert_eq!(
            modify(&mut recipients, &[], &rows),
            Err(error_code::INVALID_PARAMETER)
        );
        assert!(recipients.is_empty());
    }

    #[test]
    fn read_rows_start_at_row_id() {
        let props = ItemProps {
            to: (0..3)
                .map(|i| mailbox(&format!("N{i}"), &format!("n{i}@example.test")))
                .collect(),
            ..ItemProps::default()
        };
        let recipients = of_item(&props);
        let rows = read_rows(&recipients, 1).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].row_id, 1);
        let decoded = rows[1].recipient(&[]).unwrap();
        assert_eq!(
            decoded.email_address,
            Some(RopString::Unicode("n2@example.test".to_owned()))
        );
        assert_eq!(read_rows(&recipients, 3), Err(error_code::NOT_FOUND));
    }
}
