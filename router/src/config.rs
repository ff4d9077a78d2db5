//! Configuration: server endpoints, credentials by reference, and routing.
//!
//! The file format is TOML with the sections `[server]`, `[auth]`, `[routing]` and
//! the optional `[http]`; docs/CONFIG.md describes every key. Loading checks each route against the
//! [`CapabilityTable`]: a route to a backend that cannot carry the operation is an
//! error, a partial route or a route that splits a folder's writes from its sync is a
//! [`ConfigWarning`].

mod http;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use exmux_core::auth::oauth::{OAuthConfig, OAuthFlow, OAuthTokenProvider};
use exmux_core::auth::{Credentials, StaticToken, TokenProvider};
use exmux_core::http::{HttpConfigError, HttpOptions};
use exmux_core::{Clock, Secret};
use serde::{Deserialize, Serialize};

use crate::operation::{Backend, CapabilityTable, Operation, Support};

pub use http::{HttpSection, PROXY_FROM_ENVIRONMENT, PROXY_NONE};

/// The tenant used when `[auth] tenant` is absent: any work or school account.
pub const DEFAULT_TENANT: &str = "organizations";

/// The largest `refresh_margin_secs` accepted. Access tokens of the Microsoft identity
/// platform live 60 to 90 minutes by default (Microsoft Entra documentation,
/// "Configurable token lifetimes"), so a larger margin could refresh on every request.
pub const MAX_REFRESH_MARGIN_SECS: u64 = 3600;

/// A loaded and checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The `[server]` section.
    pub server: ServerConfig,
    /// The `[auth]` section.
    pub auth: AuthConfig,
    /// The backend of each operation, from `[routing]`.
    pub routing: Routing,
    /// The HTTP and TLS options from `[http]`, the defaults when the section is absent.
    pub http: HttpOptions,
    /// What loading accepted but the user should know.
    pub warnings: Vec<ConfigWarning>,
}

/// The `[server]` section. Every field is optional because autodiscover can supply the
/// endpoints and the user DN; the transport reports a missing one at connect time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The mailbox's SMTP address; also the address autodiscover starts from.
    pub mailbox: Option<String>,
    /// The EWS endpoint, such as `https://mail.example.test/EWS/Exchange.asmx`.
    pub ews_url: Option<String>,
    /// The MAPI/HTTP emsmdb endpoint, such as
    /// `https://mail.example.test/mapi/emsmdb/?MailboxId=...`.
    pub mapi_url: Option<String>,
    /// The user's legacy Exchange DN that MAPI Connect needs.
    pub user_dn: Option<String>,
}

impl ServerConfig {
    /// Returns the configured endpoint of `backend`, when the file names one.
    pub fn endpoint(&self, backend: Backend) -> Option<&str> {
        match backend {
            Backend::Ews => self.ews_url.as_deref(),
            Backend::Mapi => self.mapi_url.as_deref(),
        }
    }
}

/// The authentication scheme of `[auth] method`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum AuthMethod {
    /// HTTP Basic.
    Basic,
    /// NTLM.
    Ntlm,
    /// SPNEGO (Negotiate).
    Negotiate,
    /// A bearer token from `token_env`, `token_file` or an embedder's provider.
    Bearer,
    /// OAuth2 with a device-code or authorization-code flow.
    Oauth2,
}

/// The OAuth2 flow of `[auth] flow`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum OAuth2Flow {
    /// The device authorization grant (RFC 8628).
    DeviceCode,
    /// The authorization code grant with a local redirect (RFC 6749 section 4.1).
    AuthCode,
}

/// The `[auth]` section. Secrets are named by reference, never written in the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The scheme.
    pub method: AuthMethod,
    /// The user name (basic, ntlm, negotiate).
    pub username: Option<String>,
    /// The environment variable holding the password.
    pub password_env: Option<String>,
    /// The file holding the password (trailing newline ignored).
    pub password_file: Option<PathBuf>,
    /// The environment variable holding a bearer token.
    pub token_env: Option<String>,
    /// The file holding a bearer token (trailing newline ignored).
    pub token_file: Option<PathBuf>,
    /// The OAuth2 application (client) id.
    pub client_id: Option<String>,
    /// The OAuth2 tenant (directory) id or domain.
    pub tenant: Option<String>,
    /// The OAuth2 scopes.
    pub scopes: Option<Vec<String>>,
    /// The OAuth2 flow.
    pub flow: Option<OAuth2Flow>,
    /// The file the OAuth2 token cache is kept in.
    pub token_cache: Option<PathBuf>,
    /// The OAuth2 authority base URL; endpoints are
    /// `{authority}{tenant}/oauth2/v2.0/{devicecode,authorize,token}`.
    pub authority: Option<String>,
    /// The OAuth2 redirect URI of the auth-code flow, such as `http://localhost:8400/`.
    pub redirect_uri: Option<String>,
    /// How many seconds before expiry the OAuth2 access token is refreshed.
    pub refresh_margin_secs: Option<u64>,
}

