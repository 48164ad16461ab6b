"""Prefect flows: thin orchestration over `trajet` (which never imports prefect).

`ingest` validates and stores a batch, `nightly-retrain` keeps the champion fresh, `finetune` is the GPU
part alone so it can run on the `gpu` work pool. Stage modules are imported inside task bodies: loading a
flow (for `prefect deploy`, or a worker) must not pull in transformers or Great Expectations.
"""
