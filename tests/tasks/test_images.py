"""Image classification on real images that ship offline (scikit-learn's handwritten digits, written out as
PNG files) with tiny random ResNet, ViT, ConvNeXt and VGG (timm) models: every strategy with exact
trainable counts, frozen BatchNorm, the feature cache, checkpoints in plain transformers, ONNX, predict,
and what bad images get."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.runs import FP32, cut_run, ftcli

from ftcli.config.errors import FtcliError
from ftcli.train import train

# A small slice of the digits: fast, and still 10 real classes.
SMALL = ["hardware=cpu", FP32, "trainer.batch_size=8", "trainer.save_checkpoints=false"]
MODELS = {  # model option → its overrides: 16×16 inputs (ViT: 4×4 patches); VGG's five max-pools need 32
    "tiny_resnet": ["dataset.image_size=16"],
    "tiny_vit": ["dataset.image_size=16", "model.config_overrides.patch_size=4"],
    "tiny_convnext": ["dataset.image_size=16"],
    "tiny_vgg": ["dataset.image_size=32"],
}


@pytest.fixture(autouse=True)
def image_cache(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """ftcli eval / predict / export cache pixels where FTCLI_CACHE_DIR says: the session's cache, not ~."""
    monkeypatch.setenv("FTCLI_CACHE_DIR", str(cache_dir))
    return cache_dir