/// Where a password or token comes from.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum SecretSource {
    /// An environment variable, read when resolved.
    Env(String),
    /// A file, read when resolved.
    File(PathBuf),
    /// A provider the embedder passes in.
    Provider(Arc<dyn TokenProvider>),
}

impl AuthConfig {
    /// Returns where the password (basic, ntlm, negotiate) or token (bearer) comes
    /// from, or `None` when the configuration names no source and the embedder must
    /// pass a provider.
    pub fn secret_source(&self) -> Option<SecretSource> {
        let (env, file) = match self.method {
            AuthMethod::Bearer => (&self.token_env, &self.token_file),
            _ => (&self.password_env, &self.password_file),
        };
        if let Some(var) = env {
            return Some(SecretSource::Env(var.clone()));
        }
        file.as_ref().map(|path| SecretSource::File(path.clone()))
    }

    /// Builds the OAuth2 settings of an `oauth2` configuration, with `tenant`
    /// defaulting to [`DEFAULT_TENANT`], `token_cache` to `default_token_cache`, and the
    /// scopes, authority and refresh margin to those of [`OAuthConfig::new`].
    ///
    /// # Errors
    /// [`ConfigError::KeyNotForMethod`] when the method is not `oauth2`,
    /// [`ConfigError::MissingOAuth2Key`] without `client_id` or `flow`, and
    /// [`ConfigError::InvalidValue`] for an `authority` or `redirect_uri` that
    /// [`Config::from_toml_str`] would also reject.
    pub fn oauth_config(
        &self,
        default_token_cache: impl Into<PathBuf>,
    ) -> Result<OAuthConfig, ConfigError> {
        if self.method != AuthMethod::Oauth2 {
            return Err(ConfigError::KeyNotForMethod {
                key: "client_id",
                method: method_name(self.method),
            });
        }
        let client_id = self
            .client_id
            .clone()
            .ok_or(ConfigError::MissingOAuth2Key { key: "client_id" })?;
        let flow = match self.flow {
            Some(OAuth2Flow::DeviceCode) => OAuthFlow::DeviceCode,
            Some(OAuth2Flow::AuthCode) => OAuthFlow::AuthCode,
            None => return Err(ConfigError::MissingOAuth2Key { key: "flow" }),
        };
        let tenant = self.tenant.as_deref().unwrap_or(DEFAULT_TENANT);
        let token_cache = self
            .token_cache
            .clone()
            .unwrap_or_else(|| default_token_cache.into());

        let mut config = OAuthConfig::new(client_id, tenant, token_cache).map_err(|error| {
            ConfigError::InvalidValue {
                section: "auth",
                key: "authority",
                value: format!("{:?}", exmux_core::auth::oauth::MICROSOFT_AUTHORITY),
                reason: error.to_string(),
            }
        })?;
        config.flow = flow;
        if let Some(scopes) = &self.scopes {
            config.scopes = scopes.clone();
        }
        if let Some(authority) = &self.authority {
            config.authority = parse_oauth_url("authority", authority)?;
        }
        if let Some(redirect) = &self.redirect_uri {
            config.redirect_uri = Some(parse_oauth_url("redirect_uri", redirect)?);
        }
        if let Some(seconds) = self.refresh_margin_secs {
            config.refresh_margin = Duration::from_secs(seconds);
        }
        Ok(config)
    }
}

