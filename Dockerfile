# syntax=docker/dockerfile:1
# switchboard: one small container, configured only by the environment (README "Running it in a container").
#   docker build -t switchboard .
#   docker run --rm -p 7100:7100 -p 7100:7100/udp -p 9502:9502 switchboard
# Proven without a Docker engine by test/deploy/dockerfile.test.ts and test/deploy/runtime.test.ts.

ARG NODE_IMAGE=node:22-bookworm-slim

# --- build: every dependency, TypeScript -> dist/ -------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: nothing the build needs has an install script, and a native dev dependency (serialport, for
# interop tests) would try node-gyp, which the slim image cannot run.
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- runtime: production dependencies and dist/ only, owned by root and read-only for the user that runs them ------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
# glibc keeps up to 128 MiB of freed heap mapped instead of returning it to the kernel at once (README "Memory and
# glibc"): every socket read gets a fresh 64 KiB buffer, and re-faulting trimmed pages cost bulk streams 4x their
# throughput on our test machine. The same value as package.json's config.glibc_tunables (npm start); checked by tests.
ENV GLIBC_TUNABLES=glibc.malloc.trim_threshold=134217728:glibc.malloc.top_pad=16777216
# V8's young generation capped at 1 MiB (README "Memory and glibc"): frequent scavenges free those read buffers before
# their volume starts a full mark-compact. package.json's config.node_options, like the line above.
ENV NODE_OPTIONS=--max-semi-space-size=1
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --ignore-scripts --no-audit --no-fund
COPY --from=build /app/dist ./dist

# The node image's unprivileged user (uid 1000; deploy/ sets runAsUser: 1000 so Kubernetes can check it is not root).
USER node

# Every mode's default ports, so `docker run -P` and tools that read the image see them: groups TCP and UDP, the
# sidecar, mux, share, relay and the relay's public ports.
EXPOSE 7100/tcp 7100/udp 9502/tcp 5020/tcp 3333/tcp 8000/tcp 8001-8050/tcp

# Slim images have no curl; Node 22 has fetch. Exec form (no shell), and the sidecar port follows HTTP_PORT.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.HTTP_PORT || '9502') + '/livez').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# node itself is the entrypoint, in exec form:
# * the base image's docker-entrypoint.sh runs under /bin/sh (dash), which drops SocketForwarder's dotted variable names
#   (socketforwarder.tcp.port) before node starts; starting node directly keeps them;
# * arguments after the image name reach main.js, so tcp-multiplexer's command line works unchanged:
#   `docker run switchboard server -t 192.168.1.50:502 -p modbus -l 8000` runs `node dist/main.js server -t …`;
# * node is PID 1 and handles SIGTERM itself (drain, exit 0); compose adds `init: true` for zombie reaping.
# * --initial-heap-size=64 (README "Memory and glibc"; package.json's config.node_flags, checked by tests): V8 starts with
#   room for 64 MB of old generation, so bulk streams do not run a full mark-compact every few tens of milliseconds
#   while the heap is small; --no-allocation-site-pretenuring: V8 does not move a request's objects to the old generation
#   at birth, where dead ones keep their young objects alive through every scavenge. V8 refuses both in NODE_OPTIONS.
# CMD is empty on purpose (setting ENTRYPOINT already clears the base image's CMD ["node"]): no arguments = configure by
# environment. A shell for debugging: docker run --rm -it --entrypoint bash switchboard
ENTRYPOINT ["node", "--initial-heap-size=64", "--no-allocation-site-pretenuring", "dist/main.js"]
CMD []
