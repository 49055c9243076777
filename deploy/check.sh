#!/usr/bin/env bash
# Checks everything under deploy/ that a machine can check:
#   * Prometheus configs, alert/recording rules and their unit tests (promtool);
#   * every alert has a firing and a silent test case and a runbook section;
#   * the Grafana dashboard: valid JSON, every panel has a PromQL query, every query parses;
#   * when the tools are present: the herald.toml examples load in the herald binary,
#     the Kubernetes manifests build with kustomize, the compose file is valid YAML.
#
# Usage (from anywhere; paths are resolved against the repository root):
#   deploy/check.sh
# Environment:
#   HERALD_BIN  herald binary used to validate the herald.toml examples
#               (default: target/release/herald, target/debug/herald, then `herald` on PATH).
#
# promtool comes from the Debian/Ubuntu package `prometheus`; when it is missing this script
# installs that package with apt-get (through sudo when not root), without starting the
# Prometheus service the package ships.

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PROM_DIR=deploy/prometheus
DASHBOARD=deploy/grafana/herald-dashboard.json
WORK="$(mktemp -d)"
POLICY_RC_CREATED=""

cleanup() {
  rm -rf "$WORK"
  if [[ -n "$POLICY_RC_CREATED" ]]; then
    ${SUDO:-} rm -f /usr/sbin/policy-rc.d || true
  fi
}
trap cleanup EXIT

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'check.sh: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------- promtool
install_promtool() {
  command -v apt-get >/dev/null 2>&1 || fail "promtool not found and apt-get is not available.
Install promtool yourself (it ships with every Prometheus release:
https://prometheus.io/download/) and put it on PATH."
  SUDO=""
  if [[ "$(id -u)" -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || fail "promtool not found; installing it needs root (apt-get install prometheus) and sudo is not available."
    SUDO=sudo
  fi
  # The package enables a Prometheus service listening on every interface; we only want its
  # promtool. A policy-rc.d that refuses service starts keeps it stopped during the install.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 0755 /usr/sbin/policy-rc.d
    POLICY_RC_CREATED=1
  fi
  step "Installing promtool (Debian package prometheus)"
  $SUDO timeout 600 apt-get update -qq || fail "apt-get update failed"
  $SUDO env DEBIAN_FRONTEND=noninteractive timeout 900 \
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
    || fail "apt-get install prometheus failed"
  command -v promtool >/dev/null 2>&1 || fail "the prometheus package did not provide promtool"
}

command -v promtool >/dev/null 2>&1 || install_promtool
command -v python3 >/dev/null 2>&1 || fail "python3 is required"
printf 'promtool: %s\n' "$(promtool --version 2>&1 | head -n1)"

# ---------------------------------------------------------------------------- Prometheus
step "promtool check config"
promtool check config "$PROM_DIR/prometheus.yml"
promtool check config "$PROM_DIR/prometheus.compose.yml"

step "promtool check rules"
promtool check rules "$PROM_DIR/alerts.yml"

step "promtool test rules"
promtool test rules "$PROM_DIR/alerts_test.yml"

step "Every alert has a firing test, a silent test and a runbook section"
python3 - "$PROM_DIR/alerts.yml" "$PROM_DIR/alerts_test.yml" deploy/runbooks.md <<'PY'
import re
import sys

rules_path, tests_path, runbooks_path = sys.argv[1:]
alerts = re.findall(r"^\s*-\s*alert:\s*(\S+)", open(rules_path).read(), re.M)
if not alerts:
    sys.exit(f"no alerts found in {rules_path}")

# Each `- alertname: X` block of the test file, up to the next one, holds either
# `exp_alerts: []` (a silent case) or a list of expected alerts (a firing case).
tests = open(tests_path).read()
firing, silent = set(), set()
blocks = re.split(r"^\s*-\s*alertname:\s*", tests, flags=re.M)[1:]
for block in blocks:
    name = block.split()[0]
    body = re.split(r"^\s*(?:-\s*interval:|promql_expr_test:|input_series:)", block, flags=re.M)[0]
    (silent if re.search(r"exp_alerts:\s*\[\]", body) else firing).add(name)

headings = set(re.findall(r"^##\s+(\S+)", open(runbooks_path).read(), re.M))
annotations = re.findall(r"runbook:\s*\"?deploy/runbooks\.md#(\S+?)\"?$", open(rules_path).read(), re.M)

problems = []
for alert in alerts:
    if alert not in firing:
        problems.append(f"{alert}: no test case where it fires")
    if alert not in silent:
        problems.append(f"{alert}: no test case where it stays silent")
    if alert not in headings:
        problems.append(f"{alert}: no '## {alert}' section in {runbooks_path}")
    if alert.lower() not in annotations:
        problems.append(f"{alert}: runbook annotation does not point at #{alert.lower()}")
for name in (firing | silent) - set(alerts):
    problems.append(f"{name}: tested but not defined in {rules_path}")
if problems:
    sys.exit("\n".join(problems))
print(f"{len(alerts)} alerts, each with firing and silent cases and a runbook: OK")
PY

# ---------------------------------------------------------------------------- Grafana
step "Dashboard JSON"
python3 -m json.tool "$DASHBOARD" >/dev/null
echo "valid JSON: $DASHBOARD"

step "Dashboard panels and queries"
python3 - "$DASHBOARD" "$WORK/dashboard_rules.yml" <<'PY'
import json
import re
import sys

path, rules_out = sys.argv[1:]
dash = json.load(open(path))

def walk(panels):
    for panel in panels:
        yield panel
        yield from walk(panel.get("panels", []))

problems, exprs, ids = [], [], set()
variables = {v["name"] for v in dash.get("templating", {}).get("list", [])}
for required in ("DS_PROMETHEUS", "endpoint"):
    if required not in variables:
        problems.append(f"template variable {required} missing")
if not 36 <= dash.get("schemaVersion", 0) <= 41:
    problems.append(f"schemaVersion {dash.get('schemaVersion')} outside 36..41")

panels = list(walk(dash.get("panels", [])))
for panel in panels:
    title = panel.get("title", "<untitled>")
    if panel.get("id") in ids:
        problems.append(f"duplicate panel id {panel.get('id')} ({title})")
    ids.add(panel.get("id"))
    if panel.get("type") == "row":
        continue
    targets = [t for t in panel.get("targets", []) if str(t.get("expr", "")).strip()]
    if not targets:
        problems.append(f"panel '{title}' has no target with an expr")
    if panel.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
        problems.append(f"panel '{title}' does not use the ${{DS_PROMETHEUS}} datasource")
    exprs += [(f"{title} [{t.get('refId')}]", t["expr"]) for t in targets]
for ann in dash.get("annotations", {}).get("list", []):
    if ann.get("expr"):
        exprs.append((f"annotation {ann.get('name')}", ann["expr"]))

# Turn Grafana's variables into something PromQL accepts, then let promtool parse every query
# as a recording rule.
def concrete(expr):
    expr = re.sub(r"\$__(rate_interval|interval|range)\b", "5m", expr)
    return re.sub(r"\$\{?(\w+)\}?", ".*", expr)

with open(rules_out, "w") as out:
    out.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, (where, expr) in enumerate(exprs):
        out.write(f"      # {where}\n      - record: dashboard:query_{i}\n")
        out.write(f"        expr: {json.dumps(concrete(expr))}\n")

if problems:
    sys.exit("\n".join(problems))
rows = sum(1 for p in panels if p.get("type") == "row")
print(f"{len(panels) - rows} panels in {rows} rows, {len(exprs)} queries, each panel with a query: OK")
PY
echo "parsing every dashboard query with promtool:"
promtool check rules "$WORK/dashboard_rules.yml"

# ---------------------------------------------------------------------------- optional
step "herald.toml examples (needs a herald binary)"
HERALD="${HERALD_BIN:-}"
if [[ -z "$HERALD" ]]; then
  for candidate in target/release/herald target/debug/herald "$(command -v herald || true)"; do
    if [[ -n "$candidate" && -x "$candidate" ]]; then HERALD="$candidate"; break; fi
  done
fi
if [[ -n "$HERALD" ]] && ! "$HERALD" --version >/dev/null 2>&1; then
  echo "skipped: $HERALD does not run (being rebuilt?)"
elif [[ -n "$HERALD" ]]; then
  python3 - deploy/kafka/k8s/configmap.yaml "$WORK/k8s-herald.toml" <<'PY'
import re
import sys

src, out = sys.argv[1:]
text = open(src).read()
block = text.split("herald.toml: |\n", 1)[1]
lines = []
for line in block.splitlines():
    if line.strip() and not line.startswith("    "):
        break
    lines.append(line[4:])
open(out, "w").write("\n".join(lines) + "\n")
PY
  # A clean environment: stray HERALD_* variables would change what is being checked.
  key="$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')"
  for pair in "deploy/kafka/herald.toml|deploy/kafka/herald.toml" \
    "$WORK/k8s-herald.toml|herald.toml in deploy/kafka/k8s/configmap.yaml"; do
    file="${pair%%|*}" name="${pair#*|}"
    env -i PATH="$PATH" HERALD_MASTER_KEY="$key" "$HERALD" --config "$file" topics plan >/dev/null \
      || fail "$name does not load in $HERALD"
    echo "loads in $HERALD: $name"
  done
else
  echo "skipped: no herald binary (set HERALD_BIN or build one)"
fi

step "Kubernetes manifests (needs kubectl)"
if command -v kubectl >/dev/null 2>&1; then
  kubectl kustomize deploy/kafka/k8s >"$WORK/k8s.yaml"
  echo "kustomize build: $(grep -c '^kind:' "$WORK/k8s.yaml") objects"
else
  echo "skipped: kubectl not found"
fi

step "YAML syntax of compose, k8s and Grafana provisioning files (needs PyYAML)"
if python3 -c 'import yaml' 2>/dev/null; then
  python3 - <<'PY'
import glob
import yaml

files = ["deploy/kafka/docker-compose.yml"] + sorted(
    glob.glob("deploy/kafka/k8s/*.yaml") + glob.glob("deploy/grafana/provisioning/*/*.yml"))
for f in files:
    docs = [d for d in yaml.safe_load_all(open(f)) if d is not None]
    assert docs, f"{f}: empty"
print(f"{len(files)} YAML files parse: OK")
PY
else
  echo "skipped: PyYAML not installed"
fi

printf '\nAll deploy checks passed.\n'
