"""brushwork: an AI art studio."""

from brushwork.api import stylize
from brushwork.errors import BrushworkError

__version__ = "0.1.0"
__all__ = ["BrushworkError", "__version__", "stylize"]
