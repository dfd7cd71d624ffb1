#!/bin/sh
# A python base image made from Debian's packages alone (debootstrap), for a machine that
# reaches Debian's mirror and PyPI but no image registry. Root, debootstrap and podman:
#   sudo deploy/debian-base.sh && PYTHON_IMAGE=localhost/debian-python:bookworm make image
# HOST_CA=1 also trusts this host's extra CAs (/usr/local/share/ca-certificates), which a
# TLS-inspecting proxy needs for pip inside the build.
set -eu

NAME=${NAME:-localhost/debian-python:bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$root" "$MIRROR"
if [ "${HOST_CA:-}" = 1 ]; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates
fi
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | podman import --change 'CMD ["/bin/bash"]' - "$NAME"
echo "imported $NAME"
