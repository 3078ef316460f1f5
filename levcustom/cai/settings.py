"""``conf/cai/default.yaml`` (the ``cai`` config group), validated."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from levcustom.config.models import ResolvedConfig
from levcustom.providers.hosted import validated_settings

LOCAL_PREFIX = "local:"


class TokenPrice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0)
    output: float = Field(ge=0)


class CaiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    responder_model: str | None = None
    max_tokens: int = Field(512, ge=16, le=8192)
    concurrency: int = Field(8, ge=1, le=64)
    requests_per_minute: int = Field(300, ge=1)
    max_retries: int = Field(4, ge=0)
    timeout_s: float = Field(120.0, gt=0)
    prompt_caching: bool = True
    max_failed_fraction: float = Field(0.1, ge=0, le=1)
    price_per_1m_tokens: dict[str, TokenPrice] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_backend(self) -> CaiSettings:
        if self.responder_model is not None and self.responder_model.startswith(LOCAL_PREFIX) != self.local:
            raise ValueError("cai.model and cai.responder_model must both be local: models or both Claude models")
        return self

    @property
    def responder(self) -> str:
        return self.responder_model or self.model

    @property
    def local(self) -> bool:
        """A local model stands in for Claude (offline runs): ``local:<base model>``."""
        return self.model.startswith(LOCAL_PREFIX)


def cai_settings(config: ResolvedConfig) -> CaiSettings:
    return validated_settings(CaiSettings, config.cai, "conf/cai/default.yaml")
