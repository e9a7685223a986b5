#!/usr/bin/env bash
# Print the latest criterion results as one table: median time per iteration, throughput at that
# median, and the topiclog/raw time ratio of each pair (a bench `G/X` and its baseline `G/raw/X`;
# a bench `G/X/V` with no `G/raw/X/V` is divided by a shared `G/raw/X`). Then the per-append
# latency percentiles the append bench records, and the compression ratios of the compression bench.
#
# Usage: benches/summarize.sh [CRITERION_DIR]
#   CRITERION_DIR defaults to $CRITERION_HOME, else $CARGO_TARGET_DIR/criterion, else
#   target/criterion next to this script's crate. Needs only bash, find, sed, sort and awk.
#
# Results are whatever each bench's `new/` directory holds: run the benches first, e.g.
#   cargo bench --bench append --bench read --bench open
set -euo pipefail

crate_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ $# -ge 1 ]]; then
    dir=$1
elif [[ -n ${CRITERION_HOME:-} ]]; then
    dir=$CRITERION_HOME
elif [[ -n ${CARGO_TARGET_DIR:-} ]]; then
    dir=$CARGO_TARGET_DIR/criterion
else
    dir=$crate_dir/target/criterion
fi
if [[ ! -d $dir ]]; then
    echo "no criterion results in $dir: run cargo bench first" >&2
    exit 1
fi

# One line per benchmark: group, function id without "raw/", 0 topiclog | 1 raw, full id,
# throughput kind, throughput count, median ns. criterion writes each JSON file on one line.
rows() {
    find "$dir" -path '*/new/benchmark.json' -print | while IFS= read -r bench; do
        estimates=${bench%benchmark.json}estimates.json
        [[ -f $estimates ]] || continue
        b=$(<"$bench")
        e=$(<"$estimates")
        field() { printf '%s' "$b" | sed -nE "s/.*\"$1\":\"([^\"]*)\".*/\1/p"; }
        group=$(field group_id)
        function=$(field function_id)
        full=$(field full_id)
        kind=$(printf '%s' "$b" | sed -nE 's/.*"throughput":\{"([A-Za-z]+)":([0-9]+)\}.*/\1/p')
        count=$(printf '%s' "$b" | sed -nE 's/.*"throughput":\{"([A-Za-z]+)":([0-9]+)\}.*/\2/p')
        median=$(printf '%s' "$e" |
            sed -nE 's/.*"median":\{"confidence_interval":\{[^}]*\},"point_estimate":([-0-9.eE+]+).*/\1/p')
        [[ -n $median ]] || continue
        raw=0
        base=$function
        if [[ $function == raw/* ]]; then
            raw=1
            base=${function#raw/}
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$group" "$base" "$raw" "$full" "${kind:--}" \
            "${count:-0}" "$median"
    done
}

rows | sort -t $'\t' -k1,1 -k2,2 -k3,3n | awk -F '\t' '
function human_time(ns) {
    if (ns < 1e3) return sprintf("%.1f ns", ns)
    if (ns < 1e6) return sprintf("%.2f us", ns / 1e3)
    if (ns < 1e9) return sprintf("%.2f ms", ns / 1e6)
    return sprintf("%.3f s", ns / 1e9)
}
function human_rate(kind, count, ns,    per_s) {
    if (kind == "-" || ns <= 0) return "-"
    per_s = count * 1e9 / ns
    if (kind == "Bytes" || kind == "BytesDecimal") {
        if (per_s >= 2^30) return sprintf("%.2f GiB/s", per_s / 2^30)
        return sprintf("%.1f MiB/s", per_s / 2^20)
    }
    if (per_s >= 1e6) return sprintf("%.2f Melem/s", per_s / 1e6)
    if (per_s >= 1e3) return sprintf("%.1f Kelem/s", per_s / 1e3)
    return sprintf("%.0f elem/s", per_s)
}
{
    n++
    group[n] = $1; base[n] = $2; raw[n] = $3; full[n] = $4
    kind[n] = $5; count[n] = $6; median[n] = $7
    if ($3 == 1) raw_median[$1 SUBSEP $2] = $7
}
END {
    fmt = "%-44s %12s %16s %12s\n"
    printf fmt, "benchmark", "median", "throughput", "vs raw"
    printf fmt, "---------", "------", "----------", "------"
    for (i = 1; i <= n; i++) {
        ratio = ""
        key = group[i] SUBSEP base[i]
        # A group may share one baseline among variants: `G/raw/X` for `G/X/variant`.
        if (raw[i] == 0 && !(key in raw_median) && base[i] ~ /\//) {
            shared = base[i]
            sub(/\/[^\/]*$/, "", shared)
            key = group[i] SUBSEP shared
        }
        if (raw[i] == 0 && (key in raw_median) && raw_median[key] > 0)
            ratio = sprintf("%.2fx", median[i] / raw_median[key])
        printf fmt, full[i], human_time(median[i]), human_rate(kind[i], count[i], median[i]), ratio
    }
    print ""
    print "vs raw: topiclog median time / raw median time (above 1: topiclog is slower)."
}'

latency_dir=$dir/topiclog-latency
if compgen -G "$latency_dir/*.tsv" >/dev/null; then
    echo
    cat "$latency_dir"/*.tsv | sort | awk -F '\t' '
    BEGIN {
        fmt = "%-44s %11s %11s %11s %11s %8s\n"
        printf fmt, "per-operation latency", "p50", "p90", "p99", "max", "n"
    }
    { printf fmt, $1, sprintf("%.1f us", $2 / 1e3), sprintf("%.1f us", $3 / 1e3),
        sprintf("%.1f us", $4 / 1e3), sprintf("%.1f us", $5 / 1e3), $6 }'
fi

ratio_dir=$dir/topiclog-compression
if compgen -G "$ratio_dir/*.tsv" >/dev/null; then
    echo
    cat "$ratio_dir"/*.tsv | sort | awk -F '\t' '
    BEGIN {
        fmt = "%-44s %14s %14s %8s\n"
        printf fmt, "compression ratio (value bytes / .log bytes)", "value bytes", ".log bytes", "ratio"
    }
    { printf fmt, $1, $2, $3, sprintf("%.2f", $4) }'
fi