def _png(pixels: np.ndarray, path: Path, side: int = 16) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.round(pixels * 255 / 16).astype(np.uint8), mode="L")
    image.resize((side, side), Image.Resampling.BILINEAR).save(path)  # 8×8 scans, upscaled


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``train/<digit>/*.png`` (40 per class) and ``validation/<digit>/*.png`` (10 per class), 16×16
    grayscale PNGs of scikit-learn's real handwritten digits, and ``train.csv`` / ``validation.csv``
    listing the same files by paths relative to the folder."""
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("digits")
    data = load_digits()
    counts = {"train": 40, "validation": 10}
    for split, n in counts.items():
        rows = []
        for label in range(10):
            picks = np.flatnonzero(data.target == label)
            picks = picks[:n] if split == "train" else picks[40 : 40 + n]
            for i in picks:
                rel = f"{split}/{label}/{i:04d}.png"
                _png(data.images[i], root / rel)
                rows.append({"image": rel, "label": str(label)})
        with (root / f"{split}.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["image", "label"])
            w.writeheader()
            w.writerows(rows)
    return root


def folder(root: Path) -> list[str]:
    return ["dataset=imagefolder", f"dataset.data_dir={root}", "dataset.hflip=false"]


# ----------------------------------------------------------------------------------------------
# every strategy on ResNet, ViT and VGG: exact trainable counts, and one real step


RESNET = {  # tiny_resnet: 16-wide stem, stages 16 / 32 / 64 (one basic block each), 10 classes
    "stem": 16 * 3 * 49 + 2 * 16,
    "stages": [2 * (16 * 16 * 9 + 32), 16 * 32 + 64 + 16 * 32 * 9 + 64 + 32 * 32 * 9 + 64, 0],
    "head": 64 * 10 + 10,
    "biases": 16 + 2 * 16 + 3 * 32 + 3 * 64,  # BatchNorm biases only: its convs have none
    "lora": 0,
}
RESNET["stages"][2] = 32 * 64 + 128 + 32 * 64 * 9 + 128 + 64 * 64 * 9 + 128
# LoRA r=8 on every Conv2d in the stages: A is Conv2d(in, 8, k), B is Conv2d(8, out, 1)
RESNET["lora"] = sum(8 * i * k * k + 8 * o for i, o, k in [(16, 16, 3)] * 2 + [(16, 32, 1), (16, 32, 3), (32, 32, 3)])
RESNET["lora"] += sum(8 * i * k * k + 8 * o for i, o, k in [(32, 64, 1), (32, 64, 3), (64, 64, 3)])
H, FF, TOKENS = 32, 64, (16 // 4) ** 2 + 1  # tiny_vit at 16×16 with 4×4 patches: 16 patches + [CLS]
VIT_LAYER = 4 * (H * H + H) + 2 * 2 * H + (H * FF + FF) + (FF * H + H)
VIT = {
    "embeddings": H + TOKENS * H + H * 3 * 16 + H,  # [CLS], positions, the patch projection
    "layer": VIT_LAYER,
    "post": 2 * H,  # the final LayerNorm
    "head": H * 10 + 10,
    "biases": H + 2 * (4 * H + 2 * H + FF + H) + H,
    "lora": 2 * (4 * 8 * (H + H) + 8 * (H + FF) + 8 * (FF + H)),  # r=8 on q, k, v, o, fc1, fc2
}
VGG_CONVS = [(3, 64), (64, 128), (128, 256), (256, 256), (256, 512), (512, 512), (512, 512), (512, 512)]
VGG_BLOCKS = [[0], [1], [2, 3], [4, 5], [6, 7]]  # timm's vgg11: conv indices between the max-pools
VGG = {
    "blocks": [sum(VGG_CONVS[i][1] * (VGG_CONVS[i][0] * 9 + 1) for i in block) for block in VGG_BLOCKS],
    "post": (16 * 512 * 49 + 16) + (4096 * 16 + 4096),  # VGG's MLP (pre_logits), cut to 16 hidden units
    "head": 4096 * 10 + 10,
    "biases": sum(o for _, o in VGG_CONVS) + 16 + 4096,
    "lora": sum(8 * i * 9 + 8 * o for i, o in VGG_CONVS),
}


def _expected(model: str, strategy: str) -> tuple[int, int]:
    """(trainable, total) for a strategy with its shipped settings (partial: the top 2 layer groups)."""
    if model == "tiny_resnet":
        r, total = RESNET, RESNET["stem"] + sum(RESNET["stages"]) + RESNET["head"]
        counts = {
            "partial": r["head"] + r["stages"][1] + r["stages"][2],
            "bitfit": r["head"] + r["biases"],
            "lora": r["head"] + r["lora"],
        }
        extra = r["lora"]
    elif model == "tiny_vit":
        v = VIT
        total = v["embeddings"] + 2 * v["layer"] + v["post"] + v["head"]
        counts = {
            "partial": v["head"] + v["post"] + 2 * v["layer"],
            "bitfit": v["head"] + v["biases"],
            "lora": v["head"] + v["lora"],
        }
        extra = v["lora"]
    else:
        g = VGG
        total = sum(g["blocks"]) + g["post"] + g["head"]
        counts = {
            "partial": g["head"] + g["post"] + g["blocks"][3] + g["blocks"][4],
            "bitfit": g["head"] + g["biases"],
            "lora": g["head"] + g["lora"],
        }
        extra = g["lora"]
    head = {"tiny_resnet": RESNET["head"], "tiny_vit": VIT["head"] + VIT["post"], "tiny_vgg": VGG["head"] + VGG["post"]}
    counts["full"] = total
    counts["feature_extract"] = {"tiny_resnet": RESNET, "tiny_vit": VIT, "tiny_vgg": VGG}[model]["head"]
    counts["lp_ft"] = counts["feature_extract"]
    counts["gradual_unfreeze"] = head[model]  # stage 0: the head and what follows the last layer
    return counts[strategy], total + (extra if strategy == "lora" else 0)


STRATEGIES = ["feature_extract", "full", "partial", "bitfit", "lora", "gradual_unfreeze", "lp_ft"]


@pytest.mark.parametrize("model", ["tiny_resnet", "tiny_vit", "tiny_vgg"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_runs_on_images_with_exact_trainable_counts(compose, digits, model, strategy) -> None:
    cfg = compose(
        *folder(digits),
        *SMALL,
        f"model={model}",
        *MODELS[model],
        f"strategy={strategy}",
        "dataset.max_train_samples=16",
        "dataset.max_eval_samples=16",
        "trainer.max_steps=1",
    )
    result = train(cfg)
    trainable, total = _expected(model, strategy)
    assert (result["trainable_params"], result["total_params"]) == (trainable, total)
    assert 0.0 <= result["accuracy"] <= 1.0 and np.isfinite(result["loss"])


def test_layer_groups_of_each_architecture() -> None:
    """ResNet/ConvNeXt stages, ViT layers, VGG conv blocks, timm's EfficientNet stages; stem 0; head last."""
    import timm
    from transformers import AutoConfig, AutoModelForImageClassification, TimmWrapperConfig

    from ftcli.models.architectures import depth_map, standard_roles

    built = {
        "resnet": AutoConfig.for_model("resnet", hidden_sizes=[8, 16, 32], depths=[1, 1, 1], embedding_size=8),
        "convnext": AutoConfig.for_model("convnext", hidden_sizes=[8, 16], depths=[1, 1], num_stages=2),
        "vit": AutoConfig.for_model("vit", hidden_size=16, num_hidden_layers=3, num_attention_heads=2),
        "vgg": TimmWrapperConfig(architecture="vgg11", model_args={"mlp_ratio": 1 / 256}, num_labels=4),
        "lite0": TimmWrapperConfig(architecture="tf_efficientnet_lite0", num_labels=4),
    }
    expect = {"resnet": 3, "convnext": 2, "vit": 3, "vgg": 5, "lite0": 7}
    stems = {"resnet": "resnet.embedder.", "convnext": "convnext.embeddings.", "vit": "vit.embeddings."}
    stems["lite0"] = "timm_model.conv_stem."
    heads = {"vgg": "timm_model.head.fc.", "lite0": "timm_model.classifier."}
    for name, config in built.items():
        config.num_labels = 4
        model = AutoModelForImageClassification.from_config(config)
        depth, layers = depth_map(model, standard_roles(model))
        assert layers == expect[name], name
        assert {d for n, d in depth.items() if n.startswith(heads.get(name, "classifier"))} == {layers + 1}, name
        if name in stems:
            assert {d for n, d in depth.items() if n.startswith(stems[name])} == {0}, name
    vgg = AutoModelForImageClassification.from_config(built["vgg"])
    depth, _ = depth_map(vgg, standard_roles(vgg))
    assert depth["timm_model.features.0.weight"] == 1 and depth["timm_model.features.18.weight"] == 5
    assert depth["timm_model.pre_logits.fc1.weight"] == 6  # VGG's MLP: post, trains with the head
    assert timm.__version__  # the vision extra is installed: make test exercises VGG


# ----------------------------------------------------------------------------------------------
# what trains, what stays: frozen BatchNorm, weight decay


def _built(compose, digits, monkeypatch, *overrides: str):
    """The model with its strategy applied, as train() builds it (a dry run keeps nothing else)."""
    import ftcli.train

    kept = {}
    real = ftcli.train.build

    def spy(*args):
        kept["built"] = real(*args)
        return kept["built"]

    monkeypatch.setattr(ftcli.train, "build", spy)  # the command's phase, as train() calls it
    train(compose(*folder(digits), *SMALL, "trainer.dry_run=true", *overrides))
    return kept["built"]


def test_frozen_batchnorm_keeps_its_running_statistics(compose, digits, monkeypatch) -> None:
    import ftcli.training.phases

    seen = {}
    real = ftcli.training.phases.build_strategy

    def keep(cfg, roles):
        strategy = real(cfg, roles)
        setup = strategy.setup

        def spying(model):
            setup(model)
            seen["model"] = model
            seen["before"] = {n: b.clone() for n, b in model.named_buffers()}

        strategy.setup = spying
        return strategy

    monkeypatch.setattr(ftcli.training.phases, "build_strategy", keep)
    cfg = compose(
        *folder(digits),
        *SMALL,
        "model=tiny_resnet",
        *MODELS["tiny_resnet"],
        "strategy=partial",
        "strategy.unfreeze_layers=1",
        "dataset.max_train_samples=32",
        "trainer.max_steps=3",
    )
    train(cfg)
    model, before = seen["model"], seen["before"]
    stem = "resnet.embedder.embedder.normalization.running_mean"
    top = "resnet.encoder.stages.2.layers.0.layer.0.normalization.running_mean"
    assert torch.equal(dict(model.named_buffers())[stem], before[stem])  # frozen stage: pretrained statistics
    assert not torch.equal(dict(model.named_buffers())[top], before[top])  # the trained stage re-estimates them
    model.train()  # a frozen norm still normalises with its running statistics, and leaves them as they are
    norms = dict(model.named_modules())
    frozen, trained = norms["resnet.embedder.embedder.normalization"], norms[top.rsplit(".", 1)[0]]
    kept = frozen.running_mean.clone()
    model(pixel_values=torch.randn(4, 3, 16, 16))
    assert torch.equal(frozen.running_mean, kept) and not frozen.training
    assert trained.training


def test_norms_biases_and_vit_tokens_get_no_weight_decay(compose, digits, monkeypatch) -> None:
    for model in ("tiny_resnet", "tiny_vit"):
        built = _built(compose, digits, monkeypatch, f"model={model}", *MODELS[model], "strategy=full")
        groups = built.strategy.param_groups(built.model)
        decay_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
        for name, p in built.model.named_parameters():
            quiet = p.ndim <= 1 or "cls_token" in name or "position_embeddings" in name
            assert (decay_of[id(p)] == 0.0) == quiet, name
        assert {g["weight_decay"] for g in groups} == {0.0, 0.01}


def test_depthwise_convolutions_train_in_fp32_under_cpu_bf16_autocast(compose, digits, monkeypatch, tmp_path) -> None:
    """ConvNeXt's depthwise convolutions: fp32 while they train under CPU bf16 autocast, bf16 when nothing
    needs their gradient, the same numbers as a plain Conv2d without autocast, plain Conv2d in the checkpoint."""
    from torch import nn
    from transformers import AutoModelForImageClassification

    model = _built(compose, digits, monkeypatch, "model=tiny_convnext", "strategy=full").model
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    depthwise = [m for m in convs if m.groups > 1]
    assert depthwise and all(getattr(m, "float_backward", False) for m in depthwise)
    assert not any(getattr(m, "float_backward", False) for m in convs if m.groups == 1)
    conv = depthwise[0]
    x = torch.randn(2, conv.in_channels, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert conv(x).dtype == torch.float32  # grad enabled: the fp32 path
        with torch.no_grad():
            assert conv(x).dtype == torch.bfloat16
    plain = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, padding=conv.padding, groups=conv.groups)
    plain.load_state_dict(conv.state_dict())
    assert torch.equal(conv(x), plain(x))
    model.save_pretrained(tmp_path)
    again = AutoModelForImageClassification.from_pretrained(tmp_path)
    assert not any(getattr(m, "float_backward", False) for m in again.modules())
    mine, theirs = model.state_dict(), again.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)


# ----------------------------------------------------------------------------------------------
# training, the feature cache, checkpoints in plain transformers, ONNX, predict


def test_feature_extract_runs_the_backbone_once(compose, digits, monkeypatch, tmp_path) -> None:
    from ftcli.tasks.inputs.images import ImageInputs

    calls = []
    real = ImageInputs.compute

    def counting(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ImageInputs, "compute", counting)
    overrides = [*folder(digits), *SMALL, "model=tiny_resnet", *MODELS["tiny_resnet"], "strategy=feature_extract"]
    first = train(compose(*overrides, out=tmp_path / "one"))
    assert len(calls) == 2  # train and validation features, computed once each
    second = train(compose(*overrides, out=tmp_path / "two"))
    assert len(calls) == 2  # the second run: cache hits
    assert second["accuracy"] == first["accuracy"]


def test_resume_mid_epoch_with_augmented_batches_is_bit_identical(compose, digits, tmp_path) -> None:
    """Crops and flips are seeded by the batch's rows: a run resumed mid-epoch from a saved state ends
    with the uninterrupted run's weights, BatchNorm statistics included."""

    from safetensors.torch import load_file

    args = [*folder(digits), *SMALL[:-1], "model=tiny_resnet", *MODELS["tiny_resnet"], "strategy=full"]
    args += ["dataset.hflip=true", "dataset.max_train_samples=48", "dataset.max_eval_samples=16"]
    args += ["trainer.epochs=2", "trainer.save_every_steps=4", "trainer.keep_checkpoints=10"]
    full = tmp_path / "full"
    train(compose(*args, out=full))
    cut = tmp_path / "cut"
    cut_run(full, cut, lambda state: state["step"] == 4)
    train(compose(*args, f"resume={cut}", out=tmp_path / "ignored"))
    a = load_file(str(full / "checkpoints" / "last" / "model.safetensors"))
    b = load_file(str(cut / "checkpoints" / "last" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache_dir, digits):
    """A short full fine-tuning run per family, checkpoints saved: {model: checkpoint folder}."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from ftcli.config.registry import config_dir, register_configs

    register_configs()
    out = {}
    for model, extra in MODELS.items():
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = hydra_compose(
                "train",
                overrides=[
                    *folder(digits),
                    *SMALL[:-1],
                    f"model={model}",
                    *extra,
                    "strategy=full",
                    "trainer.max_steps=4",
                ],
            )
        run = tmp_path_factory.mktemp(model)
        cfg.output_dir, cfg.cache_dir = str(run), str(cache_dir)
        train(cfg)
        out[model] = run / "checkpoints" / "best"
    return out


def _ftcli_eval_outputs(ckpt: Path) -> tuple[np.ndarray, np.ndarray]:
    """The validation logits exactly as ``ftcli eval`` computes them (its split_outputs)."""
    from omegaconf import OmegaConf

    from ftcli.config.schemas import HardwareConfig
    from ftcli.evaluate import split_outputs
    from ftcli.runtime.accelerator import make_accelerator
    from ftcli.training.checkpoint import load_checkpoint, task_of

    model, processor, run_cfg = load_checkpoint(ckpt)
    task = task_of(run_cfg)
    hardware = OmegaConf.merge(OmegaConf.structured(HardwareConfig), {"name": "cpu", "accelerator": "cpu"})
    hardware.mixed_precision = "no"
    acc = make_accelerator(hardware)
    outputs, labels, _ = split_outputs(task, model, processor, run_cfg.dataset, 42, run_cfg.model, 16, acc)(
        "validation"
    )
    return outputs, labels


def test_a_tiny_resnet_learns_the_shipped_digits(compose) -> None:
    """The acceptance run: full fine-tuning of a random tiny ResNet on 1,437 real digits (upscaled 8 → 16)."""
    cfg = compose("model=tiny_resnet", "dataset=digits", "dataset.image_size=16", "strategy=full", "hardware=cpu", FP32)
    cfg.trainer.epochs, cfg.trainer.save_checkpoints = 2, False
    result = train(cfg)
    assert result["accuracy"] >= 0.95, result["accuracy"]
    assert result["top5_accuracy"] >= result["accuracy"]


@pytest.mark.parametrize("model", list(MODELS))
def test_checkpoint_loads_in_plain_transformers_and_predicts_as_ftcli_eval(trained, digits, model) -> None:
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline

    ckpt = trained[model]
    ours, labels = _ftcli_eval_outputs(ckpt)
    plain = AutoModelForImageClassification.from_pretrained(ckpt).eval()
    processor = AutoImageProcessor.from_pretrained(ckpt)
    files = sorted((digits / "validation").glob("*/*.png"))  # the image folder's order: class, then name
    images = [Image.open(f).convert("RGB") for f in files]
    with torch.inference_mode():
        theirs = plain(**processor(images, return_tensors="pt")).logits.numpy()
    np.testing.assert_allclose(theirs, ours, atol=1e-4)
    assert (theirs.argmax(-1) == ours.argmax(-1)).all()
    assert labels.tolist() == [int(f.parent.name) for f in files]
    label = pipeline("image-classification", model=str(ckpt), device="cpu")(str(files[0]), top_k=1)[0]["label"]
    assert label == plain.config.id2label[int(ours[0].argmax())]


SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "model", ["tiny_resnet", pytest.param("tiny_vit", marks=SLOW), pytest.param("tiny_vgg", marks=SLOW)]
)
def test_onnx_export_matches_pytorch(trained, model, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    from helpers.runs import compose_cmd

    from ftcli.export import run_export

    cfg = compose_cmd("export", f"checkpoint={trained[model]}", f"output={tmp_path}", out=tmp_path)
    result = run_export(cfg)
    assert result["inputs"] == ["pixel_values"]
    assert result["max_abs_diff"] <= 1e-4 and result["verified_on"] == 100


def test_predict_one_image_a_folder_a_list_and_a_table(trained, digits, tmp_path) -> None:
    from helpers.runs import compose_cmd

    from ftcli.predict import run_predict

    ckpt = trained["tiny_resnet"]
    ours, _ = _ftcli_eval_outputs(ckpt)
    first = sorted((digits / "validation").glob("*/*.png"))[0]
    fp32 = ["hardware=cpu", FP32]  # as _ftcli_eval_outputs: bf16 logits of a tiny model can flip a near tie
    one = run_predict(compose_cmd("predict", f"checkpoint={ckpt}", f"image={first}", *fp32, out=tmp_path))
    assert one["label"] == str(int(ours[0].argmax()))
    listing = digits / "list.txt"  # paths relative to the list's folder
    listing.write_text(f"# validation images\n{first.relative_to(digits)}\n")
    inputs = {"folder.csv": digits / "validation", "list.csv": listing, "table.csv": digits / "validation.csv"}
    for out, src in inputs.items():
        args = [f"checkpoint={ckpt}", f"input={src}", f"output={tmp_path / out}", *fp32]
        result = run_predict(compose_cmd("predict", *args, out=tmp_path))
        rows = list(csv.DictReader((tmp_path / out).open()))
        assert rows[0]["image"].endswith(first.name) and {"label", "prob_0", "prob_9"} <= set(rows[0])
        assert result["rows"] == len(rows)
    assert result["accuracy"] == pytest.approx(float((ours.argmax(-1) == np.repeat(np.arange(10), 10)).mean()))


# ----------------------------------------------------------------------------------------------
# bad images


def test_an_image_folder_says_what_is_wrong_with_it(digits, tmp_path) -> None:
    import shutil

    from ftcli.data.images.folder import scan_folder

    found = scan_folder(str(digits / "train"))  # a class layout: one split
    assert len(found.splits["train"][0]) == 400 and set(found.splits) == {"train"}
    both = scan_folder(str(digits))
    assert set(both.splits) == {"train", "validation"} and len(both.splits["validation"][0]) == 100
    root = tmp_path / "pets"
    shutil.copytree(digits / "train", root / "train")
    shutil.copytree(digits / "validation", root / "val")
    (root / "train" / "3" / "notes.txt").write_text("not an image")
    (root / "train" / ".DS_Store").write_text("")
    assert scan_folder(str(root)).ignored == [str(root / "train" / "3" / "notes.txt")]
    (root / "val" / "zebra").mkdir()
    shutil.copy(next((root / "val" / "1").glob("*.png")), root / "val" / "zebra" / "z.png")
    with pytest.raises(FtcliError, match=r"val/zebra is a class that .*train does not have"):
        scan_folder(str(root))
    shutil.rmtree(root / "val" / "zebra")
    (root / "train" / "empty").mkdir()
    with pytest.raises(FtcliError, match=r"class folder .*train/empty has no images"):
        scan_folder(str(root))
    with pytest.raises(FtcliError, match="no such folder"):
        scan_folder(str(tmp_path / "nowhere"))


def test_a_class_named_train_and_unicode_forms_of_one_name_are_read_as_meant(tmp_path) -> None:
    import unicodedata

    from ftcli.data.images.folder import scan_folder

    pixels = np.zeros((8, 8))
    for name in ("train", "bus"):  # a flat folder of vehicles: "train" is a class, not the training split
        for i in range(2):
            _png(pixels, tmp_path / "flat" / name / f"{i}.png")
    flat = scan_folder(str(tmp_path / "flat"))
    assert list(flat.splits) == ["train"] and sorted(set(flat.splits["train"][1])) == ["bus", "train"]
    _png(pixels, tmp_path / "split" / "train" / unicodedata.normalize("NFC", "café") / "0.png")
    _png(pixels, tmp_path / "split" / "validation" / unicodedata.normalize("NFD", "café") / "0.png")
    split = scan_folder(str(tmp_path / "split"))  # the same name, composed on one system, decomposed on another
    assert split.splits["train"][1] == split.splits["validation"][1] == [unicodedata.normalize("NFC", "café")]


def test_image_modes_and_exif_orientation_are_normalised(tmp_path) -> None:
    from PIL import Image

    from ftcli.data.images.decode import open_image

    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (12, 20, 3), dtype=np.uint8))
    for mode in ("L", "LA", "P", "RGBA", "CMYK"):
        path = tmp_path / f"x_{mode}.{'jpg' if mode == 'CMYK' else 'png'}"
        rgb.convert(mode).save(path)
        image = open_image(str(path))
        assert image.mode == "RGB" and image.size == (20, 12), mode
    deep = tmp_path / "x_16bit.png"  # 16-bit grayscale: scaled to 8 bits, not clipped at 255
    Image.fromarray(np.full((12, 20), 65535 // 2, np.uint16)).save(deep)
    assert np.asarray(open_image(str(deep)))[0, 0].tolist() == [127, 127, 127]
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    rgb.save(tmp_path / "rotated.jpg", exif=exif)
    assert open_image(str(tmp_path / "rotated.jpg")).size == (12, 20)  # upright: width and height swap


def _broken_copy(digits: Path, root: Path) -> Path:
    import shutil

    shutil.copytree(digits / "train", root / "train")
    shutil.copytree(digits / "validation", root / "validation")
    bad = root / "train" / "4" / "corrupt.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # a PNG signature and nothing readable
    return bad


def test_a_corrupt_image_is_named_in_one_line_or_skipped_and_counted(compose, digits, tmp_path, capsys) -> None:
    bad = _broken_copy(digits, tmp_path / "broken")
    overrides = ["dataset=imagefolder", f"dataset.data_dir={tmp_path / 'broken'}", *SMALL, "model=tiny_resnet"]
    overrides += MODELS["tiny_resnet"]
    with pytest.raises(FtcliError, match=rf"{bad}: not a readable image .*dataset.bad_images=skip"):
        train(compose(*overrides, "trainer.dry_run=true"))
    result = train(compose(*overrides, "dataset.bad_images=skip", "trainer.max_steps=1", out=tmp_path / "run2"))
    assert "accuracy" in result
    out = capsys.readouterr().out
    assert "skipped 1 unreadable image " in out
    assert "· train 400 · validation 100" in out  # what trained: the 401 files less the skipped one


def test_an_empty_image_cell_names_its_table_and_row(compose, digits, tmp_path) -> None:
    table = tmp_path / "train.csv"
    rows = (digits / "train.csv").read_text().splitlines()
    table.write_text("\n".join([rows[0], *[f"{digits}/{r}" for r in rows[1:20]], ",7"]) + "\n")
    args = ["dataset=image_files", f"dataset.train_file={table}", *SMALL, "model=tiny_resnet", *MODELS["tiny_resnet"]]
    with pytest.raises(FtcliError, match=r"^empty image in row 20 of train.csv \(column 'image', dataset.image_colu"):
        train(compose(*args, "trainer.dry_run=true"))


def test_a_missing_path_in_a_table_is_named(compose, digits, tmp_path) -> None:
    table = tmp_path / "train.csv"
    rows = (digits / "train.csv").read_text().splitlines()
    table.write_text("\n".join([rows[0], "train/7/missing.png,7", *[f"{digits}/{r}" for r in rows[1:20]]]) + "\n")
    args = ["dataset=image_files", f"dataset.train_file={table}", *SMALL, "model=tiny_resnet", *MODELS["tiny_resnet"]]
    args.append("trainer.dry_run=true")
    cfg = compose(*args)
    with pytest.raises(FtcliError, match=rf"{tmp_path}/train/7/missing.png: no such image file"):
        train(cfg)


@pytest.mark.slow  # an end-to-end CLI run of 20-45 s on 2 cores: make test-slow
def test_the_cli_answers_image_mistakes_in_one_line(trained, tmp_path) -> None:
    out = ftcli("train", "dataset=imagefolder", "model=tiny_resnet", f"hydra.run.dir={tmp_path / 'x'}")
    assert out.returncode == 2 and "dataset.data_dir is required for dataset=imagefolder" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    out = ftcli("predict", f"checkpoint={trained['tiny_resnet']}", "text=hello", "hardware=cpu")
    assert out.returncode == 2 and "this checkpoint classifies images: give image=<file>" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_image_data_under_a_text_task_is_refused_before_anything_loads(compose) -> None:
    from ftcli.config.validate import validate

    with pytest.raises(FtcliError, match="dataset.image_column=path: images need task=image_classification"):
        validate(compose("dataset=files", "dataset.train_file=x.csv", "dataset.image_column=path"))
    with pytest.raises(FtcliError, match="dataset.source=imagefolder: an image folder needs task=image_classification"):
        validate(compose("dataset=imagefolder", "dataset.data_dir=x", "task=text_classification"))
    validate(
        compose("dataset=files", "dataset.train_file=x.csv", "dataset.image_column=path", "task=image_classification")
    )
    with pytest.raises(FtcliError, match=r"dataset.crop_scale=\[0.5, 2.0\]: high must be <= 1.0"):
        validate(compose("dataset=digits", "dataset.crop_scale=[0.5,2.0]"))


def test_top5_accuracy_cannot_pick_checkpoints_of_3_classes(compose, digits, tmp_path) -> None:
    import shutil

    for c in "012":
        shutil.copytree(digits / "train" / c, tmp_path / "three" / c)
    args = ["dataset=imagefolder", f"dataset.data_dir={tmp_path / 'three'}", *SMALL, "trainer.metric=top5_accuracy"]
    with pytest.raises(FtcliError, match="trainer.metric=top5_accuracy: needs more than 5 classes; the data has 3"):
        train(compose(*args, "model=tiny_resnet", *MODELS["tiny_resnet"], "trainer.dry_run=true"))


# ----------------------------------------------------------------------------------------------
# pieces: the processor split, augmentation, metrics


@pytest.mark.parametrize("kind", ["vit", "convnext", "efficientnet", "timm"])
def test_cached_pixels_reproduce_the_image_processor(kind) -> None:
    """uint8 after resize/crop, then the affine map: the processor's own pixel_values (what plain
    transformers feeds the model) to float rounding."""
    from PIL import Image
    from transformers import ConvNextImageProcessor, EfficientNetImageProcessor, ViTImageProcessor

    from ftcli.data.images.resize import Resizer
    from ftcli.models.vision import _timm_processor, _untrained_cfg, with_size

    processors = {
        "vit": lambda: ViTImageProcessor(),
        "convnext": lambda: ConvNextImageProcessor(size={"shortest_edge": 224}, crop_pct=0.875),
        "efficientnet": lambda: EfficientNetImageProcessor(),
        "timm": lambda: _timm_processor(_untrained_cfg("vgg11"), "vgg11"),
    }
    processor = with_size(processors[kind](), 24)
    resizer = Resizer(processor)
    assert resizer.size == (24, 24)
    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in ((30, 41), (64, 20))]
    ours = resizer.normalise_np(resizer.resize(images))
    np.testing.assert_allclose(ours, resizer.full(images), atol=1e-5)


def test_augmentation_is_batched_seeded_by_the_rows_and_exact_at_identity() -> None:
    from ftcli.data.images.augment import Augment, augment, batch_generator

    pixels = torch.rand(4, 3, 16, 16) * 255
    same = augment(pixels, Augment((1.0, 1.0), (1.0, 1.0), False), batch_generator(0, np.arange(4)))
    torch.testing.assert_close(same, pixels, atol=1e-3, rtol=0)  # a full-size crop without flip: the image
    crops = Augment((0.3, 1.0), (0.75, 1.33), True)
    a = augment(pixels, crops, batch_generator(7, np.arange(4)))
    b = augment(pixels, crops, batch_generator(7, np.arange(4)))
    c = augment(pixels, crops, batch_generator(7, np.arange(1, 5)))
    assert torch.equal(a, b) and not torch.equal(a, c) and a.shape == pixels.shape


def _old_augment(pixels: torch.Tensor, aug: object, gen: torch.Generator) -> torch.Tensor:
    """``augment`` as it was before whole images (crops of the stored square only): the reference."""
    import math

    import torch.nn.functional as F

    b = pixels.shape[0]
    lo, hi = math.log(aug.ratio[0]), math.log(aug.ratio[1])
    area = torch.empty(b).uniform_(aug.scale[0], aug.scale[1], generator=gen)
    ratio = torch.exp(torch.empty(b).uniform_(lo, hi, generator=gen))
    w, h = (area * ratio).sqrt().clamp(max=1.0), (area / ratio).sqrt().clamp(max=1.0)
    cx = (torch.rand(b, generator=gen) * 2 - 1) * (1 - w)
    cy = (torch.rand(b, generator=gen) * 2 - 1) * (1 - h)
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0) if aug.hflip else torch.ones(b)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w * flip, cx, h, cy
    grid = F.affine_grid(theta, list(pixels.shape), align_corners=False)
    return F.grid_sample(pixels, grid, mode="bilinear", padding_mode="border", align_corners=False)


