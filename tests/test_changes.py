"""Names of undo steps: core.changes.describe_change on pipeline snapshots."""

import numpy as np

from convscope.core.changes import describe_change
from convscope.core.pipeline import (ActivationStage, ConvStage, Kernel, Pipeline, PoolStage,
                           default_pipeline)


def stages(p: Pipeline) -> list[dict]:
    return p.to_dict()["stages"]


def test_structure_changes_are_named():
    p = default_pipeline()
    base = stages(p)
    q = p.copy()
    q.stages.insert(1, PoolStage())
    assert describe_change(base, stages(q)).text == "add pool stage"
    assert describe_change(stages(q), base).text == "remove pool stage 2"
    r = p.copy()
    r.stages[1], r.stages[2] = r.stages[2], r.stages[1]
    assert describe_change(base, stages(r)).text == "move activation stage 2 down"
    assert describe_change(base, base).text == "no change"
    assert describe_change(base, []).text == "change the pipeline"


def test_field_edits_carry_a_key_so_typing_merges():
    p = default_pipeline()
    base = stages(p)
    q = p.copy()
    q.stages[0].stride = 3
    c = describe_change(base, stages(q))
    assert c.text == "change stride of stage 1" and c.key == ("stage", 0, "stride")
    q2 = q.copy()
    q2.stages[0].stride = 30
    assert describe_change(stages(q), stages(q2)).key == c.key
    q3 = p.copy()
    q3.stages[1] = ActivationStage("tanh")
    assert describe_change(base, stages(q3)).text == "change activation of stage 2"


def test_kernel_edits_are_named_by_kernel_and_cell():
    p = default_pipeline()
    base = stages(p)
    q = p.copy()
    q.stages[0].kernels[0].weights[1, 2] = 5
    c = describe_change(base, stages(q))
    assert c.text == "edit kernel 'outline' weight (2, 3)"
    assert c.key == ("kernel", 0, 0, "(2, 3)")
    q = p.copy()
    q.stages[0].kernels[0].name = "edges"
    assert describe_change(base, stages(q)).text == "rename kernel 'outline' to 'edges'"
    q = p.copy()
    q.stages[0].kernels[0] = Kernel(np.ones((5, 5)) / 25, name="box 5x5")
    assert describe_change(base, stages(q)).text == "set kernel 1 of stage 1 to 'box 5x5'"
    q = p.copy()
    q.stages[0].kernels[0].weights = np.zeros((5, 5))
    assert describe_change(base, stages(q)).text == "resize kernel 'outline' to 5x5"
    q = p.copy()
    q.stages[0].kernels.append(Kernel(np.eye(3), name="diag"))
    assert describe_change(base, stages(q)).text == "add kernel 'diag' to stage 1"
    assert describe_change(stages(q), base).text == "remove kernel 'diag' from stage 1"
    q = p.copy()
    q.stages[0].kernels[0].bias = 0.5
    assert describe_change(base, stages(q)).text == "change bias of kernel 'outline'"
    q = Pipeline([ConvStage([Kernel(np.eye(3), name="a")])])
    r = q.copy()
    r.stages[0] = PoolStage()
    assert describe_change(stages(q), stages(r)).text == "replace stage 1"
