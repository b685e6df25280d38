"""MySQL/MariaDB: infer (greeting or first command), frames (bytes -> packets), stitch (-> mysql_events)."""

from cluster.pem.protocols.mysql.frames import COMMAND_NAMES, Packet, PacketParser
from cluster.pem.protocols.mysql.infer import infer
from cluster.pem.protocols.mysql.stitch import MysqlStitcher

__all__ = ["COMMAND_NAMES", "MysqlStitcher", "Packet", "PacketParser", "infer"]
