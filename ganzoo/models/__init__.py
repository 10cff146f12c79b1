"""Model families. Importing this package registers every model."""

from . import dcgan, progan, stylegan, stylegan2  # noqa: F401
