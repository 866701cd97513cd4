//! Typed request parts of the query API, each refused with a JSON 400 naming what is wrong:
//! the tenant (of the principal [`cairn_auth`] resolved for the request), path ids ([`TraceId`], [`SpanId`], [`PayloadHash`]) and query
//! parameters ([`Params`]: a struct per endpoint, unknown parameters refused, each value read as
//! its type, errors naming the parameter).

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use cairn_schema::tenant::Tenant;
use datafusion::common::ScalarValue;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::Error;

/// The tenant a request is scoped to: its principal's, which the router's gate
/// ([`cairn_auth::http::require_read`]) resolved. A route outside the gate has none and is
/// refused (fails closed), never scoped by a header it reads itself.
pub struct TenantOf(pub Tenant);

impl<S: Send + Sync> FromRequestParts<S> for TenantOf {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        parts
            .extensions
            .get::<cairn_auth::Principal>()
            .map(|p| Self(p.tenant.clone()))
            .ok_or_else(|| Error::Internal("a tenant-scoped route outside the auth gate".into()))
    }
}

/// Path parameters as `T`.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| Self(v))
            .map_err(|e| Error::BadRequest(e.body_text()))
    }
}

/// Query-string parameters as `T` (which should deny unknown fields).
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(v)| Self(v))
            .map_err(|e| {
                let text = e.body_text();
                let reason = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                Error::BadRequest(format!("query parameters: {reason}"))
            })
    }
}

/// A trace id: 32 hex digits, normalised to lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceId(String);

impl TraceId {
    pub fn parse(text: &str) -> Result<Self, Error> {
        Ok(Self(cairn_schema::ids::parse_trace_id(text)?))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as a query parameter.
    pub fn param(&self) -> ScalarValue {
        ScalarValue::Utf8(Some(self.0.clone()))
    }
}

impl<'de> Deserialize<'de> for TraceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for TraceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A span id: 16 hex digits, normalised to lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanId(String);

impl SpanId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `text` in lower case if it is hex digits of a length in `lengths`, else an error naming `what`
/// (as `what {text:?} is not {digits} hex digits`).
fn hex<E: serde::de::Error>(
    text: String,
    lengths: std::ops::RangeInclusive<usize>,
    what: &str,
    digits: &str,
) -> Result<String, E> {
    if lengths.contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(E::custom(format!(
            "{what} {text:?} is not {digits} hex digits"
        )))
    }
}

impl<'de> Deserialize<'de> for SpanId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        hex(String::deserialize(d)?, 16..=16, "span id", "16").map(Self)
    }
}

/// A payload hash: 32 to 64 hex digits, normalised to lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadHash(String);

impl PayloadHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for PayloadHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        hex(String::deserialize(d)?, 32..=64, "payload hash", "32 to 64").map(Self)
    }
}

/// A page of a run's steps: `offset`, the index of the first (default 0), and `limit`, how many.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    offset: Option<usize>,
    limit: Option<usize>,
}

impl Page {
    /// The offset and the length of the page: `limit`, 1 to `max` (default `default`).
    pub fn bounds(&self, default: usize, max: usize) -> Result<(usize, usize), Error> {
        let limit = self.limit.unwrap_or(default);
        if !(1..=max).contains(&limit) {
            return Err(Error::BadRequest(format!(
                "limit={limit}: a page has 1 to {max} steps"
            )));
        }
        Ok((self.offset.unwrap_or(0), limit))
    }
}

/// An RFC 3339 time parameter, as a timestamp literal (so hour partitions are pruned).
#[derive(Debug, Clone)]
pub struct Time(pub ScalarValue);

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let t = chrono::DateTime::parse_from_rfc3339(&text).map_err(|e| {
            serde::de::Error::custom(format!("{text:?} is not an RFC 3339 time: {e}"))
        })?;
        Ok(Self(ScalarValue::TimestampNanosecond(
            t.timestamp_nanos_opt(),
            Some("UTC".into()),
        )))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct P {
        limit: Option<usize>,
        from: Option<Time>,
    }

    async fn params(query: &str) -> Result<P, String> {
        let (mut parts, _) = Request::get(format!("/x?{query}"))
            .body(())
            .unwrap()
            .into_parts();
        Params::<P>::from_request_parts(&mut parts, &())
            .await
            .map(|Params(p)| p)
            .map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn parameters_are_typed_and_named_when_wrong() {
        assert_eq!(params("limit=5").await.unwrap().limit, Some(5));
        let e = params("limit=five").await.unwrap_err();
        assert!(e.contains("limit"), "{e}");
        let e = params("limti=5").await.unwrap_err();
        assert!(e.contains("unknown field `limti`"), "{e}");
        let e = params("from=yesterday").await.unwrap_err();
        assert!(e.contains("from") && e.contains("RFC 3339"), "{e}");
        assert!(params("from=2026-01-01T00:00:00Z")
            .await
            .unwrap()
            .from
            .is_some());
    }

    #[test]
    fn ids_are_validated_and_normalised() {
        let t: TraceId = serde_json::from_str("\"0AF7651916CD43DD8448EB211C80319C\"").unwrap();
        assert_eq!(t.as_str(), "0af7651916cd43dd8448eb211c80319c");
        assert!(serde_json::from_str::<TraceId>("\"xyz\"").is_err());
        let s: SpanId = serde_json::from_str("\"00F067AA0BA902B7\"").unwrap();
        assert_eq!(s.as_str(), "00f067aa0ba902b7");
        assert!(serde_json::from_str::<SpanId>("\"00f0\"").is_err());
        let h: PayloadHash = serde_json::from_str("\"0123456789ABCDEF0123456789abcdef\"").unwrap();
        assert_eq!(h.as_str(), "0123456789abcdef0123456789abcdef");
        assert!(serde_json::from_str::<PayloadHash>("\"0123\"").is_err());
        assert!(
            serde_json::from_str::<PayloadHash>("\"'or'1'='1'-----------------------\"").is_err()
        );
    }
}
