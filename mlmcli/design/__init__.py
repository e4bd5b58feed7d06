"""The model lmer builds from a formula and a data frame (lme4's lFormula), in layers that import
one way: checks (rank and scale of X) and factors at the bottom, then transforms (evaluating the
formula's variables), frame (the model frame), matrices (model.matrix), random (mkReTrms), and
build (the whole design)."""

from mlmcli.design.build import Design, build_design, check_finite
from mlmcli.design.checks import (
    SCALE_WARNING,
    FixedEffects,
    check_residual_df,
    fixed_effects,
    fixed_effects_of_sums,
    gram_clearly_full_rank,
    pivoted_rank,
    scale_warning,
    scale_warning_of_sums,
    scales_differ,
)
from mlmcli.design.factors import Column, drop_unused, value_labels
from mlmcli.design.frame import ModelArguments, model_frame, total_offset
from mlmcli.design.matrices import contrast_codes, model_matrix
from mlmcli.design.random import ReTerm, check_levels
from mlmcli.design.transforms import ScaleParameters, evaluate, scale_calls, uses_group_means

__all__ = [
    "SCALE_WARNING",
    "Column",
    "Design",
    "FixedEffects",
    "ModelArguments",
    "ReTerm",
    "ScaleParameters",
    "build_design",
    "check_finite",
    "check_residual_df",
    "check_levels",
    "contrast_codes",
    "drop_unused",
    "evaluate",
    "fixed_effects",
    "fixed_effects_of_sums",
    "gram_clearly_full_rank",
    "model_frame",
    "model_matrix",
    "pivoted_rank",
    "scale_calls",
    "scale_warning",
    "scale_warning_of_sums",
    "scales_differ",
    "total_offset",
    "uses_group_means",
    "value_labels",
]
