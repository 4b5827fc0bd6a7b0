"""SigLIP (issue 14: any CLIP/SigLIP-style checkpoint) on the shipped digits with a tiny random SigLIP: the
pairwise sigmoid loss against a reference written out pair by pair, contrastive training from chance, the
zero-shot head against a random one, what partial fine-tuning trains, checkpoints in plain transformers, predict
over any label set, ONNX, and one-line refusals of models that are neither CLIP nor SigLIP. DDP: test_clip.py's
gloo test runs the sigmoid loss too."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.clip import CPU, DIGITS, classify, digit_png, predict_image
from helpers.runs import FP32, ftcli, train_once

PROMPTS = [f"a photo of the digit {k}." for k in range(10)]


@pytest.fixture(scope="session")
def siglip(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path):
    """The tiny random SigLIP trained with the sigmoid loss on digit images captioned "a photo of the digit k."
    (16 epochs, ~10 s on one thread), evaluated on the whole validation split (360)."""
    threads = torch.get_num_threads()
    try:
        return train_once(
            tmp_path_factory, cache_dir, "siglip_contrastive", *CPU, "model=tiny_siglip", "dataset=digits_captions",
            "strategy=full", "trainer.epochs=16",
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)


# ----------------------------------------------------------------------------------------------
# the loss


def _reference_sigmoid_loss(image: np.ndarray, text: np.ndarray, t: float, b: float) -> float:
    """Zhai et al. 2023, eq. 1, pair by pair in float64: −(1/N) Σ_i Σ_j log σ(z_ij (t·x_i·y_j + b))."""
    n = len(image)
    total = 0.0
    for i in range(n):
        for j in range(n):
            x = image[i] / math.sqrt(sum(v * v for v in image[i]))
            y = text[j] / math.sqrt(sum(v * v for v in text[j]))
            z = 1.0 if i == j else -1.0
            logit = t * sum(float(a) * float(c) for a, c in zip(x, y, strict=True)) + b
            total += math.log1p(math.exp(-z * logit))  # −log σ(z·logit)
    return total / n


def test_sigmoid_loss_matches_the_pairwise_reference() -> None:
    from ftcli.tasks.objectives.clip_losses import sigmoid_loss

    g = torch.Generator().manual_seed(3)
    image, text = torch.randn(7, 5, generator=g, dtype=torch.float64), torch.randn(7, 5, generator=g)
    norm = torch.nn.functional.normalize
    scale, bias = torch.tensor([math.log(10.0)]), torch.tensor([-4.0])
    ours = sigmoid_loss(norm(image, dim=-1), norm(text.double(), dim=-1), scale, bias).item()
    reference = _reference_sigmoid_loss(image.numpy(), text.double().numpy(), 10.0, -4.0)
    assert ours == pytest.approx(reference, rel=1e-6)


# ----------------------------------------------------------------------------------------------
# contrastive training


@pytest.mark.slow  # the tiny SigLIP contrastive run (session fixture) takes ~70 s on 2 cores: make test-slow
def test_sigmoid_contrastive_run_takes_zero_shot_from_chance_to_090(siglip) -> None:
    out, _, result = siglip
    print({k: round(result[k], 4) for k in ("zeroshot_accuracy", "accuracy", "i2t_r1", "t2i_r1", "loss")})
    assert result["zeroshot_accuracy"] < 0.2  # 10 classes: chance
    assert result["accuracy"] >= 0.9 and result["i2t_r1"] >= 0.9
    config = json.loads((out / "checkpoints" / "best" / "config.json").read_text())
    assert config["model_type"] == "siglip" and config["architectures"] == ["FtcliSiglipForImageClassification"]


@pytest.mark.slow  # the tiny SigLIP contrastive run (session fixture) takes ~70 s on 2 cores: make test-slow
def test_checkpoint_in_plain_transformers_reproduces_ftcli(siglip, tmp_path: Path) -> None:
    """SiglipModel (both towers, prompts padded to max_length) gives ftcli predict's probabilities; the
    image-classification class (trust_remote_code) gives SigLIP's own zero-shot logits, bias included."""
    from PIL import Image
    from transformers import AutoModelForImageClassification, AutoProcessor, SiglipModel, pipeline

    out, _, _ = siglip
    best = out / "checkpoints" / "best"
    image_path, _ = digit_png(tmp_path)
    ours = predict_image(out, image_path, tmp_path)

    processor = AutoProcessor.from_pretrained(best)
    image = Image.open(image_path)
    model = SiglipModel.from_pretrained(best).eval()
    inputs = processor(text=PROMPTS, images=image, return_tensors="pt", padding="max_length", max_length=16)
    with torch.no_grad():
        logits = model(**inputs).logits_per_image[0]
    np.testing.assert_allclose(logits.softmax(-1).numpy(), [ours[str(k)] for k in range(10)], atol=1e-4)

    classifier = AutoModelForImageClassification.from_pretrained(best, trust_remote_code=True).eval()
    with torch.no_grad():
        head = classifier(**processor(images=image, return_tensors="pt")).logits[0]
    np.testing.assert_allclose(head.numpy(), logits.numpy(), atol=1e-4)  # sigmoid(head) = SigLIP's probabilities
    top = pipeline("image-classification", model=str(best), trust_remote_code=True)(str(image_path), top_k=1)[0]
    assert top["label"] == max(ours, key=ours.get)


