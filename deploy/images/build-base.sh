#!/usr/bin/env bash
# Offline base images for ctflow's stack, from Debian's packages only (no container registry):
#
#   ctflow-base/debian:bookworm   a minimal bookworm root filesystem (debootstrap --variant=minbase)
#   ctflow-base/python:3.11       Debian's python3.11 + venv        -> Dockerfile's PYTHON_IMAGE
#   ctflow-base/postgres:15       Debian's postgresql-15, with the  -> compose's POSTGRES_IMAGE
#                                 official image's entrypoint contract (POSTGRES_USER, POSTGRES_PASSWORD,
#                                 POSTGRES_DB, /docker-entrypoint-initdb.d)
#   ctflow-base/redis:7           Debian's redis-server + redis-cli -> compose's REDIS_IMAGE
#
# Run as root (debootstrap): `make images`. Each image carries a label with the hash of its
# recipe (this script, its folder's files, the parent's hash); an image whose label matches is
# kept, so a second run takes seconds. The root filesystem's tarball is kept under
# $CTFLOW_IMAGES_CACHE (default /var/cache/ctflow-images), never in the repository.
#
# Settings (environment): DEBIAN_MIRROR (default: this machine's apt mirror, else
# deb.debian.org), CTFLOW_IMAGES_CACHE, CTFLOW_BASE_PREFIX (default ctflow-base),
# CTFLOW_IMAGES_REBUILD=1 (ignore the labels and rebuild everything).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SUITE=bookworm
PREFIX=${CTFLOW_BASE_PREFIX:-ctflow-base}
CACHE=${CTFLOW_IMAGES_CACHE:-/var/cache/ctflow-images}
LABEL=org.ctflow.recipe
DEBIAN_IMAGE=$PREFIX/debian:$SUITE
PYTHON_IMAGE=$PREFIX/python:3.11
POSTGRES_IMAGE=$PREFIX/postgres:15
REDIS_IMAGE=$PREFIX/redis:7

say() { printf '==> %s\n' "$*"; }
die() { printf 'images: %s\n' "$*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 || die "no docker CLI on PATH"
mkdir -p "$CACHE"
docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info)"

default_mirror() {
  # deb822 (bookworm's default) or one-line sources; the first http(s) Debian URI.
  local uri
  uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
        | grep -oE 'https?://[^ ]+/debian/?' | grep -v -- '-security' | head -n 1 || true)
  echo "${uri:-http://deb.debian.org/debian}"
}
MIRROR=${DEBIAN_MIRROR:-$(default_mirror)}

