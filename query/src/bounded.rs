//! Functions whose result size is set by an argument, bounded before they allocate.
//!
//! `repeat('x', 2000000000)` allocates two gigabytes inside the function, before any memory
//! pool sees a byte. Each such built-in is registered again under its own name, wrapped: the
//! wrapper computes from the arguments how large the result will be, refuses a value larger than
//! [`MAX_GENERATED_VALUE_BYTES`], reserves the whole call's result in the query memory pool (so
//! a batch of many large values is refused when the pool cannot hold it), and only then calls
//! the built-in.
//!
//! The wrapped functions are declared volatile, so that the planner does not fold a call with
//! constant arguments into a literal: a literal is repeated for every row of a batch when it
//! becomes a column, uncounted (`SELECT repeat('x', 60000000) FROM t` would be 8,192 copies).
//! Called at run time, a call with constant arguments is counted once per row of its batch.

use std::any::Any;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, FieldRef, Int64Type, IntervalMonthDayNanoType, IntervalUnit, TimeUnit,
};
use datafusion::common::{exec_err, DataFusionError, ExprSchema, Result, ScalarValue};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::interval_arithmetic::Interval;
use datafusion::logical_expr::preimage::PreimageResult;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ExpressionPlacement, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, StructFieldMapping, Volatility,
};

/// Largest value (string, or list) a size-setting function may produce: 64 MiB.
pub const MAX_GENERATED_VALUE_BYTES: u64 = 64 << 20;

/// Bytes of one result per row, from the call's arguments.
type Estimate = fn(&[ColumnarValue]) -> Result<Sizes>;

/// The wrapped functions and how their results' sizes are computed.
const BOUNDED: [(&str, Estimate); 7] = [
    ("repeat", repeat),
    ("lpad", pad),
    ("rpad", pad),
    ("array_repeat", array_repeat),
    ("array_resize", array_resize),
    ("range", series),
    ("generate_series", series),
];

/// The built-ins of `state` that [`BOUNDED`] names, wrapped; registering them replaces the
/// built-ins.
pub fn wrap_builtins(state: &SessionState, pool: &Arc<dyn MemoryPool>) -> Vec<ScalarUDF> {
    BOUNDED
        .iter()
        .filter_map(|(name, estimate)| {
            let inner = state.scalar_functions().get(*name)?;
            let mut signature = inner.signature().clone();
            signature.volatility = Volatility::Volatile;
            Some(ScalarUDF::new_from_impl(Bounded {
                inner: Arc::clone(inner.inner()),
                signature,
                pool: Arc::clone(pool),
                estimate: *estimate,
            }))
        })
        .collect()
}

/// A built-in whose result is bounded before it is computed.
#[derive(Debug)]
struct Bounded {
    inner: Arc<dyn ScalarUDFImpl>,
    /// The built-in's, but volatile.
    signature: Signature,
    pool: Arc<dyn MemoryPool>,
    estimate: Estimate,
}

impl PartialEq for Bounded {
    fn eq(&self, other: &Self) -> bool {
        self.inner.dyn_eq(other.inner.as_ref() as &dyn Any) && Arc::ptr_eq(&self.pool, &other.pool)
    }
}

impl Eq for Bounded {}

impl Hash for Bounded {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.dyn_hash(state);
    }
}

impl Bounded {
    fn check(&self, args: &ScalarFunctionArgs) -> Result<u64> {
        let sizes = (self.estimate)(&args.args)?;
        // A result from constant arguments is repeated for each row when it becomes a column.
        let rows = args.number_rows.max(1);
        let (mut total, mut largest) = (0u64, 0u64);
        for row in 0..rows {
            let bytes = sizes.get(row);
            total = total.saturating_add(bytes);
            largest = largest.max(bytes);
        }
        if largest > MAX_GENERATED_VALUE_BYTES {
            return exec_err!(
                "{}: a result of {largest} bytes is larger than the {} MiB a generated value may have",
                self.inner.name(),
                MAX_GENERATED_VALUE_BYTES >> 20
            );
        }
        Ok(total)
    }
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.schema_name(args)
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn is_nullable(&self, args: &[Expr], schema: &dyn ExprSchema) -> bool {
        #[expect(deprecated)]
        self.inner.is_nullable(args, schema)
    }

    fn is_strict(&self) -> bool {
        self.inner.is_strict()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let total = self.check(&args)?;
        let reservation = MemoryConsumer::new(self.inner.name()).register(&self.pool);
        reservation
            .try_grow(usize::try_from(total).unwrap_or(usize::MAX))
            .map_err(|e| {
                DataFusionError::ResourcesExhausted(format!(
                    "{}: results of {total} bytes do not fit in the query memory: {}",
                    self.inner.name(),
                    e.strip_backtrace()
                ))
            })?;
        self.inner.invoke_with_args(args)
    }

    /// Never hands back an unwrapped function.
    fn with_updated_config(
        &self,
        _config: &datafusion::common::config::ConfigOptions,
    ) -> Option<ScalarUDF> {
        None
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        self.inner.simplify(args, info)
    }

