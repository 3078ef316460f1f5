"""Deploying a model trained by the local provider: its model card gains the eval results, and
with ``deploy.target: ollama`` it is exported to GGUF and served by Ollama.

Called by the deploy stage; once the lockfile points at the new deployment, the previous
deployment's Ollama model is removed when the new one lives under another name or host (or
no longer on Ollama at all).
"""

from __future__ import annotations

from levcustom.config.models import ResolvedConfig
from levcustom.deploy.ollama import deploy, ollama_model, undeploy
from levcustom.providers.local.card import CardData, write_card
from levcustom.providers.local.provider import LocalProvider, merged_dir
from levcustom.spec.schema import ModelBody
from levcustom.state.lockfile import ModelState, OllamaDeployment
from levcustom.workspace import Workspace


def deploy_local(ws: Workspace, name: str, body: ModelBody, cfg: ResolvedConfig,
                 state: ModelState) -> OllamaDeployment | None:
    """Publish the evaluated model card; serve the model on Ollama when the spec asks. Returns the Ollama model."""
    train = state.train
    provider = LocalProvider(ws)
    card = CardData(model=name, base_model=body.base_model, method=body.method, dataset_sha256=state.dataset.sha256,
                    hyperparameters=provider.result_config(cfg), metrics=train.metrics,
                    eval_results={k: r.model_dump() for k, r in state.eval.results.items()})
    write_card(ws.root / train.model_ref, card)
    merged = merged_dir(ws, train.artifact_sha256)
    if merged.is_dir():
        write_card(merged, card)
    served = None
    if body.deploy.target == "ollama":
        target = body.deploy.ollama
        export = provider.export_gguf(train.model_ref, train.artifact_sha256, body.base_model, cfg, name=name,
                                      dtype=target.dtype)
        write_card(export.path.parent, card)
        model = ollama_model(target.model or name, target, export.path, export.chat_template, export.bos_token,
                             export.eos_token)
        served = deploy(model, target.host)
    return served


def retire_ollama(old: OllamaDeployment, served: OllamaDeployment | None) -> None:
    """Delete the previous deployment's Ollama model unless the new one replaced it in place."""
    if served is None or (old.host, old.model) != (served.host, served.model):
        undeploy(old)
