"""GRU/LSTM encoder-decoders without and with Bahdanau / Luong attention, and decoding."""

from __future__ import annotations

import pytest
import torch
from conftest import TOL

from explore_attention import train as tr
from explore_attention.decoding import beam_search, greedy, reorder_state
from explore_attention.models.seq2seq import ATTENTIONS, Seq2Seq

pytestmark = pytest.mark.usefixtures("one_thread")


def _model(attention: str, cell: str = "gru") -> Seq2Seq:
    torch.manual_seed(0)
    return Seq2Seq(
        src_vocab=12, tgt_vocab=11, emb_dim=8, hidden=16, attention=attention, cell=cell
    ).eval()


@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_padding_changes_nothing(attention: str, cell: str) -> None:
    """A padded batch gives each row what it gives alone; padded keys get weight exactly 0."""
    m = _model(attention, cell)
    a, b = torch.tensor([[3, 4, 5, 6, 7]]), torch.tensor([[8, 9, 10]])
    tgt = torch.tensor([[1, 4, 5, 6], [1, 7, 3, 9]])
    batch = torch.tensor([[3, 4, 5, 6, 7], [8, 9, 10, 0, 0]])
    res = m(batch, tgt, return_weights=True)
    out = res.logits
    torch.testing.assert_close(out[:1], m(a, tgt[:1]).logits, **TOL[torch.float32])
    torch.testing.assert_close(out[1:], m(b, tgt[1:]).logits, **TOL[torch.float32])
    if attention == "none":
        assert res.attentions == {}
    else:
        (w,) = res.attentions["cross"]  # one layer, one head
        assert w.shape == (2, 1, 4, 5)
        w = w[:, 0]
        torch.testing.assert_close(w.sum(-1), torch.ones(2, 4))
        assert torch.all(w[1, :, 3:] == 0)


def test_luong_dot_is_the_dot_product_of_state_and_keys() -> None:
    """The weights the model returns are softmax(s_i · k_j) on its own state and keys (float64)."""
    m = _model("luong-dot").double()
    src = torch.tensor([[3, 4, 5, 6]])
    state = m.encode(src)
    _, new, w = m.step(torch.tensor([1]), state)
    ref = torch.softmax(torch.einsum("bd,bsd->bs", new["h"], state["keys"]), -1)
    torch.testing.assert_close(w, ref, atol=1e-10, rtol=1e-7)


def test_decoding_greedy_and_beam() -> None:
    m = _model("bahdanau")
    src = torch.tensor([[3, 4, 5, 6], [7, 8, 0, 0]])
    hyp, w = greedy(m, src, max_len=6)
    assert len(hyp) == 2 and w.shape[0] == 2 and w.shape[2] == 4
    # greedy picks the teacher-forced argmax at every step of its own output
    for row, h in zip(src, hyp):
        tgt_in = torch.tensor([[1, *h]])
        logits = m(row[None, : int((row != 0).sum())], tgt_in).logits
        assert logits[0, : len(h)].argmax(-1).tolist() == h
    assert beam_search(m, src, beam=1, max_len=6) == hyp

    def logp(row: torch.Tensor, h: list[int]) -> float:
        ids = torch.tensor([[1, *h, 2]])
        lp = torch.log_softmax(m(row[None], ids[:, :-1]).logits, -1)
        return float(lp[0].gather(1, ids[0, 1:, None]).sum().detach())

    # a wider beam never finds a worse complete hypothesis than greedy (length-normalised)
    b4 = beam_search(m, src[:1], beam=4, max_len=6, alpha=0.0)[0]
    if len(hyp[0]) < 6:
        assert logp(src[0], b4) >= logp(src[0], hyp[0]) - 1e-5
    idx = torch.tensor([1, 1, 0])
    st = reorder_state(m.encode(src), idx)
    assert st["keys"].shape[0] == 3
    torch.testing.assert_close(st["keys"][2], m.encode(src)["keys"][0])


@pytest.mark.parametrize("attention", ["luong-dot", "luong-general", "luong-concat"])
def test_every_variant_learns(attention: str) -> None:
    task = tr.get_task(
        "reverse",
        seed=0,
        model=attention,
        hidden=32,
        emb_dim=16,
        max_len=5,
        eval_size=128,
    )
    res = tr.train(task, tr.TrainConfig(steps=250, batch_size=32, eval_every=250), progress=False)
    assert res.history[-1]["loss"] < 0.3, res.history
    assert res.history[-1]["accuracy"] > 0.6, res.history


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="attention must be one of"):
        Seq2Seq(src_vocab=5, tgt_vocab=5, attention="luong-cosine")
    with pytest.raises(ValueError, match="cell"):
        Seq2Seq(src_vocab=5, tgt_vocab=5, cell="rnn")
    with pytest.raises(ValueError, match="hidden"):
        Seq2Seq(src_vocab=5, tgt_vocab=5, hidden=0)
    m = _model("bahdanau")
    with pytest.raises(ValueError, match="src must be a"):
        m(torch.zeros(2, 3), torch.ones(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="tgt_in must be"):
        m(torch.ones(2, 3, dtype=torch.long), torch.ones(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="beam"):
        beam_search(m, torch.ones(1, 3, dtype=torch.long), beam=0)
