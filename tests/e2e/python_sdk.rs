//! The Python OpenTelemetry SDK (PyPI) exporting over gRPC, HTTP/protobuf and HTTP/JSON, plain
//! and gzip; every span is compared field by field with what the SDK exported.

use crate::harness::{python_script as script, run_python as run, temp_dir, Cairn};

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_all_protocols() {
    let cairn = Cairn::start(&["--ack", "wal"]);
    let dir = temp_dir();
    let send = script("send_spans.py");
    let send = send.to_str().unwrap();
    let mut default_files = Vec::new();
    for protocol in ["grpc", "http-protobuf", "http-json"] {
        let endpoint = match protocol {
            "grpc" => format!("http://{}", cairn.grpc),
            _ => format!("http://{}/v1/traces", cairn.otlp_http),
        };
        for gzip in [false, true] {
            let out = dir.path().join(format!("{protocol}-{gzip}.json"));
            let out_s = out.to_str().unwrap().to_owned();
            let mut args = vec![
                send,
                "--protocol",
                protocol,
                "--endpoint",
                &endpoint,
                "--out",
                &out_s,
            ];
            if gzip {
                args.push("--gzip");
            }
            run(&args);
            default_files.push(out_s);
        }
    }
    let acme = dir.path().join("acme.json").display().to_string();
    let grpc_endpoint = format!("http://{}", cairn.grpc);
    run(&[
        send,
        "--protocol",
        "grpc",
        "--endpoint",
        &grpc_endpoint,
        "--out",
        &acme,
        "--tenant",
        "acme",
    ]);

    // Acknowledged to the write-ahead log: visible at the next flush.
    assert_eq!(cairn.wait_for_count(None, "spans", 18).await, 18);
    assert_eq!(cairn.wait_for_count(Some("acme"), "spans", 3).await, 3);
    let check = script("check_sql.py");
    let check = check.to_str().unwrap();
    let base = format!("http://{}", cairn.http);
    let mut args = vec![check, "--query", &base];
    args.extend(default_files.iter().map(String::as_str));
    run(&args);
    run(&[check, "--query", &base, "--tenant", "acme", &acme]);
    run(&[check, "--query", &base, "--absent", &acme]);
    let mut args = vec![check, "--query", &base, "--tenant", "acme", "--absent"];
    args.extend(default_files.iter().map(String::as_str));
    run(&args);

    let spans_per_run = cairn.count(None, "spans").await;
    assert_eq!(spans_per_run, 18, "six runs of three spans");
    let with_links = cairn
        .count(None, "spans WHERE cardinality(links) > 0")
        .await;
    assert_eq!(with_links, 6);
}
