//! exmux-router: the API that sync engines embed. It routes each operation over EWS or
//! MAPI/HTTP, merges both backends' notices, labels every change with its origin and
//! drops the changes this transport made itself.
