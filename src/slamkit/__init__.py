"""slamkit: train, evaluate and serve speech/audio/music LLMs.

An audio encoder feeds a small trainable projector whose outputs are spliced into a causal LLM
fine-tuned with LoRA (the SLAM-LLM recipe). See README.md, and docs/layout.md for the package map.
"""

__version__ = "0.1.0"
