//! Autodiscover responses for the emulator's mailbox: POX (response schema 2006a, in the
//! structure a real server returns), SOAP GetUserSettings and JSON v2, plus configurable
//! redirects.
//!
//! These are plain request-to-response functions over `http::Request<Bytes>`; the server
//! mounts them and does the authentication.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use quick_xml::Reader;
use quick_xml::events::Event;

/// The facts the responses carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutodiscoverMailbox {
    /// The primary SMTP address.
    pub address: String,
    /// The display name.
    pub display_name: String,
    /// The legacy DN (the UserDn of a MAPI/HTTP Connect).
    pub legacy_dn: String,
    /// The EWS endpoint.
    pub ews_url: String,
    /// The MAPI/HTTP mailbox endpoint with `MailboxId`.
    pub emsmdb_url: String,
    /// The MAPI/HTTP address book endpoint with `MailboxId`.
    pub nspi_url: String,
    /// The `DeploymentId` GUID string.
    pub deployment_id: String,
}

/// A redirect the emulator returns for one requested address.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Redirect {
    /// Response `redirectAddr` (POX) or `RedirectAddress` (SOAP) with this address.
    Address(String),
    /// Response `redirectUrl` (POX) or `RedirectUrl` (SOAP) with this URL.
    Url(String),
}

/// The mailbox and redirects the autodiscover endpoints serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutodiscoverConfig {
    /// The mailbox.
    pub mailbox: AutodiscoverMailbox,
    /// Redirects by requested address (compared case-insensitively).
    pub redirects: Vec<(String, Redirect)>,
}

impl AutodiscoverConfig {
    /// Serves `mailbox` with no redirects.
    pub fn new(mailbox: AutodiscoverMailbox) -> Self {
        Self {
            mailbox,
            redirects: Vec::new(),
        }
    }

    fn redirect_for(&self, address: &str) -> Option<&Redirect> {
        self.redirects
            .iter()
            .find(|(from, _)| from.eq_ignore_ascii_case(address))
            .map(|(_, redirect)| redirect)
    }

    fn is_mailbox(&self, address: &str) -> bool {
        self.mailbox.address.eq_ignore_ascii_case(address)
    }
}

/// The POX path, compared case-insensitively.
pub const POX_PATH: &str = "/autodiscover/autodiscover.xml";
/// The SOAP path, compared case-insensitively.
pub const SOAP_PATH: &str = "/autodiscover/autodiscover.svc";
/// The JSON v2 path prefix, compared case-insensitively.
pub const JSON_PATH_PREFIX: &str = "/autodiscover/autodiscover.json/v1.0/";

const RESPONSE_NS: &str = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006";
const OUTLOOK_NS: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";

/// Returns true when `path` belongs to one of the autodiscover endpoints.
pub fn is_autodiscover_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower == POX_PATH || lower == SOAP_PATH || lower.starts_with(JSON_PATH_PREFIX)
}

/// Handles a request to any autodiscover endpoint, or `None` for another path.
pub fn handle(request: &Request<Bytes>, config: &AutodiscoverConfig) -> Option<Response<Bytes>> {
    let path = request.uri().path().to_ascii_lowercase();
    if path == POX_PATH {
        return Some(pox(request, config));
    }
    if path == SOAP_PATH {
        return Some(soap(request, config));
    }
    if path.starts_with(JSON_PATH_PREFIX) {
        return Some(json(request, config));
    }
    None
}

fn escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

fn respond(status: StatusCode, content_type: &str, body: String) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(body));
    *response.status_mut() = status;
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

/// Returns the text of the first element with local name `name`.
fn element_text(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let mut reader = Reader::from_str(text);
    let mut inside = false;
    let mut value = String::new();
    loop {
        match reader.read_event().ok()? {
            Event::Start(start) if start.local_name().as_ref() == name.as_bytes() => inside = true,
            Event::Text(content) if inside => value.push_str(&content.decode().ok()?),
            Event::GeneralRef(reference) if inside => {
                let character = match reference.as_ref() {
                    b"amp" => '&',
                    b"lt" => '<',
                    b"gt" => '>',
                    b"quot" => '"',
                    b"apos" => '\'',
                    _ => reference.resolve_char_ref().ok()??,
                };
                value.push(character);
            }
            Event::End(end) if inside && end.local_name().as_ref() == name.as_bytes() => {
                return Some(value.trim().to_owned());
            }
            Event::DocType(_) | Event::Eof => return None,
            _ => {}
        }
    }
}

