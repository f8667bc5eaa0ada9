"""slamkit.data package."""
