"""Every model and tracker parameter is a flag of ``onlinenmf consume``, made from the parameter
table (onlinenmf/parameters.py), and its value reaches the model the consumer builds."""

from __future__ import annotations

import pytest

from consumers.cli import build_parser
from consumers.consume import run
from consumers.kinds import STREAM_KINDS
from consumers.options import parameter_dest, parameter_flag
from consumers.outcomes import EXIT_SETUP
from onlinenmf.parameters import ENGINE, RECO, TRACKER

#: parameter -> (flag words, the value the class must then hold), for every entry of the
#: kinds' tables, none of them the default (so each proves its flag reached the model)
MICROBIOME_MODEL = {
    "n_components": (["--components", "4"], 4), "beta": (["--beta", "2"], 2.0),
    "forget_factor": (["--forget-factor", "0.99"], 0.99),
    "refresh_every": (["--refresh-every", "7"], 7), "l1_h": (["--l1-h", "0.1"], 0.1),
    "l2_h": (["--l2-h", "0.2"], 0.2), "l1_w": (["--l1-w", "0.3"], 0.3),
    "l2_w": (["--l2-w", "0.4"], 0.4), "refresh_sweeps": (["--refresh-sweeps", "2"], 2),
    "max_iter": (["--max-iter", "50"], 50), "tol": (["--tol", "1e-5"], 1e-5),
    "reseed": (["--no-reseed"], False), "buffer_size": (["--buffer-size", "64"], 64),
    "seed": (["--seed", "3"], 3), "adapt_rank": (["--adapt-rank"], True),
    "adapt_sparsity": (["--adapt-sparsity"], True),
    "adapt_forgetting": (["--adapt-forgetting"], True),
    "reestimate_every": (["--reestimate-every", "2"], 2), "k_min": (["--k-min", "2"], 2),
    "k_max": (["--k-max", "6"], 6), "prune_patience": (["--prune-patience", "4"], 4),
    "ard_strength": (["--ard-strength", "0.02"], 0.02), "init": (["--init", "core"], "core"),
    "drift_threshold": (["--drift-threshold", "none"], None),
}
MICROBIOME_TRACKER = {
    "window": (["--growth-window", "30"], 30.0), "min_points": (["--min-points", "4"], 4),
    "growth_of": (["--growth-of", "composition"], "composition"),
    "detection": (["--detection", "0.01"], 0.01), "presence": (["--presence", "0.1"], 0.1),
    "absence": (["--absence", "0.04"], 0.04), "hold": (["--hold", "3"], 3),
    "anomaly_z": (["--anomaly-z", "None"], None),
    "max_history": (["--max-history", "64"], 64),
    "max_subjects": (["--max-subjects", "1000"], 1000),
    "max_history_bytes": (["--max-history-bytes", "2M"], 2 << 20),
    "ttl": (["--subject-ttl", "500"], 500.0), "max_events": (["--max-events", "99"], 99),
    "bin_width": (["--bin-width", "7"], 7.0), "time_unit": (["--time-unit", "3600"], 3600.0),
    "warm_start": (["--no-warm-start"], False), "reproject": (["--reproject"], True),
}
RECO_MODEL = {
    "n_components": (["--components", "3"], 3),
    "feedback": (["--feedback", "implicit"], "implicit"),
    "rating_range": (["--rating-range", "1,5"], (1.0, 5.0)),
    "biases": (["--no-biases"], False), "solver": (["--solver", "sgd"], "sgd"),
    "history": (["--history", "20"], 20), "l2_bias": (["--l2-bias", "1.5"], 1.5),
    "l2_factors": (["--l2-factors", "0.5"], 0.5),
    "forget_factor": (["--item-forget-factor", "0.9"], 0.9),
    "refresh_every": (["--item-refresh-every", "5"], 5),
    "learning_rate": (["--learning-rate", "0.05"], 0.05),
    "max_iter": (["--max-iter", "7"], 7), "tol": (["--tol", "1e-3"], 1e-3),
    "implicit_transform": (["--implicit-transform", "binary"], "binary"),
    "recency": (["--recency", "0.5"], 0.5), "init_scale": (["--init-scale", "0.2"], 0.2),
    "cooccurrence": (["--cooccurrence", "2.5"], 2.5),
    "basket_recency": (["--basket-recency", "0.3"], 0.3),
    "seed": (["--seed", "4"], 4),
}
CASES = [("microbiome", ENGINE, MICROBIOME_MODEL), ("microbiome", TRACKER, MICROBIOME_TRACKER),
         ("reco", RECO, RECO_MODEL)]


