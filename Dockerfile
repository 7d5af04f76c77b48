# Multi-stage build: compile with the full toolchain, run on a slim, non-root image.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY migrations ./migrations
COPY src ./src
RUN cargo build --release --locked --bin lms-proxy

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/lms-proxy --create-home lms-proxy
COPY --from=build /src/target/release/lms-proxy /usr/local/bin/lms-proxy
COPY conf/lms-proxy.toml /etc/lms-proxy/lms-proxy.toml
USER lms-proxy
WORKDIR /var/lib/lms-proxy
EXPOSE 8080
# Pingora stops gracefully on SIGTERM: listeners close after 1 s, requests in flight get at
# most 5 s more (server.rs), so `docker stop`'s default 10 s grace is enough.
STOPSIGNAL SIGTERM
ENTRYPOINT ["lms-proxy", "--log-format", "json"]
CMD ["run", "-c", "/etc/lms-proxy/lms-proxy.toml"]
