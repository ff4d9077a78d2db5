//! The TLS and proxy settings of the client's two connection kinds, built from one
//! [`HttpOptions`]: reqwest's pool (Basic, Bearer) and the connections the client owns
//! for NTLM and Negotiate. Both use the same `rustls::ClientConfig`, so a server
//! certificate that one path accepts the other accepts too.

use std::sync::Arc;

use exmux_core::http::{HttpOptions, ProxySetting};

use super::error::ClientError;

/// Builds the TLS configuration shared by both connection kinds, without ALPN:
/// [`HttpOptions::tls_config`], so the EWS client trusts what every other client of the
/// same options trusts.
pub(crate) fn client_config(options: &HttpOptions) -> Result<rustls::ClientConfig, ClientError> {
    let config = options.tls_config().map_err(|error| ClientError::Config {
        reason: error.to_string(),
    })?;
    Ok(Arc::unwrap_or_clone(config))
}

/// Builds reqwest's connection pool over `tls`, with the proxy of `options` and no
/// redirects, because a redirected POST would lose its body and an Authorization header
/// must not reach a host the caller did not choose.
pub(crate) fn build_pool(
    options: &HttpOptions,
    tls: &rustls::ClientConfig,
) -> Result<reqwest::Client, ClientError> {
    let mut tls = tls.clone();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut builder = reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .user_agent(options.user_agent.clone())
        .redirect(reqwest::redirect::Policy::none())
        .tls_backend_preconfigured(tls);

    match &options.proxy {
        ProxySetting::Disabled => builder = builder.no_proxy(),
        ProxySetting::Url { url, no_proxy } => {
            // reqwest's message may quote the URL, which may carry a password.
            let proxy = reqwest::Proxy::all(url.expose()).map_err(|_| ClientError::Config {
                reason: "invalid proxy URL in [http] proxy: not a valid http:// or https:// URL"
                    .to_owned(),
            })?;
            let exceptions = no_proxy.as_deref().and_then(reqwest::NoProxy::from_string);
            builder = builder.proxy(proxy.no_proxy(exceptions));
        }
        // The environment's proxy variables, which reqwest reads by itself.
        _ => {}
    }

    builder.build().map_err(|error| ClientError::Config {
        reason: format!("cannot build the HTTP client: {error}"),
    })
}
