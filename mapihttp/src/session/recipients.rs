//! Message recipients over ordinary ROPs: RopModifyRecipients when creating or sending
//! (MS-OXCROPS 2.2.6.5), and the rows of RopOpenMessage and RopReadRecipients when
//! fetching (MS-OXCROPS 2.2.6.1, 2.2.6.6).

use super::batch::{Batch, HandleRef};
use super::ops::StructuredRecipient;
use super::{MapiSession, Replay, SessionError};
use crate::prop::PropTag;
use crate::rop::{
    ModifyRecipientRow, OpenMessageResponse, RecipientRow, ResponseBody, RopRequest, RopString,
};

/// The recipient columns exmux sends with RopModifyRecipients: none, because a
/// RecipientRow's own fields carry the type, address and names.
const MODIFY_COLUMNS: [PropTag; 0] = [];

/// Builds the rows of a RopModifyRecipients that adds `recipients` to a new message,
/// with row ids in list order.
///
/// # Errors
///
/// [`SessionError::Usage`] for a recipient type other than 1 (To), 2 (Cc) or 3 (Bcc),
/// or a recipient row the codec cannot encode.
pub(super) fn modify_rows(
    operation: &'static str,
    recipients: &[StructuredRecipient],
) -> Result<Vec<ModifyRecipientRow>, SessionError> {
    let mut rows = Vec::with_capacity(recipients.len());
    for (row_id, recipient) in (0u32..).zip(recipients) {
        let recipient_type = match recipient.recipient_type {
            kind @ 1..=3 => kind as u8,
            other => {
                return Err(SessionError::Usage {
                    operation,
                    reason: format!(
                        "recipient {} has type {other}; use 1 (To), 2 (Cc) or 3 (Bcc)",
                        recipient.address
                    ),
                });
            }
        };
        let name = recipient.name.as_deref().unwrap_or(&recipient.address);
        let row = RecipientRow::smtp(name, &recipient.address);
        rows.push(
            ModifyRecipientRow::new(row_id, recipient_type, &row, &MODIFY_COLUMNS)
                .map_err(|e| SessionError::protocol(operation, e))?,
        );
    }
    Ok(rows)
}

/// Appends a RopModifyRecipients for `recipients` on the message in `slot`, unless the
/// list is empty.
///
/// # Errors
///
/// As [`modify_rows`].
pub(super) fn push_modify(
    batch: &mut Batch,
    operation: &'static str,
    slot: u8,
    recipients: &[StructuredRecipient],
) -> Result<Option<usize>, SessionError> {
    if recipients.is_empty() {
        return Ok(None);
    }
    let rows = modify_rows(operation, recipients)?;
    Ok(Some(batch.push(RopRequest::ModifyRecipients {
        logon_id: 0,
        input_handle: slot,
        columns: MODIFY_COLUMNS.to_vec(),
        rows,
    })))
}

fn text(value: Option<&RopString>) -> Option<String> {
    match value {
        Some(RopString::Unicode(text)) => Some(text.clone()),
        Some(RopString::String8(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
        _ => None,
    }
}

/// Converts a decoded RecipientRow. The address is the EmailAddress field, which for an
/// Exchange (X500) recipient is its legacy DN rather than an SMTP address.
fn structured(recipient_type: u8, row: &RecipientRow) -> StructuredRecipient {
    let name = text(row.display_name.as_ref()).or_else(|| text(row.simple_display_name.as_ref()));
    let address = text(row.email_address.as_ref())
        .or_else(|| {
            row.x500
                .as_ref()
                .map(|x500| String::from_utf8_lossy(&x500.x500_dn).into_owned())
        })
        .unwrap_or_default();
    StructuredRecipient {
        // The low nibble is the type; the bits above it are flags.
        recipient_type: u32::from(recipient_type & 0x0F),
        name,
        address,
    }
}

impl MapiSession {
    /// Reads every recipient of an open message: the rows of the RopOpenMessage response,
    /// then RopReadRecipients on `message` (a raw handle of the current context) for the
    /// rest, until RecipientCount rows arrived.
    ///
    /// # Errors
    ///
    /// [`SessionError`] when a row does not decode or a RopReadRecipients fails.
    pub(super) async fn read_recipients(
        &self,
        operation: &'static str,
        message: u32,
        opened: &OpenMessageResponse,
    ) -> Result<Vec<StructuredRecipient>, SessionError> {
        let columns = &opened.recipient_columns;
        let mut recipients = Vec::with_capacity(usize::from(opened.recipient_count));
        for row in &opened.recipient_rows {
            let decoded = row
                .recipient(columns)
                .map_err(|e| SessionError::protocol(operation, e))?;
            recipients.push(structured(row.recipient_type, &decoded));
        }
        let total = usize::from(opened.recipient_count);
        let mut next_row = u32::try_from(recipients.len()).unwrap_or(u32::MAX);
        while recipients.len() < total {
            let mut batch = Batch::new();
            let m = batch.input(HandleRef::Raw(message));
            let read = batch.push(RopRequest::ReadRecipients {
                logon_id: 0,
                input_handle: m,
                row_id: next_row,
                reserved: 0,
            });
            let result = self.execute(operation, &batch, Replay::Safe).await?;
            let rows = match &super::ops::ok(&result, read, operation)?.body {
                ResponseBody::ReadRecipients(rows) if !rows.is_empty() => rows,
                _ => {
                    return Err(SessionError::MissingResponse {
                        operation,
                        rop: "RopReadRecipients",
                    });
                }
            };
            for row in rows {
                let decoded = row
                    .recipient(columns)
                    .map_err(|e| SessionError::protocol(operation, e))?;
                recipients.push(structured(row.recipient_type, &decoded));
                next_row = row.row_id.saturating_add(1);
            }
        }
        Ok(recipients)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn recipient(kind: u32, name: Option<&str>, address: &str) -> StructuredRecipient {
        StructuredRecipient {
            recipient_type: kind,
            name: name.map(str::to_owned),
            address: address.to_owned(),
        }
    }

    #[test]
    fn modify_rows_round_trip() {
        let list = [
            recipient(1, Some("Ann"), "ann@example.test"),
            recipient(3, None, "bob@example.test"),
        ];
        let rows = modify_rows("test", &list).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].row_id, rows[0].recipient_type), (0, 1));
        assert_eq!((rows[1].row_id, rows[1].recipient_type), (1, 3));
        let back: Vec<StructuredRecipient> = rows
            .iter()
            .map(|row| structured(row.recipient_type, &row.recipient(&[]).unwrap().unwrap()))
            .collect();
        assert_eq!(back[0], list[0]);
        // A recipient without a name is sent with its address as the display name.
        assert_eq!(back[1].name.as_deref(), Some("bob@example.test"));
        assert_eq!(back[1].address, "bob@example.test");
    }

    #[test]
    fn modify_rows_rejects_unknown_type() {
        let error = modify_rows("test", &[recipient(7, None, "x@example.test")]).unwrap_err();
        assert!(error.to_string().contains("x@example.test"), "{error}");
    }
}
