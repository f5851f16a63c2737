# syntax=docker/dockerfile:1

# The longhaul image: one binary with the browser UI built in. compose.yaml runs it as
# `longhaul api` and `longhaul worker`; on its own it runs `longhaul serve`.
#
#   docker build -t longhaul .
#   docker run --rm -p 3000:3000 longhaul   # embedded Redis: jobs do not survive a restart

# The browser UI and the /docs page, built as `make build` does: Vite writes the UI to
# frontend/dist/app, scripts/build-docs.mjs the page to frontend/dist/docs.
FROM node:20-bookworm-slim AS ui
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci
COPY frontend/ ./
RUN npm run build

# The binary, embedding the UI and the page built above.
FROM golang:1.26-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
COPY --from=ui /src/frontend/dist/app ./frontend/dist/app
COPY --from=ui /src/frontend/dist/docs ./frontend/dist/docs
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -o /out/longhaul ./cmd/longhaul

# The runtime: Debian slim for its CA certificates (rediss://) and curl (the health checks
# in compose.yaml), running as an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
# The storage directory exists in the image, owned by the service user, so that a named
# volume mounted on it starts out writable by that user.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/longhaul --shell /usr/sbin/nologin longhaul \
    && mkdir -p /var/lib/longhaul/files \
    && chown -R longhaul:longhaul /var/lib/longhaul
COPY --from=build /out/longhaul /usr/local/bin/longhaul
USER longhaul:longhaul
WORKDIR /var/lib/longhaul
ENV LONGHAUL_ADDR=:3000 \
    LONGHAUL_STORAGE_DIR=/var/lib/longhaul/files
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/longhaul"]
CMD ["serve"]
