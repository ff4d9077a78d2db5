//! The routes every emulator starts with.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, StatusCode};

use super::routing::{
    EmuRequest, EmuResponse, RequestContext, ResponseBody, RouteAuth, Router, handler_fn,
};
use super::{EWS_PATH, HEALTH_PATH, MAPI_PREFIX};

/// Mounts `/health`, the EWS front end, and a `501` placeholder under `/mapi/` that
/// `Emulator::start` replaces with the MAPI/HTTP front end.
pub(crate) fn mount_defaults(router: &mut Router) {
    router.mount(HEALTH_PATH, RouteAuth::Anonymous, handler_fn(health));
    router.mount(
        EWS_PATH,
        RouteAuth::Required,
        std::sync::Arc::new(crate::ews::EwsFrontEnd::new()),
    );
    router.mount(
        MAPI_PREFIX,
        RouteAuth::Required,
        handler_fn(not_implemented),
    );
}

async fn health(_request: EmuRequest, _context: RequestContext) -> EmuResponse {
    text_response(StatusCode::OK, Bytes::from_static(b"ok\n"))
}

async fn not_implemented(request: EmuRequest, _context: RequestContext) -> EmuResponse {
    let text = format!(
        "501 Not Implemented: no protocol front end is mounted for {}\n",
        request.uri().path()
    );
    text_response(StatusCode::NOT_IMPLEMENTED, Bytes::from(text))
}

/// A plain-text response.
pub(crate) fn text_response(status: StatusCode, text: Bytes) -> EmuResponse {
    let mut response = http::Response::new(ResponseBody::Full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
