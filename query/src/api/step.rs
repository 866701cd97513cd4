//! One step of a run, decoded from the Arrow rows of `spans` straight into typed fields: the
//! trail, why-chain, replay, diff and lineage answers read and serialise these, never JSON
//! maps keyed by column name.
//!
//! A step decodes whichever of its columns a statement selected (the others stay `None`), and
//! serialises without its `None` fields, as every answer leaves out nulls. Timestamps are shown
//! in RFC 3339 as SQL answers show them.

use arrow::array::{ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, Float64Type, Int64Type, TimeUnit, TimestampNanosecondType,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::Result;

/// A timestamp in nanoseconds since the epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// RFC 3339 with as many fractional digits as the value needs (0, 3, 6 or 9), `Z` for UTC.
    pub fn rfc3339(self) -> String {
        chrono::DateTime::from_timestamp_nanos(self.0)
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        chrono::DateTime::parse_from_rfc3339(&text)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt())
            .map(Timestamp)
            .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not an RFC 3339 time")))
    }
}

/// A column type a step field is read as.
pub trait Column: Sized {
    /// The values of `array`, one per row.
    fn read(array: &ArrayRef) -> Result<Vec<Option<Self>>>;
    /// The value as JSON.
    fn json(&self) -> Value;
}

impl Column for String {
    fn read(array: &ArrayRef) -> Result<Vec<Option<Self>>> {
        let array = cast(array, &DataType::Utf8)?;
        Ok(array
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect())
    }

    fn json(&self) -> Value {
        Value::String(self.clone())
    }
}

/// Numbers, read as Arrow's primitive type `$arrow`.
macro_rules! number {
    ($t:ty, $arrow:ty) => {
        impl Column for $t {
            fn read(array: &ArrayRef) -> Result<Vec<Option<Self>>> {
                let array = cast(array, &<$arrow as ArrowPrimitiveType>::DATA_TYPE)?;
                Ok(array.as_primitive::<$arrow>().iter().collect())
            }

            fn json(&self) -> Value {
                Value::from(*self)
            }
        }
    };
}

number!(i64, Int64Type);
number!(f64, Float64Type);

impl Column for Timestamp {
    fn read(array: &ArrayRef) -> Result<Vec<Option<Self>>> {
        let array = cast(array, &DataType::Timestamp(TimeUnit::Nanosecond, None))?;
        Ok(array
            .as_primitive::<TimestampNanosecondType>()
            .iter()
            .map(|v| v.map(Timestamp))
            .collect())
    }

    fn json(&self) -> Value {
        Value::String(self.rfc3339())
    }
}

/// A list of text; null items are left out.
impl Column for Vec<String> {
    fn read(array: &ArrayRef) -> Result<Vec<Option<Self>>> {
        let item = Field::new("item", DataType::Utf8, true);
        let array = cast(array, &DataType::List(item.into()))?;
        Ok(array
            .as_list::<i32>()
            .iter()
            .map(|list| {
                list.map(|l| {
                    l.as_string::<i32>()
                        .iter()
                        .flatten()
                        .map(str::to_owned)
                        .collect()
                })
            })
            .collect())
    }

    fn json(&self) -> Value {
        Value::from(self.clone())
    }
}

/// Declares [`Step`]: its columns (decoded from Arrow, in this order), then the payload
/// contents resolved beside their references.
macro_rules! step {
    (columns { $($column:ident: $ty:ty,)* } contents { $($content:ident: $cty:ty => $to_json:expr,)* }) => {
        /// One step (span) of a run; see the module header. It reads back from its JSON.
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(default)]
        pub struct Step {
            $(
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $column: Option<$ty>,
            )*
            $(
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $content: Option<$cty>,
            )*
        }

        /// Every column a step is decoded from, in order.
        pub const COLUMNS: &[&str] = &[$(stringify!($column)),*];

        impl Step {
            /// The steps of `batch`, one per row, from whichever of [`COLUMNS`] it has.
            pub fn decode(batch: &RecordBatch) -> Result<Vec<Step>> {
                let mut steps = vec![Step::default(); batch.num_rows()];
                $(
                    if let Some(array) = batch.column_by_name(stringify!($column)) {
                        let values = <$ty as Column>::read(array)?;
                        for (step, value) in steps.iter_mut().zip(values) {
                            step.$column = value;
                        }
                    }
                )*
                Ok(steps)
            }

            /// Clears, in each of `steps`, the columns not among `columns`.
            pub fn keep_columns(steps: &mut [Step], columns: &[&str]) {
                let keep: Vec<bool> = COLUMNS.iter().map(|c| columns.contains(c)).collect();
                for step in steps {
                    let mut keep = keep.iter();
                    $(
                        if keep.next() == Some(&false) {
                            step.$column = None;
                        }
                    )*
                }
            }

            /// The field called `name` (a column or a resolved content) as JSON, if set.
            pub fn get(&self, name: &str) -> Option<Value> {
                match name {
                    $(stringify!($column) => self.$column.as_ref().map(Column::json),)*
                    $(stringify!($content) => self.$content.as_ref().map($to_json),)*
                    _ => None,
                }
            }
        }
    };
}

