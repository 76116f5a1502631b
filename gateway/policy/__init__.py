"""Decisions: rules judge facts handed to them; chains say which rules run and what a hit does."""
