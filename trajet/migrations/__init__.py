"""Alembic migrations for the Trajet store; run them with `trajet db upgrade` (no alembic.ini needed)."""
