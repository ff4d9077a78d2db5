//! The autodiscover driver: sends the requests of each method, follows redirects under
//! the credential policy, and records every attempt.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use exmux_core::Secret;
use exmux_core::auth::ntlm::HandshakeState;
use exmux_core::auth::{
    AuthScheme, Challenge, Credentials, NtlmHandshake, basic_header, bearer_header,
    choose_challenge, parse_challenges,
};
use exmux_core::http::ProxySetting;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HOST, LOCATION, WWW_AUTHENTICATE};
use tokio::time::Instant;
use url::Url;

use crate::owned::{OwnedConnection, OwnedRequest};
use crate::pox::{self, PoxAnswer};
use crate::soap::{self, SoapAnswer};
use crate::srv::{self, SrvResolver, SystemResolver};
use crate::{
    Attempt, DiscoverError, Discovery, Method, Protocol, Settings, Source, json, mailbox_id,
};

/// The default bound on redirects of all kinds in one discovery, as in Outlook.
pub const DEFAULT_MAX_REDIRECTS: usize = 10;

/// The question put to the confirmation callback.
#[derive(Clone, Debug)]
pub struct RedirectConfirmation {
    /// The user's address.
    pub address: String,
    /// The user's domain.
    pub domain: String,
    /// The host outside that domain that would receive the credentials.
    pub host: String,
    /// The full URL.
    pub url: String,
}

/// The callback that approves sending credentials to a host outside the user's domain.
pub type ConfirmRedirect = Arc<dyn Fn(&RedirectConfirmation) -> bool + Send + Sync>;

/// Maps host names to loopback base URLs, for tests and the emulator. When set, every
/// request goes to the mapped base URL with the original path, query and `Host` header,
/// and a host missing from the map is never contacted.
#[derive(Clone, Debug, Default)]
pub struct LoopbackMap {
    entries: Vec<(String, Url)>,
}

impl LoopbackMap {
    /// Creates an empty map, under which every request fails without network traffic.
    pub fn new() -> Self {
        Self::default()
    }

    /// Maps `host` (without port, case-insensitive) to `base`, such as
    /// `http://127.0.0.1:8080`.
    pub fn insert(&mut self, host: &str, base: Url) -> &mut Self {
        self.entries.push((host.to_ascii_lowercase(), base));
        self
    }

    fn resolve(&self, logical: &Url) -> Result<Url, String> {
        let host = logical.host_str().unwrap_or_default().to_ascii_lowercase();
        let (_, base) = self
            .entries
            .iter()
            .find(|(name, _)| *name == host)
            .ok_or_else(|| format!("host {host} is not in the loopback map"))?;
        let mut physical = base.clone();
        physical.set_path(logical.path());
        physical.set_query(logical.query());
        Ok(physical)
    }
}

/// Options of [`Autodiscover`].
#[derive(Clone)]
pub struct AutodiscoverOptions {
    /// The credentials for POX and SOAP. JSON v2 and the HTTP redirect GET are anonymous.
    pub credentials: Option<Credentials>,
    /// The methods to try, in order.
    pub methods: Vec<Method>,
    /// The maximum number of redirects followed in one discovery.
    pub max_redirects: usize,
    /// The time allowed for each request.
    pub request_timeout: Duration,
    /// The time allowed for the whole discovery.
    pub deadline: Duration,
    /// The SRV resolver.
    pub resolver: Arc<dyn SrvResolver>,
    /// When set, requests go to loopback base URLs instead of the named hosts.
    pub loopback: Option<LoopbackMap>,
    /// Approves credentials for a host outside the user's domain. Without it such hosts
    /// are refused.
    pub confirm_redirect: Option<ConfirmRedirect>,
    /// The TLS settings of the connections that NTLM and Negotiate open for their
    /// handshake, such as [`exmux_core::http::HttpOptions::tls_config`] of the options
    /// the shared client was built from. `None` verifies servers against the platform's
    /// roots only.
    pub owned_tls: Option<Arc<rustls::ClientConfig>>,
    /// The proxy those connections tunnel through (`CONNECT`), normally the `proxy` of
    /// the options the shared client was built from. The default follows the proxy
    /// environment variables, as reqwest does.
    pub owned_proxy: ProxySetting,
}

