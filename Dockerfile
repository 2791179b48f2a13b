# syntax=docker/dockerfile:1
# Herald: multi-stage build. The Swift toolchain builds a release binary; the runtime image
# carries only the binary, the Swift runtime libraries it links and libhiredis.

# The toolchain CI builds and tests with (scripts/validate-deploy checks that the two agree).
FROM swift:6.3.1-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libhiredis-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Resolve dependencies first so that source edits reuse the cached layer.
COPY Package.swift ./
RUN swift package resolve
COPY Sources ./Sources
RUN swift build -c release --product herald --static-swift-stdlib \
    && mkdir -p /staging \
    && cp "$(swift build -c release --show-bin-path)/herald" /staging/

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends libhiredis0.14 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home herald
COPY --from=build /staging/herald /usr/local/bin/herald
USER herald
ENV HERALD_HOST=0.0.0.0 \
    HERALD_PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD curl -fsS http://127.0.0.1:8080/health || exit 1
# SIGTERM starts the graceful shutdown (server_shutdown, close 1001, drain, exit 0).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/herald"]
CMD ["serve"]
