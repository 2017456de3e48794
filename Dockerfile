# sentinel-switch container image.
#
#   docker build -t sentinel-switch:0.1.0 .
#
# Three stages, one base: `build` compiles TypeScript to dist/, `deps` installs production
# dependencies only, and the runtime stage gets those two and nothing else (no compiler, no
# dev dependencies, no sources, no tests, no scripts).
#
# The runtime is built for the chart's pod security settings: numeric non-root UID/GID (so
# runAsNonRoot can verify it without /etc/passwd), nothing written at runtime (so
# readOnlyRootFilesystem works without an emptyDir), no capabilities needed (it listens on
# 8080), and node itself is PID 1: src/server.ts handles SIGTERM/SIGINT (drain, then exit 0)
# and the process starts no children, so no init shim is needed to forward signals or reap.
#
# NODE_IMAGE is a plain image name on purpose: the registry it resolves to is the builder's
# setting. Pin it by digest in CI (e.g. --build-arg NODE_IMAGE=node:24-bookworm-slim@sha256:...).
ARG NODE_IMAGE=node:24-bookworm-slim

# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
# Lockfile first: the dependency layer is reused until package*.json change.
COPY package.json package-lock.json ./
# No dependency has an install script; refusing them all keeps the build hermetic.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json

# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only. Type declarations, source maps, TypeScript sources and
# Markdown are never loaded at runtime; dropping them halves node_modules (about 116 MB ->
# 59 MB, most of it from @kubernetes/client-node's generated models).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && find node_modules -type f \( -name '*.map' -o -name '*.ts' -o -name '*.mts' -o -name '*.cts' \
      -o -iname '*.md' -o -iname '*.markdown' \) -delete

# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE}
LABEL org.opencontainers.image.title="sentinel-switch" \
      org.opencontainers.image.description="Keeps a Kubernetes ExternalName Service pointed at the Redis master that a Sentinel majority and the node itself confirm." \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production
WORKDIR /app
# Owned by root and read-only for the runtime user: the process cannot modify its own code.
# package.json is needed at runtime: its "type": "module" makes dist/*.js ES modules.
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# 10001: outside the range of the base image's own users (node is 1000) and of most host
# users; the chart sets the same IDs in its securityContext.
USER 10001:10001
EXPOSE 8080
# Exec form: node is PID 1 and receives SIGTERM directly. The config path comes from
# SENTINEL_SWITCH_CONFIG (the chart sets it) or `--config FILE` appended as args.
CMD ["node", "dist/server.js"]