def test_crops_inside_a_box_stay_in_it_and_a_whole_canvas_box_is_the_old_crop() -> None:
    from ftcli.data.images.augment import Augment, augment, batch_generator
    from ftcli.data.images.cache import crop_boxes

    pixels = torch.rand(4, 3, 16, 16) * 255
    crops = Augment((0.08, 1.0), (0.75, 1.33), True)
    old = _old_augment(pixels, crops, batch_generator(7, np.arange(4)))
    whole = torch.from_numpy(crop_boxes(np.full((4, 2), 16), 16))  # every image fills its canvas
    assert torch.equal(augment(pixels, crops, batch_generator(7, np.arange(4))), old)
    assert torch.equal(augment(pixels, crops, batch_generator(7, np.arange(4)), whole, (16, 16)), old)
    # a 16×8 image at the canvas' top left (columns 0-7): channel 0 holds each pixel's column, 1 its row
    ramp = torch.arange(16.0)
    canvas = torch.stack([ramp.expand(16, 16), ramp[:, None].expand(16, 16), torch.zeros(16, 16)]).expand(64, 3, 16, 16)
    box = torch.from_numpy(crop_boxes(np.tile([[16, 8]], (64, 1)), 16))
    out = augment(canvas.contiguous(), crops, batch_generator(0, np.arange(64)), box, (6, 6))
    assert out.shape == (64, 3, 6, 6)
    assert out[:, 0].max() <= 7.5 + 1e-4 and out[:, 0].max() > 6.5  # to the box's right edge, never past it
    assert out[:, 1].max() > 14  # and all the way down


