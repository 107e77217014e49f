"""Versioned prompt texts, loaded as package data."""
