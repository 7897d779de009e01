# syntax=docker/dockerfile:1
#
# Yatagarasu: one self-contained executable on distroless glibc.
#
#   docker build -t yatagarasu .                                   (the builder's own architecture)
#   docker buildx build --platform linux/amd64,linux/arm64 -t yatagarasu .
#   docker run -p 8080:8080 -v "$PWD/my-config.yaml:/etc/yatagarasu/config.yaml:ro" yatagarasu
#   (your own config, with server.address "0.0.0.0": the demo's config.yaml binds 127.0.0.1)
#
# The build stage always runs on the build machine's own platform and cross-compiles for the
# target (Bun fetches the target's runtime from the npm registry), so a multi-arch build needs no
# emulation.

ARG BUN_VERSION=1.4.5

# ---- build ------------------------------------------------------------------------------------
FROM --platform=$BUILDPLATFORM oven/bun:${BUN_VERSION} AS build
# Set by BuildKit from --platform (amd64 or arm64); build.ts accepts both names.
ARG TARGETARCH
# Optional: --build-arg YATAGARASU_COMMIT=$(git rev-parse --short=12 HEAD) (.git is not in the context).
ARG YATAGARASU_COMMIT=unknown
WORKDIR /src

# Dependencies first, so source edits reuse this layer.
COPY package.json bun.lock bunfig.toml ./
RUN --mount=type=cache,target=/root/.bun/install/cache \
    bun install --frozen-lockfile

COPY tsconfig.json build.ts ./
COPY src ./src
RUN --mount=type=cache,target=/root/.bun/install/cache \
    YATAGARASU_COMMIT="${YATAGARASU_COMMIT}" bun run build --target "${TARGETARCH:-amd64}" \
 && case "${TARGETARCH:-amd64}" in \
      amd64|x64) arch=x64 ;; \
      arm64|aarch64) arch=arm64 ;; \
      *) echo "unsupported TARGETARCH ${TARGETARCH}" >&2; exit 1 ;; \
    esac \
 && install -D -m 0755 "dist/yatagarasu-linux-${arch}" /out/yatagarasu \
 && install -d -m 0750 -o 65532 -g 65532 /out/state/cache /out/state/log

# ---- runtime ----------------------------------------------------------------------------------
# base (not static): the executable links glibc. base also has ca-certificates, tzdata and the
# nonroot user (65532).
FROM gcr.io/distroless/base-debian12 AS runtime

LABEL org.opencontainers.image.title="yatagarasu" \
      org.opencontainers.image.description="High-performance S3 read proxy, one executable" \
      org.opencontainers.image.licenses="MIT"

COPY --from=build /out/yatagarasu /usr/local/bin/yatagarasu
# The default disk-cache folder (cache.disk.path, and the original project's default cache_dir) and
# the audit-log folder of the README's examples, owned by nonroot: distroless has no shell to
# create them, and /var/cache is root's. Mount a volume there to keep the disk cache across restarts.
COPY --from=build --chown=65532:65532 /out/state/cache /var/cache/yatagarasu
COPY --from=build --chown=65532:65532 /out/state/log /var/log/yatagarasu

# Bun's fetch (used for https endpoints) runs at most 256 requests at once per process unless this
# is set before start-up; match it to server.max_concurrent_requests (default 1000).
ENV BUN_CONFIG_MAX_HTTP_REQUESTS=1024

USER nonroot:nonroot
WORKDIR /home/nonroot

# 8080: plain front (server.port), 8081: S3 front (s3_api.port as the demo sets it), 9090:
# Prometheus metrics (metrics.port, when enabled). Bind them to 0.0.0.0 in the mounted config.
EXPOSE 8080 8081 9090

# No shell or curl in distroless: the executable checks itself (GET, exit 0 on 200, 1 otherwise).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/yatagarasu", "--healthcheck", "http://127.0.0.1:8080/health"]

ENTRYPOINT ["/usr/local/bin/yatagarasu"]
CMD ["--config", "/etc/yatagarasu/config.yaml"]