recipe_hash() {  # recipe_hash PARENT_HASH FILE... : what an image is built from
  { echo "$1"; shift; for f in "$@"; do echo "== $f"; cat "$f"; done; } | sha256sum | cut -c1-16
}
current_hash() { docker image inspect --format "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null || true; }
up_to_date() { [ "${CTFLOW_IMAGES_REBUILD:-0}" != 1 ] && [ "$(current_hash "$1")" = "$2" ]; }
size_of() { docker image inspect --format '{{ .Size }}' "$1" | awk '{printf "%.0f MB", $1 / 1e6}'; }

# --- 1. the root filesystem ------------------------------------------------------------------
# Bump ROOTFS_RECIPE when changing how the root filesystem is made (this section).
ROOTFS_RECIPE="$SUITE minbase slim-1"
ROOTFS_HASH=$(echo "$ROOTFS_RECIPE" | sha256sum | cut -c1-16)
if up_to_date "$DEBIAN_IMAGE" "$ROOTFS_HASH"; then
  say "$DEBIAN_IMAGE: up to date ($ROOTFS_HASH)"
else
  tarball=$CACHE/rootfs-$SUITE-$ROOTFS_HASH.tar
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null 2>&1 || {
      [ "$(id -u)" = 0 ] || die "debootstrap is missing: sudo apt-get install debootstrap (or run as root)"
      say "installing debootstrap"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
    }
    [ "$(id -u)" = 0 ] || die "debootstrap needs root: sudo make images"
    mkdir -p "$CACHE"
    work=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    # debootstrap mounts /proc and /sys in the target: never remove through a mount.
    cleanup() {
      awk -v w="$work" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l
      rm -rf --one-file-system "$work"
    }
    trap cleanup EXIT
    say "debootstrap $SUITE (minbase) from $MIRROR"
    started=$SECONDS
    debootstrap --variant=minbase "$SUITE" "$work" "$MIRROR" > "$CACHE/debootstrap.log" 2>&1 \
      || { tail -n 30 "$CACHE/debootstrap.log"; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
    # What the official slim images do too: no docs, man pages or translations in any layer,
    # no recommended packages, apt's lists dropped after each install.
    cat > "$work/etc/dpkg/dpkg.cfg.d/ctflow-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' > "$work/etc/apt/apt.conf.d/90ctflow-slim"
    printf 'deb %s %s main\ndeb %s %s-updates main\n' "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" > "$work/etc/apt/sources.list"
    # No services started by package scripts inside a build (there is no init system).
    printf '#!/bin/sh\nexit 101\n' > "$work/usr/sbin/policy-rc.d"
    chmod +x "$work/usr/sbin/policy-rc.d"
    rm -rf "$work"/var/lib/apt/lists/* "$work"/var/cache/apt/*.bin "$work"/var/cache/apt/archives/*.deb \
           "$work"/usr/share/doc/*/[!c]* "$work"/usr/share/man/* "$work"/usr/share/locale/*/ "$work"/var/log/*.log
    tar --numeric-owner --one-file-system -C "$work" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    cleanup
    trap - EXIT
    say "debootstrap: $((SECONDS - started)) s, $(du -m "$tarball" | cut -f1) MB tarball ($tarball)"
  fi
  say "importing $DEBIAN_IMAGE"
  docker import --change "LABEL $LABEL=$ROOTFS_HASH" --change 'CMD ["bash"]' \
    --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$tarball" "$DEBIAN_IMAGE" >/dev/null
  say "$DEBIAN_IMAGE: $(size_of "$DEBIAN_IMAGE")"
fi

# --- 2. the derived images -------------------------------------------------------------------
# The certificate authorities this host trusts beyond Debian's bundle (a site's TLS-inspecting
# proxy, an internal package index), for the Python base only: ctflow's image build downloads
# uv and the locked wheels through it. Public certificates, no secrets; none is fine.
EXTRA_CA_DIR=${CTFLOW_EXTRA_CA_DIR:-/usr/local/share/ca-certificates}
extra_cas() { find "$EXTRA_CA_DIR" -maxdepth 1 -type f -name '*.crt' 2>/dev/null | sort; }

derive() {  # derive IMAGE DIR PARENT_IMAGE PARENT_HASH [EXTRA_FILE...]: build DIR/Dockerfile
  local image=$1 dir=$2 parent=$3 parent_hash=$4 hash started log context
  shift 4
  hash=$(recipe_hash "$parent_hash" $(find "$dir" -type f | sort) "$@")
  if up_to_date "$image" "$hash"; then
    say "$image: up to date ($hash)"
    return
  fi
  say "building $image from $parent"
  started=$SECONDS
  context=$(mktemp -d)
  cp -a "$dir/." "$context/"
  mkdir -p "$context/ca-certificates"
  [ $# -eq 0 ] || cp "$@" "$context/ca-certificates/"
  log=$CACHE/build-$(basename "$dir").log
  # --network host: apt reaches the mirror as this host does (no registry involved).
  docker build --force-rm --network host --build-arg "BASE_IMAGE=$parent" --label "$LABEL=$hash" -t "$image" "$context" \
    > "$log" 2>&1 || { rm -rf "$context"; tail -n 30 "$log"; die "building $image failed (log: $log)"; }
  rm -rf "$context"
  say "$image: $((SECONDS - started)) s, $(size_of "$image")"
}

mapfile -t cas < <(extra_cas)
derive "$PYTHON_IMAGE" "$HERE/python" "$DEBIAN_IMAGE" "$ROOTFS_HASH" "${cas[@]}"
derive "$POSTGRES_IMAGE" "$HERE/postgres" "$DEBIAN_IMAGE" "$ROOTFS_HASH"
derive "$REDIS_IMAGE" "$HERE/redis" "$DEBIAN_IMAGE" "$ROOTFS_HASH"

cat <<EOF
==> offline base images ready. Use them (in .env, or the environment of docker compose):
PYTHON_IMAGE=$PYTHON_IMAGE
POSTGRES_IMAGE=$POSTGRES_IMAGE
REDIS_IMAGE=$REDIS_IMAGE
EOF
