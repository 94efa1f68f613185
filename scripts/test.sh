#!/usr/bin/env bash
# Runs every check (lint, type check, the C surface under sanitizers, vitest)
# and sums them into one closing line "N passed, N failed": lint, type check
# and asan count as one step each (asan prints its own check count on a line
# of its own), vitest adds one per test. Keeps going after a failure so one
# run reports everything.
#   scripts/test.sh          everything (make test, .ci/run): the whole suite on
#                            the chosen QEMU series (QEMU=11|10), then on the
#                            other series the QEMU facts, the version scenarios
#                            and the demo (skipped with CXL_MHD_QEMU set,
#                            which names one QEMU, or CXL_MHD_OTHER_QEMU=none)
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
# "passed failed skipped" from a vitest JSON report.
vitest_counts() {
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    // A suite that fails to load has no test results but is a failure.
    const broken = r.testResults.filter((f) => f.status === "failed" && f.assertionResults.length === 0).length;
    console.log(r.numPassedTests, r.numFailedTests + broken, r.numPendingTests + r.numTodoTests);
  ' "$1"
}
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

# The other QEMU series' root first: tests that compare the two (a released
# range's reachability, docs/security.md) run on both in the main pass.
other="" other_root_ok=0
if [ "$unit" = 0 ] && [ -z "${CXL_MHD_QEMU:-}" ] && [ "${CXL_MHD_OTHER_QEMU:-}" != none ]; then
  series=${CXL_MHD_QEMU_SERIES:-$(node -e 'import("./dist/src/qemu/binary.js").then((m) => console.log(m.DEFAULT_QEMU_SERIES))')}
  other=$([ "$series" = 11 ] && echo 10 || echo 11)
  echo "== the QEMU $other series' root (make setup QEMU=$other)"
  CXL_MHD_QEMU_SERIES=$other scripts/setup-qemu.sh && other_root_ok=1
fi

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
  read -r vp vf vs < <(vitest_counts "$report")
  passed=$((passed + vp)); failed=$((failed + vf))
  vitest_line="vitest: $vp passed, $vf failed"
  [ "$vs" != 0 ] && vitest_line="$vitest_line, $vs skipped (each says why)"
  [ "$vitest_rc" != 0 ] && [ "$vf" = 0 ] && failed=$((failed + 1))
else
  failed=$((failed + 1))
fi
echo "$vitest_line"

# --- the other QEMU series -----------------------------------------------------
# On the other series: the QEMU facts, the version scenarios (System RAM or
# its refusal, injection, the 7.3 guest) and the demo, whose release goes the
# way that QEMU allows (examples/ci/three-heads.yaml: Retry Required and a
# head restart on 11.1, Success on 10.0), and sanitize on release, which
# moves the same blocks between heads and so needs the QEMU that returns them
# (10.0; on 11.1 a released LD stays mapped until its QEMU exits).
other_line=""
if [ -n "$other" ]; then
  echo "== on the other QEMU series ($other): the QEMU facts, the demo, the version scenarios and sanitize on release"
  report2=test-artifacts/vitest-qemu$other.json
  rm -f "$report2"
  files=(test/qemu/facts-qemu.test.ts test/scenario/versions-qemu.test.ts test/scenario/boot-qemu.test.ts test/capacity/sanitize-qemu.test.ts)
  if [ "$other_root_ok" = 1 ]; then
    CXL_MHD_QEMU_SERIES=$other npx vitest run --reporter=default --reporter=json --outputFile.json="$report2" "${files[@]}"
  fi
  if [ -s "$report2" ]; then
    read -r op of os < <(vitest_counts "$report2")
    passed=$((passed + op)); failed=$((failed + of))
    other_line="QEMU $other series: $op passed, $of failed"
    [ "$os" != 0 ] && other_line="$other_line, $os skipped (each says why)"
  else
    failed=$((failed + 1)); other_line="QEMU $other series: no report (its root could not be set up, or vitest did not run)"
  fi
  echo "$other_line"
fi
echo "$vitest_line"
[ -n "$other_line" ] && echo "$other_line"
echo "$asan_line"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
