#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;
use exmux_core::auth::Credentials;
use exmux_core::http::ProxySetting;

const AUTH: &str = r#"
[auth]
method = "basic"
username = "user1@example.test"
password_env = "EXMUX_PASSWORD"
"#;

fn with_routing(routing: &str) -> String {
    format!("[server]\nmailbox = \"user1@example.test\"\n{AUTH}\n[routing]\n{routing}\n")
}

fn error_of(text: &str) -> ConfigError {
    Config::from_toml_str(text).unwrap_err()
}

#[test]
fn design_example_loads() {
    let text = r#"
[server]
mailbox  = "user1@example.test"
ews_url  = "https://mail.example.test/EWS/Exchange.asmx"
mapi_url = "https://mail.example.test/mapi/emsmdb/?MailboxId=abc"

[auth]
method = "basic"
username = "user1@example.test"
password_env = "EXMUX_PASSWORD"

[routing]
default = "mapi"
fetch = "ews"
"#;
    let config = Config::from_toml_str(text).unwrap();
    assert_eq!(config.routing, Preset::Hybrid.routing());
    assert_eq!(
        config.server.endpoint(Backend::Ews),
        Some("https://mail.example.test/EWS/Exchange.asmx")
    );
    assert_eq!(config.auth.method, AuthMethod::Basic);
    // MAPI create and copy are partial; fetch is on EWS, so it is not.
    let partial: Vec<Operation> = config
        .warnings
        .iter()
        .filter_map(|warning| match warning {
            ConfigWarning::PartialRoute { operation, .. } => Some(*operation),
            _ => None,
        })
        .collect();
    assert_eq!(partial, vec![Operation::Create, Operation::Copy]);
}

#[test]
fn presets_never_split_writes_and_sync() {
    for preset in ["ews", "mapi", "hybrid"] {
        let config =
            Config::from_toml_str(&with_routing(&format!("preset = \"{preset}\""))).unwrap();
        assert!(
            !config
                .warnings
                .iter()
                .any(|warning| matches!(warning, ConfigWarning::SplitWriteAndSync { .. })),
            "{preset}: {:?}",
            config.warnings
        );
    }
}

#[test]
fn preset_with_override() {
    let config =
        Config::from_toml_str(&with_routing("preset = \"ews\"\nsubscribe = \"mapi\"")).unwrap();
    assert_eq!(
        config.routing.backend_for(Operation::Subscribe),
        Backend::Mapi
    );
    assert_eq!(config.routing.backend_for(Operation::Fetch), Backend::Ews);
}

#[test]
fn partial_route_warns_with_reason() {
    let config = Config::from_toml_str(&with_routing("default = \"mapi\"")).unwrap();
    let warning = config
        .warnings
        .iter()
        .find(|warning| {
            matches!(
                warning,
                ConfigWarning::PartialRoute {
                    operation: Operation::Fetch,
                    ..
                }
            )
        })
        .unwrap();
    assert!(
        warning.to_string().contains("not byte-identical"),
        "{warning}"
    );
}

#[test]
fn split_write_and_sync_warns() {
    let config =
        Config::from_toml_str(&with_routing("default = \"mapi\"\nupdate = \"ews\"")).unwrap();
    let warning = config
        .warnings
        .iter()
        .find(|warning| matches!(warning, ConfigWarning::SplitWriteAndSync { .. }))
        .unwrap();
    assert_eq!(
        warning,
        &ConfigWarning::SplitWriteAndSync {
            writes: vec![Operation::Update],
            sync_backend: Backend::Mapi,
        }
    );
    assert!(warning.to_string().contains("KB 4093129"), "{warning}");
}

#[test]
fn unsupported_route_names_capable_backends() {
    let table = CapabilityTable::default().without_backend(Backend::Mapi);
    let error =
        Config::from_toml_str_with(&with_routing("default = \"mapi\""), &table).unwrap_err();
    assert!(matches!(
        &error,
        ConfigError::UnsupportedRoute { operation: Operation::SyncHierarchy, backend: Backend::Mapi, capable }
            if capable == &vec![Backend::Ews]
    ));
    let message = error.to_string();
    assert!(
        message.contains("sync_hierarchy") && message.contains("mapi") && message.contains("ews"),
        "{message}"
    );
}

