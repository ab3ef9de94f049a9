"""Whisper tiny.en from CTranslate2's model.bin: the reader, the exact conversion, transcription."""

from __future__ import annotations

import random
import shutil
import struct
from functools import cache

import numpy as np
import pytest
import torch
from conftest import need_tool

from explore_attention.audio.wer import edit_distance, normalize, word_error_rate
from explore_attention.models import whisper_ct2 as W


@pytest.fixture(scope="module")
def ct2():
    return W.read_ct2_model(W.shipped_model_dir())


@pytest.fixture(scope="module")
def converted(ct2):
    return W.ct2_to_hf_state_dict(ct2)


def test_reader_reads_the_shipped_file(ct2):
    assert ct2.spec == "WhisperSpec"
    assert ct2.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    emb = ct2.variables["decoder/embeddings/weight"]
    assert emb.shape == (51864, 384) and emb.dtype == np.float16  # tiny.en, stored as float16
    assert ct2.variables["encoder/conv1/weight"].shape == (384, 80, 3)
    # Independently of the reader's walk through the file: find the embedding's record by its
    # name in the raw bytes and decode its shape and first row by hand.
    raw = (W.shipped_model_dir() / "model.bin").read_bytes()
    name = b"decoder/embeddings/weight\x00"
    at = raw.index(name) + len(name)
    ndim = raw[at]
    dims = struct.unpack_from(f"<{ndim}I", raw, at + 1)
    start = at + 1 + 4 * ndim + 1 + 4
    first = np.frombuffer(raw[start : start + 2 * 384], dtype="<f2")
    assert dims == (51864, 384)
    np.testing.assert_array_equal(first, emb[0])


def test_conversion_uses_every_stored_tensor_exactly_once(ct2, converted):
    state, report = converted
    assert report.used_exactly_once()
    assert set(report.uses) | set(report.flags) == set(ct2.variables)
    # Four encoder + four decoder self-attentions and four cross-attentions have a fused
    # key bias, which Whisper does not have: all twelve blocks are checked to be zero.
    assert len(report.zero_rows_checked) == 12
    n_weights = sum(v.size for k, v in ct2.variables.items() if k not in report.flags)
    n_zero_bias = 12 * 384
    n_hf = sum(t.numel() for k, t in state.items() if k != "proj_out.weight")  # tied
    assert n_hf + n_zero_bias == n_weights


def test_round_trip_is_bitwise(ct2, converted):
    state, report = converted
    back = W.hf_to_ct2_variables(state)
    assert set(back) == set(report.uses)
    for name, arr in back.items():
        stored = ct2.variables[name]
        assert arr.shape == stored.shape, name
        np.testing.assert_array_equal(arr.view(np.uint16), stored.view(np.uint16), err_msg=name)
    # float16 -> float32 widening is exact: narrowing back changes no value.
    for name, t in state.items():
        assert torch.equal(t.half().float(), t), name


def test_spot_checks_of_the_fused_layout(ct2, converted):
    state, _ = converted
    v = ct2.variables
    qkv = v["encoder/layer_2/self_attention/linear_0/weight"]  # rows: [q; k; v]
    np.testing.assert_array_equal(
        state["model.encoder.layers.2.self_attn.k_proj.weight"].numpy(), qkv[384:768]
    )
    kv_bias = v["decoder/layer_1/attention/linear_1/bias"]  # [k bias (0); v bias]
    np.testing.assert_array_equal(
        state["model.decoder.layers.1.encoder_attn.v_proj.bias"].numpy(), kv_bias[384:]
    )
    assert not kv_bias[:384].any()
    np.testing.assert_array_equal(
        state["model.decoder.layers.3.final_layer_norm.weight"].numpy(),
        v["decoder/layer_3/ffn/layer_norm/gamma"],
    )
    assert state["proj_out.weight"] is state["model.decoder.embed_tokens.weight"]


