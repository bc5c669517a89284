"""Both overlays render with `kubectl kustomize`, keep every rule of ours, schemas included, and pass
checkov's generic checks, skipping only the checks deploy/checkov.yaml gives a reason for."""

import re
import socket

import manifest_rules
import pytest


@pytest.mark.parametrize("overlay", manifest_rules.OVERLAYS)
def test_overlay_renders_and_keeps_every_rule(rendered, overlay):
    violations = manifest_rules.check(rendered[overlay], production=overlay == "prod")
    assert violations == [], "\n".join(map(str, violations))


@pytest.mark.parametrize("overlay", manifest_rules.OVERLAYS)
def test_overlay_passes_checkovs_checks(checkov_found, overlay):
    assert checkov_found[overlay] == [], "\n".join(map(str, checkov_found[overlay]))


def test_each_check_skipped_says_why_beside_the_skip():
    lines = manifest_rules.CHECKOV_CONFIG.read_text().splitlines()
    skips = [index for index, line in enumerate(lines) if re.fullmatch(r"\s*- CKV_K8S_\d+", line)]
    assert sorted(lines[index].strip()[2:] for index in skips) == ["CKV_K8S_15", "CKV_K8S_35", "CKV_K8S_43"]
    for index in skips:
        assert lines[index - 1].strip().startswith("#") and len(lines[index - 1]) > 40, lines[index]


def test_a_skipped_check_still_fails_without_its_skip(rendered, tmp_path, monkeypatch):
    """The skips are what hide the three kinds: checkov itself still reports them on prod."""
    config = tmp_path / "checkov.yaml"
    config.write_text(re.sub(r"(?m)^skip-check:\n(\s+(#.*|- .*)\n)+", "", manifest_rules.CHECKOV_CONFIG.read_text()))
    monkeypatch.setattr(manifest_rules.checkov_runner, "CHECKOV_CONFIG", config)
    found = {v.rule for v in manifest_rules.checkov({"prod": rendered["prod"]})["prod"]}
    assert found == {"CKV_K8S_15", "CKV_K8S_35", "CKV_K8S_43"}


def test_overlays_render_what_the_rules_expect(rendered):
    for overlay, resources in rendered.items():
        kinds = {(r["kind"], r["metadata"]["name"]) for r in resources}
        assert {("Deployment", name) for name in manifest_rules.COMMANDS} <= kinds, overlay
        assert {("CronJob", name) for name in manifest_rules.MAINTENANCE_JOBS} <= kinds, overlay
        assert ("Ingress", "bobdesk") in kinds, overlay
        assert not any(kind == "Secret" for kind, _ in kinds), overlay


def test_prod_runs_in_production_mode_and_dev_does_not(rendered):
    settings = {overlay: next(r for r in resources if r["kind"] == "ConfigMap")["data"]
                for overlay, resources in rendered.items()}
    assert settings["prod"]["ENV"] == "production"
    assert settings["dev"]["ENV"] == "development"


def test_schema_validation_works_offline(rendered, monkeypatch):
    """kubernetes-validate reads the schemas it bundles: no network needed, none used."""
    def no_network(*args, **kwargs):
        raise AssertionError("schema validation tried to use the network")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    assert manifest_rules.check(rendered["prod"], production=True, only=["schema"]) == []


def deployment(**container_fields):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}},
                                  "spec": {"containers": [{"name": "c", "image": "i:1", **container_fields}]}}}}


def test_schema_rule_refuses_unknown_fields_wrong_types_and_kinds(monkeypatch):
    assert manifest_rules.check([deployment()], production=False, only=["schema"]) == []
    typo = manifest_rules.check([deployment(imagePolicy="Always")], production=False, only=["schema"])
    assert typo and all("imagePolicy" in v.message for v in typo), typo
    wrong_type = manifest_rules.check([deployment(ports=[{"containerPort": "http"}])], production=False,
                                      only=["schema"])
    assert wrong_type and all("containerPort" in v.message for v in wrong_type), wrong_type

    monitor = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "x"}}
    assert [v.rule for v in manifest_rules.check([monitor], production=False, only=["schema"])] == ["schema"]
    # A CRD passes only when the validator is told to skip its kind, explicitly.
    monkeypatch.setattr(manifest_rules.model, "SKIP_SCHEMA_KINDS", frozenset({"ServiceMonitor"}))
    assert manifest_rules.check([monitor], production=False, only=["schema"]) == []


def test_command_line_reports_both_overlays(capsys, monkeypatch, checkov_found):
    # checkov's findings from the session's run (the same overlays): one start of checkov is enough.
    monkeypatch.setattr(manifest_rules.cli, "checkov", lambda named: {name: checkov_found[name] for name in named})
    assert manifest_rules.main([]) == 0
    out = capsys.readouterr().out
    assert "overlays/dev: ok" in out and "overlays/prod: ok" in out
