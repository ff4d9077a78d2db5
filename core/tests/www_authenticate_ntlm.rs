//! Challenge parsing and NTLM token generation against an Exchange 401 sequence in which
//! the NTLM challenge arrives beside Negotiate and Basic, as separate headers or merged
//! into one, in either order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use exmux_core::Secret;
use exmux_core::auth::{
    AuthError, AuthScheme, Credentials, NtlmHandshake, choose_challenge, parse_challenges,
};
use hmac::{Hmac, KeyInit, Mac};
use md4::{Digest, Md4};
use md5::Md5;

const SERVER_CHALLENGE: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];

/// Reads the `WWW-Authenticate` values of each response in the case file, by section label.
fn responses() -> Option<Vec<(String, Vec<String>)>> {
    let path = exmux_testkit::shared_path("cases/inputs/C23-www-authenticate-multi.txt")?;
    let text = std::fs::read_to_string(path).unwrap();
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        if line.starts_with("--- ") || line.starts_with("variant ") {
            sections.push((line.to_owned(), Vec::new()));
        } else if let Some(value) = line.trim_start().strip_prefix("WWW-Authenticate:") {
            sections.last_mut().unwrap().1.push(value.trim().to_owned());
        }
    }
    sections.retain(|(_, values)| !values.is_empty());
    Some(sections)
}

fn section<'a>(sections: &'a [(String, Vec<String>)], prefix: &str) -> &'a [String] {
    &sections
        .iter()
        .find(|(label, _)| label.starts_with(prefix))
        .unwrap_or_else(|| panic!("no section {prefix}"))
        .1
}

fn ntlm_credentials() -> Credentials {
    Credentials::Ntlm {
        username: "EXAMPLE\\user1".to_owned(),
        password: Secret::new("Correct-Horse-7"),
    }
}

