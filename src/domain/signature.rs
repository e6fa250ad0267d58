//! The `Authorization` value of the Contiple scheme: exactly the padded
//! standard Base64 of a 32-byte HMAC-SHA256, as Java's
//! `Base64.encodeBase64` prints it.

use base64::{Engine, engine::general_purpose::STANDARD};

/// Length of an HMAC-SHA256 tag.
pub const MAC_LEN: usize = 32;

/// Why a signature header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not canonical padded standard Base64 (URL-safe, unpadded, stray
    /// trailing bits, whitespace, prefixes).
    #[error("the signature is not canonical padded standard Base64")]
    NotBase64,
    /// Decoded to something other than 32 bytes (a truncated MAC included).
    #[error("the signature is not 32 bytes")]
    WrongLength,
}

/// A decoded MAC of exactly 32 bytes. Built only by strict decoding, so one
/// MAC has exactly one accepted spelling.
#[derive(Clone, PartialEq, Eq)]
pub struct Signature([u8; MAC_LEN]);

impl Signature {
    /// Strictly decodes the header value.
    pub fn from_base64(raw: &[u8]) -> Result<Signature, SignatureError> {
        // 32 bytes are 44 characters; refuse anything longer before decoding.
        if raw.len() != 44 {
            return Err(if raw.len() > 64 || STANDARD.decode(raw).is_err() {
                SignatureError::NotBase64
            } else {
                SignatureError::WrongLength
            });
        }
        let mut out = [0u8; MAC_LEN];
        match STANDARD.decode_slice(raw, &mut out) {
            Ok(MAC_LEN) => Ok(Signature(out)),
            Ok(_) => Err(SignatureError::WrongLength),
            Err(_) => Err(SignatureError::NotBase64),
        }
    }

    /// The MAC bytes.
    pub fn as_bytes(&self) -> &[u8; MAC_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signature(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_canonical_spelling_of_32_bytes_decodes() {
        let mac = [0xfbu8; 32];
        let canonical = STANDARD.encode(mac);
        assert_eq!(
            Signature::from_base64(canonical.as_bytes())
                .unwrap()
                .as_bytes(),
            &mac
        );

        let unpadded = canonical.trim_end_matches('=');
        let url_safe = canonical.replace('+', "-").replace('/', "_");
        // The last character before '=' carries 2 unused bits; setting one
        // spells the same bytes non-canonically.
        let mut non_canonical = canonical.clone().into_bytes();
        non_canonical[42] = b't'; // 's' (101100) with its last unused bit set
        let truncated = STANDARD.encode(&mac[..16]);
        let cases: &[(&[u8], SignatureError, &str)] = &[
            (unpadded.as_bytes(), SignatureError::NotBase64, "unpadded"),
            (
                url_safe.as_bytes(),
                SignatureError::NotBase64,
                "URL-safe alphabet",
            ),
            (
                &non_canonical,
                SignatureError::NotBase64,
                "non-canonical trailing bits",
            ),
            (
                truncated.as_bytes(),
                SignatureError::WrongLength,
                "16-byte truncated MAC",
            ),
            (b"", SignatureError::WrongLength, "empty"),
            (
                b"not base64 at all!!!",
                SignatureError::NotBase64,
                "garbage",
            ),
        ];
        for (raw, expected, what) in cases {
            assert_eq!(Signature::from_base64(raw), Err(*expected), "{what}");
        }
        let prefixed = format!("v1,{canonical}");
        assert!(
            Signature::from_base64(prefixed.as_bytes()).is_err(),
            "prefix"
        );
        let spaced = format!(" {canonical}");
        assert!(
            Signature::from_base64(spaced.as_bytes()).is_err(),
            "leading space"
        );
    }
}
