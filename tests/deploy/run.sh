#!/usr/bin/env bash
# Renders and checks the Helm chart, the kustomize manifests and the Dockerfile
# (tests/deploy/check.py). Keeps its Python packages in a venv under the CI cache, reinstalled
# when requirements.txt changes. Needs kubectl (for `kubectl kustomize`) and the debug binary:
# CAIRN_BIN, else $CARGO_TARGET_DIR/debug/cairn.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${CAIRN_CI_CACHE:-/var/cache/cairn}"
venv="$cache/deploy-venv"
mkdir -p "$cache"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
hash=$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)
if [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$hash" ]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  echo "$hash" > "$venv/.requirements"
fi
if ! command -v kubectl >/dev/null 2>&1; then
  echo "kubectl is needed for \`kubectl kustomize\`" >&2
  exit 1
fi
exec "$venv/bin/python" "$here/check.py" "$@"