/// Checks the endpoint URLs of `[server]` at load time, so that a typo is a
/// configuration error naming the key, not a connection failure later.
fn check_server(server: &ServerConfig) -> Result<(), ConfigError> {
    for (key, value) in [("ews_url", &server.ews_url), ("mapi_url", &server.mapi_url)] {
        let Some(text) = value else { continue };
        let invalid = |reason: String| ConfigError::InvalidValue {
            section: "server",
            key,
            value: format!("{text:?}"),
            reason,
        };
        let url = url::Url::parse(text).map_err(|error| {
            invalid(format!(
                "not an absolute URL ({error}): write it like \"https://mail.example.test/EWS/Exchange.asmx\", or run `exmux discover ADDRESS` to find it"
            ))
        })?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(invalid(format!(
                "the scheme {:?} is not supported: use https",
                url.scheme()
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("the URL names no host".to_owned()));
        }
    }
    Ok(())
}

/// Parses an OAuth2 endpoint URL, which must be HTTPS because codes and tokens travel
/// through it. Plain HTTP is accepted on a loopback host only: RFC 8252 section 7.3
/// allows it for redirects, and a local test identity provider needs it.
fn parse_oauth_url(key: &'static str, text: &str) -> Result<url::Url, ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidValue {
        section: "auth",
        key,
        value: format!("{text:?}"),
        reason,
    };
    let url = url::Url::parse(text).map_err(|error| {
        invalid(format!(
            "not an absolute URL ({error}): write it like \"https://login.example.test/\""
        ))
    })?;

    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(address)) => address.is_loopback(),
        Some(url::Host::Ipv6(address)) => address.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(invalid(
                "plain http is allowed only for localhost, 127.0.0.1 or [::1]: use https"
                    .to_owned(),
            ));
        }
        scheme => {
            return Err(invalid(format!(
                "the scheme {scheme:?} is not supported: use https"
            )));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("the URL names no host".to_owned()));
    }
    // RFC 6749 section 3.1.2: a redirect URI may carry a query but no fragment.
    if url.fragment().is_some() {
        return Err(invalid("remove the #fragment".to_owned()));
    }
    if key == "authority" && url.query().is_some() {
        return Err(invalid(
            "remove the ?query: the endpoint paths are appended to the authority".to_owned(),
        ));
    }
    Ok(url)
}

/// Reads a secret from `source`. A provider source cannot be read synchronously and
/// is returned as an error; the transport asks the provider itself.
///
/// # Errors
/// [`ConfigError::SecretEnvMissing`], [`ConfigError::SecretFileUnreadable`],
/// [`ConfigError::SecretEmpty`] or [`ConfigError::SecretFromProvider`].
pub fn resolve_secret(source: &SecretSource) -> Result<Secret, ConfigError> {
    let (value, origin) = match source {
        SecretSource::Env(var) => match std::env::var(var) {
            Ok(value) => (value, format!("environment variable {var}")),
            Err(_) => return Err(ConfigError::SecretEnvMissing { var: var.clone() }),
        },
        SecretSource::File(path) => match std::fs::read_to_string(path) {
            Ok(value) => (value, format!("file {}", path.display())),
            Err(source) => {
                return Err(ConfigError::SecretFileUnreadable {
                    path: path.clone(),
                    source,
                });
            }
        },
        SecretSource::Provider(_) => return Err(ConfigError::SecretFromProvider),
    };

    let trimmed = value.trim_end_matches(['\r', '\n']);
    if trimmed.is_empty() {
        return Err(ConfigError::SecretEmpty { origin });
    }
    Ok(Secret::new(trimmed))
}

/// A named routing of DESIGN: `ews`, `mapi` or `hybrid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Preset {
    /// Everything over EWS.
    Ews,
    /// Everything over MAPI/HTTP.
    Mapi,
    /// Everything over MAPI/HTTP except `fetch`, which stays on EWS so MIME comes
    /// straight from the server.
    Hybrid,
}

impl Preset {
    /// Returns the routing the preset names.
    pub fn routing(self) -> Routing {
        match self {
            Preset::Ews => Routing::uniform(Backend::Ews),
            Preset::Mapi => Routing::uniform(Backend::Mapi),
            Preset::Hybrid => {
                let mut routing = Routing::uniform(Backend::Mapi);
                routing.set(Operation::Fetch, Backend::Ews);
                routing
            }
        }
    }
}

/// The backend of each operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Routing {
    // Indexed by position in `Operation::ALL`.
    routes: [Backend; 11],
}