#[test]
fn unknown_backend_rejected() {
    let error = error_of(&with_routing("default = \"mapi\"\nfetch = \"imap\""));
    assert!(
        matches!(&error, ConfigError::UnknownBackend { key, value } if key == "fetch" && value == "imap")
    );
}

#[test]
fn non_string_backend_rejected() {
    let error = error_of(&with_routing("default = 1"));
    assert!(matches!(&error, ConfigError::UnknownBackend { key, .. } if key == "default"));
}

#[test]
fn unknown_operation_rejected() {
    let error = error_of(&with_routing("default = \"ews\"\nsync = \"mapi\""));
    assert!(matches!(&error, ConfigError::UnknownOperation { key } if key == "sync"));
}

#[test]
fn unknown_preset_rejected() {
    let error = error_of(&with_routing("preset = \"both\""));
    assert!(matches!(&error, ConfigError::UnknownPreset { value } if value == "both"));
}

#[test]
fn preset_and_default_rejected() {
    let error = error_of(&with_routing("preset = \"ews\"\ndefault = \"mapi\""));
    assert!(matches!(error, ConfigError::PresetAndDefault { .. }));
}

#[test]
fn missing_routing_rejected() {
    let error = error_of(&format!("[server]\n{AUTH}"));
    assert!(matches!(error, ConfigError::MissingRouting));
}

#[test]
fn unknown_server_key_rejected() {
    let error = error_of(&format!(
        "[server]\newsurl = \"x\"\n{AUTH}\n[routing]\npreset = \"ews\"\n"
    ));
    assert!(
        matches!(&error, ConfigError::Syntax { message } if message.contains("ewsurl")),
        "{error}"
    );
}

#[test]
fn invalid_toml_rejected() {
    let error = error_of("[server\n");
    assert!(matches!(error, ConfigError::Syntax { .. }));
}

#[test]
fn unknown_auth_method_rejected() {
    let error = error_of("[auth]\nmethod = \"kerberos\"\n[routing]\npreset = \"ews\"\n");
    assert!(
        matches!(&error, ConfigError::Syntax { message } if message.contains("kerberos")),
        "{error}"
    );
}

#[test]
fn missing_username_rejected() {
    let error =
        error_of("[auth]\nmethod = \"ntlm\"\npassword_env = \"P\"\n[routing]\npreset = \"ews\"\n");
    assert!(matches!(
        error,
        ConfigError::MissingUsername { method: "ntlm" }
    ));
}

#[test]
fn both_password_sources_rejected() {
    let error = error_of(
        "[auth]\nmethod = \"basic\"\nusername = \"u\"\npassword_env = \"P\"\npassword_file = \"/p\"\n[routing]\npreset = \"ews\"\n",
    );
    assert!(matches!(
        error,
        ConfigError::ConflictingSecretSources {
            env_key: "password_env",
            ..
        }
    ));
}

#[test]
fn oauth2_without_client_id_rejected() {
    let error = error_of(
        "[auth]\nmethod = \"oauth2\"\nflow = \"device-code\"\n[routing]\npreset = \"ews\"\n",
    );
    assert!(matches!(
        error,
        ConfigError::MissingOAuth2Key { key: "client_id" }
    ));
}

#[test]
fn oauth2_without_flow_rejected() {
    let error =
        error_of("[auth]\nmethod = \"oauth2\"\nclient_id = \"c\"\n[routing]\npreset = \"ews\"\n");
    assert!(matches!(
        error,
        ConfigError::MissingOAuth2Key { key: "flow" }
    ));
}

#[test]
fn oauth2_config_loads() {
    let config = Config::from_toml_str(
        "[auth]\nmethod = \"oauth2\"\nclient_id = \"c\"\ntenant = \"t\"\nscopes = [\"https://outlook.office365.com/EWS.AccessAsUser.All\"]\nflow = \"auth-code\"\ntoken_cache = \"/tmp/cache\"\n[routing]\npreset = \"ews\"\n",
    )
    .unwrap();
    assert_eq!(config.auth.flow, Some(OAuth2Flow::AuthCode));
}

#[test]
fn key_for_other_method_rejected() {
    let error =
        error_of("[auth]\nmethod = \"bearer\"\nusername = \"u\"\n[routing]\npreset = \"ews\"\n");
    assert!(matches!(
        error,
        ConfigError::KeyNotForMethod {
            key: "username",
            method: "bearer"
        }
    ));
}

