//! A query's spanset operators, structural operators and pipeline stages evaluated over the
//! spans of one trace, as Tempo evaluates them: a trace matches when at least one spanset
//! remains at the end of the pipeline.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::ast::{Aggregate, Attr, Cond, Literal, Op, Relation, RelationKind, SpansetExpr, Stage};

/// What a search reads of each span, besides its core fields.
#[derive(Debug, Default, Clone)]
pub struct Plan {
    /// The spanset filters, in the order they appear.
    pub filters: Vec<Option<Cond>>,
    /// Attributes returned with each span (conditions', `select`'s, `by`'s), deduplicated.
    pub returned: Vec<Attr>,
    /// Attributes whose numeric values aggregates read.
    pub numeric: Vec<Attr>,
}

impl Plan {
    /// The plan of `spansets` and `stages`.
    pub fn of(spansets: &SpansetExpr, stages: &[Stage]) -> Self {
        let mut plan = Plan::default();
        collect_filters(spansets, &mut plan.filters);
        plan.returned.push(Attr::Named(
            super::ast::Scope::Resource,
            "service.name".into(),
        ));
        let filters = plan.filters.clone();
        for cond in filters.iter().flatten() {
            collect_attrs(cond, &mut plan.returned);
        }
        for stage in stages {
            match stage {
                Stage::Select(attrs) | Stage::By(attrs) => {
                    for a in attrs {
                        push_unique(&mut plan.returned, a);
                    }
                }
                Stage::Filter(agg, ..) => {
                    if let Some(a) = aggregate_attr(agg) {
                        push_unique(&mut plan.numeric, a);
                    }
                }
            }
        }
        plan.returned.retain(|a| !hidden(a));
        plan
    }
}

/// Attributes Tempo does not list among a span's attributes (they are fields of the span or
/// of the trace).
fn hidden(attr: &Attr) -> bool {
    use super::ast::Intrinsic::*;
    matches!(
        attr,
        Attr::Intrinsic(
            Name | Duration | TraceDuration | RootName | RootService | TraceId | SpanId
        )
    )
}

fn push_unique(list: &mut Vec<Attr>, attr: &Attr) {
    if !list.contains(attr) {
        list.push(attr.clone());
    }
}

fn collect_filters(expr: &SpansetExpr, out: &mut Vec<Option<Cond>>) {
    match expr {
        SpansetExpr::Filter(c) => out.push(c.clone()),
        SpansetExpr::And(a, b) | SpansetExpr::Or(a, b) | SpansetExpr::Structural(_, a, b) => {
            collect_filters(a, out);
            collect_filters(b, out);
        }
    }
}

fn collect_attrs(cond: &Cond, out: &mut Vec<Attr>) {
    match cond {
        Cond::And(a, b) | Cond::Or(a, b) => {
            collect_attrs(a, out);
            collect_attrs(b, out);
        }
        Cond::Not(a) => collect_attrs(a, out),
        Cond::Compare(attr, ..) => push_unique(out, attr),
        Cond::Const(_) => {}
    }
}

fn aggregate_attr(agg: &Aggregate) -> Option<&Attr> {
    match agg {
        Aggregate::Count => None,
        Aggregate::Avg(a) | Aggregate::Min(a) | Aggregate::Max(a) | Aggregate::Sum(a) => Some(a),
    }
}

/// One span as a search reads it.
#[derive(Debug, Clone, Default)]
pub struct SpanRow {
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub name: String,
    pub start_ns: i64,
    pub duration_ns: i64,
    /// Whether each of the plan's filters matched the span.
    pub matched: Vec<bool>,
    /// The plan's returned attributes, as OTLP `AnyValue` JSON (`None`: the span has none).
    pub values: Vec<Option<Value>>,
    /// The plan's numeric attributes.
    pub numbers: Vec<Option<f64>>,
}

/// A spanset of a trace: indexes of its spans, and its own attributes (`by`, aggregates).
#[derive(Debug, Clone, PartialEq)]
pub struct SpanSet {
    pub spans: Vec<usize>,
    pub attributes: Vec<(String, Value)>,
}

