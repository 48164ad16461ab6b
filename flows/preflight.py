"""Checks that run first, so a night that cannot succeed fails in seconds with what to do, before a snapshot
is taken or a GPU is held."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE


@task(name="preflight-base-model", cache_policy=NO_CACHE)
def base_preflight_task(
    preset: str | None, config: dict[str, Any] | None, *, gpu_pool: bool = False, warm_start: bool = False
) -> str:
    """Can training load its base here? `gpu_pool`: training runs on the gpu pool's deployment, where the
    `auto` preset means the GPU default (camembert-base), whatever this CPU host would pick. The worker's
    TRAJET_TRAIN_* environment is read here: both workers must share it (infra/env.example)."""
    from trajet import base, train_config

    if warm_start:
        return "warm start from the champion's weights: no base model to resolve"
    name = train_config.GPU_DEFAULT_PRESET if gpu_pool and preset in (None, "", "auto") else (preset or "auto")
    cfg = train_config.config_for(name, config or None)
    return f"base model {base.check_base_available(cfg.base_model)}"
