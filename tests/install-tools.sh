#!/usr/bin/env bash
# Installs what the end-to-end tests use besides Rust, on a machine that lacks it:
#   * Apache Kafka's jars from Maven Central (tests/kafka/fetch.sh, cached under ~/.cache);
#   * the independent Standard Webhooks verifiers (Python `standardwebhooks` from PyPI, and
#     the npm `standardwebhooks` under ~/.cache/herald-npm);
#   * schemathesis (PyPI, pinned) in its own virtualenv under ~/.cache/herald-py, to check the
#     running API against its OpenAPI document;
#   * kcat (a Kafka client that is not Herald's, for records written straight to Kafka) and
#     promtool (`promtool check metrics`), from Debian's packages `kcat` and `prometheus`;
#     a TTF font (`fonts-dejavu-core`) for herald-load's PNG charts.
# Idempotent: what is there already is left alone. .ci/run calls it before the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/kafka/fetch.sh >/dev/null

if ! python3 -c 'import standardwebhooks' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check standardwebhooks
fi

SCHEMATHESIS_VENV="${HERALD_SCHEMATHESIS_VENV:-$HOME/.cache/herald-py/schemathesis}"
if ! "$SCHEMATHESIS_VENV/bin/schemathesis" --version 2>/dev/null | grep -q '4.32.5'; then
  python3 -m venv "$SCHEMATHESIS_VENV"
  timeout 600 "$SCHEMATHESIS_VENV/bin/pip" install --quiet --disable-pip-version-check schemathesis==4.32.5
fi

NPM_PREFIX="${HERALD_NPM_PREFIX:-$HOME/.cache/herald-npm}"
if [ ! -f "$NPM_PREFIX/node_modules/standardwebhooks/package.json" ]; then
  mkdir -p "$NPM_PREFIX"
  timeout 300 npm install --prefix "$NPM_PREFIX" --no-audit --no-fund --silent standardwebhooks@1.1.1 >/dev/null
fi

missing=()
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  # The prometheus package would start a Prometheus service; keep it from starting.
  created=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    created=1
  fi
  echo "install-tools.sh: installing ${missing[*]} (apt-get)" >&2
  $SUDO timeout 600 apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO timeout 900 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -z "$created" ] || $SUDO rm -f /usr/sbin/policy-rc.d
fi
