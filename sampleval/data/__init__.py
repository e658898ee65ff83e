"""Data sources, splits, label noise and the prepared-data contract."""