/// The spansets `spansets | stages` leaves of one trace's `spans`.
pub fn evaluate(
    plan: &Plan,
    spansets: &SpansetExpr,
    stages: &[Stage],
    spans: &[SpanRow],
) -> Vec<SpanSet> {
    let tree = Tree::of(spans);
    let mut next = 0;
    let members = members(spansets, spans, &tree, &mut next);
    if !members.iter().any(|m| *m) {
        return Vec::new();
    }
    let mut sets = vec![SpanSet {
        spans: (0..spans.len()).filter(|i| members[*i]).collect(),
        attributes: Vec::new(),
    }];
    for stage in stages {
        sets = match stage {
            Stage::Select(_) => sets,
            Stage::By(attrs) => split_by(plan, attrs, spans, sets),
            Stage::Filter(agg, op, value) => filter(plan, agg, *op, value, spans, sets),
        };
        if sets.is_empty() {
            break;
        }
    }
    for set in &mut sets {
        set.spans
            .sort_by_key(|i| (spans[*i].start_ns, spans[*i].span_id.clone()));
    }
    sets
}

/// Parent links between a trace's spans.
struct Tree {
    parent: Vec<Option<usize>>,
}

impl Tree {
    fn of(spans: &[SpanRow]) -> Self {
        let mut ids: HashMap<&str, usize> = HashMap::with_capacity(spans.len());
        for (i, s) in spans.iter().enumerate() {
            ids.entry(s.span_id.as_str()).or_insert(i);
        }
        let parent = spans
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let p = ids.get(s.parent_span_id.as_deref()?).copied()?;
                (p != i).then_some(p)
            })
            .collect();
        Self { parent }
    }

    /// For each span, whether one of its proper ancestors is in `set` (cycles stop the walk).
    fn below(&self, set: &[bool]) -> Vec<bool> {
        const UNKNOWN: u8 = 0;
        const WALKING: u8 = 1;
        let n = set.len();
        let mut state = vec![UNKNOWN; n];
        let mut result = vec![false; n];
        let mut walk = Vec::new();
        for start in 0..n {
            let mut at = start;
            let mut found = false;
            loop {
                if state[at] > WALKING {
                    found = result[at];
                    break;
                }
                if state[at] == WALKING {
                    break;
                }
                state[at] = WALKING;
                walk.push(at);
                match self.parent[at] {
                    Some(p) if set[p] => {
                        found = true;
                        // `at`'s answer is true; its descendants on the walk too.
                        break;
                    }
                    Some(p) => at = p,
                    None => break,
                }
            }
            // Each span on the walk is below a member when the first one found is.
            for w in walk.drain(..).rev() {
                result[w] = found;
                state[w] = 2;
            }
        }
        result
    }

    /// For each span, whether it is a proper ancestor of a span in `set`.
    fn above(&self, set: &[bool]) -> Vec<bool> {
        let n = set.len();
        let mut result = vec![false; n];
        for start in (0..n).filter(|i| set[*i]) {
            let mut at = self.parent[start];
            let mut steps = 0;
            while let Some(p) = at {
                if result[p] || steps > n {
                    break;
                }
                result[p] = true;
                steps += 1;
                at = self.parent[p];
            }
        }
        result
    }

    /// Spans related by `kind` to a span of `left`: the right-hand side's test.
    fn related(&self, kind: RelationKind, left: &[bool]) -> Vec<bool> {
        let n = left.len();
        match kind {
            RelationKind::Child => (0..n)
                .map(|i| self.parent[i].is_some_and(|p| left[p]))
                .collect(),
            RelationKind::Descendant => self.below(left),
            RelationKind::Parent => {
                let mut out = vec![false; n];
                for i in (0..n).filter(|i| left[*i]) {
                    if let Some(p) = self.parent[i] {
                        out[p] = true;
                    }
                }
                out
            }
            RelationKind::Ancestor => self.above(left),
            RelationKind::Sibling => {
                let mut children_in_left: HashMap<usize, usize> = HashMap::new();
                for i in (0..n).filter(|i| left[*i]) {
                    if let Some(p) = self.parent[i] {
                        *children_in_left.entry(p).or_default() += 1;
                    }
                }
                (0..n)
                    .map(|i| match self.parent[i] {
                        Some(p) => {
                            let others = children_in_left.get(&p).copied().unwrap_or(0)
                                - usize::from(left[i]);
                            others > 0
                        }
                        None => false,
                    })
                    .collect()
            }
        }
    }
}

