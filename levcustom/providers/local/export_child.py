"""Child process: merge a LoRA adapter into its base model and write one GGUF file.
Run as ``python -m levcustom.providers.local.export_child <request.json>``; writes the
request's ``output`` JSON with the GGUF path and the tokenizer's chat template and specials.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from levcustom.providers.local.job import LocalExportJob, write_json
from levcustom.providers.local.models import resolve_base_model


def export(job: LocalExportJob) -> dict:
    from transformers import AutoTokenizer

    from levcustom.providers.local.gguf_export import write_gguf
    from levcustom.providers.local.merge import merged_model

    model_dir = resolve_base_model(job.base_model, job.model_sources, Path(job.root))
    model = merged_model(model_dir, Path(job.root) / job.adapter, job.precision)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    config = json.loads((Path(model_dir) / "config.json").read_text())
    out = write_gguf(model.state_dict(), config, Path(model_dir), Path(job.gguf), name=job.name, dtype=job.dtype,
                     chat_template=tokenizer.chat_template)
    return {"gguf": str(out), "chat_template": tokenizer.chat_template, "bos_token": tokenizer.bos_token or "",
            "eos_token": tokenizer.eos_token or ""}


def main(argv: list[str]) -> int:
    job = LocalExportJob.model_validate_json(Path(argv[1]).read_text())
    write_json(Path(job.output), export(job))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main(sys.argv))