#[test]
fn secret_from_file_trims_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("password");
    std::fs::write(&path, "hunter2\n").unwrap();
    let secret = resolve_secret(&SecretSource::File(path)).unwrap();
    assert_eq!(secret.expose(), "hunter2");
}

#[test]
fn empty_secret_file_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("password");
    std::fs::write(&path, "\n").unwrap();
    let error = resolve_secret(&SecretSource::File(path)).unwrap_err();
    assert!(matches!(error, ConfigError::SecretEmpty { .. }));
}

#[test]
fn missing_secret_file_rejected() {
    let error =
        resolve_secret(&SecretSource::File("/nonexistent/exmux-password".into())).unwrap_err();
    assert!(matches!(error, ConfigError::SecretFileUnreadable { .. }));
}

#[test]
fn missing_secret_env_rejected() {
    let error =
        resolve_secret(&SecretSource::Env("EXMUX_TEST_UNSET_VARIABLE_7F3A".into())).unwrap_err();
    assert!(
        matches!(&error, ConfigError::SecretEnvMissing { var } if var == "EXMUX_TEST_UNSET_VARIABLE_7F3A")
    );
}

#[test]
fn secret_source_follows_method() {
    let config = Config::from_toml_str(&with_routing("preset = \"ews\"")).unwrap();
    assert!(
        matches!(config.auth.secret_source(), Some(SecretSource::Env(var)) if var == "EXMUX_PASSWORD")
    );
}

#[test]
fn missing_config_file_rejected() {
    let error = Config::load(Path::new("/nonexistent/exmux.toml")).unwrap_err();
    assert!(
        matches!(&error, ConfigError::Read { path, .. } if path == Path::new("/nonexistent/exmux.toml"))
    );
    assert!(
        error.to_string().contains("/nonexistent/exmux.toml"),
        "{error}"
    );
}

#[test]
fn provider_secret_not_read_here() {
    let provider = std::sync::Arc::new(exmux_core::auth::StaticToken(Secret::new("token")));
    let error = resolve_secret(&SecretSource::Provider(provider)).unwrap_err();
    assert!(matches!(error, ConfigError::SecretFromProvider));
}

const OAUTH2_AUTH: &str = "[auth]\nmethod = \"oauth2\"\nclient_id = \"c\"\nflow = \"auth-code\"\n";

fn with_auth_and_http(auth: &str, http: &str) -> String {
    format!("{auth}[routing]\npreset = \"ews\"\n[http]\n{http}")
}

fn invalid_key(error: &ConfigError) -> Option<(&'static str, &'static str)> {
    match error {
        ConfigError::InvalidValue { section, key, .. } => Some((*section, *key)),
        _ => None,
    }
}

#[test]
fn http_section_absent_gives_defaults() {
    let config = Config::from_toml_str(&with_routing("preset = \"ews\"")).unwrap();
    let defaults = HttpOptions::default();
    assert!(config.http.ca_bundle.is_none());
    assert!(!config.http.danger_accept_invalid_certs);
    assert!(matches!(config.http.proxy, ProxySetting::FromEnvironment));
    assert_eq!(config.http.timeout, None);
    assert_eq!(config.http.connect_timeout, defaults.connect_timeout);
    assert_eq!(config.http.user_agent, defaults.user_agent);
}

#[test]
fn http_section_loads_every_key() {
    let text = with_auth_and_http(
        AUTH,
        r#"
ca_bundle = "/etc/exmux/ca.pem"
ca_bundle_only = true
proxy = "http://proxy.example.test:3128"
no_proxy = "localhost,.example.test"
timeout_secs = 600
connect_timeout_secs = 10
user_agent = "example-sync/1.0"
"#,
    );
    let config = Config::from_toml_str(&text).unwrap();
    let http = &config.http;
    assert_eq!(
        http.ca_bundle.as_deref(),
        Some(Path::new("/etc/exmux/ca.pem"))
    );
    assert!(http.ca_bundle_only);
    match &http.proxy {
        ProxySetting::Url { url, no_proxy } => {
            assert_eq!(url.expose(), "http://proxy.example.test:3128");
            assert_eq!(no_proxy.as_deref(), Some("localhost,.example.test"));
        }
        other => panic!("expected a proxy URL, got {other:?}"),
    }
    assert_eq!(http.timeout, Some(Duration::from_secs(600)));
    assert_eq!(http.connect_timeout, Duration::from_secs(10));
    assert_eq!(http.user_agent, "example-sync/1.0");
    assert!(
        config
            .warnings
            .iter()
            .all(|warning| !matches!(warning, ConfigWarning::CertificateVerificationDisabled))
    );
}

