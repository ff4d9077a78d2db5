//! EWS response messages and SOAP faults for the front end's errors.

use std::time::Duration;

use exmux_ews::error::MessageXml;
use exmux_ews::soap::write_fault;
use exmux_ews::xml::{Element, Ns};
use exmux_ews::{MessageError, ResponseClass, ResponseCode, SoapFault};

use crate::store::StoreError;

/// Returns an error response message (ResponseClass Error) with `code` and `text`.
pub(crate) fn code_error(code: ResponseCode, text: String) -> MessageError {
    MessageError {
        class: ResponseClass::Error,
        code,
        text: Some(text),
        message_xml: MessageXml::default(),
        index: 0,
        conflict_count: None,
        subscription_ids: Vec::new(),
    }
}

/// Returns an error response message for an object that does not exist.
pub(crate) fn not_found(code: ResponseCode, text: String) -> MessageError {
    code_error(code, text)
}

/// Maps a store rejection to the response code Exchange gives for it.
pub(crate) fn store_error(error: &StoreError) -> MessageError {
    let code = match error {
        StoreError::FolderNotFound { .. } => ResponseCode::ErrorFolderNotFound,
        StoreError::ItemNotFound { .. } => ResponseCode::ErrorItemNotFound,
        StoreError::WellKnownFolder { operation, .. } if operation.starts_with("delete") => {
            ResponseCode::ErrorDeleteDistinguishedFolder
        }
        StoreError::WellKnownFolder { .. } => ResponseCode::ErrorInvalidOperation,
        StoreError::FolderNameTaken { .. } => ResponseCode::ErrorFolderExists,
        StoreError::FolderCycle { .. } => ResponseCode::ErrorMoveCopyFailed,
        StoreError::InvalidMime { .. } => {
            ResponseCode::Other("ErrorMimeContentConversionFailed".to_owned())
        }
        StoreError::InvalidSyncState { .. } => ResponseCode::ErrorInvalidSyncStateData,
        StoreError::SubscriptionNotFound { .. } => ResponseCode::ErrorSubscriptionNotFound,
        StoreError::SubscriptionExpired { .. } => ResponseCode::ErrorExpiredSubscription,
        StoreError::UnknownSession { .. } | StoreError::SessionExpired { .. } => {
            ResponseCode::ErrorInternalServerTransientError
        }
        _ => ResponseCode::ErrorInternalServerError,
    };
    code_error(code, error.to_string())
}

/// Returns the `t:Value Name="BackOffMilliseconds"` MessageXml Exchange sends with
/// ErrorServerBusy.
fn back_off_xml(back_off: Duration) -> MessageXml {
    MessageXml {
        elements: vec![Element {
            ns: Ns::Types,
            name: "Value".into(),
            attrs: vec![("Name".into(), "BackOffMilliseconds".into())],
            text: back_off.as_millis().to_string(),
            children: Vec::new(),
        }],
    }
}

/// A throttling response message that the front end puts inside an HTTP 200 response
/// in place of the operation's result.
#[derive(Clone, Debug)]
pub(crate) struct ThrottledMessage {
    /// The message's ResponseCode.
    pub(crate) code: ResponseCode,
    /// The inner code in MessageXml (`InnerErrorResponseCode`), which Exchange sends
    /// with an ErrorInternalServerError.
    pub(crate) inner: Option<ResponseCode>,
    /// `BackOffMilliseconds` in MessageXml.
    pub(crate) back_off: Option<Duration>,
}

/// Returns a throttling response message with `BackOffMilliseconds` when one is given,
/// as Exchange Online puts inside an HTTP 200 response. With an inner code, MessageXml
/// carries it in the `InnerErrorMessageText` / `InnerErrorResponseCode` values that
/// Exchange uses for ErrorInternalServerError.
pub(crate) fn busy_message(throttled: &ThrottledMessage) -> MessageError {
    let mut message_xml = throttled.back_off.map(back_off_xml).unwrap_or_default();
    let busy_text = "The server cannot service this request right now. Try again later.";
    let text = match &throttled.inner {
        None => busy_text,
        Some(inner) => {
            message_xml
                .elements
                .push(value("InnerErrorMessageText", busy_text));
            message_xml
                .elements
                .push(value("InnerErrorResponseCode", inner.as_str()));
            "An internal server error occurred. The operation failed."
        }
    };
    MessageError {
        message_xml,
        ..code_error(throttled.code.clone(), text.to_owned())
    }
}

/// Returns a `t:Value Name=".."` element of MessageXml.
fn value(name: &str, text: &str) -> Element {
    Element {
        ns: Ns::Types,
        name: "Value".into(),
        attrs: vec![("Name".into(), name.into())],
        text: text.to_owned(),
        children: Vec::new(),
    }
}

/// Returns the body of the HTTP 500 SOAP fault ErrorServerBusy with
/// `BackOffMilliseconds` in its detail.
pub(crate) fn busy_fault(back_off: Duration) -> Vec<u8> {
    write_fault(&SoapFault {
        http_status: 500,
        faultcode: "soap:Server".to_owned(),
        faultstring: "The server cannot service this request right now. Try again later."
            .to_owned(),
        response_code: Some(ResponseCode::ErrorServerBusy),
        message: Some("The server cannot service this request right now.".to_owned()),
        message_xml: back_off_xml(back_off),
    })
}

/// Returns the body of the HTTP 500 SOAP fault ErrorInternalServerError whose
/// MessageXml names the inner code ErrorServerBusy and the back-off.
pub(crate) fn inner_busy_fault(back_off: Duration) -> Vec<u8> {
    let mut message_xml = back_off_xml(back_off);
    message_xml.elements.push(Element {
        ns: Ns::Types,
        name: "Value".into(),
        attrs: vec![("Name".into(), "InnerErrorResponseCode".into())],
        text: "ErrorServerBusy".to_owned(),
        children: Vec::new(),
    });
    write_fault(&SoapFault {
        http_status: 500,
        faultcode: "soap:Server".to_owned(),
        faultstring: "An internal server error occurred. The operation failed.".to_owned(),
        response_code: Some(ResponseCode::ErrorInternalServerError),
        message: Some("An internal server error occurred.".to_owned()),
        message_xml,
    })
}

/// Returns the body of a SOAP fault whose faultcode is the EWS code
/// ErrorInvalidSyncStateData, with no detail, as one server sends with HTTP 200.
pub(crate) fn sync_state_fault() -> Vec<u8> {
    write_fault(&SoapFault {
        http_status: 200,
        faultcode: "ErrorInvalidSyncStateData".to_owned(),
        faultstring: "The synchronization state data is corrupt or otherwise invalid.".to_owned(),
        response_code: None,
        message: None,
        message_xml: MessageXml::default(),
    })
}

/// Returns the body of a SOAP fault for a request the front end cannot read.
pub(crate) fn request_fault(code: ResponseCode, text: &str) -> Vec<u8> {
    write_fault(&SoapFault {
        http_status: 500,
        faultcode: "soap:Client".to_owned(),
        faultstring: text.to_owned(),
        response_code: Some(code),
        message: Some(text.to_owned()),
        message_xml: MessageXml::default(),
    })
}
