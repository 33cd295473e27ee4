# syntax=docker/dockerfile:1
#
# FerryMQ gateway image: `ferrymq serve` by default, `ferrymq compact` for the compactor job.
#
#   docker build -t ferrymq:dev .
#   docker run --rm -p 8080:8080 ferrymq:dev                    # embedded local store
#   docker run --rm ferrymq:dev compact --store s3://bucket/prefix
#
# See docs/deployment.md for pushing it to a registry and for the environment it reads.

FROM rust:1.95-slim-bookworm AS builder
# TLS is rustls with aws-lc-rs (built by aws-lc-sys with the image's C compiler; cmake is there
# for the build configurations that want it). No OpenSSL is linked. rust-toolchain.toml pins
# the same 1.95.0 toolchain; rustup adds its listed components if the image lacks them.
# Unpinned apt packages on purpose: each build picks up Debian's security updates.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# BuildKit cache mounts keep the registry and target directory between builds; the binary is
# copied out of the cached target directory so the next stage can see it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p gateway --bin ferrymq \
 && install -m 0755 target/release/ferrymq /usr/local/bin/ferrymq

FROM debian:bookworm-slim
# ca-certificates: TLS to S3 and other endpoints; curl: the HEALTHCHECK below and the ECS
# entrypoint that looks up the task's own address (terraform/modules/aws).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 ferrymq \
 && useradd --system --uid 10001 --gid ferrymq --home-dir /var/lib/ferrymq --create-home \
      --shell /usr/sbin/nologin ferrymq
COPY --from=builder /usr/local/bin/ferrymq /usr/local/bin/ferrymq

# Inside a container the gateway must listen on every interface (the binary's own default is
# 127.0.0.1:8080). The embedded local store lands in /var/lib/ferrymq/ferrymq-data.
ENV FERRYMQ_LISTEN=0.0.0.0:8080
WORKDIR /var/lib/ferrymq
USER 10001:10001
EXPOSE 8080

HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["sh", "-c", "curl -fsS -o /dev/null http://127.0.0.1:8080/readyz || exit 1"]

ENTRYPOINT ["ferrymq"]
CMD ["serve"]
