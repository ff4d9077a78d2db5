//! Exchange autodiscover for exmux: from an e-mail address to the EWS and MAPI/HTTP
//! endpoints and the legacy DN.
