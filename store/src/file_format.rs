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

/// Rows per row group of trace index files: a lookup reads (and decompresses) the one row group
/// whose statistics and bloom filter admit the id.
pub const INDEX_ROW_GROUP_ROWS: usize = 8 * 1024;
/// Rows per page of trace index files.
pub const INDEX_PAGE_ROWS: usize = 1024;

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
    let bloom = ColumnPath::from(lookup_column(dataset));
    let keys = sort_keys(dataset);
    let sorting = (!keys.is_empty()).then(|| {
        keys.iter()
            .map(|k| SortingColumn {
                column_idx: schema.index_of(k).expect("sort column") as i32,
                descending: false,
                nulls_first: false,
            })
            .collect()
    });
    let builder = WriterProperties::builder();
    // A lookup by trace id reads the one page of the index that can hold it: small pages keep
    // that read small (the page index records each page's range of ids).
    let (builder, group_rows) = match dataset {
        Dataset::TraceIndex => (
            builder
                .set_data_page_row_count_limit(INDEX_PAGE_ROWS)
                .set_write_batch_size(INDEX_PAGE_ROWS),
            INDEX_ROW_GROUP_ROWS,
        ),
        Dataset::Payloads => (builder, PAYLOAD_ROW_GROUP_ROWS),
        Dataset::Spans => (builder, ROW_GROUP_ROWS),
    };
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
