//! Opening the connections that a client owns, directly or through an HTTP proxy.
//!
//! NTLM and Negotiate authenticate one TCP connection (MS-NTHT 2.1), so their handshake
//! cannot use reqwest's pool, and reqwest's proxy settings do not reach the connections
//! a client opens itself. [`dial`] opens such a connection as reqwest would reach the
//! same URL: through the proxy of [`ProxySetting`] when one applies, with TLS to the
//! server for `https`.
//!
//! Through a proxy the connection is always a `CONNECT` tunnel (RFC 9110 9.3.6), for
//! `http` URLs too. A forwarding proxy may send the legs of one handshake over
//! different upstream connections, and that breaks connection-based authentication. A
//! tunnel keeps the client's one connection end to end.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use url::Url;

use crate::http::ProxySetting;

/// The maximum size of a proxy's response head, in bytes.
const MAX_PROXY_HEAD: usize = 16 * 1024;

/// An error opening an owned connection. Messages name hosts and ports, never the
/// credentials a proxy URL carries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DialError {
    /// The URL cannot be connected to as given.
    #[error("cannot connect to {url}: {reason}")]
    Url {
        /// The URL, without credentials.
        url: String,
        /// The missing part.
        reason: String,
    },
    /// Opening the TCP connection failed or timed out.
    #[error("connecting to {target} failed: {reason}")]
    Connect {
        /// `host:port` connected to (the proxy's when one is used).
        target: String,
        /// The cause.
        reason: String,
    },
    /// The proxy rejected the tunnel or responded with something that is not HTTP.
    #[error(
        "the proxy {proxy} rejected a tunnel to {target}: {reason}; check [http] proxy and \
         no_proxy, or the HTTPS_PROXY and NO_PROXY variables"
    )]
    Proxy {
        /// The proxy's `host:port`.
        proxy: String,
        /// The server's `host:port`.
        target: String,
        /// The status line, or the fault in the response.
        reason: String,
    },
    /// The TLS handshake failed or timed out.
    #[error("the TLS handshake with {host} failed: {reason}")]
    Tls {
        /// The server's host name.
        host: String,
        /// The cause.
        reason: String,
    },
}

/// A connection a client owns: TCP, or TLS over TCP, possibly through a proxy tunnel.
pub struct OwnedStream {
    inner: Pin<Box<dyn Io>>,
    via_proxy: Option<String>,
}

trait Io: AsyncRead + AsyncWrite + Send {}
impl<T: AsyncRead + AsyncWrite + Send> Io for T {}

impl OwnedStream {
    /// Returns the proxy's `host:port` when the connection is tunnelled through one.
    #[must_use]
    pub fn via_proxy(&self) -> Option<&str> {
        self.via_proxy.as_deref()
    }
}

impl std::fmt::Debug for OwnedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedStream")
            .field("via_proxy", &self.via_proxy)
            .finish_non_exhaustive()
    }
}

impl AsyncRead for OwnedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.inner.as_mut().poll_read(cx, buf)
    }
}

impl AsyncWrite for OwnedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.inner.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.inner.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.inner.as_mut().poll_shutdown(cx)
    }
}

/// A proxy chosen for one target.
struct Proxy {
    url: Url,
}

impl Proxy {
    fn address(&self) -> Result<(String, u16), DialError> {
        let host = self.url.host_str().unwrap_or_default();
        let port = self.url.port_or_known_default().unwrap_or(3128);
        if host.is_empty() {
            return Err(DialError::Url {
                url: "the proxy URL".to_owned(),
                reason: "it has no host".to_owned(),
            });
        }
        Ok((host.to_owned(), port))
    }

    /// `Proxy-Authorization` for the user and password in the proxy URL, if any.
    fn authorization(&self) -> Option<String> {
        if self.url.username().is_empty() {
            return None;
        }
        let decode = |text: &str| {
            percent_decode(text)
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .unwrap_or_else(|| text.to_owned())
        };
        let user = decode(self.url.username());
        let password = decode(self.url.password().unwrap_or_default());
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Some(format!("Basic {token}"))
    }
}

