"""Search-space types: validation, conditions, parsing, Optuna distributions."""

import optuna
import pytest

from tuner.plugin.space import Categorical, Float, Int, SearchSpace, SpaceError


def momentum_space() -> SearchSpace:
    return SearchSpace(
        [
            Float("lr", 1e-4, 1.0, default=1e-2, log=True, recommended=0.1),
            Float("momentum", 0.0, 0.99, default=0.9),
            Categorical("nesterov", (False, True), default=False, when=("momentum", ">", 0)),
            Int("k", 1, 10, default=5),
        ]
    )


@pytest.mark.parametrize(
    "param, message",
    [
        (Float("lr", 1.0, 0.1, default=0.5), "low 1 must be below high 0.1"),
        (Float("lr", 0.0, 1.0, default=0.5, log=True), "a log range needs low > 0"),
        (Float("lr", 1e-3, 1e-1, default=0.5), "default 0.5 is outside"),
        (Float("lr", 1e-3, 1e-1, default=0.01, recommended=3.0), "recommended 3 is outside"),
        (Int("k", 5, 5, default=5), "low 5 must be below high 5"),
        (Categorical("c", ("a", "b"), default="z"), "default 'z' is not one of"),
    ],
)
def test_validation_names_plugin_and_parameter(param, message):
    with pytest.raises(SpaceError) as error:
        SearchSpace([param]).validate("plugin 'mine'")
    assert str(error.value).startswith(f"plugin 'mine': parameter {param.name!r}: ")
    assert message in str(error.value)


def test_condition_must_refer_to_an_earlier_parameter():
    space = SearchSpace([Categorical("nesterov", (False, True), False, when=("momentum", ">", 0))])
    with pytest.raises(SpaceError, match="not an earlier parameter"):
        space.validate("p")


def test_conditional_parameter_is_active_only_when_its_condition_holds():
    space = momentum_space()
    assert space.defaults() == {"lr": 1e-2, "momentum": 0.9, "nesterov": False, "k": 5}
    assert "nesterov" not in space.complete({"momentum": 0.0})
    assert space.complete({"momentum": 0.5, "nesterov": True})["nesterov"] is True
    assert space.recommended()["lr"] == 0.1


def test_complete_rejects_unknown_names_and_values_out_of_range():
    space = momentum_space()
    with pytest.raises(SpaceError, match="unknown parameter 'betas'.*lr, momentum"):
        space.complete({"betas": 0.9}, owner="sgd")
    with pytest.raises(SpaceError, match="parameter 'lr': 5 is outside"):
        space.complete({"lr": 5.0}, owner="sgd")
    with pytest.raises(SpaceError, match="not a whole number"):
        space.complete({"k": 2.5})


def test_values_are_checked_even_when_their_parameter_is_inactive():
    space = momentum_space()
    with pytest.raises(SpaceError, match=r"^sgd: parameter 'nesterov': 'maybe' is not one of"):
        space.complete({"momentum": 0.0, "nesterov": "maybe"}, owner="sgd")
    with pytest.raises(SpaceError, match=r"^sgd: parameter 'nesterov': 'maybe' is not one of"):
        space.complete(space.parse(["momentum=0", "nesterov=maybe"], owner="sgd"), owner="sgd")


def test_a_value_for_an_inactive_parameter_names_the_condition():
    space = momentum_space()
    with pytest.raises(SpaceError) as error:
        space.complete({"momentum": 0.0, "nesterov": True}, owner="sgd")
    assert str(error.value) == (
        "sgd: parameter 'nesterov' is inactive: it applies only when momentum > 0, "
        "and here momentum is 0.0"
    )
    chained = SearchSpace([*momentum_space(),
                           Float("dampening", 0.0, 1.0, 0.0, when=("nesterov", "==", True))])
    with pytest.raises(SpaceError, match="when nesterov == True, and here nesterov is itself"):
        chained.complete({"momentum": 0.0, "dampening": 0.5})


def test_fallback_values_fill_in_only_what_is_not_given():
    space = momentum_space()
    values = space.complete({"momentum": 0.0}, fallback=space.recommended())
    assert values == {"lr": 0.1, "momentum": 0.0, "k": 5}  # nesterov dropped, not an error
    assert space.complete({"lr": 0.5}, fallback={"k": 9}) == {
        "lr": 0.5, "momentum": 0.9, "nesterov": False, "k": 9}


def test_parse_reads_typed_values():
    values = momentum_space().parse(["lr=3e-4", "nesterov=true", "k=7"], owner="sgd")
    assert values == {"lr": 3e-4, "nesterov": True, "k": 7}
    with pytest.raises(SpaceError, match="cannot read 'fast' as float"):
        momentum_space().parse(["lr=fast"], owner="sgd")


def test_optuna_sampling_respects_ranges_and_conditions():
    """Both branches of each condition are drawn: the conditional parameter is absent whenever
    its condition is false and present whenever it is true."""
    space = SearchSpace(
        [
            Float("lr", 1e-4, 1.0, default=1e-2, log=True),
            Float("momentum", 0.0, 0.99, default=0.9),
            Categorical("nesterov", (False, True), default=False, when=("momentum", ">", 0.5)),
            Categorical("kind", ("plain", "decayed"), default="plain"),
            Float("decay", 1e-5, 1e-1, default=1e-3, log=True, when=("kind", "==", "decayed")),
            Int("k", 1, 10, default=5),
        ]
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen: dict[str, set[bool]] = {"nesterov": set(), "decay": set()}
    for _ in range(40):
        trial = study.ask()
        values = space.suggest(trial)
        assert 1e-4 <= values["lr"] <= 1.0 and 1 <= values["k"] <= 10
        assert ("nesterov" in values) == (values["momentum"] > 0.5)
        assert ("decay" in values) == (values["kind"] == "decayed")
        assert set(trial.distributions) == set(values)
        assert space.distributions(values) == trial.distributions
        assert space.complete(values) == values  # a sampled configuration is a valid one
        study.tell(trial, values["lr"])
        for name in seen:
            seen[name].add(name in values)
    assert seen == {"nesterov": {False, True}, "decay": {False, True}}


def test_with_range_narrows_and_validates():
    space = momentum_space().with_range("lr", 1e-3, 1e-2)
    assert (space["lr"].low, space["lr"].high) == (1e-3, 1e-2)
    assert space["lr"].recommended == 1e-2  # clipped into the new range
    with pytest.raises(SpaceError, match="low 0.1 must be below high 0.01"):
        momentum_space().with_range("lr", 0.1, 0.01)


def test_log_grid_is_even_in_log_space():
    grid = Float("lr", 1e-4, 1.0, default=1e-2, log=True).grid(5)
    assert grid == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1, 1.0])


def test_fingerprint_changes_with_the_space():
    assert momentum_space().fingerprint() == momentum_space().fingerprint()
    assert momentum_space().with_range("lr", 1e-3, 1e-1).fingerprint() != (
        momentum_space().fingerprint()
    )
