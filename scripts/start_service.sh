#!/usr/bin/env bash
# Start the inference service from the project's .venv (created on first use).
# Every flag is forwarded to `rps-infer serve`, e.g.
#   scripts/start_service.sh --port 50053 --workers 2 --metrics-port 9100
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/rps-infer ] || make .venv/.installed-stamp
exec .venv/bin/rps-infer serve "$@"