def test_training_crops_see_a_photos_sides_and_validation_stays_exact(tmp_path) -> None:
    """A 4:3 photo whose left and right edges (1/8 each) are red and blue: the processor's centre crop cuts
    both off, so evaluation never sees them; augmented training crops come from the whole image and do."""
    from types import SimpleNamespace

    import datasets
    from omegaconf import OmegaConf
    from PIL import Image
    from transformers import ConvNextImageProcessor

    from ftcli.data.images.resize import resizer_of
    from ftcli.models.vision import with_size
    from ftcli.tasks.registry import build_task
    from ftcli.tasks.task import BatchPlan, TaskData

    photo = np.zeros((48, 64, 3), dtype=np.uint8)
    photo[:, :, 1] = 255
    photo[:, :8], photo[:, -8:] = (255, 0, 0), (0, 0, 255)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    processor = with_size(ConvNextImageProcessor(size={"shortest_edge": 224}, crop_pct=0.875), 24)
    resizer = resizer_of(processor)
    task = build_task(OmegaConf.create({"name": "image_classification"}), tmp_path / "cache")
    dataset = SimpleNamespace(
        augment=True, crop_scale=[0.08, 1.0], crop_ratio=[0.75, 1.333], hflip=False, bad_images="error"
    )
    data = TaskData({}, ["0"], ["image"], dataset)
    ds = datasets.Dataset.from_dict({"image": [str(tmp_path / "photo.png")] * 8, "labels": [0] * 8})
    encoded = task.encode(ds, data, processor, None)
    plan = BatchPlan(8, 1, 0)

    def crops(data: TaskData, epochs: int = 8) -> list[torch.Tensor]:  # each epoch: other rows' order, other crops
        loader, sampler = task.train_loader(encoded, data, processor, plan)
        out = []
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            out += [b["pixel_values"] for b in loader]
        return out

    def colours(pixel_values: torch.Tensor) -> tuple[bool, bool]:
        scale, shift = (torch.from_numpy(a).view(1, 3, 1, 1) for a in (resizer.scale, resizer.shift))
        rgb = (pixel_values - shift) / scale
        red = (rgb[:, 0] > 200) & (rgb[:, 1] < 60)
        blue = (rgb[:, 2] > 200) & (rgb[:, 1] < 60)
        return bool(red.any()), bool(blue.any())

    evaluated = next(iter(task.eval_loader(encoded, processor, 8)))["pixel_values"]
    np.testing.assert_allclose(evaluated.numpy(), resizer.full([Image.open(tmp_path / "photo.png")] * 8), atol=1e-4)
    assert colours(evaluated) == (False, False)
    train = crops(data)
    assert train[0].shape == (8, 3, 24, 24)
    assert colours(torch.cat(train)) == (True, True)
    again = crops(data)  # the cache, read back: the same crops
    assert all(torch.equal(a, b) for a, b in zip(train, again, strict=True))
    dataset.augment = False  # no augmentation: the processor's pixels, as evaluation's (in some order)
    plain = torch.cat(crops(data, 1))
    assert all(any(torch.equal(row, e) for e in evaluated) for row in plain)


