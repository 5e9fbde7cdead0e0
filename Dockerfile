# syntax=docker/dockerfile:1.7
#
# One image per Go binary of the repository, built from the repository root:
#
#   docker build --build-arg SERVICE=command   -t ticketflow/command .
#   docker build --build-arg SERVICE=notifier  -t ticketflow/notifier .
#   docker build --build-arg SERVICE=projector --build-arg PORT=8080 -t ticketflow/projector .
#   docker build --build-arg SERVICE=ticketflow -t ticketflow/ticketflow .   # the CLI (migrate, token, dev)
#   docker build --build-arg SERVICE=processor --target processor -t ticketflow/processor .
#
# SERVICE names a directory: services/$SERVICE, or cmd/$SERVICE for the CLI. The binary is static
# (CGO_ENABLED=0) and always lands at /usr/local/bin/app, so ENTRYPOINT need not know its name.
# PORT (8000 by default, 8080 for the workers) sets the image's TICKETFLOW_HTTP_ADDR and EXPOSE.
#
# Two runtimes:
#   runtime   (the default, last stage) distroless/static as uid 65532: no shell, no package manager.
#   processor Debian + git + bubblewrap + sh as uid 10001: the processor clones repositories and runs
#             CI commands in a bwrap sandbox.
# Both carry /usr/local/bin/healthcheck (deploy/healthcheck, stdlib only) because distroless has no
# curl or wget for `docker compose` healthchecks.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-alpine AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
# go.work names every module of the repository, so the whole (filtered: .dockerignore) tree is
# copied; the module and build caches are BuildKit cache mounts, so a rebuild recompiles only what
# changed.
COPY . .
ARG SERVICE
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    set -eu; \
    if [ -z "${SERVICE:-}" ]; then echo "build with --build-arg SERVICE=<command|notifier|processor|projector|ticketflow>" >&2; exit 1; fi; \
    if [ -f "services/${SERVICE}/go.mod" ]; then pkg="./services/${SERVICE}"; \
    elif [ -f "cmd/${SERVICE}/go.mod" ]; then pkg="./cmd/${SERVICE}"; \
    else echo "no services/${SERVICE} or cmd/${SERVICE} module" >&2; exit 1; fi; \
    go build -ldflags="-s -w" -o /out/app "${pkg}"; \
    cd deploy && GOWORK=off go build -ldflags="-s -w" -o /out/healthcheck ./healthcheck

# Debian, like .ci/run, so the CI sandbox runs the bubblewrap the tests run. bwrap is not setuid
# here: it needs unprivileged user namespaces, which a container only gets when its runtime allows
# them (docker-compose.yml: seccomp, AppArmor and /proc masking lifted for the processor; in
# Kubernetes use TICKETFLOW_CI_SANDBOX=kubernetes instead). See deploy/README.md.
FROM debian:bookworm-slim AS processor
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends bubblewrap git openssh-client ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 ticketflow \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/ticketflow --no-create-home --shell /usr/sbin/nologin ticketflow \
 && mkdir -p /var/lib/ticketflow/work \
 && chown -R 10001:10001 /var/lib/ticketflow
COPY --from=build /out/app /usr/local/bin/app
COPY --from=build /out/healthcheck /usr/local/bin/healthcheck
ARG PORT=8080
ENV HOME=/var/lib/ticketflow TICKETFLOW_WORK_DIR=/var/lib/ticketflow/work TICKETFLOW_HTTP_ADDR=:${PORT}
USER 10001:10001
EXPOSE ${PORT}
VOLUME ["/var/lib/ticketflow/work"]
ENTRYPOINT ["/usr/local/bin/app"]

FROM gcr.io/distroless/static-debian12:nonroot AS runtime
COPY --from=build /out/app /usr/local/bin/app
COPY --from=build /out/healthcheck /usr/local/bin/healthcheck
ARG PORT=8000
ENV TICKETFLOW_HTTP_ADDR=:${PORT}
USER 65532:65532
EXPOSE ${PORT}
ENTRYPOINT ["/usr/local/bin/app"]