/// Opens a connection to the host and port of `url`, through the proxy that `proxy`
/// selects for it, with TLS (`tls`) when the scheme is `https`. `timeout` bounds each
/// step: the TCP connection, the tunnel and the TLS handshake.
///
/// # Errors
/// [`DialError`] naming the step that failed.
pub async fn dial(
    url: &Url,
    proxy: &ProxySetting,
    tls: &Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<OwnedStream, DialError> {
    let url_error = |reason: &str| DialError::Url {
        url: without_credentials(url),
        reason: reason.to_owned(),
    };
    let host = url
        .host_str()
        .ok_or_else(|| url_error("it has no host"))?
        .to_owned();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| url_error("it has no port"))?;
    // A bracketed IPv6 literal connects and names itself without its brackets.
    let bare_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let https = match url.scheme() {
        "https" => true,
        "http" => false,
        _ => return Err(url_error("only http and https URLs are supported")),
    };

    let chosen = select_proxy(proxy, https, &bare_host, &EnvVars)?;
    let (tcp, via_proxy) = match &chosen {
        None => (connect_tcp(&bare_host, port, timeout).await?, None),
        Some(proxy) => {
            let (proxy_host, proxy_port) = proxy.address()?;
            let proxy_name = format!("{proxy_host}:{proxy_port}");
            if proxy.url.scheme() == "https" {
                // NOTE: a proxy reached over TLS is not supported for owned connections.
                return Err(DialError::Proxy {
                    proxy: proxy_name,
                    target: format!("{host}:{port}"),
                    reason: "a proxy reached over https:// cannot carry NTLM or Negotiate \
                             connections yet; give an http:// proxy URL"
                        .to_owned(),
                });
            }
            let bare_proxy = proxy_host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let mut tcp = connect_tcp(&bare_proxy, proxy_port, timeout).await?;
            let authority = if bare_host.contains(':') {
                format!("[{bare_host}]:{port}")
            } else {
                format!("{bare_host}:{port}")
            };
            tokio::time::timeout(
                timeout,
                open_tunnel(&mut tcp, &authority, proxy.authorization()),
            )
            .await
            .map_err(|_| DialError::Proxy {
                proxy: proxy_name.clone(),
                target: authority.clone(),
                reason: format!("timed out after {} ms", timeout.as_millis()),
            })?
            .map_err(|reason| DialError::Proxy {
                proxy: proxy_name.clone(),
                target: authority.clone(),
                reason,
            })?;
            tracing::debug!(proxy = %proxy_name, target = %authority, "tunnel open");
            (tcp, Some(proxy_name))
        }
    };

    if !https {
        return Ok(OwnedStream {
            inner: Box::pin(tcp),
            via_proxy,
        });
    }
    let tls_error = |reason: String| DialError::Tls {
        host: bare_host.clone(),
        reason,
    };
    let name = rustls::pki_types::ServerName::try_from(bare_host.clone())
        .map_err(|error| tls_error(format!("invalid server name: {error}")))?;
    let stream = tokio::time::timeout(
        timeout,
        tokio_rustls::TlsConnector::from(Arc::clone(tls)).connect(name, tcp),
    )
    .await
    .map_err(|_| tls_error(format!("timed out after {} ms", timeout.as_millis())))?
    .map_err(|error| tls_error(error.to_string()))?;
    Ok(OwnedStream {
        inner: Box::pin(stream),
        via_proxy,
    })
}

