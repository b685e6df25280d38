"""The engine's worker threads.

pyarrow's compute kernels and hash group-by release the GIL but use one core per call, so the
engine splits its largest passes into pieces run here.  Two workers: the machines this runs on
(a PEM's node share, a laptop) have few cores to spare for a query."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

WORKERS = min(2, os.cpu_count() or 1)
#: None on a single core, where splitting only adds a merge
POOL: ThreadPoolExecutor | None = (ThreadPoolExecutor(WORKERS, thread_name_prefix="pxl-exec")
                                   if WORKERS > 1 else None)
