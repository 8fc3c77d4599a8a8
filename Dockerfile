# ecrm's container image, for shops that build with Docker (or Podman/Buildah):
#
#   docker build -t ecrm \
#     --build-arg VERSION="$(build/ecrm version | awk '{print $NF}')" \
#     --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg CREATED="$(date -u -d @"$(git log -1 --format=%ct)" +%Y-%m-%dT%H:%M:%SZ)" .
#   docker run -p 8080:8080 -v ecrm-data:/var/lib/ecrm ecrm
#
# UNTESTED HERE: no Docker engine runs on the machine this project is developed and tested on, so
# this file has never been built there. What is tested is scripts/build-image.sh (`make image`,
# tests/image/run.sh), which builds an image of the same shape from an already-built binary with
# no engine and no network. Keep the two consistent: binary at /usr/local/bin/ecrm, user and group
# ecrm 65532:65532, data dir /var/lib/ecrm (owned by 65532, mode 0750, also the working dir),
# port 8080/tcp, the entrypoint and cmd below, SSL_CERT_FILE, the org.opencontainers.image labels.
# The differences: this runtime is debian:bookworm-slim (a shell, apt, Debian's libraries as
# packages), that one only the binary, the libraries ldd lists, CA certificates and /etc files.

# --- builder -------------------------------------------------------------------------------------
FROM debian:bookworm AS builder
ENV DEBIAN_FRONTEND=noninteractive
# The build half of scripts/install-deps.sh's list (keep in step with it). The whole script would
# also install what only the tests use (Node.js, a JDK, Maven, Prometheus, kcat, clang-format).
# debian-archive-keyring: the current one has the trixie keys that build-librdkafka.sh's apt needs.
# Unpinned on purpose (both stages): a stable point release drops the versions it replaces.
# hadolint ignore=DL3008
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      build-essential cmake ninja-build pkg-config debian-archive-keyring \
      librocksdb-dev libsimdjson-dev libboost-dev prometheus-cpp-dev libabsl-dev \
      libjemalloc-dev libxxhash-dev libcli11-dev libyaml-cpp-dev libspdlog-dev libfmt-dev \
      zlib1g-dev libzstd-dev libre2-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# librdkafka 2.8.0 from Debian trixie's source, as make does it (scripts/install-deps.sh runs this
# script); in a layer of its own so that source changes do not rebuild it.
COPY scripts/build-librdkafka.sh scripts/
RUN bash scripts/build-librdkafka.sh
COPY . .
# The release preset, as `make build` uses it, without the tests and benchmarks.
RUN cmake --preset release -Wno-dev -DECRM_BUILD_TESTS=OFF -DECRM_BUILD_BENCH=OFF \
    && cmake --build --preset release --target ecrm

# --- runtime -------------------------------------------------------------------------------------
FROM debian:bookworm-slim
ENV DEBIAN_FRONTEND=noninteractive
# The packages of the libraries the binary links (ldd build/ecrm), and the CA bundle for Kafka TLS.
# hadolint ignore=DL3008
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      ca-certificates libabsl20220623 libbz2-1.0 libfmt9 libgflags2.2 libjemalloc2 liblz4-1 \
      libprometheus-cpp-core1.0 libre2-9 librocksdb7.8 libsimdjson14 libsnappy1v5 libspdlog1.10 \
      libssl3 libstdc++6 libxxhash0 libyaml-cpp0.7 libzstd1 zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 65532 ecrm \
    && useradd --system --uid 65532 --gid 65532 --home-dir /var/lib/ecrm --no-create-home \
         --shell /usr/sbin/nologin ecrm \
    && install -d -o 65532 -g 65532 -m 0750 /var/lib/ecrm
COPY --from=builder /src/build/ecrm /usr/local/bin/ecrm
# Fails the build if a library is missing (a package renamed or dropped from the list above).
RUN ldd /usr/local/bin/ecrm > /tmp/ldd.txt && ! grep 'not found' /tmp/ldd.txt \
    && rm /tmp/ldd.txt && /usr/local/bin/ecrm version

ARG VERSION=unknown
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=https://github.com/ecrm/ecrm
LABEL org.opencontainers.image.title="ecrm" \
      org.opencontainers.image.description="Real-time clickstream profiling service" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
WORKDIR /var/lib/ecrm
EXPOSE 8080/tcp
ENTRYPOINT ["/usr/local/bin/ecrm"]
CMD ["serve", "--http-addr", "0.0.0.0:8080", "--data-dir", "/var/lib/ecrm"]
