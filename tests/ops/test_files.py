"""The ops files are each checked (issue 14 item 6): the licence, the systemd unit (with
``systemd-analyze verify`` where available, and a structural check always), the alert rules
(``promtool check rules``) and the dashboard's shape. The metric names they query are checked
against a running miner in ``test_deployment.py``."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "relayminer.service"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "relayminer.json"


def test_license_is_mit_as_pyproject_declares() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS"' in text
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == {"text": "MIT"}


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def test_systemd_unit_structure_and_sandboxing() -> None:
    unit = _unit()
    assert set(unit.sections()) == {"Unit", "Service", "Install"}
    service = unit["Service"]
    assert service["ExecStart"].endswith("relayminer run --config /etc/relayminer/miner.yaml")
    assert service["User"] == "relayminer"
    assert service["KillSignal"] == "SIGTERM"  # a clean stop, exit code 0
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "2"  # configuration errors: no restart loop
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictNamespaces": "yes",
        "RestrictSUIDSGID": "yes",
        "LockPersonality": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "UMask": "0077",
    }.items():
        assert service[key] == value, key
    assert unit["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point it at this checkout's entry point.
    entry = Path(sys.executable).parent / "relayminer"
    text = UNIT.read_text().replace("/opt/relayminer/.venv/bin/relayminer", str(entry))
    unit = tmp_path / "relayminer.service"
    unit.write_text(text)
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )
    assert proc.returncode == 0, proc.stderr
    ours = [line for line in proc.stderr.splitlines() if "relayminer.service" in line]
    assert ours == [], ours  # no unknown key, no bad value in our unit


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("RELAYMINER_REQUIRE_PROMTOOL"):
            pytest.fail("RELAYMINER_REQUIRE_PROMTOOL is set but promtool is not on PATH")
        pytest.skip("promtool not installed (Debian package prometheus)")
    return path


def test_alert_rules_pass_promtool() -> None:
    proc = subprocess.run(
        [_promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_alert_rules_cover_the_issue() -> None:
    doc = yaml.safe_load(ALERTS.read_text())
    rules = {r["alert"]: r for g in doc["groups"] for r in g["rules"]}
    wanted = {
        "RelayMinerStreamLagHigh": "ha_transport_redis_stream_lag",
        "RelayMinerPendingGrowing": "ha_transport_redis_pending_messages",
        "RelayMinerRelaysDeadLettered": "ha_miner_relays_dead_lettered_total",
        "RelayMinerLeaseFlapping": "ha_miner_supplier_lease_owned",
        "RelayMinerClaimsFailing": "ha_miner_claims_failed_total",
        "RelayMinerProofsFailing": "ha_miner_proofs_failed_total",
        "RelayMinerSessionsFailed": "ha_miner_sessions",
        "RelayMinerStateLost": "ha_miner_state_lost_total",
        "RelayMinerLowBalance": "ha_miner_chain_balance_upokt",
        "RelayMinerStaleNode": "ha_miner_chain_block_age_seconds",
    }
    for alert, metric in wanted.items():
        assert metric in rules[alert]["expr"], alert
    for rule in rules.values():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]


def test_alert_rules_fire_as_intended(tmp_path: Path) -> None:
    """``promtool test rules``: a few series, and the alerts they must (and must not) raise."""
    tests = {
        "rule_files": [str(ALERTS)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'ha_transport_redis_stream_lag{supplier="a"}',
                        "values": "20000x10",
                    },
                    {
                        "series": 'ha_miner_relays_dead_lettered_total{supplier="a",reason="x"}',
                        "values": "0 0 5 5 5",
                    },
                    {
                        "series": 'ha_miner_supplier_lease_owned{supplier="a",instance="r1"}',
                        "values": "1 0 1 0 1 0 1",
                    },
                    {
                        "series": 'ha_miner_sessions{supplier="a",state="proof_window_closed"}',
                        "values": "0 0 1 1",
                    },
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "6m",
                        "alertname": "RelayMinerStreamLagHigh",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning", "supplier": "a"},
                                "exp_annotations": {
                                    "summary": "relay stream of a is 20000 entries behind",
                                    "description": rules_description("RelayMinerStreamLagHigh"),
                                },
                            }
                        ],
                    },
                    {
                        "eval_time": "4m",
                        "alertname": "RelayMinerRelaysDeadLettered",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "supplier": "a",
                                    "reason": "x",
                                },
                                "exp_annotations": {
                                    "summary": "5 relays of a dead-lettered (x)",
                                    "description": rules_description(
                                        "RelayMinerRelaysDeadLettered"
                                    ),
                                },
                            }
                        ],
                    },
                    {
                        "eval_time": "6m",
                        "alertname": "RelayMinerLeaseFlapping",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning", "supplier": "a"},
                                "exp_annotations": {
                                    "summary": "lease of a changed owner 6 times in 15 min",
                                    "description": rules_description("RelayMinerLeaseFlapping"),
                                },
                            }
                        ],
                    },
                    {
                        "eval_time": "3m",
                        "alertname": "RelayMinerSessionsFailed",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "critical",
                                    "supplier": "a",
                                    "state": "proof_window_closed",
                                },
                                "exp_annotations": {
                                    "summary": "sessions of a ended in proof_window_closed",
                                    "description": rules_description(
                                        "RelayMinerSessionsFailed", supplier="a"
                                    ),
                                },
                            }
                        ],
                    },
                    {
                        "eval_time": "1m",
                        "alertname": "RelayMinerRelaysDeadLettered",
                        "exp_alerts": [],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "alerts_test.yml"
    path.write_text(yaml.safe_dump(tests))
    proc = subprocess.run(
        [_promtool(), "test", "rules", str(path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def rules_description(alert: str, **labels: str) -> str:
    doc = yaml.safe_load(ALERTS.read_text())
    rule = next(r for g in doc["groups"] for r in g["rules"] if r.get("alert") == alert)
    text: str = rule["annotations"]["description"]
    for name, value in labels.items():
        text = text.replace("{{ $labels." + name + " }}", value)
    return text


def test_dashboard_shape() -> None:
    doc = json.loads(DASHBOARD.read_text())
    assert doc["uid"] == "relayminer" and doc["title"] == "relayminer"
    names = [v["name"] for v in doc["templating"]["list"]]
    assert names == ["datasource", "supplier"]
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    graphs = [p for p in doc["panels"] if p["type"] == "timeseries"]
    assert len(graphs) >= 12
    for panel in graphs:
        assert panel["targets"] and all(t["expr"] for t in panel["targets"])
        assert panel["datasource"]["uid"] == "${datasource}"
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24
