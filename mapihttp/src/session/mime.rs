//! MIME for messages fetched or created over MAPI. Fetching returns a
//! [`StructuredMessage`]; [`compose`] writes MIME from it with `mail-builder`, so the
//! result is equivalent to the server's MIME, not byte-identical. [`parse`] reads MIME
//! with `mail-parser` into the properties a create or an ICS import sends.

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::mime::MimePart;
use mail_parser::{MessageParser, MimeHeaders};

use super::SessionError;
use super::ops::{StructuredAttachment, StructuredMessage, StructuredRecipient};
use crate::prop::{PropTag, PropValue, TaggedValue, tags};

/// Seconds between 1601-01-01 and 1970-01-01, the FILETIME epoch offset.
const FILETIME_UNIX_OFFSET: i64 = 11_644_473_600;

/// PidTagClientSubmitTime.
const PID_TAG_CLIENT_SUBMIT_TIME: PropTag = PropTag(0x0039_0040);
/// PidTagInternetMessageId.
const PID_TAG_INTERNET_MESSAGE_ID: PropTag = PropTag(0x1035_001F);
/// PidTagSenderEmailAddress.
const PID_TAG_SENDER_EMAIL_ADDRESS: PropTag = PropTag(0x0C1F_001F);
/// PidTagHtml.
const PID_TAG_HTML: PropTag = PropTag(0x1013_0102);

fn filetime_to_unix(filetime: u64) -> i64 {
    (filetime / 10_000_000) as i64 - FILETIME_UNIX_OFFSET
}

fn unix_to_filetime(unix: i64) -> u64 {
    (unix.saturating_add(FILETIME_UNIX_OFFSET)).max(0) as u64 * 10_000_000
}

/// Writes MIME for a fetched message.
///
/// # Errors
///
/// [`SessionError::Usage`] when writing fails (it writes to memory, so only for
/// content the builder rejects).
pub fn compose(message: &StructuredMessage) -> Result<Vec<u8>, SessionError> {
    let mut builder = MessageBuilder::new();
    if let Some((name, address)) = &message.from {
        builder = builder.from(match name {
            Some(name) => Address::new_address(Some(name.clone()), address.clone()),
            None => Address::new_address(None::<String>, address.clone()),
        });
    }
    for (kind, list) in [(1u32, "to"), (2, "cc"), (3, "bcc")] {
        let addresses: Vec<Address<'_>> = message
            .recipients
            .iter()
            .filter(|r| r.recipient_type == kind)
            .map(|r| Address::new_address(r.name.clone(), r.address.clone()))
            .collect();
        if addresses.is_empty() {
            continue;
        }
        let addresses = Address::new_list(addresses);
        builder = match list {
            "to" => builder.to(addresses),
            "cc" => builder.cc(addresses),
            _ => builder.bcc(addresses),
        };
    }
    if let Some(subject) = &message.subject {
        builder = builder.subject(subject.clone());
    }
    if let Some(date) = message.date {
        builder = builder.date(filetime_to_unix(date));
    }
    if let Some(id) = &message.message_id {
        builder = builder.message_id(id.trim_matches(['<', '>']).to_owned());
    }
    if let Some(text) = &message.body_text {
        builder = builder.text_body(text.clone());
    }
    if let Some(html) = &message.body_html {
        builder = builder.html_body(html.clone());
    }
    let parts: Vec<MimePart<'_>> = message
        .attachments
        .iter()
        .map(|attachment| {
            let content_type = attachment
                .mime_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".to_owned());
            let name = attachment
                .file_name
                .clone()
                .unwrap_or_else(|| "attachment".to_owned());
            let part = MimePart::new(content_type, attachment.data.as_slice()).attachment(name);
            // The Content-ID keeps a cid: reference of the HTML body resolvable.
            match &attachment.content_id {
                Some(id) => part.cid(id.clone()),
                None => part,
            }
        })
        .collect();
    if !parts.is_empty() {
        builder.attachments = Some(parts);
    }
    builder.write_to_vec().map_err(|error| SessionError::Usage {
        operation: "compose MIME",
        reason: format!("the message could not be written as MIME: {error}"),
    })
}

