"""Few-shot sampling and session construction are deterministic and follow the manifest."""

from __future__ import annotations

from clbench.scenarios.manifests import load_scenario_manifest
from clbench.scenarios.stream import build_sessions, load_scenario


def test_same_seed_same_shots_other_seed_other_shots():
    a = load_scenario("proxy-20shot", seed=0)
    b = load_scenario("proxy-20shot", seed=0)
    c = load_scenario("proxy-20shot", seed=1)
    assert [s.sample_ids for s in a.sessions] == [s.sample_ids for s in b.sessions]
    assert [s.sample_ids for s in a.sessions] != [s.sample_ids for s in c.sessions]


def test_sessions_are_disjoint_with_k_shots_per_class():
    scenario = load_scenario("proxy-20shot", seed=0)
    assert len(scenario.sessions) == 5
    seen: set[int] = set()
    targets = scenario.train.targets
    for session in scenario.sessions:
        assert len(session.class_ids) == 4 and not seen & set(session.class_ids)
        seen |= set(session.class_ids)
        labels = targets[session.sample_indices].tolist()
        assert sorted(labels) == sorted(c for c in session.class_ids for _ in range(20))
        assert len(set(session.sample_ids)) == len(session.sample_ids)
    assert len(seen) == 20


def test_uneven_sizes_and_seeded_order(tmp_path):
    path = tmp_path / "uneven.yaml"
    path.write_text("target: proxy\nshots: 2\nsessions: {sizes: [3, 2, 1], order: seeded}\n")
    manifest = load_scenario_manifest(str(path))
    scenario = load_scenario(str(path), seed=5)
    assert [len(s.class_ids) for s in scenario.sessions] == [3, 2, 1]  # no class dropped
    again = build_sessions(manifest, scenario.train, seed=5)
    other = build_sessions(manifest, scenario.train, seed=6)
    assert [s.class_ids for s in again] == [s.class_ids for s in scenario.sessions]
    assert [s.class_ids for s in other] != [s.class_ids for s in scenario.sessions]


def test_offline_is_one_session_with_the_whole_train_split():
    scenario = load_scenario("proxy-offline", seed=0)
    assert len(scenario.sessions) == 1
    # the whole split but its validation part, held out and not trained on
    held_out = set(scenario.validation_indices)
    assert held_out and scenario.sessions[0].sample_indices == [
        i for i in range(len(scenario.train)) if i not in held_out]
    assert [e.name for e in scenario.eval_sets] == ["proxy", "proxy-clean", "proxy-generic"]
