#!/usr/bin/env bash
# Builds the fuzz targets and runs each for SECONDS (default 5) from the checked-in corpus
# (fuzz/corpus/<target>/, read only: new inputs go to a temporary directory). Exits non-zero if
# any target crashes, overflows its stack, runs out of memory or times out; the input is left in
# $CAIRN_FUZZ_ARTIFACTS (default: a temporary directory, printed).
#
#   fuzz/run.sh [SECONDS]
#
# Environment:
#   CAIRN_CI_CACHE        cache root (default /var/cache/cairn); instrumented builds go to
#                         $CAIRN_CI_CACHE/fuzz-target unless CAIRN_FUZZ_TARGET_DIR says otherwise
#   CAIRN_FUZZ_SQL        auto (default): build and run the `sql` target (instrumented DataFusion)
#                         only if a build of it is already cached; 1: always; 0: never
#   CAIRN_FUZZ_SQL_SECONDS  seconds for the `sql` target (default: SECONDS)
#   CAIRN_FUZZ_STRICT     1: also require lossless read-back (see fuzz/src/normalise.rs)
#   CAIRN_FUZZ_ARTIFACTS  where crashing inputs are written
#   CAIRN_FUZZ_TARGETS    the targets to run, space-separated (default: all four, and sql as above)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`); works on stable Rust (no sanitizer,
# so no -Z flag is passed).
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-5}"
cache="${CAIRN_CI_CACHE:-/var/cache/cairn}"
target_dir="${CAIRN_FUZZ_TARGET_DIR:-$cache/fuzz-target}"
triple="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="$target_dir/$triple/release"
artifacts="${CAIRN_FUZZ_ARTIFACTS:-$(mktemp -d /tmp/cairn-fuzz-artifacts.XXXXXX)}"
mkdir -p "$artifacts"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
  exit 2
fi

read -r -a targets <<< "${CAIRN_FUZZ_TARGETS:-otlp_protobuf otlp_json attributes wal_record sql}"
want_sql=0
for t in "${targets[@]}"; do [ "$t" = sql ] && want_sql=1; done
lean=()
for t in "${targets[@]}"; do [ "$t" != sql ] && lean+=("$t"); done
targets=("${lean[@]}")
features=()
[ "$want_sql" = 1 ] || CAIRN_FUZZ_SQL=0
case "${CAIRN_FUZZ_SQL:-auto}" in
  1) features=(--features sql) ;;
  0) ;;
  auto)
    if [ -x "$bin_dir/sql" ]; then
      features=(--features sql)
    else
      echo "fuzz: skipping the sql target (no cached build in $target_dir; CAIRN_FUZZ_SQL=1 builds it)"
    fi ;;
  *) echo "CAIRN_FUZZ_SQL must be auto, 0 or 1" >&2; exit 2 ;;
esac
[ ${#features[@]} -gt 0 ] && targets+=(sql)

build=(cargo fuzz build --sanitizer none --target-dir "$target_dir" "${features[@]}")
echo "fuzz: ${build[*]}"
start=$(date +%s)
"${build[@]}"
echo "fuzz: build took $(( $(date +%s) - start ))s"

max_len() {
  case "$1" in
    otlp_protobuf | otlp_json | wal_record) echo 65536 ;;
    *) echo 4096 ;;
  esac
}

failed=()
for t in "${targets[@]}"; do
  secs="$seconds"
  [ "$t" = sql ] && secs="${CAIRN_FUZZ_SQL_SECONDS:-$seconds}"
  work="$(mktemp -d /tmp/cairn-fuzz-corpus.XXXXXX)"
  args=(-max_total_time="$secs" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048
        -artifact_prefix="$artifacts/$t-" -print_final_stats=1)
  [ -f "dict/$t.dict" ] && args+=(-dict="dict/$t.dict")
  echo "== fuzz $t (${secs}s)"
  # Stacks as small as the server's worker threads (2 MiB), so that a recursion deep enough
  # to crash Cairn crashes here too.
  if ( ulimit -s 2048 && "$bin_dir/$t" "${args[@]}" "$work" "corpus/$t" ) >"$work.log" 2>&1; then
    grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$work.log" || true
  else
    tail -n 40 "$work.log"
    failed+=("$t")
  fi
  rm -rf "$work" "$work.log"
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in $artifacts)"
  exit 1
fi
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each without a crash"
