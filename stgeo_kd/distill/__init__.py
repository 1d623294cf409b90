"""Distillation: loss terms, schedules, feature hooks and the objective that combines them.

See docs/distillation.md for the terms, their formulas and how to pick them from YAML.
"""

from stgeo_kd.distill.hooks import FeatureTap
from stgeo_kd.distill.losses import distill_objective, masked_loss
from stgeo_kd.distill.objective import (
    Objective,
    TermSpec,
    objective_from_config,
    parse_terms,
)
from stgeo_kd.distill.schedules import LRSchedule, Schedule
from stgeo_kd.distill.terms import TERMS, make_term

__all__ = [
    "TERMS",
    "FeatureTap",
    "LRSchedule",
    "Objective",
    "Schedule",
    "TermSpec",
    "distill_objective",
    "make_term",
    "masked_loss",
    "objective_from_config",
    "parse_terms",
]
