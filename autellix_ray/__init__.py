"""autellix-ray: program-aware LLM serving for AI agents on Ray Serve and vLLM."""

__version__ = "0.1.0"
