//! Values parsed at the edge: once one exists, it is valid, so later stages
//! never check it again.

/// The request fields a route reads from a JSON body.
pub mod lookup_request;
/// A decoded 32-byte HMAC-SHA256 signature.
pub mod signature;
/// JSON parsing that refuses duplicate keys and deep nesting.
pub mod strict_json;
/// Epoch-millisecond timestamps and the acceptance window.
pub mod timestamp;
