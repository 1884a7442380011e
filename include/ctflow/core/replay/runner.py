"""The replay: every policy over the same steps and models, and the spec variants it may compare."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from ctflow.core.replay.bank import ModelBank
from ctflow.core.replay.frame import ReplayFrame
from ctflow.core.replay.policies import _run_ctflow, _run_fixed
from ctflow.core.replay.results import EVERY, NEVER, ReplayResult
from ctflow.core.replay.timeline import ReplayError, as_utc, make_steps
from ctflow.spec.durations import CalendarDuration

if TYPE_CHECKING:
    from ctflow.spec import PipelineSpec

#: Spec sections a what-if ctflow policy may change: none of them changes a trained model.
WHAT_IF_SECTIONS = ("schedule", "monitoring", "evaluation", "registry", "quality")


def replay(
    spec: PipelineSpec,
    data: ReplayFrame,
    *,
    start: datetime | date | str,
    end: datetime | date | str,
    every: timedelta | CalendarDuration,
    what_if: Mapping[str, tuple[PipelineSpec, Mapping[str, Any]]] | None = None,
    threads: int | None = 1,
) -> ReplayResult:
    """Replay ``never``, ``ctflow`` and ``every`` (plus what-if ctflow policies) over ``[start, end)``.

    :param data: from :func:`load_frame`; must cover ``[start - data.window, end)``.
    :param what_if: extra ctflow policies, name -> (spec variant, the overrides that made it,
        see :func:`override_spec`). A variant may only differ in :data:`WHAT_IF_SECTIONS`, so
        that its candidates are the same models as the others'.
    :param threads: OpenMP/BLAS threads for fitting and scoring. One by default: on a shared
        machine histogram gradient boosting spends most of a second thread spin-waiting.
    """
    started, cpu = time.perf_counter(), time.process_time()
    start, end = as_utc(start), as_utc(end)
    every = CalendarDuration.of(every)
    steps = make_steps(start, end, every)
    for variant_name, (variant, _) in (what_if or {}).items():
        _check_variant(spec, variant, variant_name)
    bank = ModelBank(spec, data)
    rows = [data.between(s.start, s.end) for s in steps]
    notes = []
    if spec.registry.strategy != "direct" or spec.registry.approval != "auto":
        notes.append(f"registry strategy {spec.registry.strategy!r} with {spec.registry.approval!r} approval is "
                     "replayed as direct, automatic promotion")
    import importlib
    from contextlib import nullcontext

    from threadpoolctl import threadpool_limits

    import ctflow.core.evaluation
    import ctflow.core.training  # noqa: F401

    # threadpoolctl limits only the libraries already loaded: load the estimator's OpenMP first.
    importlib.import_module(spec.model.estimator.rsplit(".", 1)[0])
    with threadpool_limits(limits=threads) if threads else nullcontext():
        policies = [
            _run_fixed(bank, steps, rows, retrain=False, name=NEVER),
            _run_ctflow(bank, spec, steps, rows),
            *[_run_ctflow(bank, variant, steps, rows, name=variant_name, overrides=overrides)
              for variant_name, (variant, overrides) in (what_if or {}).items()],
            _run_fixed(bank, steps, rows, retrain=True, name=EVERY),
        ]
    first = bank.train(steps[0].start).train_rows  # fitted already: every policy trains at step 0
    earliest = first[spec.data.timestamp].min() if len(first) else None
    first_start = spec.data.window.before(start)
    if earliest is not None and earliest > pd.Timestamp(first_start) + timedelta(days=1):
        notes.append(f"the first training window starts at {first_start:%Y-%m-%d} but its first row is at "
                     f"{earliest:%Y-%m-%d}: the first model trains on {len(first)} rows only")
    return ReplayResult(
        pipeline=spec.pipeline, task=spec.model.task, metric=spec.evaluation.metric, start=start, end=end,
        every=every, policies=policies, fits=bank.fits, notes=notes,
        seconds={"frame": round(data.seconds, 1), "fit": round(bank.fit_seconds, 1),
                 "fit_cpu": round(bank.fit_cpu_seconds, 1), "replay": round(time.perf_counter() - started, 1),
                 "replay_cpu": round(time.process_time() - cpu, 1)},
    )


def override_spec(spec: PipelineSpec, overrides: Mapping[str, Any], *, name: str = "<override>") -> PipelineSpec:
    """``spec`` with dotted keys replaced (``{"schedule.train": "@monthly"}``), validated like a file.

    Raises :class:`ctflow.spec.SpecError` naming the key when the result is not a valid spec.
    """
    import yaml

    from ctflow.spec import parse_spec

    data = spec.model_dump(mode="json", exclude_unset=False)
    for dotted, value in overrides.items():
        parts = str(dotted).split(".")
        node = data
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {} if node.get(part) is None else node[part]
            node = node[part]
            if not isinstance(node, dict):
                raise ReplayError(f"cannot set {dotted!r}: {part!r} is not a section")
        node[parts[-1]] = value
    return parse_spec(yaml.safe_dump(data, sort_keys=False), name)


def _check_variant(spec: PipelineSpec, variant: PipelineSpec, name: str) -> None:
    base = spec.model_dump(mode="json")
    other = variant.model_dump(mode="json")
    changed = sorted(k for k in base if base[k] != other[k] and k not in WHAT_IF_SECTIONS)
    if changed:
        raise ReplayError(
            f"what-if {name!r} changes {', '.join(changed)}: a what-if may only change "
            f"{', '.join(WHAT_IF_SECTIONS)} (other changes make other models; replay another spec with --spec)"
        )