impl Routing {
    /// Returns a routing that sends every operation over `backend`.
    pub fn uniform(backend: Backend) -> Self {
        Self {
            routes: [backend; 11],
        }
    }

    fn index(operation: Operation) -> usize {
        Operation::ALL
            .iter()
            .position(|candidate| *candidate == operation)
            .unwrap_or(0)
    }

    /// Returns the backend of `operation`.
    pub fn backend_for(&self, operation: Operation) -> Backend {
        self.routes
            .get(Self::index(operation))
            .copied()
            .unwrap_or(Backend::Ews)
    }

    /// Sends `operation` over `backend`.
    pub fn set(&mut self, operation: Operation, backend: Backend) {
        if let Some(route) = self.routes.get_mut(Self::index(operation)) {
            *route = backend;
        }
    }

    /// Checks every route against `table`.
    ///
    /// # Errors
    /// [`ConfigError::UnsupportedRoute`] for the first operation routed to a backend
    /// that cannot carry it.
    pub fn check(&self, table: &CapabilityTable) -> Result<Vec<ConfigWarning>, ConfigError> {
        let mut warnings = Vec::new();
        for operation in Operation::ALL {
            let backend = self.backend_for(operation);
            match table.support(operation, backend) {
                Support::Full => {}
                Support::Partial(reason) => warnings.push(ConfigWarning::PartialRoute {
                    operation,
                    backend,
                    reason,
                }),
                Support::None => {
                    return Err(ConfigError::UnsupportedRoute {
                        operation,
                        backend,
                        capable: table.capable_backends(operation),
                    });
                }
            }
        }

        let sync_backend = self.backend_for(Operation::SyncItems);
        let split: Vec<Operation> = Operation::ITEM_WRITES
            .into_iter()
            .filter(|operation| self.backend_for(*operation) != sync_backend)
            .collect();
        if !split.is_empty() {
            warnings.push(ConfigWarning::SplitWriteAndSync {
                writes: split,
                sync_backend,
            });
        }
        Ok(warnings)
    }
}

/// Something loading accepted but the user should know; the CLI prints these and a
/// library embedder logs them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigWarning {
    /// An operation is routed to a backend that carries it only partly.
    #[error("operation {operation} is routed to {backend}, which supports it partly: {reason}")]
    PartialRoute {
        /// The operation.
        operation: Operation,
        /// Its backend.
        backend: Backend,
        /// The limitation, from the capability table.
        reason: &'static str,
    },
    /// Item writes and the item sync of the same folders go over different backends.
    #[error(
        "operations {} write items over a different backend than sync_items ({sync_backend}): items written over EWS can carry change keys and predecessor change lists that make a MAPI ICS download skip them (Microsoft KB 4093129); route them to {sync_backend} or use a named preset",
        writes.iter().map(|operation| operation.key()).collect::<Vec<_>>().join(", ")
    )]
    SplitWriteAndSync {
        /// The write operations routed away from the sync backend.
        writes: Vec<Operation>,
        /// The backend of `sync_items`.
        sync_backend: Backend,
    },
    /// `[http] danger_accept_invalid_certs = true` turns off certificate verification.
    #[error(
        "[http] danger_accept_invalid_certs = true: server certificates are not verified, so anyone on the network path can read and change the traffic, passwords included; trust a private CA with ca_bundle instead"
    )]
    CertificateVerificationDisabled,
}

