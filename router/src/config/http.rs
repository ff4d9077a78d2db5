//! The `[http]` section: CA bundle, proxy, timeouts, TLS verification and
//! `User-Agent`, checked at load time and turned into [`HttpOptions`].

use std::path::PathBuf;
use std::time::Duration;

use exmux_core::Secret;
use exmux_core::http::{HttpOptions, ProxySetting};
use serde::{Deserialize, Serialize};

use super::{ConfigError, ConfigWarning};

/// The `proxy` value that reads the proxy environment variables (the default).
pub const PROXY_FROM_ENVIRONMENT: &str = "environment";

/// The `proxy` value that connects directly and ignores the environment.
pub const PROXY_NONE: &str = "none";

/// The `[http]` section as written in the file. [`HttpSection::options`] checks it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// A PEM file of CA certificates trusted in addition to the built-in roots.
    pub ca_bundle: Option<PathBuf>,
    /// Trust only `ca_bundle`, not the built-in roots.
    #[serde(default)]
    pub ca_bundle_only: bool,
    /// `"environment"` (default), `"none"`, or an `http://` or `https://` proxy URL.
    pub proxy: Option<String>,
    /// Hosts reached without the proxy URL, in `NO_PROXY` syntax.
    pub no_proxy: Option<String>,
    /// The total time for one request, in seconds. Absent means no limit.
    pub timeout_secs: Option<u64>,
    /// The time to open a connection, in seconds (default 30).
    pub connect_timeout_secs: Option<u64>,
    /// Accept any server certificate. Off by default.
    #[serde(default)]
    pub danger_accept_invalid_certs: bool,
    /// The `User-Agent` header (default `exmux/<version>`).
    pub user_agent: Option<String>,
}

fn invalid(key: &'static str, value: String, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidValue {
        section: "http",
        key,
        value,
        reason: reason.into(),
    }
}

impl HttpSection {
    /// Checks the section and builds the [`HttpOptions`] it describes, with the
    /// warnings it earns (turning off certificate verification).
    ///
    /// # Errors
    /// [`ConfigError::InvalidValue`] naming the key and value. It is raised for an empty
    /// `ca_bundle`, `ca_bundle_only` without `ca_bundle`, or a proxy that is not
    /// `environment`, `none` or an HTTP(S) URL. It is also raised for a proxy URL with a
    /// password, `no_proxy` without a proxy URL, a zero timeout, and a `user_agent` that
    /// is empty or not a header value.
    pub fn options(&self) -> Result<(HttpOptions, Vec<ConfigWarning>), ConfigError> {
        let mut options = HttpOptions::default();
        let mut warnings = Vec::new();

        if let Some(path) = &self.ca_bundle
            && path.as_os_str().is_empty()
        {
            return Err(invalid(
                "ca_bundle",
                "\"\"".to_owned(),
                "set it to a PEM file of CA certificates or remove the key",
            ));
        }
        if self.ca_bundle_only && self.ca_bundle.is_none() {
            return Err(invalid(
                "ca_bundle_only",
                "true".to_owned(),
                "it needs ca_bundle, or no server certificate could be verified",
            ));
        }
        options.ca_bundle = self.ca_bundle.clone();
        options.ca_bundle_only = self.ca_bundle_only;

        options.proxy = self.proxy_setting()?;

        if let Some(seconds) = self.timeout_secs {
            options.timeout = Some(positive_seconds("timeout_secs", seconds)?);
        }
        if let Some(seconds) = self.connect_timeout_secs {
            options.connect_timeout = positive_seconds("connect_timeout_secs", seconds)?;
        }

        if self.danger_accept_invalid_certs {
            warnings.push(ConfigWarning::CertificateVerificationDisabled);
        }
        options.danger_accept_invalid_certs = self.danger_accept_invalid_certs;

        if let Some(agent) = &self.user_agent {
            check_user_agent(agent)?;
            options.user_agent = agent.clone();
        }
        Ok((options, warnings))
    }

