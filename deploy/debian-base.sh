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
# No documentation, manual pages or translations (44 MB of the 173 MB), as in Debian's own
# -slim images: dpkg's path-exclude keeps them out of later installs; this one loses them
# here. The copyright files stay (the packages' licences ask for them).
cat > "$root/etc/dpkg/dpkg.cfg.d/slim" <<'END'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
END
find "$root/usr/share/doc" -mindepth 1 -not -type d -not -name copyright -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root"/usr/share/groff/* "$root"/usr/share/info/* "$root"/usr/share/linda/* \
    "$root"/usr/share/lintian/overrides/* "$root"/usr/share/locale/* "$root"/usr/share/man/*
if [ "${HOST_CA:-}" = 1 ]; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates
fi
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | podman import --change 'CMD ["/bin/bash"]' - "$NAME"
echo "imported $NAME"
