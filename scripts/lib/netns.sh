#!/usr/bin/env bash
# The sandbox's own network + mount namespace: the tests, the demo and the benchmarks run in it,
# so pods get real (non-loopback) addresses, cluster DNS and a kube-proxy data plane, and nothing
# they start can reach, or be reached from, the host's network.
#
#   netns.sh run CMD [ARGS]   run CMD inside a fresh namespace; returns its exit code
#   netns.sh shell            an interactive bash inside a fresh namespace (debugging)
#   netns.sh enter [PID]      a bash inside a RUNNING sandbox's namespace (default: the newest
#                             one of this checkout, see .sandbox/netns/)
#   netns.sh inside           exit 0 if this process already runs inside a sandbox namespace
#
# Inside:
#   lo up; 198.18.0.0/16 is local on lo (any 198.18.X.Y can be bound, nothing is assigned one by
#   one); the Service CIDR 198.19.0.0/24 is routed to lo (kube-proxy DNATs it; without a route a
#   connect fails "Network is unreachable" before the DNAT); no default route, no other interface.
#   /etc/resolv.conf -> the sandbox's CoreDNS at 198.18.0.53 (started by `scripts/k8s.sh up`),
#   /etc/hosts with localhost only, a sysfs of the namespace on /sys: bind mounts of this mount
#   namespace only, the host's files are untouched.
#   SENTINEL_SWITCH_NETNS=1 tells the scripts and the harness where they run.
# Addresses: 198.18.0.1 API server side / Service-CIDR source, 198.18.0.53 CoreDNS (198.18.0.x is
# reserved for the sandbox's infrastructure), 198.18.1-254.x Redis sandboxes (one /24 each),
# 198.19.0.0/24 ClusterIPs.
# When the command ends, whatever still runs in the namespace is stopped (SIGTERM, then SIGKILL):
# every process in a namespace this script created is one we started.
# As root: `unshare --net --mount`; otherwise with `--user --map-root-user` too.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

NETNS_STATE="$SS_ROOT/.sandbox/netns"
SS_NETNS_DNS=198.18.0.53
SS_NETNS_LOCAL=198.18.0.0/16
SS_NETNS_SERVICE_CIDR=198.19.0.0/24
SS_NETNS_SOURCE=198.18.0.1

