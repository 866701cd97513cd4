//! Writes the seed corpora of the fuzz targets (`fuzz/corpus/<target>/`) from the OTLP fixtures
//! in `tests/fixtures`: the JSON documents as they are, their protobuf encodings (one also
//! gzipped), and write-ahead log segments of their records in each of the `wal_record` target's
//! modes. The `sql` seeds are checked in as they are; `attributes` starts from a few fixed byte
//! strings.
//!
//!     cargo run -p cairn-collector --example fuzz_seeds

use std::io::Write;
use std::path::{Path, PathBuf};

use cairn_collector::body::{decode_request, Format};
use cairn_collector::wal::encode_record;
use prost::Message;

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("corpus directory");
    std::fs::write(dir.join(name), bytes).expect("seed written");
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let corpus = root.join("fuzz/corpus");
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(root.join("tests/fixtures"))
        .expect("tests/fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".otlp.json"))
        .collect();
    fixtures.sort();
    let mut requests = Vec::new();
    for path in &fixtures {
        let name = path.file_name().unwrap().to_string_lossy();
        let stem = name.trim_end_matches(".otlp.json");
        let json = std::fs::read(path).expect("fixture");
        let request = decode_request(Format::Json, &json).expect("fixture decodes");
        let proto = request.encode_to_vec();
        write(&corpus.join("otlp_json"), &format!("{stem}.json"), &json);
        write(&corpus.join("otlp_protobuf"), &format!("{stem}.pb"), &proto);
        requests.push((stem.to_owned(), proto));
    }
    // A small gzipped body, and the smallest JSON the collector's own tests use.
    let (stem, smallest) = requests.iter().min_by_key(|(_, p)| p.len()).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(smallest).unwrap();
    write(
        &corpus.join("otlp_protobuf"),
        &format!("{stem}.pb.gz"),
        &gz.finish().unwrap(),
    );
    write(
        &corpus.join("otlp_json"),
        "minimal.json",
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","name":"x","kind":2,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":1544712661000000000,"attributes":[{"key":"n","value":{"intValue":"42"}},{"key":"m","value":{"intValue":7}}]}]}]}]}"#,
    );
    // WAL segments: mode 0 (raw, two records and a torn tail), mode 1 (framed), 2 (cut), 3
    // (one byte flipped).
    let wal = corpus.join("wal_record");
    for (stem, proto) in &requests {
        let mut raw = vec![0u8];
        raw.extend(encode_record(b"tenant-a", proto));
        raw.extend(encode_record(b"default", &proto[..proto.len().min(40)]));
        raw.extend_from_slice(&[7, 0, 0]);
        write(&wal, &format!("{stem}.raw"), &raw);
        let take = proto.len().min(u16::MAX as usize);
        for (mode, at) in [(1u8, None), (2, Some(take as u16 / 2)), (3, Some(20u16))] {
            let mut framed = vec![mode];
            if let Some(at) = at {
                framed.extend(at.to_le_bytes());
            }
            framed.push(3);
            framed.extend(b"t-1");
            framed.extend((take as u16).to_le_bytes());
            framed.extend(&proto[..take]);
            framed.push(2);
            framed.extend(b"..");
            framed.extend(0u16.to_le_bytes());
            write(&wal, &format!("{stem}.mode{mode}"), &framed);
        }
    }
    // Fixed pseudo-random byte strings for the structure-aware target.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for i in 0..8 {
        let bytes: Vec<u8> = (0..64 << i.min(5))
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        write(&corpus.join("attributes"), &format!("seed-{i}"), &bytes);
    }
}