fn u16_at(bytes: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// Returns the payload a MS-NLMP 2.2.1 field descriptor at `at` points to.
fn field(message: &[u8], at: usize) -> &[u8] {
    let length = u16_at(message, at);
    let offset = u32_at(message, at + 4) as usize;
    &message[offset..offset + length]
}

fn utf16(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Md5> as KeyInit>::new_from_slice(key).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

#[test]
fn round_zero_offers_three_and_picks_ntlm() {
    let Some(sections) = responses() else { return };
    let values = section(&sections, "--- round 0");
    let challenges = parse_challenges(values.iter().map(String::as_str)).unwrap();

    let schemes: Vec<&str> = challenges
        .iter()
        .map(|challenge| challenge.scheme.as_str())
        .collect();
    assert_eq!(schemes, ["Negotiate", "NTLM", "Basic"]);
    assert_eq!(challenges[2].param("realm"), Some("mail.example.test"));

    let (scheme, chosen) = choose_challenge(&challenges, &ntlm_credentials()).unwrap();
    assert_eq!(scheme, AuthScheme::Ntlm);
    assert!(chosen.token68.is_none());

    let negotiate = Credentials::Negotiate {
        username: "user1@example.test".to_owned(),
        password: Secret::new("pw"),
    };
    assert_eq!(
        choose_challenge(&challenges, &negotiate).unwrap().0,
        AuthScheme::Negotiate
    );

    let basic = Credentials::Basic {
        username: "user1".to_owned(),
        password: Secret::new("pw"),
    };
    assert_eq!(
        choose_challenge(&challenges, &basic).unwrap().0,
        AuthScheme::Basic
    );
}

#[test]
fn all_four_variants_yield_same_type2() {
    let Some(sections) = responses() else { return };
    let mut tokens = Vec::new();
    for prefix in ["variant 1a", "variant 1b", "variant 1c", "variant 1d"] {
        let values = section(&sections, prefix);
        let challenges = parse_challenges(values.iter().map(String::as_str)).unwrap();
        let (scheme, chosen) = choose_challenge(&challenges, &ntlm_credentials()).unwrap();
        assert_eq!(scheme, AuthScheme::Ntlm, "{prefix}");
        tokens.push(chosen.token68.clone().unwrap());
    }
    assert!(tokens.iter().all(|token| token == &tokens[0]));

    let challenge = STANDARD.decode(&tokens[0]).unwrap();
    assert_eq!(&challenge[..8], b"NTLMSSP\0");
    assert_eq!(u32_at(&challenge, 8), 2);
    assert_eq!(challenge[24..32], SERVER_CHALLENGE);
}

#[test]
fn negative_case_names_offered_schemes() {
    let Some(sections) = responses() else { return };
    let values = section(&sections, "--- negative");
    let challenges = parse_challenges(values.iter().map(String::as_str)).unwrap();
    let error = choose_challenge(&challenges, &ntlm_credentials()).unwrap_err();

    assert!(matches!(error, AuthError::UnsupportedSchemes { .. }));
    let message = error.to_string();
    assert!(
        message.contains("unsupported auth schemes (offered: Negotiate, Basic)"),
        "{message}"
    );
    assert!(!message.contains("rejected"), "{message}");
}

#[test]
fn type1_has_ntlm_structure() {
    let mut handshake =
        NtlmHandshake::from_credentials(AuthScheme::Ntlm, &ntlm_credentials()).unwrap();
    let header = handshake.negotiate_header().unwrap();
    let token = header.expose().strip_prefix("NTLM ").unwrap();
    let message = STANDARD.decode(token).unwrap();

    assert_eq!(&message[..8], b"NTLMSSP\0");
    assert_eq!(u32_at(&message, 8), 1);
    let flags = u32_at(&message, 12);
    assert_ne!(flags & 0x0000_0001, 0, "NTLMSSP_NEGOTIATE_UNICODE");
    assert_ne!(flags & 0x0000_0200, 0, "NTLMSSP_NEGOTIATE_NTLM");
    assert_ne!(
        flags & 0x0008_0000,
        0,
        "NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY"
    );
}

#[test]
fn type3_answers_the_server_challenge() {
    let Some(sections) = responses() else { return };
    for prefix in ["variant 1a", "variant 1b", "variant 1c", "variant 1d"] {
        let values = section(&sections, prefix);
        let challenges = parse_challenges(values.iter().map(String::as_str)).unwrap();

        let mut handshake =
            NtlmHandshake::from_credentials(AuthScheme::Ntlm, &ntlm_credentials()).unwrap();
        handshake.negotiate_header().unwrap();
        let header = handshake.authenticate_header(&challenges).unwrap();
        let message = STANDARD
            .decode(header.expose().strip_prefix("NTLM ").unwrap())
            .unwrap();

        assert_eq!(&message[..8], b"NTLMSSP\0", "{prefix}");
        assert_eq!(u32_at(&message, 8), 3, "{prefix}");
        let user = field(&message, 36);
        let domain = field(&message, 28);
        assert_eq!(user, utf16("user1").as_slice(), "{prefix}");
        assert_eq!(domain, utf16("EXAMPLE").as_slice(), "{prefix}");

        // NTLMv2 (MS-NLMP 3.3.2): NTProofStr, then the blob that repeats the
        // challenge's target information.
        let nt_response = field(&message, 20);
        assert!(nt_response.len() > 48, "{prefix}: NTLMv2 response expected");
        let (proof, blob) = nt_response.split_at(16);
        assert_eq!(&blob[..2], &[1, 1], "{prefix}: blob version");
        let server_name = utf16("mbx01.example.test");
        assert!(
            blob.windows(server_name.len())
                .any(|window| window == server_name.as_slice()),
            "{prefix}: blob lacks the server's AV pairs"
        );

        let nt_hash = Md4::digest(utf16("Correct-Horse-7"));
        let mut identity = utf16("USER1");
        identity.extend_from_slice(domain);
        let response_key = hmac_md5(&nt_hash, &[&identity]);
        let expected = hmac_md5(&response_key, &[&SERVER_CHALLENGE, blob]);
        assert_eq!(proof, expected.as_slice(), "{prefix}: NTProofStr");
    }
}

#[test]
fn handshake_rejects_out_of_order_steps() {
    let mut handshake =
        NtlmHandshake::from_credentials(AuthScheme::Ntlm, &ntlm_credentials()).unwrap();
    assert!(handshake.authenticate_message(b"NTLMSSP\0").is_err());
    handshake.negotiate_message().unwrap();
    assert!(handshake.negotiate_message().is_err());
}

#[test]
fn missing_challenge_token_is_reported() {
    let mut handshake =
        NtlmHandshake::from_credentials(AuthScheme::Ntlm, &ntlm_credentials()).unwrap();
    handshake.negotiate_header().unwrap();
    let challenges = parse_challenges(["Negotiate, NTLM"]).unwrap();
    let error = handshake.authenticate_header(&challenges).unwrap_err();
    assert!(matches!(error, AuthError::InvalidChallenge { .. }));
    assert!(
        error.to_string().contains("offered: Negotiate, NTLM"),
        "{error}"
    );
}

#[test]
fn garbage_challenge_token_fails_cleanly() {
    let mut handshake =
        NtlmHandshake::from_credentials(AuthScheme::Ntlm, &ntlm_credentials()).unwrap();
    handshake.negotiate_header().unwrap();
    let challenges = parse_challenges(["NTLM TlRMTVNTUAACAAAA"]).unwrap();
    assert!(handshake.authenticate_header(&challenges).is_err());
}

#[test]
fn negotiate_sends_spnego_init() {
    let credentials = Credentials::Negotiate {
        username: "user1@example.test".to_owned(),
        password: Secret::new("pw"),
    };
    let mut handshake =
        NtlmHandshake::from_credentials(AuthScheme::Negotiate, &credentials).unwrap();
    let header = handshake.negotiate_header().unwrap();
    let token = header.expose().strip_prefix("Negotiate ").unwrap();
    let token = STANDARD.decode(token).unwrap();

    // RFC 2743 section 3.1: an InitialContextToken, [APPLICATION 0], whose mechanism is
    // SPNEGO (1.3.6.1.5.5.2, RFC 4178 section 4.1).
    assert_eq!(token[0], 0x60);
    assert!(
        contains(&token, &SPNEGO_OID),
        "no SPNEGO OID in {token:02x?}"
    );
    // The NegTokenInit offers NTLM (1.3.6.1.4.1.311.2.2.10) and carries the
    // NEGOTIATE_MESSAGE as its mechToken.
    assert!(contains(&token, &NTLM_OID), "no NTLM OID in {token:02x?}");
    let start = find(&token, b"NTLMSSP\0").expect("no NTLM message inside the NegTokenInit");
    assert_eq!(u32_at(&token, start + 8), 1);
}

/// The DER encoding of the SPNEGO mechanism OID, 1.3.6.1.5.5.2.
const SPNEGO_OID: [u8; 8] = [0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02];

/// The DER encoding of the NTLM mechanism OID, 1.3.6.1.4.1.311.2.2.10.
const NTLM_OID: [u8; 12] = [
    0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a,
];

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

#[test]
fn basic_header_matches_rfc7617_example() {
    // RFC 7617 section 2: Aladdin / open sesame.
    let header = exmux_core::auth::basic_header("Aladdin", &Secret::new("open sesame"));
    assert_eq!(header.expose(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
}

#[test]
fn bearer_header_prefixes_token() {
    let header = exmux_core::auth::bearer_header(&Secret::new("eyJ0eXAi.abc"));
    assert_eq!(header.expose(), "Bearer eyJ0eXAi.abc");
}
