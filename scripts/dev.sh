#!/usr/bin/env bash
# Entry point of the npm scripts: makes sure the toolchain is installed (scripts/setup.sh),
# then runs the command with the project's Node LTS, whatever Node started npm.
#   dev.sh test [vitest args]   all tests (vitest run)
#   dev.sh run FILE [args]      a TypeScript entry point (Node strips the types)
#   dev.sh exec CMD [args]      any command with the toolchain on PATH
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/env.sh"
cd "$SS_ROOT"
bash scripts/setup.sh
cmd=${1:?usage: dev.sh test|run|exec ...}; shift
case "$cmd" in
  test) exec node node_modules/vitest/vitest.mjs run "$@" ;;
  run)  exec node "$@" ;;
  exec) PATH="$SS_ROOT/node_modules/.bin:$PATH" exec "$@" ;;
  *) echo "dev.sh: unknown command $cmd" >&2; exit 2 ;;
esac
