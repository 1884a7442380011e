"""The ctflow spec: models, loading with file:line errors, JSON Schema. Light to import."""

from ctflow.spec.errors import Problem, SpecError
from ctflow.spec.load import load_spec, parse_spec
from ctflow.spec.models import PipelineSpec

__all__ = ["PipelineSpec", "Problem", "SpecError", "load_spec", "parse_spec"]
