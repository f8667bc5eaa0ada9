"""slamkit: train, evaluate and serve speech/audio/music LLMs.

An audio encoder feeds a small trainable projector whose outputs are spliced into a causal LLM
fine-tuned with LoRA (the SLAM-LLM recipe). See DESIGN.md in the shared docs and README.md.
"""

__version__ = "0.1.0"