@pytest.mark.slow  # an end-to-end CLI run of 20-45 s on 2 cores: make test-slow
def test_predict_zero_shot_over_any_labels(siglip, tmp_path: Path) -> None:
    out, _, _ = siglip
    image_path, label = digit_png(tmp_path)
    probs = predict_image(out, image_path, tmp_path, "labels=[cat,dog,horse]")
    assert list(probs) == ["cat", "dog", "horse"] and sum(probs.values()) == pytest.approx(1.0, abs=1e-4)
    digits = predict_image(out, image_path, tmp_path, f"labels=[{label},{(label + 1) % 10}]")
    assert max(digits, key=digits.get) == str(label)


@pytest.mark.slow  # the tiny SigLIP contrastive run (session fixture) takes ~70 s on 2 cores: make test-slow
def test_onnx_export_of_the_image_tower_and_head(siglip, tmp_path: Path) -> None:
    out, _, _ = siglip
    r = ftcli("export", f"checkpoint={out}", f"output={tmp_path / 'onnx'}", "verify_samples=32")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / "onnx" / "onnx_check.json").read_text())["max_abs_diff"] < 1e-4


@pytest.mark.slow  # the tiny SigLIP contrastive run (session fixture) takes ~70 s on 2 cores: make test-slow
def test_zero_shot_evaluation_of_a_siglip_folder_from_elsewhere(siglip, tmp_path: Path) -> None:
    """A plain SiglipModel folder: ftcli eval picks CLIP zero-shot classification and gets the run's number."""
    from transformers import AutoProcessor, SiglipModel

    from ftcli.config.registry import ASSETS_DIR

    out, _, result = siglip
    plain = tmp_path / "plain"
    SiglipModel.from_pretrained(out / "checkpoints" / "best").save_pretrained(plain)
    AutoProcessor.from_pretrained(out / "checkpoints" / "best").save_pretrained(plain)
    digits = ASSETS_DIR / "digits"
    data = ["dataset=files", f"dataset.train_file={digits / 'train.parquet'}", "dataset.image_column=image"]
    data += [f"dataset.validation_file={digits / 'validation.parquet'}"]
    args = [f"checkpoint={plain}", *data, DIGITS.replace("task.", "eval."), FP32, "eval.bootstrap=0"]
    r = ftcli("eval", *args, f"hydra.run.dir={tmp_path / 'eval'}")
    assert r.returncode == 0, r.stderr[-2000:]
    metrics = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert metrics["task"] == "clip_classification" and metrics["accuracy"] == pytest.approx(result["accuracy"])


# ----------------------------------------------------------------------------------------------
# classification from the zero-shot head


def siglip_classify(siglip, tmp_path: Path, name: str, *overrides: str) -> dict:
    return classify(siglip, tmp_path, name, *overrides, model="tiny_siglip")


@pytest.mark.slow  # the tiny SigLIP contrastive run (session fixture) takes ~70 s on 2 cores: make test-slow
def test_zero_shot_head_beats_a_random_head_at_equal_steps(siglip, tmp_path: Path) -> None:
    steps = ["strategy=feature_extract", "trainer.max_steps=10", "trainer.save_checkpoints=false"]
    zs = siglip_classify(siglip, tmp_path, "zs", *steps)
    rnd = siglip_classify(siglip, tmp_path, "rnd", *steps, "task.head_init=random")
    print({"zero-shot head": zs["accuracy"], "random head": rnd["accuracy"], "baseline": zs["zeroshot_accuracy"]})
    assert zs["zeroshot_accuracy"] == rnd["zeroshot_accuracy"]
    assert zs["accuracy"] > rnd["accuracy"] + 0.2


