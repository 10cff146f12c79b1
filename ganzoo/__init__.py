"""ganzoo: advanced GAN architectures behind one registry and one trainer."""

__version__ = "0.1.0"

from .registry import build_model, list_models, register_model  # noqa: E402

__all__ = ["__version__", "build_model", "list_models", "register_model"]