/// Why a configuration could not be loaded or a secret could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not valid TOML, has an unknown key or a value of the wrong type.
    #[error("invalid configuration: {message}")]
    Syntax {
        /// The TOML parser's message, which names the key and line.
        message: String,
    },
    /// A `[routing]` value names no backend.
    #[error("[routing] {key} = {value:?} names no backend: use \"ews\" or \"mapi\"")]
    UnknownBackend {
        /// The key (`default` or an operation).
        key: String,
        /// The value found.
        value: String,
    },
    /// A `[routing]` key names no operation.
    #[error(
        "[routing] has unknown key {key:?}: use default, preset or one of sync_hierarchy, sync_items, fetch, create, update, delete, move, copy, send, folder, subscribe"
    )]
    UnknownOperation {
        /// The key found.
        key: String,
    },
    /// `preset` names no preset.
    #[error("[routing] preset = {value:?} is unknown: use \"ews\", \"mapi\" or \"hybrid\"")]
    UnknownPreset {
        /// The value found.
        value: String,
    },
    /// `[routing]` sets both `preset` and `default`, which would each decide the
    /// backend of every operation.
    #[error(
        "[routing] sets both preset = {preset:?} and default = {default:?}: keep one (per-operation keys may follow either)"
    )]
    PresetAndDefault {
        /// The preset value.
        preset: String,
        /// The default value.
        default: String,
    },
    /// `[routing]` sets neither `preset` nor `default`.
    #[error("[routing] needs default = \"ews\"|\"mapi\" or preset = \"ews\"|\"mapi\"|\"hybrid\"")]
    MissingRouting,
    /// An operation is routed to a backend that cannot carry it.
    #[error(
        "operation {operation} cannot be routed to {backend}: it is supported by {}",
        if capable.is_empty() { "no backend this server offers".to_owned() } else { capable.iter().map(|backend| backend.key()).collect::<Vec<_>>().join(", ") }
    )]
    UnsupportedRoute {
        /// The operation.
        operation: Operation,
        /// The backend it was routed to.
        backend: Backend,
        /// The backends that can carry it.
        capable: Vec<Backend>,
    },
    /// A password-based method has no user name.
    #[error("[auth] method = \"{method}\" needs username")]
    MissingUsername {
        /// The method.
        method: &'static str,
    },
    /// Both an environment variable and a file are named for one secret.
    #[error("[auth] sets both {env_key} and {file_key}: keep one")]
    ConflictingSecretSources {
        /// `password_env` or `token_env`.
        env_key: &'static str,
        /// `password_file` or `token_file`.
        file_key: &'static str,
    },
    /// An OAuth2 configuration lacks a required key.
    #[error("[auth] method = \"oauth2\" needs {key}")]
    MissingOAuth2Key {
        /// The missing key.
        key: &'static str,
    },
    /// A key has a value outside what it accepts.
    #[error("[{section}] {key} = {value} is invalid: {reason}")]
    InvalidValue {
        /// The section, such as `http` or `auth`.
        section: &'static str,
        /// The key.
        key: &'static str,
        /// The value as written, quoted when it is a string; a password in a URL is
        /// replaced by `REDACTED`.
        value: String,
        /// The reason the value is invalid and what to write instead.
        reason: String,
    },
    /// A key does not belong to the configured method.
    #[error("[auth] {key} does not apply to method = \"{method}\": remove it or change the method")]
    KeyNotForMethod {
        /// The key.
        key: &'static str,
        /// The method.
        method: &'static str,
    },
    /// The environment variable that should hold a secret is not set.
    #[error("environment variable {var} is not set: export it with the password or token")]
    SecretEnvMissing {
        /// The variable.
        var: String,
    },
    /// The file that should hold a secret cannot be read.
    #[error("cannot read the secret file {path}: {source}")]
    SecretFileUnreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The secret source is empty.
    #[error("the secret from {origin} is empty")]
    SecretEmpty {
        /// Where it was read from (never the value).
        origin: String,
    },
    /// The `[http]` options cannot build an HTTP client.
    #[error(transparent)]
    Http(#[from] HttpConfigError),
    /// The secret comes from the embedder's provider, which only the transport calls.
    #[error("the secret comes from the embedder's token provider: ask the provider instead")]
    SecretFromProvider,
}

// The file as written, before routing values are checked, so that a bad value gets an
// error naming its key instead of a generic type error.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: ServerConfig,
    auth: AuthConfig,
    #[serde(default)]
    routing: toml::Table,
    #[serde(default)]
    http: HttpSection,
}