def _words(*given: dict) -> list[str]:
    return [word for values in given for flags, _ in values.values() for word in flags]


def _app(kind: str, words: list[str]):
    args = build_parser().parse_args(["consume", kind, *words])
    app = STREAM_KINDS[kind].application(args)
    app.restore(None)  # a new model (and tracker), as a consumer without a checkpoint builds
    return app


@pytest.mark.parametrize(("kind", "table", "given"), CASES,
                         ids=[f"{k}-{t.owner}" for k, t, _ in CASES])
def test_every_table_entry_is_a_flag(kind, table, given):
    parser = build_parser()
    consume = parser._subparsers._group_actions[0].choices["consume"]
    flags = consume._option_string_actions
    assert set(given) == set(table.names)  # a new entry needs a value here too
    for name, parameter in table.items():
        flag = parameter_flag(table.owner, name)
        assert flag in flags and flags[flag].dest == parameter_dest(table.owner, name)
        assert given[name][0][0] in (flag, f"--no-{flag[2:]}")
        assert parameter.doc.replace("%", "%%") in flags[flag].help
        assert given[name][1] != parameter.default


def test_every_microbiome_flag_reaches_the_model_and_the_tracker():
    app = _app("microbiome", _words(MICROBIOME_MODEL, MICROBIOME_TRACKER))
    assert app.model._params() == {name: value for name, (_, value) in MICROBIOME_MODEL.items()}
    assert app.tracker._params() == {name: value
                                     for name, (_, value) in MICROBIOME_TRACKER.items()}


def test_every_reco_flag_reaches_the_model():
    app = _app("reco", _words(RECO_MODEL))
    assert RECO.read(app.model) == {name: value for name, (_, value) in RECO_MODEL.items()}


def test_no_flag_is_each_class_own_default():
    """--max-iter and --tol are shared by both kinds' models, with other defaults: not given,
    each model gets its own."""
    microbiome, reco = _app("microbiome", []), _app("reco", [])
    assert microbiome.model._params() == ENGINE.defaults()
    assert microbiome.tracker._params() == TRACKER.defaults()
    assert RECO.read(reco.model) == RECO.defaults()
    assert (microbiome.model.max_iter, reco.model.max_iter) == (200, 10)


def test_environment_sets_a_parameter_as_its_flag_would(monkeypatch):
    monkeypatch.setenv("ONLINENMF_L1_H", "0.25")
    monkeypatch.setenv("ONLINENMF_ADAPT_SPARSITY", "true")
    monkeypatch.setenv("ONLINENMF_MAX_ITER", "30")
    app = _app("microbiome", [])
    assert (app.model.l1_h, app.model.adapt_sparsity, app.model.max_iter) == (0.25, True, 30)
    assert _app("reco", []).model.max_iter == 30


@pytest.mark.parametrize(("words", "said"), [
    (["--beta", "-1"], "argument --beta: beta must be a finite number >= 0, got -1.0"),
    (["--components", "true"], "argument --components: 'true' is not an integer"),
    (["--init", "random"], "argument --init: init must be 'samples' or 'core', got 'random'"),
    (["--forget-factor", "none"], None),  # None is allowed: chosen by the data
])
def test_a_bad_flag_is_a_one_line_usage_error(words, said, capsys):
    if said is None:
        assert _app("microbiome", words).model.forget_factor is None
        return
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["consume", "microbiome", *words])
    assert done.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"onlinenmf consume: {said} ("), lines


def test_parameters_that_disagree_are_refused_before_the_consumer_starts(tmp_path, capsys):
    args = build_parser().parse_args(["consume", "microbiome", "--adapt-rank", "--k-min", "5",
                                      "--k-max", "3", "--checkpoint-dir", str(tmp_path)])
    assert run(args) == EXIT_SETUP
    said = "onlinenmf consume: k_max must be an integer >= k_min=5, got 3\n"
    assert capsys.readouterr().err == said
