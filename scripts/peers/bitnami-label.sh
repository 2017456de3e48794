#!/usr/bin/env bash
# Peer for `npm run bench`: the Bitnami chart's experimental `sentinel.masterService` loop
# (docs/peers.md, sentinel-facts doc), re-implemented faithfully. In the chart, Sentinel's
# client-reconfig-script writes the new master's address (`to`, argument 6) to a file in a volume
# shared with a kubectl sidecar of the same Redis pod; the sidecar checks for that file every 1 s
# and relabels the Pods: isMaster=true on the new master, isMaster=false on every other one. A
# Service `<fullname>-master` selects isMaster=true. One such loop runs in EVERY Redis pod. No check
# of the address, and a failed label is only echoed, never retried.
# The writing half is scripts/peers/combined-hook.sh (Sentinel allows one script per master set).
#
# The chart normally gets hostnames (<pod>.<headless>...: pod name = first label). Sentinel here
# announces IPs, so an IP is mapped to its pod's name from a pod list taken at start (refreshed on
# a miss), which costs nothing per failover, as with hostnames.
#
# usage: bitnami-label.sh --file PATH --namespace NS --kubeconfig FILE [--selector app=redis]
#                         [--interval 1] [--owner-pid PID] [--max-seconds 3600] [--cache-dir DIR]
#                         [--phase-ms N]   (a first sleep: each pod's sidecar started at its own time)
# Bounded: exits when --owner-pid is gone or after --max-seconds, and on SIGTERM.
set -uo pipefail

file='' namespace='' kubeconfig='' selector=app=redis interval=1 owner='' max_seconds=3600 cache_dir='' phase_ms=0
while (($#)); do
  [[ $# -ge 2 ]] || { echo "bitnami-label: $1 needs a value" >&2; exit 2; }
  case "$1" in
    --file) file=$2 ;;
    --namespace) namespace=$2 ;;
    --kubeconfig) kubeconfig=$2 ;;
    --selector) selector=$2 ;;
    --interval) interval=$2 ;;
    --owner-pid) owner=$2 ;;
    --max-seconds) max_seconds=$2 ;;
    --cache-dir) cache_dir=$2 ;;
    --phase-ms) phase_ms=$2 ;;
    *) echo "bitnami-label: unknown argument $1" >&2; exit 2 ;;
  esac
  shift 2
done
[[ -n $file && -n $namespace && -n $kubeconfig ]] || { echo 'bitnami-label: --file, --namespace and --kubeconfig are required' >&2; exit 2; }

log() { printf '%s bitnami-label: %s\n' "$(date -u +%H:%M:%S.%3N)" "$*"; }
k() { kubectl --kubeconfig "$kubeconfig" ${cache_dir:+--cache-dir "$cache_dir"} --request-timeout=5s -n "$namespace" "$@"; }

child=''
trap '[[ -n $child ]] && kill "$child" 2>/dev/null; log "stopped"; exit 0' TERM INT
alive() { [[ -z $owner ]] || kill -0 "$owner" 2>/dev/null; }
nap() { sleep "$1" & child=$!; wait "$child"; child=''; }

declare -A pod_of_ip=()
load_pods() {
  local ip name
  while read -r ip name; do [[ -n $ip && -n $name ]] && pod_of_ip[$ip]=$name; done \
    < <(k get pods -l "$selector" -o jsonpath='{range .items[*]}{.status.podIP}{" "}{.metadata.name}{"\n"}{end}' 2>/dev/null)
}
pod_name() {
  local addr=$1
  if [[ $addr =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    [[ -n ${pod_of_ip[$addr]:-} ]] || load_pods
    printf '%s' "${pod_of_ip[$addr]:-}"
  else
    printf '%s' "${addr%%.*}"
  fi
}

load_pods
((phase_ms > 0)) && nap "$(printf '%d.%03d' $((phase_ms / 1000)) $((phase_ms % 1000)))"
log "watching $file every ${interval}s; pods ${!pod_of_ip[*]}"
while alive && ((SECONDS < max_seconds)); do
  if [[ ! -f $file ]]; then nap "$interval"; continue; fi
  master=$(<"$file")
  rm -f "$file"
  name=$(pod_name "$master")
  if [[ -z $name ]]; then log "no pod for $master"; continue; fi
  log "updating master label for $name ($master)"
  k label pod --field-selector "metadata.name=$name" isMaster=true --overwrite >/dev/null || log "labelling $name isMaster=true failed"
  k label pod -l "$selector" --field-selector "metadata.name!=$name" isMaster=false --overwrite >/dev/null || log "labelling the others isMaster=false failed"
done
log "exiting (owner gone or max runtime reached)"
