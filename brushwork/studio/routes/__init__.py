"""The studio's routes, one router per area; ``create_app`` includes them all.

Each reaches the :class:`~brushwork.studio.service.Studio` through the ``StudioDep`` dependency
(:mod:`.dependencies`) and declares its JSON bodies as the models of :mod:`brushwork.studio.schemas`.
"""

from __future__ import annotations

from brushwork.studio.routes import gallery, jobs, library, pages, sweeps

#: In the order /docs lists them.
ROUTERS = (jobs.router, sweeps.router, library.router, gallery.router, pages.router)
