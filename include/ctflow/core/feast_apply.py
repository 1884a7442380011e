"""Apply a set of Feast objects to a registry that other people's objects share.

A repository's registry may hold objects from several authors: the demo's bootstrap, a team's
``feast apply`` of its own views beside them. An author applies its objects tagged with its
name (:data:`OWNER_TAG`) and, on later applies, removes only objects carrying its own tag that it
no longer declares: it never deletes what someone else registered (Feast's ``feast apply``
would, since it deletes whatever the files it reads do not declare).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

#: Tag naming who applied an object; :func:`apply_owned` removes only its own owner's stale objects.
OWNER_TAG = "ctflow.owner"


def apply_owned(repo: Path, objects: list[Any], *, owner: str, config: Path | None = None) -> dict[str, Any]:
    """Apply ``objects`` (Feast entities, sources, views, services) as ``owner``; delete ``owner``'s objects that
    are registered but no longer in ``objects``; leave every other object alone.

    :return: ``{"applied": n, "removed": [names], "services": [all registered feature services]}``.
    """
    from feast import FeatureStore

    for item in objects:
        item.tags = {**(item.tags or {}), OWNER_TAG: owner}
    store = FeatureStore(repo_path=str(repo), fs_yaml_file=config or repo / "feature_store.yaml")
    declared = {(type(o).__name__, o.name) for o in objects}
    stale = [o for o in registered(store)
             if (o.tags or {}).get(OWNER_TAG) == owner and (type(o).__name__, o.name) not in declared]
    store.apply(objects, objects_to_delete=stale, partial=not stale)
    return {"applied": len(objects), "removed": sorted(o.name for o in stale),
            "services": sorted(s.name for s in store.list_feature_services())}


def declared_objects(module: Any) -> list[Any]:
    """The Feast objects a definitions module declares at its top level (entities, sources, views, services)."""
    from feast import Entity, FeatureService, FeatureView
    from feast.data_source import DataSource

    kinds = (Entity, DataSource, FeatureView, FeatureService)
    return [value for value in vars(module).values() if isinstance(value, kinds)]


def registered(store: Any) -> list[Any]:
    """Every feature service, feature view, entity and data source in ``store``'s registry."""
    return [*store.list_feature_services(), *store.list_feature_views(), *store.list_entities(),
            *store.list_data_sources()]


def timed_apply(repo: Path, objects: list[Any], *, owner: str, config: Path | None = None) -> dict[str, Any]:
    """:func:`apply_owned` with its duration in ``seconds``."""
    started = time.perf_counter()
    result = apply_owned(repo, objects, owner=owner, config=config)
    return {**result, "seconds": round(time.perf_counter() - started, 1)}
