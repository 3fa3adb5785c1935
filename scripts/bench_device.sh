#!/usr/bin/env bash
# Training benchmarks for the GPU machine: one call runs a whole table and prints it last.
#
#   source .device/env.sh; bash scripts/bench_device.sh PLAN [BIN=NAME]...
#
# Runs from the repository root on the device machine, after `../shared/tools/device-prep.sh
# --bin ... --data bench_tabletop --data tiny_blender` prepared `.device/` (binaries on PATH,
# scenes under .device/data). Every case is one `splatforge train` (or `bench raster`) with
# nvidia-smi sampling device memory every 100 ms in the background; its log, metrics.jsonl and
# memory samples are kept under $OUT (what comes back is limited to 8 files, so they are packed
# into one archive at the end). The table at the end has, per case: training seconds, it/s,
# test PSNR / SSIM, Gaussians, peak device memory (nvidia-smi, driver included) and, where the
# case evaluates along the way, the step time between the last two evaluations.
#
# PLAN is a file with one case per line: `name binary kind args...` where kind is
#   tabletop  bench_tabletop, every 8th view held out, full resolution, 7k unless args say
#   blender   tiny_blender at 128x128, white background
#   raster    `splatforge bench raster --bandwidth-gbs 4250`
#   trained   `bench raster` on a trained cloud: `name binary trained CASE args`, the final PLY
#             of the earlier case CASE rendered from bench_tabletop's training views
#   view      `splatforge bench view` (the game plugin's renderer; prints its own table)
#   dispatch  `splatforge bench dispatch` (the fixed cost of one dispatch; its own table)
#   sort      `splatforge bench sort` (the radix sort per block shape, checked; its own table)
#   editor    the editor offscreen on bench_tabletop at 1920x1080 (training to 30k, so it
#             never finishes), then a headless run to the iteration the editor reached: the
#             row's rate is the editor's, the late-steps column the headless rate over the
#             same iterations and the ratio
#   same      compare two earlier cases' final PLYs byte for byte: `name - same caseA caseB`
# and `args` are passed on (e.g. `--set optimization.opacity_lr=0.05 --set run.seed=1`).
set -uo pipefail
plan=$1
out=${OUT:-/tmp/bench-out}
mkdir -p "$out/cases"
data=.device/data
table=()

peak_mib() { sort -n "$1" 2>/dev/null | tail -1; }