impl Config {
    /// Builds the credentials that `[auth]` describes, reading the password or token
    /// from the source it names. The user name defaults to `[server] mailbox`. An
    /// `oauth2` configuration gets an [`OAuthTokenProvider`] over its token cache
    /// (`default_token_cache` when `token_cache` is absent) and the `[http]` options,
    /// which refreshes the token before it expires and reads `clock` for that.
    ///
    /// # Errors
    /// [`ConfigError::SecretFromProvider`] when the section names no secret source,
    /// the errors of [`resolve_secret`], those of [`AuthConfig::oauth_config`], and
    /// [`ConfigError::Http`] when the `[http]` options cannot build a client.
    pub fn credentials(
        &self,
        default_token_cache: impl Into<PathBuf>,
        clock: Arc<dyn Clock>,
    ) -> Result<Credentials, ConfigError> {
        let username = self
            .auth
            .username
            .clone()
            .or_else(|| self.server.mailbox.clone())
            .unwrap_or_default();
        let secret = || -> Result<Secret, ConfigError> {
            let source = self
                .auth
                .secret_source()
                .ok_or(ConfigError::SecretFromProvider)?;
            resolve_secret(&source)
        };

        let credentials = match self.auth.method {
            AuthMethod::Basic => Credentials::Basic {
                username,
                password: secret()?,
            },
            AuthMethod::Ntlm => Credentials::Ntlm {
                username,
                password: secret()?,
            },
            AuthMethod::Negotiate => Credentials::Negotiate {
                username,
                password: secret()?,
            },
            AuthMethod::Bearer => Credentials::Bearer(Arc::new(StaticToken(secret()?))),
            AuthMethod::Oauth2 => {
                let oauth = self.auth.oauth_config(default_token_cache)?;
                let http = self.http.build_client()?;
                Credentials::Bearer(Arc::new(OAuthTokenProvider::new(oauth, http, clock)))
            }
        };
        Ok(credentials)
    }

    /// Parses and checks a configuration against the default capability table.
    ///
    /// # Errors
    /// Any [`ConfigError`] of the parsing, routing and auth checks.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        Self::from_toml_str_with(text, &CapabilityTable::default())
    }

    /// Reads, parses and checks a configuration file.
    ///
    /// # Errors
    /// [`ConfigError::Read`], then as [`Config::from_toml_str`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text)
    }

    /// Parses and checks a configuration against `table`, for a server whose offered
    /// backends are known.
    ///
    /// # Errors
    /// Any [`ConfigError`] of the parsing, routing and auth checks.
    pub fn from_toml_str_with(text: &str, table: &CapabilityTable) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|error| ConfigError::Syntax {
            message: error.to_string(),
        })?;

        check_server(&raw.server)?;
        check_auth(&raw.auth)?;
        let routing = parse_routing(&raw.routing)?;
        let mut warnings = routing.check(table)?;
        let (http, http_warnings) = raw.http.options()?;
        warnings.extend(http_warnings);

        Ok(Config {
            server: raw.server,
            auth: raw.auth,
            routing,
            http,
            warnings,
        })
    }
}

fn routing_value(key: &str, value: &toml::Value) -> Result<String, ConfigError> {
    match value.as_str() {
        Some(text) => Ok(text.to_owned()),
        None => Err(ConfigError::UnknownBackend {
            key: key.to_owned(),
            value: value.to_string(),
        }),
    }
}

fn parse_backend(key: &str, value: &toml::Value) -> Result<Backend, ConfigError> {
    let text = routing_value(key, value)?;
    text.parse().map_err(|_| ConfigError::UnknownBackend {
        key: key.to_owned(),
        value: text,
    })
}

fn parse_routing(table: &toml::Table) -> Result<Routing, ConfigError> {
    let preset = table
        .get("preset")
        .map(|value| routing_value("preset", value))
        .transpose()?;
    let default = table.get("default");

    let mut routing = match (&preset, default) {
        (Some(preset), Some(default)) => {
            return Err(ConfigError::PresetAndDefault {
                preset: preset.clone(),
                default: routing_value("default", default)?,
            });
        }
        (Some(preset), None) => match preset.as_str() {
            "ews" => Preset::Ews.routing(),
            "mapi" => Preset::Mapi.routing(),
            "hybrid" => Preset::Hybrid.routing(),
            _ => {
                return Err(ConfigError::UnknownPreset {
                    value: preset.clone(),
                });
            }
        },
        (None, Some(default)) => Routing::uniform(parse_backend("default", default)?),
        (None, None) => return Err(ConfigError::MissingRouting),
    };

    for (key, value) in table {
        if key == "preset" || key == "default" {
            continue;
        }
        let operation: Operation = key
            .parse()
            .map_err(|_| ConfigError::UnknownOperation { key: key.clone() })?;
        routing.set(operation, parse_backend(key, value)?);
    }
    Ok(routing)
}

fn method_name(method: AuthMethod) -> &'static str {
    match method {
        AuthMethod::Basic => "basic",
        AuthMethod::Ntlm => "ntlm",
        AuthMethod::Negotiate => "negotiate",
        AuthMethod::Bearer => "bearer",
        AuthMethod::Oauth2 => "oauth2",
    }
}

