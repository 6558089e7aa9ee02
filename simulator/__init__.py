"""econsim: LLM agents as the citizens and government of a simulated economy."""

from simulator import _legacy

__version__ = "0.2.0"

_legacy.install()  # econsim 0.1 module paths, with a DeprecationWarning (until 0.3)
