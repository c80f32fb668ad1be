# One Dockerfile for the workspace, one final stage per service:
#   docker build --target vote .      (or result, worker, seed)
# docker-compose.yml builds each with `build: {context: ., target: ...}`.
# The build stages are shared, so the four images come from one cached cargo
# build; only the last stage of each differs. Build context: the repository
# root (the workspace and Cargo.lock; see .dockerignore).

# The workspace reduced to its manifests, with `fn main() {}` standing in for
# every library, binary and build script, so the dependency layer below is
# rebuilt only when a manifest or Cargo.lock changes. Tests, examples and
# benches are not built, so a new one does not count as a change (unless some
# manifest declares them with [[test]] etc.: cargo then needs their files).
FROM rust:1.95-slim-bookworm AS skeleton
WORKDIR /src
COPY . .
RUN cargo metadata --offline --no-deps --format-version 1 > /tmp/metadata.json \
    && manifests=$(grep -o '"manifest_path":"[^"]*"' /tmp/metadata.json | cut -d'"' -f4) \
    && skip='"\(test\|example\|bench\)"' \
    && if grep -q '^\[\[\(test\|example\|bench\)\]\]' $manifests; then skip='"none"'; fi \
    && mkdir /skeleton && cp Cargo.toml Cargo.lock /skeleton/ \
    && for manifest in $manifests; do \
        mkdir -p "$(dirname "/skeleton/${manifest#/src/}")" \
        && cp "$manifest" "/skeleton/${manifest#/src/}"; \
    done \
    && grep -o '"kind":\[[^]]*\][^}]*"src_path":"[^"]*"' /tmp/metadata.json \
        | grep -v "\"kind\":\[$skip\]" | grep -o '"src_path":"[^"]*"' | cut -d'"' -f4 \
        | while read -r path; do \
            mkdir -p "$(dirname "/skeleton/${path#/src/}")" \
            && echo 'fn main() {}' > "/skeleton/${path#/src/}"; \
        done

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
ENV CARGO_PROFILE_RELEASE_STRIP=symbols
COPY --from=skeleton /skeleton/ ./
RUN cargo build --release --locked -p vote -p worker -p result -p seed
COPY . .
# The commit this is built from, which every service tells (kit's version
# module reads it at compile time; no git in the build): compose passes
# GIT_COMMIT from the environment, e2e from `git rev-parse --short HEAD`.
# Declared after the dependency layer, so a new commit rebuilds only the
# workspace's own crates.
ARG GIT_COMMIT=unknown
# Newer than the skeleton's build, so cargo rebuilds the workspace crates.
RUN find . -path ./target -prune -o -name '*.rs' -exec touch {} + \
    && cargo build --release --locked -p vote -p worker -p result -p seed

# Debian 12's glibc and libgcc, a nonroot user, no shell or package manager:
# about 20 MB under the binary (debian:bookworm-slim alone is 75 MB).
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
USER 65532:65532
# The same commit on the image, for `docker inspect`.
ARG GIT_COMMIT=unknown
LABEL org.opencontainers.image.revision=$GIT_COMMIT

FROM runtime AS vote
COPY --from=build /src/target/release/vote /usr/local/bin/vote
ENV PORT=5000
EXPOSE 5000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["vote", "healthcheck"]
ENTRYPOINT ["vote"]

FROM runtime AS result
COPY --from=build /src/target/release/result /usr/local/bin/result
ENV PORT=5001
EXPOSE 5001
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["result", "healthcheck"]
ENTRYPOINT ["result"]

FROM runtime AS worker
COPY --from=build /src/target/release/worker /usr/local/bin/worker
ENV PORT=5002
EXPOSE 5002
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["worker", "healthcheck"]
ENTRYPOINT ["worker"]

# The load tool (compose profile `seed`); also the default target.
FROM runtime AS seed
COPY --from=build /src/target/release/seed /usr/local/bin/seed
ENTRYPOINT ["seed"]
