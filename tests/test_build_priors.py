"""``pipeline.build_priors`` leaves the caller's config as it was; ``pipeline.model_options`` gives the
model's options for the graphs it returned (a prior branch without its graph turned off)."""

from __future__ import annotations

import copy

from priorgnn.models import TrainConfig, get_model_class
from priorgnn.models.base import PriorGraphs
from priorgnn.pipeline import RunConfig, build_priors, model_options


def test_build_priors_does_not_mutate_model_options():
    options = {"hidden": 8}
    cfg = RunConfig(model="priorgnn", model_options=options, priors={"go": "none", "coexpression": "none"})
    before = copy.deepcopy(cfg.to_dict())
    cls = get_model_class("priorgnn")
    graphs = build_priors(cfg, None, None, None, cls, progress=False)  # no prior asked: nothing is read
    assert (graphs.go, graphs.coexpression) == (None, None)
    assert cfg.to_dict() == before
    assert options == {"hidden": 8}
    resolved = model_options(cfg, cls, graphs)
    assert resolved == {"hidden": 8, "use_go": False, "use_coexpression": False}
    assert options == {"hidden": 8}  # the copy, not the caller's dict


def test_model_options_keeps_explicit_settings_and_prior_free_models():
    cls = get_model_class("priorgnn")
    cfg = RunConfig(model="priorgnn", model_options={"use_go": True})
    assert model_options(cfg, cls, PriorGraphs()) == {"use_go": True, "use_coexpression": False}
    additive = RunConfig(model="additive")  # reads no prior: nothing added
    assert model_options(additive, get_model_class("additive"), PriorGraphs()) == {}


def test_train_config_lives_in_training_and_is_re_exported():
    from priorgnn.models import base
    from priorgnn.training.config import TrainConfig as Moved

    assert TrainConfig is Moved and base.TrainConfig is Moved
    assert Moved().max_epochs == 200
