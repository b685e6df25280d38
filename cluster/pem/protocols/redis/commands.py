"""Redis command names and argument signatures, for req_cmd and the JSON of req_args.

The signatures use the notation of the Redis command reference (redis.io/commands). As in Pixie, an
argument signature is understood only in three shapes, and a command whose signature has any other
part (upper-case tokens, alternatives, dashes) falls back to a JSON array of its arguments:

* ``key``                   a fixed argument: all lower-case letters and digits;
* ``[count]``               an optional argument of the same kind;
* ``key [key ...]`` / ``field value [field value ...]``  a list consuming the rest.

A command with no arguments in the table also renders its (unexpected) arguments as an array.
"""

from __future__ import annotations

from dataclasses import dataclass

FIXED, LIST, OPT = 0, 1, 2

# One command per line, "NAME|arg|arg". An alternative written with "|" inside an argument (NX|XX)
# splits into parts that are not lower-case names, so the command falls back to an array, which is
# exactly what the Redis reference syntax gives in Pixie's parser too.
_TABLE = """
ACL LOAD
ACL SAVE
ACL LIST
ACL USERS
ACL GETUSER|username
ACL SETUSER|username|[rule [rule ...]]
ACL DELUSER|username [username ...]
ACL CAT|[categoryname]
ACL GENPASS|[bits]
ACL WHOAMI
ACL LOG|[count or RESET]
ACL HELP
APPEND|key|value
AUTH|[username]|password
BGREWRITEAOF
BGSAVE|[SCHEDULE]
BITCOUNT|key|[start end]
BITOP|operation|destkey|key [key ...]
BITPOS|key|bit|[start]|[end]
BLPOP|key [key ...]|timeout
BRPOP|key [key ...]|timeout
BRPOPLPUSH|source|destination|timeout
BLMOVE|source|destination|LEFT|RIGHT|LEFT|RIGHT|timeout
BZPOPMIN|key [key ...]|timeout
BZPOPMAX|key [key ...]|timeout
CLIENT CACHING|YES|NO
CLIENT ID
CLIENT INFO
CLIENT KILL|[ip:port]|[ID client-id]
CLIENT LIST|[TYPE normal|master|replica|pubsub]
CLIENT GETNAME
CLIENT GETREDIR
CLIENT UNPAUSE
CLIENT PAUSE|timeout|[WRITE|ALL]
CLIENT REPLY|ON|OFF|SKIP
CLIENT SETNAME|connection-name
CLIENT SETINFO|attr|value
CLIENT TRACKING|ON|OFF
CLIENT TRACKINGINFO
CLIENT UNBLOCK|client-id|[TIMEOUT|ERROR]
CLIENT NO-EVICT|ON|OFF
CLUSTER ADDSLOTS|slot [slot ...]
CLUSTER COUNTKEYSINSLOT|slot
CLUSTER DELSLOTS|slot [slot ...]
CLUSTER FAILOVER|[FORCE|TAKEOVER]
CLUSTER FORGET|node-id
CLUSTER GETKEYSINSLOT|slot|count
CLUSTER INFO
CLUSTER KEYSLOT|key
CLUSTER MEET|ip|port
CLUSTER MYID
CLUSTER NODES
CLUSTER REPLICATE|node-id
CLUSTER RESET|[HARD|SOFT]
CLUSTER SAVECONFIG
CLUSTER SETSLOT|slot|IMPORTING|MIGRATING|STABLE|NODE
CLUSTER REPLICAS|node-id
CLUSTER SHARDS
CLUSTER SLOTS
COMMAND
COMMAND COUNT
COMMAND DOCS|[commandname [commandname ...]]
COMMAND GETKEYS
COMMAND INFO|command-name [command-name ...]
COMMAND LIST
CONFIG GET|parameter
CONFIG REWRITE
CONFIG SET|parameter|value
CONFIG RESETSTAT
COPY|source|destination|[DB destination-db]|[REPLACE]
DBSIZE
DEBUG OBJECT|key
DECR|key
DECRBY|key|decrement
DEL|key [key ...]
DISCARD
DUMP|key
ECHO|message
EVAL|script|numkeys|key [key ...]|arg [arg ...]
EVALSHA|sha1|numkeys|key [key ...]|arg [arg ...]
EXEC
EXISTS|key [key ...]
EXPIRE|key|seconds
EXPIREAT|key|timestamp
EXPIRETIME|key
FLUSHALL|[ASYNC|SYNC]
FLUSHDB|[ASYNC|SYNC]
GEOADD|key|[NX|XX]|[CH]|longitude latitude member [longitude latitude member ...]
GEOHASH|key|member [member ...]
GEOPOS|key|member [member ...]
GEODIST|key|member1|member2|[m|km|ft|mi]
GET|key
GETBIT|key|offset
GETDEL|key
GETEX|key|[EX seconds|PX milliseconds|PERSIST]
GETRANGE|key|start|end
GETSET|key|value
HDEL|key|field [field ...]
HELLO|[protover [AUTH username password] [SETNAME clientname]]
HEXISTS|key|field
HGET|key|field
HGETALL|key
HINCRBY|key|field|increment
HINCRBYFLOAT|key|field|increment
HKEYS|key
HLEN|key
HMGET|key|field [field ...]
HMSET|key|field value [field value ...]
HSET|key|field value [field value ...]
HSETNX|key|field|value
HRANDFIELD|key|[count [WITHVALUES]]
HSTRLEN|key|field
HVALS|key
INCR|key
INCRBY|key|increment
INCRBYFLOAT|key|increment
INFO|[section]
KEYS|pattern
LASTSAVE
LINDEX|key|index
LINSERT|key|BEFORE|AFTER|pivot|element
LLEN|key
LPOP|key|[count]
LPOS|key|element|[RANK rank]
LPUSH|key|element [element ...]
LPUSHX|key|element [element ...]
LRANGE|key|start|stop
LREM|key|count|element
LSET|key|index|element
LTRIM|key|start|stop
LMOVE|source|destination|LEFT|RIGHT|LEFT|RIGHT
MEMORY DOCTOR
MEMORY STATS
MEMORY USAGE|key|[SAMPLES count]
MGET|key [key ...]
MODULE LIST
MODULE LOAD|path|[ arg [arg ...]]
MODULE UNLOAD|name
MONITOR
MOVE|key|db
MSET|key value [key value ...]
MSETNX|key value [key value ...]
MULTI
OBJECT|subcommand|[arguments [arguments ...]]
PERSIST|key
PEXPIRE|key|milliseconds
PEXPIREAT|key|milliseconds-timestamp
PFADD|key|element [element ...]
PFCOUNT|key [key ...]
PFMERGE|destkey|sourcekey [sourcekey ...]
PING|[message]
PSETEX|key|milliseconds|value
PSUBSCRIBE|pattern [pattern ...]
PUBSUB|subcommand|[argument [argument ...]]
PTTL|key
PUBLISH|channel|message
PUNSUBSCRIBE|[pattern [pattern ...]]
QUIT
RANDOMKEY
READONLY
READWRITE
RENAME|key|newkey
RENAMENX|key|newkey
RESET
RESTORE|key|ttl|serialized-value|[REPLACE]
ROLE
RPOP|key|[count]
RPOPLPUSH|source|destination
RPUSH|key|element [element ...]
RPUSHX|key|element [element ...]
SADD|key|member [member ...]
SAVE
SCARD|key
SCRIPT EXISTS|sha1 [sha1 ...]
SCRIPT FLUSH|[ASYNC|SYNC]
SCRIPT KILL
SCRIPT LOAD|script
SDIFF|key [key ...]
SDIFFSTORE|destination|key [key ...]
SELECT|index
SET|key|value|[EX seconds|PX milliseconds|KEEPTTL]|[NX|XX]|[GET]
SETBIT|key|offset|value
SETEX|key|seconds|value
SETNX|key|value
SETRANGE|key|offset|value
SHUTDOWN|[NOSAVE|SAVE]
SINTER|key [key ...]
SINTERSTORE|destination|key [key ...]
SISMEMBER|key|member
SMISMEMBER|key|member [member ...]
SLAVEOF|host|port
REPLICAOF|host|port
SLOWLOG|subcommand|[argument]
SMEMBERS|key
SMOVE|source|destination|member
SORT|key|[BY pattern]|[ASC|DESC]
SPOP|key|[count]
SRANDMEMBER|key|[count]
SREM|key|member [member ...]
SSUBSCRIBE|shardchannel [shardchannel ...]
STRLEN|key
SUBSCRIBE|channel [channel ...]
SUNION|key [key ...]
SUNIONSTORE|destination|key [key ...]
SUNSUBSCRIBE|[shardchannel [shardchannel ...]]
SWAPDB|index1|index2
SYNC
PSYNC|replicationid|offset
TIME
TOUCH|key [key ...]
TTL|key
TYPE|key
UNSUBSCRIBE|[channel [channel ...]]
UNLINK|key [key ...]
UNWATCH
WAIT|numreplicas|timeout
WATCH|key [key ...]
ZADD|key|[NX|XX]|score member [score member ...]
ZCARD|key
ZCOUNT|key|min|max
ZINCRBY|key|increment|member
ZLEXCOUNT|key|min|max
ZPOPMAX|key|[count]
ZPOPMIN|key|[count]
ZRANGE|key|min|max|[BYSCORE|BYLEX]|[REV]|[WITHSCORES]
ZRANGEBYLEX|key|min|max|[LIMIT offset count]
ZRANGEBYSCORE|key|min|max|[WITHSCORES]|[LIMIT offset count]
ZRANK|key|member
ZREM|key|member [member ...]
ZREMRANGEBYLEX|key|min|max
ZREMRANGEBYRANK|key|start|stop
ZREMRANGEBYSCORE|key|min|max
ZREVRANGE|key|start|stop|[WITHSCORES]
ZREVRANK|key|member
ZSCORE|key|member
ZMSCORE|key|member [member ...]
SCAN|cursor|[MATCH pattern]|[COUNT count]|[TYPE type]
SSCAN|key|cursor|[MATCH pattern]|[COUNT count]
HSCAN|key|cursor|[MATCH pattern]|[COUNT count]
ZSCAN|key|cursor|[MATCH pattern]|[COUNT count]
XADD|key|[NOMKSTREAM]|*|ID|field value [field value ...]
XDEL|key|ID [ID ...]
XRANGE|key|start|end|[COUNT count]
XREVRANGE|key|end|start|[COUNT count]
XLEN|key
XREAD|[COUNT count]|[BLOCK milliseconds]|STREAMS|key [key ...]|ID [ID ...]
XACK|key|group|ID [ID ...]
LATENCY DOCTOR
LATENCY LATEST
LATENCY RESET|[event [event ...]]
SENTINEL
REPLCONF ACK|offset
"""


