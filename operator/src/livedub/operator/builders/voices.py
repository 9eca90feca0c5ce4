"""The voices file (ConfigMap) and the reference-audio plumbing a pool's pods need.

The runtime reads one JSON file, ``{"name": {"language", "gender", "reference_audio"}}``, once at
start-up. Reference audio comes from a ConfigMap/Secret key (projected into the pod, no network) or
a URL (fetched by an init container into an emptyDir, because the runtime only reads paths).
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from livedub.operator import constants as c
from livedub.operator.builders.common import child_labels, metadata, voices_configmap_name
from livedub.operator.spec import VoiceSpec

MOUNTED_DIR = f"{c.REFERENCE_AUDIO_DIR}/mounted"
FETCHED_DIR = f"{c.REFERENCE_AUDIO_DIR}/fetched"
# Pinned, small, non-root by default; only used when a profile names a URL.
DEFAULT_FETCH_IMAGE = "curlimages/curl:8.11.1"


@dataclass(frozen=True)
class Voice:
    """A VoiceProfile resolved for one pool: its name and parsed spec."""

    name: str
    spec: VoiceSpec


def _audio_path(voice: Voice) -> str | None:
    ref = voice.spec.reference_audio
    if ref is None:
        return None
    base = FETCHED_DIR if ref.url else MOUNTED_DIR
    return f"{base}/{voice.name}.wav"


def voices_document(voices: list[Voice]) -> dict[str, dict[str, str]]:
    doc: dict[str, dict[str, str]] = {}
    for voice in sorted(voices, key=lambda v: v.name):
        entry = {"language": voice.spec.language, "gender": voice.spec.gender}
        path = _audio_path(voice)
        if path:
            entry["reference_audio"] = path
        doc[voice.name] = entry
    return doc


def voices_json(voices: list[Voice]) -> str:
    # sort_keys + fixed separators: the same profiles always give the same bytes and the same hash.
    return json.dumps(voices_document(voices), sort_keys=True, indent=2)


def voices_hash(voices: list[Voice]) -> str:
    return hashlib.sha256(voices_json(voices).encode()).hexdigest()[:16]


def build_voices_configmap(pool: str, namespace: str, voices: list[Voice]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(voices_configmap_name(pool), namespace, child_labels(pool, "voices")),
        "data": {"voices.json": voices_json(voices)},
    }


def reference_audio_volumes(voices: list[Voice]) -> list[dict[str, Any]]:
    """Volumes for reference audio: one projected volume for key refs, one emptyDir for URLs."""
    sources: list[dict[str, Any]] = []
    for voice in sorted(voices, key=lambda v: v.name):
        ref = voice.spec.reference_audio
        if ref is None:
            continue
        item = {"path": f"{voice.name}.wav"}
        if ref.config_map_key_ref:
            cm = ref.config_map_key_ref
            sources.append({"configMap": {"name": cm.name, "items": [{"key": cm.key, **item}]}})
        elif ref.secret_key_ref:
            sec = ref.secret_key_ref
            sources.append({"secret": {"name": sec.name, "items": [{"key": sec.key, **item}]}})
    volumes: list[dict[str, Any]] = []
    if sources:
        volumes.append({"name": "reference-audio", "projected": {"sources": sources}})
    if any(v.spec.reference_audio and v.spec.reference_audio.url for v in voices):
        volumes.append({"name": "reference-audio-fetched", "emptyDir": {"sizeLimit": "256Mi"}})
    return volumes


def reference_audio_mounts(volumes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    paths = {"reference-audio": MOUNTED_DIR, "reference-audio-fetched": FETCHED_DIR}
    return [{"name": v["name"], "mountPath": paths[v["name"]], "readOnly": True} for v in volumes]


def fetch_init_containers(voices: list[Voice], image: str = DEFAULT_FETCH_IMAGE) -> list[dict[str, Any]]:
    fetches = [
        (v.name, v.spec.reference_audio.url)
        for v in sorted(voices, key=lambda v: v.name)
        if v.spec.reference_audio and v.spec.reference_audio.url
    ]
    if not fetches:
        return []
    # One container, URLs passed as arguments (never interpolated into the shell script).
    script = 'set -eu; while [ "$#" -gt 0 ]; do curl -fsSL --retry 3 -o "$1" "$2"; shift 2; done'
    args: list[str] = []
    for name, url in fetches:
        args += [f"{FETCHED_DIR}/{name}.wav", str(url)]
    return [
        {
            "name": "fetch-reference-audio",
            "image": image,
            "command": ["sh", "-c", script, "fetch"],
            "args": args,
            "volumeMounts": [{"name": "reference-audio-fetched", "mountPath": FETCHED_DIR}],
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
                "runAsNonRoot": True,
                "runAsUser": c.RUNTIME_UID,
            },
        }
    ]
