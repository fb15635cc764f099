"""The resolver sweep after a switch (consulha/agent/resolversweep.py), against a fake clock and
fake resolvers that fail on any call the script does not expect."""

import pytest

from consulha.agent.resolversweep import ResolverSweep
from consulha.config import ResolverConfig
from consulha.dns.resolvers import ResolverError

UNBOUND = ResolverConfig(kind="unbound", control=("127.0.0.1", 8953), address=("127.0.0.1", 53))
RECURSOR = ResolverConfig(kind="pdns_recursor", url="http://127.0.0.1:8082", api_key="k",
                          address=("127.0.0.1", 5300))
WANTED = {("app.example.test.", "A"): ("192.0.2.2",), ("www.example.test.", "CNAME"): ("app.example.test.",)}
NEW = dict(WANTED)
OLD = {("app.example.test.", "A"): ("192.0.2.1",), ("www.example.test.", "CNAME"): ("app.example.test.",)}


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class FakeResolvers:
    """Scripted answers per resolver: a list of outcomes consumed in order, per call kind."""

    def __init__(self, script: dict[tuple[str, str], list]):
        self.script = {key: list(outcomes) for key, outcomes in script.items()}
        self.calls: list[tuple[str, str]] = []

    def _next(self, kind: str, resolver: ResolverConfig):
        key = (kind, resolver.name)
        if not self.script.get(key):
            pytest.fail(f"unexpected {kind} to {resolver.name}")
        self.calls.append(key)
        outcome = self.script[key].pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def flush(self, resolver, name, timeout):
        # One scripted outcome per resolver flush covers its every name: repeat it per name.
        outcome = self._next("flush", resolver)
        if name != "www.example.test.":
            self.script[("flush", resolver.name)].insert(0, outcome)

    def ask(self, resolver, name, rdtype, timeout):
        return self._next("ask", resolver)[(name, rdtype)]

    def done(self):
        left = {key: outcomes for key, outcomes in self.script.items() if outcomes}
        assert not left, f"scripted but not called: {left}"


def sweep(fake, clock, resolvers=(UNBOUND,)):
    events = []
    made = ResolverSweep(resolvers, lambda: WANTED, clock, lambda name, event, seconds: events.append((name, event, seconds)),
                         flush_name=fake.flush, ask=fake.ask)
    return made, events


def test_flush_then_ask_converges_with_the_seconds_since_the_write():
    clock, fake = Clock(), FakeResolvers({("flush", UNBOUND.name): [None], ("ask", UNBOUND.name): [NEW, NEW]})
    made, events = sweep(fake, clock)
    made.begin(written_at=99.0)
    assert made.step() is None
    fake.done()
    assert events == [(UNBOUND.name, "pending", None), (UNBOUND.name, "flushed", None),
                      (UNBOUND.name, "converged", 1.0)]
    report = made.report()[UNBOUND.name]
    assert report["converged"] and report["converged_s"] == 1.0 and report["last_flush"] and not report["error"]


def test_an_unreachable_resolver_is_retried_with_backoff_and_never_blocks_the_other():
    down = ResolverError("unbound 127.0.0.1:8953: [Errno 111] Connection refused")
    clock = Clock()
    fake = FakeResolvers({("flush", UNBOUND.name): [down, down, None], ("ask", UNBOUND.name): [NEW, NEW],
                          ("flush", RECURSOR.name): [None], ("ask", RECURSOR.name): [NEW, NEW]})
    made, events = sweep(fake, clock, (UNBOUND, RECURSOR))
    made.begin(written_at=100.0)
    assert made.step() == pytest.approx(0.2)            # the recursor converged, unbound waits 0.2 s
    assert made.report()[RECURSOR.name]["converged"]
    assert "Connection refused" in made.report()[UNBOUND.name]["error"]
    clock.now = 100.0 + 0.1
    assert made.step() == pytest.approx(0.1)            # not due yet: no call
    clock.now = 100.0 + 0.2
    assert made.step() == pytest.approx(0.4)            # second failure: the backoff doubles
    clock.now = 100.0 + 0.2 + 0.4
    assert made.step() is None
    fake.done()
    assert [e for _, e, _ in events].count("flush_failed") == 2
    assert made.report()[UNBOUND.name] | {"last_flush": None} == {
        "last_flush": None, "converged": True, "converged_s": 0.6, "error": None}


def test_the_old_value_after_a_flush_flushes_again_later():
    clock = Clock()
    fake = FakeResolvers({("flush", UNBOUND.name): [None, None], ("ask", UNBOUND.name): [OLD, NEW, NEW]})
    made, events = sweep(fake, clock)
    made.begin(written_at=100.0)
    assert made.step() == pytest.approx(0.2)
    assert "answered app.example.test. A 192.0.2.1 after a flush" in made.report()[UNBOUND.name]["error"]
    clock.now = 100.0 + 0.2
    assert made.step() is None
    fake.done()
    assert fake.calls == [("flush", UNBOUND.name)] * 2 + [("ask", UNBOUND.name)] + \
        [("flush", UNBOUND.name)] * 2 + [("ask", UNBOUND.name)] * 2


def test_a_failing_question_after_a_good_flush_asks_again_without_flushing():
    clock = Clock()
    fake = FakeResolvers({("flush", UNBOUND.name): [None],
                          ("ask", UNBOUND.name): [ResolverError("no answer within 1s"), NEW, NEW]})
    made, events = sweep(fake, clock)
    made.begin(written_at=100.0)
    made.step()
    clock.now = 100.0 + 0.2
    assert made.step() is None
    fake.done()
    assert "flush_failed" not in [e for _, e, _ in events]


def test_cancel_stops_stepping_and_keeps_the_report():
    clock = Clock()
    fake = FakeResolvers({("flush", UNBOUND.name): [ResolverError("refused")]})
    made, _ = sweep(fake, clock)
    made.begin(written_at=100.0)
    made.step()
    made.cancel()
    clock.now += 60
    assert made.step() is None                         # no call: the fake would fail the test
    fake.done()
    assert made.report()[UNBOUND.name]["error"] == "refused"


def test_no_resolvers_is_nothing_to_do():
    made, events = sweep(FakeResolvers({}), Clock(), resolvers=())
    made.begin(written_at=100.0)
    assert made.step() is None and events == [] and made.report() == {}
