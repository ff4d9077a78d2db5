#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Each bad configuration gets its own error, naming the key or value and the fix, at
//! load time or, for a backend the server does not offer, at connect time.

use exmux_router::config::ConfigError;
use exmux_router::transport::{Transport, TransportError, TransportOptions};
use exmux_router::{Backend, CapabilityTable, Config, Operation, Support};

const SERVER: &str = "[server]\nmailbox = \"user1@example.test\"\news_url = \"http://127.0.0.1:9/EWS/Exchange.asmx\"\n";
const AUTH: &str = "[auth]\nmethod = \"basic\"\nusername = \"user1@example.test\"\npassword_env = \"EXMUX_TEST_NEVER_SET\"\n";

fn load(routing: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(&format!("{SERVER}{AUTH}[routing]\n{routing}"))
}

#[test]
fn unknown_backend_names_the_key_and_the_choices() {
    let error = load("default = \"imap\"\n").unwrap_err();
    assert!(
        matches!(error, ConfigError::UnknownBackend { .. }),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.contains("imap") && text.contains("\"ews\" or \"mapi\""),
        "{text}"
    );
}

#[test]
fn unknown_operation_key_lists_the_keys() {
    let error = load("default = \"ews\"\nsynch = \"ews\"\n").unwrap_err();
    assert!(
        matches!(error, ConfigError::UnknownOperation { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("synch"), "{error}");
}

#[test]
fn unknown_preset_names_the_presets() {
    let error = load("preset = \"fast\"\n").unwrap_err();
    assert!(
        matches!(error, ConfigError::UnknownPreset { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("hybrid"), "{error}");
}

#[test]
fn preset_and_default_together_are_refused() {
    let error = load("preset = \"ews\"\ndefault = \"mapi\"\n").unwrap_err();
    assert!(
        matches!(error, ConfigError::PresetAndDefault { .. }),
        "{error:?}"
    );
}

#[test]
fn missing_routing_says_what_to_add() {
    let error = load("").unwrap_err();
    assert!(matches!(error, ConfigError::MissingRouting), "{error:?}");
}

#[test]
fn syntax_error_is_its_own_error() {
    let error = Config::from_toml_str("[server\nmailbox = 1").unwrap_err();
    assert!(matches!(error, ConfigError::Syntax { .. }), "{error:?}");
}

#[test]
fn unreadable_file_names_the_path() {
    let error = Config::load("/nonexistent/exmux.toml".as_ref()).unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }), "{error:?}");
    assert!(error.to_string().contains("/nonexistent/exmux.toml"));
}

#[test]
fn route_to_an_incapable_backend_names_the_backends_that_can() {
    let mut table = CapabilityTable::default();
    table.set(Operation::Send, Backend::Mapi, Support::None);
    let text = format!("{SERVER}{AUTH}[routing]\ndefault = \"ews\"\nsend = \"mapi\"\n");
    let error = Config::from_toml_str_with(&text, &table).unwrap_err();
    assert!(
        matches!(error, ConfigError::UnsupportedRoute { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("send") && message.contains("ews"),
        "{message}"
    );
}

#[test]
fn basic_auth_without_username_is_refused() {
    let text = format!(
        "{SERVER}[auth]\nmethod = \"basic\"\npassword_env = \"X\"\n[routing]\ndefault = \"ews\"\n"
    );
    let error = Config::from_toml_str(&text).unwrap_err();
    assert!(
        matches!(error, ConfigError::MissingUsername { .. }),
        "{error:?}"
    );
}

#[test]
fn two_password_sources_are_refused() {
    let text = format!(
        "{SERVER}[auth]\nmethod = \"basic\"\nusername = \"u\"\npassword_env = \"X\"\npassword_file = \"/tmp/p\"\n[routing]\ndefault = \"ews\"\n"
    );
    let error = Config::from_toml_str(&text).unwrap_err();
    assert!(
        matches!(error, ConfigError::ConflictingSecretSources { .. }),
        "{error:?}"
    );
}

#[test]
fn key_of_another_method_is_refused() {
    let text = format!(
        "{SERVER}[auth]\nmethod = \"basic\"\nusername = \"u\"\npassword_env = \"X\"\nclient_id = \"abc\"\n[routing]\ndefault = \"ews\"\n"
    );
    let error = Config::from_toml_str(&text).unwrap_err();
    assert!(
        matches!(error, ConfigError::KeyNotForMethod { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn unset_password_variable_is_named_at_connect() {
    let config = load("default = \"ews\"\n").unwrap();
    let error = Transport::connect(&config, TransportOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            TransportError::Config(ConfigError::SecretEnvMissing { .. })
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("EXMUX_TEST_NEVER_SET"));
}

#[tokio::test]
async fn backend_without_endpoint_names_the_operations_routed_to_it() {
    let config = load("default = \"ews\"\nsync_items = \"mapi\"\nupdate = \"mapi\"\n").unwrap();
    let error = Transport::connect(&config, TransportOptions::default())
        .await
        .unwrap_err();
    let TransportError::BackendNotOffered {
        backend,
        operations,
        ..
    } = &error
    else {
        panic!("unexpected {error:?}");
    };
    assert_eq!(*backend, Backend::Mapi);
    assert_eq!(operations, &[Operation::SyncItems, Operation::Update]);
    let message = error.to_string();
    assert!(
        message.contains("sync_items, update") && message.contains("no mapi endpoint"),
        "{message}"
    );
}

#[tokio::test]
async fn missing_mailbox_is_named_at_connect() {
    let text = format!(
        "[server]\news_url = \"http://127.0.0.1:9/EWS/Exchange.asmx\"\n{AUTH}[routing]\ndefault = \"ews\"\n"
    );
    let config = Config::from_toml_str(&text).unwrap();
    let options = TransportOptions {
        credentials: Some(exmux_core::auth::Credentials::Basic {
            username: "u".into(),
            password: exmux_core::Secret::new("p"),
        }),
        ..TransportOptions::default()
    };
    let error = Transport::connect(&config, options).await.unwrap_err();
    assert!(matches!(error, TransportError::MissingMailbox), "{error:?}");
}

#[tokio::test]
async fn mapi_route_without_user_dn_says_what_to_add() {
    let text = format!(
        "[server]\nmailbox = \"user1@example.test\"\nmapi_url = \"http://127.0.0.1:9/mapi/emsmdb/\"\n{AUTH}[routing]\npreset = \"mapi\"\n"
    );
    let config = Config::from_toml_str(&text).unwrap();
    let error = Transport::connect(&config, TransportOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            TransportError::BackendNotOffered {
                backend: Backend::Mapi,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("user_dn"), "{error}");
}
