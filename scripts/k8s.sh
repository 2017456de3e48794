#!/usr/bin/env bash
# A real Kubernetes cluster for the tests, the demo and the benchmarks: one etcd member and
# kube-apiserver on loopback; inside the sandbox's network namespace (scripts/lib/netns.sh) also
# its data plane: kube-controller-manager, kube-proxy, a Node `node-1` and CoreDNS on 198.18.0.53.
#
#   k8s.sh up              [--dir DIR] [--owner PID] [--no-data-plane] [--corefile NAME]
#                                                      start it all, wait until each part is ready
#   k8s.sh down            [--dir DIR]                 stop everything `up` started (idempotent)
#   k8s.sh stop-apiserver  [--dir DIR]                 stop only the API server (etcd keeps the data)
#   k8s.sh start-apiserver [--dir DIR]                 start it again with the very same args and port
#   k8s.sh dns             [--dir DIR] --corefile NAME restart CoreDNS with another Corefile
#   k8s.sh status          [--dir DIR]                 exit 0 if the API server answers /readyz
#   k8s.sh env             [--dir DIR]                 print `export KUBECONFIG=...`
#
# DIR (default .sandbox/k8s in the repo) holds everything: pki/, etcd-data/, *.log, *.pid,
# the exact daemon args (*.args, so a restart reuses them), cluster.env, the kubeconfigs, Corefile.
# --owner PID: a watchdog stops the cluster once PID exits, so a crashed test run leaks nothing.
# SENTINEL_SWITCH_K8S_READY_TIMEOUT (seconds, default 90) bounds every wait for readiness.
#
# The data plane (one per network namespace: it owns 198.18.0.53:53 and the namespace's
# iptables rules): kube-controller-manager runs the EndpointSlice, EndpointSlice-mirroring,
# ServiceAccount, namespace and garbage-collector controllers; kube-proxy (iptables mode) routes
# ClusterIPs (198.19.0.0/24) to Ready pods of node-1; CoreDNS answers cluster.local from the API
# (no forward: there is nothing outside). Corefiles (--corefile, default kubeadm):
#   kubeadm         kubeadm v1.35's: ttl 30, cache 30 { disable success/denial cluster.local }
#   plugin-default  the kubernetes plugin's defaults: ttl 5, cache 30
#   kubeadm-legacy  kubeadm before kubernetes/kubernetes#128359: ttl 30, cache 30
# No kubelet and no scheduler: pods are API objects whose status the harness writes.
# Outside the namespace (or with --no-data-plane) only etcd + kube-apiserver run: namespaces then
# get no `default` ServiceAccount and never finish deleting, and no EndpointSlice is written.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/env.sh"
export PATH="$PATH:/usr/sbin:/sbin" # ip, iptables (kube-proxy), also for a user whose PATH lacks them

say() { printf 'k8s: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

usage() { sed -n '5,12s/^#  //p' "${BASH_SOURCE[0]}" >&2; exit 2; }

cmd=${1:-}; [ -n "$cmd" ] || usage; shift
DIR="$SS_ROOT/.sandbox/k8s"
OWNER=
DATA_PLANE=auto
COREFILE=
while (($#)); do
  case "$1" in
    --no-data-plane) DATA_PLANE=off; shift ;;
    --corefile) COREFILE=${2:?--corefile needs a value}; shift 2 ;;
    --corefile=*) COREFILE=${1#--corefile=}; shift ;;
    --dir) DIR=${2:?--dir needs a value}; shift 2 ;;
    --dir=*) DIR=${1#--dir=}; shift ;;
    --owner) OWNER=${2:?--owner needs a value}; shift 2 ;;
    --owner=*) OWNER=${1#--owner=}; shift ;;
    *) usage ;;
  esac
