"""Refine: merge, supersede, decay, cap and repair the store so that it stays accurate."""

from expscale_core.refine.refiner import Refiner, RefineReport

__all__ = ["RefineReport", "Refiner"]
