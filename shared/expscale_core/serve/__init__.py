"""Serve: retrieval, ranking and formatting of experiences, and the usage credit they earn."""
