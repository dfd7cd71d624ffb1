#!/bin/sh
# Build deploy/Containerfile with the first container tool that works here: docker, podman
# or buildah (`make image`). A tool "works" when its `info` answers (docker: the engine is
# reachable). Without one, say what each tool answered and exit 2.
#
# Environment: IMAGE (default rps-infer:latest), TARGET (cpu | gpu, default cpu),
# PYTHON_IMAGE (another python base, e.g. one made by deploy/debian-base.sh),
# CONTAINER_TOOL (skip the probe), TOOL_ONLY=1 (print the tool found and stop).
set -eu

cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-rps-infer:latest}
TARGET=${TARGET:-cpu}

probe() {
    # The first line of what `$1 info` printed on failure, or nothing when it works.
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "not installed"
        return 1
    fi
    if answer=$("$1" info 2>&1 >/dev/null </dev/null); then
        return 0
    fi
    echo "$answer" | grep -v '^[[:space:]]*$' | tail -n 1
    return 1
}

tool=${CONTAINER_TOOL:-}
if [ -z "$tool" ]; then
    why=""
    for candidate in docker podman buildah; do
        if reason=$(probe "$candidate"); then
            tool=$candidate
            break
        fi
        why="$why
  $candidate: $reason"
    done
    if [ -z "$tool" ]; then
        echo "make image: no working container tool (probed docker, podman, buildah with 'info'):$why" >&2
        exit 2
    fi
fi
if [ "${TOOL_ONLY:-}" = 1 ]; then
    echo "$tool"
    exit 0
fi

set -- -f deploy/Containerfile --target "$TARGET" -t "$IMAGE"
if [ -n "${PYTHON_IMAGE:-}" ]; then
    set -- "$@" --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE"
fi
case $tool in
    # podman and buildah write OCI images by default, which have no HEALTHCHECK.
    podman) podman build --format docker "$@" . ;;
    buildah) buildah bud --format docker "$@" . ;;
    *) "$tool" build "$@" . ;;
esac

case $tool in
    buildah) size=$(buildah images --format '{{.Size}}' "$IMAGE") ;;
    *) size=$("$tool" image inspect --format '{{.Size}}' "$IMAGE") ;;
esac
echo "built $IMAGE ($TARGET) with $tool: $size bytes"
