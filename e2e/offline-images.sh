#!/usr/bin/env bash
# Builds, from Debian packages, every base image the Dockerfile and
# docker-compose.yml name, and tags each with the name the real registry uses,
# so they run unchanged on a machine that cannot pull. Skips images that exist.
#
#   debian:bookworm-slim      debootstrap --variant=minbase, trimmed like the official slim
#   gcr.io/distroless/cc-debian12:nonroot
#                             glibc and libgcc from that, a nonroot user, no shell
#   rust:1.95-slim-bookworm   that + gcc + the host's Rust toolchain and CA bundle
#   redis:7-bookworm          that + Debian's redis-server, official-style entrypoint
#   postgres:15-bookworm      that + Debian's postgresql-15, official-style entrypoint
#   haproxy:2.6-bookworm      that + Debian's haproxy 2.6, laid out as the official image
#   prom/prometheus:v2.42.0   Debian's prometheus 2.42 on the distroless base, laid out as
#                             the official image (console libraries and classic UI kept)
#   oliver006/redis_exporter:v1.45.0
#   quay.io/prometheuscommunity/postgres-exporter:v0.11.1
#                             Debian's prometheus-redis-exporter and -postgres-exporter
#                             on the distroless base, as the official images
#                             (compose profile monitoring)
#
# On a machine with a registry nobody needs this; `docker compose` pulls the real ones.
set -euo pipefail
cd "$(dirname "$0")/images"

SLIM=debian:bookworm-slim
DISTROLESS=gcr.io/distroless/cc-debian12:nonroot
RUST=rust:1.95-slim-bookworm
REDIS=redis:7-bookworm
POSTGRES=postgres:15-bookworm
HAPROXY=haproxy:2.6-bookworm
PROMETHEUS=prom/prometheus:v2.42.0
REDIS_EXPORTER=oliver006/redis_exporter:v1.45.0
POSTGRES_EXPORTER=quay.io/prometheuscommunity/postgres-exporter:v0.11.1

say() { printf 'offline-images: %s\n' "$*"; }
have() { docker image inspect "$1" >/dev/null 2>&1; }

# The Debian mirror the host's apt already uses (a mirror or proxy here is the
# one that works), from one-line or deb822 sources.
apt_uri() {
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
        sed -nE 's/^(deb([[:space:]]+\[[^]]*\])?|URIs:)[[:space:]]+([^[:space:]]+).*/\3/p' |
        grep -E "$1" | head -n1 || true
}

