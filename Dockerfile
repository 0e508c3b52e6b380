# syntax=docker/dockerfile:1
# todo-server: a small runtime image (Debian slim, non-root) built from this workspace.
#
#   docker build -t todo-server .
#   docker run --rm -p 8000:8000 -v todo-data:/data todo-server
#   docker run --rm -v todo-data:/data todo-server token --user alice
#
# See docs/deployment.md.

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# The caches speed up rebuilds; the binary is copied out of the cached target directory.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p todo-server \
    && cp target/release/todo-server /usr/local/bin/todo-server

FROM debian:bookworm-slim
# TLS to PostgreSQL is rustls with bundled webpki roots; ca-certificates is only a conventional
# system CA store for debugging tools, and costs little.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 todo \
    && useradd --system --uid 10001 --gid todo --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin todo \
    && mkdir -p /data \
    && chown todo:todo /data
COPY --from=builder /usr/local/bin/todo-server /usr/local/bin/todo-server

USER todo:todo
# With no DATABASE_URL the server keeps todo.db and todo.db.secret here.
WORKDIR /data
VOLUME ["/data"]
ENV HOST=0.0.0.0 \
    PORT=8000 \
    RUST_LOG=info,sqlx=warn \
    NO_COLOR=1
EXPOSE 8000

# Liveness without curl: bash's /dev/tcp sends one HTTP/1.0 request to /healthz and checks for 200.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${PORT:-8000} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

# The server is PID 1 and handles SIGTERM itself: in-flight requests get up to 10 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["todo-server"]
