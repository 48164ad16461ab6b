"""Trajet: keeps a French travel-order NER model fresh."""

__version__ = "0.1.0"
