"""slamkit.train package."""