say() { printf 'netns: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# Inside one of ours: the marker AND the namespace's local route (an inherited or hand-set
# variable alone proves nothing).
is_inside() {
  [ "${SENTINEL_SWITCH_NETNS:-}" = 1 ] || return 1
  ip -o route show table local "$SS_NETNS_LOCAL" 2>/dev/null | grep -q .
}

enter_fresh() { # MODE ARGS: re-executes this script inside new namespaces
  command -v unshare >/dev/null || die "unshare (util-linux) is missing: run scripts/setup.sh"
  command -v ip >/dev/null || die "ip (iproute2) is missing: run scripts/setup.sh"
  local ns=(--net --mount --propagation private)
  [ "$(id -u)" = 0 ] || ns=(--user --map-root-user "${ns[@]}")
  unshare "${ns[@]}" true 2>/dev/null ||
    die "cannot create a network namespace here ($(unshare "${ns[@]}" true 2>&1 | tail -1)): the sandbox needs root, or unprivileged user namespaces (sysctl user.max_user_namespaces > 0)"
  # A process that stays in the host's namespace while we run (whoever started us waits for us):
  # tests compare the two namespaces through its /proc/PID/net.
  export SENTINEL_SWITCH_HOST_NETNS_PID=$PPID
  exec unshare "${ns[@]}" bash "${BASH_SOURCE[0]}" __setup "$@"
}

# Stops what still runs in this network namespace (but not this script): SIGTERM, up to 5 s for
# them to exit, then SIGKILL.
sweep() {
  local me ns pids=() line pid i
  ns=$(stat -L -c %i /proc/self/ns/net)
  me=$$
  while read -r line; do
    pid=${line%% *}; pid=${pid#/proc/}; pid=${pid%%/*}
    [ "${line##* }" = "$ns" ] && [ "$pid" != "$me" ] && pids+=("$pid")
  done < <(stat -L -c '%n %i' /proc/[0-9]*/ns/net 2>/dev/null || true)
  alive() { local p out=(); for p in "$@"; do [ "$(stat -L -c %i "/proc/$p/ns/net" 2>/dev/null)" = "$ns" ] && out+=("$p"); done; echo "${out[@]}"; }
  local left; left=$(alive "${pids[@]}")
  [ -n "$left" ] || return 0
  local what=() p
  for p in $left; do what+=("$p($(cat "/proc/$p/comm" 2>/dev/null))"); done
  say "stopping what still runs in the sandbox namespace: ${what[*]}"
  kill -TERM $left 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do left=$(alive $left); [ -n "$left" ] || return 0; sleep 0.1; done
  kill -KILL $left 2>/dev/null || true
}

setup_inside() {
  ip link set lo up
  # The infrastructure's two addresses as real addresses: besides being bindable, they make
  # getaddrinfo's AI_ADDRCONFIG (Node's net.connect, getent) see a non-loopback IPv4 address;
  # with only 127.0.0.1 it returns no IPv4 answer without even asking the DNS.
  ip addr add "$SS_NETNS_SOURCE/32" dev lo
  ip addr add "$SS_NETNS_DNS/32" dev lo
  ip route add local "$SS_NETNS_LOCAL" dev lo
  ip route add "$SS_NETNS_SERVICE_CIDR" dev lo src "$SS_NETNS_SOURCE"
  # No route out: only lo exists, and it has no default route. Checked, not assumed.
  if ip route show default | grep -q .; then die "the new namespace has a default route"; fi
  local files="$NETNS_STATE/$$"
  mkdir -p "$files"
  cat > "$files/resolv.conf" <<EOF
# sentinel-switch sandbox: the sandbox's CoreDNS (scripts/k8s.sh up), as a pod's resolv.conf
# names its cluster DNS. No search domains: names are used as given.
nameserver $SS_NETNS_DNS
options ndots:1 timeout:1 attempts:2
EOF
  cat > "$files/hosts" <<EOF
127.0.0.1 localhost
::1 localhost ip6-localhost ip6-loopback
EOF
  [ -e /etc/resolv.conf ] || die "/etc/resolv.conf does not exist: nothing to bind the sandbox's resolver on"
  mount --bind "$files/resolv.conf" /etc/resolv.conf
  mount --bind "$files/hosts" /etc/hosts
  # A sysfs of this network namespace (its /sys/class/net), as kube-proxy expects; the cgroup
  # tree underneath is carried over (Go and Node read their CPU/memory limits there).
  local cg=
  if mountpoint -q /sys/fs/cgroup 2>/dev/null; then
    cg="$files/cgroup"; mkdir -p "$cg"
    mount --rbind /sys/fs/cgroup "$cg" || cg=
  fi
  if mount -t sysfs sysfs /sys 2>/dev/null; then
    [ -z "$cg" ] || mount --move "$cg" /sys/fs/cgroup || say "could not carry /sys/fs/cgroup over"
  else
    say "could not mount a sysfs for the namespace (kube-proxy may complain)"
    [ -z "$cg" ] || umount -l "$cg"
  fi
  echo "$$" > "$files/pid"
  export SENTINEL_SWITCH_NETNS=1 SENTINEL_SWITCH_NETNS_DNS=$SS_NETNS_DNS SENTINEL_SWITCH_NETNS_PID=$$
}

run_inside() { # CMD ARGS, in the background, so that signals to us are forwarded at once
  local child rc=0
  # (An asynchronous command starts with SIGINT ignored; Node resets that, and INT is forwarded.)
  "$@" <&0 &
  child=$!
  trap 'kill -TERM "$child" 2>/dev/null || true' TERM HUP
  trap 'kill -INT "$child" 2>/dev/null || true' INT
  while :; do
    wait "$child" && rc=0 || rc=$?
    # wait returns > 128 when a trapped signal interrupted it: keep waiting for the child.
    kill -0 "$child" 2>/dev/null || break
  done
  return "$rc"
}

newest_sandbox() {
  local d pid best= best_t=0 t
  for d in "$NETNS_STATE"/*/pid; do
    [ -f "$d" ] || continue
    pid=$(cat "$d")
    [ -d "/proc/$pid" ] || continue
    t=$(stat -c %Y "$d")
    ((t >= best_t)) && { best=$pid; best_t=$t; }
  done
  [ -n "$best" ] || return 1
  echo "$best"
}

mode=${1:-}; [ -n "$mode" ] || { sed -n '6,10s/^#  //p' "${BASH_SOURCE[0]}" >&2; exit 2; }; shift
case "$mode" in
  inside) is_inside ;;
  run)
    (($#)) || die "netns.sh run CMD [ARGS]"
    if is_inside; then exec "$@"; fi
    enter_fresh run "$@" ;;
  shell) is_inside && die "already inside a sandbox namespace"; enter_fresh shell ;;
  enter)
    pid=${1:-}; [ -n "$pid" ] || pid=$(newest_sandbox) || die "no running sandbox namespace of this checkout (.sandbox/netns/)"
    [ -d "/proc/$pid" ] || die "no process $pid"
    say "entering the sandbox namespace of pid $pid"
    if [ "$(id -u)" = 0 ]; then
      exec nsenter -t "$pid" -n -m --wd="$SS_ROOT" env SENTINEL_SWITCH_NETNS=1 SENTINEL_SWITCH_NETNS_DNS=$SS_NETNS_DNS SENTINEL_SWITCH_NETNS_PID="$pid" PATH="$PATH" bash -i
    fi
    exec nsenter -t "$pid" -U --preserve-credentials -n -m --wd="$SS_ROOT" env SENTINEL_SWITCH_NETNS=1 SENTINEL_SWITCH_NETNS_DNS=$SS_NETNS_DNS SENTINEL_SWITCH_NETNS_PID="$pid" PATH="$PATH" bash -i ;;
  __setup)
    sub=${1:?}; shift
    setup_inside
    rc=0
    if [ "$sub" = shell ]; then
      say "inside the sandbox namespace (pid $$; from another terminal: bash scripts/lib/netns.sh enter $$)"
      say "try: bash scripts/k8s.sh up && getent hosts kubernetes.default.svc.cluster.local; exit to leave"
      bash -i || rc=$?
    else
      run_inside "$@" || rc=$?
    fi
    sweep
    rm -rf --one-file-system "${NETNS_STATE:?}/$$"
    exit "$rc" ;;
  *) die "unknown mode $mode" ;;
esac