step! {
    columns {
        trace_id: String,
        span_id: String,
        parent_span_id: String,
        name: String,
        operation: String,
        start_time: Timestamp,
        end_time: Timestamp,
        duration_ns: i64,
        status_code: String,
        status_message: String,
        service_name: String,
        agent_name: String,
        agent_name_src: String,
        agent_id: String,
        agent_id_src: String,
        framework: String,
        framework_src: String,
        parent_agent_name: String,
        parent_agent_name_src: String,
        conversation_id: String,
        tool_name: String,
        tool_name_src: String,
        tool_call_id: String,
        tool_call_id_src: String,
        tool_type: String,
        provider: String,
        request_model: String,
        response_model: String,
        input_tokens: i64,
        output_tokens: i64,
        cache_read_tokens: i64,
        cache_write_tokens: i64,
        reasoning_tokens: i64,
        rollup_input_tokens: i64,
        rollup_output_tokens: i64,
        cost: f64,
        cost_currency: String,
        sandbox_id: String,
        k8s_namespace: String,
        k8s_pod_name: String,
        k8s_node_name: String,
        k8s_service_account: String,
        policy_ref: String,
        policy_hash: String,
        guardrail_verdict: String,
        approval_state: String,
        approver: String,
        approval_request_id: String,
        data_read: Vec<String>,
        data_written: Vec<String>,
        requested_tool_call_ids: Vec<String>,
        requested_tool_names: Vec<String>,
        input_message_refs: Vec<String>,
        output_message_refs: Vec<String>,
        system_instructions_ref: String,
        tool_definitions_ref: String,
        tool_arguments_ref: String,
        tool_result_ref: String,
        policy_document_ref: String,
    }
    contents {
        input_messages: Vec<Value> => |l| Value::Array(Vec::clone(l)),
        output_messages: Vec<Value> => |l| Value::Array(Vec::clone(l)),
        system_instructions: Value => Value::clone,
        tool_definitions: Value => Value::clone,
        arguments: Value => Value::clone,
        result: Value => Value::clone,
        policy_document: Value => Value::clone,
    }
}

/// The distinct values of the text field `key` of `steps`, sorted (for lookups by them).
pub fn distinct<'a>(
    steps: impl IntoIterator<Item = &'a Step>,
    key: fn(&Step) -> &Option<String>,
) -> Vec<String> {
    let set: std::collections::BTreeSet<&String> =
        steps.into_iter().filter_map(|s| key(s).as_ref()).collect();
    set.into_iter().cloned().collect()
}

