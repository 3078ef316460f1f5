"""``plan`` must stay light: importing the CLI and planning loads no ML or provider SDK."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "trl", "peft", "openai", "anthropic", "bitsandbytes", "datasets", "boto3", "botocore")


def test_cli_import_and_plan_load_no_heavy_modules(repo):
    code = (
        "import sys\n"
        "from levcustom.cli import app\n"
        f"sys.argv = ['levcustom', 'plan', '-C', {str(repo.root)!r}]\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
        f"print('LOADED', [m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "Plan: 4 to add" in out
    assert out.strip().splitlines()[-1] == "LOADED []"
