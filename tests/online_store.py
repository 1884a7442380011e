"""A Feast repository of the demo's definitions with its own registry and online store, for tests and benchmarks
of the online path: no materialization made elsewhere shows in it, and it writes nowhere else."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

SOURCE = Path(__file__).resolve().parents[1] / "feature_repo"


def fresh_repo(folder: Path, online_store: dict, source: Path = SOURCE) -> Path:
    """``folder`` as a Feast repository: ``source``'s configuration with ``online_store`` (a ``feature_store.yaml``
    mapping), and its definitions applied to a new file registry there (source data stays where it is)."""
    from feast import FeatureStore

    folder.mkdir(parents=True)
    config = yaml.safe_load((source / "feature_store.yaml").read_text())
    config.update(registry=str(folder / "registry.db"), online_store=online_store)
    (folder / "feature_store.yaml").write_text(yaml.safe_dump(config))
    loader = importlib.util.spec_from_file_location("ctflow_online_store_definitions", source / "feature_definitions.py")
    assert loader is not None and loader.loader is not None
    definitions = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(definitions)
    kinds = ("Entity", "FeatureView", "FeatureService")
    FeatureStore(repo_path=str(folder)).apply([v for v in vars(definitions).values() if type(v).__name__ in kinds])
    return folder
