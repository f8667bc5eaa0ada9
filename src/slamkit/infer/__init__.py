"""slamkit.infer package."""
