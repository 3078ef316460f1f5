"""Every shipped example plans offline, with no credentials: what the README tells users to try works."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import PROJECT

EXAMPLES = ["examples/leviathan/specs", "examples/cai/specs", "examples/local-qlora-dpo-ollama", "examples/bedrock",
            "examples/evals", "examples/openai"]
SECRETS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    for folder in ("conf", "examples", "evals", "specs"):
        if (PROJECT / folder).is_dir():
            shutil.copytree(PROJECT / folder, root / folder)
    return root


@pytest.mark.parametrize("folder", EXAMPLES)
def test_example_plans_offline_without_credentials(project, folder):
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    proc = subprocess.run([sys.executable, "-m", "levcustom.cli", "plan", folder, "--detailed-exitcode", "-C",
                           str(project)], capture_output=True, text=True, timeout=300, env={**env, "COLUMNS": "200"})
    assert proc.returncode == 2, proc.stdout + proc.stderr  # changes pending, no error
    assert "to add, 0 to change" in proc.stdout and "Traceback" not in proc.stderr
