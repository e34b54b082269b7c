"""Render and lint a Helm chart with Helm's own engine (the Go SDK, from the
helm-python-sdk package on PyPI; no cluster is contacted). For the tests:
    python helm-render.py <<< '{"chart": DIR, "lint": CASE, "cases": {"NAME": CASE}}'
where a CASE is {"values_file": FILE (as helm -f), "values": {overrides}},
prints {"lint": REPORT, "cases": {"NAME": {"manifests": {PATH: YAML}} or
{"error": TEXT}}} as JSON. Lint is strict (warnings count)."""
import json
import sys

import helm_python as helm

def merged(base, over):
    out = dict(base)
    for k, v in (over or {}).items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def values(case):
    """A case's values: its values file (as `helm -f`), then its overrides."""
    v = {}
    if case.get("values_file"):
        with open(case["values_file"]) as f:
            v = helm.values_from_yaml(f.read())
    return merged(v, case.get("values"))


req = json.load(sys.stdin)
out = {"sdk": helm.helm_sdk_version(), "cases": {}}
out["lint"] = helm.lint(req["chart"], values(req.get("lint", {})), strict=True,
                        namespace="kube-system")
with helm.Chart.load(req["chart"]) as chart:
    for name, case in req["cases"].items():
        try:
            out["cases"][name] = {"manifests": chart.render(
                values(case), name=case.get("release", "egb"),
                namespace=case.get("namespace", "kube-system"),
                is_install=True)}
        except helm.HelmError as e:
            out["cases"][name] = {"error": str(e)}
json.dump(out, sys.stdout)
