//! SOAP autodiscover: GetUserSettings (MS-OXWSADISC 3.1.4.8) posted to
//! `/autodiscover/autodiscover.svc`.
//!
//! SOAP returns named settings rather than protocol blocks. The EWS URL, display name
//! and legacy DN come from it. It reports whether MAPI/HTTP is enabled
//! (`MapiHttpEnabled`) but carries no emsmdb or nspi URL, because only POX and JSON v2
//! return those.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::pox::{escape, push_protocol};
use crate::xml::{self, Element};
use crate::{Protocol, Settings};

/// The path of the SOAP endpoint.
pub const PATH: &str = "/autodiscover/autodiscover.svc";

/// The SOAPAction of GetUserSettings.
pub const ACTION: &str =
    "http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings";

/// The settings requested, in the names of MS-OXWSADISC 2.2.4.
pub const REQUESTED_SETTINGS: [&str; 6] = [
    "UserDisplayName",
    "UserDN",
    "AutoDiscoverSMTPAddress",
    "ExternalEwsUrl",
    "InternalEwsUrl",
    "MapiHttpEnabled",
];

/// The content of a GetUserSettings response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SoapAnswer {
    /// The user's settings.
    Settings(Settings),
    /// `ErrorCode` `RedirectAddress`: start again with this address.
    RedirectAddress(String),
    /// `ErrorCode` `RedirectUrl`: post the request to this URL.
    RedirectUrl(String),
}

/// Builds the GetUserSettings envelope for `email`, addressed to `endpoint`.
pub fn request_body(email: &str, endpoint: &str) -> String {
    let settings: String = REQUESTED_SETTINGS
        .iter()
        .map(|name| format!("<a:Setting>{name}</a:Setting>"))
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <soap:Envelope xmlns:a=\"http://schemas.microsoft.com/exchange/2010/Autodiscover\" \
         xmlns:wsa=\"http://www.w3.org/2005/08/addressing\" \
         xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">\
         <soap:Header>\
         <a:RequestedServerVersion>Exchange2013</a:RequestedServerVersion>\
         <wsa:Action>{ACTION}</wsa:Action>\
         <wsa:To>{}</wsa:To>\
         </soap:Header>\
         <soap:Body><a:GetUserSettingsRequestMessage><a:Request>\
         <a:Users><a:User><a:Mailbox>{}</a:Mailbox></a:User></a:Users>\
         <a:RequestedSettings>{settings}</a:RequestedSettings>\
         </a:Request></a:GetUserSettingsRequestMessage></soap:Body></soap:Envelope>\n",
        escape(endpoint),
        escape(email)
    )
}

/// Parses a GetUserSettings response.
///
/// # Errors
///
/// A message when the XML is malformed, is a SOAP fault, or carries an error code other
/// than `NoError` and the redirect codes.
pub fn parse_response(bytes: &[u8]) -> Result<SoapAnswer, String> {
    let root = xml::parse(bytes)?;
    let body = root
        .child("Body")
        .ok_or_else(|| "the SOAP answer has no Body element".to_owned())?;
    if let Some(fault) = body.child("Fault") {
        let reason = fault
            .text_at(&["faultstring"])
            .or_else(|| fault.text_at(&["Reason", "Text"]))
            .unwrap_or_default();
        return Err(format!("the server returned a SOAP fault: {reason}"));
    }
    let response = body
        .path(&["GetUserSettingsResponseMessage", "Response"])
        .ok_or_else(|| "the SOAP answer has no GetUserSettingsResponseMessage".to_owned())?;
    check_error(response, "request")?;

    let user = response
        .path(&["UserResponses", "UserResponse"])
        .ok_or_else(|| "the SOAP answer has no UserResponse".to_owned())?;
    match user.text_at(&["ErrorCode"]).as_deref() {
        Some("RedirectAddress") => {
            return redirect_target(user).map(SoapAnswer::RedirectAddress);
        }
        Some("RedirectUrl") => {
            return redirect_target(user).map(SoapAnswer::RedirectUrl);
        }
        _ => check_error(user, "user")?,
    }

    let mut values: Vec<(String, String)> = Vec::new();
    if let Some(list) = user.child("UserSettings") {
        for setting in list.children_named("UserSetting") {
            if let Some(name) = setting.text_at(&["Name"]) {
                values.push((name, setting.text_at(&["Value"]).unwrap_or_default()));
            }
        }
    }
    let value = |name: &str| {
        values
            .iter()
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.clone())
    };

    let mut settings = Settings {
        display_name: value("UserDisplayName"),
        legacy_dn: value("UserDN"),
        smtp_address: value("AutoDiscoverSMTPAddress"),
        ews_url: value("ExternalEwsUrl").or_else(|| value("InternalEwsUrl")),
        ..Settings::default()
    };
    if settings.ews_url.is_some() {
        push_protocol(&mut settings.protocols, Protocol::Ews);
    }
    if value("MapiHttpEnabled").is_some_and(|enabled| enabled.eq_ignore_ascii_case("true")) {
        push_protocol(&mut settings.protocols, Protocol::MapiHttp);
    }
    Ok(SoapAnswer::Settings(settings))
}

fn redirect_target(user: &Element) -> Result<String, String> {
    user.text_at(&["RedirectTarget"])
        .ok_or_else(|| "a redirect answer without a RedirectTarget".to_owned())
}

fn check_error(element: &Element, level: &str) -> Result<(), String> {
    match element.text_at(&["ErrorCode"]).as_deref() {
        None | Some("NoError") => Ok(()),
        Some(code) => Err(format!(
            "the server returned {level} error {code}: {}",
            element.text_at(&["ErrorMessage"]).unwrap_or_default()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_names_mailbox_and_settings() {
        let body = request_body(
            "user1@example.test",
            "https://example.test/autodiscover/autodiscover.svc",
        );
        assert!(body.contains("<a:Mailbox>user1@example.test</a:Mailbox>"));
        assert!(body.contains("<a:Setting>ExternalEwsUrl</a:Setting>"));
        assert!(xml::parse(body.as_bytes()).is_ok());
    }

    #[test]
    fn fault_is_reported() {
        let body = br#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>a:ActionNotSupported</faultcode><faultstring>The message with Action '' cannot be processed</faultstring></s:Fault></s:Body></s:Envelope>"#;
        assert!(
            parse_response(body)
                .unwrap_err()
                .contains("cannot be processed")
        );
    }

    #[test]
    fn user_error_is_reported() {
        let body = br#"<s:Envelope><s:Body><GetUserSettingsResponseMessage><Response><ErrorCode>NoError</ErrorCode><UserResponses><UserResponse><ErrorCode>InvalidUser</ErrorCode><ErrorMessage>Invalid user: 'x@y'</ErrorMessage></UserResponse></UserResponses></Response></GetUserSettingsResponseMessage></s:Body></s:Envelope>"#;
        assert!(parse_response(body).unwrap_err().contains("InvalidUser"));
    }
}
