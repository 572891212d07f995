import os

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def load_script(name: str):
    """scripts/<name>.py as a module (the scripts are not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def text_observations(monkeypatch):
    """PettingZoo 1.27's ``api_test`` compares each observation's ``dtype`` with its space's, which fails on a
    gymnasium ``Text`` space's observations (str, as ``Text.sample()`` gives too: no ``dtype``); for Text spaces
    this checks the type instead. ``api_test``'s other checks run as they are."""
    import importlib

    from gymnasium.spaces import Text

    module = importlib.import_module("pettingzoo.test.api_test")  # pettingzoo.test.api_test is the function
    original = module._test_observation_space_compatibility

    def compatible(expected, seen, recursed_keys):
        if isinstance(expected, Text):
            assert isinstance(seen, str) and expected.contains(seen)
        else:
            original(expected, seen, recursed_keys)

    monkeypatch.setattr(module, "_test_observation_space_compatibility", compatible)
