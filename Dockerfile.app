# syntax=docker/dockerfile:1
# todo-app image: multi-stage on Debian 12. The runtime stage has the app, unixODBC and the ODBC
# drivers of its three databases: Microsoft ODBC Driver 18 for SQL Server (Azure SQL), PostgreSQL
# (odbc-postgresql) and SQLite (libsqliteodbc). Runs as uid 10001, non-root.
#
#   podman build -f Dockerfile.app -t todo-app .
#   podman build -f Dockerfile.app --build-arg INSTALL_MSODBCSQL=false -t todo-app .
#
# INSTALL_MSODBCSQL=true (default) installs msodbcsql18 from Microsoft's Debian 12 package
# repository, accepting its EULA (ACCEPT_EULA=Y); false builds where that repository cannot be
# reached (the image then serves PostgreSQL and SQLite only). With true and no way to that
# repository, the build stops with a message saying so.
# DEBIAN_IMAGE may point to a mirror or a local copy of debian:12 (bookworm).
# Builds with podman/buildah or Docker with BuildKit (the default since Docker 23): the build
# stage keeps ccache in a cache mount (RUN --mount=type=cache).
ARG DEBIAN_IMAGE=docker.io/library/debian:12-slim
ARG INSTALL_MSODBCSQL=true

# ---- build (the same in Dockerfile.sidecar and Dockerfile.app, byte for byte) -----------------
# Both Dockerfiles build all four programs in this one stage, so that whichever image is built
# second finds the stage in the layer cache (buildah --layers, BuildKit) and compiles nothing.
# tests/docs/check-dockerfile-build-stages checks that the two copies stay identical.
FROM ${DEBIAN_IMAGE} AS build
ARG DEBIAN_FRONTEND=noninteractive
# The Debian 12 build packages of scripts/install-deps (Boost 1.81 on purpose), minus the test
# and formatting tools, plus ccache.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config ca-certificates binutils ccache \
      libboost1.81-dev libboost-url1.81-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libssl-dev \
      unixodbc-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Sources only (.dockerignore keeps build/, tests/, .git/ … out). The top-level CMakeLists.txt
# configures every component, so all of them are copied.
COPY CMakeLists.txt CMakePresets.json ./
COPY cmake/ cmake/
COPY common/ common/
COPY client/ client/
COPY sidecar/ sidecar/
COPY tools/ tools/
COPY app/ app/
# ccache keeps its objects in a cache mount (id token-broker-ccache; podman/buildah keep it in
# $TMPDIR/buildah-cache, BuildKit in its own cache): after a source change only what changed is
# compiled again. The build tree is removed, so the layer holds only the stripped programs.
RUN --mount=type=cache,target=/ccache,id=token-broker-ccache \
    export CCACHE_DIR=/ccache CCACHE_MAXSIZE=2G TB_COMPILER_LAUNCHER=ccache \
 && ccache --zero-stats >/dev/null \
 && cmake --preset release -DTB_BUILD_TESTS=OFF -DTB_WARNINGS_AS_ERRORS=OFF >/dev/null \
 && cmake --build --preset release --target token-broker tokenctl imds-emulator todo-app \
 && mkdir -p /out \
 && for program in sidecar/token-broker tools/tokenctl/tokenctl \
                   tools/imds-emulator/imds-emulator app/todo-app; do \
      strip --strip-unneeded -o "/out/${program##*/}" "build/release/$program" || exit 1; \
    done \
 && (ccache --show-stats | grep -E 'Hits|Misses' || true) \
 && rm -rf build

