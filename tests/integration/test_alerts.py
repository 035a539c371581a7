"""The alert rules (deploy/prometheus/alerts.yml): valid for Prometheus (`promtool check rules`),
firing and clearing as their unit tests say (`promtool test rules`), reading only metrics the
worker exports, and each telling the on-call which `secretmagic` command to run."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import typer
import yaml

from app.cli import app as cli
from app.observability.collector import StreamCollector
from app.observability.health import Health, HealthCollector
from app.observability.metrics import REGISTRY
from tests.debian import binary

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
METRIC = re.compile(r"\b(secretmagic_[a-z_]+?)(?:_bucket|_count|_sum)?\b")
COMMAND = re.compile(r"`secretmagic ([a-z]+)(?: ([a-z]+))?")
# The list, each by the rule that covers it.
REQUIRED = {"SecretmagicNoConsumer", "SecretmagicLagGrowing", "SecretmagicPendingTooOld",
            "SecretmagicDeadLettersGrowing", "SecretmagicOutboxNotDraining",
            "SecretmagicRedisDown", "SecretmagicStreamPaused", "SecretmagicConfigReloadRejected"}


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((RULES / "alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def exported() -> set[str]:
    """Every metric family name the worker's /metrics can carry."""
    names = {m.name for m in REGISTRY.collect()}
    names |= {m.name for m in StreamCollector._families().values()}
    names |= {m.name for m in HealthCollector(Health()).collect()}
    # Counters are exposed as <name>_total; prometheus_client names the family without it.
    return names | {f"{n}_total" for n in names}


def test_promtool_accepts_the_rules() -> None:
    promtool = binary("promtool", "prometheus")
    done = subprocess.run([promtool, "check", "rules", "alerts.yml"], cwd=RULES,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    promtool = binary("promtool", "prometheus")
    done = subprocess.run([promtool, "test", "rules", "alerts.test.yml"], cwd=RULES,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    tests = yaml.safe_load((RULES / "alerts.test.yml").read_text())["tests"]
    tested = {t["alertname"] for test in tests for t in test["alert_rule_test"]
              if t["exp_alerts"]}
    assert tested == {rule["alert"] for rule in rules()}, "every rule is seen firing"


def test_the_rules_read_only_what_the_worker_exports() -> None:
    names = exported()
    for rule in rules():
        used = set(METRIC.findall(rule["expr"]))
        assert used or "up{" in rule["expr"], rule["alert"]
        assert used <= names, f"{rule['alert']}: {used - names} is not exported"


def test_each_runbook_names_a_secretmagic_command_that_exists() -> None:
    assert {rule["alert"] for rule in rules()} >= REQUIRED
    root: Any = typer.main.get_command(cli)  # a command group: .commands by name
    for rule in rules():
        runbook = rule["annotations"]["runbook"]
        found = COMMAND.findall(runbook)
        assert found, f"{rule['alert']}'s runbook names no `secretmagic` command"
        for name, sub in found:
            command = root.commands.get(name)
            assert command is not None, f"{rule['alert']}: no command `secretmagic {name}`"
            if hasattr(command, "commands"):  # a group such as `dlq`
                assert sub in command.commands, f"{rule['alert']}: `secretmagic {name} {sub}`"
