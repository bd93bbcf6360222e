"""A ticketing process for the application-level fault tests: reserves from many threads.

Run as ``python -m tests.faults.ticketing_process MODE URL PREFIX NODE THREADS SECONDS``.
It starts a ``TicketingSystem`` on the Redis at URL under PREFIX, creates the event
``gig`` (sections ``A``, ``B``, ``C``; idempotent, so several processes may), prints
``ready`` and reserves from THREADS threads, 1-4 seats in a random section each time,
one card in seven declined, until SECONDS have passed.

MODE ``race``: the gateway answers at once; at the end the process prints one
``outcome <json>`` line per reservation and ``done``, and stops.

MODE ``slow``: the gateway takes 0.3-1.2 s per call (many sagas in flight), every
charge the gateway made is printed as ``charged <payment id>`` as soon as it is made,
every saga started as ``started <reservation id>``; the test kills the process with
``SIGKILL`` while they are in flight.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time

from domain import (
    Charge,
    DemoGateway,
    ReservationOutcome,
    SystemStopped,
    TicketingError,
    TicketingSystem,
)
from domain._saga import SagaSettings

DECLINED_CARD = "4000000000000002"
GOOD_CARD = "4242424242424242"
SECTIONS = {"A": 1000, "B": 1000, "C": 1000}
SLOW_SECTIONS = {"A": 400, "B": 400}
SLOW_SAGA = SagaSettings(seats_timeout=3.0, payment_timeout=3.0, retry_interval=0.5)

_print_lock = threading.Lock()


def say(line: str) -> None:
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class TellingGateway(DemoGateway):
    """A demo gateway that prints each charge it made before answering it."""

    def charge(self, idempotency_key: str, card_token: str, amount_cents: int) -> Charge:
        done = super().charge(idempotency_key, card_token, amount_cents)
        say(f"charged {idempotency_key}")
        return done


def main(mode: str, url: str, prefix: str, node: str, threads: int, seconds: float) -> None:
    slow = mode == "slow"
    gateway = TellingGateway(latency=(0.3, 1.2)) if slow else DemoGateway()
    system = TicketingSystem.start(
        url,
        key_prefix=prefix,
        node=node,
        gateway=gateway,
        saga=SLOW_SAGA if slow else None,
        claim_idle=1.0,
        payment_workers=64 if slow else 32,
    )
    system.create_event("gig", sections=SLOW_SECTIONS if slow else SECTIONS, price_cents=900)
    outcomes: list[tuple[ReservationOutcome, float]] = []
    errors: list[str] = []
    end = time.monotonic() + seconds
    say("ready")

    def reserve(worker: int) -> None:
        rnd = random.Random(f"{node}-{worker}")
        sections = sorted(SLOW_SECTIONS if slow else SECTIONS)
        n = 0
        while time.monotonic() < end:
            n += 1
            rid = f"{node}_{worker}_{n}"
            card = DECLINED_CARD if rnd.random() < 1 / 7 else GOOD_CARD
            if slow:
                say(f"started {rid}")
            began = time.monotonic()
            try:
                outcome = system.reserve(
                    f"c{worker}", "gig", rnd.choice(sections), rnd.randint(1, 4), card,
                    reservation_id=rid, timeout=60,
                )
            except SystemStopped:
                return
            except TicketingError as error:
                errors.append(f"{rid}: {type(error).__name__}: {error}")
                return
            outcomes.append((outcome, time.monotonic() - began))

    workers = [threading.Thread(target=reserve, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    joined = time.monotonic()
    for outcome, took in outcomes:
        say("outcome " + json.dumps({
            "rid": outcome.reservation_id,
            "section": outcome.section,
            "status": outcome.status.value,
            "reason": outcome.reason,
            "seats": list(outcome.seats),
            "took": round(took, 3),
        }))
    for error in errors:
        say(f"error {error}")
    system.stop()
    say(f"timing: last reservation ended {joined - end:.1f} s after the end, stopped in "
        f"{time.monotonic() - joined:.1f} s")
    say("done")


if __name__ == "__main__":
    mode, url, prefix, node, threads, seconds = sys.argv[1:7]
    main(mode, url, prefix, node, int(threads), float(seconds))