impl fmt::Debug for AutodiscoverOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AutodiscoverOptions")
            .field("credentials", &self.credentials)
            .field("methods", &self.methods)
            .field("max_redirects", &self.max_redirects)
            .field("request_timeout", &self.request_timeout)
            .field("deadline", &self.deadline)
            .field("resolver", &self.resolver)
            .field("loopback", &self.loopback)
            .field("confirm_redirect", &self.confirm_redirect.is_some())
            .field("owned_tls", &self.owned_tls.is_some())
            .field("owned_proxy", &self.owned_proxy)
            .finish()
    }
}

impl Default for AutodiscoverOptions {
    fn default() -> Self {
        Self {
            credentials: None,
            methods: Method::DEFAULT_ORDER.to_vec(),
            max_redirects: DEFAULT_MAX_REDIRECTS,
            request_timeout: Duration::from_secs(30),
            deadline: Duration::from_secs(120),
            resolver: Arc::new(SystemResolver),
            loopback: None,
            confirm_redirect: None,
            owned_tls: None,
            owned_proxy: ProxySetting::FromEnvironment,
        }
    }
}

/// The autodiscover client.
#[derive(Debug, Clone)]
pub struct Autodiscover {
    http: reqwest::Client,
    options: AutodiscoverOptions,
}

/// The outcome of one candidate URL.
enum Outcome {
    Found(Settings),
    RedirectAddress(String),
    /// The reason is already in the attempt list.
    Failed,
}

/// The mutable state of one discovery.
struct Run {
    /// The user's address as given, and its domain: the trust root for credentials.
    address: String,
    domain: String,
    /// The address currently asked about.
    current: String,
    attempts: Vec<Attempt>,
    redirects: Vec<String>,
    visited: HashSet<String>,
    approved_hosts: HashSet<String>,
    started: Instant,
}

fn domain_of(address: &str) -> Option<String> {
    let (local, domain) = address.rsplit_once('@')?;
    let valid = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains(['/', '@', ':', '?', '#', ' '])
        && !domain.starts_with('.')
        && !domain.ends_with('.');
    valid.then(|| domain.to_ascii_lowercase())
}

fn describe(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("timed out after {} ms", timeout.as_millis());
    }
    exmux_core::http::describe_error(error)
}

/// Parses every `WWW-Authenticate` value of a `401`.
fn challenges_of(headers: &reqwest::header::HeaderMap) -> Result<Vec<Challenge>, String> {
    let values: Vec<&str> = headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    parse_challenges(values).map_err(|error| error.to_string())
}

/// Returns the `Host` header value of `url`: its host, and its port when one is given.
fn host_header(url: &Url) -> String {
    match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    }
}

impl Autodiscover {
    /// Creates a client over `http`, which should come from
    /// [`exmux_core::http::HttpOptions::build_client`] so that it follows no redirects by
    /// itself.
    pub fn new(http: reqwest::Client, options: AutodiscoverOptions) -> Self {
        Self { http, options }
    }

    /// Discovers the settings of `address`.
    ///
    /// # Errors
    ///
    /// [`DiscoverError::InvalidAddress`] for an address without a domain, and
    /// [`DiscoverError::NotFound`] with every attempt and its reason when no method
    /// produced an EWS or MAPI/HTTP URL.
    pub async fn discover(&self, address: &str) -> Result<Discovery, DiscoverError> {
        let domain = domain_of(address).ok_or_else(|| DiscoverError::InvalidAddress {
            address: address.to_owned(),
        })?;
        let mut run = Run {
            address: address.to_owned(),
            domain,
            current: address.to_owned(),
            attempts: Vec::new(),
            redirects: Vec::new(),
            visited: HashSet::new(),
            approved_hosts: HashSet::new(),
            started: Instant::now(),
        };
        run.visited
            .insert(format!("mailto:{}", address.to_ascii_lowercase()));

        'address: loop {
            for method in self.options.methods.clone() {
                match self.try_method(&mut run, method).await {
                    Some(Outcome::Found(settings)) => return Ok(self.finish(run, settings)),
                    Some(Outcome::RedirectAddress(next)) => {
                        if let Err(reason) = self.redirect_address(&mut run, &next) {
                            if let Some(last) = run.attempts.last_mut() {
                                last.failure = Some(reason);
                            }
                            break 'address;
                        }
                        continue 'address;
                    }
                    Some(Outcome::Failed) | None => {}
                }
                if self.deadline_passed(&run) {
                    break 'address;
                }
            }
            break;
        }

