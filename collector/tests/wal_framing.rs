//! The write-ahead log's record framing, tested on generated segments: a segment cut anywhere
//! reads back as exactly the records wholly before the cut, and a segment with any one bit
//! flipped reads back as exactly the records before the damaged one — a damaged record is
//! detected, never misread, and nothing after it is read.

use cairn_collector::wal::{encode_record, parse_segment};
use cairn_normalize::otlp::collector::trace::v1::ExportTraceServiceRequest;
use cairn_normalize::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
use proptest::prelude::*;
use prost::Message;

/// A valid tenant and a request of a few spans with generated names.
fn record() -> impl Strategy<Value = (String, Vec<u8>)> {
    let tenant = "[a-z][a-z0-9_-]{0,20}";
    let names = prop::collection::vec("[ -~]{0,40}", 0..4);
    (tenant, names).prop_map(|(tenant, names)| {
        let spans = names
            .into_iter()
            .enumerate()
            .map(|(i, name)| Span {
                trace_id: vec![1; 16],
                span_id: vec![i as u8 + 1; 8],
                name,
                ..Default::default()
            })
            .collect();
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        (tenant, request.encode_to_vec())
    })
}

/// The segment of `records` and where each record ends in it.
fn segment(records: &[(String, Vec<u8>)]) -> (Vec<u8>, Vec<usize>) {
    let mut bytes = Vec::new();
    let mut ends = Vec::new();
    for (tenant, request) in records {
        bytes.extend(encode_record(tenant.as_bytes(), request));
        ends.push(bytes.len());
    }
    (bytes, ends)
}

/// Asserts that `data` reads back as exactly the first `n` of `records`, ending at `end`.
fn reads_back_as(data: &[u8], records: &[(String, Vec<u8>)], n: usize, end: usize) {
    let (parsed, good) = parse_segment(data);
    assert_eq!(parsed.len(), n, "records read");
    assert_eq!(good, end, "intact prefix");
    for ((tenant, request, _), (want_tenant, want_request)) in parsed.iter().zip(records) {
        assert_eq!(tenant.as_str(), want_tenant);
        assert_eq!(&request.encode_to_vec(), want_request);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_cut_segment_reads_back_its_whole_records(
        records in prop::collection::vec(record(), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let (bytes, ends) = segment(&records);
        let cut = cut.index(bytes.len() + 1);
        let whole = ends.iter().take_while(|&&end| end <= cut).count();
        let end = if whole == 0 { 0 } else { ends[whole - 1] };
        reads_back_as(&bytes[..cut], &records, whole, end);
    }

    #[test]
    fn a_flipped_bit_is_detected_never_misread(
        records in prop::collection::vec(record(), 1..6),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let (mut bytes, ends) = segment(&records);
        let at = at.index(bytes.len());
        bytes[at] ^= 1 << bit;
        let damaged = ends.iter().take_while(|&&end| end <= at).count();
        let end = if damaged == 0 { 0 } else { ends[damaged - 1] };
        reads_back_as(&bytes, &records, damaged, end);
    }
}