    fn preimage(
        &self,
        args: &[Expr],
        lit_expr: &Expr,
        info: &SimplifyContext,
    ) -> Result<PreimageResult> {
        self.inner.preimage(args, lit_expr, info)
    }

    fn conditional_arguments<'a>(
        &self,
        args: &'a [Expr],
    ) -> Option<(Vec<&'a Expr>, Vec<&'a Expr>)> {
        self.inner.conditional_arguments(args)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn evaluate_bounds(&self, input: &[&Interval]) -> Result<Interval> {
        self.inner.evaluate_bounds(input)
    }

    fn propagate_constraints(
        &self,
        interval: &Interval,
        inputs: &[&Interval],
    ) -> Result<Option<Vec<Interval>>> {
        self.inner.propagate_constraints(interval, inputs)
    }

    fn struct_field_mapping(
        &self,
        literal_args: &[Option<ScalarValue>],
    ) -> Option<StructFieldMapping> {
        self.inner.struct_field_mapping(literal_args)
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.output_ordering(inputs)
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.preserves_lex_ordering(inputs)
    }

    fn strictly_order_preserving(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.strictly_order_preserving(inputs)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn placement(&self, args: &[ExpressionPlacement]) -> ExpressionPlacement {
        self.inner.placement(args)
    }
}

/// One number per row: the same for every row, or one each.
enum Nums {
    Scalar(Option<i64>),
    Array(Vec<Option<i64>>),
}

impl Nums {
    fn get(&self, row: usize) -> Option<i64> {
        match self {
            Nums::Scalar(v) => *v,
            Nums::Array(v) => v.get(row).copied().flatten(),
        }
    }
}

/// Result bytes per row.
struct Sizes(Box<dyn Fn(usize) -> u64>);

impl Sizes {
    fn get(&self, row: usize) -> u64 {
        (self.0)(row)
    }
}

fn arg(args: &[ColumnarValue], i: usize) -> Option<&ColumnarValue> {
    args.get(i)
}

/// An integer argument's values (null where not an integer).
fn ints(value: &ColumnarValue) -> Result<Nums> {
    Ok(match value {
        ColumnarValue::Scalar(s) => Nums::Scalar(match s.cast_to(&DataType::Int64)? {
            ScalarValue::Int64(v) => v,
            _ => None,
        }),
        ColumnarValue::Array(a) => {
            let a = arrow::compute::cast(a, &DataType::Int64)?;
            Nums::Array(a.as_primitive::<Int64Type>().iter().collect())
        }
    })
}

/// Bytes of each value of an argument: a string's or binary's length, else the array's
/// average per row.
fn byte_lens(value: &ColumnarValue) -> Result<Nums> {
    let len = |n: usize| Some(i64::try_from(n).unwrap_or(i64::MAX));
    Ok(match value {
        ColumnarValue::Scalar(s) => Nums::Scalar(match s {
            ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
                v.as_ref().and_then(|s| len(s.len()))
            }
            ScalarValue::Binary(v) | ScalarValue::LargeBinary(v) | ScalarValue::BinaryView(v) => {
                v.as_ref().and_then(|b| len(b.len()))
            }
            other => len(other.size()),
        }),
        ColumnarValue::Array(a) => Nums::Array(array_byte_lens(a, len)),
    })
}

fn array_byte_lens(a: &ArrayRef, len: impl Fn(usize) -> Option<i64>) -> Vec<Option<i64>> {
    match a.data_type() {
        DataType::Utf8 => a
            .as_string::<i32>()
            .iter()
            .map(|v| v.and_then(|s| len(s.len())))
            .collect(),
        DataType::LargeUtf8 => a
            .as_string::<i64>()
            .iter()
            .map(|v| v.and_then(|s| len(s.len())))
            .collect(),
        DataType::Utf8View => a
            .as_string_view()
            .iter()
            .map(|v| v.and_then(|s| len(s.len())))
            .collect(),
        DataType::Binary => a
            .as_binary::<i32>()
            .iter()
            .map(|v| v.and_then(|b| len(b.len())))
            .collect(),
        DataType::LargeBinary => a
            .as_binary::<i64>()
            .iter()
            .map(|v| v.and_then(|b| len(b.len())))
            .collect(),
        DataType::BinaryView => a
            .as_binary_view()
            .iter()
            .map(|v| v.and_then(|b| len(b.len())))
            .collect(),
        _ => {
            let average = a.get_array_memory_size() / a.len().max(1);
            vec![len(average.max(1)); a.len()]
        }
    }
}

fn times(a: Option<i64>, b: Option<i64>) -> u64 {
    match (a, b) {
        (Some(a), Some(b)) if a > 0 && b > 0 => (a as u64).saturating_mul(b as u64),
        _ => 0,
    }
}

/// `repeat(text, n)`: the text's bytes `n` times.
fn repeat(args: &[ColumnarValue]) -> Result<Sizes> {
    let (Some(text), Some(n)) = (arg(args, 0), arg(args, 1)) else {
        return Ok(Sizes(Box::new(|_| 0)));
    };
    let (text, n) = (byte_lens(text)?, ints(n)?);
    Ok(Sizes(Box::new(move |row| times(text.get(row), n.get(row)))))
}

