//! Agent identity inherited from ancestors that arrive later: the steps of an agent are
//! exported before the agent span itself (it ends last); and a tool run without a call id
//! exported before the model turn that asked for it. The run API shows both at once; the
//! stored rows get them when compaction merges the partition.

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::Value;

use crate::bad_input::{post, request, PB};
use crate::harness::{temp_dir, Cairn};
use crate::hostile_api::text;

const TRACE: [u8; 16] = [0x1a; 16];

/// A span of an hour that is over (so compaction merges its partition from two files).
fn step(id: u8, parent: Option<u8>, name: &str, attrs: Vec<KeyValue>) -> Span {
    let hour = 3_600_000_000_000u64;
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap() as u64;
    let start = (now / hour - 2) * hour + u64::from(id) * 1_000_000;
    Span {
        trace_id: TRACE.to_vec(),
        span_id: vec![id; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: name.into(),
        start_time_unix_nano: start,
        end_time_unix_nano: start + 500_000,
        attributes: attrs,
        ..Default::default()
    }
}

fn export(spans: Vec<Span>) -> Vec<u8> {
    let mut req = request(Vec::new());
    req.resource_spans = vec![ResourceSpans {
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "strands.telemetry.tracer".into(),
                ..Default::default()
            }),
            spans,
            ..Default::default()
        }],
        ..req.resource_spans[0].clone()
    }];
    req.encode_to_vec()
}

fn hex(id: u8) -> String {
    format!("{id:02x}").repeat(8)
}

async fn stored(cairn: &Cairn) -> Vec<Value> {
    cairn
        .sql(
            None,
            "SELECT span_id, agent_name, agent_name_src, framework, parent_agent_name,
                    tool_call_id, tool_call_id_src
             FROM spans ORDER BY span_id",
        )
        .await
}

/// Each step of the run API's tree, depth first.
fn flatten(steps: &[Value], out: &mut Vec<Value>) {
    for s in steps {
        out.push(s.clone());
        flatten(s["children"].as_array().map_or(&[][..], Vec::as_slice), out);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn steps_take_their_agent_from_an_ancestor_exported_later() {
    let dir = temp_dir();
    let store = dir.path().join("data").display().to_string();
    let agent = |name: &str| {
        vec![
            text("gen_ai.operation.name", "invoke_agent"),
            text("gen_ai.agent.name", name),
        ]
    };
    let chat = vec![
        text("gen_ai.operation.name", "chat"),
        text("gen_ai.request.model", "gpt-4o-mini"),
    ];
    let tool = vec![
        text("gen_ai.operation.name", "execute_tool"),
        text("gen_ai.tool.name", "get_weather"),
    ];
    {
        let cairn = Cairn::start_on(&store, &[], &[]);
        // The sub-agent's steps, then (a flush later) the agents, as a batching SDK sends them.
        // A tool run that sends no call id, flushed before the model turn that asked for it.
        let lookup = vec![
            text("gen_ai.operation.name", "execute_tool"),
            text("gen_ai.tool.name", "lookup"),
        ];
        let steps = export(vec![
            step(4, Some(3), "chat", chat.clone()),
            step(5, Some(3), "execute_tool get_weather", tool),
            step(2, Some(1), "chat", chat.clone()),
            step(8, Some(3), "execute_tool lookup", lookup),
        ]);
        assert_eq!(post(&cairn, PB, None, steps).await.0, 200);
        assert_eq!(cairn.wait_for_count(None, "spans", 4).await, 4);
        let asks = [
            chat,
            vec![text(
                "gen_ai.output.messages",
                r#"[{"role":"assistant","parts":[{"type":"tool_call","id":"c9","name":"lookup","arguments":{}}]}]"#,
            )],
        ]
        .concat();
        let delegate = vec![text("gen_ai.tool.name", "delegate")];
        let agents = export(vec![
            step(
                3,
                Some(6),
                "invoke_agent weather_agent",
                agent("weather_agent"),
            ),
            step(6, Some(1), "execute_tool delegate", delegate),
            step(1, None, "invoke_agent supervisor", agent("supervisor")),
            step(7, Some(3), "chat", asks),
        ]);
        assert_eq!(post(&cairn, PB, None, agents).await.0, 200);
        assert_eq!(cairn.wait_for_count(None, "spans", 8).await, 8);

        let rows = stored(&cairn).await;
        // Written before their agent arrived: not yet resolved in storage.
        assert_eq!(rows[3]["span_id"], hex(4));
        assert_eq!(rows[3]["agent_name"], Value::Null, "{rows:?}");
        // Flushed with its agent: resolved at once.
        assert_eq!(rows[5]["span_id"], hex(6));
        assert_eq!(rows[5]["agent_name"], "supervisor");
        assert_eq!(rows[5]["agent_name_src"], format!("inherited:{}", hex(1)));

        // The run API resolves the whole run as it reads it.
        let run = cairn.run(None, &"1a".repeat(16)).await;
        let mut all = Vec::new();
        flatten(run["steps"].as_array().unwrap(), &mut all);
        let by_id = |id: u8| {
            all.iter()
                .find(|s| s["span_id"] == hex(id))
                .unwrap()
                .clone()
        };
        assert_eq!(by_id(4)["agent_name"], "weather_agent");
        assert_eq!(by_id(4)["agent_name_src"], format!("inherited:{}", hex(3)));
        assert_eq!(by_id(4)["parent_agent_name"], "supervisor");
        assert_eq!(by_id(4)["framework"], "strands-agents");
        assert_eq!(by_id(5)["agent_name"], "weather_agent");
        assert_eq!(by_id(2)["agent_name"], "supervisor");
        assert_eq!(by_id(3)["parent_agent_name"], "supervisor");
        assert_eq!(
            by_id(3)["parent_agent_name_src"],
            format!("ancestor:{}", hex(1))
        );
        assert!(by_id(1).get("parent_agent_name").is_none());
        // The tool run is matched to the turn that asked for it, marked as derived.
        assert_eq!(rows[7]["tool_call_id"], Value::Null, "{rows:?}");
        assert_eq!(by_id(8)["tool_call_id"], "c9");
        assert_eq!(by_id(8)["tool_call_id_src"], format!("derived:{}", hex(7)));
        assert!(cairn.stop());
    }

    // Compaction merges the partition's two files and resolves every step in storage.
    let cairn = Cairn::start_on(
        &store,
        &[
            "--compaction",
            "on",
            "--compaction-interval",
            "100ms",
            "--compaction-grace",
            "1s",
        ],
        &[],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = stored(&cairn).await;
        if rows[3]["agent_name"] == "weather_agent" {
            assert_eq!(rows[3]["agent_name_src"], format!("inherited:{}", hex(3)));
            assert_eq!(rows[3]["parent_agent_name"], "supervisor");
            assert_eq!(rows[4]["agent_name"], "weather_agent");
            assert_eq!(rows[1]["agent_name"], "supervisor");
            assert_eq!(rows[2]["parent_agent_name"], "supervisor");
            assert_eq!(rows[7]["tool_call_id"], "c9");
            assert_eq!(rows[7]["tool_call_id_src"], format!("derived:{}", hex(7)));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not resolved by compaction: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
