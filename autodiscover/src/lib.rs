//! Exchange autodiscover for exmux: from an e-mail address to the EWS and MAPI/HTTP
//! endpoints and the legacy DN.
//!
//! [`Autodiscover::discover`] tries the methods in the order Outlook uses: POX on the
//! domain, POX on `autodiscover.` + domain, the unauthenticated HTTP redirect and the DNS
//! SRV record. SOAP and JSON v2 follow. It returns the first response with an EWS or
//! MAPI/HTTP URL together with every attempt made. The codecs ([`pox`], [`soap`],
//! [`json`]) are sans-I/O, and [`client`] sends the requests.
//!
//! Credentials travel only over HTTPS, only to hosts in the user's domain unless the
//! caller's confirmation callback approves another host, and redirects are bounded.

pub mod client;
pub mod json;
mod owned;
pub mod pox;
pub mod soap;
pub mod srv;
mod xml;

use std::fmt;

use serde::Serialize;

pub use client::{Autodiscover, AutodiscoverOptions, LoopbackMap, RedirectConfirmation};
pub use srv::{SrvRecord, SrvResolver, SystemResolver};

/// An autodiscover method, in the order [`Autodiscover`] tries them by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Method {
    /// POX at `https://{domain}/autodiscover/autodiscover.xml`.
    PoxDomain,
    /// POX at `https://autodiscover.{domain}/autodiscover/autodiscover.xml`.
    PoxAutodiscoverHost,
    /// An unauthenticated GET of `http://autodiscover.{domain}/autodiscover/autodiscover.xml`
    /// whose HTTPS redirect target then gets the POX request.
    HttpRedirect,
    /// POX at the host named by the `_autodiscover._tcp.{domain}` SRV record.
    DnsSrv,
    /// SOAP GetUserSettings at `autodiscover.svc` on the domain and `autodiscover.` host.
    Soap,
    /// The JSON v2 endpoint `autodiscover.json`, asked for EWS and MapiHttp.
    JsonV2,
}

impl Method {
    /// Every method in Outlook's order, then SOAP and JSON v2.
    pub const DEFAULT_ORDER: [Method; 6] = [
        Method::PoxDomain,
        Method::PoxAutodiscoverHost,
        Method::HttpRedirect,
        Method::DnsSrv,
        Method::Soap,
        Method::JsonV2,
    ];
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::PoxDomain => "POX on the domain",
            Self::PoxAutodiscoverHost => "POX on the autodiscover host",
            Self::HttpRedirect => "HTTP redirect",
            Self::DnsSrv => "DNS SRV",
            Self::Soap => "SOAP",
            Self::JsonV2 => "JSON v2",
        })
    }
}

/// A protocol the server offers for the mailbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Protocol {
    /// Exchange Web Services.
    Ews,
    /// MAPI over HTTP (MS-OXCMAPIHTTP).
    MapiHttp,
    /// RPC over HTTP (`EXPR` or `EXHTTP` blocks); exmux does not speak it.
    RpcOverHttp,
    /// RPC inside the organisation (`EXCH` block); exmux does not speak it.
    RpcInternal,
}

/// The settings one autodiscover response carries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// The user's display name.
    pub display_name: Option<String>,
    /// The user's legacy distinguished name, the UserDn of a MAPI/HTTP Connect.
    pub legacy_dn: Option<String>,
    /// The primary SMTP address the server resolved the request to.
    pub smtp_address: Option<String>,
    /// The EWS endpoint.
    pub ews_url: Option<String>,
    /// The MAPI/HTTP mailbox endpoint (`/mapi/emsmdb/?MailboxId=...`).
    pub mapi_emsmdb_url: Option<String>,
    /// The MAPI/HTTP address book endpoint (`/mapi/nspi/?MailboxId=...`).
    pub mapi_nspi_url: Option<String>,
    /// The protocols the response offers.
    pub protocols: Vec<Protocol>,
}

impl Settings {
    /// Returns true when the response has an endpoint exmux can use.
    pub fn is_usable(&self) -> bool {
        self.ews_url.is_some() || self.mapi_emsmdb_url.is_some()
    }
}

/// One request autodiscover made and how it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// The method the request belongs to.
    pub method: Method,
    /// The URL as addressed (before any loopback mapping).
    pub url: String,
    /// The e-mail address asked about.
    pub address: String,
    /// `None` when the request produced the result; otherwise why it did not.
    pub failure: Option<String>,
}

/// The origin of a result: method, URL and redirects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Source {
    /// The method that produced the response.
    pub method: Method,
    /// The URL that returned the settings.
    pub url: String,
    /// The redirects followed on the way, in order (URLs and `mailto:` addresses).
    pub redirects: Vec<String>,
}

/// The result of a successful discovery, serializable for `exmux discover --json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Discovery {
    /// The address the caller asked about.
    pub address: String,
    /// The address the response is for, after any address redirect.
    pub effective_address: String,
    /// The settings found.
    #[serde(flatten)]
    pub settings: Settings,
    /// The `MailboxId` query value of the emsmdb URL.
    pub mailbox_id: Option<String>,
    /// The origin of the settings.
    pub source: Source,
    /// Every request made, the successful one last.
    pub attempts: Vec<Attempt>,
}

/// A discovery failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoverError {
    /// The address is not of the form `local@domain`.
    #[error("invalid e-mail address {address:?}: expected local-part@domain")]
    InvalidAddress {
        /// The address given.
        address: String,
    },
    /// No method produced a usable response.
    #[error("autodiscover found no settings for {address}; attempts: {}", summarize(.attempts))]
    NotFound {
        /// The address asked about.
        address: String,
        /// Every request made and why it failed.
        attempts: Vec<Attempt>,
    },
}

impl DiscoverError {
    /// Returns the attempts made, empty for an invalid address.
    pub fn attempts(&self) -> &[Attempt] {
        match self {
            Self::NotFound { attempts, .. } => attempts,
            Self::InvalidAddress { .. } => &[],
        }
    }
}

fn summarize(attempts: &[Attempt]) -> String {
    if attempts.is_empty() {
        return "none".to_owned();
    }
    attempts
        .iter()
        .map(|attempt| {
            format!(
                "{} {}: {}",
                attempt.method,
                attempt.url,
                attempt.failure.as_deref().unwrap_or("ok")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Returns the `MailboxId` query value of a MAPI/HTTP URL.
pub fn mailbox_id(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    parsed
        .query_pairs()
        .find(|(key, _)| key.eq_ignore_ascii_case("MailboxId"))
        .map(|(_, value)| value.into_owned())
}
