"""The HTTP parser's caches of repeated header blocks and header lists (repeat_cache.py): a hit must give
the same message as a fresh parse, never a shared object, and unique traffic must turn the cache off."""

from __future__ import annotations

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.http import HttpParser, MessageKind, headers_json
from cluster.pem.protocols.http.repeat_cache import RepeatCache

RESP = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nX-B: 1\r\nx-a: 2\r\n\r\n{}"


def _parse(data: bytes, head: bool = False):
    stream = DataStream()
    stream.append(1, data)
    return HttpParser(MessageKind.RESPONSE).next_message(stream, head)


def test_cached_block_gives_an_equal_fresh_message_each_time():
    first, second = _parse(RESP), _parse(RESP)
    assert first == second and first is not second and first.headers is not second.headers
    assert first.body == b"{}" and first.content_type == "application/json" and first.headers[3] == ("x-a", "2")
    first.headers.append(("Mutated", "yes"))
    assert _parse(RESP).headers == second.headers  # the cached template is never handed out
    # framing still follows the request: the same block answering HEAD has no body
    assert _parse(RESP, head=True).body == b"" and _parse(RESP, head=True).body_size == 0


def test_headers_json_same_with_and_without_cache_hits():
    headers = [("X-B", "1"), ("x-a", '"2"'), ("Accept", "é")]
    assert headers_json(headers) == headers_json(list(headers)) == '{"Accept":"é","x-a":"\\"2\\"","X-B":"1"}'


def test_cache_turns_off_for_unique_keys_and_retries_after_the_pause():
    cache = RepeatCache(max_entries=8, pause=20)
    for i in range(9):  # fills up with no hit: off
        assert cache.on()
        assert cache.get(i) is None
        cache.put(i, i)
    assert [cache.on() for _ in range(20)] == [False] * 20
    assert cache.on()
    cache.put("k", 1)
    assert cache.get("k") == 1


def test_cache_stays_on_while_hits_pay():
    cache = RepeatCache(max_entries=8, pause=20)
    for i in range(100):
        assert cache.on()
        if cache.get(i % 4) is None:
            cache.put(i % 4, i)
