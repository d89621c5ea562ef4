//! Lowercase hex text for bytes that travel in JSON (xattr names and values).

/// `[0x6f, 0x6b]` → `"6f6b"`.
pub fn encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The inverse of [`encode`]; `None` for odd lengths or non-hex digits.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip_and_refusals() {
        assert_eq!(super::encode(b"ok\x00\xff"), "6f6b00ff");
        assert_eq!(super::decode("6f6b00ff").unwrap(), b"ok\x00\xff");
        assert!(super::decode("6f6").is_none());
        assert!(super::decode("zz").is_none());
        assert!(super::decode("é1").is_none());
    }
}
