//! OTLP/HTTP request bodies: content encoding (gzip, with a cap on the decompressed size) and
//! content type (protobuf or the proto3 JSON mapping).

use std::io::Read;

use bytes::Bytes;
use cairn_normalize::otlp::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use crate::admission::Charge;
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

/// Inflated bytes read at a time, each charged before the next is read.
const INFLATE_CHUNK: usize = 64 << 10;

/// Undoes `Content-Encoding`, refusing anything that inflates past `limit` bytes. The inflated
/// bytes are charged to `charge` as they grow, so a small body that inflates to a large one is
/// refused before it takes the memory.
pub fn decode_content(
    encoding: Option<&str>,
    body: Bytes,
    limit: usize,
    charge: &mut Charge,
) -> Result<Bytes> {
    match encoding.map(|e| e.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("identity") => Ok(body),
        Some("gzip") | Some("x-gzip") => {
            let mut out = Vec::new();
            let mut reader = flate2::read::MultiGzDecoder::new(&body[..]).take(limit as u64 + 1);
            loop {
                out.reserve(INFLATE_CHUNK);
                charge.grow_to(body.len() + out.capacity(), "the inflated body")?;
                let len = out.len();
                out.resize(len + INFLATE_CHUNK, 0);
                let n = reader
                    .read(&mut out[len..])
                    .map_err(|e| Error::BadRequest(format!("gzip body is invalid: {e}")))?;
                out.truncate(len + n);
                if n == 0 {
                    break;
                }
                if out.len() > limit {
                    return Err(Error::TooLarge(format!(
                        "gzip body inflates past the limit of {limit} bytes"
                    )));
                }
            }
            Ok(Bytes::from(out))
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
        let budget = crate::admission::Budget::new(64 << 20);
        let inflate = |encoding, body: &[u8], limit| {
            decode_content(
                Some(encoding),
                Bytes::copy_from_slice(body),
                limit,
                &mut budget.charge(),
            )
        };
        let bomb = gzip(&vec![0u8; 10 << 20]);
        assert!(bomb.len() < 64 << 10);
        assert!(matches!(
            inflate("gzip", &bomb, 1 << 20),
            Err(Error::TooLarge(_))
        ));
        assert_eq!(&inflate("gzip", &gzip(b"abc"), 3).unwrap()[..], b"abc");
        assert!(matches!(
            inflate("gzip", b"not gzip", 100),
            Err(Error::BadRequest(_))
        ));
        assert!(matches!(
            inflate("br", b"x", 100),
            Err(Error::UnsupportedMediaType(_))
        ));
        // Inflating is charged as it goes: a budget smaller than the inflated body refuses it.
        let small = crate::admission::Budget::new(1 << 20);
        let mut charge = small.charge();
        assert!(matches!(
            decode_content(Some("gzip"), Bytes::from(bomb), 16 << 20, &mut charge),
            Err(Error::TooLarge(_))
        ));
        drop(charge);
        assert_eq!(small.used_bytes(), 0);
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
