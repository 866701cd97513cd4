//! Tenants: the `X-Scope-OrgID` value that scopes every write and read.

use crate::{Error, Result};

/// Header (HTTP) and metadata key (gRPC) that carries the tenant.
pub const TENANT_HEADER: &str = "x-scope-orgid";
/// Tenant used when a request names none.
pub const DEFAULT_TENANT: &str = "default";
const MAX_LEN: usize = 128;

/// A validated tenant id: 1–128 characters of `[A-Za-z0-9_.-]`, not `.` or `..`, so it is always
/// safe as one object-store path segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tenant(String);

impl Tenant {
    pub fn new(id: &str) -> Result<Self> {
        let ok = !id.is_empty()
            && id.len() <= MAX_LEN
            && id != "."
            && id != ".."
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if ok {
            Ok(Self(id.to_owned()))
        } else {
            Err(Error::InvalidInput(format!(
                "tenant {id:?} is invalid: use 1-{MAX_LEN} characters of A-Z a-z 0-9 _ . -"
            )))
        }
    }

    /// The tenant named by an optional header value, or the default tenant.
    pub fn from_header(value: Option<&str>) -> Result<Self> {
        match value.map(str::trim) {
            None | Some("") => Ok(Self(DEFAULT_TENANT.to_owned())),
            Some(v) => Self::new(v),
        }
    }

    /// The tenant named by the values of the tenant header (HTTP header or gRPC metadata), or
    /// the default: more than one value is refused ([`single_value`]), never resolved by
    /// position.
    pub fn from_header_values<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Result<Self> {
        let value = single_value(values, "X-Scope-OrgID")?;
        let text = value
            .map(|v| {
                std::str::from_utf8(v)
                    .map_err(|_| Error::InvalidInput("the tenant header is not text".into()))
            })
            .transpose()?;
        Self::from_header(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The one value of a header that may appear at most once (`X-Scope-OrgID`, `Authorization`):
/// none, or an error naming `name` when a request repeats it, so that no reader takes "the first
/// of duplicates" while a proxy in front checked another.
pub fn single_value<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    name: &str,
) -> Result<Option<&'a [u8]>> {
    let mut values = values.into_iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(Error::InvalidInput(format!(
            "the {name} header is given more than once; send it once"
        )));
    }
    Ok(first)
}

impl std::fmt::Display for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants() {
        assert_eq!(Tenant::from_header(None).unwrap().as_str(), "default");
        assert_eq!(Tenant::from_header(Some(" ")).unwrap().as_str(), "default");
        assert_eq!(
            Tenant::new("acme-1.prod_x").unwrap().as_str(),
            "acme-1.prod_x"
        );
        for bad in ["..", ".", "a/b", "a b", "é", &"x".repeat(129)] {
            assert!(Tenant::new(bad).is_err(), "{bad:?} accepted");
        }
        let values = |v: &[&'static str]| v.iter().map(|s| s.as_bytes()).collect::<Vec<_>>();
        assert_eq!(
            Tenant::from_header_values(values(&[])).unwrap().as_str(),
            "default"
        );
        assert_eq!(
            Tenant::from_header_values(values(&["acme"]))
                .unwrap()
                .as_str(),
            "acme"
        );
        let twice = Tenant::from_header_values(values(&["acme", "acme"])).unwrap_err();
        assert_eq!(
            twice.to_string(),
            "invalid input: the X-Scope-OrgID header is given more than once; send it once"
        );
    }
}
