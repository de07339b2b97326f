"""The chaos run's fault plan: which fault, when, drawn from the run's seed (nothing is injected here)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from chaos.stack import (
    SANDBOXES,
)

# --- the faults ------------------------------------------------------------------------------------


@dataclass(order=True)
class PlannedFault:
    at: float
    kind: str = field(compare=False)
    params: dict[str, Any] = field(compare=False, default_factory=dict)


def spread(rng: random.Random, count: int, start: float, end: float, min_gap: float) -> list[float]:
    """`count` random times in [start, end], at least `min_gap` apart where the span allows."""
    if count <= 0:
        return []
    slot = (end - start) / count
    return [round(start + slot * i + rng.uniform(0, max(slot - min_gap, 0.0)), 1) for i in range(count)]


def sandbox_setting(rng: random.Random) -> dict[str, Any]:
    mode = rng.choices(["ok", "flaky", "down", "error", "timeout"], weights=[3, 3, 1, 1.5, 1.5])[0]
    setting: dict[str, Any] = {
        "mode": mode,
        "failure_rate": 0.3,
        "callback": "completed",
        "duplicate_callbacks": rng.random() < 0.5,
        "callback_jitter": round(rng.uniform(0.5, 3.0), 2) if rng.random() < 0.6 else 0.0,
    }
    if mode == "ok" and rng.random() < 0.15:
        setting["callback"] = "failed"  # the gateway fails some payments after accepting them
    return setting


def fault_plan(
    rng: random.Random, *, duration: float, short: bool, worker_nodes: int, postgres: bool, rabbitmq: bool = False
) -> list[PlannedFault]:
    plan: list[PlannedFault] = []
    if rabbitmq:
        # The broker stopped and started again: with publisher confirms and quorum queues, what it
        # confirmed survives; what could not be published meanwhile is left to the sweeps.
        times = [duration * 0.5] if short else spread(rng, 2, 20, duration - 30, 40)
        plan += [PlannedFault(at, "rabbitmq_restart", {"down_for": 2.0}) for at in times]
    codes = sorted(SANDBOXES)
    if short:
        plan.append(
            PlannedFault(
                0.0,
                "sandbox_mode",
                {
                    "code": "acmepay",
                    "mode": "flaky",
                    "failure_rate": 0.3,
                    "duplicate_callbacks": True,
                    "callback_jitter": 0.0,
                },
            )
        )
        plan.append(
            PlannedFault(
                0.0,
                "sandbox_mode",
                {"code": "soapbank", "mode": "ok", "duplicate_callbacks": True, "callback_jitter": 2.0},
            )
        )
        plan.append(
            PlannedFault(
                0.0,
                "sandbox_mode",
                {
                    "code": "globex",
                    "mode": "flaky",
                    "failure_rate": 0.3,
                    "duplicate_callbacks": False,
                    "callback_jitter": 1.5,
                },
            )
        )
        plan.append(PlannedFault(duration * 0.22, "worker_kill", {"target": "child", "node": 1}))
        plan.append(PlannedFault(duration * 0.42, "redis_restart", {"down_for": 2.0}))
        plan.append(PlannedFault(duration * 0.62, "worker_kill", {"target": "main", "node": worker_nodes}))
        # A gateway that fails what it accepted: deposits fail, refunds fail and leave their amount
        # refundable again.
        plan.append(
            PlannedFault(
                round(duration * 0.68, 1),
                "sandbox_mode",
                {"code": "soapbank", "mode": "ok", "callback": "failed", "duplicate_callbacks": True},
            )
        )
        plan.append(
            PlannedFault(round(duration * 0.84, 1), "sandbox_mode", {"code": "soapbank", "callback": "completed"})
        )
        plan += webhook_faults(rng, duration=duration, short=True)
        for at in spread(rng, 4, duration * 0.15, duration * 0.8, 4):
            plan.append(PlannedFault(at, "sandbox_mode", {"code": rng.choice(codes), **sandbox_setting(rng)}))
        return sorted(plan)

    for code in codes:
        plan.append(PlannedFault(0.0, "sandbox_mode", {"code": code, **sandbox_setting(rng)}))
    end = duration - 10
    for at in spread(rng, max(12, int(duration / 18)), 8, end, 4):
        target = "main" if rng.random() < 0.35 else "child"
        plan.append(PlannedFault(at, "worker_kill", {"target": target, "node": rng.randint(1, worker_nodes)}))
    for at in spread(rng, 4, 15, end, 20):
        plan.append(PlannedFault(at, "redis_restart", {"down_for": round(rng.uniform(1.0, 4.0), 1)}))
    if postgres:
        # Longer than a sandbox's callback retries (0.5 + 1 + 2 + 4 s): some callbacks are given
        # up, and only the status look-ups can finish those transactions.
        plan.append(
            PlannedFault(
                round(duration * rng.uniform(0.45, 0.55), 1),
                "postgres_restart",
                {"down_for": round(rng.uniform(8.0, 12.0), 1)},
            )
        )
    # Jepsen-style pauses: a frozen Redis (clients block on it instead of being refused), and a
    # frozen pool process (alive, holding its task, resumed after its attempt looks abandoned).
    plan.append(
        PlannedFault(
            round(duration * rng.uniform(0.25, 0.35), 1), "redis_pause", {"pause_for": round(rng.uniform(5.0, 8.0), 1)}
        )
    )
    for at in spread(rng, 2, 30, end - 30, 20):
        plan.append(
            PlannedFault(
                at,
                "worker_pause",
                {"node": rng.randint(1, worker_nodes), "pause_for": round(rng.uniform(20.0, 30.0), 1)},
            )
        )
    for at in spread(rng, 2, 20, end, 30):
        plan.append(PlannedFault(at, "sandbox_restart", {"code": rng.choice(codes)}))
    for at in spread(rng, int(duration / 8), 5, end, 3):
        plan.append(PlannedFault(at, "sandbox_mode", {"code": rng.choice(codes), **sandbox_setting(rng)}))
    plan += webhook_faults(rng, duration=duration, short=False)
    return sorted(plan)


def webhook_faults(rng: random.Random, *, duration: float, short: bool) -> list[PlannedFault]:
    """The webhook dispatcher SIGKILLed (its claims in flight lapse and are claimed again) and the merchant's
    receiver answering 503 for a while (deliveries retried on the schedule)."""
    if short:
        return [
            PlannedFault(round(duration * 0.1, 1), "receiver_outage", {"down_for": 5.0}),
            PlannedFault(round(duration * 0.3, 1), "webhook_worker_kill"),
        ]
    end = duration - 10
    plan = [PlannedFault(at, "webhook_worker_kill") for at in spread(rng, 2, 10, end, 30)]
    plan += [
        PlannedFault(at, "receiver_outage", {"down_for": round(rng.uniform(5.0, 15.0), 1)})
        for at in spread(rng, 2, 10, end, 30)
    ]
    return plan