fn check_auth(auth: &AuthConfig) -> Result<(), ConfigError> {
    let method = method_name(auth.method);
    let oauth2_keys: [(&'static str, bool); 8] = [
        ("client_id", auth.client_id.is_some()),
        ("tenant", auth.tenant.is_some()),
        ("scopes", auth.scopes.is_some()),
        ("flow", auth.flow.is_some()),
        ("token_cache", auth.token_cache.is_some()),
        ("authority", auth.authority.is_some()),
        ("redirect_uri", auth.redirect_uri.is_some()),
        ("refresh_margin_secs", auth.refresh_margin_secs.is_some()),
    ];
    let password_keys: [(&'static str, bool); 3] = [
        ("username", auth.username.is_some()),
        ("password_env", auth.password_env.is_some()),
        ("password_file", auth.password_file.is_some()),
    ];
    let token_keys: [(&'static str, bool); 2] = [
        ("token_env", auth.token_env.is_some()),
        ("token_file", auth.token_file.is_some()),
    ];
    let reject = |keys: &[(&'static str, bool)]| -> Result<(), ConfigError> {
        match keys.iter().find(|(_, present)| *present) {
            Some((key, _)) => Err(ConfigError::KeyNotForMethod { key, method }),
            None => Ok(()),
        }
    };

    match auth.method {
        AuthMethod::Basic | AuthMethod::Ntlm | AuthMethod::Negotiate => {
            reject(&oauth2_keys)?;
            reject(&token_keys)?;
            if auth.username.is_none() {
                return Err(ConfigError::MissingUsername { method });
            }
            if auth.password_env.is_some() && auth.password_file.is_some() {
                return Err(ConfigError::ConflictingSecretSources {
                    env_key: "password_env",
                    file_key: "password_file",
                });
            }
        }
        AuthMethod::Bearer => {
            reject(&oauth2_keys)?;
            reject(&password_keys)?;
            if auth.token_env.is_some() && auth.token_file.is_some() {
                return Err(ConfigError::ConflictingSecretSources {
                    env_key: "token_env",
                    file_key: "token_file",
                });
            }
        }
        AuthMethod::Oauth2 => {
            reject(&password_keys)?;
            reject(&token_keys)?;
            if auth.client_id.is_none() {
                return Err(ConfigError::MissingOAuth2Key { key: "client_id" });
            }
            if auth.flow.is_none() {
                return Err(ConfigError::MissingOAuth2Key { key: "flow" });
            }
            check_oauth2_values(auth)?;
        }
    }
    Ok(())
}

fn check_oauth2_values(auth: &AuthConfig) -> Result<(), ConfigError> {
    if let Some(authority) = &auth.authority {
        parse_oauth_url("authority", authority)?;
    }
    if let Some(redirect) = &auth.redirect_uri {
        parse_oauth_url("redirect_uri", redirect)?;
    }
    if let Some(seconds) = auth.refresh_margin_secs
        && seconds > MAX_REFRESH_MARGIN_SECS
    {
        return Err(ConfigError::InvalidValue {
            section: "auth",
            key: "refresh_margin_secs",
            value: seconds.to_string(),
            reason: format!(
                "use at most {MAX_REFRESH_MARGIN_SECS} seconds, because access tokens \
                 usually live 60 to 90 minutes and a larger margin could refresh on every \
                 request"
            ),
        });
    }
    if let Some(scopes) = &auth.scopes
        && (scopes.is_empty() || scopes.iter().any(|scope| scope.trim().is_empty()))
    {
        return Err(ConfigError::InvalidValue {
            section: "auth",
            key: "scopes",
            value: format!("{scopes:?}"),
            reason: "list at least one non-empty scope, or remove the key for the default \
                     EWS scope and offline_access"
                .to_owned(),
        });
    }
    if auth
        .tenant
        .as_deref()
        .is_some_and(|tenant| tenant.is_empty() || tenant.contains(['/', '?', '#', ' ']))
    {
        return Err(ConfigError::InvalidValue {
            section: "auth",
            key: "tenant",
            value: format!("{:?}", auth.tenant.as_deref().unwrap_or_default()),
            reason: "use a directory id, a domain, \"organizations\" or \"common\"".to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
