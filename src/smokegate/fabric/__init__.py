"""Fabric front end: the smoke, deploy, rollback and releases tasks (see tasks.py)."""
