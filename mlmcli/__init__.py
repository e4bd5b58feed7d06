"""mlm: linear mixed-effects models from the command line, with lme4's numbers."""

__version__ = "0.1.0"
