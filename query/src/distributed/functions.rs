//! The functions of every process that plans or runs a distributed query: DataFusion's own,
//! with the built-ins whose result size an argument sets bounded ([`crate::bounded`]), so that
//! no process (the scheduler optimising a plan again, an executor running it) evaluates
//! `repeat('x', 2000000000)` unbounded. `requires_approval` travels in the plan ([`super::codec`]).

use std::sync::Arc;

use ballista_core::registry::BallistaFunctionRegistry;
use datafusion::execution::memory_pool::MemoryPool;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::ScalarUDF;

/// The bounded built-ins, charging `pool`.
pub fn bounded(pool: &Arc<dyn MemoryPool>) -> Vec<Arc<ScalarUDF>> {
    let state = SessionStateBuilder::new().with_default_features().build();
    crate::bounded::wrap_builtins(&state, pool)
        .into_iter()
        .map(Arc::new)
        .collect()
}

/// An executor's registry: every function a session of DataFusion's has (Ballista's own
/// registry lacks the nested-type ones, `cardinality`, `array_agg`'s kin), with the bounded
/// built-ins in place of DataFusion's.
pub fn registry(pool: &Arc<dyn MemoryPool>) -> BallistaFunctionRegistry {
    let state = SessionStateBuilder::new().with_default_features().build();
    let mut registry = BallistaFunctionRegistry::default();
    registry
        .scalar_functions
        .extend(state.scalar_functions().clone());
    registry
        .aggregate_functions
        .extend(state.aggregate_functions().clone());
    registry
        .window_functions
        .extend(state.window_functions().clone());
    for udf in bounded(pool) {
        registry.scalar_functions.insert(udf.name().to_owned(), udf);
    }
    registry
}

#[cfg(test)]
mod tests {
    use datafusion::execution::memory_pool::GreedyMemoryPool;
    use datafusion::logical_expr::Volatility;

    use super::*;

    #[test]
    fn executors_run_the_bounded_built_ins() {
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1 << 20));
        let registry = registry(&pool);
        let repeat = &registry.scalar_functions["repeat"];
        // The wrapper: volatile, so that no planner folds it into a literal.
        assert_eq!(repeat.signature().volatility, Volatility::Volatile);
        for name in [
            "lower",
            "cardinality",
            "array_has",
            "get_field",
            "date_trunc",
        ] {
            assert!(registry.scalar_functions.contains_key(name), "{name}");
        }
        assert!(registry.aggregate_functions.contains_key("approx_distinct"));
    }
}
