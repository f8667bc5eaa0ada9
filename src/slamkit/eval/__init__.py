"""slamkit.eval package."""
