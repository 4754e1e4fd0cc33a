#!/usr/bin/env python3
"""Independent oracle for the golden vectors: writes each case's plain inputs and the bytes Go's
encoding/json would emit for them, using Python's json module (same compact separators, short
escapes for \\b \\f \\n \\r \\t, \\u00XX for other control characters, raw UTF-8 otherwise)
plus Go's HTML-safe escaping of < > & and U+2028/U+2029. Nothing here shares code with the Rust
core, so a golden test that passes is two implementations agreeing.

Run from this directory: python3 oracle.py  (rewrites *.inputs.json and *.expected)
                     or: python3 oracle.py --check  (exit 1 naming each file that differs;
                         tests/tests/golden.rs runs this, so the files are always the oracle's)
"""
import base64
import hashlib
import json
import sys

OS = {"operating_system": "linux", "arch": "amd64", "binary_version": "0.1.0",
      "golang_version": "rustc 1.95.0"}
BASE = "http://localhost:1885/api/v3"


def go_json(value):
    s = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        s = s.replace(ch, esc)
    return s.encode("utf-8")


def uid(elements):
    return base64.b64encode(hashlib.sha512("".join(e + ":" for e in elements).encode()).digest()).decode()


def entities(gw_total, plans, ed_total, active, apps, std, admin, orgs):
    return {
        "gateways": {"total": gw_total,
                     "gateways_by_frequency_plan_id": dict(sorted(plans.items(), key=lambda kv: kv[0].encode()))},
        "end_devices": {"total": ed_total, "activate_end_devices": dict(zip(
            ["total", "last_day", "last_week", "last_month"], active))},
        "applications": {"total": apps},
        "accounts": {"users": {"standard": std, "admin": admin}, "organizations": {"total": orgs}},
    }


M = 2**64 - 1
CASES = {
    "spec_example": (["foo", "bar"], None, OS, entities(
        2, {"US_902_928_FSB_2": 1, "US_902_928_FSB_1": 1}, 5, (4, 1, 2, 3), 1, 3, 1, 0)),
    "empty_plan_map": (["https://eu1.cloud.thethings.example/api/v3"], None, OS, entities(
        3, {}, 0, (0, 0, 0, 0), 0, 0, 1, 0)),
    "plan_needs_escaping": (["a"], None, OS, entities(
        9, {"<script>alert(1)</script>": 1, "A&B": 2, "quote\"back\\slash": 3, "line\u2028para\u2029": 4,
            "ctl\u0001\u001f\b\f\n\r\t": 5, "EU_863_870": 9, "Zürich": 1, "東京_920_923": 2, "🛰": 1},
        10, (3, 1, 2, 3), 1, 1, 1, 1)),
    "u64_max_counts": (["max"], None, OS, entities(
        M, {"AS_923": M, "EU_863_870_TTN": M}, M, (M, M, M, M), M, M, M, M)),
    "non_ascii_text": (["Ünïcødé", "日本語", "emoji 🚀"], None,
                       {"operating_system": "linux", "arch": "arm64", "binary_version": "0.1.0-ß",
                        "golang_version": "rustc 1.95.0 (Ωmega)"},
                       entities(1, {"AU_915_928_FSB_2": 1}, 1, (1, 0, 1, 1), 1, 0, 1, 0)),
    "default_console_urls": ([BASE] * 5, None, OS, entities(0, {}, 0, (0, 0, 0, 0), 0, 0, 0, 0)),
    "empty_elements_mixed": (["", "only-this", ""], None, OS, entities(0, {}, 0, (0, 0, 0, 0), 0, 0, 0, 0)),
}
CLI_CASES = {
    "cli_report": ("0b6f1c2e-58a4-4c2d-9f3e-7a1b2c3d4e5f", {
        "operating_system": "darwin", "arch": "arm64", "binary_version": "3.30.1",
        "golang_version": "rustc 1.95.0"}, {
        "commands": [
            {"command_path": "ttn-lw-cli end-devices list", "execution_count": 12, "last_used_at": 1763700000},
            {"command_path": "ttn-lw-cli gateways create", "execution_count": 1, "last_used_at": 1763600000}],
        "aliases": [{"command_name": "end-devices", "alias": "dev", "usage_count": 7},
                    {"command_name": "gateways", "alias": "gtw", "usage_count": 1}]}),
    "cli_empty_usage": ("00000000-0000-4000-8000-000000000000", OS, {"commands": [], "aliases": []}),
    # What the reference ttn-lw-cli sends: its CLITelemetry struct has no fields.
    "cli_reference_form": ("3f2b8c1d-9e4a-4b7c-8d6e-5a4b3c2d1e0f", {
        "operating_system": "linux", "arch": "amd64", "binary_version": "3.34.0",
        "golang_version": "go1.23.4"}, {}),
}

def inputs_text(inputs):
    return (json.dumps(inputs, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


files = {}
for name, (elements, _, os_, counts) in CASES.items():
    inputs = {"uid_elements": elements, "os": os_, "entities_count": counts}
    report = {"uid": uid(elements), "os": os_, "cli": None, "entities_count": counts}
    files[f"{name}.inputs.json"] = inputs_text(inputs)
    files[f"{name}.expected"] = go_json(report)
for name, (u, os_, cli) in CLI_CASES.items():
    inputs = {"uid": u, "os": os_, "cli": cli}
    report = {"uid": u, "os": os_, "cli": cli, "entities_count": None}
    files[f"{name}.inputs.json"] = inputs_text(inputs)
    files[f"{name}.expected"] = go_json(report)

if sys.argv[1:] == ["--check"]:
    differ = []
    for path, want in sorted(files.items()):
        try:
            with open(path, "rb") as f:
                if f.read() != want:
                    differ.append(path)
        except FileNotFoundError:
            differ.append(path + " (missing)")
    for path in differ:
        print(f"differs from the oracle: {path}")
    print(f"oracle: {len(files) - len(differ)} of {len(files)} files agree")
    sys.exit(1 if differ else 0)
for path, data in files.items():
    with open(path, "wb") as f:
        f.write(data)
