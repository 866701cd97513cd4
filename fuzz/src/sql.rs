//! The `sql` target: the read-only guard, then logical and physical planning in a tenant's
//! session over an empty in-memory store (nothing is executed). Shared with the query crate's
//! regression tests (which include this file).

use std::sync::LazyLock;

use cairn_query::{guard, EngineConfig, QueryEngine};
use cairn_schema::tenant::Tenant;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::SessionContext;

struct Planner {
    runtime: tokio::runtime::Runtime,
    ctx: SessionContext,
}

static PLANNER: LazyLock<Planner> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = cairn_store::open("memory://").expect("memory store");
    let config = EngineConfig {
        query_memory: 256 << 20,
        spill_dir: std::env::temp_dir().join("cairn-fuzz-spill"),
        ..EngineConfig::default()
    };
    let engine = QueryEngine::new(store, &config).expect("engine");
    let ctx = runtime
        .block_on(engine.session(&Tenant::new("fuzz").expect("tenant")))
        .expect("session");
    Planner { runtime, ctx }
});

/// One SQL text: what the guard admits must plan without a panic, and must not be a statement
/// that DataFusion's own read-only options (the engine's second lock) refuse.
pub fn sql_target(data: &[u8]) {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    if guard::check(sql).is_err() {
        return;
    }
    let planner = &*PLANNER;
    let state = planner.ctx.state();
    planner.runtime.block_on(async {
        let Ok(plan) = state.create_logical_plan(sql).await else {
            return;
        };
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        if let Err(e) = options.verify_plan(&plan) {
            panic!("the guard admitted a statement that SQLOptions refuse: {e}");
        }
        let _ = state.create_physical_plan(&plan).await;
    });
}