/// Builds the POX response (MS-OXDSCLI 2.2.4) with the structure of a real server's response: `User`,
/// then `Account` with an `EXHTTP` block, a `mapiHttp` block and an `EXCH` block.
pub fn pox(request: &Request<Bytes>, config: &AutodiscoverConfig) -> Response<Bytes> {
    if request.method() != http::Method::POST {
        return respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "POST required\n".to_owned(),
        );
    }
    let Some(address) = element_text(request.body(), "EMailAddress") else {
        return pox_error("600", "Invalid Request");
    };

    if let Some(redirect) = config.redirect_for(&address) {
        let (action, element, target) = match redirect {
            Redirect::Address(target) => ("redirectAddr", "RedirectAddr", target),
            Redirect::Url(target) => ("redirectUrl", "RedirectUrl", target),
        };
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Autodiscover xmlns=\"{RESPONSE_NS}\"><Response xmlns=\"{OUTLOOK_NS}\">\
             <Account><Action>{action}</Action><{element}>{}</{element}></Account></Response></Autodiscover>",
            escape(target)
        );
        return respond(StatusCode::OK, "text/xml; charset=utf-8", body);
    }
    if !config.is_mailbox(&address) {
        return pox_error("500", "The e-mail address cannot be found.");
    }

    let mailbox = &config.mailbox;
    let ews = escape(&mailbox.ews_url);
    let server = escape(url_authority(&mailbox.ews_url).unwrap_or_default());
    let emsmdb = escape(&mailbox.emsmdb_url);
    let nspi = escape(&mailbox.nspi_url);
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Autodiscover xmlns=\"{RESPONSE_NS}\"><Response xmlns=\"{OUTLOOK_NS}\">\
         <User><AutoDiscoverSMTPAddress>{address}</AutoDiscoverSMTPAddress><DisplayName>{display}</DisplayName>\
         <LegacyDN>{dn}</LegacyDN><DeploymentId>{deployment}</DeploymentId></User>\
         <Account><AccountType>email</AccountType><Action>settings</Action><MicrosoftOnline>False</MicrosoftOnline>\
         <ConsumerMailbox>False</ConsumerMailbox>\
         <Protocol><Type>EXHTTP</Type><Server>{server}</Server><SSL>On</SSL><AuthPackage>basic</AuthPackage>\
         <ASUrl>{ews}</ASUrl><EwsUrl>{ews}</EwsUrl><OOFUrl>{ews}</OOFUrl></Protocol>\
         <Protocol Type=\"mapiHttp\" Version=\"1\"><MailStore><InternalUrl>{emsmdb}</InternalUrl><ExternalUrl>{emsmdb}</ExternalUrl></MailStore>\
         <AddressBook><InternalUrl>{nspi}</InternalUrl><ExternalUrl>{nspi}</ExternalUrl></AddressBook></Protocol>\
         <Protocol><Type>EXCH</Type><Server>{server}</Server><AuthPackage>anonymous</AuthPackage>\
         <ASUrl>{ews}</ASUrl><EwsUrl>{ews}</EwsUrl></Protocol>\
         </Account></Response></Autodiscover>",
        address = escape(&mailbox.address),
        display = escape(&mailbox.display_name),
        dn = escape(&mailbox.legacy_dn),
        deployment = escape(&mailbox.deployment_id),
    );
    respond(StatusCode::OK, "text/xml; charset=utf-8", body)
}

fn url_authority(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    Some(rest.split('/').next().unwrap_or(rest))
}

fn pox_error(code: &str, message: &str) -> Response<Bytes> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><Autodiscover xmlns=\"{RESPONSE_NS}\"><Response>\
         <Error Time=\"00:00:00.0000000\" Id=\"0\"><ErrorCode>{code}</ErrorCode><Message>{}</Message>\
         <DebugData /></Error></Response></Autodiscover>",
        escape(message)
    );
    respond(StatusCode::OK, "text/xml; charset=utf-8", body)
}

