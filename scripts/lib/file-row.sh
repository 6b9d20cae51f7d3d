# Sourced by the bench scripts (not run): files a benchmark's result in docs/BENCHMARKS.md.
# Run from the repository's root.
#
#   need_marker NAME     fails unless the document has the line "<!-- NAME: new rows above -->"
#                        (checked before a run, so a long one is not wasted; skipped when
#                        BENCH_NO_WRITE is set)
#   file_row NAME ROWS   puts ROWS (one or more Markdown table rows) just above that line;
#                        does nothing when BENCH_NO_WRITE is set

bench_doc=docs/BENCHMARKS.md

need_marker() {
  [ -z "${BENCH_NO_WRITE:-}" ] || return 0
  grep -qF "<!-- $1: new rows above -->" "$bench_doc" ||
    { echo "$1: no marker line in $bench_doc" >&2; return 1; }
}

file_row() {
  [ -z "${BENCH_NO_WRITE:-}" ] || return 0
  need_marker "$1" || return 1
  ROWS="$2" MARKER="<!-- $1: new rows above -->" \
    awk '$0 == ENVIRON["MARKER"] { print ENVIRON["ROWS"] } { print }' "$bench_doc" > "$bench_doc.tmp"
  mv "$bench_doc.tmp" "$bench_doc"
  echo "$1: added to $bench_doc" >&2
}
