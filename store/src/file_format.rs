//! How Parquet files of each dataset are written, by the collector and by compaction alike:
//! zstd (lighter at ingest than in compaction), page statistics and page index, a bloom filter on the lookup column sized for the
//! distinct values expected, the sort order recorded, and the schema version in the metadata.

use arrow::datatypes::Schema;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use cairn_schema::columns::{col, SCHEMA_VERSION, SCHEMA_VERSION_KEY};
use cairn_schema::layout::Dataset;

/// Rows per row group: small enough for statistics to prune, large enough to compress well.
pub const ROW_GROUP_ROWS: usize = 64 * 1024;

/// Rows per row group of trace index files (and run summaries), sorted by trace id: a lookup
/// reads the row groups whose id range and bloom filter admit one of its ids. A lookup of many
/// random ids (a page of runs, a search's candidates) admits a group per id whatever its size,
/// and pages cannot narrow it (every page's range holds one of the ids), so groups are small.
pub const INDEX_ROW_GROUP_ROWS: usize = 1024;
/// Rows per page of trace index files: a lookup of one id decodes one page.
pub const INDEX_PAGE_ROWS: usize = 256;

/// Rows per row group of payload files. Payloads stay in arrival order (see [`sort_keys`]), so
/// statistics cannot prune them by hash: the bloom filter of each row group does, and a lookup
/// decompresses only the row groups that hold its hashes. Small groups keep that read near the
/// size of the payloads asked for (about 1 MiB of content a group on agent traffic, instead of
/// tens of MiB); zstd compresses page by page, so they cost little in size.
pub const PAYLOAD_ROW_GROUP_ROWS: usize = 1024;

/// The columns a dataset's files are sorted by (none for payloads, kept in arrival order so the
/// messages of one conversation stay together, which compresses far better).
pub fn sort_keys(dataset: Dataset) -> &'static [&'static str] {
    match dataset {
        Dataset::Spans => &[col::TRACE_ID, col::START_TIME],
        Dataset::Payloads => &[],
        Dataset::TraceIndex => &[
            col::TRACE_ID,
            cairn_schema::trace_index::column::HOUR,
            cairn_schema::trace_index::column::LINKED_FROM,
        ],
    }
}

/// The column lookups go by, with a bloom filter.
pub fn lookup_column(dataset: Dataset) -> &'static str {
    match dataset {
        Dataset::Spans => col::TRACE_ID,
        Dataset::Payloads => "hash",
        Dataset::TraceIndex => col::TRACE_ID,
    }
}

/// Who writes a file, which sets how hard it is compressed: collectors write fast at the door
/// (zstd level 1, on the ingest path), compaction rewrites every closed hour densely (level 3,
/// in the background).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    Ingest,
    Compaction,
}

impl Effort {
    fn zstd_level(self) -> i32 {
        match self {
            Effort::Ingest => 1,
            Effort::Compaction => 3,
        }
    }
}

/// Writer settings for a file of `dataset` with about `distinct` values of its lookup column.
pub fn writer_properties(
    schema: &Schema,
    dataset: Dataset,
    distinct: u64,
    effort: Effort,
) -> WriterProperties {
    let layout = match dataset {
        // A lookup by trace id reads the one page of the index that can hold it: small pages
        // keep that read small (the page index records each page's range of ids).
        Dataset::TraceIndex => Layout {
            group_rows: INDEX_ROW_GROUP_ROWS,
            page_rows: Some(INDEX_PAGE_ROWS),
        },
        Dataset::Payloads => Layout {
            group_rows: PAYLOAD_ROW_GROUP_ROWS,
            page_rows: None,
        },
        Dataset::Spans => Layout {
            group_rows: ROW_GROUP_ROWS,
            page_rows: None,
        },
    };
    properties(
        schema,
        sort_keys(dataset),
        lookup_column(dataset),
        layout,
        distinct,
        effort,
    )
}

/// Writer settings for a run summary ([`cairn_schema::run_summary`]) of `rows` traces: sorted by
/// trace id, with a bloom filter on it, in groups and pages as small as the trace index's.
pub fn summary_properties(schema: &Schema, rows: u64) -> WriterProperties {
    let layout = Layout {
        group_rows: INDEX_ROW_GROUP_ROWS,
        page_rows: Some(INDEX_PAGE_ROWS),
    };
    properties(
        schema,
        &[col::TRACE_ID],
        col::TRACE_ID,
        layout,
        rows,
        Effort::Compaction,
    )
}

/// Rows per row group, and per page when limited.
struct Layout {
    group_rows: usize,
    page_rows: Option<usize>,
}

fn properties(
    schema: &Schema,
    keys: &[&str],
    lookup: &str,
    layout: Layout,
    distinct: u64,
    effort: Effort,
) -> WriterProperties {
    let bloom = ColumnPath::from(lookup);
    let sorting = (!keys.is_empty()).then(|| {
        keys.iter()
            .map(|k| SortingColumn {
                column_idx: schema.index_of(k).expect("sort column") as i32,
                descending: false,
                nulls_first: false,
            })
            .collect()
    });
    let mut builder = WriterProperties::builder();
    if let Some(rows) = layout.page_rows {
        builder = builder
            .set_data_page_row_count_limit(rows)
            .set_write_batch_size(rows);
    }
    let group_rows = layout.group_rows;
    builder
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(effort.zstd_level()).expect("valid level"),
        ))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(group_rows))
        .set_column_bloom_filter_enabled(bloom.clone(), true)
        // Each row group has a filter of its own: sized for its rows, not the file's.
        .set_column_bloom_filter_max_ndv(bloom.clone(), distinct.clamp(1, group_rows as u64))
        .set_column_bloom_filter_fpp(bloom, 0.01)
        .set_sorting_columns(sorting)
        .set_key_value_metadata(Some(vec![KeyValue::new(
            SCHEMA_VERSION_KEY.to_owned(),
            SCHEMA_VERSION.to_owned(),
        )]))
        .build()
}
