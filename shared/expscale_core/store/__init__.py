"""Experience stores: the port and its Qdrant implementation."""

from expscale_core.store.base import ExperienceStore, Vector
from expscale_core.store.qdrant import QdrantExperienceStore

__all__ = ["ExperienceStore", "QdrantExperienceStore", "Vector"]
