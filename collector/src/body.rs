//! OTLP/HTTP request bodies: content encoding (gzip, with a cap on the decompressed size) and
//! content type (protobuf or the proto3 JSON mapping).

use std::io::Read;

use cairn_schema::otlp::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use crate::{Error, Result};

/// The two OTLP/HTTP payload encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Protobuf,
    Json,
}

impl Format {
    /// Parses a `Content-Type` header value (parameters such as `charset` are ignored).
    pub fn from_content_type(value: Option<&str>) -> Result<Self> {
        let essence = value
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/x-protobuf" | "application/protobuf" => Ok(Format::Protobuf),
            "application/json" => Ok(Format::Json),
            "" => Err(Error::UnsupportedMediaType(
                "Content-Type is missing: use application/x-protobuf or application/json".into(),
            )),
            other => Err(Error::UnsupportedMediaType(format!(
                "Content-Type {other:?} is not supported: use application/x-protobuf or application/json"
            ))),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => "application/x-protobuf",
            Format::Json => "application/json",
        }
    }
}

/// Undoes `Content-Encoding`, refusing anything that inflates past `limit` bytes.
pub fn decode_content(encoding: Option<&str>, body: &[u8], limit: usize) -> Result<Vec<u8>> {
    match encoding.map(|e| e.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("identity") => Ok(body.to_vec()),
        Some("gzip") | Some("x-gzip") => {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(body)
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| Error::BadRequest(format!("gzip body is invalid: {e}")))?;
            if out.len() > limit {
                return Err(Error::TooLarge(format!(
                    "gzip body inflates past the limit of {limit} bytes"
                )));
            }
            Ok(out)
        }
        Some(other) => Err(Error::UnsupportedMediaType(format!(
            "Content-Encoding {other:?} is not supported: use gzip or none"
        ))),
    }
}

/// Decodes an export request in `format`.
pub fn decode_request(format: Format, bytes: &[u8]) -> Result<ExportTraceServiceRequest> {
    match format {
        Format::Protobuf => ExportTraceServiceRequest::decode(bytes)
            .map_err(|e| Error::BadRequest(format!("protobuf body is invalid: {e}"))),
        Format::Json => serde_json::from_slice(bytes)
            .map_err(|e| Error::BadRequest(format!("JSON body is invalid: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Format::from_content_type(Some("application/json; charset=utf-8")).unwrap(),
            Format::Json
        );
        assert_eq!(
            Format::from_content_type(Some("application/x-protobuf")).unwrap(),
            Format::Protobuf
        );
        assert!(matches!(
            Format::from_content_type(Some("text/plain")),
            Err(Error::UnsupportedMediaType(_))
        ));
        assert!(matches!(
            Format::from_content_type(None),
            Err(Error::UnsupportedMediaType(_))
        ));
    }

    #[test]
    fn gzip_is_capped() {
        let bomb = gzip(&vec![0u8; 10 << 20]);
        assert!(bomb.len() < 64 << 10);
        assert!(matches!(
            decode_content(Some("gzip"), &bomb, 1 << 20),
            Err(Error::TooLarge(_))
        ));
        assert_eq!(
            decode_content(Some("gzip"), &gzip(b"abc"), 3).unwrap(),
            b"abc"
        );
        assert!(matches!(
            decode_content(Some("gzip"), b"not gzip", 100),
            Err(Error::BadRequest(_))
        ));
        assert!(matches!(
            decode_content(Some("br"), b"x", 100),
            Err(Error::UnsupportedMediaType(_))
        ));
    }

    #[test]
    fn json_ids_and_ints() {
        let json = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{
            "traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174",
            "name":"x","kind":2,"startTimeUnixNano":"1544712660000000000",
            "endTimeUnixNano":1544712661000000000,
            "attributes":[{"key":"n","value":{"intValue":"42"}},{"key":"m","value":{"intValue":7}}]}]}]}]}"#;
        let req = decode_request(Format::Json, json.as_bytes()).unwrap();
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.trace_id.len(), 16);
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
        assert!(decode_request(Format::Json, b"{").is_err());
        assert!(decode_request(Format::Protobuf, &[0x0a, 0xff, 0xff]).is_err());
    }
}
