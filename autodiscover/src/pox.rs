//! POX autodiscover: the Outlook request schema 2006 and response schema 2006a
//! (MS-OXDSCLI sections 2.2.3 and 2.2.4), posted to `/autodiscover/autodiscover.xml`.
//!
//! The codec is sans-I/O: [`request_body`] builds the POST body and [`parse_response`]
//! turns the response into settings, a redirect or a server error.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::xml::{self, Element};
use crate::{Protocol, Settings};

/// The path of the POX endpoint. Servers treat the path case-insensitively.
pub const PATH: &str = "/autodiscover/autodiscover.xml";

/// The response schema requested, which carries EWS and MAPI/HTTP URLs.
pub const RESPONSE_SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";

const REQUEST_SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006";

/// The content of a POX response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoxAnswer {
    /// The user's settings.
    Settings(Settings),
    /// `Action` `redirectAddr`: start again with another e-mail address.
    RedirectAddress(String),
    /// `Action` `redirectUrl`: post the same request to another URL.
    RedirectUrl(String),
}

/// Escapes the five XML special characters in text content.
pub(crate) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// Builds the POX request body for `email` (MS-OXDSCLI 2.2.3).
pub fn request_body(email: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <Autodiscover xmlns=\"{REQUEST_SCHEMA}\">\n  <Request>\n    \
         <EMailAddress>{}</EMailAddress>\n    \
         <AcceptableResponseSchema>{RESPONSE_SCHEMA}</AcceptableResponseSchema>\n  \
         </Request>\n</Autodiscover>\n",
        escape(email)
    )
}

/// Parses a POX response (MS-OXDSCLI 2.2.4).
///
/// # Errors
///
/// A message when the XML is malformed, has no `Response`, carries an `Error` element
/// (its code and message are included), or names a redirect without its target.
pub fn parse_response(bytes: &[u8]) -> Result<PoxAnswer, String> {
    let root = xml::parse(bytes)?;
    if root.name != "Autodiscover" {
        return Err(format!(
            "expected an Autodiscover element, found {}",
            root.name
        ));
    }
    let response = root
        .child("Response")
        .ok_or_else(|| "the Autodiscover answer has no Response element".to_owned())?;

    if let Some(error) = response.child("Error") {
        let code = error.text_at(&["ErrorCode"]).unwrap_or_default();
        let message = error.text_at(&["Message"]).unwrap_or_default();
        return Err(format!(
            "the server returned autodiscover error {code}: {message}"
        ));
    }

    let account = response
        .child("Account")
        .ok_or_else(|| "the Autodiscover answer has no Account element".to_owned())?;
    match account.text_at(&["Action"]).as_deref() {
        Some("redirectAddr") => {
            return account
                .text_at(&["RedirectAddr"])
                .map(PoxAnswer::RedirectAddress)
                .ok_or_else(|| "Action redirectAddr without a RedirectAddr element".to_owned());
        }
        Some("redirectUrl") => {
            return account
                .text_at(&["RedirectUrl"])
                .map(PoxAnswer::RedirectUrl)
                .ok_or_else(|| "Action redirectUrl without a RedirectUrl element".to_owned());
        }
        _ => {}
    }

    Ok(PoxAnswer::Settings(settings(response, account)))
}

