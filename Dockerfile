# Meterline's binaries on Debian 12, as docker-compose.yml runs them.
FROM rust:1-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --bins --locked

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/meterline /src/target/release/meterline-rollup /usr/local/bin/
COPY prices /app/prices
COPY schemas /app/schemas
COPY migrations /app/migrations
WORKDIR /app
EXPOSE 9464
CMD ["meterline-rollup"]
