//! Value parsers: a setting is read by the same one from a flag, a variable or the file.

use std::time::Duration;

/// A positive size such as `16MiB`, `512KB`, `1gib` or a plain number of bytes (`k`, `m` and `g`
/// units are binary whatever their spelling).
pub fn size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let multiplier: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => 0,
    };
    number
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .filter(|n| *n > 0)
        .ok_or_else(|| "not a size such as 16MiB".to_owned())
}

/// A positive duration such as `500ms`, `30s`, `5m` or `30d`.
pub fn span(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| "not a duration such as 500ms, 30s or 7d".to_owned())
}

/// A duration that may be zero (`0s` turns off what it bounds).
pub fn span_or_zero(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|_| "not a duration such as 0s, 500ms or 30s".to_owned())
}

/// A positive whole number.
pub fn positive(text: &str) -> Result<usize, String> {
    text.trim()
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| "not a positive whole number".to_owned())
}

/// One item of a comma-separated list, without the spaces around it.
pub fn item(text: &str) -> Result<String, String> {
    Ok(text.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size("16MiB"), Ok(16 << 20));
        assert_eq!(size("512 kb"), Ok(512 << 10));
        assert_eq!(size("1gib"), Ok(1 << 30));
        assert_eq!(size("100"), Ok(100));
        for bad in [
            "1.5GiB",
            "lots",
            "0",
            "0MiB",
            "",
            "7TiB",
            "99999999999999999999G",
        ] {
            assert!(size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn spans_and_counts() {
        assert_eq!(span("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(span(" 7d "), Ok(Duration::from_secs(7 * 86_400)));
        assert!(span("0s").is_err());
        assert!(span("soon").is_err());
        assert_eq!(positive("24"), Ok(24));
        assert!(positive("0").is_err());
        assert!(positive("-1").is_err());
        assert_eq!(item("  delete_* "), Ok("delete_*".into()));
    }
}