/// Builds the SOAP GetUserSettings response (MS-OXWSADISC 3.1.4.8) for the mailbox.
pub fn soap(request: &Request<Bytes>, config: &AutodiscoverConfig) -> Response<Bytes> {
    let Some(address) = element_text(request.body(), "Mailbox") else {
        return respond(
            StatusCode::BAD_REQUEST,
            "text/plain",
            "expected a GetUserSettings request with a Mailbox\n".to_owned(),
        );
    };

    let (code, message, redirect, settings) = match config.redirect_for(&address) {
        Some(Redirect::Address(target)) => (
            "RedirectAddress",
            "Redirection address.",
            target.clone(),
            String::new(),
        ),
        Some(Redirect::Url(target)) => (
            "RedirectUrl",
            "Redirection URL.",
            target.clone(),
            String::new(),
        ),
        None if !config.is_mailbox(&address) => {
            ("InvalidUser", "Invalid user.", String::new(), String::new())
        }
        None => {
            let mailbox = &config.mailbox;
            let pairs = [
                ("UserDisplayName", mailbox.display_name.as_str()),
                ("UserDN", mailbox.legacy_dn.as_str()),
                ("AutoDiscoverSMTPAddress", mailbox.address.as_str()),
                ("ExternalEwsUrl", mailbox.ews_url.as_str()),
                ("InternalEwsUrl", mailbox.ews_url.as_str()),
                ("MapiHttpEnabled", "True"),
            ];
            let settings: String = pairs
                .iter()
                .map(|(name, value)| {
                    format!(
                        "<UserSetting i:type=\"StringSetting\"><Name>{name}</Name><Value>{}</Value></UserSetting>",
                        escape(value)
                    )
                })
                .collect();
            ("NoError", "No error.", String::new(), settings)
        }
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         xmlns:a=\"http://www.w3.org/2005/08/addressing\"><s:Header>\
         <a:Action s:mustUnderstand=\"1\">http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettingsResponse</a:Action>\
         </s:Header><s:Body><GetUserSettingsResponseMessage xmlns=\"http://schemas.microsoft.com/exchange/2010/Autodiscover\">\
         <Response xmlns:i=\"http://www.w3.org/2001/XMLSchema-instance\"><ErrorCode>NoError</ErrorCode><ErrorMessage />\
         <UserResponses><UserResponse><ErrorCode>{code}</ErrorCode><ErrorMessage>{message}</ErrorMessage>\
         <RedirectTarget>{}</RedirectTarget><UserSettingErrors /><UserSettings>{settings}</UserSettings>\
         </UserResponse></UserResponses></Response></GetUserSettingsResponseMessage></s:Body></s:Envelope>",
        escape(&redirect)
    );
    respond(StatusCode::OK, "text/xml; charset=utf-8", body)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let hex = text.get(index + 1..index + 3)?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            decoded.push(byte);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

/// Answers the JSON v2 endpoint for `EWS` and `MapiHttp`.
pub fn json(request: &Request<Bytes>, config: &AutodiscoverConfig) -> Response<Bytes> {
    let path = request.uri().path();
    let encoded = path.get(JSON_PATH_PREFIX.len()..).unwrap_or_default();
    let address = percent_decode(encoded).unwrap_or_default();
    let protocol = request
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| {
            pair.split_once('=')
                .filter(|(key, _)| key.eq_ignore_ascii_case("Protocol"))
        })
        .map(|(_, value)| value.to_owned())
        .unwrap_or_default();

    let error = |status: StatusCode, code: &str, message: String| {
        let body = serde_json::json!({ "ErrorCode": code, "ErrorMessage": message }).to_string();
        respond(status, "application/json; charset=utf-8", body)
    };
    if !config.is_mailbox(&address) {
        return error(
            StatusCode::NOT_FOUND,
            "UserNotFound",
            format!("The user '{address}' was not found."),
        );
    }
    let (name, url) = if protocol.eq_ignore_ascii_case("EWS") {
        ("EWS", &config.mailbox.ews_url)
    } else if protocol.eq_ignore_ascii_case("MapiHttp") {
        ("MapiHttp", &config.mailbox.emsmdb_url)
    } else {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidProtocol",
            format!(
                "The given protocol value '{protocol}' is invalid. Supported values are 'Ews,MapiHttp'."
            ),
        );
    };
    let body = serde_json::json!({ "Protocol": name, "Url": url }).to_string();
    respond(StatusCode::OK, "application/json; charset=utf-8", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AutodiscoverConfig {
        AutodiscoverConfig::new(AutodiscoverMailbox {
            address: "user1@example.test".to_owned(),
            display_name: "User One & Co".to_owned(),
            legacy_dn: "/o=Emulator/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=user1".to_owned(),
            ews_url: "https://127.0.0.1:8443/EWS/Exchange.asmx".to_owned(),
            emsmdb_url: "https://127.0.0.1:8443/mapi/emsmdb/?MailboxId=0a0b@example.test".to_owned(),
            nspi_url: "https://127.0.0.1:8443/mapi/nspi/?MailboxId=0a0b@example.test".to_owned(),
            deployment_id: "00000000-0000-0000-0000-000000000001".to_owned(),
        })
    }

    fn post(path: &str, body: &str) -> Request<Bytes> {
        Request::builder()
            .method("POST")
            .uri(path)
            .body(Bytes::from(body.to_owned()))
            .unwrap()
    }

    fn pox_request(address: &str) -> Request<Bytes> {
        post(
            "/Autodiscover/Autodiscover.xml",
            &format!(
                "<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\"><Request>\
                 <EMailAddress>{address}</EMailAddress><AcceptableResponseSchema>{OUTLOOK_NS}</AcceptableResponseSchema></Request></Autodiscover>"
            ),
        )
    }

    fn text(response: &Response<Bytes>) -> String {
        String::from_utf8(response.body().to_vec()).unwrap()
    }

    #[test]
    fn pox_answer_carries_mailbox_facts() {
        let response = handle(&pox_request("USER1@example.test"), &config()).unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = text(&response);
        assert!(
            body.contains("<DisplayName>User One &amp; Co</DisplayName>"),
            "{body}"
        );
        assert!(
            body.contains("<Protocol Type=\"mapiHttp\" Version=\"1\">"),
            "{body}"
        );
        assert!(
            body.contains("<EwsUrl>https://127.0.0.1:8443/EWS/Exchange.asmx</EwsUrl>"),
            "{body}"
        );
        assert!(body.contains("<Server>127.0.0.1:8443</Server>"), "{body}");
    }

    #[test]
    fn pox_unknown_address_is_error_500() {
        let body = text(&handle(&pox_request("nobody@example.test"), &config()).unwrap());
        assert!(body.contains("<ErrorCode>500</ErrorCode>"), "{body}");
    }

    #[test]
    fn pox_redirects_by_address() {
        let mut config = config();
        config.redirects.push((
            "alias@example.test".to_owned(),
            Redirect::Address("user1@example.test".to_owned()),
        ));
        config.redirects.push((
            "moved@example.test".to_owned(),
            Redirect::Url("https://a.test/autodiscover/autodiscover.xml".to_owned()),
        ));
        let body = text(&handle(&pox_request("alias@example.test"), &config).unwrap());
        assert!(
            body.contains(
                "<Action>redirectAddr</Action><RedirectAddr>user1@example.test</RedirectAddr>"
            ),
            "{body}"
        );
        let body = text(&handle(&pox_request("moved@example.test"), &config).unwrap());
        assert!(
            body.contains(
                "<RedirectUrl>https://a.test/autodiscover/autodiscover.xml</RedirectUrl>"
            ),
            "{body}"
        );
    }

    #[test]
    fn pox_rejects_get_and_garbage() {
        let get = Request::builder().uri(POX_PATH).body(Bytes::new()).unwrap();
        assert_eq!(
            pox(&get, &config()).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        let body = text(&handle(&post(POX_PATH, "<not xml"), &config()).unwrap());
        assert!(body.contains("<ErrorCode>600</ErrorCode>"), "{body}");
    }

    #[test]
    fn soap_settings_and_invalid_user() {
        let request = |address: &str| {
            post(
                "/autodiscover/autodiscover.svc",
                &format!(
                    "<s:Envelope><s:Body><a:GetUserSettingsRequestMessage><a:Request><a:Users><a:User><a:Mailbox>{address}</a:Mailbox></a:User></a:Users></a:Request></a:GetUserSettingsRequestMessage></s:Body></s:Envelope>"
                ),
            )
        };
        let body = text(&handle(&request("user1@example.test"), &config()).unwrap());
        assert!(
            body.contains(
                "<Name>ExternalEwsUrl</Name><Value>https://127.0.0.1:8443/EWS/Exchange.asmx</Value>"
            ),
            "{body}"
        );
        assert!(
            body.contains("<ErrorCode>NoError</ErrorCode><ErrorMessage>No error.</ErrorMessage>"),
            "{body}"
        );
        let body = text(&handle(&request("x@example.test"), &config()).unwrap());
        assert!(
            body.contains("<ErrorCode>InvalidUser</ErrorCode>"),
            "{body}"
        );
    }

    #[test]
    fn json_per_protocol() {
        let get = |path: &str| Request::builder().uri(path).body(Bytes::new()).unwrap();
        let response = handle(
            &get("/autodiscover/autodiscover.json/v1.0/user1%40example.test?Protocol=MapiHttp"),
            &config(),
        )
        .unwrap();
        let value: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(value["Protocol"], "MapiHttp");
        assert_eq!(
            value["Url"],
            "https://127.0.0.1:8443/mapi/emsmdb/?MailboxId=0a0b@example.test"
        );

        let response = handle(
            &get("/autodiscover/autodiscover.json/v1.0/user1@example.test?Protocol=Pop3"),
            &config(),
        )
        .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let response = handle(
            &get("/autodiscover/autodiscover.json/v1.0/x@example.test?Protocol=EWS"),
            &config(),
        )
        .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn other_paths_are_not_handled() {
        let request = Request::builder()
            .uri("/EWS/Exchange.asmx")
            .body(Bytes::new())
            .unwrap();
        assert!(handle(&request, &config()).is_none());
        assert!(is_autodiscover_path("/AutoDiscover/AutoDiscover.xml"));
    }
}