/// The converse relation: `a` is related by `kind` to `b` exactly when `b` is related to `a`
/// by the converse.
fn converse(kind: RelationKind) -> RelationKind {
    match kind {
        RelationKind::Child => RelationKind::Parent,
        RelationKind::Parent => RelationKind::Child,
        RelationKind::Descendant => RelationKind::Ancestor,
        RelationKind::Ancestor => RelationKind::Descendant,
        RelationKind::Sibling => RelationKind::Sibling,
    }
}

/// Which spans of the trace `expr` selects (all false: no spanset).
fn members(expr: &SpansetExpr, spans: &[SpanRow], tree: &Tree, next: &mut usize) -> Vec<bool> {
    let n = spans.len();
    match expr {
        SpansetExpr::Filter(_) => {
            let i = *next;
            *next += 1;
            spans.iter().map(|s| s.matched[i]).collect()
        }
        SpansetExpr::And(a, b) => {
            let a = members(a, spans, tree, next);
            let b = members(b, spans, tree, next);
            if a.iter().any(|m| *m) && b.iter().any(|m| *m) {
                a.iter().zip(&b).map(|(x, y)| *x || *y).collect()
            } else {
                vec![false; n]
            }
        }
        SpansetExpr::Or(a, b) => {
            let a = members(a, spans, tree, next);
            let b = members(b, spans, tree, next);
            a.iter().zip(&b).map(|(x, y)| *x || *y).collect()
        }
        SpansetExpr::Structural(relation, a, b) => {
            let left = members(a, spans, tree, next);
            let right = members(b, spans, tree, next);
            structural(*relation, &left, &right, tree)
        }
    }
}

fn structural(relation: Relation, left: &[bool], right: &[bool], tree: &Tree) -> Vec<bool> {
    let related = tree.related(relation.kind, left);
    let result: Vec<bool> = right
        .iter()
        .zip(&related)
        .map(|(r, rel)| *r && (*rel != relation.negated))
        .collect();
    if !relation.union || relation.negated {
        return result;
    }
    let partners = tree.related(converse(relation.kind), &result);
    (0..left.len())
        .map(|i| result[i] || (left[i] && partners[i]))
        .collect()
}

fn split_by(plan: &Plan, attrs: &[Attr], spans: &[SpanRow], sets: Vec<SpanSet>) -> Vec<SpanSet> {
    let columns: Vec<Option<usize>> = attrs
        .iter()
        .map(|a| plan.returned.iter().position(|r| r == a))
        .collect();
    let mut out = Vec::new();
    for set in sets {
        let mut groups: Vec<(Vec<Option<Value>>, Vec<usize>)> = Vec::new();
        for &i in &set.spans {
            let key: Vec<Option<Value>> = columns
                .iter()
                .map(|c| c.and_then(|c| spans[i].values[c].clone()))
                .collect();
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, members)) => members.push(i),
                None => groups.push((key, vec![i])),
            }
        }
        for (key, members) in groups {
            let mut attributes = set.attributes.clone();
            for (attr, value) in attrs.iter().zip(key) {
                if let Some(value) = value {
                    attributes.push((format!("by({})", attr.to_traceql()), value));
                }
            }
            out.push(SpanSet {
                spans: members,
                attributes,
            });
        }
    }
    out
}

