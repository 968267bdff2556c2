#!/usr/bin/env bash
# Runs each libFuzzer target for SECONDS seconds: scripts/fuzz.sh BUILD SECONDS TARGET...
# With FUZZ_RUNS=N set, each target instead runs exactly N inputs from a fixed seed (-seed=1),
# after its seeds: the same inputs every time, which is what CI runs.
# New inputs go to BUILD/corpus/TARGET (the repo's seeds are read, never written); a crash,
# hang or sanitizer report stops that target, lands in BUILD/artifacts/ and fails the script.
# -timeout is generous: a shared machine can stall a process for seconds (a 10 s limit once
# reported a 2-byte input that runs in 0.2 s).
set -uo pipefail
build=$1 seconds=$2
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
status=0
summary=""
for target in "$@"; do
  work="$build/corpus/$target"
  mkdir -p "$work" "$build/artifacts"
  log="$build/fuzz_$target.log"
  maxlen=65536
  [[ $target == checkpoint ]] && maxlen=262144  # its seeds are real checkpoints
  seeds=()  # libFuzzer refuses a missing folder; git keeps no empty ones
  for dir in "$root/fuzz/corpus/$target" "$root/fuzz/regressions/$target"; do
    [[ -d $dir ]] && seeds+=("$dir")
  done
  dict=()
  [[ -f "$root/fuzz/$target.dict" ]] && dict=(-dict="$root/fuzz/$target.dict")
  budget=(-max_total_time="$seconds") spent="${seconds}s"
  if [[ -n ${FUZZ_RUNS:-} ]]; then budget=(-runs="$FUZZ_RUNS" -seed=1) spent="$FUZZ_RUNS runs"; fi
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$build/fuzz/fuzz_$target" "${budget[@]}" -timeout=60 -rss_limit_mb=2048 \
    -max_len="$maxlen" -print_final_stats=1 -artifact_prefix="$build/artifacts/$target-" "${dict[@]}" \
    "$work" "${seeds[@]}" >"$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  if ((rc != 0)); then
    status=1
    summary+="$target: FAILED (rc $rc, see $log and $build/artifacts/)"$'\n'
  else
    summary+="$target: $spent, ${execs:-?} execs, ${cov:-cov: ?}, no findings"$'\n'
  fi
done
printf '%s' "$summary"
exit $status
