"""The secured OpenSearch node's pins and security configuration (scripts/nodes.py), pure parts."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

nodes = sys.modules["ecsmh_test_servers"].nodes


def test_the_security_plugin_is_pinned_to_the_nodes_exact_version() -> None:
    node, plugin = nodes.secured_os_pins()
    assert node.kind == "opensearch"
    assert node.coordinates.startswith("org.opensearch.distribution.integ-test-zip:opensearch:")
    assert plugin.coordinates == f"org.opensearch.plugin:opensearch-security:{node.version}.0:zip"
    assert plugin.version == f"{node.version}.0"


def test_users_roles_and_mappings_are_the_suites_own(tmp_path: Path) -> None:
    hashes = {"admin-user": "$2y$12$aaa", nodes.OS_WRITER_USERNAME: "$2y$12$bbb"}
    nodes.write_os_security_config(tmp_path, hashes, "admin-user")
    folder = tmp_path / "opensearch-security"
    users = yaml.safe_load((folder / "internal_users.yml").read_text())
    roles = yaml.safe_load((folder / "roles.yml").read_text())
    mapping = yaml.safe_load((folder / "roles_mapping.yml").read_text())
    assert users["_meta"] == {"type": "internalusers", "config_version": 2}
    assert {k: v["hash"] for k, v in users.items() if k != "_meta"} == hashes
    writer = roles[nodes.OS_WRITER_ROLE]
    assert writer["cluster_permissions"] == ["indices:data/write/bulk"]
    assert writer["index_permissions"] == [
        {
            "index_patterns": [nodes.OS_WRITER_INDEX_PATTERN],
            "allowed_actions": nodes.OS_WRITER_INDEX_PERMISSIONS,
        }
    ]
    assert set(roles) == {"_meta", nodes.OS_WRITER_ROLE}  # no demo roles
    assert mapping["all_access"]["users"] == ["admin-user"]
    assert mapping[nodes.OS_WRITER_ROLE]["users"] == [nodes.OS_WRITER_USERNAME]


def test_the_node_settings_use_the_suites_certificates_and_init_the_security_index() -> None:
    settings = nodes.os_security_settings()
    assert settings["plugins.security.ssl.http.enabled"] is True
    assert settings["plugins.security.ssl.http.pemtrustedcas_filepath"] == "certs/ca.crt"
    assert settings["plugins.security.allow_default_init_securityindex"] is True
    assert not any("demo" in str(v) for v in settings.values())
