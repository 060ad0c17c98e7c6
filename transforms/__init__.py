"""wirestream's pipeline stages: one public composite per module."""