def test_top5_accuracy_appears_with_more_than_5_classes() -> None:
    from omegaconf import OmegaConf

    from ftcli.metrics.classification import classification_metrics
    from ftcli.tasks.registry import build_task

    logits = np.eye(7)[[1, 2, 3, 4, 5, 6, 0]] + np.eye(7) * 0.5  # the right class second everywhere
    labels = np.arange(7)
    m = classification_metrics(labels, logits, [str(i) for i in range(7)])
    assert m["accuracy"] == 0.0 and m["top5_accuracy"] == 1.0
    assert m["most_confused"][0]["count"] == 1
    assert "top5_accuracy" not in classification_metrics(labels[:3], logits[:3, :3], ["a", "b", "c"])
    task = build_task(OmegaConf.create({"name": "image_classification"}))
    assert "needs more than 5 classes" in task.check_metric("top5_accuracy", ["a", "b", "c"])
    assert task.check_metric("top5_accuracy", list("abcdef")) is None


def test_eval_takes_a_dataset_that_picks_its_task(trained, tmp_path) -> None:
    """`ftcli eval dataset=digits`: the dataset's own task choice composes; the checkpoint's task is what runs."""
    from helpers.runs import compose_cmd

    from ftcli.config.validate import validate

    cfg = compose_cmd("eval", f"checkpoint={trained['tiny_resnet']}", "dataset=digits", out=tmp_path)
    validate(cfg)
    assert cfg.task.name == "image_classification" and cfg.dataset.name == "digits"
    assert compose_cmd("eval", f"checkpoint={trained['tiny_resnet']}", out=tmp_path).task is None
