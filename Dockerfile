# sentinel-switch container image.
#
#   docker build -t sentinel-switch:0.1.0 .
#   docker run sentinel-switch:0.1.0 --config /etc/sentinel-switch/config/config.yaml
#
# Three stages, one base: `build` type-checks and bundles the service with the dependencies it
# uses into one file, dist/server.js, with their license files in dist/licenses/ (scripts/build.ts,
# what `npm run build` does), `rootfs` collects the node binary and the shared libraries it links,
# and the runtime stage is FROM scratch with those and our files and nothing else: no shell, no
# package manager (npm, npx, yarn, corepack), no node_modules, no headers, no compiler, no dev
# dependencies, no sources, no tests, no scripts. (The bundle is also what keeps the process
# small: docs/benchmarks.md, footprint.)
#
# The runtime is built for the chart's pod security settings: numeric non-root UID/GID (so
# runAsNonRoot can verify it without /etc/passwd), nothing written at runtime (so
# readOnlyRootFilesystem works without an emptyDir), no capabilities needed (it listens on
# 8080), and node itself is PID 1: src/server.ts handles SIGTERM/SIGINT (drain, then exit 0)
# and the process starts no children, so no init shim is needed to forward signals or reap.
#
# NODE_IMAGE is a plain image name on purpose: the registry it resolves to is the builder's
# setting. Pin it by digest in CI (e.g. --build-arg NODE_IMAGE=node:24-bookworm-slim@sha256:...).
# Any Debian-based image with node in /usr/local/bin and npm works (scripts/image.sh makes one
# locally with debootstrap for the tests).
ARG NODE_IMAGE=node:24-bookworm-slim

# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
# Lockfile first: the dependency layer is reused until package*.json change.
# build-ca.pe[m]: an optional CA bundle for npm behind a TLS-intercepting proxy (the glob makes
# it optional). It is used by npm in the build stages only and never copied into the runtime.
COPY package.json package-lock.json build-ca.pe[m] ./
# No dependency has an install script; refusing them all keeps the build hermetic.
RUN if [ -f build-ca.pem ]; then export NODE_EXTRA_CA_CERTS=/src/build-ca.pem; fi \
 && npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY scripts/build.ts ./scripts/build.ts
# tsc -p tsconfig.build.json (types only), then esbuild: dist/server.js + dist/licenses/.
RUN node scripts/build.ts

# ---------------------------------------------------------------------------------------------
# node and exactly the shared libraries it loads (ldd), at the paths it loads them from, plus
# their Debian copyright files. Nothing else: no /tmp, as the process writes nothing.
FROM ${NODE_IMAGE} AS rootfs
RUN set -e; node=$(command -v node); mkdir -p /rootfs/usr/local/bin /rootfs/usr/share/doc; \
    cp "$node" /rootfs/usr/local/bin/node; \
    for lib in $(ldd "$node" | awk '/=>/ { print $3 } /^\t\// { print $1 }'); do cp -L --parents "$lib" /rootfs/; done; \
    for pkg in libc6 libstdc++6 libgcc-s1; do \
      [ ! -f "/usr/share/doc/$pkg/copyright" ] || cp --parents "/usr/share/doc/$pkg/copyright" /rootfs/; \
    done

# ---------------------------------------------------------------------------------------------
FROM scratch
LABEL org.opencontainers.image.title="sentinel-switch" \
      org.opencontainers.image.description="Keeps a Kubernetes ExternalName Service pointed at the Redis master that a Sentinel majority and the node itself confirm." \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production PATH=/usr/local/bin
COPY --from=rootfs /rootfs/ /
WORKDIR /app
# Owned by root and read-only for the runtime user: the process cannot modify its own code.
# package.json is needed at runtime: its "type": "module" makes dist/server.js an ES module.
COPY package.json ./
COPY --from=build /src/dist ./dist
# `sentinel-switch status|check` (kubectl exec, helm test): with no shell in the image the
# launcher is a script node runs by its shebang (mode 0755 from git); it loads dist/cli.js.
COPY bin/sentinel-switch /usr/local/bin/sentinel-switch
# 10001: outside the range of the base image's own users (node is 1000) and of most host
# users; the chart sets the same IDs in its securityContext.
USER 10001:10001
EXPOSE 8080
# Exec form, node as the entrypoint: node is PID 1 and receives SIGTERM directly, and
# arguments (`docker run IMAGE --config FILE`, a pod's `args:`) go to the service. The config
# path comes from SENTINEL_SWITCH_CONFIG (the chart sets it) or `--config FILE`.
ENTRYPOINT ["/usr/local/bin/node", "dist/server.js"]
