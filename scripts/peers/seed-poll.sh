#!/usr/bin/env bash
# Peer for `npm run bench`: the original polling watchdog ("a kubectl sidecar polling Sentinel and
# patching an ExternalName Service", docs/peers.md), re-implemented faithfully:
#   every INTERVAL seconds ask ONE sentinel `SENTINEL get-master-addr-by-name`, read the Service's
#   externalName, and `kubectl patch` it when they differ. No ROLE check, no majority, no retry
#   beyond the next round.
# Differences from the original, all in its favour: it asks the sentinel directly with redis-cli
# instead of through `kubectl exec ... redis-cli`, and it repeats the IP -> pod lookup only when the
# sentinel's answer changes. Sentinel here announces IPs, so an IP is mapped to the pod's DNS name
# (<hostname>.<subdomain>.<namespace>.svc.<domain>, pod found by status.podIP) as sentinel-switch
# does; a hostname answer is used as is (what the original gets with announce-hostnames).
#
# usage: seed-poll.sh --sentinel HOST:PORT --namespace NS --service NAME --kubeconfig FILE
#                     [--master-set mymaster] [--interval 5] [--cluster-domain cluster.local]
#                     [--owner-pid PID] [--max-seconds 3600] [--cache-dir DIR]
# Sentinel auth: redis-cli reads REDISCLI_AUTH from the environment (set it if the sentinels have
# requirepass). Bounded: exits when --owner-pid is gone or after --max-seconds, and on SIGTERM.
set -uo pipefail

sentinel='' namespace='' service='' kubeconfig='' master_set=mymaster interval=5
domain=cluster.local owner='' max_seconds=3600 cache_dir=''
while (($#)); do
  [[ $# -ge 2 ]] || { echo "seed-poll: $1 needs a value" >&2; exit 2; }
  case "$1" in
    --sentinel) sentinel=$2 ;;
    --namespace) namespace=$2 ;;
    --service) service=$2 ;;
    --kubeconfig) kubeconfig=$2 ;;
    --master-set) master_set=$2 ;;
    --interval) interval=$2 ;;
    --cluster-domain) domain=$2 ;;
    --owner-pid) owner=$2 ;;
    --max-seconds) max_seconds=$2 ;;
    --cache-dir) cache_dir=$2 ;;
    *) echo "seed-poll: unknown argument $1" >&2; exit 2 ;;
  esac
  shift 2
done
[[ -n $sentinel && -n $namespace && -n $service && -n $kubeconfig ]] || { echo 'seed-poll: --sentinel, --namespace, --service and --kubeconfig are required' >&2; exit 2; }
s_host=${sentinel%:*} s_port=${sentinel##*:}

log() { printf '%s seed-poll: %s\n' "$(date -u +%H:%M:%S.%3N)" "$*"; }
k() { kubectl --kubeconfig "$kubeconfig" ${cache_dir:+--cache-dir "$cache_dir"} --request-timeout=5s -n "$namespace" "$@"; }

child=''
trap '[[ -n $child ]] && kill "$child" 2>/dev/null; log "stopped"; exit 0' TERM INT
alive() { [[ -z $owner ]] || kill -0 "$owner" 2>/dev/null; }
nap() { sleep "$1" & child=$!; wait "$child"; child=''; }

log "polling $sentinel every ${interval}s for $master_set -> service $namespace/$service"
last_addr='' last_target=''
while alive && ((SECONDS < max_seconds)); do
  # ONE sentinel, one question (redis-cli --raw prints host and port on two lines).
  addr=$(timeout 3 redis-cli -h "$s_host" -p "$s_port" --raw SENTINEL get-master-addr-by-name "$master_set" 2>/dev/null | head -n 1)
  if [[ -z $addr ]]; then
    log "sentinel $sentinel gave no master"
  else
    if [[ $addr == "$last_addr" ]]; then
      target=$last_target
    elif [[ $addr =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
      name=$(k get pods --field-selector "status.podIP=$addr" -o jsonpath='{.items[0].spec.hostname}.{.items[0].spec.subdomain}' 2>/dev/null)
      if [[ $name == ?*.?* ]]; then target="$name.$namespace.svc.$domain"; else target=''; log "no pod with IP $addr"; fi
    else
      target=$addr
    fi
    if [[ -n $target ]]; then
      last_addr=$addr last_target=$target
      current=$(k get service "$service" -o jsonpath='{.spec.externalName}' 2>/dev/null)
      if [[ $current != "$target" ]]; then
        if k patch service "$service" --type=merge -p "{\"spec\":{\"externalName\":\"$target\"}}" >/dev/null; then
          log "patched $service: $current -> $target"
        else
          log "patch of $service to $target failed"
        fi
      fi
    fi
  fi
  nap "$interval"
done
log "exiting (owner gone or max runtime reached)"
