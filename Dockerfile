# syntax=docker/dockerfile:1

# fieldsync server image.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t fieldsync .
#   docker run --rm -p 8080:8080 fieldsync serve --demo
#
# The binary is pure Go (the embedded SQLite driver needs no cgo), so it is
# built static and runs on a small Alpine base. Alpine rather than distroless
# because its busybox wget is what the docker-compose healthcheck calls.

FROM golang:1.26 AS build
WORKDIR /src
ENV CGO_ENABLED=0
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/fieldsync ./cmd/fieldsync

FROM alpine:3.22
# ca-certificates: TLS to PostgreSQL and to Firebase Cloud Messaging.
# Time zones are compiled into the binary (time/tzdata), so no tzdata here.
RUN apk add --no-cache ca-certificates \
    && addgroup -S -g 10001 fieldsync \
    && adduser -S -D -H -u 10001 -G fieldsync -h /data fieldsync \
    && mkdir -p /data && chown fieldsync:fieldsync /data
COPY --from=build /out/fieldsync /fieldsync
USER 10001:10001
# `serve --demo` without FIELDSYNC_DATABASE_URL keeps its SQLite file here.
WORKDIR /data
EXPOSE 8080
ENTRYPOINT ["/fieldsync"]
CMD ["serve"]
