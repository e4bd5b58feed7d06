"""mlm: linear mixed-effects models from the command line and from Python, with lme4's numbers.

The Python API (documented in docs/api.md)::

    import mlmcli
    fit = mlmcli.lmer("Reaction ~ Days + (Days | Subject)", df)   # a DataFrame or a path
    print(fit.summary())
    mlmcli.compare(m0, fit)

`lmer`, `compare`, `LmerFit` and `MlmWarning` live in mlmcli.api and are imported on first use, so
that `import mlmcli` (and the command's start-up) stays cheap.
"""

__version__ = "0.1.0"
__all__ = ["GlmerFit", "LmerFit", "MlmWarning", "__version__", "compare", "glmer", "lmer"]

_API = ("lmer", "glmer", "compare", "LmerFit", "GlmerFit", "MlmWarning")


def __getattr__(name: str) -> object:
    if name in _API:
        from mlmcli import api

        value = getattr(api, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> "list[str]":
    return sorted(set(globals()) | set(_API))