fn filter(
    plan: &Plan,
    agg: &Aggregate,
    op: Op,
    value: &Literal,
    spans: &[SpanRow],
    sets: Vec<SpanSet>,
) -> Vec<SpanSet> {
    let bound = match value {
        Literal::Int(n) => *n as f64,
        Literal::Float(f) => *f,
        Literal::Duration(d) => *d as f64,
        _ => return Vec::new(),
    };
    let column = aggregate_attr(agg).and_then(|a| plan.numeric.iter().position(|n| n == a));
    let mut out = Vec::new();
    for mut set in sets {
        let numbers: Vec<f64> = match column {
            Some(c) => set
                .spans
                .iter()
                .filter_map(|i| spans[*i].numbers[c])
                .collect(),
            None => Vec::new(),
        };
        let result = match agg {
            Aggregate::Count => set.spans.len() as f64,
            Aggregate::Avg(_) if numbers.is_empty() => f64::NAN,
            Aggregate::Avg(_) => numbers.iter().sum::<f64>() / numbers.len() as f64,
            Aggregate::Min(_) => numbers.iter().copied().fold(f64::INFINITY, f64::min),
            Aggregate::Max(_) => numbers.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Aggregate::Sum(_) => numbers.iter().sum(),
        };
        let keep = match op {
            Op::Eq => result == bound,
            Op::Ne => result != bound,
            Op::Gt => result > bound,
            Op::Ge => result >= bound,
            Op::Lt => result < bound,
            Op::Le => result <= bound,
            Op::Regex | Op::NotRegex => false,
        };
        if keep {
            let shown = match agg {
                Aggregate::Count => json!({ "intValue": (result as i64).to_string() }),
                _ => json!({ "doubleValue": result }),
            };
            set.attributes.push((agg.to_traceql(), shown));
            out.push(set);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traceql::parse;

    /// Spans `(id, parent, matched per filter)`.
    fn spans(rows: &[(&str, Option<&str>, &[bool])]) -> Vec<SpanRow> {
        rows.iter()
            .enumerate()
            .map(|(i, (id, parent, matched))| SpanRow {
                span_id: (*id).into(),
                parent_span_id: parent.map(str::to_owned),
                start_ns: i as i64,
                duration_ns: 10,
                matched: matched.to_vec(),
                ..SpanRow::default()
            })
            .collect()
    }

    fn ids(q: &str, rows: &[(&str, Option<&str>, &[bool])]) -> Vec<Vec<String>> {
        let query = parse(q).unwrap();
        let plan = Plan::of(&query.spansets, &query.stages);
        let spans = spans(rows);
        evaluate(&plan, &query.spansets, &query.stages, &spans)
            .into_iter()
            .map(|s| s.spans.iter().map(|i| spans[*i].span_id.clone()).collect())
            .collect()
    }

    // r ─ a ─ b ─ c
    //   └ d
    const TREE: [(&str, Option<&str>); 5] = [
        ("r", None),
        ("a", Some("r")),
        ("b", Some("a")),
        ("c", Some("b")),
        ("d", Some("r")),
    ];

    fn with(
        left: &[&str],
        right: &[&str],
    ) -> Vec<(&'static str, Option<&'static str>, &'static [bool])> {
        TREE.iter()
            .map(|(id, p)| {
                let flags: &'static [bool] = match (left.contains(id), right.contains(id)) {
                    (true, true) => &[true, true],
                    (true, false) => &[true, false],
                    (false, true) => &[false, true],
                    (false, false) => &[false, false],
                };
                (*id, *p, flags)
            })
            .collect()
    }

    #[test]
    fn traceql_structural_operators_return_the_right_side() {
        let all = ["r", "a", "b", "c", "d"];
        assert_eq!(ids("{ .x } > { .y }", &with(&["a"], &all)), [["b"]]);
        assert_eq!(ids("{ .x } >> { .y }", &with(&["a"], &all)), [["b", "c"]]);
        assert_eq!(ids("{ .x } < { .y }", &with(&["c"], &all)), [["b"]]);
        assert_eq!(
            ids("{ .x } << { .y }", &with(&["c"], &all)),
            [["r", "a", "b"]]
        );
        assert_eq!(ids("{ .x } ~ { .y }", &with(&["a"], &all)), [["d"]]);
        assert_eq!(ids("{ .x } !< { .y }", &with(&all, &all)), [["c", "d"]]);
        assert_eq!(ids("{ .x } &> { .y }", &with(&["a"], &all)), [["a", "b"]]);
        assert!(ids("{ .x } > { .y }", &with(&["c"], &all)).is_empty());
    }

    #[test]
    fn traceql_spanset_operators_combine_per_trace() {
        assert_eq!(ids("{ .x } && { .y }", &with(&["a"], &["d"])), [["a", "d"]]);
        assert!(ids("{ .x } && { .y }", &with(&["a"], &[])).is_empty());
        assert_eq!(ids("{ .x } || { .y }", &with(&["a"], &[])), [["a"]]);
    }

    #[test]
    fn traceql_count_filters_spansets() {
        let rows = with(&["a", "b"], &[]);
        assert_eq!(ids("{ .x } | count() > 1", &rows), [["a", "b"]]);
        assert!(ids("{ .x } | count() > 2", &rows).is_empty());
    }

    #[test]
    fn traceql_parent_cycles_end_the_walk() {
        let rows: Vec<(&str, Option<&str>, &[bool])> = vec![
            ("a", Some("b"), &[true, true]),
            ("b", Some("a"), &[false, true]),
        ];
        assert_eq!(ids("{ .x } >> { .y }", &rows), [["a", "b"]]);
    }
}