run_case() {
    local name=$1 bin=$2 kind=$3
    shift 3
    local dir="$out/cases/$name"
    mkdir -p "$dir"
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$dir/mem.txt" 2>/dev/null &
    local smi=$!
    local start=$(date +%s%N)
    case $kind in
        tabletop)
            "$bin" train -s "$data/bench_tabletop" -m "$dir/model" --eval --quiet \
                --iterations 7000 --test_iterations 7000 --save_iterations 7000 "$@" \
                >"$dir/log.txt" 2>&1 ;;
        blender)
            "$bin" train -s "$data/tiny_blender" -m "$dir/model" --eval --quiet -w \
                --iterations 7000 --test_iterations 6000 7000 --save_iterations 7000 "$@" \
                >"$dir/log.txt" 2>&1 ;;
        raster)
            "$bin" bench raster --bandwidth-gbs 4250 "$@" >"$dir/log.txt" 2>&1 ;;
        trained)
            # `bench raster` on the final PLY of the earlier case named first.
            local ply=$(ls "$out/cases/$1"/model/point_cloud/iteration_*/point_cloud.ply 2>/dev/null | tail -1)
            shift
            "$bin" bench raster --bandwidth-gbs 4250 --ply "$ply" -s "$data/bench_tabletop" "$@" \
                >"$dir/log.txt" 2>&1 ;;
        view)
            "$bin" bench view "$@" >"$dir/log.txt" 2>&1 ;;
        dispatch)
            "$bin" bench dispatch "$@" >"$dir/log.txt" 2>&1 ;;
        sort)
            "$bin" bench sort "$@" >"$dir/log.txt" 2>&1 ;;
        editor)
            "$bin" editor -s "$data/bench_tabletop" -m "$dir/editor" --eval --quiet \
                --iterations 30000 --test_iterations 30000 --offscreen --frames 600 --size 1920x1080 "$@" \
                >"$dir/log.txt" 2>&1 ;;
    esac
    local rc=$?
    kill $smi 2>/dev/null; wait $smi 2>/dev/null
    local wall=$(( ($(date +%s%N) - start) / 1000000000 ))
    local summary=$(grep -h "^Training " "$dir/log.txt" | tail -1)
    local train_s=$(sed -n 's/.* in \([0-9.]*\) s.*/\1/p' <<<"$summary")
    local rate=$(sed -n 's/.*(\([0-9]*\) it\/s).*/\1/p' <<<"$summary")
    local gaussians=$(sed -n 's/.*, \([0-9]*\) Gaussians.*/\1/p' <<<"$summary")
    local psnr=$(sed -n 's/.*test PSNR \([0-9.]*\) SSIM \([0-9.]*\).*/\1 \2/p' <<<"$summary")
    # With --quiet there is no summary line: the last test evaluation has the same figures.
    if [ -z "$train_s" ] && [ -f "$dir/model/metrics.jsonl" ]; then
        read -r train_s rate psnr gaussians < <(grep '"split":"test"' "$dir/model/metrics.jsonl" | tail -1 | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
print("%.2f %.0f %.3f/%.4f %d" % (r["elapsed_s"], r["iteration"] / r["elapsed_s"], r["psnr"], r["ssim"], r["num_gaussians"]))
' 2>/dev/null)
    fi
    # Step time between the last two test evaluations (ms), from metrics.jsonl.
    local late=""
    if [ -f "$dir/model/metrics.jsonl" ]; then
        late=$(grep '"split":"test"' "$dir/model/metrics.jsonl" | tail -2 | python3 -c '
import json, sys
r = [json.loads(l) for l in sys.stdin]
if len(r) == 2 and r[1]["iteration"] > r[0]["iteration"]:
    d = (r[1]["elapsed_s"] - r[0]["elapsed_s"]) / (r[1]["iteration"] - r[0]["iteration"])
    print("%.3f ms/it at %d-%d (%d Gaussians)" % (1e3 * d, r[0]["iteration"], r[1]["iteration"], r[1]["num_gaussians"]))
' 2>/dev/null)
    fi
    if [ "$kind" = editor ]; then
        # editor offscreen: N frames; measured over M frames in S s: F frames/s, I iterations,
        # R it/s (...); reached iteration K
        local line=$(grep -h "^editor offscreen" "$dir/log.txt" | tail -1)
        rate=$(sed -n 's/.*, \([0-9.]*\) it\/s.*/\1/p' <<<"$line")
        local fps=$(sed -n 's/.*: \([0-9.]*\) frames\/s.*/\1/p' <<<"$line")
        local reached=$(sed -n 's/.*reached iteration \([0-9]*\).*/\1/p' <<<"$line")
        local measured=$(sed -n 's/.*frames\/s, \([0-9]*\) iterations.*/\1/p' <<<"$line")
        if [ -n "$reached" ] && [ "$reached" -gt 0 ]; then
            # Headless over the iterations the editor measured (its warm-up frames excluded).
            local start_it=$((reached - measured))
            "$bin" train -s "$data/bench_tabletop" -m "$dir/headless" --eval --quiet \
                --iterations "$reached" --test_iterations "$start_it" "$reached" \
                --save_iterations "$reached" "$@" >"$dir/headless.txt" 2>&1
            local head=$(grep '"split":"test"' "$dir/headless/metrics.jsonl" 2>/dev/null | tail -2 | python3 -c '
import json, sys
r = [json.loads(l) for l in sys.stdin]
if len(r) == 2:
    d = r[1]["elapsed_s"] - r[0]["elapsed_s"]
    print("%.1f" % ((r[1]["iteration"] - r[0]["iteration"]) / d))
' 2>/dev/null)
            late="headless ${head:-?} it/s over iterations $start_it-$reached; editor ${fps} frames/s"
            if [ -n "$head" ] && [ -n "$rate" ]; then
                late="$late; ratio $(python3 -c "print('%.3f' % ($rate / $head))")"
            fi
        fi
        summary=$line
    fi
    table+=("| $name | rc $rc | ${train_s:-?} s | ${rate:-?} it/s | ${psnr:-? ?} | ${gaussians:-?} | $(peak_mib "$dir/mem.txt") MiB | ${late:-} | wall $wall s |")
    echo "== $name done (rc $rc): $summary"
}

same_case() {
    local name=$1 a=$2 b=$3
    local pa=$(ls "$out/cases/$a"/model/point_cloud/iteration_*/point_cloud.ply 2>/dev/null | tail -1)
    local pb=$(ls "$out/cases/$b"/model/point_cloud/iteration_*/point_cloud.ply 2>/dev/null | tail -1)
    local verdict="different"
    if [ -n "$pa" ] && [ -n "$pb" ] && cmp -s "$pa" "$pb"; then verdict="bit-identical"; fi
    # Metrics without the (timing) field elapsed_s.
    local metrics="different"
    local ma=$(sed 's/"elapsed_s":[^,}]*//' "$out/cases/$a/model/metrics.jsonl" 2>/dev/null | md5sum)
    local mb=$(sed 's/"elapsed_s":[^,}]*//' "$out/cases/$b/model/metrics.jsonl" 2>/dev/null | md5sum)
    if [ -f "$out/cases/$a/model/metrics.jsonl" ] && [ "$ma" = "$mb" ]; then metrics="identical"; fi
    table+=("| $name | $a vs $b: PLY $verdict, metrics $metrics | | | | | | | |")
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
while read -r name bin kind rest; do
    [ -z "${name:-}" ] || [ "${name:0:1}" = "#" ] && continue
    if [ "$kind" = same ]; then
        read -r a b <<<"$rest"
        same_case "$name" "$a" "$b"
    else
        # shellcheck disable=SC2086
        run_case "$name" "$bin" "$kind" $rest
    fi
done <"$plan"

# Profiles and raster tables of every case, then the table.
for d in "$out"/cases/*/; do
    n=$(basename "$d")
    for profile in "$d"/*/profile.md; do
        [ -f "$profile" ] || continue
        echo "== profile: $n ($(basename "$(dirname "$profile")"))"
        cat "$profile"
    done
    if grep -q "^| Gaussians\|^| splats\|^| floats\|^# splatforge bench view\|^# splatforge bench raster\|^# splatforge bench sort" "$d/log.txt" 2>/dev/null; then
        echo "== raster: $n"
        grep "^|\|^## \|^visible: \|^tile lists\|^backward pieces" "$d/log.txt"
    fi
done
(cd "$out" && tar czf cases.tgz --exclude='*.ply' cases && rm -rf cases)
echo
echo "| case | status | train | rate | test PSNR SSIM | Gaussians | peak memory | late steps | wall |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${table[@]}"