async fn connect_tcp(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, DialError> {
    let target = format!("{host}:{port}");
    tokio::time::timeout(timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| DialError::Connect {
            target: target.clone(),
            reason: format!("timed out after {} ms", timeout.as_millis()),
        })?
        .map_err(|error| DialError::Connect {
            target,
            reason: error.to_string(),
        })
}

/// Sends `CONNECT authority` and reads the proxy's response head. Returns the reason
/// when the status is not 2xx.
async fn open_tunnel(
    tcp: &mut TcpStream,
    authority: &str,
    authorization: Option<String>,
) -> Result<(), String> {
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(value) = authorization {
        request.push_str("Proxy-Authorization: ");
        request.push_str(&value);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    tcp.write_all(request.as_bytes())
        .await
        .map_err(|error| format!("sending CONNECT failed: {error}"))?;

    // Read byte by byte up to the blank line, so no byte of the tunnel is consumed.
    let mut head = Vec::with_capacity(256);
    let mut byte = [0_u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_PROXY_HEAD {
            return Err(format!(
                "its response head exceeds {MAX_PROXY_HEAD} bytes without ending"
            ));
        }
        let read = tcp
            .read(&mut byte)
            .await
            .map_err(|error| format!("reading its response failed: {error}"))?;
        if read == 0 {
            return Err("it closed the connection before responding".to_owned());
        }
        head.push(byte[0]);
    }
    let status_line = head
        .split(|&b| b == b'\n')
        .next()
        .map(|line| String::from_utf8_lossy(line).trim().to_owned())
        .unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    let code = parts.next().and_then(|code| code.parse::<u16>().ok());
    match code {
        Some(code) if version.starts_with("HTTP/1.") && (200..300).contains(&code) => Ok(()),
        Some(407) => Err(format!(
            "{status_line} (the proxy wants credentials: put user:password@ in the proxy URL)"
        )),
        Some(_) => Err(status_line),
        None => Err(format!(
            "its response is not HTTP: {}",
            status_line.chars().take(80).collect::<String>()
        )),
    }
}

/// A source of proxy variables. It is a trait so tests need not touch the process
/// environment.
trait Environment {
    fn get(&self, name: &str) -> Option<String>;
}

struct EnvVars;

impl Environment for EnvVars {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .filter(|value| !value.trim().is_empty())
    }
}

/// Chooses the proxy for `host`, as reqwest chooses it for its own requests.
fn select_proxy(
    setting: &ProxySetting,
    https: bool,
    host: &str,
    environment: &dyn Environment,
) -> Result<Option<Proxy>, DialError> {
    let (text, no_proxy) = match setting {
        ProxySetting::Disabled => return Ok(None),
        ProxySetting::Url { url, no_proxy } => (url.expose().to_owned(), no_proxy.clone()),
        ProxySetting::FromEnvironment => {
            let names: &[&str] = if https {
                &["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
            } else {
                &["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
            };
            let Some(text) = names.iter().find_map(|name| environment.get(name)) else {
                return Ok(None);
            };
            let no_proxy = environment
                .get("NO_PROXY")
                .or_else(|| environment.get("no_proxy"));
            (text, no_proxy)
        }
    };
    if no_proxy
        .as_deref()
        .is_some_and(|list| no_proxy_matches(list, host))
    {
        return Ok(None);
    }
    // A proxy given as host:port, as the variables often are, means http://host:port.
    let with_scheme = if text.contains("://") {
        text
    } else {
        format!("http://{text}")
    };
    let url = Url::parse(&with_scheme).map_err(|_| DialError::Url {
        url: "the proxy URL".to_owned(),
        reason: "it is not a valid http:// URL (the value is not shown: it may carry a \
                 password)"
            .to_owned(),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(DialError::Url {
            url: "the proxy URL".to_owned(),
            reason: format!("its scheme {} is not http or https", url.scheme()),
        });
    }
    Ok(Some(Proxy { url }))
}

/// Returns whether `host` is excluded by a `NO_PROXY` list: `*`, host names (a leading dot or
/// none, both matching subdomains), IP addresses and CIDR ranges, separated by commas.
fn no_proxy_matches(list: &str, host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    let address: Option<IpAddr> = host.parse().ok();
    list.split(',')
        .map(|entry| entry.trim().to_ascii_lowercase())
        .filter(|entry| !entry.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            if let Some(address) = address {
                return ip_matches(&entry, address);
            }
            let domain = entry.trim_start_matches('.');
            host == domain || host.ends_with(&format!(".{domain}"))
        })
}

fn ip_matches(entry: &str, address: IpAddr) -> bool {
    let entry = entry.trim_start_matches('[').trim_end_matches(']');
    let Some((network, bits)) = entry.split_once('/') else {
        return entry.parse::<IpAddr>() == Ok(address);
    };
    let (Ok(network), Ok(bits)) = (network.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (network, address) {
        (IpAddr::V4(network), IpAddr::V4(address)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(network) & mask == u32::from(address) & mask
        }
        (IpAddr::V6(network), IpAddr::V6(address)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(network) & mask == u128::from(address) & mask
        }
        _ => false,
    }
}

fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text.get(index + 1..index + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    Some(out)
}

fn without_credentials(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;
    use std::collections::HashMap;

    struct Vars(HashMap<&'static str, &'static str>);

    impl Environment for Vars {
        fn get(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|value| (*value).to_owned())
        }
    }

    fn chosen(setting: &ProxySetting, https: bool, host: &str, vars: &Vars) -> Option<String> {
        select_proxy(setting, https, host, vars)
            .unwrap()
            .map(|proxy| proxy.url.to_string())
    }

    #[test]
    fn environment_picks_the_variable_of_the_scheme() {
        let vars = Vars(HashMap::from([
            ("HTTPS_PROXY", "http://secure-proxy:8443"),
            ("http_proxy", "plain-proxy:3128"),
            ("NO_PROXY", "localhost,.corp.example,10.0.0.0/8"),
        ]));
        let env = ProxySetting::FromEnvironment;
        assert_eq!(
            chosen(&env, true, "mail.example", &vars).as_deref(),
            Some("http://secure-proxy:8443/")
        );
        assert_eq!(
            chosen(&env, false, "mail.example", &vars).as_deref(),
            Some("http://plain-proxy:3128/")
        );
        assert_eq!(chosen(&env, true, "localhost", &vars), None);
        assert_eq!(chosen(&env, true, "ex.corp.example", &vars), None);
        assert_eq!(chosen(&env, true, "10.20.30.40", &vars), None);
        assert!(chosen(&env, true, "11.0.0.1", &vars).is_some());
        assert_eq!(
            chosen(&ProxySetting::Disabled, true, "mail.example", &vars),
            None
        );
        assert_eq!(
            chosen(&env, true, "mail.example", &Vars(HashMap::new())),
            None
        );
    }

    #[test]
    fn explicit_proxy_honours_its_exceptions() {
        let vars = Vars(HashMap::new());
        let setting = ProxySetting::Url {
            url: Secret::new("http://127.0.0.1:3128"),
            no_proxy: Some("mail.internal, ::1".to_owned()),
        };
        assert!(chosen(&setting, true, "mail.example", &vars).is_some());
        assert_eq!(chosen(&setting, true, "mail.internal", &vars), None);
        assert_eq!(chosen(&setting, true, "::1", &vars), None);
    }

    #[test]
    fn bad_proxy_url_error_hides_it() {
        let setting = ProxySetting::Url {
            url: Secret::new("ftp://user:hunter2@proxy"),
            no_proxy: None,
        };
        let error = select_proxy(&setting, true, "mail.example", &Vars(HashMap::new()))
            .err()
            .unwrap()
            .to_string();
        assert!(!error.contains("hunter2"), "{error}");
        assert!(error.contains("ftp"), "{error}");
    }

    #[test]
    fn no_proxy_forms() {
        assert!(no_proxy_matches("*", "anything"));
        assert!(no_proxy_matches("example.com", "example.com"));
        assert!(no_proxy_matches("example.com", "a.example.com"));
        assert!(no_proxy_matches(".example.com", "a.example.com"));
        assert!(!no_proxy_matches("example.com", "badexample.com"));
        assert!(no_proxy_matches("192.168.0.0/16", "192.168.4.5"));
        assert!(!no_proxy_matches("192.168.0.0/16", "192.169.4.5"));
        assert!(no_proxy_matches("fd00::/8", "fd12::1"));
        assert!(!no_proxy_matches("10.0.0.1/40", "10.0.0.1"));
    }

    #[test]
    fn proxy_credentials_become_basic_authorization() {
        let proxy = Proxy {
            url: Url::parse("http://us%40er:p%3Ass@proxy:3128").unwrap(),
        };
        let expected = base64::engine::general_purpose::STANDARD.encode("us@er:p:ss");
        assert_eq!(
            proxy.authorization().as_deref(),
            Some(format!("Basic {expected}").as_str())
        );
        let anonymous = Proxy {
            url: Url::parse("http://proxy:3128").unwrap(),
        };
        assert_eq!(anonymous.authorization(), None);
    }
}
