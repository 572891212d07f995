"""Ray for adhoc (``backend: ray``; docs/ray.md). Nothing here imports ray at import time: ``cluster`` imports it
when a command asks for the Ray backend, and says how to install it if it is missing.

- ``cluster``: join or start a Ray cluster from the ``ray`` config section, bounded and with one-line errors;
  the Ray options (CPUs, GPU fraction, retries) of one trial or worker.
- ``blocks``: cross-play pairs split into blocks with their own seeds, played in this process or on Ray actors
  that load the base model once and receive the adapters through the object store.
- ``adhoc.recipes.sweep``: every (config, seed) of a sweep as one Ray task.
"""