/// Reads MIME into a structured message and the properties a create sends
/// (PidTagMessageClass, subject, bodies, sender, dates, message id).
///
/// # Errors
///
/// [`SessionError::Usage`] when the bytes are not a MIME message.
pub fn parse(mime: &[u8]) -> Result<(StructuredMessage, Vec<TaggedValue>), SessionError> {
    let parsed = MessageParser::default()
        .parse(mime)
        .ok_or_else(|| SessionError::Usage {
            operation: "parse MIME",
            reason: "the bytes are not a MIME message (no header block found)".to_owned(),
        })?;
    let mut message = StructuredMessage {
        subject: parsed.subject().map(str::to_owned),
        body_text: parsed.body_text(0).map(|b| b.into_owned()),
        body_html: parsed.body_html(0).map(|b| b.into_owned()),
        from: parsed
            .from()
            .and_then(|a| a.first())
            .and_then(|a| Some((a.name().map(str::to_owned), a.address()?.to_owned()))),
        date: parsed.date().map(|d| unix_to_filetime(d.to_timestamp())),
        message_id: parsed.message_id().map(|id| format!("<{id}>")),
        ..StructuredMessage::default()
    };
    for (kind, list) in [(1u32, parsed.to()), (2, parsed.cc()), (3, parsed.bcc())] {
        let Some(list) = list else { continue };
        for address in list.iter() {
            if let Some(addr) = address.address() {
                message.recipients.push(StructuredRecipient {
                    recipient_type: kind,
                    name: address.name().map(str::to_owned),
                    address: addr.to_owned(),
                });
            }
        }
    }
    for part in parsed.attachments() {
        message.attachments.push(StructuredAttachment {
            file_name: part.attachment_name().map(str::to_owned),
            mime_type: part.content_type().map(|c| match c.subtype() {
                Some(sub) => format!("{}/{}", c.ctype(), sub),
                None => c.ctype().to_owned(),
            }),
            content_id: part
                .content_id()
                .map(|id| id.trim_matches(['<', '>']).to_owned()),
            data: part.contents().to_vec(),
        });
    }

    let mut props = vec![TaggedValue {
        tag: tags::PID_TAG_MESSAGE_CLASS,
        value: PropValue::Unicode("IPM.Note".to_owned()),
    }];
    let mut put = |tag: PropTag, value: PropValue| props.push(TaggedValue { tag, value });
    if let Some(subject) = &message.subject {
        put(tags::PID_TAG_SUBJECT, PropValue::Unicode(subject.clone()));
    }
    if let Some(text) = &message.body_text {
        put(tags::PID_TAG_BODY, PropValue::Unicode(text.clone()));
    }
    if let Some(html) = &message.body_html {
        put(PID_TAG_HTML, PropValue::Binary(html.as_bytes().to_vec()));
    }
    if let Some((name, address)) = &message.from {
        if let Some(name) = name {
            put(tags::PID_TAG_SENDER_NAME, PropValue::Unicode(name.clone()));
        }
        put(
            PID_TAG_SENDER_EMAIL_ADDRESS,
            PropValue::Unicode(address.clone()),
        );
    }
    if let Some(date) = message.date {
        put(PID_TAG_CLIENT_SUBMIT_TIME, PropValue::Time(date));
        put(tags::PID_TAG_MESSAGE_DELIVERY_TIME, PropValue::Time(date));
    }
    if let Some(id) = &message.message_id {
        put(PID_TAG_INTERNET_MESSAGE_ID, PropValue::Unicode(id.clone()));
    }
    // Recipients and attachments are not properties: the caller writes
    // `message.recipients` with RopModifyRecipients and `message.attachments` with
    // RopCreateAttachment (`MapiSession::create_message_with_content`).
    message.props = props.clone();
    Ok((message, props))
}
