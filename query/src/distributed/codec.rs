//! How Cairn's tables and functions travel inside Ballista's plans.
//!
//! A logical plan names each of Cairn's tables by a [`TableSpec`] (tenant, dataset, hours), read
//! back over the receiving process's own store; `requires_approval` carries the operator's rules
//! with it, so that every process applies the rules of the querier that planned the query.
//! Everything else is Ballista's own encoding (its shuffle nodes, DataFusion's built-ins).

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::catalog::TableProvider;
use datafusion::common::{DataFusionError, Result, TableReference};
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Extension, LogicalPlan, ScalarUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use object_store::ObjectStore;

use crate::catalog::{TableSpec, TenantTable, STORE_URL};
use crate::policy::{requires_approval_udf, RequiresApproval, REQUIRES_APPROVAL};
use crate::run_parts::RunParts;

/// Marks an encoded [`TenantTable`].
const TENANT_TABLE: &[u8] = b"cairn.tenant_table.v1\n";
/// Marks an encoded [`RunParts`].
const RUN_PARTS: &[u8] = b"cairn.run_parts.v1\n";

/// Cairn's tables and `requires_approval` in logical plans, Ballista's codec for the rest.
#[derive(Debug, Default)]
pub struct LogicalCodec {
    inner: BallistaLogicalExtensionCodec,
}

/// `requires_approval` in physical plans, Ballista's codec for the rest.
#[derive(Debug, Default)]
pub struct PhysicalCodec {
    inner: BallistaPhysicalExtensionCodec,
}

fn encode_spec(tag: &[u8], spec: &TableSpec, buf: &mut Vec<u8>) -> Result<()> {
    buf.extend_from_slice(tag);
    serde_json::to_writer(buf, spec).map_err(|e| DataFusionError::External(Box::new(e)))
}

fn decode_spec(json: &[u8]) -> Result<TableSpec> {
    serde_json::from_slice(json)
        .map_err(|e| DataFusionError::Plan(format!("a Cairn table in the plan: {e}")))
}

/// The store registered in this process's runtime, as readers see it.
fn store(ctx: &TaskContext) -> Result<Arc<dyn ObjectStore>> {
    ctx.runtime_env()
        .object_store(ObjectStoreUrl::parse(STORE_URL)?)
}

/// `requires_approval`'s rules, when `udf` is it.
fn encode_udf(udf: &ScalarUDF, buf: &mut Vec<u8>) -> Result<bool> {
    let Some(approval) = udf.inner().downcast_ref::<RequiresApproval>() else {
        return Ok(false);
    };
    serde_json::to_writer(buf, approval.rules())
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    Ok(true)
}

/// `requires_approval` with the rules `buf` carries, when `name` is it.
fn decode_udf(name: &str, buf: &[u8]) -> Result<Option<Arc<ScalarUDF>>> {
    if name != REQUIRES_APPROVAL {
        return Ok(None);
    }
    let rules: Vec<String> = if buf.is_empty() {
        Vec::new()
    } else {
        serde_json::from_slice(buf)
            .map_err(|e| DataFusionError::Plan(format!("{REQUIRES_APPROVAL}'s rules: {e}")))?
    };
    Ok(Some(Arc::new(requires_approval_udf(Arc::new(rules)))))
}

impl LogicalExtensionCodec for LogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        if let Some(json) = buf.strip_prefix(TENANT_TABLE) {
            let table = TenantTable::from_spec(store(ctx)?, &decode_spec(json)?)?;
            return Ok(Arc::new(table));
        }
        if let Some(json) = buf.strip_prefix(RUN_PARTS) {
            let table = RunParts::from_spec(store(ctx)?, &decode_spec(json)?, schema)?;
            return Ok(Arc::new(table));
        }
        self.inner
            .try_decode_table_provider(buf, table_ref, schema, ctx)
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        if let Some(table) = node.downcast_ref::<TenantTable>() {
            return encode_spec(TENANT_TABLE, &table.spec(), buf);
        }
        if let Some(table) = node.downcast_ref::<RunParts>() {
            return encode_spec(RUN_PARTS, &table.spec(), buf);
        }
        self.inner.try_encode_table_provider(table_ref, node, buf)
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> Result<()> {
        self.inner.try_encode_file_format(buf, node)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        match decode_udf(name, buf)? {
            Some(udf) => Ok(udf),
            None => self.inner.try_decode_udf(name, buf),
        }
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        if encode_udf(node, buf)? {
            return Ok(());
        }
        self.inner.try_encode_udf(node, buf)
    }
}

impl PhysicalExtensionCodec for PhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.inner.try_decode(buf, inputs, ctx, proto_converter)
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        self.inner.try_encode(node, buf, proto_converter)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        match decode_udf(name, buf)? {
            Some(udf) => Ok(udf),
            None => self.inner.try_decode_udf(name, buf),
        }
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        if encode_udf(node, buf)? {
            return Ok(());
        }
        self.inner.try_encode_udf(node, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_schema::tenant::Tenant;
    use datafusion::prelude::SessionContext;

    fn task() -> Arc<TaskContext> {
        let ctx = SessionContext::new();
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        ctx.runtime_env()
            .register_object_store(&url::Url::parse(STORE_URL).unwrap(), store);
        ctx.task_ctx()
    }

    #[test]
    fn tables_travel_with_their_tenant_and_hours() {
        let codec = LogicalCodec::default();
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let table = TenantTable::payloads(store, Tenant::new("acme").unwrap()).within_hours(3, 9);
        let mut buf = Vec::new();
        let name = TableReference::bare("payloads");
        codec
            .try_encode_table_provider(&name, Arc::new(table), &mut buf)
            .unwrap();
        let decoded = codec
            .try_decode_table_provider(
                &buf,
                &name,
                cairn_schema::columns::payloads_schema(),
                &task(),
            )
            .unwrap();
        let decoded = decoded.downcast_ref::<TenantTable>().unwrap();
        let spec = decoded.spec();
        assert_eq!(spec.tenant, "acme");
        assert_eq!(spec.dataset, "payloads");
        assert_eq!(spec.within, Some((3, 9)));
        // A tenant name that is not one is refused, not read as some prefix of the store.
        let mut bad = TENANT_TABLE.to_vec();
        bad.extend_from_slice(br#"{"tenant":"../x","dataset":"spans","within":null,"only":null}"#);
        assert!(codec
            .try_decode_table_provider(&bad, &name, cairn_schema::columns::spans_schema(), &task())
            .is_err());
    }

    #[test]
    fn approval_rules_travel_with_the_function() {
        let udf = requires_approval_udf(Arc::new(vec!["delete_*".into()]));
        let mut buf = Vec::new();
        PhysicalCodec::default()
            .try_encode_udf(&udf, &mut buf)
            .unwrap();
        let decoded = PhysicalCodec::default()
            .try_decode_udf(REQUIRES_APPROVAL, &buf)
            .unwrap();
        let rules = decoded
            .inner()
            .downcast_ref::<RequiresApproval>()
            .unwrap()
            .rules();
        assert_eq!(rules, ["delete_*"]);
        let mut buf = Vec::new();
        LogicalCodec::default()
            .try_encode_udf(&udf, &mut buf)
            .unwrap();
        let decoded = LogicalCodec::default()
            .try_decode_udf(REQUIRES_APPROVAL, &buf)
            .unwrap();
        let rules = decoded
            .inner()
            .downcast_ref::<RequiresApproval>()
            .unwrap()
            .rules();
        assert_eq!(rules, ["delete_*"]);
    }
}