def test_saved_folder_loads_bitwise(tmp_path, converted):
    state, _ = converted
    out = W.convert(out_dir=tmp_path / "whisper")
    assert not list(tmp_path.glob("whisper.tmp-*")), "temporary folder left behind"
    model, processor = W.load_whisper(str(out))
    loaded = model.state_dict()
    for name, t in state.items():
        assert torch.equal(loaded[name], t), name
    assert model.config._attn_implementation == "eager"
    assert processor.tokenizer.convert_ids_to_tokens(51863) == "<|30.00|>"
    assert [1, 0] in list(model.generation_config.alignment_heads)
    # A second call keeps the existing folder instead of rewriting it.
    mtime = (out / "model.safetensors").stat().st_mtime_ns
    assert W.convert(out_dir=out) == out
    assert (out / "model.safetensors").stat().st_mtime_ns == mtime
    # A folder from another converter version is stale and would be converted again.
    marker = out / "explore_attention_conversion.json"
    assert W._is_current(out)
    marker.write_text('{"converter_version": 0}')
    assert not W._is_current(out)
    shutil.rmtree(out)


def test_reader_rejects_bad_files(tmp_path):
    raw = (W.shipped_model_dir() / "model.bin").read_bytes()
    (tmp_path / "v5.bin").write_bytes(struct.pack("<I", 5) + raw[4:])
    with pytest.raises(ValueError, match="binary version 5"):
        W.read_ct2_model(tmp_path / "v5.bin")
    (tmp_path / "cut.bin").write_bytes(raw[:100_000])
    with pytest.raises(ValueError, match="truncated"):
        W.read_ct2_model(tmp_path / "cut.bin")
    (tmp_path / "tail.bin").write_bytes(raw + b"\x00")
    with pytest.raises(ValueError, match="trailing bytes"):
        W.read_ct2_model(tmp_path / "tail.bin")
    with pytest.raises(ValueError, match=r"no CTranslate2 model\.bin"):
        W.read_ct2_model(tmp_path / "missing")
    with pytest.raises(TypeError, match="path must be"):
        W.read_ct2_model(123)
    with pytest.raises(TypeError, match="name must be"):
        W.load_whisper(name=7)


# ----------------------------------------------------------------------------- WER
def _levenshtein_reference(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    """Edit distance by its recursive definition (memoised), independent of the DP table."""

    @cache
    def d(i: int, j: int) -> int:
        if i == 0 or j == 0:
            return i + j
        return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))

    return d(len(a), len(b))


def test_edit_distance_matches_recursive_definition():
    rng = random.Random(0)
    for _ in range(200):
        a = tuple(rng.choice("abc") for _ in range(rng.randint(0, 7)))
        b = tuple(rng.choice("abc") for _ in range(rng.randint(0, 7)))
        assert edit_distance(list(a), list(b)) == _levenshtein_reference(a, b)
    assert normalize("Hello, World! It's") == ["hello", "world", "it's"]
    assert word_error_rate("the cat sat", "The cat, sat.") == 0.0
    assert word_error_rate("a b c d", "a x c") == 0.5  # one substitution, one deletion
    with pytest.raises(ValueError, match="reference"):
        word_error_rate("...", "a")


# The "Please call Stella" elicitation sentence (Speech Accent Archive), spoken by espeak-ng.
STELLA = "Please call Stella and ask her to bring these things with her from the store."
WER_BOUND = 0.15  # at most 2 of the 15 words wrong (measured: 0.0 with en-us at 160 wpm)


@pytest.mark.slow
def test_converted_model_transcribes_espeak_speech():
    from explore_attention.audio import synth
    from explore_attention.audio.alignment import transcribe

    need_tool("espeak-ng")
    model, processor = W.load_whisper()
    audio = synth.speak(STELLA, voice="en-us", speed=160)
    text, tokens, _ = transcribe(model, processor, audio)
    wer = word_error_rate(STELLA, text)
    assert wer <= WER_BOUND, f"WER {wer:.3f} > {WER_BOUND}: {text!r}"
    assert tokens[:2] == [50257, 50362] and tokens[-1] == 50256
