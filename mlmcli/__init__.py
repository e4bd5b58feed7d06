"""mlm: linear mixed-effects models from the command line and from Python, with lme4's numbers.

The Python API (documented in docs/api.md)::

    import mlmcli
    fit = mlmcli.lmer("Reaction ~ Days + (Days | Subject)", df)   # a DataFrame or a path
    print(fit.summary())
    mlmcli.compare(m0, fit)

`lmer`, `compare`, `LmerFit` and `MlmWarning` live in mlmcli.api and are imported on first use, so
that `import mlmcli` (and the command's start-up) stays cheap.
"""

import sys
import types

__version__ = "0.1.0"
__all__ = ["LmerFit", "MlmWarning", "__version__", "compare", "lmer"]

_API = ("lmer", "compare", "LmerFit", "MlmWarning")


def __getattr__(name: str) -> object:
    if name in _API:
        from mlmcli import api

        value = getattr(api, name)
        _Package.__setattr__(sys.modules[__name__], name, value, _api=True)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> "list[str]":
    return sorted(set(globals()) | set(_API))


class _Package(types.ModuleType):
    """The package, whose API names stay the API's: importing the statistics module mlmcli.compare
    would otherwise rebind `mlmcli.compare` to that module (the import system sets a package's
    attribute for each submodule); code reaches the module through `from mlmcli.compare import ...`."""

    def __setattr__(self, name: str, value: object, _api: bool = False) -> None:
        if name in _API and not _api and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
