"""adhoc: population-based ad hoc coordination with language-model policies."""

__version__ = "0.1.0"
