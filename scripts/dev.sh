#!/usr/bin/env bash
# Entry point of the npm scripts: makes sure the toolchain is installed (scripts/setup.sh),
# then runs the command with the project's Node LTS, whatever Node started npm.
#   dev.sh test [vitest args]   all tests (vitest run)
#   dev.sh run FILE [args]      a TypeScript entry point (Node strips the types)
#   dev.sh exec CMD [args]      any command with the toolchain on PATH
#   dev.sh shell                an interactive bash inside a fresh sandbox namespace
#   dev.sh enter [PID]          a bash inside a running one (default: the newest of this checkout)
# `test` and `run` run inside the sandbox's own network + mount namespace (scripts/lib/netns.sh):
# setup first (it needs the registries), then nothing inside has a route out.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/env.sh"
cd "$SS_ROOT"
cmd=${1:?usage: dev.sh test|run|exec|shell|enter ...}; shift
case "$cmd" in
  enter) exec bash scripts/lib/netns.sh enter "$@" ;;
esac
[ "${SENTINEL_SWITCH_SETUP_DONE:-}" = 1 ] || bash scripts/setup.sh
case "$cmd" in
  test|run)
    if ! bash scripts/lib/netns.sh inside; then
      SENTINEL_SWITCH_SETUP_DONE=1 exec bash scripts/lib/netns.sh run bash scripts/dev.sh "$cmd" "$@"
    fi ;;
  shell) exec bash scripts/lib/netns.sh shell ;;
esac
case "$cmd" in
  test)
    # Besides vitest's own report, one plain closing line 'N passed, N failed, N skipped' that
    # any CI can read, from vitest's JSON report.
    mkdir -p .sandbox
    report=.sandbox/vitest-report.json
    rm -f "$report"
    rc=0
    node node_modules/vitest/vitest.mjs run --reporter=default --reporter=json --outputFile.json="$report" "$@" || rc=$?
    if [ -f "$report" ]; then
      node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));
        const skipped=r.numPendingTests+r.numTodoTests;
        console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ""));' "$report"
    fi
    exit "$rc" ;;
  run)
    # `dev.sh run FILE -- --flag` (as the README writes it, like `npm run x -- --flag`): the `--`
    # is ours, not the script's.
    file=${1:?dev.sh run FILE}; shift
    [ "${1:-}" != "--" ] || shift
    exec node "$file" "$@" ;;
  exec) PATH="$SS_ROOT/node_modules/.bin:$PATH" exec "$@" ;;
  *) echo "dev.sh: unknown command $cmd" >&2; exit 2 ;;
esac