# One debootstrap serves every image built in this run.
debootstrap_once() {
    local mirror security
    rootfs=$scratch/rootfs
    if [[ -d $rootfs ]]; then return; fi
    mirror=$(apt_uri '/debian/?$')
    mirror=${mirror:-http://deb.debian.org/debian}
    security=$(apt_uri '/debian-security/?$')
    say "debootstrap bookworm from $mirror"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
    {
        echo "deb $mirror bookworm main"
        echo "deb $mirror bookworm-updates main"
        if [[ -n $security ]]; then echo "deb $security bookworm-security main"; fi
    } >"$rootfs/etc/apt/sources.list"
}

build_slim() {
    debootstrap_once
    # What makes the official image "slim": no docs, man pages or translations,
    # now or in packages installed later; no apt caches left in layers.
    cp slim/dpkg-slim "$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim"
    cp slim/apt-slim "$rootfs/etc/apt/apt.conf.d/docker-slim"
    find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$rootfs"/usr/share/{man,info,locale,lintian}/* \
        "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
        "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
    # Daemons must not start while a Dockerfile installs them.
    printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
    chmod 755 "$rootfs/usr/sbin/policy-rc.d"

    tar -C "$rootfs" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -c . |
        docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["bash"]' - "$SLIM" >/dev/null
}

# What a dynamically linked Rust binary needs at run time and nothing else:
# glibc, libgcc, CA certificates, passwd entries; no shell, no package manager.
build_distroless() {
    debootstrap_once
    local image=$scratch/distroless
    mkdir -p "$image"/{etc/ssl/certs,tmp,home/nonroot,usr/bin,usr/sbin,usr/lib,usr/lib64}
    chmod 1777 "$image/tmp"
    chown 65532:65532 "$image/home/nonroot"
    # Merged /usr: /lib, /lib64, /bin, /sbin are symlinks into /usr.
    tar -C "$rootfs" -c --no-recursion bin lib lib64 sbin | tar -C "$image" -x
    local arch
    arch=$(dpkg --print-architecture)
    cat "$rootfs"/var/lib/dpkg/info/{libc6,libgcc-s1}:"$arch".list | sort -u |
        while read -r path; do
            if [[ -f $rootfs$path || -L $rootfs$path ]]; then echo ".$path"; fi
        done >"$scratch/distroless.files"
    tar -C "$rootfs" -c --no-recursion -T "$scratch/distroless.files" |
        tar -C "$image" -x --keep-directory-symlink
    cp -a "$rootfs"/etc/{ld.so.cache,nsswitch.conf,os-release} "$image/etc/"
    cp -a "$rootfs/usr/lib/os-release" "$image/usr/lib/"
    cp /etc/ssl/certs/ca-certificates.crt "$image/etc/ssl/certs/"
    printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
        'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
        'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$image/etc/passwd"
    printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' >"$image/etc/group"
    tar -C "$image" --numeric-owner -c . |
        docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
            --change 'USER 65532' --change 'WORKDIR /home/nonroot' - "$DISTROLESS" >/dev/null
}

build_rust() {
    local sysroot context
    if ! command -v rustc >/dev/null; then
        say "$RUST copies the host's Rust toolchain, and rustc is not on PATH (install rustup, then 1.95)"
        exit 1
    fi
    # The toolchain the tag names if rustup has it, else the default one.
    sysroot=$(rustc +1.95.0 --print sysroot 2>/dev/null || rustc --print sysroot)
    "$sysroot/bin/rustc" -V | grep -q '^rustc 1\.95\.' ||
        say "warning: $("$sysroot/bin/rustc" -V) is tagged $RUST"
    context=$scratch/rust
    mkdir -p "$context/toolchain" "$context/cargo-home"
    cp rust/Dockerfile "$context/"
    # Compiler and standard library only: share/ is mostly the offline docs.
    for part in bin lib libexec etc; do
        [[ -e $sysroot/$part ]] || continue
        cp -al "$sysroot/$part" "$context/toolchain/" 2>/dev/null || cp -a "$sysroot/$part" "$context/toolchain/"
    done
    # Without the CA bundle cargo cannot reach the registry over TLS.
    cp /etc/ssl/certs/ca-certificates.crt "$context/"
    # Registry mirrors or source replacement the host's cargo is set up with,
    # and its proxy, if any.
    local home=${CARGO_HOME:-$HOME/.cargo}
    for file in config.toml config; do
        if [[ -f $home/$file ]]; then cp "$home/$file" "$context/cargo-home/"; fi
    done
    local proxy=${HTTPS_PROXY:-${https_proxy:-}}
    if [[ -n $proxy ]] && ! grep -qs '^\[http\]' "$context"/cargo-home/config*; then
        printf '[http]\nproxy = "%s"\n' "$proxy" >>"$context/cargo-home/config.toml"
    fi
    docker build -q -t "$RUST" "${proxy_args[@]}" "$context" >/dev/null
}

build_from_dockerfile() {
    docker build -q -t "$1" "${proxy_args[@]}" "$2" >/dev/null
}

# A multi-stage build whose first stage installs the Debian package: that
# stage's image (labelled so, and left untagged) is removed afterwards.
build_multi_stage() {
    build_from_dockerfile "$1" "$2"
    docker image prune -f --filter label=voting-app.offline-images=package-stage >/dev/null
}

# apt inside the builds goes through the host's proxy, if it has one.
proxy_args=()
for name in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
    if [[ -n ${!name:-} ]]; then proxy_args+=(--build-arg "$name=${!name}"); fi
done

scratch=$(mktemp -d /var/tmp/offline-images.XXXXXX)
trap 'rm -rf "$scratch"' EXIT

for image in "$SLIM" "$DISTROLESS" "$RUST" "$REDIS" "$POSTGRES" "$HAPROXY" \
    "$PROMETHEUS" "$REDIS_EXPORTER" "$POSTGRES_EXPORTER"; do
    if have "$image"; then
        say "$image exists"
        continue
    fi
    start=$SECONDS
    case $image in
        "$SLIM") build_slim ;;
        "$DISTROLESS") build_distroless ;;
        "$RUST") build_rust ;;
        "$REDIS") build_from_dockerfile "$image" redis ;;
        "$POSTGRES") build_from_dockerfile "$image" postgres ;;
        "$HAPROXY") build_from_dockerfile "$image" haproxy ;;
        "$PROMETHEUS") build_multi_stage "$image" prometheus ;;
        "$REDIS_EXPORTER") build_multi_stage "$image" redis-exporter ;;
        "$POSTGRES_EXPORTER") build_multi_stage "$image" postgres-exporter ;;
    esac
    say "$image built in $((SECONDS - start))s"
done