#[test]
fn http_proxy_keywords() {
    let none = Config::from_toml_str(&with_auth_and_http(AUTH, "proxy = \"none\"\n")).unwrap();
    assert!(matches!(none.http.proxy, ProxySetting::Disabled));

    let environment =
        Config::from_toml_str(&with_auth_and_http(AUTH, "proxy = \"environment\"\n")).unwrap();
    assert!(matches!(
        environment.http.proxy,
        ProxySetting::FromEnvironment
    ));
}

#[test]
fn http_invalid_values_name_key_and_value() {
    let cases: [(&str, &str, &str); 11] = [
        ("ca_bundle = \"\"\n", "ca_bundle", "\"\""),
        ("ca_bundle_only = true\n", "ca_bundle_only", "true"),
        (
            "proxy = \"proxy.example.test:3128\"\n",
            "proxy",
            "proxy.example.test:3128",
        ),
        (
            "proxy = \"socks5://127.0.0.1:1080\"\n",
            "proxy",
            "socks5://127.0.0.1:1080",
        ),
        (
            "proxy = \"ftp://proxy.example.test/\"\n",
            "proxy",
            "ftp://proxy.example.test/",
        ),
        ("proxy = \"direct\"\n", "proxy", "direct"),
        ("no_proxy = \"localhost\"\n", "no_proxy", "localhost"),
        (
            "proxy = \"none\"\nno_proxy = \"localhost\"\n",
            "no_proxy",
            "localhost",
        ),
        ("timeout_secs = 0\n", "timeout_secs", "0"),
        ("connect_timeout_secs = 0\n", "connect_timeout_secs", "0"),
        (
            "user_agent = \"bad\\nagent\"\n",
            "user_agent",
            "bad\\nagent",
        ),
    ];
    for (http, key, value) in cases {
        let error = error_of(&with_auth_and_http(AUTH, http));
        assert_eq!(
            invalid_key(&error),
            Some(("http", key)),
            "{http}: {error:?}"
        );
        let message = error.to_string();
        assert!(message.contains(key), "{message}");
        assert!(message.contains(value), "{message}");
    }
}

#[test]
fn http_proxy_password_never_shown() {
    for proxy in [
        "http://alice:proxy-pass-123@proxy.example.test:3128",
        "alice:proxy-pass-123@proxy.example.test:3128",
    ] {
        let error = error_of(&with_auth_and_http(AUTH, &format!("proxy = \"{proxy}\"\n")));
        assert_eq!(invalid_key(&error), Some(("http", "proxy")), "{error:?}");
        let message = error.to_string();
        assert!(!message.contains("proxy-pass-123"), "{message}");
        assert!(!format!("{error:?}").contains("proxy-pass-123"));
        assert!(message.contains("proxy.example.test"), "{message}");
    }
}

#[test]
fn http_unknown_key_rejected() {
    let error = error_of(&with_auth_and_http(AUTH, "verify_tls = false\n"));
    assert!(matches!(error, ConfigError::Syntax { .. }), "{error:?}");
    assert!(error.to_string().contains("verify_tls"), "{error}");
}

#[test]
fn http_disabled_verification_warns() {
    let config = Config::from_toml_str(&with_auth_and_http(
        AUTH,
        "danger_accept_invalid_certs = true\n",
    ))
    .unwrap();
    assert!(config.http.danger_accept_invalid_certs);
    assert!(
        config
            .warnings
            .contains(&ConfigWarning::CertificateVerificationDisabled)
    );
}

#[test]
fn http_options_build_a_client() {
    let config = Config::from_toml_str(&with_auth_and_http(
        AUTH,
        "proxy = \"http://127.0.0.1:3128\"\nno_proxy = \"localhost\"\ntimeout_secs = 5\n",
    ))
    .unwrap();
    assert!(config.http.build_client().is_ok());
}