@dataclass(frozen=True, slots=True)
class ArgDesc:
    name: str
    kind: int
    sub_fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    args: tuple[ArgDesc, ...] | None  # None: render the arguments as a JSON array


def _lower_alnum(s: str) -> bool:
    return bool(s) and all(c.islower() or c.isdigit() for c in s)


def _arg_desc(text: str) -> ArgDesc | None:
    if _lower_alnum(text):
        return ArgDesc(text, FIXED)
    if text.endswith(" ...]") and " [" in text:
        name = text[: text.find(" [")]
        subs = tuple(name.split())
        if subs and all(_lower_alnum(s) for s in subs):
            return ArgDesc(name, LIST, subs)
        return None
    if text.startswith("[") and text.endswith("]") and _lower_alnum(text[1:-1]):
        return ArgDesc(text[1:-1], OPT)
    return None


def _command(line: str) -> Command:
    name, *args = line.split("|")
    if not args:
        return Command(name, None)
    descs = [_arg_desc(a) for a in args]
    if any(d is None for d in descs):
        return Command(name, None)
    return Command(name, tuple(d for d in descs if d is not None))


COMMANDS: dict[str, Command] = {c.name: c for c in map(_command, filter(None, _TABLE.splitlines()))}
# First words of all commands, upper-case: what a request's first bulk string may be.
FIRST_WORDS: frozenset[str] = frozenset(name.split()[0] for name in COMMANDS)
