#!/bin/sh
# Build deploy/Containerfile with the first container tool that works here: docker, podman
# or buildah (`make image`). A tool "works" when its `info` answers (docker: the engine is
# reachable). Without one, say what each tool answered and exit 2.
#
# podman is first tried on an empty root filesystem (no image needed), and two failures of
# its defaults seen on this project's sandbox hosts are worked around, each said in one line:
# - crun refuses hybrid cgroups (v1 controllers plus a cgroup2 mount): runc is used instead
#   (podman --runtime runc); without runc installed, the fix is printed and the exit is 2;
# - a root container's default rlimits (nofile, nproc) exceed the host's hard limits, which
#   root cannot raise without CAP_SYS_RESOURCE: run and build get the hard limits (--ulimit).
#
# Environment: IMAGE (default rps-infer:latest), TARGET (cpu | gpu, default cpu),
# PYTHON_IMAGE (another python base, e.g. one made by deploy/debian-base.sh),
# CONTAINER_TOOL (skip the probe), TOOL_ONLY=1 (print the tool found and stop),
# RUN_COMMAND=1 (print the command that runs a container here, e.g. `podman --runtime runc
# run --ulimit ...`, and stop).
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

try_podman() {
    # What podman answers when asked to run a missing command in an empty root, with options
    # "$@": "... a command that was not found" means the runtime did create the container.
    root=$(mktemp -d)
    podman "$@" --rm --network none --rootfs "$root" /rps-infer-probe 2>&1 </dev/null || true
    rm -rf "$root"
}

# Options for podman itself (before the command, e.g. --runtime) and for run and build.
podman_options="" run_options=""
if [ "$tool" = podman ]; then
    # The hard limits, which root may set without CAP_SYS_RESOURCE; nproc at most
    # kernel.pid_max: podman's own nproc limit was that here (podman 4.3.1), and more
    # processes than that cannot exist anyway.
    hard() { awk -v limit="$1" 'index($0, limit) == 1 { print $(NF - 1) }' /proc/self/limits; }
    nofile=$(hard "Max open files") nproc=$(hard "Max processes") pid_max=$(cat /proc/sys/kernel/pid_max)
    if [ "$nproc" = unlimited ] || [ "$nproc" -gt "$pid_max" ]; then
        nproc=$pid_max
    fi
    for _ in 1 2 3; do
        answer=$(try_podman $podman_options run $run_options)
        case $answer in
            *"cgroups in hybrid mode not supported"*)
                if ! podman --runtime runc info >/dev/null 2>&1; then  # runc is not installed
                    echo "make image: podman's runtime crun does not support this host's hybrid cgroups (v1 with a cgroup2 mount): install runc (apt-get install runc) and run again, it is then used (podman --runtime runc)" >&2
                    exit 2
                fi
                podman_options="--runtime runc"
                echo "make image: crun does not support this host's hybrid cgroups: using podman --runtime runc" >&2 ;;
            *setrlimit*|*"setting rlimit"*)
                if [ -n "$run_options" ]; then
                    echo "make image: podman cannot set even the host's hard rlimits ($run_options): set default_ulimits under [containers] in /etc/containers/containers.conf to limits 'podman run' accepts here" >&2
                    exit 2
                fi
                run_options="--ulimit nofile=$nofile:$nofile --ulimit nproc=$nproc:$nproc"
                echo "make image: podman's default rlimits exceed this host's hard limits: using $run_options" >&2 ;;
            *) break ;;  # it works, or fails otherwise: the build then says how
        esac
    done
fi
if [ "${RUN_COMMAND:-}" = 1 ]; then
    echo "$tool $podman_options run $run_options" | tr -s ' ' | sed 's/ $//'
    exit 0
fi

set -- -f deploy/Containerfile --target "$TARGET" -t "$IMAGE"
if [ -n "${PYTHON_IMAGE:-}" ]; then
    set -- "$@" --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE"
fi
case $tool in
    # podman and buildah write OCI images by default, which have no HEALTHCHECK.
    # shellcheck disable=SC2086  # the options are words
    podman) podman $podman_options build $run_options --format docker "$@" . ;;
    buildah) buildah bud --format docker "$@" . ;;
    *) "$tool" build "$@" . ;;
esac

case $tool in
    buildah) size=$(buildah images --format '{{.Size}}' "$IMAGE") ;;
    *) size=$("$tool" image inspect --format '{{.Size}}' "$IMAGE") ;;
esac
echo "built $IMAGE ($TARGET) with $tool: $size bytes"
if [ -n "$podman_options$run_options" ]; then
    echo "run it here with: $(echo "podman $podman_options run $run_options" | tr -s ' ') ... $IMAGE"
fi
