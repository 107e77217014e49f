"""Operations: deletion, export and import, statistics and memory-quality figures."""
