#!/usr/bin/env bash
# Builds the pinned Kubernetes test binaries (etcd, kube-apiserver, kube-controller-manager,
# kube-proxy, kubectl, helm, CoreDNS) from Go modules into the cache. Versions live in
# test/k8s/go.mod, test/k8s/helm/go.mod and test/k8s/coredns/go.mod; the output folder is keyed
# by their hash, so a version change rebuilds and nothing else does.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/env.sh"
want=(etcd kube-apiserver kube-controller-manager kube-proxy kubectl helm coredns)
missing=0
for b in "${want[@]}"; do [ -x "$SS_K8S_BIN/$b" ] || missing=1; done
((missing)) || exit 0
command -v go >/dev/null || { echo "k8s-build: Go is required to build the Kubernetes test binaries" >&2; exit 1; }
echo "k8s-build: building ${want[*]} (Kubernetes $SS_K8S_VERSION) into $SS_K8S_BIN; a cold build takes several minutes" >&2
start=$(date +%s)
tmp="$SS_K8S_BIN.tmp.$$"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
flags=(-trimpath -ldflags=-s)
(cd "$SS_ROOT/test/k8s" && go build "${flags[@]}" -o "$tmp/" k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl ./cmd/etcd)
(cd "$SS_ROOT/test/k8s/helm" && go build "${flags[@]}" -o "$tmp/" helm.sh/helm/v3/cmd/helm)
(cd "$SS_ROOT/test/k8s/coredns" && go build "${flags[@]}" -o "$tmp/" github.com/coredns/coredns)
rm -rf "$SS_K8S_BIN" && mv "$tmp" "$SS_K8S_BIN"
echo "k8s-build: done in $(( $(date +%s) - start )) s" >&2
