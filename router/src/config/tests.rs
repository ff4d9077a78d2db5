#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;

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
