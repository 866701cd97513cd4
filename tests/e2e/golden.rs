//! Golden answers, kept as files beside this one (`snapshots/`): the columns of every table and
//! view, and the API's answers for a real instrumentation's run (OpenInference, OpenAI Agents
//! with a hand-off and a tool call). A change to a view or an answer shows up in review as a
//! diff of these files; `INSTA_UPDATE=always cargo nextest run -E 'test(golden)'` rewrites them.

use serde_json::Value;

use crate::harness::{client, Cairn};

const TRACE: &str = "bedc25e6f3ebcf12f3d06f863fffc830";
/// The `get_weather` tool call of the run.
const TOOL_STEP: &str = "5cd2875ea96ec2b3";

async fn get(cairn: &Cairn, path: &str) -> Value {
    let resp = client()
        .get(format!("http://{}{path}", cairn.http))
        .header("X-Scope-OrgID", "golden")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

fn snapshot(name: &str, value: &Value) {
    insta::with_settings!({ snapshot_path => "snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_json_snapshot!(name, value);
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn golden_views_and_answers() {
    let cairn = Cairn::start(&[]);
    let body = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/openinference_agents_handoff.otlp.json"
    ))
    .unwrap();
    let resp = client()
        .post(format!("http://{}/v1/traces", cairn.otlp_http))
        .header("content-type", "application/json")
        .header("X-Scope-OrgID", "golden")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(cairn.wait_for_count(Some("golden"), "spans", 12).await, 12);

    let columns = cairn
        .sql(
            Some("golden"),
            "SELECT table_name, column_name, data_type FROM information_schema.columns \
             WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
        )
        .await;
    snapshot("columns", &Value::Array(columns));
    snapshot("run", &get(&cairn, &format!("/api/v1/runs/{TRACE}")).await);
    snapshot(
        "why",
        &get(
            &cairn,
            &format!("/api/v1/runs/{TRACE}/steps/{TOOL_STEP}/why"),
        )
        .await,
    );
    snapshot(
        "lineage",
        &get(&cairn, &format!("/api/v1/runs/{TRACE}/lineage")).await,
    );
    snapshot(
        "replay",
        &get(&cairn, &format!("/api/v1/runs/{TRACE}/replay")).await,
    );
}
