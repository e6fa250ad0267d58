//! The HMAC-SHA256 core every signing scheme shares: a ring of keys, each
//! pre-keyed once at start, and a constant-time comparison over all of them.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

use crate::domain::signature::MAC_LEN;

type HmacSha256 = Hmac<Sha256>;

/// One key, already absorbed into the HMAC state (the inner and outer pads
/// are computed once at start, not per request).
#[derive(Clone)]
pub struct HmacKey {
    keyed: HmacSha256,
}

impl HmacKey {
    /// Keys an HMAC with raw bytes (any length; longer than 64 are hashed).
    pub fn new(key: &[u8]) -> Self {
        // HMAC accepts keys of every length, so this cannot fail.
        let keyed = match HmacSha256::new_from_slice(key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
        };
        Self { keyed }
    }

    /// The MAC over the concatenation of `parts`, without building it.
    pub fn sign(&self, parts: &[&[u8]]) -> [u8; MAC_LEN] {
        let mut mac = self.keyed.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// Constant-time check of a full-length tag; a truncated tag is refused.
    pub fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        if tag.len() != MAC_LEN {
            return false;
        }
        self.sign(parts).ct_eq(tag).into()
    }
}

impl std::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacKey(<redacted>)")
    }
}

/// The keys of one route: any of them verifies, so keys rotate without
/// downtime (add the new key, move callers, remove the old one).
#[derive(Debug, Clone)]
pub struct KeyRing {
    keys: Vec<HmacKey>,
}

impl KeyRing {
    /// A ring of at least one key.
    pub fn new(keys: Vec<HmacKey>) -> Self {
        Self { keys }
    }

    /// How many keys the ring holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True for a ring without keys (configuration refuses these).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The index of the key whose MAC over `parts` equals `tag`. Every key is
    /// computed and compared in constant time, whichever matches.
    pub fn verify(&self, parts: &[&[u8]], tag: &[u8; MAC_LEN]) -> Option<usize> {
        let mut matched: Option<usize> = None;
        for (index, key) in self.keys.iter().enumerate() {
            let equal: Choice = key.sign(parts).ct_eq(tag);
            if bool::from(equal) && matched.is_none() {
                matched = Some(index);
            }
        }
        matched
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn vectors(name: &str) -> Value {
        let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn every_wycheproof_vector_gives_its_expected_result() {
        let suite = vectors("wycheproof_hmac_sha256_test.json");
        let mut checked = 0;
        for group in suite["testGroups"].as_array().unwrap() {
            let tag_bytes = group["tagSize"].as_u64().unwrap() as usize / 8;
            for case in group["tests"].as_array().unwrap() {
                let key = HmacKey::new(&hex(case["key"].as_str().unwrap()));
                let msg = hex(case["msg"].as_str().unwrap());
                let tag = hex(case["tag"].as_str().unwrap());
                let valid = case["result"] == "valid";
                let full = key.sign(&[&msg]);
                assert_eq!(full[..tag_bytes] == tag[..], valid, "tcId {}", case["tcId"]);
                if tag_bytes == MAC_LEN {
                    assert_eq!(key.verify(&[&msg], &tag), valid, "tcId {}", case["tcId"]);
                } else {
                    // verigate never accepts a truncated MAC, even a right one.
                    assert!(!key.verify(&[&msg], &tag), "tcId {}", case["tcId"]);
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 174);
    }

    #[test]
    fn every_rfc_4231_vector_matches() {
        let suite = vectors("rfc4231_hmac_sha256.json");
        for case in suite["tests"].as_array().unwrap() {
            let key = HmacKey::new(&hex(case["key"].as_str().unwrap()));
            let full = key.sign(&[&hex(case["data"].as_str().unwrap())]);
            let expected = case.get("tagFull").unwrap_or(&case["tag"]);
            assert_eq!(
                full.to_vec(),
                hex(expected.as_str().unwrap()),
                "{}",
                case["tcId"]
            );
        }
    }

    #[test]
    fn signing_in_parts_equals_signing_the_concatenation() {
        let key = HmacKey::new(b"bf7769e5321448de88838cdb");
        assert_eq!(key.sign(&[b"ab", b"", b"cd"]), key.sign(&[b"abcd"]));
    }

    #[test]
    fn a_ring_reports_which_key_matched() {
        let old = HmacKey::new(b"old");
        let new = HmacKey::new(b"new");
        let ring = KeyRing::new(vec![new.clone(), old.clone()]);
        assert_eq!(ring.verify(&[b"m"], &old.sign(&[b"m"])), Some(1));
        assert_eq!(ring.verify(&[b"m"], &new.sign(&[b"m"])), Some(0));
        assert_eq!(
            ring.verify(&[b"m"], &HmacKey::new(b"x").sign(&[b"m"])),
            None
        );
    }
}