        Err(DiscoverError::NotFound {
            address: run.address,
            attempts: run.attempts,
        })
    }

    fn finish(&self, run: Run, settings: Settings) -> Discovery {
        let (method, url) = run
            .attempts
            .last()
            .map(|attempt| (attempt.method, attempt.url.clone()))
            .unwrap_or((Method::PoxDomain, String::new()));
        tracing::debug!(address = %run.address, %method, %url, "autodiscover succeeded");
        Discovery {
            address: run.address,
            effective_address: run.current,
            mailbox_id: settings.mapi_emsmdb_url.as_deref().and_then(mailbox_id),
            settings,
            source: Source {
                method,
                url,
                redirects: run.redirects,
            },
            attempts: run.attempts,
        }
    }

    fn deadline_passed(&self, run: &Run) -> bool {
        run.started.elapsed() >= self.options.deadline
    }

    fn redirect_address(&self, run: &mut Run, next: &str) -> Result<(), String> {
        if domain_of(next).is_none() {
            return Err(format!("redirect to the invalid address {next:?}"));
        }
        let key = format!("mailto:{}", next.to_ascii_lowercase());
        if !run.visited.insert(key.clone()) {
            return Err(format!("redirect loop: {next} was already asked about"));
        }
        self.count_redirect(run, key)?;
        run.current = next.to_owned();
        Ok(())
    }

    fn count_redirect(&self, run: &mut Run, target: String) -> Result<(), String> {
        if run.redirects.len() >= self.options.max_redirects {
            return Err(format!(
                "more than {} redirects; stopped at {target}",
                self.options.max_redirects
            ));
        }
        run.redirects.push(target);
        Ok(())
    }

    /// Runs one method over its candidate URLs. `None` means the method had no candidate.
    async fn try_method(&self, run: &mut Run, method: Method) -> Option<Outcome> {
        let domain = domain_of(&run.current).unwrap_or_else(|| run.domain.clone());
        let mut last = None;
        let candidates: Vec<String> = match method {
            Method::PoxDomain => vec![format!("https://{domain}{}", pox::PATH)],
            Method::PoxAutodiscoverHost => {
                vec![format!("https://autodiscover.{domain}{}", pox::PATH)]
            }
            Method::HttpRedirect => {
                return Some(self.http_redirect(run, &domain).await);
            }
            Method::DnsSrv => {
                return self.dns_srv(run, &domain).await;
            }
            Method::Soap => vec![
                format!("https://{domain}{}", soap::PATH),
                format!("https://autodiscover.{domain}{}", soap::PATH),
            ],
            Method::JsonV2 => vec![
                format!("https://{domain}"),
                format!("https://autodiscover.{domain}"),
            ],
        };

        for candidate in candidates {
            if self.deadline_passed(run) {
                break;
            }
            let outcome = match method {
                Method::Soap => self.soap_at(run, candidate).await,
                Method::JsonV2 => self.json_at(run, &candidate).await,
                _ => self.pox_at(run, method, candidate).await,
            };
            if matches!(outcome, Outcome::Found(_) | Outcome::RedirectAddress(_)) {
                return Some(outcome);
            }
            last = Some(outcome);
        }
        last
    }

    fn record(&self, run: &mut Run, method: Method, url: &str, failure: Option<String>) {
        if let Some(reason) = &failure {
            tracing::debug!(%method, url, reason, "autodiscover attempt failed");
        }
        run.attempts.push(Attempt {
            method,
            url: url.to_owned(),
            address: run.current.clone(),
            failure,
        });
    }

    fn fail(&self, run: &mut Run, method: Method, url: &str, reason: String) -> Outcome {
        self.record(run, method, url, Some(reason));
        Outcome::Failed
    }

    /// Checks that credentials may go to `url`: HTTPS only, and a host inside the user's
    /// domain or approved by the confirmation callback.
    fn check_credential_target(&self, run: &mut Run, url: &Url) -> Result<(), String> {
        if self.options.credentials.is_none() {
            return Ok(());
        }
        if url.scheme() != "https" {
            return Err(format!(
                "refused to send credentials over plain HTTP to {url}"
            ));
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let inside = host == run.domain || host.ends_with(&format!(".{}", run.domain));
        if inside || run.approved_hosts.contains(&host) {
            return Ok(());
        }
        let question = RedirectConfirmation {
            address: run.address.clone(),
            domain: run.domain.clone(),
            host: host.clone(),
            url: url.to_string(),
        };
        let approved = self
            .options
            .confirm_redirect
            .as_ref()
            .is_some_and(|confirm| confirm(&question));
        if !approved {
            return Err(format!(
                "refused to send credentials to {host}, which is outside {}; the redirect was not confirmed",
                run.domain
            ));
        }
        tracing::debug!(%host, "credentials approved for a host outside the user's domain");
        run.approved_hosts.insert(host);
        Ok(())
    }

    /// Returns the URL to connect to and the `Host` header value for `logical`.
    fn physical(&self, logical: &Url) -> Result<(Url, Option<String>), String> {
        let Some(map) = &self.options.loopback else {
            return Ok((logical.clone(), None));
        };
        let physical = map.resolve(logical)?;
        Ok((physical, Some(host_header(logical))))
    }

    fn remaining(&self, run: &Run) -> Duration {
        let left = self.options.deadline.saturating_sub(run.started.elapsed());
        left.min(self.options.request_timeout)
    }

    /// Sends one request. Basic and bearer credentials go over the shared client;
    /// NTLM and Negotiate run their handshake on a connection opened for this request.
    async fn send(
        &self,
        run: &Run,
        method: reqwest::Method,
        logical: &Url,
        body: Option<(&'static str, String)>,
        authenticate: bool,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, Vec<u8>), String> {
        let (physical, host) = self.physical(logical)?;
        let timeout = self.remaining(run);
        if timeout.is_zero() {
            return Err("the autodiscover deadline passed".to_owned());
        }

        let credentials = if authenticate {
            self.options.credentials.as_ref()
        } else {
            None
        };
        let authorization: Option<Secret> = match credentials {
            None => None,
            Some(Credentials::Basic { username, password }) => {
                Some(basic_header(username, password))
            }
            Some(Credentials::Bearer(provider)) => Some(bearer_header(
                &provider
                    .access_token()
                    .await
                    .map_err(|error| error.to_string())?,
            )),
            Some(handshake_credentials) => {
                let host = host.unwrap_or_else(|| host_header(logical));
                let request = OwnedRequest {
                    method: &method,
                    physical: &physical,
                    host: &host,
                    body: body.as_ref().map(|(kind, text)| (*kind, text.as_str())),
                };
                return self
                    .send_with_handshake(&request, handshake_credentials, timeout)
                    .await;
            }
        };

        let mut request = self
            .http
            .request(method.clone(), physical.clone())
            .timeout(timeout);
        if let Some(host) = &host {
            request = request.header(HOST, host);
        }
        if let Some((content_type, text)) = &body {
            request = request
                .header(CONTENT_TYPE, *content_type)
                .body(text.clone());
        }
        if let Some(value) = &authorization {
            let mut header = reqwest::header::HeaderValue::from_str(value.expose())
                .map_err(|_| "the Authorization value is not a valid header".to_owned())?;
            header.set_sensitive(true);
            request = request.header(AUTHORIZATION, header);
        }

        let response = request
            .send()
            .await
            .map_err(|error| describe(&error, timeout))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| describe(&error, timeout))?
            .to_vec();
        if status != StatusCode::UNAUTHORIZED {
            return Ok((status, headers, bytes));
        }
        if credentials.is_none() {
            return Err("HTTP 401: the server requires credentials".to_owned());
        }
        let challenges = challenges_of(&headers)?;
        if let Some(credentials) = credentials {
            // An error here names the offered schemes when none fits the credentials.
            choose_challenge(&challenges, credentials).map_err(|error| error.to_string())?;
        }
        Err("HTTP 401: the server rejected the credentials".to_owned())
    }

    /// Runs an NTLM or Negotiate handshake for one request on a connection opened for
    /// it, and returns the response to the authenticated request.
    async fn send_with_handshake(
        &self,
        request: &OwnedRequest<'_>,
        credentials: &Credentials,
        timeout: Duration,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, Vec<u8>), String> {
        let mut connection = OwnedConnection::open(
            request.physical,
            self.options.owned_tls.as_ref(),
            &self.options.owned_proxy,
            timeout,
        )
        .await?;
        let scheme = match credentials {
            Credentials::Negotiate { .. } => AuthScheme::Negotiate,
            _ => AuthScheme::Ntlm,
        };
        let mut handshake = NtlmHandshake::from_credentials(scheme, credentials)
            .map_err(|error| error.to_string())?;
        let mut authorization = handshake
            .negotiate_header()
            .map_err(|error| error.to_string())?;

        // At most three legs. When the server responds to a Negotiate start by offering
        // only NTLM, the handshake restarts once as NTLM on the same connection. Then the
        // AUTHENTICATE token replies to the CHALLENGE.
        let mut restarted = false;
        for _leg in 0..3 {
            let response = connection
                .exchange(request, Some(&authorization), timeout)
                .await?;
            if response.status != StatusCode::UNAUTHORIZED {
                return Ok((response.status, response.headers, response.body));
            }

            let challenges = challenges_of(&response.headers)?;
            let (chosen, challenge) =
                choose_challenge(&challenges, credentials).map_err(|error| error.to_string())?;
            if handshake.scheme() == chosen
                && challenge.token68.is_some()
                && handshake.state() == HandshakeState::ExpectChallenge
            {
                authorization = handshake
                    .authenticate_header(&challenges)
                    .map_err(|error| error.to_string())?;
            } else if handshake.scheme() != chosen && !restarted {
                tracing::debug!(from = %handshake.scheme(), to = %chosen, "restarting the handshake with the offered scheme");
                handshake = NtlmHandshake::from_credentials(chosen, credentials)
                    .map_err(|error| error.to_string())?;
                authorization = handshake
                    .negotiate_header()
                    .map_err(|error| error.to_string())?;
                restarted = true;
            } else {
                break;
            }
        }
        Err("HTTP 401: the server rejected the credentials".to_owned())
    }

    /// Posts the POX request to `url`, following HTTP and `redirectUrl` redirects.
    async fn pox_at(&self, run: &mut Run, method: Method, url: String) -> Outcome {
        let mut url = url;
        loop {
            let logical = match Url::parse(&url) {
                Ok(logical) => logical,
                Err(error) => return self.fail(run, method, &url, format!("invalid URL: {error}")),
            };
            if let Err(reason) = self.check_credential_target(run, &logical) {
                return self.fail(run, method, &url, reason);
            }

            let body = pox::request_body(&run.current);
            let sent = self
                .send(
                    run,
                    reqwest::Method::POST,
                    &logical,
                    Some(("text/xml; charset=utf-8", body)),
                    true,
                )
                .await;
            let (status, headers, bytes) = match sent {
                Ok(answer) => answer,
                Err(reason) => return self.fail(run, method, &url, reason),
            };

            let next = if status.is_redirection() {
                match headers.get(LOCATION).and_then(|value| value.to_str().ok()) {
                    Some(location) => match logical.join(location) {
                        Ok(target) => target.to_string(),
                        Err(error) => {
                            return self.fail(
                                run,
                                method,
                                &url,
                                format!("invalid redirect Location: {error}"),
                            );
                        }
                    },
                    None => {
                        return self.fail(
                            run,
                            method,
                            &url,
                            format!("HTTP {status} without a Location"),
                        );
                    }
                }
            } else if status != StatusCode::OK {
                return self.fail(run, method, &url, format!("HTTP {status}"));
            } else {
                match pox::parse_response(&bytes) {
                    Ok(PoxAnswer::Settings(settings)) if settings.is_usable() => {
                        self.record(run, method, &url, None);
                        return Outcome::Found(settings);
                    }
                    Ok(PoxAnswer::Settings(_)) => {
                        return self.fail(
                            run,
                            method,
                            &url,
                            "the answer has no EWS or MAPI/HTTP URL".to_owned(),
                        );
                    }
                    Ok(PoxAnswer::RedirectAddress(address)) => {
                        self.record(
                            run,
                            method,
                            &url,
                            Some(format!("redirected to address {address}")),
                        );
                        return Outcome::RedirectAddress(address);
                    }
                    Ok(PoxAnswer::RedirectUrl(target)) => target,
                    Err(reason) => return self.fail(run, method, &url, reason),
                }
            };

            if !run.visited.insert(next.clone()) {
                return self.fail(
                    run,
                    method,
                    &url,
                    format!("redirect loop: {next} was already visited"),
                );
            }
            if let Err(reason) = self.count_redirect(run, next.clone()) {
                return self.fail(run, method, &url, reason);
            }
            self.record(run, method, &url, Some(format!("redirected to {next}")));
            url = next;
        }
    }

    /// The HTTP redirect method: an anonymous GET over plain HTTP whose redirect must lead
    /// to an HTTPS URL, which then gets the POX request.
    async fn http_redirect(&self, run: &mut Run, domain: &str) -> Outcome {
        let method = Method::HttpRedirect;
        let url = format!("http://autodiscover.{domain}{}", pox::PATH);
        let Ok(logical) = Url::parse(&url) else {
            return self.fail(run, method, &url, "invalid URL".to_owned());
        };

        let (status, headers, _) = match self
            .send(run, reqwest::Method::GET, &logical, None, false)
            .await
        {
            Ok(answer) => answer,
            Err(reason) => return self.fail(run, method, &url, reason),
        };
        if !status.is_redirection() {
            return self.fail(
                run,
                method,
                &url,
                format!("HTTP {status} instead of a redirect"),
            );
        }

        let Some(target) = headers
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|location| logical.join(location).ok())
        else {
            return self.fail(
                run,
                method,
                &url,
                format!("HTTP {status} without a valid Location"),
            );
        };
        if target.scheme() != "https" {
            return self.fail(
                run,
                method,
                &url,
                format!("refused the redirect to plain HTTP {target}"),
            );
        }

        let next = target.to_string();
        if let Err(reason) = self.count_redirect(run, next.clone()) {
            return self.fail(run, method, &url, reason);
        }
        run.visited.insert(next.clone());
        self.record(run, method, &url, Some(format!("redirected to {next}")));
        self.pox_at(run, method, next).await
    }

    async fn dns_srv(&self, run: &mut Run, domain: &str) -> Option<Outcome> {
        let method = Method::DnsSrv;
        let name = format!("_autodiscover._tcp.{domain}");
        // A loopback map keeps every request on this machine, and a query to the system's
        // DNS servers would not be.
        if self.options.loopback.is_some() && self.options.resolver.uses_system_dns() {
            return Some(
                self.fail(
                    run,
                    method,
                    &format!("dns:{name}"),
                    "skipped: the loopback map is set, and this lookup would use the system's \
                 DNS servers"
                        .to_owned(),
                ),
            );
        }
        let records = match self.options.resolver.lookup_srv(&name).await {
            Ok(records) => srv::sort_records(records),
            Err(reason) => return Some(self.fail(run, method, &format!("dns:{name}"), reason)),
        };
        if records.is_empty() {
            return Some(self.fail(
                run,
                method,
                &format!("dns:{name}"),
                "no SRV record".to_owned(),
            ));
        }

        let mut last = None;
        for record in records {
            let url = if record.port == 443 {
                format!("https://{}{}", record.target, pox::PATH)
            } else {
                format!("https://{}:{}{}", record.target, record.port, pox::PATH)
            };
            let outcome = self.pox_at(run, method, url).await;
            if matches!(outcome, Outcome::Found(_) | Outcome::RedirectAddress(_)) {
                return Some(outcome);
            }
            last = Some(outcome);
        }
        last
    }

    async fn soap_at(&self, run: &mut Run, url: String) -> Outcome {
        let method = Method::Soap;
        let mut url = url;
        loop {
            let logical = match Url::parse(&url) {
                Ok(logical) => logical,
                Err(error) => return self.fail(run, method, &url, format!("invalid URL: {error}")),
            };
            if let Err(reason) = self.check_credential_target(run, &logical) {
                return self.fail(run, method, &url, reason);
            }
            let body = soap::request_body(&run.current, &url);
            let (status, _, bytes) = match self
                .send(
                    run,
                    reqwest::Method::POST,
                    &logical,
                    Some(("text/xml; charset=utf-8", body)),
                    true,
                )
                .await
            {
                Ok(answer) => answer,
                Err(reason) => return self.fail(run, method, &url, reason),
            };
            if status != StatusCode::OK {
                return self.fail(run, method, &url, format!("HTTP {status}"));
            }
            let next = match soap::parse_response(&bytes) {
                Ok(SoapAnswer::Settings(settings)) if settings.is_usable() => {
                    self.record(run, method, &url, None);
                    return Outcome::Found(settings);
                }
                Ok(SoapAnswer::Settings(_)) => {
                    return self.fail(run, method, &url, "the answer has no EWS URL".to_owned());
                }
                Ok(SoapAnswer::RedirectAddress(address)) => {
                    self.record(
                        run,
                        method,
                        &url,
                        Some(format!("redirected to address {address}")),
                    );
                    return Outcome::RedirectAddress(address);
                }
                Ok(SoapAnswer::RedirectUrl(target)) => target,
                Err(reason) => return self.fail(run, method, &url, reason),
            };
            if !run.visited.insert(next.clone()) {
                return self.fail(
                    run,
                    method,
                    &url,
                    format!("redirect loop: {next} was already visited"),
                );
            }
            if let Err(reason) = self.count_redirect(run, next.clone()) {
                return self.fail(run, method, &url, reason);
            }
            self.record(run, method, &url, Some(format!("redirected to {next}")));
            url = next;
        }
    }

    /// Asks the JSON v2 endpoint at `base` for EWS, then for MapiHttp. The EWS response is
    /// required; the MapiHttp one is added when present.
    async fn json_at(&self, run: &mut Run, base: &str) -> Outcome {
        let method = Method::JsonV2;
        let mut settings = Settings::default();
        for protocol in json::PROTOCOLS {
            let url = format!("{base}{}", json::request_path(&run.current, protocol));
            let logical = match Url::parse(&url) {
                Ok(logical) => logical,
                Err(error) => return self.fail(run, method, &url, format!("invalid URL: {error}")),
            };
            let answer = match self
                .send(run, reqwest::Method::GET, &logical, None, false)
                .await
            {
                Ok((status, _, bytes)) if status == StatusCode::OK => {
                    json::parse_response(&bytes, protocol)
                }
                Ok((status, _, _)) => Err(format!("HTTP {status}")),
                Err(reason) => Err(reason),
            };
            match (protocol, answer) {
                ("EWS", Ok(found)) => {
                    settings.ews_url = Some(found);
                    crate::pox::push_protocol(&mut settings.protocols, Protocol::Ews);
                    self.record(run, method, &url, None);
                }
                (_, Ok(found)) => {
                    // The JSON response names only the emsmdb endpoint; the nspi endpoint
                    // sits beside it under the same MailboxId on Exchange.
                    settings.mapi_nspi_url =
                        Some(found.replacen("/mapi/emsmdb/", "/mapi/nspi/", 1));
                    settings.mapi_emsmdb_url = Some(found);
                    crate::pox::push_protocol(&mut settings.protocols, Protocol::MapiHttp);
                    self.record(run, method, &url, None);
                }
                ("EWS", Err(reason)) => return self.fail(run, method, &url, reason),
                (_, Err(reason)) => {
                    self.record(run, method, &url, Some(reason));
                }
            }
        }
        // Keep the attempt that produced the EWS URL last, so the source names it.
        if let Some(position) = run.attempts.iter().rposition(|attempt| {
            attempt.method == method
                && attempt.failure.is_none()
                && attempt.url.contains("Protocol=EWS")
        }) {
            let ews = run.attempts.remove(position);
            run.attempts.push(ews);
        }
        Outcome::Found(settings)
    }
}
