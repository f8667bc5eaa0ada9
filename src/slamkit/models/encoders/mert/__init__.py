"""MERT: the music encoder (HF layout), its modules, and the ``mert`` registration."""
