# Multi-stage build: compile with the full toolchain, run on a slim, non-root image.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY migrations ./migrations
COPY src ./src
# The workspace names the sandbox LMS crate, so its manifest must be there; it is not built.
COPY crates ./crates
# The manifest names the benchmark targets, so their sources must be there to build at all.
COPY benches ./benches
# Stripped: the image carries no symbols or line tables (about 19 MB instead of 121 MB).
RUN CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=symbols cargo build --release --locked --bin lms-proxy

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/lms-proxy --create-home lms-proxy
COPY --from=build /src/target/release/lms-proxy /usr/local/bin/lms-proxy
COPY conf/lms-proxy.toml /etc/lms-proxy/lms-proxy.toml
# The example, made fit for a container: listen on all interfaces, keep the store in the
# writable home (mount a volume there). Mount your own file over it for real use.
RUN sed -i -e 's|^listen = "127.0.0.1:8080"|listen = "0.0.0.0:8080"|' \
           -e 's|^url = "sqlite://data/lms-proxy.db"|url = "sqlite:///var/lib/lms-proxy/lms-proxy.db"|' \
           /etc/lms-proxy/lms-proxy.toml
VOLUME /var/lib/lms-proxy
USER lms-proxy
WORKDIR /var/lib/lms-proxy
EXPOSE 8080
# Pingora stops gracefully on SIGTERM: listeners close after 1 s, requests in flight get at
# most 5 s more (server.rs), so `docker stop`'s default 10 s grace is enough.
STOPSIGNAL SIGTERM
ENTRYPOINT ["lms-proxy", "--log-format", "json"]
CMD ["run", "-c", "/etc/lms-proxy/lms-proxy.toml"]
