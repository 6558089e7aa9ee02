"""econsim: LLM agents as the citizens and government of a simulated economy."""

__version__ = "0.1.0"
