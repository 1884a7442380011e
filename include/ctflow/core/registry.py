"""The MLflow model registry as ctflow uses it: versions with lineage, aliases, and their history.

Only aliases (``champion``, ``challenger``) are used; MLflow stages are deprecated. Every
change is idempotent so that Airflow retries and re-runs are safe:

* :meth:`ModelRegistry.register` finds the version a run already registered by its run key tag;
* :meth:`ModelRegistry.promote` is a compare-and-set against the holder the candidate was gated
  against, and a no-op for the version that already holds the alias;
* every change happens under a per-model :class:`~ctflow.core.registry_lock.RegistryLock` and
  re-reads the registry once the lock is held.

Every move is recorded in the alias history (:mod:`ctflow.core.registry_history`), written
ahead: the event is stored as ``pending``, the alias moves, the event is marked ``done``. The
next locked operation settles an event a crash left pending, and records alias changes made
outside ctflow, so history and aliases agree whenever ctflow changes an alias.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ctflow.contract import mlflow_tags
from ctflow.contract.results import AliasMove
from ctflow.core.registry_history import (
    as_change,
    encode_event,
    history_key,
    parse_events,
    rollback_target,
    utc_now,
)
from ctflow.core.registry_lock import FileRegistryLock, RegistryLock, RegistryLockTimeout, lock_for
from ctflow.exceptions import CtflowError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

__all__ = [
    "AliasMove", "FileRegistryLock", "GateFailedError", "ModelRegistry",
    "ModelVersionInfo", "NothingToRollBackError", "RegistryError", "RegistryLock", "RegistryLockTimeout",
]  # fmt: skip

log = logging.getLogger(__name__)


_LOGGED_MODEL_URI = re.compile(r"models:/(m-[0-9a-f]+)/?")


class RegistryError(CtflowError):
    """A registry operation was refused or cannot be done."""


class GateFailedError(RegistryError):
    """The version failed its gate and must not hold an alias."""


class NothingToRollBackError(RegistryError):
    """The alias has no earlier holder to go back to."""


@dataclass(frozen=True)
class ModelVersionInfo:
    """A registered model version, as plain data (XCom-serializable with :meth:`to_dict`)."""

    name: str
    version: str
    run_id: str | None
    source: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)

    @property
    def gate(self) -> str | None:
        """The gate outcome recorded on the version (``passed``/``failed``), if any."""
        return self.tags.get(mlflow_tags.GATE)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelVersionInfo:
        return cls(**data)

    @classmethod
    def from_mlflow(cls, mv: ModelVersion) -> ModelVersionInfo:
        return cls(
            mv.name, str(mv.version), mv.run_id or None, mv.source or "", dict(mv.tags or {}), list(mv.aliases or [])
        )


_UNCHECKED: Any = object()  # expected_current of moves that do not compare (set_challenger)


class ModelRegistry:
    """
    One registered model: idempotent registration, compare-and-set alias moves, and history.

    :param model_name: the registered model; created on first change.
    :param tracking_uri: MLflow tracking URI; default :func:`ctflow.settings.mlflow_tracking_uri`.
    :param lock: serializes changes across processes; default :func:`~ctflow.core.registry_lock.lock_for`:
        a PostgreSQL advisory lock when ``$CTFLOW_LOCK_URL`` is set (production, many hosts), else a
        :class:`FileRegistryLock` under ``$CTFLOW_HOME/locks`` (the embedded single-host setup).
    """

    def __init__(self, model_name: str, *, tracking_uri: str | None = None, lock: RegistryLock | None = None) -> None:
        from mlflow import MlflowClient

        from ctflow import settings

        self.model_name = model_name
        self.tracking_uri = tracking_uri or settings.mlflow_tracking_uri()
        self.lock = lock or lock_for()
        self.client: MlflowClient = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        self._model_exists = False

    # -- versions ------------------------------------------------------------------------

    def register(
        self, model_uri: str, *, run_key: str, run_id: str, tags: dict[str, str] | None = None
    ) -> ModelVersionInfo:
        """
        Register ``model_uri`` as a new version tagged ``ctflow.run_key=run_key`` plus ``tags``.

        Idempotent per ``run_key``: if a version carries it already (a retry or re-run), that
        version is returned unchanged, tags included.
        """
        if not run_key:
            raise RegistryError("register needs a run_key (e.g. 'dag_id/run_id') so retries find their version")
        if found := self._find_by_run_key(run_key):
            return found
        with self._locked():
            # Again under the lock: a concurrent attempt may have registered it meanwhile.
            if found := self._find_by_run_key(run_key):
                return found
            source, source_run, model_id = model_uri, run_id or None, None
            if match := _LOGGED_MODEL_URI.fullmatch(model_uri):
                # Resolved here because MLflow's store resolves `models:/<id>` with a client on
                # the *global* tracking URI, which need not be this registry's.
                model_id = match.group(1)
                logged = self.client.get_logged_model(model_id)
                source, source_run = logged.artifact_location, source_run or logged.source_run_id
            all_tags = {**{k: str(v) for k, v in (tags or {}).items()}, mlflow_tags.RUN_KEY: run_key}
            mv = self.client.create_model_version(
                self.model_name, source, run_id=source_run, tags=all_tags, model_id=model_id
            )
            log.info("Registered %s version %s for run %s", self.model_name, mv.version, run_key)
            return ModelVersionInfo.from_mlflow(mv)

    def get_version(self, version: str | int) -> ModelVersionInfo:
        """The given version; :class:`RegistryError` if the model has no such version."""
        from mlflow.exceptions import MlflowException

        try:
            return ModelVersionInfo.from_mlflow(self.client.get_model_version(self.model_name, str(version)))
        except MlflowException as err:
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            raise RegistryError(
                f"registered model {self.model_name!r} has no version {version}: check the version in the MLflow UI"
            ) from err

    def versions(self) -> list[ModelVersionInfo]:
        """Every version of the model, oldest first (empty if it was never registered)."""
        found = self.client.search_model_versions(f"name = '{self.model_name}'")
        return sorted((ModelVersionInfo.from_mlflow(mv) for mv in found), key=lambda v: int(v.version))

    def alias_version(self, alias: str) -> ModelVersionInfo | None:
        """The version holding ``alias``, or None."""
        holder = self._aliases().get(alias)
        return self.get_version(holder) if holder else None

    def champion(self) -> ModelVersionInfo | None:
        """The version holding ``champion``, or None."""
        return self.alias_version("champion")

    def tag_version(self, version: str | int, tags: dict[str, str], *, run_id: str | None = None) -> None:
        """Set ``tags`` on ``version`` and, if given, on its MLflow run (``run_id``): e.g. a human's approval."""
        for key, value in tags.items():
            self.client.set_model_version_tag(self.model_name, str(version), key, value)
        if run_id:
            for key, value in tags.items():
                self.client.set_tag(run_id, key, value)

    # -- alias moves -----------------------------------------------------------------------

    def promote(
        self,
        version: str | int,
        *,
        alias: str = "champion",
        reason: str,
        actor: str,
        expected_current: str | int | None,
        still_wins: Callable[[ModelVersionInfo | None], bool] | None = None,
        run_key: str | None = None,
        request_reason: str | None = None,
    ) -> AliasMove:
        """
        Point ``alias`` at ``version`` if it still points at ``expected_current``.

        ``reason`` is why (the gate's reason); ``request_reason``, what the requester said (a
        trigger's ``conf.reason``): both are recorded in the alias history, side by side.

        ``expected_current`` is the holder the candidate was gated against (None: no holder).
        If another run moved the alias since, ``still_wins(current_holder)`` decides (called
        under the lock, so keep it cheap: compare tags); without it the move is refused. A
        refusal, or a version that already holds the alias, returns ``moved=False``.

        :raises GateFailedError: the version is tagged ``ctflow.gate=failed``.
        """
        version = str(version)
        with self._locked():
            aliases, _ = self._settle(alias)
            current = aliases.get(alias)
            candidate = self.get_version(version)
            if candidate.gate == "failed":
                raise GateFailedError(
                    f"version {version} of {self.model_name!r} failed its gate ({mlflow_tags.GATE}=failed) and "
                    f"cannot become {alias}: retrain, or register a version that passes the gate"
                )
            if current == version:
                return self._unmoved(alias, version, current, actor, "already holds", run_key)
            expected = None if expected_current in (None, _UNCHECKED) else str(expected_current)
            if expected_current is not _UNCHECKED and current != expected:
                holder = self.get_version(current) if current else None
                if still_wins is None or not still_wins(holder):
                    why = "does not beat it" if still_wins else "was not compared with it"
                    return self._unmoved(
                        alias, version, current, actor,
                        f"{alias} moved from {expected or 'no holder'} to {current or 'no holder'} since the candidate "
                        f"was gated, and the candidate {why}: re-gate it against the current {alias}", run_key,
                    )  # fmt: skip
            return self._move(alias, version, current, action="promote", actor=actor, reason=reason, run_key=run_key,
                              request_reason=request_reason or None)

    def set_challenger(self, version: str | int, *, reason: str, actor: str, run_key: str | None = None,
                       request_reason: str | None = None) -> AliasMove:
        """Point ``challenger`` at ``version`` (shadow/canary candidates), whoever held it."""
        return self.promote(version, alias="challenger", reason=reason, actor=actor, expected_current=_UNCHECKED,
                            run_key=run_key, request_reason=request_reason)

    def retire(self, alias: str = "challenger", *, reason: str, actor: str, run_key: str | None = None) -> AliasMove:
        """Remove ``alias`` (recorded in history); a no-op if nothing holds it."""
        with self._locked():
            aliases, _ = self._settle(alias)
            current = aliases.get(alias)
            if current is None:
                return self._unmoved(alias, None, None, actor, "no holder", run_key, action="retire")
            return self._move(alias, None, current, action="retire", actor=actor, reason=reason, run_key=run_key)

    def rollback(self, *, alias: str = "champion", reason: str, actor: str, run_key: str | None = None) -> AliasMove:
        """
        Move ``alias`` back to the holder before the current one, recording the rollback.

        Repeated rollbacks walk further back along earlier holders, skipping versions rolled
        back from (until explicitly promoted again), versions since deleted or gate-failed.
        With ``run_key``, a retry of a rollback that already happened returns it (``moved=False``).

        :raises NothingToRollBackError: no earlier holder qualifies.
        """
        with self._locked():
            aliases, events = self._settle(alias)
            if run_key and (done := [e for e in events if e.action == "rollback" and e.run_key == run_key]):
                return replace(done[-1], moved=False, reason="already rolled back by this run")
            current = aliases.get(alias)
            target = rollback_target(events, current, usable=self._usable)
            if target is None:
                raise NothingToRollBackError(
                    f"{alias} of {self.model_name!r} (now {current or 'no holder'}) has no earlier holder to roll back "
                    f"to ({len(events)} recorded moves): promote a version explicitly instead"
                )
            return self._move(alias, target, current, action="rollback", actor=actor, reason=reason, run_key=run_key)

    def history(self, alias: str | None = None) -> list[AliasMove]:
        """Completed alias moves, oldest first; only those of ``alias`` if given."""
        model = self._registered_model()
        events = parse_events(model.tags if model else {})
        return [as_change(e) for _, e in events if e.get("state") == "done" and alias in (None, e["alias"])]

    # -- internals -------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self.lock.hold(self.model_name):
            self._ensure_model()
            yield

    def _ensure_model(self) -> None:
        from mlflow.exceptions import MlflowException

        if self._model_exists or self._registered_model() is not None:
            self._model_exists = True
            return
        try:
            self.client.create_registered_model(
                self.model_name, description="Managed by ctflow: change aliases with ctflow to keep their history."
            )
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":  # lost a race: fine
                raise
        self._model_exists = True

    def _registered_model(self) -> Any | None:
        """The MLflow ``RegisteredModel`` (aliases and tags), or None before the first change."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_registered_model(self.model_name)
        except MlflowException as err:
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            return None

    def _aliases(self) -> dict[str, str]:
        model = self._registered_model()
        return {a: str(v) for a, v in model.aliases.items()} if model else {}

    def _find_by_run_key(self, run_key: str) -> ModelVersionInfo | None:
        name_lit, key_lit = _literal(self.model_name), _literal(run_key)
        if name_lit:
            condition = f" and tags.`{mlflow_tags.RUN_KEY}`={key_lit}" if key_lit else ""
            found = self.client.search_model_versions(f"name={name_lit}{condition}")
        else:  # a name no filter literal can hold: scan everything (never seen in practice)
            found = self.client.search_model_versions()
        # Exact match in Python as well, since the filter may have been dropped or widened.
        matches = [
            mv for mv in found if mv.name == self.model_name and (mv.tags or {}).get(mlflow_tags.RUN_KEY) == run_key
        ]
        # Several only if versions were created without ctflow's lock: the oldest is the one.
        return ModelVersionInfo.from_mlflow(min(matches, key=lambda mv: int(mv.version))) if matches else None

    def _usable(self, version: str) -> bool:
        try:
            return self.get_version(version).gate != "failed"
        except RegistryError:  # deleted since it held the alias
            return False

    def _settle(self, alias: str) -> tuple[dict[str, str], list[AliasMove]]:
        """Under the lock: settle events a crash left pending, record changes made outside ctflow.

        Returns the current aliases and the completed moves of ``alias``, oldest first.
        """
        model = self._registered_model()
        if model is None:
            self._model_exists = False
            raise RegistryError(f"registered model {self.model_name!r} was deleted while ctflow was changing it: retry")
        aliases = {a: str(v) for a, v in model.aliases.items()}
        events, last_seq = [], 0
        for seq, event in parse_events(model.tags):
            last_seq = seq
            if event.get("state") == "pending":
                # Nobody else holds the lock, so this move was interrupted: keep it if it happened.
                if aliases.get(event["alias"]) == event["version"]:
                    self._write_event(seq, event, "done")
                else:
                    self.client.delete_registered_model_tag(self.model_name, history_key(seq))
                    continue
            if event["alias"] == alias:
                events.append(as_change(event))
        self._next_seq = last_seq + 1
        recorded = events[-1].version if events else None
        if aliases.get(alias) != recorded:
            external = AliasMove(
                alias, aliases.get(alias), recorded, utc_now(), "unknown (outside ctflow)",
                "alias was changed outside ctflow (e.g. in the MLflow UI); recorded when ctflow next changed it",
                True, "external",
            )  # fmt: skip
            self._write_event(self._take_seq(), external, "done")
            events.append(external)
        return aliases, events

    def _move(self, alias: str, version: str | None, previous: str | None, **what: Any) -> AliasMove:
        change = AliasMove(alias, version, previous, utc_now(), moved=True, **what)
        seq = self._take_seq()
        self._write_event(seq, change, "pending")
        if version is None:
            self.client.delete_registered_model_alias(self.model_name, alias)
        else:
            self.client.set_registered_model_alias(self.model_name, alias, version)
        self._write_event(seq, change, "done")
        log.info(
            "%s of %s: %s -> %s (%s by %s: %s)",
            alias, self.model_name, previous, version, change.action, change.actor, change.reason,
        )
        return change

    def _unmoved(
        self,
        alias: str,
        version: str | None,
        current: str | None,
        actor: str,
        why: str,
        run_key: str | None,
        action: str = "promote",
    ) -> AliasMove:
        log.info("%s of %s not moved to %s: %s", alias, self.model_name, version, why)
        return AliasMove(alias, version, current, utc_now(), actor, why, False, action, run_key)

    def _take_seq(self) -> int:
        seq, self._next_seq = self._next_seq, self._next_seq + 1
        return seq

    def _write_event(self, seq: int, event: AliasMove | dict[str, Any], state: str) -> None:
        self.client.set_registered_model_tag(self.model_name, history_key(seq), encode_event(event, state))


def _literal(value: str) -> str | None:
    """``value`` as a string literal of MLflow's filter grammar, which has no escapes."""
    return next((f"{q}{value}{q}" for q in "'\"" if q not in value), None)