#[test]
fn oauth2_optional_keys_load() {
    let auth = format!(
        "{OAUTH2_AUTH}tenant = \"example.test\"\nauthority = \"http://127.0.0.1:8400/\"\nredirect_uri = \"http://localhost:8401/callback\"\nrefresh_margin_secs = 120\n"
    );
    let config = Config::from_toml_str(&format!("{auth}[routing]\npreset = \"ews\"\n")).unwrap();
    assert_eq!(config.auth.refresh_margin_secs, Some(120));

    let oauth = config.auth.oauth_config("/tmp/default-cache.json").unwrap();
    assert_eq!(oauth.client_id, "c");
    assert_eq!(oauth.tenant, "example.test");
    assert_eq!(oauth.flow, OAuthFlow::AuthCode);
    assert_eq!(oauth.authority.as_str(), "http://127.0.0.1:8400/");
    assert_eq!(
        oauth.redirect_uri.as_ref().map(url::Url::as_str),
        Some("http://localhost:8401/callback")
    );
    assert_eq!(oauth.refresh_margin, Duration::from_secs(120));
    assert_eq!(oauth.token_cache, Path::new("/tmp/default-cache.json"));
    assert_eq!(
        oauth.endpoint("token").unwrap().as_str(),
        "http://127.0.0.1:8400/example.test/oauth2/v2.0/token"
    );
}

#[test]
fn oauth2_defaults_fill_missing_keys() {
    let config =
        Config::from_toml_str(&format!("{OAUTH2_AUTH}[routing]\npreset = \"ews\"\n")).unwrap();
    let oauth = config.auth.oauth_config("/tmp/cache.json").unwrap();
    assert_eq!(oauth.tenant, DEFAULT_TENANT);
    assert_eq!(
        oauth.authority.as_str(),
        exmux_core::auth::oauth::MICROSOFT_AUTHORITY
    );
    assert_eq!(
        oauth.refresh_margin,
        exmux_core::auth::oauth::DEFAULT_REFRESH_MARGIN
    );
    assert_eq!(oauth.redirect_uri, None);
    assert_eq!(
        oauth.scopes.len(),
        exmux_core::auth::oauth::DEFAULT_SCOPES.len()
    );
}

#[test]
fn oauth2_invalid_values_name_key_and_value() {
    let cases: [(&str, &str, &str); 9] = [
        (
            "authority = \"login.example.test\"\n",
            "authority",
            "login.example.test",
        ),
        (
            "authority = \"http://login.example.test/\"\n",
            "authority",
            "http://login.example.test/",
        ),
        (
            "authority = \"https://login.example.test/?x=1\"\n",
            "authority",
            "?x=1",
        ),
        (
            "redirect_uri = \"http://example.test:8400/\"\n",
            "redirect_uri",
            "http://example.test:8400/",
        ),
        (
            "redirect_uri = \"https://example.test/#frag\"\n",
            "redirect_uri",
            "#frag",
        ),
        (
            "redirect_uri = \"ftp://localhost/\"\n",
            "redirect_uri",
            "ftp://localhost/",
        ),
        (
            "refresh_margin_secs = 7200\n",
            "refresh_margin_secs",
            "7200",
        ),
        ("scopes = []\n", "scopes", "[]"),
        ("tenant = \"a/b\"\n", "tenant", "a/b"),
    ];
    for (extra, key, value) in cases {
        let error = error_of(&format!(
            "{OAUTH2_AUTH}{extra}[routing]\npreset = \"ews\"\n"
        ));
        assert_eq!(
            invalid_key(&error),
            Some(("auth", key)),
            "{extra}: {error:?}"
        );
        let message = error.to_string();
        assert!(message.contains(key), "{message}");
        assert!(message.contains(value), "{message}");
    }
}

#[test]
fn oauth2_keys_rejected_for_other_methods() {
    for key in [
        "authority = \"https://login.example.test/\"",
        "redirect_uri = \"http://localhost:1/\"",
        "refresh_margin_secs = 60",
    ] {
        let error = error_of(&with_auth_and_http(&format!("{AUTH}{key}\n"), ""));
        assert!(
            matches!(
                error,
                ConfigError::KeyNotForMethod {
                    method: "basic",
                    ..
                }
            ),
            "{key}: {error:?}"
        );
    }
}

