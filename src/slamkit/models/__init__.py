"""slamkit.models package."""
