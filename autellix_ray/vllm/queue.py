"""vLLM's waiting queue, ordered by an Autellix scheduling policy.

Implements vLLM's ``RequestQueue`` interface so the stock scheduling loop walks
waiting calls in the policy's order (queue level, then arrival). Keys are taken
when a request enters the queue; the scheduler calls ``rekey`` for calls whose
queue changed while waiting (anti-starvation promotions).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

from sortedcontainers import SortedDict
from vllm.v1.core.sched.request_queue import RequestQueue
from vllm.v1.request import Request

from autellix_ray.core import SchedulingPolicy


class PolicyOrderedQueue(RequestQueue):
    def __init__(self, policy: SchedulingPolicy) -> None:
        self._policy = policy
        self._by_key: SortedDict = SortedDict()  # (policy key, request id) -> request
        self._key_of: dict[str, tuple] = {}  # request id -> its key in _by_key

    def _key(self, request: Request) -> tuple:
        rid = request.request_id
        policy_key = self._policy.key(rid) if rid in self._policy else (float("inf"),)
        return (policy_key, rid)

    def add_request(self, request: Request) -> None:
        rid = request.request_id
        if rid in self._key_of:
            return
        key = self._key(request)
        self._by_key[key] = request
        self._key_of[rid] = key

    def pop_request(self) -> Request:
        if not self._by_key:
            raise IndexError("pop from an empty queue")
        _, request = self._by_key.popitem(0)
        del self._key_of[request.request_id]
        return request

    def peek_request(self) -> Request:
        if not self._by_key:
            raise IndexError("peek from an empty queue")
        return self._by_key.peekitem(0)[1]

    def prepend_request(self, request: Request) -> None:
        self.add_request(request)  # position comes from the policy, not from the caller

    def prepend_requests(self, requests: Iterable[Request]) -> None:
        for request in requests:
            self.add_request(request)

    def remove_request(self, request: Request) -> None:
        key = self._key_of.pop(request.request_id, None)
        if key is not None:
            del self._by_key[key]

    def remove_requests(self, requests: Iterable[Request]) -> None:
        for request in requests:
            self.remove_request(request)

    def rekey(self, request_ids: Iterable[str]) -> None:
        for rid in request_ids:
            key = self._key_of.get(rid)
            if key is not None:
                request = self._by_key.pop(key)
                del self._key_of[rid]
                self.add_request(request)

    def first(self, k: int) -> list[Request]:
        """The ``k`` best waiting calls, without copying the queue."""
        return list(islice(self._by_key.values(), k))

    def __contains__(self, request: object) -> bool:
        return getattr(request, "request_id", None) in self._key_of

    def __bool__(self) -> bool:
        return bool(self._by_key)

    def __len__(self) -> int:
        return len(self._by_key)

    def __iter__(self) -> Iterator[Request]:
        return iter(list(self._by_key.values()))
