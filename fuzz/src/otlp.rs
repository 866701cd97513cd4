//! The OTLP/HTTP body and write-ahead log targets, shared with the collector's regression tests
//! (which include this file next to `normalise.rs`).

use cairn_collector::admission::Budget;
use cairn_collector::body::{decode_content, decode_request, Format};
use cairn_collector::ingest;
use cairn_collector::wal::{encode_placed_record, encode_record, parse_segment, placements_json};
use cairn_collector::Error;
use prost::bytes::Bytes;
use prost::Message;

/// Decompressed body limit, as small as the inputs so that a gzip seed stays cheap.
const BODY_LIMIT: usize = 1 << 20;

/// The collector's memory budget in these targets.
const BUDGET: usize = 64 << 20;

/// An OTLP/HTTP protobuf body: admitted (estimated, charged), decoded, normalised and read back.
/// A body starting with the gzip magic goes through `Content-Encoding: gzip` first.
pub fn otlp_protobuf(data: &[u8]) {
    otlp_body(Format::Protobuf, data);
}

/// An OTLP/HTTP JSON body, as [`otlp_protobuf`]; what decodes must also survive the protobuf
/// form it is stored as in the write-ahead log.
pub fn otlp_json(data: &[u8]) {
    otlp_body(Format::Json, data);
}

fn otlp_body(format: Format, data: &[u8]) {
    let budget = Budget::new(BUDGET);
    let mut charge = budget.charge();
    let encoding = data.starts_with(&[0x1f, 0x8b]).then_some("gzip");
    let Ok(body) = decode_content(
        encoding,
        Bytes::copy_from_slice(data),
        BODY_LIMIT,
        &mut charge,
    ) else {
        return;
    };
    // The size estimate walks the body without decoding it: it must not refuse as malformed a
    // protobuf body the decoder reads. (JSON is held to the proto3 JSON mapping, stricter than
    // serde's derive, which also reads a message from an array of its fields.)
    let request = match (
        ingest::decode(format, &body, BUDGET, &mut charge),
        decode_request(format, &body),
    ) {
        (Ok((request, _)), _) => request,
        (Err(Error::BadRequest(e)), Ok(_)) if format == Format::Protobuf => {
            panic!("admission refuses as malformed a request that decodes: {e}")
        }
        _ => return,
    };
    // The collector appends the request to the WAL as protobuf and replays it from there.
    let bytes = request.encode_to_vec();
    let (records, good) = parse_segment(&encode_record(b"t", &bytes));
    assert_eq!(
        records.len(),
        1,
        "a decoded request does not replay from the WAL"
    );
    assert_eq!(good, 8 + 2 + 1 + bytes.len());
    assert_eq!(
        records[0].1.encode_to_vec(),
        bytes,
        "WAL replay changes the request"
    );
    crate::normalise::check_request(&request);
}

/// Segment bytes for the WAL reader. The first byte picks the mode, since a mutated record
/// rarely keeps a valid checksum:
/// - 0: the rest is a segment, parsed as it is;
/// - 1: the rest is a list of records, each `tenant_len: u8 | tenant | request_len: u16 LE |
///   request`, framed with valid checksums (any tenant bytes);
/// - 2, 3: as 1, then cut at, or with one byte flipped at, the offset in the next two bytes.
pub fn wal_record(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let segment = match mode % 4 {
        0 => rest.to_vec(),
        m => {
            let (at, rest) = match m {
                1 => (None, rest),
                _ if rest.len() >= 2 => (Some(u16::from_le_bytes([rest[0], rest[1]])), &rest[2..]),
                _ => return,
            };
            let mut segment = frame(rest);
            if let Some(at) = at.map(usize::from).filter(|&at| at < segment.len()) {
                if m == 2 {
                    segment.truncate(at);
                } else {
                    segment[at] ^= 0x55;
                }
            }
            segment
        }
    };
    let (records, good) = parse_segment(&segment);
    assert!(good <= segment.len());
    // The intact prefix holds exactly the records, and writing them again gives a segment that
    // reads back whole, to the same requests.
    let (again, again_good) = parse_segment(&segment[..good]);
    assert_eq!(again.len(), records.len());
    assert_eq!(again_good, good);
    let mut rewritten = Vec::new();
    for (tenant, request, placements) in &records {
        let placements = placements_json(placements).expect("placements that were read encode");
        rewritten.extend(encode_placed_record(
            tenant.as_str().as_bytes(),
            placements.as_deref(),
            &request.encode_to_vec(),
        ));
    }
    let (back, back_good) = parse_segment(&rewritten);
    assert_eq!(
        back_good,
        rewritten.len(),
        "rewritten records do not read back"
    );
    assert_eq!(back.len(), records.len());
    for ((t1, r1, p1), (t2, r2, p2)) in records.iter().zip(&back) {
        assert_eq!(t1, t2);
        assert_eq!(r1.encode_to_vec(), r2.encode_to_vec());
        assert_eq!(p1, p2);
    }
}

/// Frames the records of mode 1 with valid checksums.
fn frame(mut rest: &[u8]) -> Vec<u8> {
    let mut segment = Vec::new();
    while let Some((&tlen, r)) = rest.split_first() {
        let tlen = usize::from(tlen).min(r.len());
        let (tenant, r) = r.split_at(tlen);
        let (request, r) = match r {
            [a, b, r @ ..] => r.split_at(usize::from(u16::from_le_bytes([*a, *b])).min(r.len())),
            r => (r, &r[r.len()..]),
        };
        segment.extend(encode_record(tenant, request));
        rest = r;
    }
    segment
}