# ---- Microsoft's package signing key (only with INSTALL_MSODBCSQL=true) ----------------------
FROM ${DEBIAN_IMAGE} AS microsoft-key
ARG DEBIAN_FRONTEND=noninteractive
ARG INSTALL_MSODBCSQL
RUN mkdir -p /out \
 && if [ "$INSTALL_MSODBCSQL" = "true" ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends ca-certificates curl gnupg \
      && { curl -fsSL --retry 3 --connect-timeout 15 --max-time 60 -o /tmp/microsoft.asc \
             https://packages.microsoft.com/keys/microsoft.asc \
           || { echo "Dockerfile.app: cannot download Microsoft's signing key from packages.microsoft.com (for msodbcsql18). Where that repository cannot be reached, build with --build-arg INSTALL_MSODBCSQL=false (PostgreSQL and SQLite only)." >&2; \
                exit 1; }; } \
      && gpg --dearmor -o /out/microsoft-prod.gpg /tmp/microsoft.asc \
      && rm -rf /tmp/microsoft.asc /var/lib/apt/lists/*; \
    fi

# ---- runtime -------------------------------------------------------------------------------
FROM ${DEBIAN_IMAGE} AS runtime
ARG DEBIAN_FRONTEND=noninteractive
ARG INSTALL_MSODBCSQL
ARG VERSION=0.1.0
ARG REVISION=unknown
COPY --from=microsoft-key /out/ /tmp/microsoft-key/
# The app's own libraries (as ldd lists them for build/release/app/todo-app), unixODBC and the
# drivers; then msodbcsql18 from Microsoft's repository when asked. Each driver must be
# registered in /etc/odbcinst.ini under the name the chart's connection strings use.
RUN set -eu; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
      ca-certificates libboost-url1.81.0 libfmt9 libspdlog1.10 libssl3 libstdc++6 \
      unixodbc odbcinst odbc-postgresql libsqliteodbc; \
    if [ "$INSTALL_MSODBCSQL" = "true" ]; then \
      install -m 0644 /tmp/microsoft-key/microsoft-prod.gpg /usr/share/keyrings/microsoft-prod.gpg; \
      echo "deb [arch=$(dpkg --print-architecture) signed-by=/usr/share/keyrings/microsoft-prod.gpg] https://packages.microsoft.com/debian/12/prod bookworm main" \
        > /etc/apt/sources.list.d/microsoft-prod.list; \
      if ! apt-get update || ! ACCEPT_EULA=Y apt-get install -y --no-install-recommends msodbcsql18; then \
        echo "Dockerfile.app: cannot install msodbcsql18 from packages.microsoft.com/debian/12/prod. Where that repository cannot be reached, build with --build-arg INSTALL_MSODBCSQL=false (PostgreSQL and SQLite only)." >&2; \
        exit 1; \
      fi; \
      odbcinst -q -d -n "ODBC Driver 18 for SQL Server" >/dev/null; \
    fi; \
    rm -rf /tmp/microsoft-key /var/lib/apt/lists/*; \
    odbcinst -q -d -n "PostgreSQL Unicode" >/dev/null; \
    odbcinst -q -d -n "SQLite3" >/dev/null; \
    groupadd --system --gid 10001 todo; \
    useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin todo; \
    install -d -o 10001 -g 10001 -m 0750 /var/lib/todo
COPY --from=build /out/todo-app /usr/local/bin/todo-app
# Fails the build if a library is missing.
RUN if ldd /usr/local/bin/todo-app | grep 'not found'; then exit 1; fi; \
    /usr/local/bin/todo-app --help >/dev/null
# Nothing is written outside /tmp and /var/lib/todo (SQLite), so the root file system can be
# read-only; the chart mounts emptyDirs there.
ENV TODO_LISTEN=0.0.0.0:8080 \
    TODO_DB_CONNECTION_STRING="Driver=SQLite3;Database=/var/lib/todo/todo.db;" \
    HOME=/tmp
WORKDIR /tmp
# Numeric, so that Kubernetes can check runAsNonRoot.
USER 10001:10001
STOPSIGNAL SIGTERM
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/todo-app"]
LABEL org.opencontainers.image.title="todo-app" \
      org.opencontainers.image.description="Reference to-do web app that logs into Azure SQL / PostgreSQL with tokens from token-broker" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="debian:12-slim"
