# syntax=docker/dockerfile:1

# fieldsync server image.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t fieldsync .
#   docker run --rm -p 8080:8080 fieldsync serve --demo
#
# The binary is pure Go (the embedded SQLite driver needs no cgo), so it is
# built static and runs on a small Alpine base. Alpine rather than distroless
# because its busybox wget is what the healthcheck calls.
#
# Base images are pinned to releases (bump them deliberately, e.g. with
# Renovate, which can also pin digests). The build stage's Go matches
# go.mod's; the binary is built with GO_TOOLCHAIN, the newest patch release
# the module proxy serves, so it carries every standard-library fix: the go
# command fetches that toolchain through the module proxy (checked against
# the checksum database). .ci/run scans with govulncheck and builds the
# end-to-end binary under the same toolchain, read from the line below.

FROM golang:1.26.8-bookworm AS build
ARG GO_TOOLCHAIN=go1.27.4
WORKDIR /src
ENV CGO_ENABLED=0 GOTOOLCHAIN=${GO_TOOLCHAIN}
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/fieldsync ./cmd/fieldsync

FROM alpine:3.22.2
# ca-certificates: TLS to PostgreSQL and to Firebase Cloud Messaging.
# Time zones are compiled into the binary (time/tzdata), so no tzdata here.
RUN apk add --no-cache ca-certificates \
    && addgroup -S -g 10001 fieldsync \
    && adduser -S -D -H -u 10001 -G fieldsync -h /data fieldsync \
    && mkdir -p /data && chown fieldsync:fieldsync /data
COPY --from=build /out/fieldsync /fieldsync
USER 10001:10001
# `serve --demo` without FIELDSYNC_DATABASE_URL keeps its SQLite file here;
# a volume, so it outlives the container.
WORKDIR /data
VOLUME /data
EXPOSE 8080
# Healthy means ready: the database answers and the schema is current.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["wget", "-q", "-T", "3", "-O", "/dev/null", "http://127.0.0.1:8080/readyz"]
ENTRYPOINT ["/fieldsync"]
CMD ["serve"]
