"""slamkit.models package.

Importing it registers the projectors that live outside ``projectors.py`` (they build on its classes,
so ``projectors.py`` cannot import them without a cycle).
"""

from slamkit.models import projector_hybrid as _projector_hybrid  # noqa: F401  (registers "hybrid")
