# Meterline's binaries on Debian 12, as docker-compose.yml runs them.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bins --locked

FROM debian:bookworm-slim
# curl: the rollup's healthcheck in docker-compose.yml.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /app meterline
# Not meterline-bench: the benchmarks are run from a build tree against a dev
# stack, so `meterline bench` in the image says how to build it.
COPY --from=build /src/target/release/meterline /src/target/release/meterline-rollup /src/target/release/meterline-budget /src/target/release/meterline-notify \
     /src/target/release/meterline-gateway /src/target/release/meterline-rag /usr/local/bin/
COPY prices /app/prices
COPY schemas /app/schemas
COPY migrations /app/migrations
WORKDIR /app
USER meterline
EXPOSE 9464
CMD ["meterline-rollup"]
