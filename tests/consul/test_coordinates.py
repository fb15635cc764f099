"""RTT estimates from Consul's network coordinates (the formula of Consul's lib/rtt.go)."""

import pytest

from consulha.consul.coordinates import estimated_rtt, rtts_from


def coord(vec, height=0.0, adjustment=0.0):
    return {"Vec": vec, "Error": 0.1, "Adjustment": adjustment, "Height": height}


def test_distance_plus_heights_plus_adjustments():
    a, b = coord([0.0, 0.0], 0.001, 0.0005), coord([0.003, 0.004], 0.002, 0.0005)
    assert estimated_rtt(a, b) == pytest.approx(0.005 + 0.003 + 0.001)


def test_a_negative_adjusted_distance_falls_back_to_the_plain_one():
    a, b = coord([0.0], 0.0, -0.01), coord([0.002], 0.0, -0.01)
    assert estimated_rtt(a, b) == pytest.approx(0.002)


def test_rtts_from_the_local_node_to_servers_of_its_segment():
    answer = [{"Node": "app-a", "Segment": "", "Coord": coord([0.0])},
              {"Node": "srv-a", "Segment": "", "Coord": coord([0.001])},
              {"Node": "srv-w", "Segment": "", "Coord": coord([0.040])},
              {"Node": "srv-x", "Segment": "other", "Coord": coord([0.5])}]
    assert rtts_from("app-a", answer, ["srv-a", "srv-w", "srv-x", "srv-gone"]) == pytest.approx(
        {"srv-a": 0.001, "srv-w": 0.040})
    assert rtts_from("not-there", answer, ["srv-a"]) == {}
