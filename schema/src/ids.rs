//! Trace and span ids: validation and the lowercase hex form used in storage and SQL.

use crate::{Error, Result};

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Checks an id of `len` bytes: right length and not all zero (the OTLP "invalid" id).
pub fn validate(kind: &str, bytes: &[u8], len: usize) -> Result<()> {
    if bytes.len() != len {
        return Err(Error::InvalidInput(format!(
            "{kind} must be {len} bytes, got {}",
            bytes.len()
        )));
    }
    if bytes.iter().all(|b| *b == 0) {
        return Err(Error::InvalidInput(format!("{kind} is all zeroes")));
    }
    Ok(())
}

/// Parses a trace id given as 32 hex digits (any case) into its lowercase form.
pub fn parse_trace_id(text: &str) -> Result<String> {
    let bytes = hex::decode(text)
        .map_err(|e| Error::InvalidInput(format!("trace id {text:?} is not hex: {e}")))?;
    validate("trace id", &bytes, 16)?;
    Ok(to_hex(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_id_forms() {
        assert_eq!(
            parse_trace_id("0AF7651916CD43DD8448EB211C80319C").unwrap(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert!(parse_trace_id("00000000000000000000000000000000").is_err());
        assert!(parse_trace_id("abc").is_err());
        assert!(parse_trace_id("zz").is_err());
        assert!(validate("span id", &[1; 8], 8).is_ok());
        assert!(validate("span id", &[1; 7], 8).is_err());
    }
}
