//! Item properties read from RFC 5322 MIME content with `mail-parser`, and MIME composed
//! from properties with `mail-builder`.

use std::time::{Duration, UNIX_EPOCH};

use mail_builder::MessageBuilder;
use mail_builder::mime::MimePart;
use mail_parser::{Address, MessageParser, MimeHeaders};

use super::model::{Attachment, Body, BodyType, Importance, ItemProps, Mailbox};

/// Reads the properties of an `IPM.Note` from MIME content, or `None` when the bytes are
/// not a message. The read flag, follow-up flag and received time are not in the MIME
/// (a missing `Date` header leaves `received` to the caller).
pub(crate) fn props_from_mime(mime: &[u8]) -> Option<ItemProps> {
    let message = MessageParser::default().parse(mime)?;

    let body = if let Some(text) = message.body_text(0) {
        Some(Body {
            body_type: BodyType::Text,
            content: text.into_owned(),
        })
    } else {
        message.body_html(0).map(|html| Body {
            body_type: BodyType::Html,
            content: html.into_owned(),
        })
    };

    let received = message.date().and_then(|date| {
        let seconds = u64::try_from(date.to_timestamp()).ok()?;
        UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
    });

    let categories = message
        .header_raw("Keywords")
        .map(|raw| {
            raw.split(',')
                .map(str::trim)
                .filter(|keyword| !keyword.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();

    Some(ItemProps {
        item_class: "IPM.Note".to_owned(),
        subject: message.subject().unwrap_or_default().to_owned(),
        sender: message
            .from()
            .and_then(|from| mailboxes(from).into_iter().next()),
        to: message.to().map(mailboxes).unwrap_or_default(),
        cc: message.cc().map(mailboxes).unwrap_or_default(),
        bcc: message.bcc().map(mailboxes).unwrap_or_default(),
        received,
        importance: importance(
            message.header_raw("Importance"),
            message.header_raw("X-Priority"),
        ),
        has_attachments: message.attachment_count() > 0,
        body,
        categories,
        attachments: attachments_of(&message),
        ..ItemProps::default()
    })
}

/// Reads the attachments of a parsed message, numbered from 0 in MIME order.
fn attachments_of(message: &mail_parser::Message<'_>) -> Vec<Attachment> {
    message
        .attachments()
        .zip(0u32..)
        .map(|(part, number)| Attachment {
            number,
            file_name: part.attachment_name().map(str::to_owned),
            mime_type: part
                .content_type()
                .map(|content_type| match content_type.subtype() {
                    Some(subtype) => format!("{}/{subtype}", content_type.ctype()),
                    None => content_type.ctype().to_owned(),
                }),
            content_id: part
                .content_id()
                .map(|id| id.trim_matches(['<', '>']).to_owned()),
            data: part.contents().to_vec(),
        })
        .collect()
}

/// Composes RFC 5322 MIME from an item's properties: the addresses, subject, date, body
/// and every attachment. The result is equivalent to the item, not byte-identical to
/// any MIME it was created from.
pub(crate) fn compose_mime(props: &ItemProps) -> Vec<u8> {
    let mut builder = MessageBuilder::new().subject(props.subject.as_str());
    if let Some(sender) = &props.sender {
        builder = builder.from((sender.name.as_str(), sender.address.as_str()));
    }
    let pairs = |list: &[Mailbox]| -> Vec<(String, String)> {
        list.iter()
            .map(|mailbox| (mailbox.name.clone(), mailbox.address.clone()))
            .collect()
    };
    if !props.to.is_empty() {
        builder = builder.to(pairs(&props.to));
    }
    if !props.cc.is_empty() {
        builder = builder.cc(pairs(&props.cc));
    }
    if !props.bcc.is_empty() {
        builder = builder.bcc(pairs(&props.bcc));
    }
    if let Some(seconds) = props
        .received
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .map(|elapsed| elapsed.as_secs())
    {
        builder = builder.date(seconds);
    }
    builder = match &props.body {
        Some(Body {
            body_type: BodyType::Html,
            content,
        }) => builder.html_body(content.as_str()),
        Some(body) => builder.text_body(body.content.as_str()),
        None => builder.text_body(""),
    };
    let parts: Vec<MimePart<'_>> = props
        .attachments
        .iter()
        .map(|attachment| {
            let content_type = attachment
                .mime_type
                .as_deref()
                .unwrap_or("application/octet-stream");
            let name = attachment.file_name.as_deref().unwrap_or("attachment");
            let part = MimePart::new(content_type, attachment.data.as_slice()).attachment(name);
            match &attachment.content_id {
                Some(id) => part.cid(id.as_str()),
                None => part,
            }
        })
        .collect();
    if !parts.is_empty() {
        builder.attachments = Some(parts);
    }
    // mail-builder reports only errors of the writer, and writing to a Vec cannot fail.
    builder.write_to_vec().unwrap_or_default()
}

fn mailboxes(address: &Address<'_>) -> Vec<Mailbox> {
    address
        .iter()
        .filter_map(|addr| {
            Some(Mailbox::new(
                addr.name().unwrap_or_default(),
                addr.address()?,
            ))
        })
        .collect()
}

/// Maps the `Importance` header (RFC 2156) or, failing that, `X-Priority` (1-2 high,
/// 4-5 low) to an importance, as Exchange does on delivery.
fn importance(importance: Option<&str>, priority: Option<&str>) -> Importance {
    if let Some(value) = importance {
        match value.trim().to_ascii_lowercase().as_str() {
            "high" => return Importance::High,
            "low" => return Importance::Low,
            "normal" => return Importance::Normal,
            _ => {}
        }
    }
    match priority.and_then(|value| value.trim().chars().next()) {
        Some('1' | '2') => Importance::High,
        Some('4' | '5') => Importance::Low,
        _ => Importance::Normal,
    }
}

/// Estimates PidTagMessageSize for an item without MIME: the bytes of its text
/// properties plus a fixed overhead per property, close to what Exchange reports for a
/// small message.
pub(crate) fn estimate_size(props: &ItemProps) -> u64 {
    const OVERHEAD: usize = 64;
    let recipients: usize = props
        .to
        .iter()
        .chain(&props.cc)
        .chain(&props.bcc)
        .chain(&props.sender)
        .map(|mailbox| mailbox.name.len() + mailbox.address.len() + OVERHEAD)
        .sum();
    let categories: usize = props.categories.iter().map(String::len).sum();
    let body = props.body.as_ref().map_or(0, |body| body.content.len());
    let attachments: usize = props
        .attachments
        .iter()
        .map(|attachment| attachment.data.len() + OVERHEAD)
        .sum();
    let total = 4 * OVERHEAD
        + props.item_class.len()
        + props.subject.len()
        + recipients
        + categories
        + body
        + attachments;
    u64::try_from(total).unwrap_or(u64::MAX)
}

/// Converts a time to whole seconds for comparisons in tests.
#[cfg(test)]
fn seconds(time: std::time::SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] = b"From: Alice Example <alice@example.test>\r\n\
To: Bob <bob@example.test>, carol@example.test\r\n\
Cc: Dan <dan@example.test>\r\n\
Subject: Quarterly report\r\n\
Date: Tue, 02 Jan 2024 10:00:00 +0000\r\n\
Importance: high\r\n\
Keywords: Work, Finance\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
See attached.\r\n\
--b1\r\n\
Content-Type: application/pdf; name=\"r.pdf\"\r\n\
Content-Disposition: attachment; filename=\"r.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0=\r\n\
--b1--\r\n";

    #[test]
    fn mime_fills_properties() {
        let props = props_from_mime(MESSAGE).unwrap();
        assert_eq!(props.subject, "Quarterly report");
        assert_eq!(
            props.sender,
            Some(Mailbox::new("Alice Example", "alice@example.test"))
        );
        assert_eq!(props.to.len(), 2);
        assert_eq!(props.to[1].address, "carol@example.test");
        assert_eq!(props.cc, vec![Mailbox::new("Dan", "dan@example.test")]);
        assert_eq!(props.importance, Importance::High);
        assert!(props.has_attachments);
        assert_eq!(props.categories, vec!["Work", "Finance"]);
        assert_eq!(seconds(props.received.unwrap()), 1_704_189_600);
        let body = props.body.unwrap();
        assert_eq!(body.body_type, BodyType::Text);
        assert_eq!(body.content.trim(), "See attached.");
    }

    #[test]
    fn mime_fills_attachments() {
        let props = props_from_mime(MESSAGE).unwrap();
        assert_eq!(props.attachments.len(), 1);
        let attachment = &props.attachments[0];
        assert_eq!(attachment.number, 0);
        assert_eq!(attachment.file_name.as_deref(), Some("r.pdf"));
        assert_eq!(attachment.mime_type.as_deref(), Some("application/pdf"));
        assert_eq!(attachment.data, b"%PDF-");
    }

    #[test]
    fn composed_mime_keeps_attachments() {
        let mut props = props_from_mime(MESSAGE).unwrap();
        let large: Vec<u8> = (0..100 * 1024).map(|i| (i % 251) as u8).collect();
        props.attachments.push(Attachment {
            number: 1,
            file_name: Some("data.bin".to_owned()),
            mime_type: Some("application/octet-stream".to_owned()),
            content_id: Some("part1@example.test".to_owned()),
            data: large.clone(),
        });
        let composed = compose_mime(&props);
        let back = props_from_mime(&composed).unwrap();
        assert_eq!(back.subject, "Quarterly report");
        assert_eq!(back.attachments.len(), 2);
        assert_eq!(back.attachments[0].data, b"%PDF-");
        assert_eq!(back.attachments[1].file_name.as_deref(), Some("data.bin"));
        assert_eq!(
            back.attachments[1].content_id.as_deref(),
            Some("part1@example.test")
        );
        assert_eq!(back.attachments[1].data, large);
    }

    #[test]
    fn x_priority_maps_to_importance() {
        assert_eq!(importance(None, Some("5 (Lowest)")), Importance::Low);
        assert_eq!(importance(None, Some("1")), Importance::High);
        assert_eq!(importance(Some("bogus"), None), Importance::Normal);
    }
}
