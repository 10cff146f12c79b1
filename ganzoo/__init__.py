"""ganzoo: advanced GAN architectures behind one registry and one trainer."""

__version__ = "0.1.0"

__all__ = ["__version__", "build_model", "list_models", "register_model"]


def __getattr__(name: str):
    """The registry's functions, imported on first use: ``ganzoo --help`` and ``--version`` never import torch."""
    if name in ("build_model", "list_models", "register_model"):
        from . import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'ganzoo' has no attribute {name!r}")
