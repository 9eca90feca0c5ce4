"""Validate custom resources the way the API server does, minus the server: structural defaults,
then the CRD's openAPIV3Schema (jsonschema), then its CEL rules (cel-python).

Order matters as on a real server: defaults are applied before validation, so CEL rules may read
defaulted fields (``self.mt.engine``).
"""

import copy
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml
from celpy.adapter import json_to_cel

ROOT = Path(__file__).resolve().parents[3]
CRD_DIR = ROOT / "crds"


def load_crds() -> dict[str, dict[str, Any]]:
    """CRDs by ``<group>/<kind>``."""
    crds = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            crds[f"{doc['spec']['group']}/{doc['spec']['names']['kind']}"] = doc
    return crds


def schema_of(crd: dict[str, Any], version: str = "v1alpha1") -> dict[str, Any]:
    ver = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    return dict(ver["schema"]["openAPIV3Schema"])


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    value = copy.deepcopy(value)
    if schema.get("type") == "object" and isinstance(value, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = apply_defaults(sub, value[name])
    elif schema.get("type") == "array" and isinstance(value, list) and "items" in schema:
        value = [apply_defaults(schema["items"], item) for item in value]
    return value


def _cel_errors(schema: dict[str, Any], value: Any, path: str) -> list[str]:
    errors: list[str] = []
    env = celpy.Environment()
    for rule in schema.get("x-kubernetes-validations") or []:
        program = env.program(env.compile(rule["rule"]))
        result = program.evaluate({"self": json_to_cel(value)})
        if not bool(result):
            errors.append(f"{path}: {rule.get('message', rule['rule'])}")
    if isinstance(value, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if name in value:
                errors += _cel_errors(sub, value[name], f"{path}.{name}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += _cel_errors(schema["items"], item, f"{path}[{i}]")
    return errors


def validate(obj: dict[str, Any], crds: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """Every error the API server would report for ``obj`` (empty: accepted)."""
    crds = crds or load_crds()
    group = obj["apiVersion"].split("/")[0]
    crd = crds[f"{group}/{obj['kind']}"]
    schema = schema_of(crd, obj["apiVersion"].split("/")[1])
    defaulted = apply_defaults(schema, obj)
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(defaulted)]
    if errors:
        return errors  # CEL on a structurally invalid object would fail for the wrong reason
    return _cel_errors(schema, defaulted, "")
