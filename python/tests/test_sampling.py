"""sample against torch over the reference's rules: greedy, top-k / top-p / min-p, penalties,
batch independence, logprobs, errors."""
import pytest
import torch

import pagedinfer as pi


def test_greedy_is_argmax_with_penalties():
    logits = torch.randn(5, 1000)
    tokens = pi.sample(logits, temperature=0.0, num_threads=2)
    assert torch.equal(tokens.long(), logits.argmax(1))
    # A repetition penalty of 1e3 on each row's argmax moves the choice to the runner-up
    # (when positive) unless the penalty cannot push it below.
    top2 = logits.topk(2, dim=1).indices
    prev = [[int(top2[r, 0])] for r in range(5)]
    t = pi.sample(logits, temperature=0.0, presence_penalty=1e3, previous=prev)
    assert torch.equal(t.long(), top2[:, 1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_matches_reference_and_keeps_rules(dtype):
    torch.manual_seed(0)
    logits = (torch.randn(16, 5000) * 3).to(dtype)
    kw = dict(temperature=[0.7, 1.0] * 8, top_k=[0, 50] * 8, top_p=[0.9] * 8 + [1.0] * 8, min_p=0.0,
              seed=list(range(16)), step=3)
    t = pi.sample(logits, num_threads=2, **kw)
    ref = pi.reference.sample(logits, **kw)
    assert (t == ref).float().mean() >= 0.9  # equal except near a boundary (sampling.hpp)
    v = logits.float() / torch.tensor(kw["temperature"])[:, None]
    for r in range(16):
        if kw["top_k"][r]:
            assert v[r, t[r]] >= v[r].topk(50).values[-1]


def test_tokens_do_not_depend_on_batch():
    logits = torch.randn(6, 3000)
    both = pi.sample(logits, top_p=0.9, seed=[1, 2, 3, 4, 5, 6], step=9, num_threads=2)
    for r in range(6):
        alone = pi.sample(logits[r:r + 1], top_p=0.9, seed=r + 1, step=9)
        assert int(alone[0]) == int(both[r])


def test_logprobs_are_raw_log_softmax():
    logits = torch.randn(3, 2000, dtype=torch.float64).float()
    t, lp = pi.sample(logits, top_k=10, seed=7, return_logprobs=True)
    want = torch.log_softmax(logits.double(), 1).gather(1, t.long()[:, None])[:, 0]
    assert torch.allclose(lp.double(), want, atol=1e-4)
    assert 0.0 <= pi.sampling_uniform(3, 4) < 1.0


def test_errors():
    logits = torch.randn(2, 100)
    with pytest.raises(pi.Error, match="top_p = 0"):
        pi.sample(logits, top_p=0.0)
    with pytest.raises(pi.Error, match="3 values for 2 requests"):
        pi.sample(logits, seed=[1, 2, 3])
    with pytest.raises(pi.Error, match="outside"):
        pi.sample(logits, previous=[[0], [100]])
    bad = logits.clone()
    bad[1, 5] = float("nan")
    with pytest.raises(pi.Error, match=r"logits\[1\]\[5\] = nan"):
        pi.sample(bad)