fn settings(response: &Element, account: &Element) -> Settings {
    let mut settings = Settings {
        display_name: response.text_at(&["User", "DisplayName"]),
        legacy_dn: response.text_at(&["User", "LegacyDN"]),
        smtp_address: response.text_at(&["User", "AutoDiscoverSMTPAddress"]),
        ..Settings::default()
    };

    // EXPR and EXHTTP describe access from outside the organisation, EXCH from inside;
    // an outside URL is preferred because it works from either place.
    let mut ews_candidates: Vec<(u8, String)> = Vec::new();
    for protocol in account.children_named("Protocol") {
        let kind = protocol
            .text_at(&["Type"])
            .or_else(|| protocol.attribute("Type").map(str::to_owned))
            .unwrap_or_default();

        if kind.eq_ignore_ascii_case("mapiHttp") {
            let pick = |block: &str| {
                protocol
                    .text_at(&[block, "ExternalUrl"])
                    .or_else(|| protocol.text_at(&[block, "InternalUrl"]))
            };
            settings.mapi_emsmdb_url = settings
                .mapi_emsmdb_url
                .take()
                .or_else(|| pick("MailStore"));
            settings.mapi_nspi_url = settings
                .mapi_nspi_url
                .take()
                .or_else(|| pick("AddressBook"));
            push_protocol(&mut settings.protocols, Protocol::MapiHttp);
            continue;
        }

        let rank = match kind.as_str() {
            "EXHTTP" | "EXPR" => 0,
            "EXCH" => 1,
            _ => 2,
        };
        if let Some(url) = protocol
            .text_at(&["EwsUrl"])
            .or_else(|| protocol.text_at(&["ASUrl"]))
        {
            ews_candidates.push((rank, url));
        }
        match kind.as_str() {
            "EXCH" => push_protocol(&mut settings.protocols, Protocol::RpcInternal),
            "EXPR" => push_protocol(&mut settings.protocols, Protocol::RpcOverHttp),
            "EXHTTP" => push_protocol(&mut settings.protocols, Protocol::RpcOverHttp),
            _ => {}
        }
    }
    ews_candidates.sort_by_key(|(rank, _)| *rank);
    settings.ews_url = ews_candidates.into_iter().next().map(|(_, url)| url);
    if settings.ews_url.is_some() {
        push_protocol(&mut settings.protocols, Protocol::Ews);
    }
    settings
}

pub(crate) fn push_protocol(protocols: &mut Vec<Protocol>, protocol: Protocol) {
    if !protocols.contains(&protocol) {
        protocols.push(protocol);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_escapes_address() {
        let body = request_body("a&b<c>@example.test");
        assert!(body.contains("<EMailAddress>a&amp;b&lt;c&gt;@example.test</EMailAddress>"));
        assert!(body.contains(RESPONSE_SCHEMA));
    }

    #[test]
    fn redirect_addr_and_url() {
        let addr = br#"<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"><Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"><Account><Action>redirectAddr</Action><RedirectAddr>u@other.test</RedirectAddr></Account></Response></Autodiscover>"#;
        assert_eq!(
            parse_response(addr).unwrap(),
            PoxAnswer::RedirectAddress("u@other.test".to_owned())
        );
        let url = br#"<Autodiscover><Response><Account><Action>redirectUrl</Action><RedirectUrl>https://x.test/autodiscover/autodiscover.xml</RedirectUrl></Account></Response></Autodiscover>"#;
        assert_eq!(
            parse_response(url).unwrap(),
            PoxAnswer::RedirectUrl("https://x.test/autodiscover/autodiscover.xml".to_owned())
        );
    }

    #[test]
    fn error_element_is_reported() {
        let body = br#"<Autodiscover><Response><Error Time="1" Id="2"><ErrorCode>500</ErrorCode><Message>The e-mail address cannot be found.</Message></Error></Response></Autodiscover>"#;
        let error = parse_response(body).unwrap_err();
        assert!(error.contains("500"), "{error}");
        assert!(error.contains("cannot be found"), "{error}");
    }

    #[test]
    fn doctype_is_rejected() {
        let body = br#"<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><Autodiscover>&x;</Autodiscover>"#;
        assert!(parse_response(body).unwrap_err().contains("document type"));
    }

    #[test]
    fn truncated_xml_is_rejected() {
        assert!(parse_response(b"<Autodiscover><Response>").is_err());
        assert!(parse_response(b"").is_err());
    }

    #[test]
    fn escaped_url_is_unescaped() {
        let body = br#"<Autodiscover><Response><Account><Protocol><Type>EXPR</Type><EwsUrl>https://m.test/EWS/Exchange.asmx?a=1&amp;b=2</EwsUrl></Protocol></Account></Response></Autodiscover>"#;
        let PoxAnswer::Settings(settings) = parse_response(body).unwrap() else {
            panic!("expected settings");
        };
        assert_eq!(
            settings.ews_url.as_deref(),
            Some("https://m.test/EWS/Exchange.asmx?a=1&b=2")
        );
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse_response(&bytes);
        }
    }
}
