# syntax=docker/dockerfile:1
#
# Cairn's image: the one `cairn` binary (web UI included) on a distroless base, run as the
# non-root user 65532. Every role runs from it: `serve` (the default), `collector`, `query`,
# `compact`, `sql`, `config`.
#
#   docker build -t cairn:0.1.0 .
#   docker run --rm -p 4317:4317 -p 4318:4318 -p 3200:3200 \
#     -v cairn-data:/data -v cairn-wal:/wal cairn:0.1.0
#
# The listeners default to all interfaces inside the container, except the Postgres wire, which
# stays on loopback: it needs a password on any other address (CAIRN_PG_ADDR=0.0.0.0:5433 with
# CAIRN_PG_PASSWORD). The UI is built in its own stage with Node and handed to ui/build.rs
# through CAIRN_UI_DIST.

ARG RUST_VERSION=1.95.0
ARG NODE_VERSION=22

FROM node:${NODE_VERSION}-bookworm-slim AS ui
WORKDIR /src/ui/app
COPY ui/app/package.json ui/app/package-lock.json ./
RUN --mount=type=cache,target=/root/.npm \
    npm ci --no-audit --no-fund --loglevel=error
COPY ui/app/ ./
RUN npm run build

# The toolchain of rust-toolchain.toml, so that rustup downloads nothing.
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
COPY --from=ui /src/ui/app/dist /ui-dist
# A UI that is missing fails the build instead of becoming a placeholder page.
ENV CAIRN_UI_DIST=/ui-dist \
    CAIRN_UI_REQUIRED=1 \
    CARGO_TARGET_DIR=/target
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/target \
    cargo build --release --workspace --locked \
    && install -D -m 0755 /target/release/cairn /out/cairn \
    && mkdir -p /out/data /out/wal

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="cairn" \
      org.opencontainers.image.description="Agent trail observability: OTLP in, Parquet in object storage, SQL and lineage out" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/cairn /cairn
COPY --from=build --chown=65532:65532 /out/data /data
COPY --from=build --chown=65532:65532 /out/wal /wal
USER 65532:65532
ENV CAIRN_STORE=/data \
    CAIRN_WAL_DIR=/wal \
    CAIRN_OTLP_GRPC_ADDR=0.0.0.0:4317 \
    CAIRN_OTLP_HTTP_ADDR=0.0.0.0:4318 \
    CAIRN_HTTP_ADDR=0.0.0.0:3200 \
    CAIRN_METRICS_ADDR=0.0.0.0:9464 \
    CAIRN_PG_ADDR=127.0.0.1:5433
# OTLP gRPC, OTLP HTTP (+ /metrics), query API and web UI, compactor /metrics, Postgres wire.
EXPOSE 4317 4318 3200 9464 5433
ENTRYPOINT ["/cairn"]
CMD ["serve"]
