#!/usr/bin/env bash
# Runs every check (lint, type check, the C surface under sanitizers, vitest)
# and sums them into one closing line "N passed, N failed": lint, type check
# and asan count as one step each (asan prints its own check count on a line
# of its own), vitest adds one per test. Keeps going after a failure so one
# run reports everything.
#   scripts/test.sh          everything (make test, .ci/run)
#   scripts/test.sh --unit   the fast tier (make unit): asan + the tests that
#                            need neither root nor QEMU (vitest.config.ts)
set -uo pipefail
cd "$(dirname "$0")/.."
unit=0
case "${1:-}" in
  --unit) unit=1 ;;
  '') ;;
  *) echo "usage: scripts/test.sh [--unit]" >&2; exit 2 ;;
esac
passed=0
failed=0
step() { # name, command...
  local name=$1; shift
  echo "== $name"
  if "$@"; then passed=$((passed + 1)); echo "== $name: ok"; else failed=$((failed + 1)); echo "== $name: FAILED"; fi
}
if [ "$unit" = 0 ]; then
  step "biome (lint + format)" npx biome check .
  step "tsc (type check)" npx tsc -p tsconfig.json
fi

echo "== asan (C surface under AddressSanitizer + UBSan)"
asan_out=$(make --no-print-directory asan 2>&1); asan_rc=$?
echo "$asan_out"
asan_p=$(sed -n 's/^asan: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' <<<"$asan_out" | tail -1)
asan_f=$(sed -n 's/^asan: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' <<<"$asan_out" | tail -1)
if [ -z "$asan_p" ]; then
  failed=$((failed + 1)); asan_line="asan: did not complete (rc $asan_rc)"
elif [ "$asan_rc" = 0 ] && [ "$asan_f" = 0 ]; then
  passed=$((passed + 1)); asan_line="asan: $asan_p checks passed"
else
  failed=$((failed + 1)); asan_line="asan: $asan_f of $((asan_p + asan_f)) checks failed (rc $asan_rc)"
fi
echo "$asan_line"

echo "== vitest$([ "$unit" = 1 ] && echo ' (unit tier: no root, no QEMU)')"
mkdir -p test-artifacts
report=test-artifacts/vitest.json
rm -f "$report"
if [ "$unit" = 1 ]; then
  # The process fuzz of the CLI at half its runs (its exit-code mix needs that many); `make test` runs it whole.
  # `make unit` has just built dist/ (its `build` prerequisite): no second tsc.
  CXL_MHD_TIER=unit CXL_MHD_FUZZ_CLI="${CXL_MHD_FUZZ_CLI:-0.5}" CXL_MHD_SKIP_BUILD="${CXL_MHD_SKIP_BUILD:-1}" \
    npx vitest run --reporter=default --reporter=json --outputFile.json="$report"
else
  npx vitest run --reporter=default --reporter=json --outputFile.json="$report"
fi
vitest_rc=$?
vitest_line="vitest: no report (rc $vitest_rc)"
if [ -s "$report" ]; then
  read -r vp vf vs < <(node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    // A suite that fails to load has no test results but is a failure.
    const broken = r.testResults.filter((f) => f.status === "failed" && f.assertionResults.length === 0).length;
    console.log(r.numPassedTests, r.numFailedTests + broken, r.numPendingTests + r.numTodoTests);
  ' "$report")
  passed=$((passed + vp)); failed=$((failed + vf))
  vitest_line="vitest: $vp passed, $vf failed"
  [ "$vs" != 0 ] && vitest_line="$vitest_line, $vs skipped (each says why)"
  [ "$vitest_rc" != 0 ] && [ "$vf" = 0 ] && failed=$((failed + 1))
else
  failed=$((failed + 1))
fi
echo "$vitest_line"
echo "$asan_line"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