/// Sorts `steps` in start order (`ORDER BY start_time, span_id`: nulls last).
pub fn sort(steps: &mut [Step]) {
    fn key(s: &Step) -> (bool, Option<Timestamp>, bool, Option<&[u8]>) {
        (
            s.start_time.is_none(),
            s.start_time,
            s.span_id.is_none(),
            s.span_id.as_deref().map(str::as_bytes),
        )
    }
    steps.sort_by(|a, b| key(a).cmp(&key(b)));
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, Int64Array, ListBuilder, StringArray, StringBuilder};
    use arrow::array::{StringViewArray, TimestampNanosecondArray};
    use arrow::datatypes::Schema;

    use super::*;

    /// What a SQL answer shows for `batch`, row by row: arrow's JSON writer, nulls left out.
    fn as_sql_answer(batch: &RecordBatch) -> Vec<String> {
        let mut w = arrow::json::LineDelimitedWriter::new(Vec::new());
        w.write(batch).unwrap();
        w.finish().unwrap();
        String::from_utf8(w.into_inner())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn steps_serialise_as_the_sql_answer_shows_their_columns() {
        let times = [
            0,
            1_764_288_000_000_000_000,
            1_764_288_000_500_000_000,
            1_764_288_000_000_120_000,
            1_764_288_000_052_279_275,
            -1_500_000_000,
        ];
        let n = times.len();
        let mut refs = ListBuilder::new(StringBuilder::new());
        for i in 0..n {
            if i % 3 == 0 {
                refs.append_null();
            } else {
                refs.values().append_value(format!("h{i}"));
                refs.values().append_value("x\"y\\z");
                refs.append(true);
            }
        }
        let fields: Vec<(&str, ArrayRef)> = vec![
            (
                "span_id",
                Arc::new(StringArray::from_iter(
                    (0..n).map(|i| Some(format!("s{i}"))),
                )),
            ),
            (
                "name",
                Arc::new(StringViewArray::from_iter(
                    (0..n).map(|i| (i % 2 == 0).then(|| format!("naïve \u{1F600} {i}\n"))),
                )),
            ),
            (
                "start_time",
                Arc::new(TimestampNanosecondArray::from(times.to_vec()).with_timezone("UTC")),
            ),
            (
                "duration_ns",
                Arc::new(Int64Array::from_iter(
                    (0..n).map(|i| (i != 2).then_some(i64::MAX - i as i64)),
                )),
            ),
            (
                "cost",
                Arc::new(Float64Array::from_iter(
                    (0..n).map(|i| (i != 1).then_some(0.1 + 0.2 * i as f64 / 3.0)),
                )),
            ),
            ("input_message_refs", Arc::new(refs.finish())),
        ];
        let schema = Schema::new(
            fields
                .iter()
                .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        );
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            fields.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap();
        // The columns are in step order: the text is the same, byte for byte (floats too,
        // which a JSON parser may round).
        let steps = Step::decode(&batch).unwrap();
        let got: Vec<String> = steps
            .iter()
            .map(|s| serde_json::to_string(s).unwrap())
            .collect();
        assert_eq!(got, as_sql_answer(&batch));
        // `get` agrees with serialisation, field by field, and a step reads back from it.
        for s in &steps {
            let shown = serde_json::to_value(s).unwrap();
            assert_eq!(&serde_json::from_value::<Step>(shown.clone()).unwrap(), s);
            for column in COLUMNS {
                assert_eq!(s.get(column).as_ref(), shown.get(*column), "{column}");
            }
        }
        // Columns that are not a step's are ignored.
        let extra = RecordBatch::try_from_iter([(
            "not_a_step_column",
            Arc::new(Int64Array::from(vec![7; n])) as ArrayRef,
        )])
        .unwrap();
        assert_eq!(Step::decode(&extra).unwrap(), vec![Step::default(); n]);
        assert_eq!(
            steps[2].start_time.unwrap().rfc3339(),
            "2025-11-28T00:00:00.500Z"
        );
    }

    #[test]
    fn steps_sort_in_start_order_as_sql_does() {
        let step = |t: Option<i64>, id: Option<&str>| Step {
            start_time: t.map(Timestamp),
            span_id: id.map(str::to_owned),
            ..Step::default()
        };
        let mut steps = vec![
            step(None, Some("a")),
            step(Some(2), Some("b")),
            step(Some(2), None),
            step(Some(2), Some("a")),
            step(Some(-1), Some("z")),
        ];
        sort(&mut steps);
        let order: Vec<(Option<i64>, Option<&str>)> = steps
            .iter()
            .map(|s| (s.start_time.map(|t| t.0), s.span_id.as_deref()))
            .collect();
        assert_eq!(
            order,
            [
                (Some(-1), Some("z")),
                (Some(2), Some("a")),
                (Some(2), Some("b")),
                (Some(2), None),
                (None, Some("a")),
            ]
        );
    }

    #[test]
    fn keeping_columns_clears_the_others() {
        let mut steps = vec![Step {
            span_id: Some("s".into()),
            name: Some("n".into()),
            cost: Some(0.5),
            data_read: Some(vec!["u".into()]),
            policy_document_ref: Some("p".into()),
            ..Step::default()
        }];
        Step::keep_columns(&mut steps, &["span_id", "cost", "not_a_column"]);
        assert_eq!(
            steps[0],
            Step {
                span_id: Some("s".into()),
                cost: Some(0.5),
                ..Step::default()
            }
        );
    }

    #[test]
    fn a_column_of_an_unreadable_type_is_an_error_not_a_panic() {
        let list = ListBuilder::new(StringBuilder::new()).finish();
        let batch =
            RecordBatch::try_from_iter([("duration_ns", Arc::new(list) as ArrayRef)]).unwrap();
        assert!(Step::decode(&batch).is_err());
    }
}
