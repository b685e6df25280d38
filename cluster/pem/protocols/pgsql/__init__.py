"""PostgreSQL: infer (is it a frontend's first message), frames (bytes -> messages), stitch (-> pgsql_events)."""

from cluster.pem.protocols.pgsql.frames import PgMessage, PgParser
from cluster.pem.protocols.pgsql.infer import infer
from cluster.pem.protocols.pgsql.stitch import PgsqlStitcher

__all__ = ["PgMessage", "PgParser", "PgsqlStitcher", "infer"]
