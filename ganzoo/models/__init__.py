"""Model families. Importing this package registers every model."""

from . import biggan, biggan_deep, dcgan, progan, sagan, stylegan, stylegan2, vit_vqgan, vq_prior, vqgan  # noqa: F401
