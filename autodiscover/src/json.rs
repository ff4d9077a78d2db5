//! Autodiscover v2, the JSON endpoint of Exchange Online and Exchange 2016 CU and later:
//! `GET /autodiscover/autodiscover.json/v1.0/{address}?Protocol={protocol}` returns
//! `{"Protocol": "...", "Url": "..."}` for one protocol per request, or
//! `{"ErrorCode": "...", "ErrorMessage": "..."}`.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use serde::Deserialize;

/// The path prefix of the JSON endpoint; the address and the query follow.
pub const PATH_PREFIX: &str = "/autodiscover/autodiscover.json/v1.0/";

/// The protocol names the JSON endpoint accepts that exmux uses.
pub const PROTOCOLS: [&str; 2] = ["EWS", "MapiHttp"];

/// The largest response accepted, in bytes.
const MAX_BYTES: usize = 64 * 1024;

#[derive(Deserialize)]
struct Answer {
    #[serde(rename = "Protocol")]
    protocol: Option<String>,
    #[serde(rename = "Url")]
    url: Option<String>,
    #[serde(rename = "ErrorCode")]
    error_code: Option<String>,
    #[serde(rename = "ErrorMessage")]
    error_message: Option<String>,
}

/// Returns the request path and query for `address` and `protocol`, percent-encoding the
/// address.
pub fn request_path(address: &str, protocol: &str) -> String {
    let mut encoded = String::new();
    for byte in address.bytes() {
        if byte.is_ascii_alphanumeric() || b"@.-_~+".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("{PATH_PREFIX}{encoded}?Protocol={protocol}")
}

/// Parses one response and returns the URL for `protocol`.
///
/// # Errors
///
/// A message when the JSON is malformed or too large, carries an `ErrorCode`, names
/// another protocol, or has no URL.
pub fn parse_response(bytes: &[u8], protocol: &str) -> Result<String, String> {
    if bytes.len() > MAX_BYTES {
        return Err(format!("the JSON answer is larger than {MAX_BYTES} bytes"));
    }
    let answer: Answer =
        serde_json::from_slice(bytes).map_err(|error| format!("malformed JSON answer: {error}"))?;
    if let Some(code) = answer.error_code {
        return Err(format!(
            "the server returned {code}: {}",
            answer.error_message.unwrap_or_default()
        ));
    }
    if let Some(answered) = &answer.protocol
        && !answered.eq_ignore_ascii_case(protocol)
    {
        return Err(format!(
            "asked for {protocol}, the server answered for {answered}"
        ));
    }
    answer
        .url
        .filter(|url| !url.is_empty())
        .ok_or_else(|| format!("the JSON answer for {protocol} has no Url"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_encodes_address() {
        assert_eq!(
            request_path("a b@example.test", "EWS"),
            "/autodiscover/autodiscover.json/v1.0/a%20b@example.test?Protocol=EWS"
        );
    }

    #[test]
    fn answer_and_errors() {
        let ok = br#"{"Protocol":"EWS","Url":"https://outlook.office365.com/EWS/Exchange.asmx"}"#;
        assert_eq!(
            parse_response(ok, "EWS").unwrap(),
            "https://outlook.office365.com/EWS/Exchange.asmx"
        );
        let error = br#"{"ErrorCode":"InvalidProtocol","ErrorMessage":"The given protocol value 'X' is invalid."}"#;
        assert!(
            parse_response(error, "X")
                .unwrap_err()
                .contains("InvalidProtocol")
        );
        assert!(
            parse_response(b"{\"Url\":", "EWS")
                .unwrap_err()
                .contains("malformed")
        );
        assert!(parse_response(ok, "MapiHttp").is_err());
    }
}