#[test]
fn oauth_config_needs_oauth2_method() {
    let config = Config::from_toml_str(&with_routing("preset = \"ews\"")).unwrap();
    assert!(matches!(
        config.auth.oauth_config("/tmp/cache.json"),
        Err(ConfigError::KeyNotForMethod {
            method: "basic",
            ..
        })
    ));
}

fn credentials_of(auth: &str) -> Result<Credentials, ConfigError> {
    let config = Config::from_toml_str(&format!(
        "[server]\nmailbox = \"user1@example.test\"\n{auth}[routing]\npreset = \"ews\"\n"
    ))
    .unwrap();
    config.credentials(
        "/tmp/exmux-test-tokens.json",
        Arc::new(exmux_core::ManualClock::default()),
    )
}

#[test]
fn credentials_follow_method() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, "pa55word\n").unwrap();
    let file = path.display();

    let basic = credentials_of(&format!(
        "[auth]\nmethod = \"basic\"\nusername = \"DOMAIN\\\\user1\"\npassword_file = \"{file}\"\n"
    ))
    .unwrap();
    match basic {
        Credentials::Basic { username, password } => {
            assert_eq!(username, "DOMAIN\\user1");
            assert_eq!(password.expose(), "pa55word");
        }
        other => panic!("expected Basic, got {other:?}"),
    }

    let ntlm = credentials_of(&format!(
        "[auth]\nmethod = \"ntlm\"\nusername = \"user1\"\npassword_file = \"{file}\"\n"
    ))
    .unwrap();
    assert!(matches!(ntlm, Credentials::Ntlm { .. }), "{ntlm:?}");

    let negotiate = credentials_of(&format!(
        "[auth]\nmethod = \"negotiate\"\nusername = \"user1\"\npassword_file = \"{file}\"\n"
    ))
    .unwrap();
    assert!(
        matches!(negotiate, Credentials::Negotiate { .. }),
        "{negotiate:?}"
    );

    let bearer = credentials_of(&format!(
        "[auth]\nmethod = \"bearer\"\ntoken_file = \"{file}\"\n"
    ))
    .unwrap();
    assert!(matches!(bearer, Credentials::Bearer(_)), "{bearer:?}");

    let oauth2 =
        credentials_of("[auth]\nmethod = \"oauth2\"\nclient_id = \"c\"\nflow = \"device-code\"\n")
            .unwrap();
    assert!(matches!(oauth2, Credentials::Bearer(_)), "{oauth2:?}");
}

#[test]
fn credentials_need_a_secret_source() {
    let error = credentials_of("[auth]\nmethod = \"basic\"\nusername = \"user1\"\n").unwrap_err();
    assert!(
        matches!(error, ConfigError::SecretFromProvider),
        "{error:?}"
    );
}

#[test]
fn credentials_report_invalid_http() {
    let error = credentials_of(
        "[auth]\nmethod = \"oauth2\"\nclient_id = \"c\"\nflow = \"device-code\"\n[http]\nca_bundle = \"/nonexistent/ca.pem\"\n",
    )
    .unwrap_err();
    assert!(matches!(error, ConfigError::Http(_)), "{error:?}");
    assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
}

fn with_server(server_line: &str) -> String {
    format!(
        "[server]\nmailbox = \"user1@example.test\"\n{server_line}\n{AUTH}\n[routing]\npreset = \"ews\"\n"
    )
}

#[test]
fn endpoint_urls_are_checked_at_load() {
    for (line, key) in [
        ("ews_url = \"not a url\"", "ews_url"),
        (
            "ews_url = \"ftp://mail.example.test/EWS/Exchange.asmx\"",
            "ews_url",
        ),
        ("mapi_url = \"mail.example.test/mapi/emsmdb/\"", "mapi_url"),
    ] {
        let error = error_of(&with_server(line));
        assert_eq!(
            invalid_key(&error),
            Some(("server", key)),
            "{line}: {error}"
        );
        let message = error.to_string();
        assert!(message.contains(key), "{message}");
    }
    for line in [
        "ews_url = \"https://mail.example.test/EWS/Exchange.asmx\"",
        "ews_url = \"http://127.0.0.1:8080/EWS/Exchange.asmx\"",
        "mapi_url = \"https://mail.example.test/mapi/emsmdb/?MailboxId=a@example.test\"",
    ] {
        Config::from_toml_str(&with_server(line)).unwrap();
    }
}
