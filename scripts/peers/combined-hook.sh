#!/usr/bin/env bash
# Sentinel's client-reconfig-script for `npm run bench` and test/peers.test.ts. Sentinel allows ONE
# script per master set, so this runs both hooks under comparison:
#   1. Bitnami's `sentinel.masterService` step: write the `to` address (argument 6) to the file
#      the label loop of this Redis pod polls (scripts/peers/bitnami-label.sh). One folder per
#      sentinel under $BITNAMI_MASTER_DIR, named after the sentinel's working directory
#      (sentinel-0, ...), like the chart's per-pod shared volume. Written first: it takes
#      microseconds, and written atomically so the loop never reads half a line.
#   2. sentinel-switch's own hook, scripts/client-reconfig.sh, whose exit code is the result.
# Called as: <master-name> <role> <state> <from-ip> <from-port> <to-ip> <to-port>
if [[ -n ${BITNAMI_MASTER_DIR:-} && -n ${6:-} ]]; then
  d="$BITNAMI_MASTER_DIR/${PWD##*/}"
  mkdir -p "$d" && printf '%s\n' "$6" > "$d/master.tmp.$$" && mv -f "$d/master.tmp.$$" "$d/master"
fi
exec bash "$(dirname "${BASH_SOURCE[0]}")/../client-reconfig.sh" "$@"
