"""smokegate: gate rolling deploys on environment smoke checks, roll back on failure."""

__version__ = "0.1.0"
