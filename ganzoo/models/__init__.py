"""Model families. Importing this package registers every model."""

from . import dcgan  # noqa: F401
from . import progan  # noqa: F401
from . import stylegan  # noqa: F401
from . import stylegan2  # noqa: F401