/// `lpad(text, n [, fill])`, `rpad`: the text and `n` characters of the fill (` ` by default),
/// each counted as its fill's bytes, at most 4.
fn pad(args: &[ColumnarValue]) -> Result<Sizes> {
    let (Some(text), Some(n)) = (arg(args, 0), arg(args, 1)) else {
        return Ok(Sizes(Box::new(|_| 0)));
    };
    let (text, n) = (byte_lens(text)?, ints(n)?);
    let fill = arg(args, 2).map(byte_lens).transpose()?;
    Ok(Sizes(Box::new(move |row| {
        let char_bytes = fill
            .as_ref()
            .map_or(Some(1), |f| f.get(row))
            .map(|b| b.clamp(1, 4));
        times(n.get(row), char_bytes).saturating_add(text.get(row).unwrap_or(0).max(0) as u64)
    })))
}

/// `array_repeat(value, n)`: `n` copies of the value.
fn array_repeat(args: &[ColumnarValue]) -> Result<Sizes> {
    let (Some(value), Some(n)) = (arg(args, 0), arg(args, 1)) else {
        return Ok(Sizes(Box::new(|_| 0)));
    };
    let (value, n) = (byte_lens(value)?, ints(n)?);
    Ok(Sizes(Box::new(move |row| {
        times(n.get(row), Some(value.get(row).unwrap_or(0).max(0) + 8))
    })))
}

/// `array_resize(list, n [, value])`: `n` elements, each the value or 8 bytes.
fn array_resize(args: &[ColumnarValue]) -> Result<Sizes> {
    let (Some(list), Some(n)) = (arg(args, 0), arg(args, 1)) else {
        return Ok(Sizes(Box::new(|_| 0)));
    };
    let (list, n) = (byte_lens(list)?, ints(n)?);
    let value = arg(args, 2).map(byte_lens).transpose()?;
    Ok(Sizes(Box::new(move |row| {
        let each = value.as_ref().and_then(|v| v.get(row)).unwrap_or(0).max(0) + 8;
        times(n.get(row), Some(each)).saturating_add(list.get(row).unwrap_or(0).max(0) as u64)
    })))
}

/// `range(stop)`, `range(start, stop [, step])` and `generate_series`, over integers, dates or
/// timestamps: 8 bytes per element.
fn series(args: &[ColumnarValue]) -> Result<Sizes> {
    let (start, stop, step) = match args {
        [stop] => (Nums::Scalar(Some(0)), points(stop)?, Nums::Scalar(Some(1))),
        [start, stop] => (points(start)?, points(stop)?, Nums::Scalar(Some(1))),
        [start, stop, step, ..] => (points(start)?, points(stop)?, steps(step)?),
        [] => return Ok(Sizes(Box::new(|_| 0))),
    };
    Ok(Sizes(Box::new(move |row| {
        match (start.get(row), stop.get(row), step.get(row)) {
            (Some(a), Some(b), Some(s)) => {
                let span = (i128::from(b) - i128::from(a)).unsigned_abs();
                let step = i128::from(s).unsigned_abs().max(1);
                let elements = u64::try_from(span / step).unwrap_or(u64::MAX);
                elements.saturating_add(1).saturating_mul(8)
            }
            _ => 0,
        }
    })))
}

/// Integers as they are; dates and timestamps as nanoseconds.
fn points(value: &ColumnarValue) -> Result<Nums> {
    match value.data_type() {
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) => {
            let nanos = DataType::Timestamp(TimeUnit::Nanosecond, None);
            ints(&value.cast_to(&nanos, None)?)
        }
        _ => ints(value),
    }
}

/// Integer steps as they are; interval steps as their shortest length in nanoseconds (a month
/// counted as 28 days).
fn steps(value: &ColumnarValue) -> Result<Nums> {
    if !matches!(value.data_type(), DataType::Interval(_)) {
        return ints(value);
    }
    const DAY: i128 = 86_400 * 1_000_000_000;
    let nanos = |months: i32, days: i32, ns: i64| {
        let total = (i128::from(months) * 28 * DAY + i128::from(days) * DAY + i128::from(ns)).abs();
        Some(i64::try_from(total).unwrap_or(i64::MAX))
    };
    let mdn = DataType::Interval(IntervalUnit::MonthDayNano);
    Ok(match value.cast_to(&mdn, None)? {
        ColumnarValue::Scalar(ScalarValue::IntervalMonthDayNano(v)) => {
            Nums::Scalar(v.and_then(|v| nanos(v.months, v.days, v.nanoseconds)))
        }
        ColumnarValue::Array(a) => Nums::Array(
            a.as_primitive::<IntervalMonthDayNanoType>()
                .iter()
                .map(|v| v.and_then(|v| nanos(v.months, v.days, v.nanoseconds)))
                .collect(),
        ),
        ColumnarValue::Scalar(_) => Nums::Scalar(None),
    })
}
