"""adhoc: population-based ad hoc coordination with language-model policies.

Python API (the heavy modules load on first use, so ``import adhoc`` stays light):

    import adhoc
    result = adhoc.crossplay(["runs/pop"], episodes=64)   # -> adhoc.crossplay.CrossPlayResult
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "crossplay":
        import importlib

        return importlib.import_module("adhoc.crossplay")
    raise AttributeError(f"module 'adhoc' has no attribute {name!r}")
