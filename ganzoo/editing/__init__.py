"""Inversion and editing: project real images into a run's latent space, latent arithmetic, discovered directions."""
