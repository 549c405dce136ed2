"""SRPT oracle: clairvoyant shortest-remaining-processing-time (simulation only).

Algorithm: run the call whose program has the least work left, where the caller
tells the work left at arrival (``Call.remaining_s``: the program's remaining
service including this call) and the policy subtracts the service received since.
Ties break by arrival. No queues, no anti-starvation. The caller must give
``remaining_s`` in the units the policy is credited service in (the replay uses the
plugin's ``ServiceModel``), or the key mixes units. A clairvoyant heuristic the
replay benchmark compares against, not a lower bound (with batching and prefix
caching no order is known to be optimal), and never a policy for a live engine
(nobody knows remaining work there).
Parameters: none.
"""

from __future__ import annotations

from collections.abc import Iterator

from autellix_ray.core.scheduling.base import Call, CallState, SingleQueuePolicy


class SRPTOraclePolicy(SingleQueuePolicy):
    name = "srpt"
    why_no_parameters = "it orders by remaining work"

    def add(self, call: Call, now_s: float) -> CallState:
        if call.remaining_s is None or not call.remaining_s >= 0:
            raise ValueError(
                f"srpt is a clairvoyant oracle: call {call.call_id!r} must carry remaining_s >= 0"
            )
        return super().add(call, now_s)

    def key(self, call_id: str) -> tuple:
        st = self._calls[call_id]
        return (st.call.remaining_s - st.service_s, st.arrival_seq)

    def live_keys(self) -> None:
        return None  # remaining work drifts with every step of service

    def outranks(self, call_id: str, other_id: str) -> bool:
        return self.key(call_id)[0] < self.key(other_id)[0]

    def order(self) -> Iterator[str]:
        return iter(sorted(self._calls, key=self.key))
