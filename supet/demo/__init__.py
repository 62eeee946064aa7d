"""The end-to-end demo story (``supet demo``): see :mod:`supet.demo.story`."""

from supet.demo.story import DemoOptions, DemoResult, run_demo

__all__ = ["DemoOptions", "DemoResult", "run_demo"]
