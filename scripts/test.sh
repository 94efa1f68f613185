#!/usr/bin/env bash
# Runs every check (lint, type check, C under sanitizers, vitest) and sums
# them into one closing line "N passed, N failed". Keeps going after a
# failure so one run reports everything.
set -uo pipefail
cd "$(dirname "$0")/.."
passed=0
failed=0
step() { # name, command...
  local name=$1; shift
  echo "== $name"
  if "$@"; then passed=$((passed + 1)); echo "== $name: ok"; else failed=$((failed + 1)); echo "== $name: FAILED"; fi
}
step "biome (lint + format)" npx biome check .
step "tsc (type check)" npx tsc -p tsconfig.json

echo "== C surface under AddressSanitizer"
asan_out=$(make --no-print-directory asan 2>&1); asan_rc=$?
echo "$asan_out"
asan_p=$(sed -n 's/^asan: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' <<<"$asan_out" | tail -1)
asan_f=$(sed -n 's/^asan: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' <<<"$asan_out" | tail -1)
if [ -z "$asan_p" ]; then failed=$((failed + 1)); echo "== asan: did not complete (rc $asan_rc)"
else passed=$((passed + asan_p)); failed=$((failed + asan_f)); [ "$asan_rc" = 0 ] || [ "$asan_f" != 0 ] || failed=$((failed + 1)); fi

echo "== vitest"
mkdir -p test-artifacts
report=test-artifacts/vitest.json
rm -f "$report"
npx vitest run --reporter=default --reporter=json --outputFile.json="$report"
vitest_rc=$?
if [ -s "$report" ]; then
  read -r vp vf vs < <(node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    // A suite that fails to load has no test results but is a failure.
    const broken = r.testResults.filter((f) => f.status === "failed" && f.assertionResults.length === 0).length;
    console.log(r.numPassedTests, r.numFailedTests + broken, r.numPendingTests + r.numTodoTests);
  ' "$report")
  passed=$((passed + vp)); failed=$((failed + vf))
  [ "$vs" != 0 ] && echo "== vitest: $vs skipped (each says why)"
  [ "$vitest_rc" != 0 ] && [ "$vf" = 0 ] && failed=$((failed + 1))
else
  failed=$((failed + 1)); echo "== vitest produced no report (rc $vitest_rc)"
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
