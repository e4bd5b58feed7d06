"""`mlm plot`: the pictures a multilevel analyst draws, written as PNG, SVG or PDF.

Each kind returns the numbers it plotted (JSON-ready), so a picture can be checked or redrawn
elsewhere; `--data-out` writes its main table as CSV. Importing this package loads neither
matplotlib nor pandas: draw() imports matplotlib when it draws.

  ranef        EB estimates of two random effects of one grouping factor (intercepts against slopes)
  caterpillar  each level's conditional mode with a 95% interval, sorted (lme4's dotplot of ranef)
  spaghetti    raw data of some groups, each with its least-squares line over its own x range, and the
               population line (fixed effects)
  fitted       the model-implied line of every group beside the population line (fixed effects)
  residuals    scaled residuals against fitted values and normal Q-Q plots
  profile      zeta against each parameter: the likelihood profiles behind `mlm confint`
  coef         the fixed effects with their Wald intervals, a forest plot (sjPlot's plot_model)
  effects      predictions of the fixed part on a grid of one or two predictors, with a 95% band
               (ggeffects' ggpredict)
  check        performance's check_model() panels: residuals, scale-location, Q-Q plots, residuals by
               group, influential groups (approximated)
  shrinkage    each group's own least-squares intercept and slope (lmList) against the model's (coef), an
               arrow from one to the other, and the population estimate: partial pooling

A GLMM (lme4's glmerMod) offers caterpillar, ranef, fitted and effects (on the response scale) and coef
(on the link scale).
"""

from mlmcli.render.plots.bysplit import MAX_BY
from mlmcli.render.plots.figure import build, draw
from mlmcli.render.plots.implied import CURVE_POINTS
from mlmcli.render.plots.normal import normal_quantiles, qq_line
from mlmcli.render.plots.options import GLMM_KINDS, KINDS, PlotOptions, check_family_kind, kept_rows
from mlmcli.render.plots.output import FORMATS, image_format, table_csv
from mlmcli.render.plots.sample import DEFAULT_GROUPS
from mlmcli.render.plots.style import MAX_LABELLED, PALETTE, THEMES

__all__ = [
    "CURVE_POINTS",
    "DEFAULT_GROUPS",
    "FORMATS",
    "GLMM_KINDS",
    "KINDS",
    "MAX_BY",
    "MAX_LABELLED",
    "PALETTE",
    "THEMES",
    "PlotOptions",
    "build",
    "check_family_kind",
    "draw",
    "image_format",
    "kept_rows",
    "normal_quantiles",
    "qq_line",
    "table_csv",
]