    fn proxy_setting(&self) -> Result<ProxySetting, ConfigError> {
        let proxy = self.proxy.as_deref().unwrap_or(PROXY_FROM_ENVIRONMENT);
        let setting = match proxy {
            PROXY_FROM_ENVIRONMENT => ProxySetting::FromEnvironment,
            PROXY_NONE => ProxySetting::Disabled,
            url => {
                check_proxy_url(url)?;
                ProxySetting::Url {
                    url: Secret::new(url),
                    no_proxy: None,
                }
            }
        };

        let Some(no_proxy) = &self.no_proxy else {
            return Ok(setting);
        };
        let ProxySetting::Url { url, .. } = setting else {
            return Err(invalid(
                "no_proxy",
                format!("{no_proxy:?}"),
                format!(
                    "it applies only to a proxy URL; with proxy = {proxy:?} set the NO_PROXY \
                     environment variable instead, or remove the key"
                ),
            ));
        };
        if no_proxy.trim().is_empty() {
            return Err(invalid(
                "no_proxy",
                format!("{no_proxy:?}"),
                "list host names, .domain suffixes, IP addresses or CIDR ranges, or remove the key",
            ));
        }
        Ok(ProxySetting::Url {
            url,
            no_proxy: Some(no_proxy.clone()),
        })
    }
}

/// Checks a proxy URL. The value in an error has any `user:password@` replaced, so a
/// password typed into the file never reaches a log.
fn check_proxy_url(text: &str) -> Result<(), ConfigError> {
    let redacted_value = format!("{:?}", redact_userinfo(text));
    let usage = "use \"environment\", \"none\" or a URL such as \"http://proxy.example.test:3128\"";
    let Ok(url) = url::Url::parse(text) else {
        return Err(invalid(
            "proxy",
            redacted_value,
            format!("not a URL: {usage}"),
        ));
    };

    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(
            "proxy",
            redacted_value,
            format!("the scheme {:?} is not supported: {usage}", url.scheme()),
        ));
    }
    if url.password().is_some() {
        return Err(invalid(
            "proxy",
            redacted_value,
            "a password does not belong in the configuration file: put the whole URL in \
             HTTPS_PROXY and set proxy = \"environment\"",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(
            "proxy",
            redacted_value,
            format!("the URL names no host: {usage}"),
        ));
    }
    Ok(())
}

/// Replaces whatever precedes the last `@` of the authority with `REDACTED`, also in a
/// value that is not a URL but may still carry `user:password@`.
fn redact_userinfo(text: &str) -> String {
    let (scheme, rest) = text.split_once("://").unwrap_or(("", text));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = match authority.rsplit_once('@') {
        Some((_, host)) => format!("REDACTED@{host}"),
        None => authority.to_owned(),
    };
    if scheme.is_empty() {
        format!("{host}{path}")
    } else {
        format!("{scheme}://{host}{path}")
    }
}

fn positive_seconds(key: &'static str, seconds: u64) -> Result<Duration, ConfigError> {
    if seconds == 0 {
        return Err(invalid(
            key,
            "0".to_owned(),
            "set a number of seconds of at least 1",
        ));
    }
    Ok(Duration::from_secs(seconds))
}

/// Checks that `agent` is a header value (RFC 9110 section 5.5): visible ASCII, spaces
/// and tabs.
fn check_user_agent(agent: &str) -> Result<(), ConfigError> {
    if agent.trim().is_empty() {
        return Err(invalid(
            "user_agent",
            format!("{agent:?}"),
            "set a product token such as \"example-sync/1.0\" or remove the key",
        ));
    }
    if let Some(bad) = agent
        .chars()
        .find(|c| !(c.is_ascii_graphic() || *c == ' ' || *c == '\t'))
    {
        return Err(invalid(
            "user_agent",
            format!("{agent:?}"),
            format!("the character {bad:?} cannot appear in an HTTP header: use printable ASCII"),
        ));
    }
    Ok(())
}