done
# Absolute, because it ends up in daemon args, pid checks and the kubeconfig.
[[ $DIR == /* ]] || DIR="$PWD/$DIR"
DIR=${DIR%/}
READY_TIMEOUT=${SENTINEL_SWITCH_K8S_READY_TIMEOUT:-90}
# The sandbox's test range (198.18.0.0/15, scripts/lib/netns.sh): routed to lo inside the
# namespace, kube-proxy DNATs it; outside it is only a number space nothing connects to.
SERVICE_CIDR=198.19.0.0/24
SERVICE_IP=198.19.0.1              # the `kubernetes` Service; in the serving cert like on a real cluster
DNS_IP=198.18.0.53                 # CoreDNS, the nameserver of the namespace's resolv.conf
NODE_NAME=node-1
NODE_IP=198.18.0.1
COREFILES="kubeadm plugin-default kubeadm-legacy"
SA_ISSUER=https://kubernetes.default.svc.cluster.local

# ---------------------------------------------------------------- processes

# A pid file is trusted only if that process still runs one of our daemons for this DIR:
# pids get reused, and killing a stranger is worse than leaking a test daemon. Zombies count as
# gone (the daemons are reparented, and nothing guarantees PID 1 reaps them).
is_ours() {
  local pid=$1 state
  [[ $pid =~ ^[0-9]+$ ]] && [ -r "/proc/$pid/cmdline" ] || return 1
  state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1) || return 1
  [ "$state" != Z ] || return 1
  { tr '\0' '\n' < "/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$DIR/"
}
running() { local pid; pid=$(cat "$DIR/$1.pid" 2>/dev/null) && is_ours "$pid"; }

# Starts a daemon in its own session (so it outlives this script and no terminal signal reaches it)
# with stdio on its log: a caller that reads our output (execFile in Node) must not wait on it.
# The pid comes from the process itself: setsid forks when it happens to lead a process group.
launch() {
  local name=$1; shift
  printf '\n=== %s %s\n' "$(date -Is)" "$name" >> "$DIR/$name.log"
  rm -f "$DIR/$name.pid"
  setsid bash -c 'echo $$ > "$0"; exec "$@"' "$DIR/$name.pid" "$@" </dev/null >>"$DIR/$name.log" 2>&1 9>&- &
  local i
  for i in $(seq 100); do [ -s "$DIR/$name.pid" ] && return 0; sleep 0.02; done
  die "$name did not start (see $DIR/$name.log)"
}

# SIGTERM, then SIGKILL if it has not exited within the grace period.
stop_daemon() {
  local name=$1 grace=${2:-15} pid i
  pid=$(cat "$DIR/$name.pid" 2>/dev/null) || return 0
  if is_ours "$pid" && [ "$pid" != $$ ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do is_ours "$pid" || break; sleep 0.1; done
    if is_ours "$pid"; then
      say "$name (pid $pid) ignored SIGTERM for ${grace}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do is_ours "$pid" || break; sleep 0.1; done
    fi
  fi
  rm -f "$DIR/$name.pid"
}

log_tail() {
  local name
  for name in "$@"; do
    [ -f "$DIR/$name.log" ] || continue
    printf -- '--- last lines of %s\n' "$DIR/$name.log" >&2
    tail -n 25 "$DIR/$name.log" >&2
  done
}

# ---------------------------------------------------------------- ports

# Free-port choice without a bind-then-release race against the kernel: candidates come from below
# the ephemeral range (where outgoing connections never land), are skipped if any socket in this
# network namespace uses them, and a daemon that still loses the race is restarted on new ports.
EPHEMERAL_LOW=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
taken_ports=" "
port_in_use() {
  local hex; hex=$(printf ':%04X' "$1")
  awk -v p="$hex" 'FNR > 1 && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
pick_port() { # VAR: sets VAR (not echo: a $(subshell) would forget taken_ports)
  local lo=10000 hi=$((EPHEMERAL_LOW - 1)) p i
  ((hi - lo >= 1000)) || { lo=20000; hi=29999; }
  for i in $(seq 200); do
    p=$(( ((RANDOM << 15) | RANDOM) % (hi - lo + 1) + lo ))
    [[ $taken_ports == *" $p "* ]] && continue
    port_in_use "$p" && continue
    taken_ports+="$p "
    printf -v "$1" '%s' "$p"; return 0
  done
  die "no free port found in $lo-$hi"
}
# Only the output of the latest start counts (launch separates starts with a === line).
lost_port_race() {
  awk '/^=== / { out = "" } { out = out $0 "\n" } END { printf "%s", out }' "$DIR/$1.log" 2>/dev/null |
    grep -q 'address already in use'
}

# ---------------------------------------------------------------- certificates and keys

# One CA signs the serving cert and the admin client cert; the ServiceAccount tokens get their own
# key pair. P-256 keys: quick to generate, accepted by every Kubernetes component and by kubectl.
# Our own openssl config keeps the result independent of the machine's openssl.cnf.
gen_pki() {
  local p=$DIR/pki
  mkdir -p "$p"; chmod 700 "$p"
  cat > "$p/openssl.cnf" <<EOF
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost,IP:$SERVICE_IP,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
EOF
  local o=(-config "$p/openssl.cnf")
  key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$p/$1.key" 2>/dev/null; }
  sign() { # name subject extensions
    openssl req -new "${o[@]}" -key "$p/$1.key" -subj "$2" -out "$p/$1.csr"
    openssl x509 -req -in "$p/$1.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial -days 3650 \
      -extfile "$p/openssl.cnf" -extensions "$3" -out "$p/$1.crt" 2>/dev/null
    rm -f "$p/$1.csr"
  }
  key ca
  openssl req -x509 -new "${o[@]}" -extensions ca -key "$p/ca.key" -subj "/CN=sentinel-switch-test-ca" \
    -days 3650 -out "$p/ca.crt"
  key apiserver; sign apiserver "/CN=kube-apiserver" server
  # O=system:masters: the group RBAC lets do anything, so the admin needs no binding of its own.
  key admin; sign admin "/O=system:masters/CN=sentinel-switch-admin" client
  # The data plane's identities, as kubeadm names them: the API server's bootstrap RBAC binds
  # system:kube-controller-manager and system:kube-proxy; CoreDNS gets the ClusterRole that
  # apply_data_plane_rbac writes (kubeadm's system:coredns).
  key kube-controller-manager; sign kube-controller-manager "/CN=system:kube-controller-manager" client
  key kube-proxy; sign kube-proxy "/CN=system:kube-proxy" client
  key coredns; sign coredns "/CN=system:coredns" client
  key sa; openssl pkey -in "$p/sa.key" -pubout -out "$p/sa.pub"
}

write_kubeconfig() { # [USER]: DIR/kubeconfig for the admin, DIR/USER.kubeconfig for a component
  local user=${1:-admin} file
  file=$DIR/${1:+$1.}kubeconfig
  b64() { base64 -w0 < "$1"; }
  cat > "$file.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: sentinel-switch
  cluster:
    server: $SERVER
    certificate-authority-data: $(b64 "$DIR/pki/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(b64 "$DIR/pki/$user.crt")
    client-key-data: $(b64 "$DIR/pki/$user.key")
contexts:
- name: sentinel-switch
  context:
    cluster: sentinel-switch
    user: $user
    namespace: default
current-context: sentinel-switch
EOF
  chmod 600 "$file.tmp"
  mv "$file.tmp" "$file"
}

# ---------------------------------------------------------------- etcd

etcd_healthy() { # one HTTP request by hand, so no curl or etcdctl is needed
  local port; port=$(sed -n 's/^ETCD_CLIENT_PORT=//p' "$DIR/cluster.env")
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" && printf "GET /health HTTP/1.0\r\n\r\n" >&3 && cat <&3' \
    "$port" 2>/dev/null | grep -q '"health":"true"'
}

start_etcd() {
  local attempt client peer deadline
  for attempt in 1 2 3 4 5; do
    pick_port client; pick_port peer
    printf 'ETCD_CLIENT_PORT=%s\nETCD_PEER_PORT=%s\n' "$client" "$peer" > "$DIR/cluster.env"
    # --unsafe-no-fsync: the data is thrown away with the test run, and fsync dominates on small VMs.
    local args=(
      --name=sentinel-switch
      --data-dir="$DIR/etcd-data"
      --listen-client-urls="http://127.0.0.1:$client"
      --advertise-client-urls="http://127.0.0.1:$client"
      --listen-peer-urls="http://127.0.0.1:$peer"
      --initial-advertise-peer-urls="http://127.0.0.1:$peer"
      --initial-cluster="sentinel-switch=http://127.0.0.1:$peer"
      --unsafe-no-fsync=true
      --log-level=warn
    )
    printf '%s\n' "${args[@]}" > "$DIR/etcd.args"
    launch etcd "$SS_K8S_BIN/etcd" "${args[@]}"
    deadline=$(( $(now_ms) + READY_TIMEOUT * 1000 ))
    while (( $(now_ms) < deadline )); do
      etcd_healthy && return 0
      running etcd || break
      sleep 0.1
    done
    if ! running etcd && lost_port_race etcd; then
      say "etcd lost a port race, retrying on other ports"; rm -rf "$DIR/etcd-data"; continue
    fi
    running etcd || die "etcd exited while starting"
    die "etcd did not report healthy within ${READY_TIMEOUT}s"
  done
  die "etcd lost the port race 5 times"
}

# ---------------------------------------------------------------- kube-apiserver

apiserver_args() {
  local port=$1 etcd_port p=$DIR/pki
  etcd_port=$(sed -n 's/^ETCD_CLIENT_PORT=//p' "$DIR/cluster.env")
  local args=(
    --bind-address=127.0.0.1
    --secure-port="$port"
    # Only used for the `kubernetes` Service endpoints; given explicitly because the default is the
    # host's default-route interface, which a loopback-only machine may not have. With no reconciler
    # the API server does not try to publish a loopback endpoint (which validation forbids).
    --advertise-address=127.0.0.1
    --endpoint-reconciler-type=none
    --etcd-servers="http://127.0.0.1:$etcd_port"
    # Serving cert signed by our CA, so the kubeconfigs can pin it. The explicit files take
    # precedence over --cert-dir, where the server would otherwise self-sign a cert nobody trusts.
    --cert-dir="$p"
    --tls-cert-file="$p/apiserver.crt"
    --tls-private-key-file="$p/apiserver.key"
    --client-ca-file="$p/ca.crt"
    --authorization-mode=Node,RBAC
    --anonymous-auth=false
    # Bound ServiceAccount tokens (TokenRequest, `kubectl create token`) need issuer + signing key.
    --service-account-issuer="$SA_ISSUER"
    --service-account-key-file="$p/sa.pub"
    --service-account-signing-key-file="$p/sa.key"
    --api-audiences="$SA_ISSUER"
    --service-cluster-ip-range="$SERVICE_CIDR"
    # The default admission chain (NamespaceLifecycle, ServiceAccount, ResourceQuota, PodSecurity...)
    # works without controller-manager; ServiceAccount only needs the pod's ServiceAccount to exist
    # (the harness creates `default` in its namespaces). NodeRestriction completes the Node authorizer.
    --enable-admission-plugins=NodeRestriction
    --profiling=false
    --v=0
  )
  printf '%s\n' "${args[@]}"
}

apiserver_ready() {
  "$SS_K8S_BIN/kubectl" --kubeconfig "$DIR/kubeconfig" --request-timeout=2s get --raw /readyz >/dev/null 2>&1
}

# Waits for /readyz. Returns 1 if the process exited (the caller may have lost a port race),
# 2 on timeout; WAIT_ERROR says which, for the error message.
wait_apiserver() {
  local deadline=$(( $(now_ms) + READY_TIMEOUT * 1000 ))
  while (( $(now_ms) < deadline )); do
    apiserver_ready && return 0
    running kube-apiserver || { WAIT_ERROR="kube-apiserver exited while starting"; return 1; }
    sleep 0.2
  done
  WAIT_ERROR="kube-apiserver did not answer /readyz within ${READY_TIMEOUT}s"
  return 2
}

start_apiserver_from_args() {
  local args
  mapfile -t args < "$DIR/kube-apiserver.args"
  launch kube-apiserver "$SS_K8S_BIN/kube-apiserver" "${args[@]}"
}

first_start_apiserver() {
  local attempt port rc
  for attempt in 1 2 3 4 5; do
    pick_port port
    apiserver_args "$port" > "$DIR/kube-apiserver.args"
    SERVER="https://127.0.0.1:$port"
    printf 'APISERVER_PORT=%s\nSERVER=%s\n' "$port" "$SERVER" >> "$DIR/cluster.env"
    write_kubeconfig
    start_apiserver_from_args
    rc=0; wait_apiserver || rc=$?
    ((rc == 0)) && return 0
    if ((rc == 1)) && lost_port_race kube-apiserver; then
      say "kube-apiserver lost a port race, retrying on another port"
      sed -i '/^APISERVER_PORT=\|^SERVER=/d' "$DIR/cluster.env"
      continue
    fi
    die "$WAIT_ERROR"
  done
  die "kube-apiserver lost the port race 5 times"
}

# ---------------------------------------------------------------- data plane (network namespace)

want_data_plane() {
  [ "$DATA_PLANE" != off ] && bash "$SS_ROOT/scripts/lib/netns.sh" inside
}

kctl() { "$SS_K8S_BIN/kubectl" --kubeconfig "$DIR/kubeconfig" --request-timeout=10s "$@"; }

# Polls CMD until it succeeds, at most READY_TIMEOUT; fails with WHAT and the daemon's log.
wait_until() { # WHAT DAEMON CMD...
  local what=$1 daemon=$2; shift 2
  local deadline=$(( $(now_ms) + READY_TIMEOUT * 1000 ))
  while (( $(now_ms) < deadline )); do
    "$@" >/dev/null 2>&1 && return 0
    running "$daemon" || { log_tail "$daemon"; die "$daemon exited while starting"; }
    sleep 0.1
  done
  log_tail "$daemon"
  die "$what within ${READY_TIMEOUT}s"
}

http_ok() { # PORT PATH: one HTTP/1.0 GET on 127.0.0.1 by hand, true on a 200
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" && printf "GET %s HTTP/1.0\r\n\r\n" "$1" >&3 && head -1 <&3' \
    "$1" "$2" 2>/dev/null | grep -q '^HTTP/1\.[01] 200'
}

# The objects kubeadm would create for the data plane: CoreDNS's ClusterRole (kubeadm's
# system:coredns, bound to the user of CoreDNS's certificate) and the one Node, whose address is
# the namespace's source address. The Node has no kubelet; nothing runs the node-lifecycle
# controller either, so it is never tainted or evicted.
apply_data_plane_objects() {
  kctl apply -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:coredns"}
---
apiVersion: v1
kind: Node
metadata:
  name: $NODE_NAME
  labels: {kubernetes.io/hostname: $NODE_NAME, kubernetes.io/os: linux}
EOF
  kctl patch node "$NODE_NAME" --subresource=status --type=merge -p \
    "{\"status\":{\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"$NODE_IP\"},{\"type\":\"Hostname\",\"address\":\"$NODE_NAME\"}]}}" >/dev/null
}

start_controller_manager() {
  # Each controller with a ServiceAccount token of its own (TokenRequest), as kubeadm runs it.
  local args=(
    --kubeconfig="$DIR/kube-controller-manager.kubeconfig"
    --use-service-account-credentials=true
    --leader-elect=false
    --secure-port=0
    --controllers=endpointslice-controller,endpointslice-mirroring-controller,serviceaccount-controller,namespace-controller,garbage-collector-controller
    --v=0
  )
  printf '%s\n' "${args[@]}" > "$DIR/kube-controller-manager.args"
  launch kube-controller-manager "$SS_K8S_BIN/kube-controller-manager" "${args[@]}"
  # The ServiceAccount controller's first work: `default` in every namespace.
  wait_until "kube-controller-manager created no default ServiceAccount" kube-controller-manager \
    kctl get serviceaccount default -n default
}

start_kube_proxy() {
  local metrics healthz
  pick_port metrics; pick_port healthz
  printf 'KUBE_PROXY_HEALTHZ_PORT=%s\n' "$healthz" >> "$DIR/cluster.env"
  local args=(
    --kubeconfig="$DIR/kube-proxy.kubeconfig"
    --hostname-override="$NODE_NAME"
    --proxy-mode=iptables
    # kube-proxy would raise the namespace's nf_conntrack_max, which /proc refuses here.
    --conntrack-max-per-core=0
    --cluster-cidr=198.18.0.0/16
    --metrics-bind-address="127.0.0.1:$metrics"
    --healthz-bind-address="127.0.0.1:$healthz"
    --v=0
  )
  printf '%s\n' "${args[@]}" > "$DIR/kube-proxy.args"
  launch kube-proxy "$SS_K8S_BIN/kube-proxy" "${args[@]}"
  # /healthz answers 200 once the first full rule sync is done.
  wait_until "kube-proxy did not report healthy" kube-proxy http_ok "$healthz" /healthz
}

write_corefile() { # NAME
  local ttl cache
  case "$1" in
    kubeadm) ttl=30 cache=$'cache 30 {\n        disable success cluster.local\n        disable denial cluster.local\n    }' ;;
    plugin-default) ttl=5 cache='cache 30' ;;
    kubeadm-legacy) ttl=30 cache='cache 30' ;;
    *) die "unknown Corefile '$1' (one of: $COREFILES)" ;;
  esac
  # kubeadm's Corefile without what needs a port or a network outside: health, ready,
  # prometheus, forward (nothing to forward to) and loop (which only detects forwarding loops).
  cat > "$DIR/Corefile.tmp" <<EOF
# scripts/k8s.sh, Corefile '$1'
.:53 {
    bind $DNS_IP
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $DIR/coredns.kubeconfig sentinel-switch
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl $ttl
    }
    $cache
    loadbalance
}
EOF
  mv "$DIR/Corefile.tmp" "$DIR/Corefile"
  sed -i '/^COREFILE=/d' "$DIR/cluster.env"
  echo "COREFILE=$1" >> "$DIR/cluster.env"
}

dns_answers() { # the `kubernetes` Service through the namespace's resolver, as any process sees it
  getent ahostsv4 kubernetes.default.svc.cluster.local | grep -q "^$SERVICE_IP "
}

start_coredns() {
  local args=(-conf "$DIR/Corefile")
  printf '%s\n' "${args[@]}" > "$DIR/coredns.args"
  launch coredns "$SS_K8S_BIN/coredns" "${args[@]}"
  wait_until "CoreDNS did not resolve kubernetes.default.svc.cluster.local to $SERVICE_IP" coredns dns_answers
}

dns_port_taken() { timeout 1 bash -c 'exec 3<>"/dev/tcp/$0/53"' "$DNS_IP" 2>/dev/null; }

# Prints what each part took; RSS of the daemons in MB.
report_data_plane() {
  local name pid rss out=()
  for name in kube-apiserver etcd kube-controller-manager kube-proxy coredns; do
    pid=$(cat "$DIR/$name.pid" 2>/dev/null) || continue
    rss=$(awk '/^VmRSS:/ { printf "%d", $2 / 1024 }' "/proc/$pid/status" 2>/dev/null) || continue
    out+=("$name ${rss}MB")
  done
  say "RSS: ${out[*]}"
}

start_data_plane() {
  local t0 t1 t2 t3
  dns_port_taken && die "$DNS_IP:53 is taken: another cluster's data plane runs in this network namespace (start this one with --no-data-plane, or stop the other)"
  t0=$(now_ms)
  write_kubeconfig kube-controller-manager; write_kubeconfig kube-proxy; write_kubeconfig coredns
  apply_data_plane_objects
  start_controller_manager; t1=$(now_ms)
  start_kube_proxy; t2=$(now_ms)
  write_corefile "${COREFILE:-kubeadm}"
  start_coredns; t3=$(now_ms)
  echo "DATA_PLANE=1" >> "$DIR/cluster.env"
  say "data plane ready in $((t3 - t0)) ms (controller-manager $((t1 - t0)), kube-proxy $((t2 - t1)), CoreDNS $((t3 - t2)); Corefile ${COREFILE:-kubeadm})"
}

stop_data_plane() {
  stop_daemon coredns 10
  stop_daemon kube-proxy 10
  stop_daemon kube-controller-manager 10
}

# ---------------------------------------------------------------- watchdog

start_watchdog() {
  [ -n "$OWNER" ] || return 0
  [[ $OWNER =~ ^[0-9]+$ ]] || die "--owner needs a pid"
  # Polls rather than waits: the owner is not our child. Stops when the cluster is downed normally.
  launch watchdog bash -c '
    owner=$1 dir=$2 script=$3
    # Its sleep goes with it when `down` stops it (no orphan left behind).
    nap=; trap "kill \$nap 2>/dev/null; exit 0" TERM
    while kill -0 "$owner" 2>/dev/null && [ -e "$dir/etcd.pid" ]; do sleep 2 & nap=$!; wait "$nap"; done
    [ -e "$dir/etcd.pid" ] || exit 0
    echo "owner $owner exited: stopping the cluster"
    exec bash "$script" down --dir "$dir"' watchdog "$OWNER" "$DIR/" "$SS_ROOT/scripts/k8s.sh"
}

# ---------------------------------------------------------------- commands

# One state-changing command per DIR at a time: e.g. the watchdog's `down` must not interleave with
# a `start-apiserver` that would then launch a server after everything was stopped. Daemons are
# launched with fd 9 closed, so the lock ends with the command.
lock_dir() {
  [ -d "$DIR" ] || return 0
  exec 9>>"$DIR/.lock"
  flock -w "$((READY_TIMEOUT + 60))" 9 || die "another k8s.sh command holds $DIR/.lock"
}

print_usage_hint() {
  cat <<EOF
Kubernetes API server ready at $(sed -n 's/^SERVER=//p' "$DIR/cluster.env") (state, logs, pids in $DIR)
  export KUBECONFIG=$DIR/kubeconfig
  kubectl get --raw /readyz
  bash scripts/k8s.sh down --dir $DIR
EOF
}

cmd_up() {
  bash "$SS_ROOT/scripts/k8s-build.sh"
  mkdir -p "$DIR"; lock_dir
  if running etcd || running kube-apiserver; then
    running kube-apiserver && apiserver_ready ||
      die "etcd of $DIR runs but its API server does not answer: run 'start-apiserver', or 'down' then 'up'"
    say "already running"
    print_usage_hint; return 0
  fi
  local t0; t0=$(now_ms)
  # Whatever ends `up` early (a die, an error, Ctrl-C) leaves no daemon behind, only the logs.
  trap 'rc=$?; trap - EXIT; if ((rc)); then log_tail kube-apiserver etcd; stop_daemon watchdog 2; stop_data_plane;
        stop_daemon kube-apiserver 5; stop_daemon etcd 5; fi; exit $rc' EXIT
  trap 'exit 130' INT TERM
  local with_data_plane=0
  want_data_plane && with_data_plane=1
  [ -z "$COREFILE" ] || ((with_data_plane)) || die "--corefile needs the data plane: run inside the sandbox namespace (scripts/dev.sh shell), without --no-data-plane"
  # A fresh cluster each time: only files this script creates are removed (DIR may be user-chosen).
  rm -rf "$DIR/pki" "$DIR/etcd-data"
  rm -f "$DIR"/{etcd,kube-apiserver,watchdog,kube-controller-manager,kube-proxy,coredns}.{pid,log,args} \
    "$DIR"/{,kube-controller-manager.,kube-proxy.,coredns.}kubeconfig "$DIR/cluster.env" "$DIR/Corefile" "$DIR/ready-ms"
  gen_pki
  start_etcd
  first_start_apiserver
  local api_ms=$(( $(now_ms) - t0 ))
  ((with_data_plane)) && start_data_plane
  start_watchdog
  trap - EXIT INT TERM
  local ms=$(( $(now_ms) - t0 ))
  echo "$ms" > "$DIR/ready-ms"
  if ((with_data_plane)); then
    say "ready in $ms ms (certificates, etcd, kube-apiserver /readyz: $api_ms ms; then the data plane)"
    report_data_plane
  else
    say "ready in $ms ms (certificates, etcd, kube-apiserver /readyz)"
  fi
  print_usage_hint
}

cmd_down() {
  [ -d "$DIR" ] || return 0
  lock_dir
  stop_daemon watchdog 2
  # Clients of the API server first, then the API server: stopping etcd under it only makes it
  # log connection errors.
  stop_data_plane
  stop_daemon kube-apiserver 15
  stop_daemon etcd 15
  say "stopped (state and logs kept in $DIR)"
}

cmd_stop_apiserver() {
  lock_dir
  stop_daemon kube-apiserver 15
  say "kube-apiserver stopped"
}

cmd_start_apiserver() {
  [ -f "$DIR/kube-apiserver.args" ] || die "no cluster in $DIR: run 'up' first"
  lock_dir
  running etcd || die "etcd of $DIR is not running: run 'up' instead"
  if running kube-apiserver; then
    apiserver_ready && { say "kube-apiserver already running"; return 0; }
  else
    # Same args, same port: clients (and their cached kubeconfigs) see a restart, not a new server.
    start_apiserver_from_args
  fi
  local t0 rc=0; t0=$(now_ms)
  wait_apiserver || rc=$?
  if ((rc != 0)); then
    log_tail kube-apiserver
    stop_daemon kube-apiserver 5
    die "$WAIT_ERROR (restart on its old port $(sed -n 's/^APISERVER_PORT=//p' "$DIR/cluster.env"))"
  fi
  say "kube-apiserver ready again in $(( $(now_ms) - t0 )) ms"
}

cmd_dns() {
  [ -n "$COREFILE" ] || die "dns: --corefile NAME is required (one of: $COREFILES)"
  [ -f "$DIR/Corefile" ] || die "no data plane in $DIR: 'up' it inside the sandbox namespace first"
  lock_dir
  running kube-apiserver || die "the API server of $DIR is not running (CoreDNS could not sync)"
  local t0; t0=$(now_ms)
  write_corefile "$COREFILE"
  stop_daemon coredns 10
  start_coredns
  say "CoreDNS answers with Corefile $COREFILE ($(( $(now_ms) - t0 )) ms)"
}

cmd_status() {
  if running kube-apiserver && apiserver_ready; then
    echo "running: $(sed -n 's/^SERVER=//p' "$DIR/cluster.env") ($DIR)"
  else
    echo "not running ($DIR)"; return 1
  fi
}

case "$cmd" in
  up) cmd_up ;;
  down) cmd_down ;;
  stop-apiserver) cmd_stop_apiserver ;;
  start-apiserver) cmd_start_apiserver ;;
  dns) cmd_dns ;;
  status) cmd_status ;;
  env) [ -f "$DIR/kubeconfig" ] || die "no kubeconfig in $DIR: run 'up' first"; echo "export KUBECONFIG=$DIR/kubeconfig" ;;
  -h|--help|help) usage ;;
  *) usage ;;
esac
