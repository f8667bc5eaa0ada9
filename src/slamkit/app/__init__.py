"""Applications built on the library: the demo (main job), its report, and benchmarks."""