@pytest.mark.slow  # the tiny SigLIP contrastive run (session fixture) takes ~70 s on 2 cores: make test-slow
def test_partial_trains_the_top_layer_the_pooling_head_and_the_classifier(siglip, tmp_path: Path) -> None:
    """SigLIP's image tower has no projection: partial's "post" is its final norm and attention-pooling head;
    the text tower, logit_scale and logit_bias never train under image classification."""
    from ftcli.models.shipped.modeling_ftcli_clip import FtcliSiglipForImageClassification

    model = FtcliSiglipForImageClassification.from_pretrained(siglip[0] / "checkpoints" / "best")
    vision = model.vision_model
    count = lambda *modules: sum(p.numel() for m in modules for p in m.parameters())  # noqa: E731
    post = count(vision.encoder.layers[-1], vision.post_layernorm, vision.head)
    dry = ["trainer.dry_run=true"]
    partial = siglip_classify(siglip, tmp_path, "dry1", "strategy=partial", "strategy.unfreeze_layers=1", *dry)
    full = siglip_classify(siglip, tmp_path, "dry2", "strategy=full", *dry)
    assert partial["trainable_params"] == post + count(model.classifier)
    assert full["trainable_params"] == count(vision, model.classifier) < full["total_params"]


@pytest.mark.slow  # the tiny SigLIP contrastive run (session fixture) takes ~70 s on 2 cores: make test-slow
def test_lora_fine_tuned_classifier_loads_in_plain_transformers(siglip, tmp_path: Path) -> None:
    """LoRA on the image tower's attention and MLP Linears (saved merged) reproduces ftcli predict in plain
    transformers (trust_remote_code: the SigLIP class ships in the folder)."""
    from PIL import Image
    from transformers import AutoModelForImageClassification, AutoProcessor

    siglip_classify(siglip, tmp_path, "lora", "strategy=lora", "trainer.max_steps=4")
    best = tmp_path / "lora" / "checkpoints" / "best"
    image_path, _ = digit_png(tmp_path)
    ours = predict_image(tmp_path / "lora", image_path, tmp_path)
    model = AutoModelForImageClassification.from_pretrained(best, trust_remote_code=True).eval()
    assert type(model).__name__ == "FtcliSiglipForImageClassification"
    inputs = AutoProcessor.from_pretrained(best)(images=Image.open(image_path), return_tensors="pt")
    with torch.no_grad():
        probs = model(**inputs).logits.softmax(-1)[0].numpy()
    np.testing.assert_allclose(probs, [ours[str(k)] for k in range(10)], atol=1e-5)


# ----------------------------------------------------------------------------------------------
# what is refused


def test_a_model_that_is_neither_clip_nor_siglip_is_refused_in_one_line(tmp_path: Path, compose) -> None:
    from transformers import BertConfig, Siglip2Config

    from ftcli.config.errors import FtcliError
    from ftcli.train import train

    BertConfig().save_pretrained(tmp_path / "bert")
    args = ["model=tiny_clip", "model.init=pretrained", f"model.name_or_path={tmp_path / 'bert'}"]
    r = ftcli("train", *args, "dataset=digits_captions", *CPU, f"hydra.run.dir={tmp_path / 'r'}")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr[-2000:]
    assert "a bert model, not a CLIP or SigLIP" in r.stderr
    Siglip2Config().save_pretrained(tmp_path / "siglip2")
    args[-1] = f"model.name_or_path={tmp_path / 'siglip2'}"
    with pytest.raises(FtcliError, match="a siglip2 model: SigLIP2's NaFlex"):
        train(compose(*CPU, *args, "dataset=digits_captions", "trainer.max_steps=1"))


def test_siglip_model_configs_compose(compose) -> None:
    cfg = compose("model=siglip_b16", "task=clip_classification", "dataset=digits")
    assert cfg.model.name_or_path == "google/siglip-base-patch16-224" and cfg.model.max_length == 64
    assert compose("model=tiny_siglip", "dataset=digits_captions").task.name == "clip_contrastive"
